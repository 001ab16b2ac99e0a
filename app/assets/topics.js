// What the page has seen: per topic its arrival times, count, last message and history (for the
// tree and the history view), and the numeric series of its payloads (for the chart), one per
// field: `sensors/hall/hum rh` for `{"rh": 45}`, just the topic for a bare number.

import { numericFields, parseJson } from "./json.js";
import { payloadText } from "./protocol.js";

export const RATE_WINDOW_MS = 10000; // per-topic rate over the last 10 s
const MAX_TOPICS = 1000;
const MAX_HISTORY = 50;  // messages kept per topic
const MAX_SERIES = 64;   // series tracked (the chart shows up to 8 at once)
const MAX_POINTS = 600;  // points kept per series

export const topics = new Map(); // topic -> {times: [], count, last: msg, history: [msg]}
export const series = new Map(); // "topic field" -> {topic, field, points: [[t_ms, v]]}
let nextId = 1;

// A message frame as the page keeps it.
export function record(f) {
  const text = payloadText(f);
  const json = f.payload !== undefined ? parseJson(f.payload) : undefined;
  return {
    id: nextId++, topic: f.topic, filter: f.filter, time: f.time_ms || Date.now(), text, json,
    binary: f.payload === undefined, qos: f.qos, retain: !!f.retain, properties: f.properties || null,
  };
}

// Records a message. Returns {added} (a topic seen for the first time) and {numeric} (a chart
// point); null when too many topics are tracked.
export function track(m) {
  let added = false;
  let t = topics.get(m.topic);
  if (!t) {
    if (topics.size >= MAX_TOPICS) return null;
    t = { times: [], count: 0, last: null, history: [] };
    topics.set(m.topic, t);
    added = true;
  }
  const now = Date.now();
  t.times.push(now);
  t.count++;
  t.last = m;
  t.history.unshift(m);
  if (t.history.length > MAX_HISTORY) t.history.pop();
  let numeric = false;
  for (const [field, v] of m.binary ? [] : numericFields(m.text, m.json)) {
    const key = seriesName(m.topic, field);
    let s = series.get(key);
    if (!s) {
      if (series.size >= MAX_SERIES) continue;
      s = { topic: m.topic, field, points: [] };
      series.set(key, s);
    }
    s.points.push([now, v]);
    if (s.points.length > MAX_POINTS) s.points.shift();
    numeric = true;
  }
  return { added, numeric };
}

export function seriesName(topic, field) {
  return field ? topic + " " + field : topic;
}

// Messages per second on `topic` over the last RATE_WINDOW_MS.
export function rate(t, now = Date.now()) {
  while (t.times.length && t.times[0] < now - RATE_WINDOW_MS) t.times.shift();
  return t.times.length / (RATE_WINDOW_MS / 1000);
}

export function clearTopics() {
  topics.clear();
  series.clear();
}
