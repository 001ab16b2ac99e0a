//! The dispatcher's end of a [`MessageStream`](super::stream::MessageStream), on its own so that
//! the protocol core and the connection task can name it without the handle above them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::stats::Counters;
use crate::message::Message;
use crate::topic::TopicPattern;

/// The dispatcher's end of a stream.
pub(crate) struct Slot {
    pub(super) pattern: TopicPattern,
    pub(super) tx: mpsc::Sender<Message>,
    pub(super) dropped: Arc<AtomicU64>,
}

impl Slot {
    /// True when this stream's filter matches `topic`.
    pub fn wants(&self, topic: &str) -> bool {
        self.pattern.matches(topic).is_some()
    }

    /// Offers a message if the topic matches; never waits.
    pub fn offer(&self, msg: &Message, counters: &Counters) {
        if self.pattern.matches(msg.topic()).is_some() && self.tx.try_send(msg.clone()).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            counters.stream_dropped();
        }
    }
}
