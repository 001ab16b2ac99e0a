// The live page's entry module: asks the app what it offers (GET /api/info, with the token when
// one is needed), opens the WebSocket (transport.js) and routes its frames (protocol.js) to the
// widgets: status, token, publish, subscriptions, messages, rates, chart, notice.

import { startChart, invalidateChart } from "./chart.js";
import { setupMessages, showDropped } from "./messages.js";
import { notice } from "./notice.js";
import { Frame, Op } from "./protocol.js";
import { published, setupPublish, showPublishInfo } from "./publish.js";
import { renderRates } from "./rates.js";
import { setStatus, showBroker, showMqttStatus } from "./status.js";
import {
  deactivate, isSubscribed, resubscribe, setupSubscriptions, showSubscribeInfo, subscriptionAck, subscriptionFailed,
} from "./subscriptions.js";
import { askToken, initialToken, setupToken, tokenAccepted } from "./token.js";
import { Transport } from "./transport.js";

let token = initialToken();

const transport = new Transport({
  onOpen: resubscribe,
  onFrame,
  onClose() {
    setStatus("offline", "app unreachable (WebSocket closed), retrying…");
    deactivate();
  },
  onLost: start,
  onUnavailable: () => notice("Not connected to the app yet"),
});
const send = (op) => transport.send(op);

const addMessage = setupMessages({
  isSubscribed,
  onNewTopic: () => setTimeout(renderRates, 0), // show a new topic at once
  onNumeric: invalidateChart,
  onClear: invalidateChart,
});

function onFrame(f, op) {
  switch (f.type) {
    case Frame.MESSAGE: return addMessage(f);
    case Frame.STATUS: return showMqttStatus(f, transport.open);
    case Frame.ACK:
      if (!subscriptionAck(f) && f.op === Op.PUBLISH && op) published(op);
      return;
    case Frame.ERROR:
      subscriptionFailed(op);
      notice((f.op ? f.op + ": " : "") + f.error + " [" + f.kind + "]");
      return;
    case Frame.DROPPED: return showDropped(f.total);
  }
}

async function start() {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  let resp;
  try {
    resp = await fetch("/api/info", { headers });
  } catch (e) {
    setStatus("offline", "app unreachable, retrying…");
    setTimeout(start, 2000);
    return;
  }
  if (resp.status === 401) {
    const body = await resp.json().catch(() => ({}));
    setStatus("offline", "token needed");
    askToken(token ? (body.error || "wrong token") : "");
    return;
  }
  tokenAccepted(token);
  const info = await resp.json();
  showBroker(info);
  showPublishInfo(info);
  showSubscribeInfo(info);
  transport.connect(token);
}

setupToken((t) => { token = t; start(); });
setupPublish(send);
setupSubscriptions(send);
setInterval(() => { renderRates(); invalidateChart(); }, 1000);
startChart();
start();
