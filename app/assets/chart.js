// Widget: the chart of numeric payloads (uPlot, vendored in vendor/): one series per numeric field
// (`sensors/hall/hum rh`) or bare-number topic, over the last 60 s. The legend's buttons choose
// which series are drawn (the first 8 are, at first). Redrawn on animation frames when something
// changed.

import uPlot from "./vendor/uPlot.esm.js";
import { $ } from "./dom.js";
import { series } from "./topics.js";

const CHART_WINDOW_MS = 60000;
const MAX_SHOWN = 8;
const COLORS = ["#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
const HEIGHT = 220;

const shown = new Map(); // series name -> colour, in the order chosen
const hidden = new Set(); // names the user turned off
let plot = null;
let plotKeys = "";
let dirty = true;

export function invalidateChart() {
  dirty = true;
}

export function clearChart() {
  shown.clear();
  hidden.clear();
  dirty = true;
}

export function startChart() {
  const frame = () => {
    if (dirty) { dirty = false; draw(); }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  new ResizeObserver(() => {
    if (plot) plot.setSize({ width: width(), height: HEIGHT });
  }).observe($("chart"));
}

function width() {
  return Math.max(200, $("chart").clientWidth);
}

function colorFor() {
  const used = new Set(shown.values());
  return COLORS.find((c) => !used.has(c)) || COLORS[shown.size % COLORS.length];
}

function draw() {
  // New series are shown while there is room.
  for (const name of series.keys()) {
    if (!shown.has(name) && !hidden.has(name) && shown.size < MAX_SHOWN) shown.set(name, colorFor());
  }
  for (const name of shown.keys()) if (!series.has(name)) shown.delete(name);
  renderLegend();
  const names = [...shown.keys()];
  const empty = $("chart-empty");
  empty.hidden = names.length > 0;
  if (!names.length) {
    if (plot) { plot.destroy(); plot = null; plotKeys = ""; }
    return;
  }
  const data = aligned(names);
  const keys = names.join("\n");
  if (!plot || keys !== plotKeys) {
    if (plot) plot.destroy();
    plot = new uPlot(options(names), data, $("chart"));
    plotKeys = keys;
  } else {
    plot.setData(data);
  }
}

// uPlot's data: one x array (seconds) and one array per series, null where a series has no point.
function aligned(names) {
  const since = Date.now() - CHART_WINDOW_MS;
  const xs = new Set();
  for (const n of names) for (const [t] of series.get(n).points) if (t >= since) xs.add(t);
  const x = [...xs].sort((a, b) => a - b);
  const index = new Map(x.map((t, i) => [t, i]));
  const ys = names.map((n) => {
    const y = new Array(x.length).fill(null);
    for (const [t, v] of series.get(n).points) if (t >= since) y[index.get(t)] = v;
    return y;
  });
  return [x.map((t) => t / 1000), ...ys];
}

function timeRange(u) {
  const now = Date.now() / 1000;
  const oldest = u.data[0].length ? u.data[0][0] : now;
  const span = Math.min(CHART_WINDOW_MS / 1000, Math.max(10, (now - oldest) * 1.1));
  return [now - span, now];
}

function options(names) {
  return {
    width: width(),
    height: HEIGHT,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    // The time axis ends now and spans the data seen: from 10 s up to CHART_WINDOW_MS.
    scales: { x: { time: true, range: timeRange } },
    axes: [
      // Seconds before now: "now", "-10s", …
      { stroke: "#6b7686", grid: { stroke: "#e2e6ec" }, space: 50, incrs: [1, 2, 5, 10, 15, 30],
        values: (u, splits) => splits.map((v) => {
          const ago = Math.round(Date.now() / 1000 - v);
          return ago <= 0 ? "now" : "-" + ago + "s";
        }) },
      { stroke: "#6b7686", grid: { stroke: "#e2e6ec" }, size: 56 },
    ],
    series: [
      {},
      ...names.map((n) => ({
        label: n, stroke: shown.get(n), width: 2, spanGaps: true,
        points: { show: true, size: 5, fill: shown.get(n) },
      })),
    ],
  };
}

// The legend: one toggle button per series, with its last value.
function renderLegend() {
  const legend = $("legend");
  const buttons = new Map([...legend.children].map((b) => [b.dataset.series, b]));
  for (const [name, s] of series) {
    let b = buttons.get(name);
    if (!b) {
      b = document.createElement("button");
      b.type = "button";
      b.className = "series";
      b.dataset.series = name;
      b.onclick = () => toggle(name);
      legend.append(b);
    }
    buttons.delete(name);
    const on = shown.has(name);
    b.setAttribute("aria-pressed", on ? "true" : "false");
    b.style.setProperty("--c", on ? shown.get(name) : "transparent");
    const last = s.points[s.points.length - 1];
    b.textContent = name + " = " + (last ? last[1] : "");
    b.title = on ? "Hide this series" : "Show this series";
  }
  for (const b of buttons.values()) b.remove();
}

function toggle(name) {
  if (shown.has(name)) {
    shown.delete(name);
    hidden.add(name);
  } else if (shown.size < MAX_SHOWN) {
    hidden.delete(name);
    shown.set(name, colorFor());
  }
  dirty = true;
}
