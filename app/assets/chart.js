// Widget: the chart of numeric payloads (up to the last 60 s), redrawn on animation frames when
// something changed.

import { $ } from "./dom.js";
import { topics } from "./topics.js";

const CHART_WINDOW_MS = 60000; // chart shows the last 60 s
let dirty = true;

// Marks the chart for a redraw on the next animation frame.
export function invalidateChart() {
  dirty = true;
}

export function startChart() {
  const frame = () => {
    if (dirty) { dirty = false; drawChart(); }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
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
  const series = [...topics.entries()].filter(([, t]) => t.color && t.series.length);
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
