//! [`Requests`]: the way from the handles to the connection task, and when it closes.
//!
//! A publish, SUBSCRIBE or UNSUBSCRIBE takes a permit (`MAX_PENDING`: the backpressure on
//! producers), goes into rumqttc's channel (or the protocol core's batch) and leaves its caller
//! waiting in the core, both under the core's lock, so the connection task matches acks to callers
//! in the order the requests were made. The handles, the outbox's sender and the dead-letter
//! sender all go through here; none of them touches the core's queues.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::core::deadlines::Deadline;
use super::core::packet::{OutPublish, SubCode};
use super::core::waiters::{PubReply, PubWaiter, SubWaiter, UnsubWaiter};
use super::core::Core;
use super::events::{ConnectionState, Published, Status};
use super::link::Sender;
use super::lock::lock;
use super::slot::Slot;
use crate::config::{MqttConfig, Protocol};
use crate::message::QoS;
use crate::topic::validate_topic;
use crate::Error;

/// Why the client stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Running,
    /// `shutdown()`: drain in-flight acks, then DISCONNECT.
    Graceful,
    /// The last handle was dropped.
    Dropped,
}

/// What [`Requests::queue_now`] did.
pub(crate) enum Now {
    /// Queued (or failed for good): the answer.
    Queued(Result<Published, Error>),
    /// Not connected, or no room: the publish, handed back to wait as usual.
    Wait(OutPublish),
}

/// The request path of one client: rumqttc's request channel, its permits, the protocol core,
/// the deadline watcher's wake-up, and whether the client still takes requests.
pub(crate) struct Requests {
    sender: Sender,
    permits: Arc<Semaphore>,
    core: Mutex<Core>,
    /// Wakes the deadline watcher (`deadlines.rs`) for a publish due before it would wake.
    deadlines: Arc<Notify>,
    /// The connection task is handling events, not waiting in a poll: it looks at the batch before
    /// it waits again, so a publish made now is held for that write (the core's `holds`).
    writer_awake: AtomicBool,
    stop: watch::Sender<Stop>,
    /// The connection's status, as the connection task publishes it.
    connection: watch::Receiver<ConnectionState>,
    max_packet_size: usize,
    protocol: Protocol,
}

impl Requests {
    /// The request path for `sender`'s channel, with `config`'s limits.
    pub fn new(
        config: &MqttConfig,
        sender: Sender,
        connection: watch::Receiver<ConnectionState>,
    ) -> Self {
        Requests {
            sender,
            permits: Arc::new(Semaphore::new(config.max_pending)),
            core: Mutex::new(Core::default()),
            deadlines: Arc::new(Notify::new()),
            writer_awake: AtomicBool::new(false),
            stop: watch::channel(Stop::Running).0,
            connection,
            max_packet_size: config.max_packet_size,
            protocol: config.protocol,
        }
    }

    // --- publishing ---

    /// What can be known before sending: a valid topic, a packet that fits, properties only on
    /// MQTT 5.
    pub fn check(&self, msg: &OutPublish) -> Result<(), Error> {
        validate_topic(&msg.topic)?;
        // Fixed header (5) + topic length (2) + topic + packet id (2) + properties (rough bound).
        let size = msg.payload.len() + msg.topic.len() + 9;
        if size > self.max_packet_size {
            return Err(Error::PayloadTooLarge {
                size: msg.payload.len(),
                max: self.max_packet_size,
            });
        }
        if msg.properties.is_some() && self.protocol == Protocol::V311 {
            return Err(Error::PropertiesNeedV5);
        }
        Ok(())
    }

    /// Sends `msg` and waits for the acknowledgement (up to `timeout`). A method of the request
    /// path rather than of a handle, so a background task can publish without keeping the client
    /// alive.
    pub async fn publish(
        &self,
        msg: OutPublish,
        timeout: Option<Duration>,
    ) -> Result<Published, Error> {
        self.check(&msg)?;
        self.publish_checked(msg, timeout).await
    }

    /// [`publish`](Self::publish) for a message that passed [`check`](Self::check).
    pub async fn publish_checked(
        &self,
        msg: OutPublish,
        timeout: Option<Duration>,
    ) -> Result<Published, Error> {
        let Some(deadline) = timeout.and_then(Deadline::after) else {
            return self.enqueue(msg).await?.await.map_err(|_| Error::Closed)?;
        };
        // The ack is awaited without a timer of its own: the deadline watcher answers at the
        // deadline (`deadlines.rs`). Only the rarer wait for a request permit takes a timer.
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(Error::Closed),
            Err(TryAcquireError::NoPermits) => tokio::time::timeout_at(deadline.at, self.permit())
                .await
                .map_err(|_| Error::Timeout(deadline.after))??,
        };
        let (tx, rx) = oneshot::channel();
        self.push(msg, permit, Some(tx), Some(deadline))?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Queues a checked QoS 0 publish without waiting, when the client is connected and a request
    /// permit is free. Its entry in the core has no reply: the connection task counts it when
    /// written.
    pub fn queue_now(&self, msg: OutPublish) -> Now {
        if self.connection.borrow().status != Status::Connected {
            return Now::Wait(msg);
        }
        // `try_acquire` takes no permit while callers wait in line, so order is kept.
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return Now::Wait(msg);
        };
        let qos = msg.qos;
        Now::Queued(
            self.push(msg, permit, None, None)
                .map(|()| Published { mid: 0, qos }),
        )
    }

    /// Puts a checked publish into the request channel (waiting for room) and returns the receiver
    /// of its acknowledgement. Publishes enqueued one after the other go out in that order.
    pub async fn enqueue(
        &self,
        msg: OutPublish,
    ) -> Result<oneshot::Receiver<Result<Published, Error>>, Error> {
        let permit = self.permit().await?;
        let (tx, rx) = oneshot::channel();
        self.push(msg, permit, Some(tx), None)?;
        Ok(rx)
    }

    /// Puts a publish that holds its permit into rumqttc's channel (or the core's batch) and its
    /// waiter into the core, under the core's lock: the order of the two is the order the
    /// connection task matches them in.
    fn push(
        &self,
        msg: OutPublish,
        permit: OwnedSemaphorePermit,
        reply: Option<PubReply>,
        deadline: Option<Deadline>,
    ) -> Result<(), Error> {
        if self.stopping() {
            return Err(Error::Closed);
        }
        let waiter = PubWaiter {
            reply,
            qos: msg.qos,
            received: false,
            deadline,
            _permit: Some(permit),
        };
        let mut core = self.core();
        // Read under the core's lock, which the connection task clears the flag under before it
        // waits in a poll: read before it, a stale `true` would hold this publish in a batch that
        // nobody writes until the next event (in a burst, up to the publish's timeout).
        let writer_awake = self.writer_awake.load(Ordering::Relaxed);
        let wake = core.request_publish(msg, waiter, writer_awake, |msg| {
            self.sender.try_publish(msg)
        })?;
        drop(core);
        if wake {
            // Stores a wake-up when the watcher is not waiting yet: none is lost.
            self.deadlines.notify_one();
        }
        Ok(())
    }

    // --- subscribing ---

    /// Sends a SUBSCRIBE and waits for its SUBACK; `stream`: the new stream it is made for.
    pub async fn subscribe(
        &self,
        filters: Vec<(String, QoS)>,
        stream: Option<std::sync::Weak<Slot>>,
    ) -> Result<Vec<SubCode>, Error> {
        let permit = self.permit().await?;
        let (tx, rx) = oneshot::channel();
        let waiter = SubWaiter {
            filters,
            reply: Some(tx),
            attached: Vec::new(),
            stream,
            _permit: Some(permit),
        };
        self.core()
            .request_subscribe(waiter, |w| self.sender.try_subscribe(&w.filters))?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Sends an UNSUBSCRIBE and waits for its UNSUBACK.
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), Error> {
        let permit = self.permit().await?;
        let (tx, rx) = oneshot::channel();
        let waiter = UnsubWaiter {
            filters: vec![filter.to_string()],
            reply: Some(tx),
            _permit: Some(permit),
        };
        self.core()
            .request_unsubscribe(waiter, |_| self.sender.try_unsubscribe(filter))?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Waits for room for one more request (`MAX_PENDING`).
    ///
    /// Requests go out in the order their futures are first polled. tokio's cooperative budget
    /// would make an acquisition yield although a permit is free (after 128 operations in one task
    /// poll), and `join_all` then polls the rest again in reverse order: concurrent publishes would
    /// reach the broker out of order. So the acquisition is unconstrained: it waits only when no
    /// permit is free, and then in line (the semaphore is fair).
    async fn permit(&self) -> Result<OwnedSemaphorePermit, Error> {
        tokio::task::unconstrained(self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Error::Closed)
    }

    // --- the connection task's side ---

    /// The protocol core, locked (the connection task feeds it what it reads and writes).
    pub fn core(&self) -> MutexGuard<'_, Core> {
        lock(&self.core)
    }

    /// The connection task is handling events (`true`) or about to wait in a poll (`false`, set
    /// with the core locked, which is where the handles read it). Stored only when it changes: a
    /// write per event would pull the flag's cache line away from the handles on the other core.
    pub fn set_writer_awake(&self, awake: bool) {
        if self.writer_awake.load(Ordering::Relaxed) != awake {
            self.writer_awake.store(awake, Ordering::Relaxed);
        }
    }

    /// The deadline watcher's wake-up (`deadlines.rs`).
    pub fn deadline_wakeup(&self) -> Arc<Notify> {
        self.deadlines.clone()
    }

    /// No more requests: the ones waiting for a permit and the ones in the core fail with
    /// [`Error::Closed`].
    pub fn close(&self) {
        self.permits.close();
        self.core().fail_all(&Error::Closed);
    }

    // --- stopping ---

    /// Asks the client to stop: `Graceful` only from running (a drop is never downgraded),
    /// `Dropped` always.
    pub fn begin_stop(&self, how: Stop) {
        self.stop.send_if_modified(|s| {
            let change = *s != how && (*s == Stop::Running || how == Stop::Dropped);
            if change {
                *s = how;
            }
            change
        });
    }

    /// True once the client was asked to stop.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow() != Stop::Running
    }

    /// Follows the stop state (the connection task and the background tasks end on it).
    pub fn watch_stop(&self) -> watch::Receiver<Stop> {
        self.stop.subscribe()
    }

    /// Queues a DISCONNECT. Its failure means the connection task is gone already.
    pub fn disconnect(&self) {
        let _ = self.sender.try_disconnect();
    }

    /// Queues a DISCONNECT when no request waits for the broker any more; true when it did.
    pub fn disconnect_when_idle(&self) -> bool {
        let idle = self.core().outstanding() == 0;
        if idle {
            self.disconnect();
        }
        idle
    }
}
