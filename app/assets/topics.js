// What the page has seen per topic: arrival times and counts (for the rates table) and numeric
// series (for the chart).

export const RATE_WINDOW_MS = 10000; // per-topic rate over the last 10 s
const MAX_TOPICS = 1000;
const MAX_SERIES = 8;   // topics drawn on the chart
const MAX_POINTS = 600; // points kept per topic
const COLORS = ["#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

export const topics = new Map(); // topic -> {times: [], count, last, series: [{t, v}], color}

// Records a message frame whose payload reads as `text`. Returns {added} (a topic seen for the
// first time) and {numeric} (a point for the chart); null when too many topics are tracked.
export function track(f, text) {
  let added = false;
  let t = topics.get(f.topic);
  if (!t) {
    if (topics.size >= MAX_TOPICS) return null;
    t = { times: [], count: 0, last: "", series: [], color: null };
    topics.set(f.topic, t);
    added = true;
  }
  const now = Date.now();
  t.times.push(now);
  t.count++;
  t.last = text;
  const v = Number(typeof f.payload === "string" ? f.payload.trim() : NaN);
  let numeric = false;
  if (f.payload !== undefined && f.payload.trim() !== "" && Number.isFinite(v)) {
    if (!t.color) {
      const used = [...topics.values()].filter((x) => x.color).length;
      if (used < MAX_SERIES) t.color = COLORS[used % COLORS.length];
    }
    t.series.push({ t: now, v });
    if (t.series.length > MAX_POINTS) t.series.shift();
    numeric = true;
  }
  return { added, numeric };
}
