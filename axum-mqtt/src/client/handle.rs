//! [`Mqtt`]: the handle users hold. Cheap to clone; every method talks to the connection task
//! through the shared state.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::core::packet::OutPublish;
use super::events::{ConnectionState, Status};
use super::lock::lock;
use super::publish::Publish;
use super::registry::Holder;
use super::requests::Stop;
use super::shared::{Inner, Shared};
use super::slot::Slot;
use super::stats::Stats;
use super::stream::MessageStream;
use crate::config::Protocol;
use crate::message::{Message, Properties, QoS};
use crate::topic::validate_filter;
use crate::Error;

/// A handle to one MQTT client. Cheap to clone; use it as axum `State`.
///
/// ```no_run
/// use axum_mqtt::{Mqtt, MqttConfig, QoS};
///
/// # async fn demo() -> Result<(), axum_mqtt::Error> {
/// let mqtt = Mqtt::start(MqttConfig::from_env()?).await?;
/// let ack = mqtt.publish("greetings", "hello").qos(QoS::AtLeastOnce).await?;
/// println!("broker acknowledged message {}", ack.mid);
/// let granted = mqtt.subscribe("greetings/#", QoS::AtLeastOnce).await?;
/// mqtt.shutdown(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Mqtt {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Mqtt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mqtt")
            .field("client_id", &self.state().client_id)
            .field("status", &self.state().status)
            .finish()
    }
}

impl Mqtt {
    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Publishes a message. Await the result to know the broker has it; see [`Publish`].
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) -> Result<(), axum_mqtt::Error> {
    /// use axum_mqtt::QoS;
    /// mqtt.publish("lights/kitchen", "on").qos(QoS::ExactlyOnce).retain(true).await?;
    /// # Ok(()) }
    /// ```
    pub fn publish(&self, topic: impl Into<String>, payload: impl Into<Bytes>) -> Publish<'_> {
        Publish::new(
            self.shared(),
            OutPublish {
                topic: topic.into(),
                payload: payload.into(),
                qos: QoS::AtMostOnce,
                retain: false,
                properties: None,
            },
        )
    }

    /// Subscribes to a filter and returns the QoS the broker granted.
    ///
    /// The subscription is remembered and restored after reconnects until [`unsubscribe`](Self::unsubscribe).
    /// A refusal by the broker is [`Error::Refused`] (and nothing is remembered).
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) -> Result<(), axum_mqtt::Error> {
    /// let granted = mqtt.subscribe("sensors/+/temperature", axum_mqtt::QoS::AtLeastOnce).await?;
    /// assert!(granted <= axum_mqtt::QoS::AtLeastOnce);
    /// # Ok(()) }
    /// ```
    pub async fn subscribe(&self, filter: &str, qos: QoS) -> Result<QoS, Error> {
        validate_filter(filter)?;
        lock(&self.shared().registry).add(filter, Holder::Explicit, qos);
        let codes = self
            .shared()
            .requests
            .subscribe(vec![(filter.to_string(), qos)], None)
            .await;
        let res = match codes {
            Ok(codes) => match codes.into_iter().next() {
                Some(Ok(q)) => Ok(q),
                Some(Err(code)) => Err(Error::Refused(code)),
                None => Err(Error::MissingSubackCode),
            },
            Err(e) => Err(e),
        };
        if matches!(res, Err(Error::Refused(_) | Error::MissingSubackCode)) {
            lock(&self.shared().registry).remove(filter, Holder::Explicit);
        }
        res
    }

    /// Unsubscribes a filter made with [`subscribe`](Self::subscribe). When a route or a live stream
    /// still uses the same filter, the broker subscription stays for them.
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) -> Result<(), axum_mqtt::Error> {
    /// mqtt.unsubscribe("sensors/+/temperature").await?;
    /// # Ok(()) }
    /// ```
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), Error> {
        validate_filter(filter)?;
        let gone = lock(&self.shared().registry).remove(filter, Holder::Explicit);
        if gone {
            self.shared().requests.unsubscribe(filter).await?;
        }
        Ok(())
    }

    /// Unsubscribes everything made with [`subscribe`](Self::subscribe) (routes and streams stay).
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) -> Result<(), axum_mqtt::Error> {
    /// mqtt.unsubscribe_all().await?;
    /// // subscriptions() still lists the filters held by routes and live streams
    /// # Ok(()) }
    /// ```
    pub async fn unsubscribe_all(&self) -> Result<(), Error> {
        let filters = lock(&self.shared().registry).explicit();
        for f in filters {
            self.unsubscribe(&f).await?;
        }
        Ok(())
    }

    /// Every subscription in force (routes, `subscribe` calls and streams) with its QoS.
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) -> Result<(), axum_mqtt::Error> {
    /// for (filter, qos) in mqtt.subscriptions() {
    ///     println!("{filter} at {qos:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn subscriptions(&self) -> Vec<(String, QoS)> {
        lock(&self.shared().registry).all()
    }

    /// Messages matching `filter`, as a stream (for SSE or WebSocket bridges). Unsubscribes when the
    /// last holder of the filter (streams, routes, `subscribe` calls) is gone.
    ///
    /// Like a direct MQTT subscriber, every new stream first gets the retained messages of its
    /// filter (with [`Message::retain`] set), whether or not the filter was already held; streams
    /// already open do not get them again. (The client subscribes again and hands the retained
    /// messages that answer this SUBSCRIBE to this stream only.)
    ///
    /// The stream buffers up to `capacity` messages; past that it skips messages (counted in
    /// [`Stats::stream_dropped`] and on the stream) rather than slowing the client.
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) -> Result<(), axum_mqtt::Error> {
    /// use futures_util::StreamExt;
    /// let mut s = mqtt.stream("sensors/#", axum_mqtt::QoS::AtMostOnce, 64).await?;
    /// while let Some(msg) = s.next().await {
    ///     println!("{}: {:?}", msg.topic(), msg.payload());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn stream(
        &self,
        filter: &str,
        qos: QoS,
        capacity: usize,
    ) -> Result<MessageStream, Error> {
        validate_filter(filter)?;
        let mqtt = self.clone();
        let release = Box::new(move |slot: &std::sync::Weak<Slot>, filter: &str| {
            mqtt.release_stream(slot, filter)
        });
        let (stream, slot) = MessageStream::new(release, filter, capacity)?;
        let weak = Arc::downgrade(&slot);
        self.shared().streams.add(slot);
        let (need, held) = {
            let mut registry = lock(&self.shared().registry);
            let need = registry.add(filter, Holder::Stream, qos);
            (need, registry.qos(filter))
        };
        // The broker sends retained messages to a new subscription only. When the filter is
        // already held (by a route, a `subscribe` call or another stream), subscribing again makes
        // it send them once more; the connection task hands them to this stream alone, so earlier
        // holders see no duplicate. A shared subscription gets no retained messages at all.
        let again = held.filter(|_| need.is_none() && !filter.starts_with("$share/"));
        if let Some(q) = need.or(again) {
            let codes = self
                .shared()
                .requests
                .subscribe(vec![(filter.to_string(), q)], Some(weak))
                .await?;
            // On an error, dropping `stream` releases the filter.
            match codes.into_iter().next() {
                Some(Ok(_)) => {}
                Some(Err(code)) => return Err(Error::Refused(code)),
                None => return Err(Error::MissingSubackCode),
            }
        }
        Ok(stream)
    }

    /// The current connection state.
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) -> Result<(), axum_mqtt::Error> {
    /// let s = mqtt.state();
    /// println!("{:?} after {} connects, last error {:?}", s.status, s.connects, s.last_error);
    /// # Ok(()) }
    /// ```
    pub fn state(&self) -> ConnectionState {
        self.shared().state.borrow().clone()
    }

    /// Waits until connected, or until `timeout` passes (returns the state either way).
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) -> Result<(), axum_mqtt::Error> {
    /// let s = mqtt.wait_connected(std::time::Duration::from_secs(5)).await;
    /// if s.status != axum_mqtt::Status::Connected {
    ///     eprintln!("still not connected: {:?}", s.last_error);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn wait_connected(&self, timeout: Duration) -> ConnectionState {
        let mut rx = self.shared().state.subscribe();
        let _ = tokio::time::timeout(
            timeout,
            rx.wait_for(|s| matches!(s.status, Status::Connected | Status::Stopped)),
        )
        .await;
        self.state()
    }

    /// A receiver of connection state changes (e.g. for a live indicator).
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) -> Result<(), axum_mqtt::Error> {
    /// let mut rx = mqtt.watch_state();
    /// while rx.changed().await.is_ok() {
    ///     println!("now {:?}", rx.borrow().status);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn watch_state(&self) -> watch::Receiver<ConnectionState> {
        self.shared().state.subscribe()
    }

    /// Counters since start.
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) -> Result<(), axum_mqtt::Error> {
    /// let s = mqtt.stats();
    /// println!("{} received, {} handled", s.received, s.handled);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Stats {
        self.shared().counters.snapshot()
    }

    /// The durable outbox, when the client was started with one (`MQTT_OUTBOX_PATH`; feature
    /// `outbox`). Publish through it with [`Publish::durable`].
    ///
    /// ```no_run
    /// # fn demo(mqtt: axum_mqtt::Mqtt) {
    /// if let Some(outbox) = mqtt.outbox() {
    ///     println!("{} messages wait in {}", outbox.depth().messages, outbox.path().display());
    /// }
    /// # }
    /// ```
    #[cfg(feature = "outbox")]
    pub fn outbox(&self) -> Option<&super::outbox::Outbox> {
        self.shared().outbox.as_ref()
    }

    /// The protocol version in use.
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) -> Result<(), axum_mqtt::Error> {
    /// if mqtt.protocol() == axum_mqtt::Protocol::V5 {
    ///     // MQTT 5 properties and `request()` are available
    /// }
    /// # Ok(()) }
    /// ```
    pub fn protocol(&self) -> Protocol {
        self.shared().config.protocol
    }

    /// Shuts down gracefully: waits (up to `deadline`) for in-flight publishes to be acknowledged,
    /// sends DISCONNECT (so the broker does not publish the will) and stops the connection task.
    /// Requests still waiting then fail with [`Error::Closed`]. Idempotent.
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) -> Result<(), axum_mqtt::Error> {
    /// mqtt.shutdown(std::time::Duration::from_secs(5)).await;
    /// assert_eq!(mqtt.state().status, axum_mqtt::Status::Stopped);
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self, deadline: Duration) {
        let shared = &self.inner.shared;
        shared.requests.begin_stop(Stop::Graceful);
        shared.requests.disconnect_when_idle();
        let mut rx = shared.state.subscribe();
        let stopped = rx.wait_for(|s| s.status == Status::Stopped);
        if tokio::time::timeout(deadline, stopped).await.is_err() {
            // Acks did not come in time: disconnect anyway, and give the task a moment to finish.
            shared.requests.disconnect();
            let mut rx = shared.state.subscribe();
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                rx.wait_for(|s| s.status == Status::Stopped),
            )
            .await;
        }
    }

    /// Publishes a request (QoS 1) with a fresh response topic and correlation data, and waits up to
    /// `timeout` for the reply. Needs MQTT 5 ([`Error::PropertiesNeedV5`] otherwise). The other
    /// side answers with a [`Responder`](crate::rpc::Responder).
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) -> Result<(), axum_mqtt::Error> {
    /// let reply = mqtt.request("service/echo", "hi", std::time::Duration::from_secs(5)).await?;
    /// println!("{:?}", reply.payload_str());
    /// # Ok(()) }
    /// ```
    pub async fn request(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Message, Error> {
        if self.protocol() != Protocol::V5 {
            return Err(Error::PropertiesNeedV5);
        }
        let id = format!("{:016x}", fastrand::u64(..));
        let reply_topic = format!(
            "_reply/{}/{id}",
            self.state().client_id.replace(['+', '#', '/'], "_")
        );
        let wait = async {
            // Subscribed before the request goes out, so a fast reply cannot be missed.
            let mut replies = self.stream(&reply_topic, QoS::AtLeastOnce, 4).await?;
            let props = Properties {
                response_topic: Some(reply_topic.clone()),
                correlation_data: Some(Bytes::from(id.clone())),
                ..Default::default()
            };
            self.publish(topic, payload)
                .qos(QoS::AtLeastOnce)
                .properties(props)
                .await?;
            while let Some(m) = replies.recv().await {
                let matches = m
                    .properties()
                    .and_then(|p| p.correlation_data.as_ref())
                    .is_none_or(|c| c.as_ref() == id.as_bytes());
                if matches {
                    return Ok(m);
                }
            }
            Err(Error::Closed)
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }

    /// Releases a stream's hold on its filter (from `MessageStream::drop`).
    pub(crate) fn release_stream(&self, slot: &std::sync::Weak<Slot>, filter: &str) {
        let shared = self.shared();
        shared.streams.remove(slot);
        let gone = lock(&shared.registry).remove(filter, Holder::Stream);
        if gone {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let mqtt = self.clone();
                let filter = filter.to_string();
                rt.spawn(async move {
                    if let Err(e) = mqtt.shared().requests.unsubscribe(&filter).await {
                        tracing::debug!(%filter, error = %e, "unsubscribe after the last stream ended failed");
                    }
                });
            }
        }
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Mqtt {
        Mqtt { inner }
    }
}
