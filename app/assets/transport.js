// The page's one WebSocket to /ws: connects, numbers the ops it sends and hands each answer back
// with the op it answers, and reconnects with backoff when the socket closes.

import { parseFrame } from "./protocol.js";

export class Transport {
  // handlers: onOpen(), onFrame(frame, op), onClose(), onLost() (the socket closed after it had
  // been open: the page re-checks the app before reconnecting), onUnavailable() (send while closed).
  constructor(handlers) {
    this.handlers = handlers;
    this.ws = null;
    this.open = false;
    this.token = "";
    this.retryMs = 500;
    this.nextId = 1;
    this.pending = new Map(); // op id -> op
  }

  connect(token = this.token) {
    this.token = token;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const url = proto + "//" + location.host + "/ws" + (token ? "?token=" + encodeURIComponent(token) : "");
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.open = true;
      this.retryMs = 500;
      this.handlers.onOpen();
    };
    ws.onmessage = (ev) => {
      const f = parseFrame(ev.data);
      if (!f) return;
      let op;
      if (f.id !== undefined) {
        op = this.pending.get(f.id);
        this.pending.delete(f.id);
      }
      this.handlers.onFrame(f, op);
    };
    ws.onclose = () => {
      const was = this.open;
      this.open = false;
      this.ws = null;
      this.handlers.onClose();
      this.pending.clear();
      setTimeout(() => (was ? this.handlers.onLost() : this.connect()), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 5000);
    };
  }

  // Sends an op; returns its id, or null when the socket is not open.
  send(op) {
    if (!this.ws || !this.open) {
      this.handlers.onUnavailable();
      return null;
    }
    op.id = this.nextId++;
    this.pending.set(op.id, op);
    this.ws.send(JSON.stringify(op));
    return op.id;
  }
}
