// The live page: one WebSocket to /ws carrying JSON ops and frames (see app/README.md).
"use strict";

const MAX_ROWS = 200;          // message table rows kept
const RATE_WINDOW_MS = 10000;  // per-topic rate over the last 10 s
const CHART_WINDOW_MS = 60000; // chart shows the last 60 s
const MAX_SERIES = 8;          // topics drawn on the chart
const MAX_POINTS = 600;        // points kept per topic
const COLORS = ["#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

const $ = (id) => document.getElementById(id);
const state = {
  token: new URLSearchParams(location.search).get("token") || localStorage.getItem("axum-mqtt-token") || "",
  ws: null,
  wsOpen: false,
  retryMs: 500,
  nextId: 1,
  pending: new Map(),   // op id -> {op, filter}
  subs: new Map(),      // filter -> {qos, active}
  topics: new Map(),    // topic -> {times: [], count, last, series: [{t, v}], color}
  received: 0,
  dropped: 0,
  mqtt: "connecting",
  chartDirty: true,
};

function notice(text, kind = "error") {
  const n = $("notice");
  n.textContent = text;
  n.className = "banner " + kind;
  n.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { n.hidden = true; }, kind === "error" ? 8000 : 4000);
}

function setStatus(s, text) {
  const el = $("status");
  el.dataset.state = s;
  $("status-text").textContent = text;
}

function showMqttStatus(frame) {
  state.mqtt = frame.status;
  if (!state.wsOpen) return;
  const text = {
    connected: "MQTT connected",
    connecting: "MQTT connecting…",
    reconnecting: "MQTT reconnecting…" + (frame.last_error ? " (" + frame.last_error + ")" : ""),
    stopped: "MQTT stopped",
  }[frame.status] || frame.status;
  setStatus(frame.status, text);
}

function authHeaders() {
  return state.token ? { Authorization: "Bearer " + state.token } : {};
}

async function start() {
  let resp;
  try {
    resp = await fetch("/api/info", { headers: authHeaders() });
  } catch (e) {
    setStatus("offline", "app unreachable, retrying…");
    setTimeout(start, 2000);
    return;
  }
  if (resp.status === 401) {
    const body = await resp.json().catch(() => ({}));
    $("token-box").hidden = false;
    $("token-error").textContent = state.token ? (body.error || "wrong token") : "";
    setStatus("offline", "token needed");
    $("token-input").focus();
    return;
  }
  $("token-box").hidden = true;
  if (state.token) localStorage.setItem("axum-mqtt-token", state.token);
  const info = await resp.json();
  const embedded = (info.embedded_broker || []).map((l) => l.protocol + " " + l.url).join(" · ");
  $("broker").textContent = "broker " + info.broker + (embedded ? " — embedded: " + embedded : "");
  if (info.allow_publish && info.allow_publish.length) {
    $("pub-hint").textContent = "Allowed topics: " + info.allow_publish.join(", ");
  }
  if (info.allow_subscribe && info.allow_subscribe.length) {
    $("sub-hint").textContent = "Allowed filters: within " + info.allow_subscribe.join(", ");
  }
  const first = (info.subscriptions || [])[0];
  if (first && !$("sub-filter").value) $("sub-filter").value = first;
  if (first && !$("pub-topic").value && !/[+#]/.test(first)) $("pub-topic").value = first;
  connect();
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const url = proto + "//" + location.host + "/ws" + (state.token ? "?token=" + encodeURIComponent(state.token) : "");
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.onopen = () => {
    state.wsOpen = true;
    state.retryMs = 500;
    // The server forgets a tab's subscriptions with its connection: make them again.
    for (const [filter, sub] of state.subs) {
      sub.active = false;
      send({ op: "subscribe", filter, qos: sub.qos });
    }
    renderSubs();
  };
  ws.onmessage = (ev) => {
    let f;
    try { f = JSON.parse(ev.data); } catch { return; }
    handleFrame(f);
  };
  ws.onclose = () => {
    const was = state.wsOpen;
    state.wsOpen = false;
    state.ws = null;
    setStatus("offline", "app unreachable (WebSocket closed), retrying…");
    for (const sub of state.subs.values()) sub.active = false;
    renderSubs();
    state.pending.clear();
    setTimeout(() => (was ? start() : connect()), state.retryMs);
    state.retryMs = Math.min(state.retryMs * 2, 5000);
  };
}

function send(op) {
  if (!state.ws || !state.wsOpen) {
    notice("Not connected to the app yet");
    return null;
  }
  op.id = state.nextId++;
  state.pending.set(op.id, op);
  state.ws.send(JSON.stringify(op));
  return op.id;
}

function handleFrame(f) {
  switch (f.type) {
    case "message": return onMessage(f);
    case "status": return showMqttStatus(f);
    case "ack": return onAck(f);
    case "error": return onError(f);
    case "dropped":
      state.dropped = f.total;
      $("dropped").hidden = false;
      $("dropped").textContent = "⚠ " + f.total + " messages skipped (this tab could not keep up)";
      return;
  }
}

function onAck(f) {
  const op = state.pending.get(f.id);
  state.pending.delete(f.id);
  if (f.op === "subscribe") {
    const sub = state.subs.get(f.filter) || { qos: f.qos };
    sub.active = true;
    state.subs.set(f.filter, sub);
    renderSubs();
  } else if (f.op === "unsubscribe") {
    state.subs.delete(f.filter);
    renderSubs();
  } else if (f.op === "unsubscribe_all") {
    state.subs.clear();
    renderSubs();
  } else if (f.op === "publish" && op) {
    notice("Published to " + op.topic + (op.qos ? " (acknowledged by the broker)" : ""), "info");
  }
}

function onError(f) {
  const op = state.pending.get(f.id);
  state.pending.delete(f.id);
  if (op && op.op === "subscribe" && state.subs.has(op.filter) && !state.subs.get(op.filter).active) {
    state.subs.delete(op.filter);
    renderSubs();
  }
  notice((f.op ? f.op + ": " : "") + f.error + " [" + f.kind + "]");
}

function renderSubs() {
  const ul = $("subs");
  ul.replaceChildren();
  for (const [filter, sub] of state.subs) {
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
    x.onclick = () => send({ op: "unsubscribe", filter });
    li.append(name, qos, x);
    ul.append(li);
  }
  $("unsub-all").disabled = state.subs.size === 0;
}

function fmtTime(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function payloadText(f) {
  if (f.payload !== undefined) return f.payload;
  return "base64:" + (f.payload_base64 || "");
}

function onMessage(f) {
  // Frames already queued when an unsubscribe was acknowledged are ignored.
  if (!state.subs.has(f.filter)) return;
  state.received++;
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
  $("msg-count").textContent = "(" + state.received + " received, newest first, last " + Math.min(state.received, MAX_ROWS) + " shown)";

  let t = state.topics.get(f.topic);
  if (!t) {
    if (state.topics.size >= 1000) return;
    t = { times: [], count: 0, last: "", series: [], color: null };
    state.topics.set(f.topic, t);
    setTimeout(renderRates, 0); // show a new topic at once
  }
  const now = Date.now();
  t.times.push(now);
  t.count++;
  t.last = text;
  const v = Number(typeof f.payload === "string" ? f.payload.trim() : NaN);
  if (f.payload !== undefined && f.payload.trim() !== "" && Number.isFinite(v)) {
    if (!t.color) {
      const used = [...state.topics.values()].filter((x) => x.color).length;
      if (used < MAX_SERIES) t.color = COLORS[used % COLORS.length];
    }
    t.series.push({ t: now, v });
    if (t.series.length > MAX_POINTS) t.series.shift();
    state.chartDirty = true;
  }
}

function renderRates() {
  const now = Date.now();
  const tbody = $("rates").tBodies[0];
  const rows = [];
  for (const [topic, t] of state.topics) {
    while (t.times.length && t.times[0] < now - RATE_WINDOW_MS) t.times.shift();
    rows.push([topic, t]);
  }
  rows.sort((a, b) => b[1].times.length - a[1].times.length || b[1].count - a[1].count);
  tbody.replaceChildren();
  for (const [topic, t] of rows.slice(0, 50)) {
    const tr = document.createElement("tr");
    tr.dataset.topic = topic;
    const rate = (t.times.length / (RATE_WINDOW_MS / 1000)).toFixed(1);
    for (const [text, cls] of [[topic, ""], [rate, "num rate"], [String(t.count), "num count"], [t.last.slice(0, 80), "payload"]]) {
      const td = document.createElement("td");
      td.textContent = text;
      td.className = cls;
      tr.append(td);
    }
    tbody.append(tr);
  }
}

function drawChart() {
  const canvas = $("chart");
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const now = Date.now();
  const series = [...state.topics.entries()].filter(([, t]) => t.color && t.series.length);
  // The time axis spans the data seen so far: from 10 s up to CHART_WINDOW_MS.
  let min = Infinity, max = -Infinity, oldest = now;
  for (const [, t] of series) for (const p of t.series) {
    if (p.t < now - CHART_WINDOW_MS) continue;
    min = Math.min(min, p.v); max = Math.max(max, p.v); oldest = Math.min(oldest, p.t);
  }
  const span = Math.min(CHART_WINDOW_MS, Math.max(10000, (now - oldest) * 1.1));
  const left = 48, right = 8, top = 8, bottom = 20;
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#6b7686";
  ctx.strokeStyle = "#e2e6ec";
  ctx.lineWidth = 1;
  if (!Number.isFinite(min)) {
    ctx.fillText("Numbers published to subscribed topics are drawn here.", left, h / 2);
    return;
  }
  if (min === max) { min -= 1; max += 1; }
  const pad = (max - min) * 0.1; min -= pad; max += pad;
  const x = (t) => left + (w - left - right) * (1 - (now - t) / span);
  const y = (v) => top + (h - top - bottom) * (1 - (v - min) / (max - min));
  for (let i = 0; i <= 4; i++) {
    const v = min + (max - min) * i / 4;
    ctx.beginPath(); ctx.moveTo(left, y(v)); ctx.lineTo(w - right, y(v)); ctx.stroke();
    ctx.fillText(Number(v.toPrecision(4)).toString(), 4, y(v) + 4);
  }
  const stepS = span > 30000 ? 15 : span > 15000 ? 5 : 2;
  for (let s = 0; s * 1000 <= span; s += stepS) ctx.fillText(s === 0 ? "now" : "-" + s + "s", Math.max(left, x(now - s * 1000) - 12), h - 5);
  ctx.lineWidth = 2;
  for (const [, t] of series) {
    ctx.strokeStyle = t.color;
    ctx.fillStyle = t.color;
    ctx.beginPath();
    let started = false;
    for (const p of t.series) {
      if (p.t < now - span) continue;
      if (!started) { ctx.moveTo(x(p.t), y(p.v)); started = true; } else ctx.lineTo(x(p.t), y(p.v));
    }
    ctx.stroke();
    const lastP = t.series[t.series.length - 1];
    if (lastP.t >= now - span) { ctx.beginPath(); ctx.arc(x(lastP.t), y(lastP.v), 3, 0, 7); ctx.fill(); }
  }
  const legend = $("legend");
  legend.replaceChildren(...series.map(([topic, t]) => {
    const s = document.createElement("span");
    s.style.setProperty("--c", t.color);
    s.textContent = topic + " = " + t.series[t.series.length - 1].v;
    return s;
  }));
}

function setup() {
  $("token-form").onsubmit = (e) => {
    e.preventDefault();
    state.token = $("token-input").value.trim();
    start();
  };
  $("pub-form").onsubmit = (e) => {
    e.preventDefault();
    send({
      op: "publish",
      topic: $("pub-topic").value,
      payload: $("pub-payload").value,
      qos: Number($("pub-qos").value),
      retain: $("pub-retain").checked,
    });
  };
  $("sub-form").onsubmit = (e) => {
    e.preventDefault();
    const filter = $("sub-filter").value.trim();
    const qos = Number($("sub-qos").value);
    if (!filter) return;
    if (!state.subs.has(filter)) state.subs.set(filter, { qos, active: false });
    renderSubs();
    send({ op: "subscribe", filter, qos });
  };
  $("unsub-all").onclick = () => send({ op: "unsubscribe_all" });
  $("clear").onclick = () => {
    $("messages").tBodies[0].replaceChildren();
    state.topics.clear();
    state.received = 0;
    $("msg-count").textContent = "";
    state.chartDirty = true;
  };
  setInterval(() => { renderRates(); state.chartDirty = true; }, 1000);
  const frame = () => {
    if (state.chartDirty) { state.chartDirty = false; drawChart(); }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  start();
}

setup();
