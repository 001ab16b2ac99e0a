// Widget: the connection indicator in the header (the app's WebSocket, then the app's MQTT link).

import { $ } from "./dom.js";
import { MqttStatus } from "./protocol.js";

export function setStatus(s, text) {
  const el = $("status");
  el.dataset.state = s;
  $("status-text").textContent = text;
}

// A `status` frame; shown only while the WebSocket is open (else the indicator says why not).
export function showMqttStatus(frame, wsOpen) {
  if (!wsOpen) return;
  const text = {
    [MqttStatus.CONNECTED]: "MQTT connected",
    [MqttStatus.CONNECTING]: "MQTT connecting…",
    [MqttStatus.RECONNECTING]: "MQTT reconnecting…" + (frame.last_error ? " (" + frame.last_error + ")" : ""),
    [MqttStatus.STOPPED]: "MQTT stopped",
  }[frame.status] || frame.status;
  setStatus(frame.status, text);
}

export function showBroker(info) {
  const embedded = (info.embedded_broker || []).map((l) => l.protocol + " " + l.url).join(" · ");
  $("broker").textContent = "broker " + info.broker + (embedded ? " — embedded: " + embedded : "");
}
