// Widget: the topics table (messages per second over the last 10 s, count, last payload).

import { $ } from "./dom.js";
import { RATE_WINDOW_MS, topics } from "./topics.js";

export function renderRates() {
  const now = Date.now();
  const tbody = $("rates").tBodies[0];
  const rows = [];
  for (const [topic, t] of topics) {
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
