// The live page's entry module: asks the app what it offers (GET /api/info, with the token when
// one is needed), opens the WebSocket (transport.js) and routes its frames (protocol.js) to the
// widgets: status, token, publish, subscriptions, messages, the topic tree, the detail view,
// the chart, notice.

import { clearChart, invalidateChart, startChart } from "./chart.js";
import { clearDetail, historyChanged, setProtocol, setupDetail, showHistory, showMessage } from "./detail.js";
import { setupMessages, showDropped } from "./messages.js";
import { notice } from "./notice.js";
import { Frame, Op } from "./protocol.js";
import { published, setupPublish, showPublishInfo } from "./publish.js";
import { setStatus, showBroker, showMqttStatus } from "./status.js";
import {
  deactivate, isSubscribed, resubscribe, setupSubscriptions, showSubscribeInfo, subscriptionAck, subscriptionFailed,
} from "./subscriptions.js";
import { askToken, initialToken, setupToken, tokenAccepted } from "./token.js";
import { clearTopics } from "./topics.js";
import { Transport } from "./transport.js";
import { clearTree, renderTree, selectTopic, setupTree } from "./tree.js";

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

let treeQueued = false;
const addMessage = setupMessages({
  isSubscribed,
  onMessage(m, seen) {
    historyChanged(m.topic);
    if (!seen) return;
    if (seen.added && !treeQueued) { // show a new topic at once (once per burst)
      treeQueued = true;
      setTimeout(() => { treeQueued = false; renderTree(); }, 0);
    }
    if (seen.numeric) invalidateChart();
  },
  onOpen(m) {
    selectTopic(m.topic);
    showHistory(m.topic);
    showMessage(m);
  },
  onClear() {
    clearTopics();
    clearTree();
    clearDetail();
    clearChart();
  },
});
setupTree({ onSelect: showHistory });
setupDetail();

function onFrame(f, op) {
  switch (f.type) {
    case Frame.MESSAGE: return addMessage(f);
    case Frame.STATUS:
      setProtocol(f.protocol);
      return showMqttStatus(f, transport.open);
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
setInterval(() => { renderTree(); invalidateChart(); }, 1000);
startChart();
start();
