//! The client: one background task owns the connection; [`Mqtt`] handles talk to it.
//!
//! * `publish(...).await` resolves when the broker acknowledged (PUBACK for QoS 1, PUBCOMP for
//!   QoS 2; for QoS 0 when written to the socket), or fails with a typed [`Error`].
//! * Subscriptions live in a registry and are restored after every reconnect on which the broker
//!   lost the session; publishes caught by a disconnect are re-sent.
//! * Reconnects use capped exponential backoff with jitter (`RECONNECT_MIN_MS`..`RECONNECT_MAX_MS`).
//!
//! **Backpressure.** At most `MAX_PENDING` publish/subscribe requests wait for the broker; the next
//! `publish` waits for room (so a slow broker slows producers instead of growing memory). Incoming
//! messages go to `HANDLER_CONCURRENCY` lanes of `HANDLER_QUEUE` messages each (one lane per topic
//! hash, which keeps order per topic); when a lane is full the client stops reading from the broker,
//! and TCP backpressure reaches the broker. A stream ([`Mqtt::stream`]) that is not read fast enough
//! skips messages (counted in [`Stats::stream_dropped`]) instead of slowing anyone.

mod book;
mod connection;
mod dispatch;
pub mod events;
pub(crate) mod link;
mod registry;
mod stream;
mod tls;

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{oneshot, watch, Semaphore};

pub use events::{
    Connack, ConnectionState, Disconnected, Published, Status, Subscribed, Unsubscribed,
};
pub use stream::MessageStream;

use self::book::{Book, PubWaiter, SubWaiter, UnsubWaiter};
use self::dispatch::Callbacks;
use self::link::{Link, OutPublish, Sender};
use self::registry::{Holder, Registry};
use crate::config::{MqttConfig, Protocol};
use crate::message::{Properties, QoS};
use crate::router::{Handler, Router};
use crate::topic::{validate_filter, validate_topic};
use crate::Error;

/// Counters of one client, for metrics.
///
/// ```
/// # async fn demo(mqtt: axum_mqtt::Mqtt) {
/// let s = mqtt.stats();
/// println!("{} received, {} rejected", s.received, s.rejected);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Messages received from the broker.
    pub received: u64,
    /// Handler calls that returned `Ok`.
    pub handled: u64,
    /// Messages whose extraction failed (see [`Rejection`](crate::extract::Rejection)).
    pub rejected: u64,
    /// Handler calls that returned `Err`.
    pub handler_errors: u64,
    /// Handler calls that panicked (the client keeps running).
    pub handler_panics: u64,
    /// Messages a slow [`MessageStream`] reader missed.
    pub stream_dropped: u64,
    /// Publishes acknowledged by the broker.
    pub published: u64,
    /// Callback events dropped because callbacks fell behind.
    pub events_dropped: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub received: AtomicU64,
    pub handled: AtomicU64,
    pub rejected: AtomicU64,
    pub handler_errors: AtomicU64,
    pub handler_panics: AtomicU64,
    pub stream_dropped: AtomicU64,
    pub published: AtomicU64,
    pub events_dropped: AtomicU64,
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Client ids in use by running clients of this process, per broker: two clients with one id would
/// take each other's connection over in a loop (Flask-MQTT #64), so the second one is refused.
static CLIENT_IDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Released when the last handle is dropped or the connection task ends, whichever comes first.
pub(crate) struct ClientIdClaim(String, std::sync::atomic::AtomicBool);

impl ClientIdClaim {
    fn take(config: &MqttConfig, client_id: &str) -> Result<Self, Error> {
        let key = format!("{}:{}/{client_id}", config.broker_url, config.broker_port);
        let mut ids = Shared::lock(&CLIENT_IDS);
        if ids.contains(&key) {
            return Err(config
                .error(
                    "CLIENT_ID",
                    client_id,
                    "already used by another running client of this process for this broker; \
                     two clients with one id take each other's connection over",
                )
                .into());
        }
        ids.push(key.clone());
        Ok(ClientIdClaim(
            key,
            std::sync::atomic::AtomicBool::new(false),
        ))
    }

    fn release(&self) {
        if !self.1.swap(true, Ordering::SeqCst) {
            Shared::lock(&CLIENT_IDS).retain(|k| *k != self.0);
        }
    }
}

impl Drop for ClientIdClaim {
    fn drop(&mut self) {
        self.release();
    }
}

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
    pub book: Mutex<Book>,
    pub registry: Mutex<Registry>,
    pub state: watch::Sender<ConnectionState>,
    pub streams: RwLock<Vec<Arc<stream::Slot>>>,
    pub counters: Counters,
    pub stop: watch::Sender<Stop>,
    /// Patterns of routes that acknowledge after handling; empty when rumqttc acks by itself.
    pub ack_after: Vec<crate::topic::TopicPattern>,
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

    /// Locks a mutex, recovering from a panic elsewhere (the data stays consistent: every critical
    /// section here is panic free, but a poisoned lock must never take the client down).
    pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct Inner {
    shared: Arc<Shared>,
    claim: Arc<ClientIdClaim>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Last handle gone: leave cleanly (DISCONNECT, so the will is not published) and end the task.
        self.shared.stop.send_replace(Stop::Dropped);
        let _ = self.shared.sender.try_disconnect();
        self.claim.release();
    }
}

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
    /// Starts a client with no handlers: `Mqtt::builder(config).start()`.
    pub async fn start(config: MqttConfig) -> Result<Mqtt, Error> {
        Mqtt::builder(config).start().await
    }

    /// A builder to register handlers before the first connect, so none misses it.
    pub fn builder(config: MqttConfig) -> MqttBuilder {
        MqttBuilder {
            config,
            router: Router::new(),
            callbacks: Callbacks::default(),
        }
    }

    fn shared(&self) -> &Shared {
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
        Publish {
            mqtt: self,
            msg: OutPublish {
                topic: topic.into(),
                payload: payload.into(),
                qos: QoS::AtMostOnce,
                retain: false,
                properties: None,
            },
            timeout: None,
        }
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
        Shared::lock(&self.shared().registry).add(filter, Holder::Explicit, qos);
        let codes = self.send_subscribe(vec![(filter.to_string(), qos)]).await;
        let res = match codes {
            Ok(codes) => match codes.into_iter().next() {
                Some(Ok(q)) => Ok(q),
                Some(Err(reason)) => Err(Error::Refused(reason)),
                None => Err(Error::Refused("empty SUBACK".into())),
            },
            Err(e) => Err(e),
        };
        if matches!(res, Err(Error::Refused(_))) {
            Shared::lock(&self.shared().registry).remove(filter, Holder::Explicit);
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
        let gone = Shared::lock(&self.shared().registry).remove(filter, Holder::Explicit);
        if gone {
            self.send_unsubscribe(filter).await?;
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
        let filters = Shared::lock(&self.shared().registry).explicit();
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
        Shared::lock(&self.shared().registry).all()
    }

    /// Messages matching `filter`, as a stream (for SSE or WebSocket bridges). Subscribes when no one
    /// else holds the filter; unsubscribes when the last stream on it is dropped.
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
        let (stream, slot) = MessageStream::new(self.clone(), filter, capacity)?;
        self.shared()
            .streams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(slot);
        let need = Shared::lock(&self.shared().registry).add(filter, Holder::Stream, qos);
        if let Some(q) = need {
            let codes = self.send_subscribe(vec![(filter.to_string(), q)]).await?;
            if let Some(Err(reason)) = codes.into_iter().next() {
                return Err(Error::Refused(reason)); // dropping `stream` releases the filter
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
        let c = &self.shared().counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            received: g(&c.received),
            handled: g(&c.handled),
            rejected: g(&c.rejected),
            handler_errors: g(&c.handler_errors),
            handler_panics: g(&c.handler_panics),
            stream_dropped: g(&c.stream_dropped),
            published: g(&c.published),
            events_dropped: g(&c.events_dropped),
        }
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
        shared.stop.send_if_modified(|s| {
            let was = *s == Stop::Running;
            if was {
                *s = Stop::Graceful;
            }
            was
        });
        if Shared::lock(&shared.book).outstanding() == 0 {
            let _ = shared.sender.try_disconnect();
        }
        let sender = shared.sender.clone();
        let mut rx = shared.state.subscribe();
        let stopped = rx.wait_for(|s| s.status == Status::Stopped);
        if tokio::time::timeout(deadline, stopped).await.is_err() {
            // Acks did not come in time: disconnect anyway, and give the task a moment to finish.
            let _ = sender.try_disconnect();
            let mut rx = shared.state.subscribe();
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                rx.wait_for(|s| s.status == Status::Stopped),
            )
            .await;
        }
    }

    async fn send_subscribe(
        &self,
        filters: Vec<(String, QoS)>,
    ) -> Result<Vec<link::SubCode>, Error> {
        let shared = self.shared();
        let permit = shared.permit().await?;
        let (tx, rx) = oneshot::channel();
        {
            let mut book = Shared::lock(&shared.book);
            shared.sender.try_subscribe(&filters)?;
            book.subs.queued.push_back(SubWaiter {
                filters,
                reply: Some(tx),
                attached: Vec::new(),
                _permit: Some(permit),
            });
        }
        rx.await.map_err(|_| Error::Closed)?
    }

    async fn send_unsubscribe(&self, filter: &str) -> Result<(), Error> {
        let shared = self.shared();
        let permit = shared.permit().await?;
        let (tx, rx) = oneshot::channel();
        {
            let mut book = Shared::lock(&shared.book);
            shared.sender.try_unsubscribe(filter)?;
            book.unsubs.queued.push_back(UnsubWaiter {
                filters: vec![filter.to_string()],
                reply: Some(tx),
                _permit: Some(permit),
            });
        }
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Releases a stream's hold on its filter (from `MessageStream::drop`).
    pub(crate) fn release_stream(&self, slot: &std::sync::Weak<stream::Slot>, filter: &str) {
        let shared = self.shared();
        shared
            .streams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|s| !std::ptr::eq(Arc::as_ptr(s), slot.as_ptr()));
        let gone = Shared::lock(&shared.registry).remove(filter, Holder::Stream);
        if gone {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let mqtt = self.clone();
                let filter = filter.to_string();
                rt.spawn(async move {
                    if let Err(e) = mqtt.send_unsubscribe(&filter).await {
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

/// A publish being prepared; `.await` it (or call [`send`](Self::send)) to send it and wait for the
/// broker's acknowledgement.
#[must_use = "a publish does nothing until awaited"]
pub struct Publish<'a> {
    mqtt: &'a Mqtt,
    msg: OutPublish,
    timeout: Option<Duration>,
}

impl Publish<'_> {
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
        let shared = self.mqtt.shared();
        let msg = self.msg;
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
        let wait = async {
            let permit = shared.permit().await?;
            if *shared.stop.borrow() != Stop::Running {
                return Err(Error::Closed);
            }
            let (tx, rx) = oneshot::channel();
            {
                let mut book = Shared::lock(&shared.book);
                let qos = msg.qos;
                shared.sender.try_publish(msg)?;
                book.pubs.queued.push_back(PubWaiter {
                    reply: Some(tx),
                    qos,
                    received: false,
                    _permit: Some(permit),
                });
            }
            rx.await.map_err(|_| Error::Closed)?
        };
        match self.timeout {
            Some(d) => tokio::time::timeout(d, wait)
                .await
                .map_err(|_| Error::Timeout(d))?,
            None => wait.await,
        }
    }
}

impl<'a> IntoFuture for Publish<'a> {
    type Output = Result<Published, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// Registers handlers and callbacks, then starts the client.
///
/// Several handlers per event may be registered; all run, in registration order (Flask-MQTT keeps
/// only the last). Everything registered here is in place before the first connect.
///
/// ```no_run
/// use axum_mqtt::{Mqtt, MqttConfig, Router, extract::Text};
///
/// # async fn demo() -> Result<(), axum_mqtt::Error> {
/// let mqtt = Mqtt::builder(MqttConfig::from_env()?)
///     .on_connect(|_mqtt, ack| async move {
///         if ack.is_success() { println!("Connected successfully") }
///         else { println!("Bad connection. Code: {}", ack.code) }
///     })
///     .on_topic("home/+/temperature", |Text(t): Text| async move { println!("{t}") })
///     .router(Router::new().route("alarms/{zone}", |Text(t): Text| async move { eprintln!("{t}") }))
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
pub struct MqttBuilder {
    config: MqttConfig,
    router: Router,
    callbacks: Callbacks,
}

impl MqttBuilder {
    /// Adds a router's routes (merged with routes added before).
    pub fn router(mut self, router: Router) -> Self {
        self.router = self.router.merge(router);
        self
    }

    /// A handler for one filter (Flask-MQTT's `on_topic`); the filter is subscribed with QoS 1 on every
    /// connect. Takes the same extractors as router handlers.
    pub fn on_topic<H, T>(mut self, filter: &str, handler: H) -> Self
    where
        H: Handler<T, ()>,
        T: 'static,
    {
        self.router = self.router.route(filter, handler);
        self
    }

    /// A handler for every received message (Flask-MQTT's `on_message`); subscribes nothing.
    pub fn on_message<H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, ()>,
        T: 'static,
    {
        self.router = self.router.catch_all(handler);
        self
    }

    /// Called on every CONNACK, accepted or refused.
    pub fn on_connect<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Mqtt, Connack) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.callbacks
            .connect
            .push(Arc::new(move |m, e| Box::pin(f(m, e))));
        self
    }

    /// Called when a connection is lost or closed.
    pub fn on_disconnect<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Mqtt, Disconnected) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.callbacks
            .disconnect
            .push(Arc::new(move |m, e| Box::pin(f(m, e))));
        self
    }

    /// Called when the broker acknowledges one of our publishes.
    pub fn on_publish<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Mqtt, Published) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.callbacks
            .publish
            .push(Arc::new(move |m, e| Box::pin(f(m, e))));
        self
    }

    /// Called on every SUBACK.
    pub fn on_subscribe<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Mqtt, Subscribed) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.callbacks
            .subscribe
            .push(Arc::new(move |m, e| Box::pin(f(m, e))));
        self
    }

    /// Called on every UNSUBACK.
    pub fn on_unsubscribe<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Mqtt, Unsubscribed) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.callbacks
            .unsubscribe
            .push(Arc::new(move |m, e| Box::pin(f(m, e))));
        self
    }

    /// Validates everything and starts the connection task. Returns at once (the first connect
    /// happens in the background; see [`Mqtt::wait_connected`]). Must be called inside a tokio runtime.
    pub async fn start(self) -> Result<Mqtt, Error> {
        let MqttBuilder {
            config,
            mut router,
            callbacks,
        } = self;
        config.validate()?;
        if let Some(e) = router.take_errors().into_iter().next() {
            return Err(e);
        }
        let tls = tls::client_config(&config)?;
        let client_id = config.effective_client_id();
        let claim = Arc::new(ClientIdClaim::take(&config, &client_id)?);
        let group = router
            .shared_group()
            .map(str::to_string)
            .or_else(|| config.shared_group.clone());
        let subscriptions = router.subscriptions_with_group(group.as_deref());
        let table = router.into_table();
        let ack_after: Vec<_> = table
            .routes
            .iter()
            .filter(|r| r.ack_after)
            .filter_map(|r| r.pattern.clone())
            .collect();
        // Room for every permitted request, an ack per message the lanes can hold, and a DISCONNECT.
        let capacity = config.max_pending + config.handler_concurrency * config.handler_queue + 8;
        let (sender, link) = Link::new(&config, &client_id, capacity, tls, !ack_after.is_empty())?;
        let mut registry = Registry::default();
        for (f, q) in &subscriptions {
            registry.add(f, Holder::Route, *q);
        }
        let (state, _) = watch::channel(ConnectionState {
            status: Status::Connecting,
            last_error: None,
            connects: 0,
            attempts: 0,
            client_id: client_id.clone(),
        });
        let shared = Arc::new(Shared {
            permits: Arc::new(Semaphore::new(config.max_pending)),
            config,
            sender,
            book: Mutex::new(Book::default()),
            registry: Mutex::new(registry),
            state,
            streams: RwLock::new(Vec::new()),
            counters: Counters::default(),
            stop: watch::channel(Stop::Running).0,
            ack_after,
        });
        let inner = Arc::new(Inner {
            shared: shared.clone(),
            claim: claim.clone(),
        });
        let weak = Arc::downgrade(&inner);
        let dispatcher = dispatch::spawn(shared.clone(), weak, table, callbacks);
        tokio::spawn(async move {
            connection::run(shared, link, dispatcher).await;
            claim.release();
        });
        tracing::info!(client_id = %client_id, "MQTT client started");
        Ok(Mqtt { inner })
    }
}
