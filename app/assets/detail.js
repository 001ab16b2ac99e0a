// Widget: a topic's history (its last 50 messages, newest first) and one message in detail: topic,
// time, QoS as delivered, retain, the payload (JSON pretty-printed) with Copy, and on MQTT 5 its
// properties (user properties, content type, response topic, correlation data, message expiry).
// Payloads are untrusted: everything is written with textContent.

import { $, fmtTime } from "./dom.js";
import { pretty } from "./json.js";
import { notice } from "./notice.js";
import { topics } from "./topics.js";

let protocol = "";
let current = null; // the message shown
let historyTopic = null;

export function setupDetail() {
  $("copy").onclick = () => copy();
}

export function setProtocol(p) {
  protocol = p || "";
}

export function clearDetail() {
  current = null;
  historyTopic = null;
  $("history-topic").textContent = "";
  $("history").replaceChildren();
  $("detail").hidden = true;
  $("detail-empty").hidden = false;
}

// Opens `topic`'s history and its newest message.
export function showHistory(topic) {
  historyTopic = topic;
  renderHistory();
  const t = topics.get(topic);
  if (t && t.history.length) showMessage(t.history[0]);
}

// A new message arrived: the open history follows it.
export function historyChanged(topic) {
  if (topic === historyTopic) renderHistory();
}

function renderHistory() {
  const t = topics.get(historyTopic);
  $("history-topic").textContent = historyTopic || "";
  const ol = $("history");
  ol.replaceChildren();
  if (!t) return;
  for (const m of t.history) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "entry";
    b.dataset.id = String(m.id);
    if (current && current.id === m.id) b.setAttribute("aria-current", "true");
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = fmtTime(m.time);
    const text = document.createElement("span");
    text.className = "payload";
    text.textContent = m.text.slice(0, 120);
    b.append(time, text);
    b.onclick = () => showMessage(m);
    li.append(b);
    ol.append(li);
  }
}

export function showMessage(m) {
  current = m;
  $("detail-empty").hidden = true;
  $("detail").hidden = false;
  const rows = [
    ["Topic", m.topic],
    ["Received", new Date(m.time).toLocaleString([], { hour12: false }) + " (" + fmtTime(m.time) + ")"],
    ["QoS", String(m.qos) + " (as delivered)"],
    ["Retain", m.retain ? "yes (retained message)" : "no"],
    ["Size", (m.binary ? "binary, " : "") + byteLength(m) + " bytes"],
  ];
  const p = m.properties;
  if (p) {
    if (p.content_type !== undefined) rows.push(["Content type", p.content_type]);
    if (p.response_topic !== undefined) rows.push(["Response topic", p.response_topic]);
    if (p.correlation_data !== undefined) rows.push(["Correlation data", p.correlation_data]);
    if (p.correlation_data_base64 !== undefined) rows.push(["Correlation data", "base64:" + p.correlation_data_base64]);
    if (p.message_expiry_interval !== undefined) rows.push(["Message expiry", p.message_expiry_interval + " s"]);
    if (p.payload_format_indicator !== undefined) rows.push(["Payload format", p.payload_format_indicator === 1 ? "UTF-8 text" : "bytes"]);
  }
  const dl = $("detail-fields");
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dd.dataset.field = k.toLowerCase().replace(/ /g, "-");
    dl.append(dt, dd);
  }
  const props = (p && p.user_properties) || [];
  const tbody = $("user-props").tBodies[0];
  tbody.replaceChildren();
  for (const [k, v] of props) {
    const tr = document.createElement("tr");
    for (const text of [k, v]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    tbody.append(tr);
  }
  $("user-props").hidden = props.length === 0;
  $("props-note").textContent = p ? (props.length ? "" : "No user properties.")
    : protocol === "5" ? "No MQTT 5 properties on this message." : "MQTT 3.1.1: messages carry no properties.";
  $("detail-payload").textContent = pretty(m.text, m.json);
  $("detail-payload").dataset.json = m.json !== undefined && typeof m.json === "object" ? "true" : "false";
  for (const b of $("history").querySelectorAll("button.entry")) {
    if (b.dataset.id === String(m.id)) b.setAttribute("aria-current", "true");
    else b.removeAttribute("aria-current");
  }
}

function byteLength(m) {
  if (m.binary) {
    const b64 = m.text.slice("base64:".length);
    return Math.floor(b64.length * 3 / 4) - (b64.endsWith("==") ? 2 : b64.endsWith("=") ? 1 : 0);
  }
  return new TextEncoder().encode(m.text).length;
}

async function copy() {
  if (!current) return;
  try {
    await navigator.clipboard.writeText(current.text);
    $("copy").textContent = "Copied";
  } catch {
    // No clipboard (insecure origin, no permission): select the text for Ctrl+C instead.
    const range = document.createRange();
    range.selectNodeContents($("detail-payload"));
    const sel = getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    notice("Copy is not allowed here; the payload is selected (Ctrl+C)", "info");
    $("copy").textContent = "Selected";
  }
  setTimeout(() => { $("copy").textContent = "Copy payload"; }, 1500);
}
