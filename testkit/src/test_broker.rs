//! [`TestBroker`]: a real broker for one test, in one line, with a client to publish and to wait for
//! messages.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum_mqtt::{Message, MessageStream, Mqtt, MqttBuilder, MqttConfig, QoS, Status};
use axum_mqtt_broker::{BrokerConfig, BrokerError, EmbeddedBroker};
use bytes::Bytes;
use tokio::sync::watch;

use crate::ANY_LOOPBACK;

/// How long [`TestBroker::start`] waits for its own client to connect.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Messages a [`Subscription`] keeps until they are read; more are skipped (a test that reads
/// fewer than this many is never affected).
const BUFFER: usize = 1024;

/// What can go wrong in a [`TestBroker`] test: each says what was waited for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestError {
    /// The embedded broker could not start (no loopback port, no threads).
    #[error("the embedded test broker did not start: {0}")]
    Broker(#[from] BrokerError),
    /// The test broker's own client did not connect in time.
    #[error("the test client did not connect to the embedded broker within {after:?}: {reason}")]
    NotConnected {
        /// How long it waited.
        after: Duration,
        /// The client's last connection error.
        reason: String,
    },
    /// The app's client did not connect, or the broker did not confirm its route subscriptions,
    /// in time ([`TestBroker::start_app`]).
    #[error("the app was not ready within {after:?}: {reason}")]
    AppNotReady {
        /// How long it waited.
        after: Duration,
        /// The connection error, or the subscriptions not confirmed.
        reason: String,
    },
    /// Starting the app's client failed (an invalid config or router).
    #[error("the app's client did not start: {0}")]
    AppStart(#[source] axum_mqtt::StartError),
    /// Publishing or subscribing failed (an invalid topic or filter, a refusal, a timeout).
    #[error(transparent)]
    Mqtt(#[from] axum_mqtt::Error),
    /// No message arrived on the filter in time.
    #[error("no message on {filter:?} within {after:?}")]
    Timeout {
        /// The subscription's filter.
        filter: String,
        /// How long it waited.
        after: Duration,
    },
    /// A message arrived where none was expected ([`Subscription::expect_none`]).
    #[error("unexpected message on {topic:?} (subscribed to {filter:?}): {payload:?}")]
    Unexpected {
        /// The subscription's filter.
        filter: String,
        /// The message's topic.
        topic: String,
        /// The message's payload (lossy UTF-8).
        payload: String,
    },
    /// The test client stopped while a subscription waited.
    #[error("the test client stopped while waiting on {filter:?}")]
    Closed {
        /// The subscription's filter.
        filter: String,
    },
}

/// An embedded MQTT broker (MQTT 3.1.1 and 5 on one loopback TCP port, plus WebSocket) for one
/// test, and a client of its own to publish and to wait for messages: test your handlers end to end
/// without installing a broker.
///
/// Each test starts its own, on ports the kernel chose, so tests run in parallel without sharing
/// topics. Dropping it (or [`stop`](Self::stop)) closes the broker and every connection to it.
///
/// ```
/// use std::time::Duration;
/// use axum_mqtt::{extract::{Json, Params}, Mqtt, Router};
/// use axum_mqtt_testkit::TestBroker;
///
/// #[derive(serde::Deserialize)]
/// struct Reading { celsius: f64 }
///
/// // The handler under test: too hot → an alert.
/// async fn temperature(mqtt: Mqtt, Params(device): Params<String>, Json(r): Json<Reading>)
///     -> Result<(), axum_mqtt::Error>
/// {
///     if r.celsius > 30.0 {
///         mqtt.publish(format!("alerts/{device}"), format!("{} °C", r.celsius)).await?;
///     }
///     Ok(())
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let broker = TestBroker::start().await?;
/// let routes = Router::new().route("sensors/{device}/temperature", temperature);
/// let _app = broker.start_app(Mqtt::builder(broker.config()).router(routes)).await?;
///
/// let mut alerts = broker.subscribe("alerts/#").await?; // before publishing: nothing is missed
/// broker.publish("sensors/boiler/temperature", r#"{"celsius": 31.5}"#).await?;
/// let alert = alerts.next_message(Duration::from_secs(5)).await?;
/// assert_eq!(alert.topic(), "alerts/boiler");
/// assert_eq!(alert.payload_str(), Some("31.5 °C"));
///
/// broker.publish("sensors/boiler/temperature", r#"{"celsius": 20}"#).await?;
/// alerts.expect_none(Duration::from_millis(200)).await?;
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
///
/// (A test with `#[tokio::test]` reads the same without the runtime lines.)
pub struct TestBroker {
    broker: EmbeddedBroker,
    client: Mqtt,
}

impl std::fmt::Debug for TestBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBroker")
            .field("addr", &self.broker.tcp_addr())
            .finish_non_exhaustive()
    }
}

impl TestBroker {
    /// Starts a broker on loopback ports the kernel chose, and its own client, connected.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let broker = axum_mqtt_testkit::TestBroker::start().await?;
    /// assert!(broker.url().starts_with("mqtt://127.0.0.1:"));
    /// # Ok::<(), axum_mqtt_testkit::TestError>(()) }).unwrap();
    /// ```
    pub async fn start() -> Result<TestBroker, TestError> {
        let config = BrokerConfig::new(ANY_LOOPBACK).with_ws(ANY_LOOPBACK);
        // Starting binds listeners and spawns the broker's threads: off the async workers.
        let broker = tokio::task::spawn_blocking(move || EmbeddedBroker::start(config))
            .await
            .map_err(|e| BrokerError::Start(e.to_string()))??;
        let mut client_config = config_for(&broker);
        client_config.client_id = unique_client_id("probe");
        let client = Mqtt::start(client_config)
            .await
            .map_err(axum_mqtt::Error::from)?;
        let state = client.wait_connected(CONNECT_WAIT).await;
        if state.status != Status::Connected {
            return Err(TestError::NotConnected {
                after: CONNECT_WAIT,
                reason: state.last_error.unwrap_or_else(|| "none reported".into()),
            });
        }
        Ok(TestBroker { broker, client })
    }

    /// A client config for this broker (for [`start_app`](Self::start_app)): MQTT 3.1.1 over TCP (set `protocol` for 5), a client id
    /// of its own on every call (so two clients in a test never take over each other's
    /// connection), fast reconnects and a short keepalive.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let broker = axum_mqtt_testkit::TestBroker::start().await?;
    /// let (a, b) = (broker.config(), broker.config());
    /// assert_eq!(a.broker_url, "127.0.0.1");
    /// assert_ne!(a.client_id, b.client_id);
    /// # Ok::<(), axum_mqtt_testkit::TestError>(()) }).unwrap();
    /// ```
    pub fn config(&self) -> MqttConfig {
        let mut cfg = config_for(&self.broker);
        cfg.client_id = unique_client_id("app");
        cfg
    }

    /// Starts the app's client (`builder` made with [`config`](Self::config)) and returns once it
    /// is connected **and** the broker confirmed every route's subscription, so a message
    /// published next reaches its handler. (Starting the client alone returns before it connected;
    /// waiting for the connection alone still races the SUBSCRIBE.)
    ///
    /// ```
    /// use axum_mqtt::{Mqtt, Router};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let broker = axum_mqtt_testkit::TestBroker::start().await?;
    /// let routes = Router::new().route("a/{x}", || async {}).shared("g");
    /// let app = broker.start_app(Mqtt::builder(broker.config()).router(routes)).await?;
    /// assert_eq!(app.subscriptions()[0].0, "$share/g/a/+");
    /// # Ok::<(), axum_mqtt_testkit::TestError>(()) }).unwrap();
    /// ```
    pub async fn start_app(&self, builder: MqttBuilder) -> Result<Mqtt, TestError> {
        let (acked_tx, mut acked) = watch::channel(HashSet::<String>::new());
        let app = builder
            .on_subscribe(move |_mqtt, s| {
                acked_tx.send_modify(|set| {
                    set.extend(s.results.into_iter().filter_map(|(f, r)| r.ok().map(|_| f)))
                });
                std::future::ready(())
            })
            .start()
            .await
            .map_err(TestError::AppStart)?;
        let deadline = tokio::time::Instant::now() + CONNECT_WAIT;
        let state = app.wait_connected(CONNECT_WAIT).await;
        if state.status != Status::Connected {
            return Err(TestError::AppNotReady {
                after: CONNECT_WAIT,
                reason: state.last_error.unwrap_or_else(|| "not connected".into()),
            });
        }
        let wanted: Vec<String> = app.subscriptions().into_iter().map(|(f, _)| f).collect();
        let all_acked = acked.wait_for(|set| wanted.iter().all(|f| set.contains(f)));
        if tokio::time::timeout_at(deadline, all_acked).await.is_err() {
            let set = acked.borrow().clone();
            let missing: Vec<&str> = wanted
                .iter()
                .filter(|f| !set.contains(*f))
                .map(String::as_str)
                .collect();
            return Err(TestError::AppNotReady {
                after: CONNECT_WAIT,
                reason: format!("subscriptions not confirmed: {}", missing.join(", ")),
            });
        }
        Ok(app)
    }

    /// The broker's address as a URL, `mqtt://127.0.0.1:<port>` (for `MQTT_BROKER_URL`).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let broker = axum_mqtt_testkit::TestBroker::start().await?;
    /// let cfg = axum_mqtt::MqttConfig::from_url(&broker.url()).unwrap();
    /// assert_eq!(cfg.broker_port, broker.config().broker_port);
    /// # Ok::<(), axum_mqtt_testkit::TestError>(()) }).unwrap();
    /// ```
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.broker.tcp_addr())
    }

    /// Publishes with QoS 1 and returns once the broker acknowledged it.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let broker = axum_mqtt_testkit::TestBroker::start().await?;
    /// broker.publish("sensors/1/temperature", r#"{"celsius": 21}"#).await?;
    /// assert!(broker.publish("not/a/+/topic", "").await.is_err());
    /// # Ok::<(), axum_mqtt_testkit::TestError>(()) }).unwrap();
    /// ```
    pub async fn publish(
        &self,
        topic: impl Into<String>,
        payload: impl Into<Bytes>,
    ) -> Result<(), TestError> {
        self.client
            .publish(topic, payload)
            .qos(QoS::AtLeastOnce)
            .await?;
        Ok(())
    }

    /// Subscribes to `filter` (QoS 1) and returns once the broker confirmed it, so every message
    /// published afterwards, by the test or by the handlers under test, is seen. Subscribe before
    /// doing what should produce the message.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let broker = axum_mqtt_testkit::TestBroker::start().await?;
    /// let mut replies = broker.subscribe("replies/+").await?;
    /// broker.publish("replies/1", "pong").await?;
    /// assert_eq!(replies.next_message(Duration::from_secs(5)).await?.payload_str(), Some("pong"));
    /// # Ok::<(), axum_mqtt_testkit::TestError>(()) }).unwrap();
    /// ```
    pub async fn subscribe(&self, filter: &str) -> Result<Subscription, TestError> {
        let stream = self.client.stream(filter, QoS::AtLeastOnce, BUFFER).await?;
        Ok(Subscription { stream })
    }

    /// The test broker's own client, for anything [`publish`](Self::publish) and
    /// [`subscribe`](Self::subscribe) do not cover (retained messages, QoS 2, MQTT 5 properties).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let broker = axum_mqtt_testkit::TestBroker::start().await?;
    /// broker.client().publish("config/mode", "eco").retain(true).await?;
    /// # Ok::<(), axum_mqtt_testkit::TestError>(()) }).unwrap();
    /// ```
    pub fn client(&self) -> &Mqtt {
        &self.client
    }

    /// The embedded broker itself: its WebSocket address, its counters, stopping it mid-test.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let broker = axum_mqtt_testkit::TestBroker::start().await?;
    /// let ws = broker.broker().ws_addr().expect("a WebSocket listener");
    /// println!("ws://{ws}/mqtt");
    /// # Ok::<(), axum_mqtt_testkit::TestError>(()) }).unwrap();
    /// ```
    pub fn broker(&self) -> &EmbeddedBroker {
        &self.broker
    }

    /// Disconnects the test client and stops the broker (dropping does the same, without the
    /// DISCONNECT).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let broker = axum_mqtt_testkit::TestBroker::start().await?;
    /// broker.stop().await;
    /// # Ok::<(), axum_mqtt_testkit::TestError>(()) }).unwrap();
    /// ```
    pub async fn stop(self) {
        self.client.shutdown(Duration::from_secs(1)).await;
        self.broker.stop();
    }
}

/// Messages on one filter, from [`TestBroker::subscribe`]; unsubscribes when dropped.
#[derive(Debug)]
pub struct Subscription {
    stream: MessageStream,
}

impl Subscription {
    /// The next message, or [`TestError::Timeout`] when none arrives within `timeout`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let broker = axum_mqtt_testkit::TestBroker::start().await?;
    /// let mut s = broker.subscribe("quiet/#").await?;
    /// let err = s.next_message(Duration::from_millis(50)).await.unwrap_err();
    /// assert!(matches!(err, axum_mqtt_testkit::TestError::Timeout { .. }));
    /// # Ok::<(), axum_mqtt_testkit::TestError>(()) }).unwrap();
    /// ```
    pub async fn next_message(&mut self, timeout: Duration) -> Result<Message, TestError> {
        match tokio::time::timeout(timeout, self.stream.recv()).await {
            Ok(Some(message)) => Ok(message),
            Ok(None) => Err(TestError::Closed {
                filter: self.filter().to_string(),
            }),
            Err(_) => Err(TestError::Timeout {
                filter: self.filter().to_string(),
                after: timeout,
            }),
        }
    }

    /// Succeeds when no message arrives within `within`; [`TestError::Unexpected`] names the one
    /// that did.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let broker = axum_mqtt_testkit::TestBroker::start().await?;
    /// let mut s = broker.subscribe("alerts/#").await?;
    /// s.expect_none(Duration::from_millis(50)).await?;
    /// broker.publish("alerts/1", "fire").await?;
    /// assert!(s.expect_none(Duration::from_secs(5)).await.is_err());
    /// # Ok::<(), axum_mqtt_testkit::TestError>(()) }).unwrap();
    /// ```
    pub async fn expect_none(&mut self, within: Duration) -> Result<(), TestError> {
        match tokio::time::timeout(within, self.stream.recv()).await {
            Ok(Some(message)) => Err(TestError::Unexpected {
                filter: self.filter().to_string(),
                topic: message.topic().to_string(),
                payload: String::from_utf8_lossy(message.payload()).into_owned(),
            }),
            Ok(None) => Err(TestError::Closed {
                filter: self.filter().to_string(),
            }),
            Err(_) => Ok(()),
        }
    }

    /// The filter subscribed to.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let broker = axum_mqtt_testkit::TestBroker::start().await?;
    /// assert_eq!(broker.subscribe("a/+").await?.filter(), "a/+");
    /// # Ok::<(), axum_mqtt_testkit::TestError>(()) }).unwrap();
    /// ```
    pub fn filter(&self) -> &str {
        self.stream.filter()
    }
}

fn config_for(broker: &EmbeddedBroker) -> MqttConfig {
    let addr = broker.tcp_addr();
    let mut cfg = MqttConfig::new(addr.ip().to_string(), addr.port());
    cfg.reconnect_min = Duration::from_millis(20);
    cfg.reconnect_max = Duration::from_millis(500);
    cfg.keepalive = Duration::from_secs(5);
    cfg
}

fn unique_client_id(role: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "axum-mqtt-test-{role}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
