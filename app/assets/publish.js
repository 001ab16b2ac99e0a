// Widget: the publish form, with optional MQTT 5 user properties (key / value rows).

import { $ } from "./dom.js";
import { notice } from "./notice.js";
import { ops } from "./protocol.js";

export function setupPublish(send) {
  $("pub-form").onsubmit = (e) => {
    e.preventDefault();
    send(ops.publish($("pub-topic").value, $("pub-payload").value, Number($("pub-qos").value),
      $("pub-retain").checked, userProperties()));
  };
  $("pub-add-prop").onclick = () => addPropertyRow();
}

// The rows with a key, as [[key, value], …].
function userProperties() {
  return [...$("pub-props").querySelectorAll(".prop")]
    .map((row) => [row.querySelector(".prop-key").value, row.querySelector(".prop-value").value])
    .filter(([k]) => k !== "");
}

function addPropertyRow() {
  const n = $("pub-props").children.length + 1;
  const row = document.createElement("div");
  row.className = "prop";
  const key = document.createElement("input");
  key.className = "prop-key";
  key.placeholder = "key";
  key.autocomplete = "off";
  key.setAttribute("aria-label", "user property " + n + " key");
  const value = document.createElement("input");
  value.className = "prop-value";
  value.placeholder = "value";
  value.autocomplete = "off";
  value.setAttribute("aria-label", "user property " + n + " value");
  const x = document.createElement("button");
  x.type = "button";
  x.className = "secondary small-x";
  x.textContent = "×";
  x.title = "Remove this property";
  x.setAttribute("aria-label", "remove user property " + n);
  x.onclick = () => { row.remove(); $("pub-add-prop").focus(); };
  row.append(key, value, x);
  $("pub-props").append(row);
  key.focus();
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
