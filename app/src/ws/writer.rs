//! The writing side of one connection: the status first, then answers and notices before
//! messages, a `dropped` notice at most every 200 ms, and the close.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use axum_mqtt::ConnectionState;
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use tokio::sync::{mpsc, watch};

use super::frame::{Control, Frame};
use super::outbox::Queued;
use crate::state::AppState;

/// What the writer reads from.
pub struct Inputs {
    /// Answers, errors and closes from the reader.
    pub control: mpsc::Receiver<Control>,
    /// Message frames from the forwarders.
    pub messages: mpsc::Receiver<Queued>,
    /// The MQTT connection's state.
    pub state: watch::Receiver<ConnectionState>,
    /// Messages skipped so far.
    pub dropped: Arc<AtomicU64>,
    /// How often to ping the peer (the reader closes the connection when nothing comes back).
    pub ping_every: Duration,
}

fn close(code: u16, reason: &'static str) -> WsMessage {
    WsMessage::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Writes until the reader is done, the app stops, or the socket fails.
pub async fn write(mut sink: SplitSink<WebSocket, WsMessage>, mut input: Inputs, st: AppState) {
    let first = Frame::status(&input.state.borrow_and_update(), st.mqtt.protocol()).text();
    if sink.send(WsMessage::Text(first.into())).await.is_err() {
        return;
    }
    let stop = st.stopping();
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + input.ping_every,
        input.ping_every,
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = 0u64;
    let mut last_report = Instant::now();
    let mut watching = true;
    let mut queue_open = true;
    loop {
        let total = input.dropped.load(Ordering::Relaxed);
        if total > reported && last_report.elapsed() >= Duration::from_millis(200) {
            let notice = Frame::Dropped {
                count: total - reported,
                total,
            };
            if sink
                .send(WsMessage::Text(notice.text().into()))
                .await
                .is_err()
            {
                return;
            }
            reported = total;
            last_report = Instant::now();
        }
        let text = tokio::select! {
            biased;
            _ = &mut stop => {
                let _ = sink.send(close(1001, "the app is shutting down")).await;
                return;
            }
            c = input.control.recv() => match c {
                Some(Control::Send(frame)) => frame.text(),
                Some(Control::Close(code)) => {
                    let _ = sink.send(close(code, "bad frame")).await;
                    return;
                }
                None => {
                    // The reader is done. When that is because the app stops, say "going away"
                    // even if this task saw the reader end before it saw the stop.
                    let frame = if *st.shutdown.borrow() {
                        close(1001, "the app is shutting down")
                    } else {
                        close(1000, "bye")
                    };
                    let _ = sink.send(frame).await;
                    return;
                }
            },
            changed = input.state.changed(), if watching => match changed {
                Ok(()) => Frame::status(&input.state.borrow_and_update(), st.mqtt.protocol()).text(),
                Err(_) => { watching = false; continue }
            },
            m = input.messages.recv(), if queue_open => match m {
                Some(q) => {
                    st.metrics.ws_sent.increment(1);
                    q.text
                }
                None => { queue_open = false; continue }
            },
            _ = tick.tick() => continue,
            _ = ping.tick() => {
                if sink.send(WsMessage::Ping(Default::default())).await.is_err() {
                    return;
                }
                continue;
            }
        };
        if sink.send(WsMessage::Text(text.into())).await.is_err() {
            return;
        }
    }
}
