//! `GET /ws`: the live page's WebSocket. JSON ops in, JSON frames out; see app/README.md.
//!
//! Each connection has its own subscriptions, each a [`MessageStream`](axum_mqtt::MessageStream) on
//! the app's one MQTT client (which subscribes at the broker once per filter, however many tabs
//! follow it). Messages for a connection go through a queue bounded in frames and bytes
//! ([`outbox`]); when a browser cannot keep up, messages are skipped and counted, and the browser
//! gets a `dropped` frame. Acks, errors and status changes go first, on a separate small queue
//! ([`writer`]). The frames themselves are in [`frame`], the ops' handling in [`conn`].

mod conn;
mod frame;
mod outbox;
mod writer;

use std::error::Error as _;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_mqtt::web::ApiError;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite;

use crate::slots::Slot;
use crate::state::AppState;
use conn::{error_frame, Conn, Pending};
use frame::Control;
use outbox::Outbox;

pub use conn::MAX_SUBSCRIPTIONS;

/// Publishes per connection waiting for the broker's ack; past that, reading pauses.
const MAX_INFLIGHT: usize = 32;
/// Acks, errors and notices queued per connection; past that, reading pauses.
const CONTROL_QUEUE: usize = 64;

/// Bytes read from a WebSocket at a time (tungstenite's default is 128 KiB per connection).
const WS_READ_BUFFER: usize = 4096;

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
    // The slot is held from here: an upgrade that fails gives it back with the closure.
    let slot = match st.ws_slots.take(&st.metrics) {
        Ok(slot) => slot,
        Err(e) => return e.into_response(),
    };
    // Messages up to the app's limit are read; larger ones up to the hard limit get an error frame
    // and the connection stays; past the hard limit the connection is closed (code 1009).
    let hard = hard_limit(st.limits.max_ws_message);
    ws.max_message_size(hard)
        .max_frame_size(hard)
        // tungstenite's defaults keep a 128 KiB read buffer per connection (most of the ~150 KiB
        // per client measured with 1000 clients); a browser sends small JSON requests, and a larger
        // message still arrives, read in more steps. Each frame we send is flushed at once.
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| serve(socket, st, slot))
}

/// The largest WebSocket message read at all (4 × the app's limit, at least 1 MiB).
fn hard_limit(max: usize) -> usize {
    (max * 4).max(1 << 20)
}

async fn serve(socket: WebSocket, st: AppState, _slot: Slot) {
    st.metrics.ws_connections.increment(1);
    let (sink, mut stream) = socket.split();
    let (ctl_tx, ctl_rx) = mpsc::channel::<Control>(CONTROL_QUEUE);
    let (out, msg_rx) = Outbox::new(&st, st.limits.ws_queue, st.limits.ws_queue_bytes);
    let inputs = writer::Inputs {
        control: ctl_rx,
        messages: msg_rx,
        state: st.mqtt.watch_state(),
        dropped: out.dropped.clone(),
        ping_every: st.limits.ws_ping_interval,
    };
    let mut writer = tokio::spawn(writer::write(sink, inputs, st.clone()));
    let mut conn = Conn::new(st.clone(), out);
    let mut inflight: FuturesUnordered<Pending> = FuturesUnordered::new();
    let stop = st.stopping();
    tokio::pin!(stop);
    let mut writer_done = false;
    // The writer pings every --ws-ping-interval; whatever arrives (a pong, a frame) moves this on.
    let peer_timeout = st.limits.ws_peer_timeout;
    let silent = tokio::time::sleep(peer_timeout);
    tokio::pin!(silent);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            _ = &mut writer => { writer_done = true; break }
            _ = &mut silent => {
                tracing::info!(
                    "closing a WebSocket whose peer sent nothing, not even a pong, for {} (--ws-peer-timeout)",
                    humantime::format_duration(peer_timeout)
                );
                break;
            }
            Some(frame) = inflight.next(), if !inflight.is_empty() => {
                if ctl_tx.send(Control::Send(frame)).await.is_err() { break }
            }
            incoming = stream.next(), if inflight.len() < MAX_INFLIGHT => {
                silent.as_mut().reset(tokio::time::Instant::now() + peer_timeout);
                let reply = match incoming {
                    None | Some(Ok(WsMessage::Close(_))) => break,
                    Some(Ok(WsMessage::Text(text))) if text.len() > st.limits.max_ws_message => {
                        error_frame(&st, &ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "message_too_large",
                            format!(
                                "a WebSocket message may be at most {} bytes, got {}",
                                st.limits.max_ws_message,
                                text.len()
                            ),
                        ), None, None)
                    }
                    Some(Ok(WsMessage::Text(text))) => match conn.handle(text.as_str()).await {
                        Ok(frame) => frame,
                        Err(pending) => { inflight.push(pending); continue }
                    },
                    Some(Ok(WsMessage::Binary(_))) => error_frame(&st, &ApiError::bad_request(
                        "binary_frame",
                        "binary frames are not supported: send JSON objects as text frames",
                    ), None, None),
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                    Some(Err(e)) => {
                        // The stream cannot be read past a broken frame: say why, then close.
                        let bad = ReadError::of(&e, hard_limit(st.limits.max_ws_message));
                        let e = ApiError::bad_request(bad.kind, bad.message);
                        let _ = ctl_tx.try_send(Control::Send(error_frame(&st, &e, None, None)));
                        let _ = ctl_tx.try_send(Control::Close(bad.close_code));
                        break;
                    }
                };
                if ctl_tx.send(Control::Send(reply)).await.is_err() { break }
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

/// Why a WebSocket could not be read, from the WebSocket library's error variant.
#[derive(Debug, PartialEq, Eq)]
struct ReadError {
    kind: &'static str,
    close_code: u16,
    message: String,
}

impl ReadError {
    /// Classifies a read error; `max` is the largest message read.
    fn of(e: &axum::Error, max: usize) -> ReadError {
        let cause = e
            .source()
            .and_then(|s| s.downcast_ref::<tungstenite::Error>());
        let (kind, close_code, message) = match cause {
            Some(tungstenite::Error::Capacity(c)) => (
                "message_too_large",
                1009,
                format!("a WebSocket message may be at most {max} bytes ({c})"),
            ),
            Some(tungstenite::Error::Utf8(detail)) => (
                "invalid_utf8",
                1007,
                format!("a text frame was not valid UTF-8 ({detail})"),
            ),
            _ => (
                "bad_frame",
                1002,
                format!("unreadable WebSocket frame: {e}"),
            ),
        };
        ReadError {
            kind,
            close_code,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::error::{CapacityError, ProtocolError};

    #[test]
    fn read_errors_are_classified_by_variant() {
        let of = |e: tungstenite::Error| ReadError::of(&axum::Error::new(e), 1024);
        let too_long = of(tungstenite::Error::Capacity(
            CapacityError::MessageTooLong {
                size: 2048,
                max_size: 1024,
            },
        ));
        assert_eq!(
            (too_long.kind, too_long.close_code),
            ("message_too_large", 1009)
        );
        assert!(
            too_long.message.contains("at most 1024 bytes"),
            "{}",
            too_long.message
        );
        let utf8 = of(tungstenite::Error::Utf8("invalid byte".into()));
        assert_eq!((utf8.kind, utf8.close_code), ("invalid_utf8", 1007));
        let proto = of(tungstenite::Error::Protocol(
            ProtocolError::UnmaskedFrameFromClient,
        ));
        assert_eq!((proto.kind, proto.close_code), ("bad_frame", 1002));
        // An error that merely mentions "too long" is no capacity error.
        let io = of(tungstenite::Error::Io(std::io::Error::other(
            "too long, utf-8",
        )));
        assert_eq!(io.kind, "bad_frame");
    }
}
