// Widget: the publish form.

import { $ } from "./dom.js";
import { notice } from "./notice.js";
import { ops } from "./protocol.js";

export function setupPublish(send) {
  $("pub-form").onsubmit = (e) => {
    e.preventDefault();
    send(ops.publish($("pub-topic").value, $("pub-payload").value, Number($("pub-qos").value), $("pub-retain").checked));
  };
}

// What /api/info says about publishing: the allow-list, and a first topic to offer.
export function showPublishInfo(info) {
  if (info.allow_publish && info.allow_publish.length) {
    $("pub-hint").textContent = "Allowed topics: " + info.allow_publish.join(", ");
  }
  const first = (info.subscriptions || [])[0];
  if (first && !$("pub-topic").value && !/[+#]/.test(first)) $("pub-topic").value = first;
}

// The app acknowledged one of our publishes.
export function published(op) {
  notice("Published to " + op.topic + (op.qos ? " (acknowledged by the broker)" : ""), "info");
}
