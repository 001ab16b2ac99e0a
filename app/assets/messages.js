// Widget: the message table (newest first), its counter, the skipped-messages warning and Clear.

import { $, fmtTime } from "./dom.js";
import { payloadText } from "./protocol.js";
import { topics, track } from "./topics.js";

const MAX_ROWS = 200; // message table rows kept
let received = 0;

// handlers: isSubscribed(filter), onNewTopic(), onNumeric(), onClear()
export function setupMessages(handlers) {
  $("clear").onclick = () => {
    $("messages").tBodies[0].replaceChildren();
    topics.clear();
    received = 0;
    $("msg-count").textContent = "";
    handlers.onClear();
  };
  return (f) => addMessage(f, handlers);
}

function addMessage(f, handlers) {
  // Frames already queued when an unsubscribe was acknowledged are ignored.
  if (!handlers.isSubscribed(f.filter)) return;
  received++;
  const text = payloadText(f);
  const tbody = $("messages").tBodies[0];
  const tr = document.createElement("tr");
  tr.className = "fresh";
  const cells = [fmtTime(f.time_ms), f.topic, text.length > 300 ? text.slice(0, 300) + "…" : text, String(f.qos), f.retain ? "yes" : ""];
  const classes = ["time", "topic", "payload", "num qos", "retain"];
  cells.forEach((c, i) => {
    const td = document.createElement("td");
    td.textContent = c;
    td.className = classes[i];
    if (i === 1 || i === 2) td.title = i === 2 ? text.slice(0, 2000) : c;
    tr.append(td);
  });
  tbody.prepend(tr);
  while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(-1);
  $("msg-count").textContent = "(" + received + " received, newest first, last " + Math.min(received, MAX_ROWS) + " shown)";

  const seen = track(f, text);
  if (!seen) return;
  if (seen.added) handlers.onNewTopic();
  if (seen.numeric) handlers.onNumeric();
}

// A `dropped` frame: this tab skipped messages.
export function showDropped(total) {
  $("dropped").hidden = false;
  $("dropped").textContent = "⚠ " + total + " messages skipped (this tab could not keep up)";
}
