// Widget: the connection indicator in the header: the app's WebSocket, then the app's MQTT link,
// which broker it is on and which protocol it speaks.

import { $ } from "./dom.js";
import { MqttStatus } from "./protocol.js";

let broker = "";

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
  const where = [broker, frame.protocol ? "MQTT " + frame.protocol : ""].filter(Boolean).join(", ");
  setStatus(frame.status, text + (where ? " — " + where : ""));
  $("status").title = "client id " + frame.client_id;
}

export function showBroker(info) {
  broker = info.broker || "";
  const embedded = (info.embedded_broker || []).map((l) => l.protocol + " " + l.url).join(" · ");
  $("broker").textContent = embedded ? "embedded broker: " + embedded : "external broker";
}
