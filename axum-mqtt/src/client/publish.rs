//! [`Publish`]: a publish being prepared, sent when awaited, resolved on the broker's ack.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{oneshot, OwnedSemaphorePermit, TryAcquireError};

use super::core::deadlines::Deadline;
use super::core::packet::OutPublish;
use super::core::waiters::{PubReply, PubWaiter};
use super::events::{Published, Status};
use super::shared::{Shared, Stop};
use crate::config::Protocol;
use crate::message::{Properties, QoS};
use crate::topic::validate_topic;
use crate::Error;

/// A publish being prepared; `.await` it (or call [`send`](Self::send)) to send it and wait for the
/// broker's acknowledgement.
#[must_use = "a publish does nothing until awaited"]
pub struct Publish<'a> {
    shared: &'a Shared,
    msg: OutPublish,
    timeout: Option<Duration>,
    when_queued: bool,
}

impl<'a> Publish<'a> {
    pub(crate) fn new(shared: &'a Shared, msg: OutPublish) -> Self {
        Publish {
            shared,
            msg,
            timeout: None,
            when_queued: false,
        }
    }

    /// At QoS 0 on a connected client with room in the request queue: resolve once queued, not
    /// when written. At QoS 0 the write tells the caller nothing more (no ack follows, and a
    /// publish caught by a disconnect is re-sent either way), and not waiting for it saves the
    /// caller a task wake-up per publish. Otherwise (QoS 1/2, not connected, queue full) the
    /// publish waits as usual.
    pub(crate) fn when_queued(mut self) -> Self {
        self.when_queued = true;
        self
    }

    /// QoS (default 0).
    pub fn qos(mut self, qos: QoS) -> Self {
        self.msg.qos = qos;
        self
    }

    /// Retain flag (default false).
    pub fn retain(mut self, retain: bool) -> Self {
        self.msg.retain = retain;
        self
    }

    /// MQTT 5 properties; on an MQTT 3.1.1 client this fails with [`Error::PropertiesNeedV5`].
    pub fn properties(mut self, properties: Properties) -> Self {
        self.msg.properties = Some(properties);
        self
    }

    /// Gives up waiting after `d` with [`Error::Timeout`] (the message may still be delivered).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Sends and waits for the acknowledgement.
    pub async fn send(self) -> Result<Published, Error> {
        let shared = self.shared;
        check(shared, &self.msg)?;
        let msg = if self.when_queued && self.msg.qos == QoS::AtMostOnce {
            match queue_now(shared, self.msg) {
                Now::Queued(res) => return res,
                Now::Wait(msg) => msg,
            }
        } else {
            self.msg
        };
        send_checked(shared, msg, self.timeout).await
    }

    /// Queues a QoS 0 publish now, without waiting, when the client is connected and the request
    /// queue has room: `Some(Ok(..))` once queued (QoS 0 has no acknowledgement to wait for), or
    /// `Some(Err(..))` for a publish that can never be sent (invalid topic, too large, properties on
    /// MQTT 3.1.1). `None`, with the publish left as it was, when it would have to wait (QoS 1/2,
    /// not connected, queue full): `.await` it then. For callers that must not block, such as a
    /// thread of another language's runtime.
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) -> Result<(), axum_mqtt::Error> {
    /// let mut publish = mqtt.publish("metrics/load", "0.42");
    /// match publish.try_send_now() {
    ///     Some(done) => { done?; }
    ///     None => { publish.await?; } // wait for a connection or for room
    /// }
    /// # Ok(()) }
    /// ```
    pub fn try_send_now(&mut self) -> Option<Result<Published, Error>> {
        if self.msg.qos != QoS::AtMostOnce {
            return None;
        }
        let shared = self.shared;
        if let Err(e) = check(shared, &self.msg) {
            return Some(Err(e));
        }
        let msg = std::mem::replace(
            &mut self.msg,
            OutPublish {
                topic: String::new(),
                payload: Bytes::new(),
                qos: QoS::AtMostOnce,
                retain: false,
                properties: None,
            },
        );
        match queue_now(shared, msg) {
            Now::Queued(res) => Some(res),
            Now::Wait(msg) => {
                self.msg = msg;
                None
            }
        }
    }

    /// Through the outbox: stored on disk before anything is sent, resolved on the broker's ack
    /// or, when the broker cannot be reached in time, as
    /// [`Delivery::Queued`](super::outbox::Delivery::Queued); see
    /// [`Outbox`](crate::Outbox). QoS 1 or 2 only.
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) -> Result<(), axum_mqtt::Error> {
    /// use axum_mqtt::{Delivery, QoS};
    /// match mqtt.publish("orders/42", "paid").qos(QoS::AtLeastOnce).durable().await? {
    ///     Delivery::Acked(ack) => println!("broker has it: {}", ack.mid),
    ///     Delivery::Queued { id } => println!("stored as {id}; it goes out when the broker is back"),
    /// }
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "outbox")]
    pub async fn durable(self) -> Result<super::outbox::Delivery, Error> {
        let shared = self.shared;
        check(shared, &self.msg)?;
        let outbox = shared.outbox.as_ref().ok_or(Error::NoOutbox)?;
        outbox.publish(shared, self.msg, self.timeout).await
    }
}

/// What can be known before sending: a valid topic, a packet that fits, properties only on MQTT 5.
pub(super) fn check(shared: &Shared, msg: &OutPublish) -> Result<(), Error> {
    validate_topic(&msg.topic)?;
    // Fixed header (5) + topic length (2) + topic + packet id (2) + properties (rough bound).
    let size = msg.payload.len() + msg.topic.len() + 9;
    let max = shared.config.max_packet_size;
    if size > max {
        return Err(Error::PayloadTooLarge {
            size: msg.payload.len(),
            max,
        });
    }
    if msg.properties.is_some() && shared.config.protocol == Protocol::V311 {
        return Err(Error::PropertiesNeedV5);
    }
    Ok(())
}

/// Sends `msg` and waits for the acknowledgement (up to `timeout`). A function of the shared state
/// rather than of a handle, so a background task can publish without keeping the client alive.
pub(crate) async fn send(
    shared: &Shared,
    msg: OutPublish,
    timeout: Option<Duration>,
) -> Result<Published, Error> {
    check(shared, &msg)?;
    send_checked(shared, msg, timeout).await
}

/// [`send`] for a publish that passed [`check`].
async fn send_checked(
    shared: &Shared,
    msg: OutPublish,
    timeout: Option<Duration>,
) -> Result<Published, Error> {
    let Some(deadline) = timeout.and_then(Deadline::after) else {
        return enqueue(shared, msg)
            .await?
            .await
            .map_err(|_| Error::Closed)?;
    };
    // The ack is awaited without a timer of its own: the deadline watcher answers at the deadline
    // (`deadlines.rs`). Only the rarer wait for a request permit takes a timer.
    let permit = match shared.permits.clone().try_acquire_owned() {
        Ok(permit) => permit,
        Err(TryAcquireError::Closed) => return Err(Error::Closed),
        Err(TryAcquireError::NoPermits) => tokio::time::timeout_at(deadline.at, shared.permit())
            .await
            .map_err(|_| Error::Timeout(deadline.after))??,
    };
    let (tx, rx) = oneshot::channel();
    push(shared, msg, permit, Some(tx), Some(deadline))?;
    rx.await.map_err(|_| Error::Closed)?
}

/// What [`queue_now`] did.
enum Now {
    /// Queued (or failed for good): the answer.
    Queued(Result<Published, Error>),
    /// Not connected, or no room: the publish, handed back to wait as usual.
    Wait(OutPublish),
}

/// Queues a checked QoS 0 publish without waiting, when the client is connected and a request
/// permit is free. Its book entry has no reply: the connection task counts it when written.
fn queue_now(shared: &Shared, msg: OutPublish) -> Now {
    if shared.state.borrow().status != Status::Connected {
        return Now::Wait(msg);
    }
    // `try_acquire` takes no permit while callers wait in line, so order is kept.
    let Ok(permit) = shared.permits.clone().try_acquire_owned() else {
        return Now::Wait(msg);
    };
    let qos = msg.qos;
    Now::Queued(push(shared, msg, permit, None, None).map(|()| Published { mid: 0, qos }))
}

/// Puts a checked publish into the request channel (waiting for room) and returns the receiver of
/// its acknowledgement. Publishes enqueued one after the other go out in that order.
pub(super) async fn enqueue(
    shared: &Shared,
    msg: OutPublish,
) -> Result<oneshot::Receiver<Result<Published, Error>>, Error> {
    let permit = shared.permit().await?;
    let (tx, rx) = oneshot::channel();
    push(shared, msg, permit, Some(tx), None)?;
    Ok(rx)
}

/// Puts a publish that holds its permit into rumqttc's channel (or the book's batch, see
/// [`Batch`](super::book::Batch)) and its waiter into the book, under the book's lock: the order of
/// the two is the order the connection task matches them in.
fn push(
    shared: &Shared,
    msg: OutPublish,
    permit: OwnedSemaphorePermit,
    reply: Option<PubReply>,
    deadline: Option<Deadline>,
) -> Result<(), Error> {
    if *shared.stop.borrow() != Stop::Running {
        return Err(Error::Closed);
    }
    let qos = msg.qos;
    let waiter = PubWaiter {
        reply,
        qos,
        received: false,
        deadline,
        _permit: Some(permit),
    };
    let writer_awake = shared.writer_awake.load(Ordering::Relaxed);
    let wake = Shared::lock(&shared.core).request_publish(msg, waiter, writer_awake, |msg| {
        shared.sender.try_publish(msg)
    })?;
    if wake {
        // Stores a wake-up when the watcher is not waiting yet: none is lost.
        shared.deadlines.notify_one();
    }
    Ok(())
}

impl<'a> IntoFuture for Publish<'a> {
    type Output = Result<Published, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}
