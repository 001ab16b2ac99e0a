//! The dispatcher's end of a [`MessageStream`](super::stream::MessageStream), on its own so that
//! the protocol core and the connection task can name it without the handle above them; and
//! [`Streams`], the live ones.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};

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

/// The live streams' ends ([`Mqtt::stream`](crate::Mqtt::stream)): added by the handle, offered
/// every message by the dispatcher, dropped with their stream or when the client stops.
#[derive(Default)]
pub(crate) struct Streams(RwLock<Vec<Arc<Slot>>>);

impl Streams {
    pub fn add(&self, slot: Arc<Slot>) {
        self.write().push(slot);
    }

    /// Removes the stream whose end `slot` is (its `MessageStream` was dropped).
    pub fn remove(&self, slot: &Weak<Slot>) {
        self.write()
            .retain(|s| !std::ptr::eq(Arc::as_ptr(s), slot.as_ptr()));
    }

    /// Ends every stream: their receivers see the end once they have read what they hold.
    pub fn clear(&self) {
        self.write().clear();
    }

    /// Offers `msg` to every stream whose filter matches; never waits, so the read lock is held
    /// only for the loop.
    pub fn offer(&self, msg: &Message, counters: &Counters) {
        for s in self.0.read().unwrap_or_else(|p| p.into_inner()).iter() {
            s.offer(msg, counters);
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Slot>>> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }
}
