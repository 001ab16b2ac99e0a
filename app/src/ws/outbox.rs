//! The message side of one connection: each subscription's forwarder moves its stream's messages
//! into a queue bounded in frames and bytes, never waiting; what does not fit is skipped and counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum_mqtt::web::MessageJson;
use axum_mqtt::{Message, MessageStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::frame::Frame;
use crate::messages::now_ms;
use crate::state::AppState;

/// A message frame waiting for the writer, holding its share of the byte budget.
pub struct Queued {
    pub text: String,
    _bytes: OwnedSemaphorePermit,
}

/// The queue into which forwarders put message frames, and what they count.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Queued>,
    bytes: Arc<Semaphore>,
    /// Messages this connection skipped.
    pub dropped: Arc<AtomicU64>,
    st: AppState,
}

impl Outbox {
    /// A queue of at most `frames` frames and `bytes` bytes, and its receiving end.
    pub fn new(st: &AppState, frames: usize, bytes: usize) -> (Outbox, mpsc::Receiver<Queued>) {
        let (tx, rx) = mpsc::channel(frames);
        let out = Outbox {
            tx,
            bytes: Arc::new(Semaphore::new(bytes)),
            dropped: Arc::new(AtomicU64::new(0)),
            st: st.clone(),
        };
        (out, rx)
    }

    fn skip(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        self.st.metrics.ws_dropped.increment(n);
    }

    /// Queues a message frame, or skips it when the queue is full. False when the connection is gone.
    fn offer(&self, filter: &str, m: &Message) -> bool {
        // Reserve the slot first: nothing is serialized for a browser that is behind.
        let slot = match self.tx.try_reserve() {
            Ok(slot) => slot,
            Err(mpsc::error::TrySendError::Full(())) => {
                self.skip(1);
                return true;
            }
            Err(mpsc::error::TrySendError::Closed(())) => return false,
        };
        let text = Frame::Message {
            filter,
            time_ms: now_ms(),
            message: MessageJson::from(m),
        }
        .text();
        let cost = u32::try_from(text.len()).unwrap_or(u32::MAX);
        match self.bytes.clone().try_acquire_many_owned(cost) {
            Ok(permit) => slot.send(Queued {
                text,
                _bytes: permit,
            }),
            Err(_) => self.skip(1),
        }
        true
    }

    /// Starts forwarding `stream` into this queue until the returned [`Sub`] is dropped.
    pub fn follow(&self, stream: MessageStream) -> Sub {
        let alive = Arc::new(AtomicBool::new(true));
        let task = tokio::spawn(forward(stream, alive.clone(), self.clone()));
        Sub { alive, task }
    }
}

/// One subscription of one connection; dropping it ends the forwarder and releases the stream.
pub struct Sub {
    alive: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for Sub {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Relaxed);
        self.task.abort();
    }
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
        if !out.offer(&filter, &m) {
            break;
        }
    }
}
