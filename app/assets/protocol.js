// The WebSocket protocol of GET /ws (app/README.md, "The WebSocket protocol"): every frame type and
// op name the page uses is written here and nowhere else.

// App → page: the `type` of each frame.
export const Frame = Object.freeze({
  STATUS: "status",
  MESSAGE: "message",
  ACK: "ack",
  ERROR: "error",
  DROPPED: "dropped",
});

// Page → app: the `op` of each request (acks and errors echo it).
export const Op = Object.freeze({
  PUBLISH: "publish",
  SUBSCRIBE: "subscribe",
  UNSUBSCRIBE: "unsubscribe",
  UNSUBSCRIBE_ALL: "unsubscribe_all",
});

// The protocol a `status` frame names: the app's client speaks MQTT 3.1.1 or 5.
export const Protocol = Object.freeze({ V311: "3.1.1", V5: "5" });

// The MQTT connection states a `status` frame reports.
export const MqttStatus = Object.freeze({
  CONNECTING: "connecting",
  CONNECTED: "connected",
  RECONNECTING: "reconnecting",
  STOPPED: "stopped",
});

// Requests, as the app reads them.
export const ops = Object.freeze({
  // userProperties: [[key, value], …] (MQTT 5; omitted when empty).
  publish: (topic, payload, qos, retain, userProperties = []) => ({
    op: Op.PUBLISH, topic, payload, qos, retain,
    ...(userProperties.length ? { user_properties: userProperties } : {}),
  }),
  subscribe: (filter, qos) => ({ op: Op.SUBSCRIBE, filter, qos }),
  unsubscribe: (filter) => ({ op: Op.UNSUBSCRIBE, filter }),
  unsubscribeAll: () => ({ op: Op.UNSUBSCRIBE_ALL }),
});

// A frame from its text, or null when it is not JSON.
export function parseFrame(text) {
  try { return JSON.parse(text); } catch { return null; }
}

// A message frame's payload as text (binary payloads arrive base64-encoded).
export function payloadText(f) {
  if (f.payload !== undefined) return f.payload;
  return "base64:" + (f.payload_base64 || "");
}
