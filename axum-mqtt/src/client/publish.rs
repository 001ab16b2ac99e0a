//! [`Publish`]: a publish being prepared, sent when awaited, resolved on the broker's ack.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;

use super::core::packet::OutPublish;
use super::events::Published;
use super::requests::Now;
use super::shared::Shared;
use crate::message::{Properties, QoS};
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
        let requests = &self.shared.requests;
        requests.check(&self.msg)?;
        let msg = if self.when_queued && self.msg.qos == QoS::AtMostOnce {
            match requests.queue_now(self.msg) {
                Now::Queued(res) => return res,
                Now::Wait(msg) => msg,
            }
        } else {
            self.msg
        };
        requests.publish_checked(msg, self.timeout).await
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
        let requests = &self.shared.requests;
        if let Err(e) = requests.check(&self.msg) {
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
        match requests.queue_now(msg) {
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
        shared.requests.check(&self.msg)?;
        let outbox = shared.outbox.as_ref().ok_or(Error::NoOutbox)?;
        outbox
            .publish(shared.state.subscribe(), self.msg, self.timeout)
            .await
    }
}

impl<'a> IntoFuture for Publish<'a> {
    type Output = Result<Published, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}
