// Widget: the message table (newest first), its counter, Pause / Resume, the text filter, Clear and
// the skipped-messages warning. Every message also goes to the topic model (topics.js) — also
// while paused: Pause stops the table, and Resume adds what arrived meanwhile.

import { $, fmtTime } from "./dom.js";
import { record, track } from "./topics.js";

const MAX_ROWS = 200; // message table rows kept
let received = 0;
let paused = false;
let waiting = []; // messages that arrived while paused (the newest MAX_ROWS)
let filterText = "";
let handlers = null;

// handlers: isSubscribed(filter), onMessage(m, seen) (after the model has it), onOpen(m), onClear()
export function setupMessages(h) {
  handlers = h;
  $("clear").onclick = () => {
    $("messages").tBodies[0].replaceChildren();
    received = 0;
    waiting = [];
    showCount();
    handlers.onClear();
  };
  $("pause").onclick = () => setPaused(!paused);
  $("msg-filter").oninput = () => {
    filterText = $("msg-filter").value.trim().toLowerCase();
    for (const tr of $("messages").tBodies[0].rows) tr.hidden = !matches(tr.message);
    showCount();
  };
  return addMessage;
}

function setPaused(p) {
  paused = p;
  const b = $("pause");
  b.setAttribute("aria-pressed", p ? "true" : "false");
  b.textContent = p ? "Resume" : "Pause";
  if (!p) {
    for (const m of waiting) addRow(m);
    waiting = [];
  }
  showCount();
}

function addMessage(f) {
  // Frames already queued when an unsubscribe was acknowledged are ignored.
  if (!handlers.isSubscribed(f.filter)) return;
  received++;
  const m = record(f);
  const seen = track(m);
  if (paused) {
    waiting.push(m);
    if (waiting.length > MAX_ROWS) waiting.shift();
  } else {
    addRow(m);
  }
  showCount();
  handlers.onMessage(m, seen);
}

function matches(m) {
  if (!filterText) return true;
  return m.topic.toLowerCase().includes(filterText) || m.text.toLowerCase().includes(filterText);
}

function addRow(m) {
  const tbody = $("messages").tBodies[0];
  const tr = document.createElement("tr");
  tr.className = "fresh";
  tr.tabIndex = 0;
  tr.message = m;
  tr.dataset.id = String(m.id);
  const props = m.properties ? (m.properties.user_properties || []).length : 0;
  const cells = [
    [fmtTime(m.time), "time"],
    [m.topic, "topic"],
    [m.text.length > 300 ? m.text.slice(0, 300) + "…" : m.text, "payload"],
    [String(m.qos), "num qos"],
    [m.retain ? "yes" : "", "retain"],
    [m.properties ? (props ? props + " user" : "yes") : "", "props"],
  ];
  for (const [text, cls] of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    td.className = cls;
    if (cls === "topic") td.title = text;
    if (cls === "payload") td.title = m.text.slice(0, 2000);
    tr.append(td);
  }
  tr.hidden = !matches(m);
  tr.onclick = () => handlers.onOpen(m);
  tr.onkeydown = (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); handlers.onOpen(m); }
  };
  tbody.prepend(tr);
  while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(-1);
}

function showCount() {
  const rows = $("messages").tBodies[0].rows;
  const visible = [...rows].filter((r) => !r.hidden).length;
  let text = received ? "(" + received + " received, newest first, " + visible + " shown" : "";
  if (text && filterText) text += " matching the filter";
  if (text) text += ")";
  $("msg-count").textContent = text;
  $("paused-note").hidden = !paused;
  $("paused-note").textContent = paused ? "paused — " + waiting.length + " waiting" : "";
}

// A `dropped` frame: this tab skipped messages.
export function showDropped(total) {
  $("dropped").hidden = false;
  $("dropped").textContent = "⚠ " + total + " messages skipped (this tab could not keep up)";
}
