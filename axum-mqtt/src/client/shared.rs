//! What the handles and the background tasks share, and how the client stops.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{watch, Semaphore};

use super::claim::ClientIdClaim;
use super::core::Core;
use super::events::ConnectionState;
use super::link::Sender;
use super::registry::Registry;
use super::slot::Slot;
use super::stats::Counters;
use crate::config::MqttConfig;
use crate::message::QoS;
use crate::Error;

/// Why the connection task should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Running,
    /// `shutdown()`: drain in-flight acks, then DISCONNECT.
    Graceful,
    /// The last handle was dropped.
    Dropped,
}

/// State shared by the handles and the connection task.
pub(crate) struct Shared {
    pub config: MqttConfig,
    pub sender: Sender,
    pub permits: Arc<Semaphore>,
    /// The protocol core: the ack book, the batch, the deadlines, the replay.
    pub core: Mutex<Core>,
    /// Wakes the deadline watcher (`deadlines.rs`) for a publish due before it would wake.
    pub deadlines: Arc<tokio::sync::Notify>,
    pub registry: Mutex<Registry>,
    pub state: watch::Sender<ConnectionState>,
    pub streams: RwLock<Vec<Arc<Slot>>>,
    pub counters: Counters,
    pub stop: watch::Sender<Stop>,
    /// Patterns of routes that acknowledge after handling; empty when rumqttc acks by itself.
    pub ack_after: Vec<crate::topic::TopicPattern>,
    /// The durable outbox, when configured.
    #[cfg(feature = "outbox")]
    pub outbox: Option<super::outbox::Outbox>,
    /// CONNACKs without a session so far: a packet id means the same message only while this stays.
    pub fresh_sessions: AtomicU64,
    /// The connection task is handling events, not waiting in a poll: it looks at the batch before
    /// it waits again, so a publish made now is held for that write ([`Book::holds`]).
    ///
    /// [`Book::holds`]: super::book::Book::holds
    pub writer_awake: AtomicBool,
}

impl Shared {
    /// With manual acks, true when a message must wait for its handlers before being acknowledged.
    pub fn acks_after_handling(&self, msg: &crate::Message) -> bool {
        msg.qos != QoS::AtMostOnce
            && self
                .ack_after
                .iter()
                .any(|p| p.matches(msg.topic()).is_some())
    }

    /// The session a message received now belongs to (see [`ack_handled`](Self::ack_handled)).
    pub fn session(&self) -> u64 {
        self.fresh_sessions.load(Ordering::Acquire)
    }

    /// Acknowledges a message that waited for its handlers, received in `session`.
    ///
    /// Not when the broker started a fresh session since: the message is gone with the old session,
    /// and its packet id may already name another message, which the ack would then lose. (After a
    /// resumed session the ack is right: the broker redelivers the message with the same packet id.)
    pub fn ack_handled(&self, msg: &crate::Message, session: u64) {
        if self.session() != session {
            tracing::info!(
                topic = msg.topic(),
                "not acknowledged: the broker's session it came in is gone"
            );
            return;
        }
        if let Err(e) = self.sender.try_ack(msg.pkid, msg.qos) {
            tracing::error!(topic = msg.topic(), error = %e, "could not queue the acknowledgement");
        }
    }
}

impl Shared {
    /// Waits for room for one more request (`MAX_PENDING`).
    ///
    /// Requests go out in the order their futures are first polled. tokio's cooperative budget
    /// would make an acquisition yield although a permit is free (after 128 operations in one task
    /// poll), and `join_all` then polls the rest again in reverse order: concurrent publishes would
    /// reach the broker out of order. So the acquisition is unconstrained: it waits only when no
    /// permit is free, and then in line (the semaphore is fair).
    pub async fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
        tokio::task::unconstrained(self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Error::Closed)
    }

    /// Locks a mutex, recovering from a panic elsewhere (see [`lock`](super::lock::lock)).
    pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        super::lock::lock(m)
    }
}

/// Owned by the handles: dropping the last one stops the client.
pub(crate) struct Inner {
    pub shared: Arc<Shared>,
    pub claim: Arc<ClientIdClaim>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Last handle gone: leave cleanly (DISCONNECT, so the will is not published) and end the task.
        self.shared.stop.send_replace(Stop::Dropped);
        let _ = self.shared.sender.try_disconnect();
        self.claim.release();
    }
}
