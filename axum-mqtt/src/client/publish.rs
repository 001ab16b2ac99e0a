//! [`Publish`]: a publish being prepared, sent when awaited, resolved on the broker's ack.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::oneshot;

use super::book::PubWaiter;
use super::events::Published;
use super::handle::Mqtt;
use super::link::OutPublish;
use super::shared::{Shared, Stop};
use crate::config::Protocol;
use crate::message::{Properties, QoS};
use crate::topic::validate_topic;
use crate::Error;

/// A publish being prepared; `.await` it (or call [`send`](Self::send)) to send it and wait for the
/// broker's acknowledgement.
#[must_use = "a publish does nothing until awaited"]
pub struct Publish<'a> {
    mqtt: &'a Mqtt,
    msg: OutPublish,
    timeout: Option<Duration>,
}

impl<'a> Publish<'a> {
    pub(crate) fn new(mqtt: &'a Mqtt, msg: OutPublish) -> Self {
        Publish {
            mqtt,
            msg,
            timeout: None,
        }
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
        send(self.mqtt.shared(), self.msg, self.timeout).await
    }

    /// Through the outbox: stored on disk before anything is sent, resolved on the broker's ack
    /// or, when the broker cannot be reached in time, as [`Delivery::Queued`]; see
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
        let shared = self.mqtt.shared();
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
    let wait = async {
        enqueue(shared, msg)
            .await?
            .await
            .map_err(|_| Error::Closed)?
    };
    match timeout {
        Some(d) => tokio::time::timeout(d, wait)
            .await
            .map_err(|_| Error::Timeout(d))?,
        None => wait.await,
    }
}

/// Puts a checked publish into the request channel (waiting for room) and returns the receiver of
/// its acknowledgement. Publishes enqueued one after the other go out in that order.
pub(super) async fn enqueue(
    shared: &Shared,
    msg: OutPublish,
) -> Result<oneshot::Receiver<Result<Published, Error>>, Error> {
    let permit = shared.permit().await?;
    if *shared.stop.borrow() != Stop::Running {
        return Err(Error::Closed);
    }
    let (tx, rx) = oneshot::channel();
    let mut book = Shared::lock(&shared.book);
    let qos = msg.qos;
    shared.sender.try_publish(msg)?;
    book.pubs.queued.push_back(PubWaiter {
        reply: Some(tx),
        qos,
        received: false,
        _permit: Some(permit),
    });
    Ok(rx)
}

impl<'a> IntoFuture for Publish<'a> {
    type Output = Result<Published, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}
