//! `Mqtt::stream`: messages of one filter as a `futures::Stream`, bounded, skipping when not read.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::mpsc;

use super::slot::Slot;
use crate::message::Message;
use crate::topic::TopicPattern;
use crate::Error;

/// Messages matching one filter; see [`Mqtt::stream`](crate::Mqtt::stream). Dropping it releases
/// the subscription.
pub struct MessageStream {
    rx: mpsc::Receiver<Message>,
    // Weak: the client's list owns the sender, so the stream ends when the client stops.
    slot: Weak<Slot>,
    filter: String,
    dropped: Arc<AtomicU64>,
    /// Releases this stream's share of the subscription; given by the handle that made it (so this
    /// file needs no handle), taken once on drop.
    release: Option<Release>,
}

/// What releasing a stream does: drop its slot and, for the last stream of a filter, unsubscribe.
pub(crate) type Release = Box<dyn FnOnce(&Weak<Slot>, &str) + Send + Sync>;

impl MessageStream {
    pub(crate) fn new(
        release: Release,
        filter: &str,
        capacity: usize,
    ) -> Result<(Self, Arc<Slot>), Error> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let slot = Arc::new(Slot {
            pattern: TopicPattern::parse(filter)?,
            tx,
            dropped: dropped.clone(),
        });
        Ok((
            MessageStream {
                rx,
                slot: Arc::downgrade(&slot),
                filter: filter.to_string(),
                dropped,
                release: Some(release),
            },
            slot,
        ))
    }

    /// The filter this stream follows.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Messages skipped because this stream was not read fast enough.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits for the next message (`None` once the client has stopped).
    pub async fn recv(&mut self) -> Option<Message> {
        self.rx.recv().await
    }
}

impl Stream for MessageStream {
    type Item = Message;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for MessageStream {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release(&self.slot, &self.filter);
        }
    }
}

impl std::fmt::Debug for MessageStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageStream")
            .field("filter", &self.filter)
            .field("dropped", &self.dropped())
            .finish()
    }
}
