//! `GET /ws`: the live page's WebSocket. JSON ops in, JSON frames out; see app/README.md.
//!
//! Each connection has its own subscriptions, each a [`MessageStream`] on the app's one MQTT
//! client (which subscribes at the broker once per filter, however many tabs follow it). Messages
//! for a connection go through a queue bounded in frames and bytes; when a browser cannot keep up,
//! messages are skipped and counted, and the browser gets a `dropped` frame. Acks, errors and
//! status changes go first, on a separate small queue.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_mqtt::web::{ApiError, MessageJson};
use axum_mqtt::{ConnectionState, Message, MessageStream};
use futures_util::stream::{FuturesUnordered, SplitSink};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::api::{check_filter, open_stream, parse_qos};
use crate::messages::now_ms;
use crate::metrics::{inc, Client, ClientGuard};
use crate::state::AppState;

/// Browser connections at once.
const MAX_CLIENTS: i64 = 1024;
/// Subscriptions per connection.
pub const MAX_SUBSCRIPTIONS: usize = 64;
/// Publishes per connection waiting for the broker's ack; past that, reading pauses.
const MAX_INFLIGHT: usize = 32;
/// Acks, errors and notices queued per connection; past that, reading pauses.
const CONTROL_QUEUE: usize = 64;
/// Messages a subscription's stream buffers before its forwarder takes them.
const STREAM_CAPACITY: usize = 64;
const OPS: &str = "publish, subscribe, unsubscribe, unsubscribe_all";

/// Upgrades to the WebSocket protocol.
pub async fn upgrade(
    State(st): State<AppState>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(r) => {
            return ApiError::new(r.status(), "websocket_required", r.body_text()).into_response()
        }
    };
    if st.metrics.clients(Client::WebSocket) >= MAX_CLIENTS {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_clients",
            format!("at most {MAX_CLIENTS} browser connections at once"),
        )
        .into_response();
    }
    // Messages up to the app's limit are read; larger ones up to the hard limit get an error frame
    // and the connection stays; past the hard limit the connection is closed (code 1009).
    let hard = hard_limit(st.limits.max_ws_message);
    ws.max_message_size(hard)
        .max_frame_size(hard)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| serve(socket, st))
}

/// The largest WebSocket message read at all (4 × the app's limit, at least 1 MiB).
fn hard_limit(max: usize) -> usize {
    (max * 4).max(1 << 20)
}

/// A message frame waiting for the writer, holding its share of the byte budget.
struct Queued {
    text: String,
    _bytes: OwnedSemaphorePermit,
}

/// The queue into which forwarders put message frames, and what they count.
#[derive(Clone)]
struct Outbox {
    tx: mpsc::Sender<Queued>,
    bytes: Arc<Semaphore>,
    dropped: Arc<AtomicU64>,
    st: AppState,
}

impl Outbox {
    fn skip(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        self.st.metrics.ws_dropped.fetch_add(n, Ordering::Relaxed);
    }
}

/// One subscription of one connection; dropping it ends the forwarder and releases the stream.
struct Sub {
    alive: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for Sub {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Relaxed);
        self.task.abort();
    }
}

#[derive(Serialize)]
struct MessageFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    filter: &'a str,
    time_ms: u64,
    #[serde(flatten)]
    message: MessageJson,
}

/// Moves one stream's messages into the connection's queue, never waiting.
async fn forward(mut stream: MessageStream, alive: Arc<AtomicBool>, out: Outbox) {
    let filter = MessageStream::filter(&stream).to_string();
    let mut seen = 0;
    while let Some(m) = stream.recv().await {
        let skipped = stream.dropped();
        if skipped > seen {
            out.skip(skipped - seen);
            seen = skipped;
        }
        if !alive.load(Ordering::Relaxed) {
            break;
        }
        if !offer(&out, &filter, &m) {
            break;
        }
    }
}

/// Queues a message frame, or skips it when the queue is full. False when the connection is gone.
fn offer(out: &Outbox, filter: &str, m: &Message) -> bool {
    // Reserve the slot first: nothing is serialized for a browser that is behind.
    let slot = match out.tx.try_reserve() {
        Ok(slot) => slot,
        Err(mpsc::error::TrySendError::Full(())) => {
            out.skip(1);
            return true;
        }
        Err(mpsc::error::TrySendError::Closed(())) => return false,
    };
    let frame = MessageFrame {
        kind: "message",
        filter,
        time_ms: now_ms(),
        message: MessageJson::from(m),
    };
    let text = serde_json::to_string(&frame).unwrap_or_default();
    let cost = u32::try_from(text.len()).unwrap_or(u32::MAX);
    match out.bytes.clone().try_acquire_many_owned(cost) {
        Ok(permit) => slot.send(Queued {
            text,
            _bytes: permit,
        }),
        Err(_) => out.skip(1),
    }
    true
}

fn status_frame(s: &ConnectionState) -> String {
    json!({
        "type": "status",
        "status": s.status,
        "last_error": s.last_error,
        "connects": s.connects,
        "attempts": s.attempts,
        "client_id": s.client_id,
    })
    .to_string()
}

fn ack(id: &Option<Value>, op: &str, extra: Value) -> String {
    let mut f = json!({"type": "ack", "op": op});
    if let Some(id) = id {
        f["id"] = id.clone();
    }
    if let (Value::Object(f), Value::Object(extra)) = (&mut f, extra) {
        f.extend(extra);
    }
    f.to_string()
}

fn error_frame(st: &AppState, id: &Option<Value>, op: Option<&str>, e: &ApiError) -> String {
    inc(&st.metrics.ws_errors);
    let mut f = json!({
        "type": "error",
        "status": e.status.as_u16(),
        "kind": e.kind,
        "error": e.message,
    });
    if let Some(id) = id {
        f["id"] = id.clone();
    }
    if let Some(op) = op {
        f["op"] = json!(op);
    }
    f.to_string()
}

fn bad(kind: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(kind, message)
}

fn unprocessable(kind: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, kind, message)
}

type Pending = Pin<Box<dyn Future<Output = String> + Send>>;

/// The reading side of one connection: its subscriptions and its publishes in flight.
struct Conn {
    st: AppState,
    out: Outbox,
    subs: HashMap<String, Sub>,
}

impl Conn {
    /// Handles one text frame; returns the answer now, or a publish to wait for.
    async fn handle(&mut self, text: &str) -> Result<String, Pending> {
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let e = bad("invalid_json", format!("the frame is not valid JSON: {e}"));
                return Ok(error_frame(&self.st, &None, None, &e));
            }
        };
        let Value::Object(mut obj) = value else {
            let e = unprocessable(
                "invalid_body",
                r#"expected a JSON object like {"op": "subscribe", "filter": "sensors/#"}"#,
            );
            return Ok(error_frame(&self.st, &None, None, &e));
        };
        let id = obj.remove("id");
        let op = match obj.remove("op") {
            Some(Value::String(op)) => op,
            None => {
                let e = unprocessable("missing_field", format!("missing `op`: one of {OPS}"));
                return Ok(error_frame(&self.st, &id, None, &e));
            }
            Some(other) => {
                let e = unprocessable("invalid_op", format!("`op` must be a string, got {other}"));
                return Ok(error_frame(&self.st, &id, None, &e));
            }
        };
        let result = match op.as_str() {
            "publish" => return Err(self.publish(id, obj)),
            "subscribe" => self.subscribe(&obj).await,
            "unsubscribe" => self.unsubscribe(&obj),
            "unsubscribe_all" => Ok(self.unsubscribe_all()),
            other => Err(bad(
                "unknown_op",
                format!("unknown op {other:?}: expected one of {OPS}"),
            )),
        };
        Ok(match result {
            Ok(extra) => ack(&id, &op, extra),
            Err(e) => {
                let known = OPS.split(", ").find(|o| *o == op);
                error_frame(&self.st, &id, known, &e)
            }
        })
    }

    /// Publishes through the same endpoint as `POST /publish`, so checks and errors are identical.
    fn publish(&self, id: Option<Value>, mut obj: Map<String, Value>) -> Pending {
        // The Flask-MQTT Socket.IO example sends `message`.
        if let Some(m) = obj.remove("message") {
            obj.entry("msg").or_insert(m);
        }
        let st = self.st.clone();
        let body = serde_json::to_vec(&obj).unwrap_or_default();
        Box::pin(async move {
            match st.publish.publish(&st.mqtt, &body).await {
                Ok(published) => {
                    inc(&st.metrics.ws_publishes);
                    ack(&id, "publish", json!({"mid": published.mid}))
                }
                Err(e) => {
                    if e.status == StatusCode::FORBIDDEN {
                        inc(&st.metrics.forbidden);
                    }
                    error_frame(&st, &id, Some("publish"), &e)
                }
            }
        })
    }

    fn filter_of(obj: &Map<String, Value>) -> Result<String, ApiError> {
        match obj.get("filter").or_else(|| obj.get("topic")) {
            Some(Value::String(f)) => Ok(f.clone()),
            None => Err(unprocessable(
                "missing_field",
                "missing `filter` (an MQTT topic filter like sensors/#)",
            )),
            Some(other) => Err(unprocessable(
                "invalid_filter",
                format!("`filter` must be a string, got {other}"),
            )),
        }
    }

    async fn subscribe(&mut self, obj: &Map<String, Value>) -> Result<Value, ApiError> {
        let filter = Self::filter_of(obj)?;
        check_filter(&self.st, &filter)?;
        let qos = match obj.get("qos") {
            None | Some(Value::Null) => parse_qos(None)?,
            Some(Value::Number(n)) => parse_qos(Some(&n.to_string()))?,
            Some(Value::String(s)) => parse_qos(Some(s))?,
            Some(other) => parse_qos(Some(&other.to_string()))?,
        };
        if self.subs.contains_key(&filter) {
            return Ok(json!({"filter": filter, "qos": qos, "already": true}));
        }
        if self.subs.len() >= MAX_SUBSCRIPTIONS {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_subscriptions",
                format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection"),
            ));
        }
        let stream = open_stream(&self.st, &filter, qos, STREAM_CAPACITY).await?;
        let alive = Arc::new(AtomicBool::new(true));
        let task = tokio::spawn(forward(stream, alive.clone(), self.out.clone()));
        self.subs.insert(filter.clone(), Sub { alive, task });
        Ok(json!({"filter": filter, "qos": qos}))
    }

    fn unsubscribe(&mut self, obj: &Map<String, Value>) -> Result<Value, ApiError> {
        let filter = Self::filter_of(obj)?;
        match self.subs.remove(&filter) {
            Some(_) => Ok(json!({"filter": filter})),
            None => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_subscribed",
                format!("this connection is not subscribed to {filter:?}"),
            )),
        }
    }

    fn unsubscribe_all(&mut self) -> Value {
        let mut filters: Vec<String> = self.subs.drain().map(|(f, _)| f).collect();
        filters.sort();
        json!({"filters": filters})
    }
}

async fn serve(socket: WebSocket, st: AppState) {
    let _client = ClientGuard::new(st.metrics.clone(), Client::WebSocket);
    inc(&st.metrics.ws_connections);
    let (sink, mut stream) = socket.split();
    let (ctl_tx, ctl_rx) = mpsc::channel::<String>(CONTROL_QUEUE);
    let (msg_tx, msg_rx) = mpsc::channel::<Queued>(st.limits.ws_queue);
    let out = Outbox {
        tx: msg_tx,
        bytes: Arc::new(Semaphore::new(st.limits.ws_queue_bytes)),
        dropped: Arc::new(AtomicU64::new(0)),
        st: st.clone(),
    };
    let mut writer = tokio::spawn(write(
        sink,
        ctl_rx,
        msg_rx,
        st.mqtt.watch_state(),
        out.dropped.clone(),
        st.clone(),
    ));
    let mut conn = Conn {
        st: st.clone(),
        out,
        subs: HashMap::new(),
    };
    let mut inflight: FuturesUnordered<Pending> = FuturesUnordered::new();
    let stop = st.stopping();
    tokio::pin!(stop);
    let mut writer_done = false;
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            _ = &mut writer => { writer_done = true; break }
            Some(frame) = inflight.next(), if !inflight.is_empty() => {
                if ctl_tx.send(frame).await.is_err() { break }
            }
            incoming = stream.next(), if inflight.len() < MAX_INFLIGHT => {
                let reply = match incoming {
                    None | Some(Ok(WsMessage::Close(_))) => break,
                    Some(Ok(WsMessage::Text(text))) if text.len() > st.limits.max_ws_message => {
                        error_frame(&st, &None, None, &ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "message_too_large",
                            format!(
                                "a WebSocket message may be at most {} bytes, got {}",
                                st.limits.max_ws_message,
                                text.len()
                            ),
                        ))
                    }
                    Some(Ok(WsMessage::Text(text))) => match conn.handle(text.as_str()).await {
                        Ok(frame) => frame,
                        Err(pending) => { inflight.push(pending); continue }
                    },
                    Some(Ok(WsMessage::Binary(_))) => error_frame(&st, &None, None, &bad(
                        "binary_frame",
                        "binary frames are not supported: send JSON objects as text frames",
                    )),
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                    Some(Err(e)) => {
                        // The stream cannot be read past a broken frame: say why, then close.
                        let (kind, code, text) = read_error(&e, hard_limit(st.limits.max_ws_message));
                        let _ = ctl_tx.try_send(error_frame(&st, &None, None, &bad(kind, text)));
                        let _ = ctl_tx.try_send(close_marker(code));
                        break;
                    }
                };
                if ctl_tx.send(reply).await.is_err() { break }
            }
        }
    }
    drop(conn); // ends the forwarders and releases the streams
    drop(ctl_tx); // lets the writer close the socket
    if !writer_done
        && tokio::time::timeout(Duration::from_secs(2), &mut writer)
            .await
            .is_err()
    {
        writer.abort();
    }
}

/// Classifies a read error: (kind, close code, message).
fn read_error(e: &axum::Error, max: usize) -> (&'static str, u16, String) {
    let text = e.to_string();
    if text.contains("too long") || text.contains("Space limit") {
        (
            "message_too_large",
            1009,
            format!("a WebSocket message may be at most {max} bytes ({text})"),
        )
    } else if text.to_ascii_lowercase().contains("utf-8") {
        (
            "invalid_utf8",
            1007,
            format!("a text frame was not valid UTF-8 ({text})"),
        )
    } else {
        (
            "bad_frame",
            1002,
            format!("unreadable WebSocket frame: {text}"),
        )
    }
}

const CLOSE_PREFIX: &str = "\u{0}close:";

/// A control-queue entry that tells the writer to close with a code.
fn close_marker(code: u16) -> String {
    format!("{CLOSE_PREFIX}{code}")
}

async fn write(
    mut sink: SplitSink<WebSocket, WsMessage>,
    mut ctl: mpsc::Receiver<String>,
    mut msgs: mpsc::Receiver<Queued>,
    mut state: watch::Receiver<ConnectionState>,
    dropped: Arc<AtomicU64>,
    st: AppState,
) {
    let first = status_frame(&state.borrow_and_update());
    if sink.send(WsMessage::Text(first.into())).await.is_err() {
        return;
    }
    let stop = st.stopping();
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut reported = 0u64;
    let mut last_report = Instant::now();
    let mut watching = true;
    let mut queue_open = true;
    let close = |code: u16, reason: &'static str| {
        WsMessage::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    };
    loop {
        let total = dropped.load(Ordering::Relaxed);
        if total > reported && last_report.elapsed() >= Duration::from_millis(200) {
            let f = json!({"type": "dropped", "count": total - reported, "total": total});
            if sink
                .send(WsMessage::Text(f.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
            reported = total;
            last_report = Instant::now();
        }
        let frame = tokio::select! {
            biased;
            _ = &mut stop => {
                let _ = sink.send(close(1001, "the app is shutting down")).await;
                return;
            }
            c = ctl.recv() => match c {
                Some(c) => match c.strip_prefix(CLOSE_PREFIX) {
                    Some(code) => {
                        let _ = sink.send(close(code.parse().unwrap_or(1002), "bad frame")).await;
                        return;
                    }
                    None => c,
                },
                None => {
                    let _ = sink.send(close(1000, "bye")).await;
                    return;
                }
            },
            changed = state.changed(), if watching => match changed {
                Ok(()) => status_frame(&state.borrow_and_update()),
                Err(_) => { watching = false; continue }
            },
            m = msgs.recv(), if queue_open => match m {
                Some(q) => {
                    inc(&st.metrics.ws_sent);
                    q.text
                }
                None => { queue_open = false; continue }
            },
            _ = tick.tick() => continue,
        };
        if sink.send(WsMessage::Text(frame.into())).await.is_err() {
            return;
        }
    }
}
