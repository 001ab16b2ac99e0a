// Widget: the subscribe form and this tab's subscriptions (the app forgets them with the
// WebSocket, so they are made again on every reconnect).

import { $ } from "./dom.js";
import { Op, ops } from "./protocol.js";

const subs = new Map(); // filter -> {qos, active}
let send = () => null;

export function isSubscribed(filter) {
  return subs.has(filter);
}

export function setupSubscriptions(sendOp) {
  send = sendOp;
  $("sub-form").onsubmit = (e) => {
    e.preventDefault();
    const filter = $("sub-filter").value.trim();
    const qos = Number($("sub-qos").value);
    if (!filter) return;
    if (!subs.has(filter)) subs.set(filter, { qos, active: false });
    render();
    send(ops.subscribe(filter, qos));
  };
  $("unsub-all").onclick = () => send(ops.unsubscribeAll());
}

// What /api/info says about subscribing: the allow-list, and a first filter to offer.
export function showSubscribeInfo(info) {
  if (info.allow_subscribe && info.allow_subscribe.length) {
    $("sub-hint").textContent = "Allowed filters: within " + info.allow_subscribe.join(", ");
  }
  const first = (info.subscriptions || [])[0];
  if (first && !$("sub-filter").value) $("sub-filter").value = first;
}

// The WebSocket (re)opened: subscribe again.
export function resubscribe() {
  for (const [filter, sub] of subs) {
    sub.active = false;
    send(ops.subscribe(filter, sub.qos));
  }
  render();
}

// The WebSocket closed: nothing is active until it reopens.
export function deactivate() {
  for (const sub of subs.values()) sub.active = false;
  render();
}

// An ack; true when it was about subscriptions.
export function subscriptionAck(f) {
  if (f.op === Op.SUBSCRIBE) {
    const sub = subs.get(f.filter) || { qos: f.qos };
    sub.active = true;
    subs.set(f.filter, sub);
  } else if (f.op === Op.UNSUBSCRIBE) {
    subs.delete(f.filter);
  } else if (f.op === Op.UNSUBSCRIBE_ALL) {
    subs.clear();
  } else {
    return false;
  }
  render();
  return true;
}

// An error answering `op`: a subscription that never became active is dropped from the list.
export function subscriptionFailed(op) {
  if (op && op.op === Op.SUBSCRIBE && subs.has(op.filter) && !subs.get(op.filter).active) {
    subs.delete(op.filter);
    render();
  }
}

function render() {
  const ul = $("subs");
  ul.replaceChildren();
  for (const [filter, sub] of subs) {
    const li = document.createElement("li");
    li.dataset.filter = filter;
    li.dataset.active = sub.active ? "true" : "false";
    const name = document.createElement("span");
    name.textContent = filter;
    const qos = document.createElement("span");
    qos.className = "qos";
    qos.textContent = "QoS " + sub.qos + (sub.active ? "" : " …");
    const x = document.createElement("button");
    x.type = "button";
    x.title = "Unsubscribe";
    x.className = "unsub";
    x.textContent = "×";
    x.onclick = () => send(ops.unsubscribe(filter));
    li.append(name, qos, x);
    ul.append(li);
  }
  $("unsub-all").disabled = subs.size === 0;
}
