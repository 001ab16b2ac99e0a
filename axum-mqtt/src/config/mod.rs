//! Configuration: Flask-MQTT's `MQTT_*` keys (`keys.rs`, one table), a broker URL or a list of
//! them (`url.rs`, `brokers.rs`), the environment (`env.rs`), serde, or plain Rust.

mod brokers;
mod client_id;
mod duration;
mod env;
mod keys;
mod url;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::brokers::BrokerAddr;
use crate::error::ConfigError;
use crate::message::QoS;

/// Why TLS is refused by a build without the `tls` feature.
pub(crate) const NO_TLS: &str =
    "this build of axum-mqtt has no TLS: enable its cargo feature `tls` (on by default)";
/// Why an outbox is refused by a build without the `outbox` feature.
const NO_OUTBOX: &str =
    "this build of axum-mqtt has no outbox: enable its cargo feature `outbox` (SQLite, bundled)";

/// Why WebSockets are refused by a build without the `websocket` feature.
pub(crate) const NO_WEBSOCKET: &str =
    "this build of axum-mqtt has no WebSocket transport: enable its cargo feature `websocket` (on by default)";

/// MQTT protocol version.
///
/// ```
/// use axum_mqtt::Protocol;
/// assert_eq!("5".parse::<Protocol>(), Ok(Protocol::V5));
/// assert_eq!("3.1.1".parse::<Protocol>(), Ok(Protocol::V311));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Protocol {
    /// MQTT 3.1.1 (protocol level 4).
    #[default]
    #[serde(rename = "3.1.1", alias = "4", alias = "v4", alias = "MQTTv311")]
    V311,
    /// MQTT 5.
    #[serde(rename = "5", alias = "v5", alias = "MQTTv5")]
    V5,
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "3.1.1" | "4" | "v4" | "mqttv311" | "311" => Ok(Protocol::V311),
            "5" | "5.0" | "v5" | "mqttv5" => Ok(Protocol::V5),
            _ => Err("expected `3.1.1` or `5`".into()),
        }
    }
}

/// How bytes reach the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Plain TCP (or TLS over TCP).
    #[default]
    Tcp,
    /// MQTT over WebSocket (or secure WebSocket with TLS).
    #[serde(alias = "ws", alias = "websocket")]
    Websockets,
}

/// TLS protocol version to restrict to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 only.
    #[serde(rename = "1.2", alias = "tlsv1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3", alias = "tlsv1.3")]
    Tls13,
}

/// TLS settings (rustls).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    /// Connect with TLS.
    pub enabled: bool,
    /// CA bundle (PEM). When absent the system's roots are used.
    pub ca_certs: Option<PathBuf>,
    /// Client certificate chain (PEM), for brokers that require one.
    pub certfile: Option<PathBuf>,
    /// Client private key (PEM).
    pub keyfile: Option<PathBuf>,
    /// Skip verification of the broker's certificate. For testing only.
    pub insecure: bool,
    /// Restrict to one TLS version.
    pub version: Option<TlsVersion>,
}

/// The durable outbox: where it lives and how much it may hold (see
/// [`Publish::durable`](crate::Publish)). Set with `MQTT_OUTBOX_PATH` (and `MQTT_OUTBOX_MAX_*`) or in
/// code.
///
/// ```
/// let mut cfg = axum_mqtt::MqttConfig::new("localhost", 1883);
/// cfg.outbox = Some(axum_mqtt::OutboxConfig::new("/var/lib/myapp/outbox.db"));
/// let o = cfg.outbox.as_ref().unwrap();
/// assert_eq!((o.max_messages, o.max_bytes), (100_000, 64 * 1024 * 1024));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxConfig {
    /// The file (SQLite); created when missing.
    pub path: PathBuf,
    /// Messages it holds at most.
    #[serde(default = "OutboxConfig::default_max_messages")]
    pub max_messages: u64,
    /// Topic and payload bytes it holds at most.
    #[serde(default = "OutboxConfig::default_max_bytes")]
    pub max_bytes: u64,
}

impl OutboxConfig {
    /// An outbox at `path` holding up to 100 000 messages and 64 MiB.
    ///
    /// ```
    /// let o = axum_mqtt::OutboxConfig::new("outbox.db");
    /// assert_eq!(o.path, std::path::PathBuf::from("outbox.db"));
    /// ```
    pub fn new(path: impl Into<PathBuf>) -> Self {
        OutboxConfig {
            path: path.into(),
            max_messages: Self::default_max_messages(),
            max_bytes: Self::default_max_bytes(),
        }
    }

    fn default_max_messages() -> u64 {
        100_000
    }

    fn default_max_bytes() -> u64 {
        64 * 1024 * 1024
    }
}

/// The message the broker publishes when this client disappears without a DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastWill {
    /// Topic of the will.
    pub topic: String,
    /// Payload of the will.
    #[serde(default)]
    pub message: String,
    /// QoS of the will.
    #[serde(default)]
    pub qos: QoS,
    /// Retain flag of the will.
    #[serde(default)]
    pub retain: bool,
}

/// Everything needed to connect one client. Build it from `MQTT_*` keys
/// ([`from_env`](Self::from_env), [`from_pairs`](Self::from_pairs), which lists every key), a URL
/// ([`from_url`](Self::from_url)), serde, or in code. `Debug` masks the password.
///
/// ```
/// use axum_mqtt::{MqttConfig, Protocol};
///
/// let mut cfg = MqttConfig::new("localhost", 1883);
/// cfg.client_id = "my-app".into();
/// cfg.protocol = Protocol::V5;
/// cfg.keepalive = std::time::Duration::from_secs(30);
/// assert!(cfg.validate().is_ok());
///
/// let from_json: MqttConfig = serde_json::from_str(
///     r#"{"broker_url": "10.0.0.2", "keepalive": 5, "reconnect_min": "250ms"}"#,
/// ).unwrap();
/// assert_eq!(from_json.broker_port, 1883);
/// assert_eq!(from_json.reconnect_min.as_millis(), 250);
///
/// cfg.password = Some("secret".into());
/// assert!(!format!("{cfg:?}").contains("secret"));
/// ```
///
#[doc = include_str!("../docs/failover.md")]
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MqttConfig {
    /// Client identifier; empty means a random `axum-mqtt-…` one. May be a template with
    /// `{hostname}`, `{pid}` and `{random}` (eight lowercase hex digits), filled in once per client
    /// when it starts ([`Mqtt::state`](crate::Mqtt::state) shows the result):
    ///
    /// ```
    /// let mut cfg = axum_mqtt::MqttConfig::new("localhost", 1883);
    /// cfg.client_id = "web-{hostname}-{pid}".into();
    /// assert!(cfg.validate().is_ok());
    /// cfg.client_id = "web-{host}".into();
    /// assert_eq!(cfg.validate().unwrap_err().key, "MQTT_CLIENT_ID");
    /// ```
    pub client_id: String,
    /// Broker host name or address.
    pub broker_url: String,
    /// Broker port.
    pub broker_port: u16,
    /// More brokers (nodes of a cluster) to fail over to: the client tries
    /// `broker_url:broker_port` first, then these in order, round robin, moving on whenever an
    /// attempt fails or a connection is lost. They share the transport, TLS settings, WebSocket path
    /// and credentials. Set from a comma-separated `BROKER_URL`, with
    /// [`with_brokers`](Self::with_brokers), or in serde as `[{"host": "b", "port": 1883}]`;
    /// see [`brokers`](Self::brokers), and "Failover between brokers" on [`MqttConfig`] for what
    /// a persistent session means then.
    ///
    /// ```
    /// let cfg: axum_mqtt::MqttConfig = serde_json::from_str(
    ///     r#"{"broker_url": "node-a", "failover": [{"host": "node-b", "port": 1883}]}"#,
    /// ).unwrap();
    /// assert_eq!(cfg.failover[0].to_string(), "node-b:1883");
    /// ```
    pub failover: Vec<BrokerAddr>,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Interval between pings (whole seconds on the wire; zero disables pings on 3.1.1).
    #[serde(with = "duration")]
    pub keepalive: Duration,
    /// Start each connection with a fresh session.
    pub clean_session: bool,
    /// TLS settings.
    pub tls: TlsConfig,
    /// Last will.
    pub last_will: Option<LastWill>,
    /// TCP or WebSocket.
    pub transport: Transport,
    /// Path of the WebSocket endpoint.
    pub ws_path: String,
    /// MQTT 3.1.1 or 5.
    pub protocol: Protocol,
    /// Shared-subscription group for routes (`$share/<group>/<filter>`).
    pub shared_group: Option<String>,
    /// Unacknowledged QoS 1/2 publishes on the wire at once.
    pub max_inflight: u16,
    /// Requests waiting for the broker before `publish`/`subscribe` wait for room.
    pub max_pending: usize,
    /// Largest packet in bytes, both directions.
    pub max_packet_size: usize,
    /// First reconnect delay.
    #[serde(with = "duration")]
    pub reconnect_min: Duration,
    /// Largest reconnect delay (the backoff doubles up to it).
    #[serde(with = "duration")]
    pub reconnect_max: Duration,
    /// Message handlers running at once.
    pub handler_concurrency: usize,
    /// Messages queued per handler lane.
    pub handler_queue: usize,
    /// How long to wait for a connection (TCP, TLS, CONNACK) before retrying.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// The durable outbox (feature `outbox`); none by default.
    pub outbox: Option<OutboxConfig>,
    #[serde(skip)]
    prefix: Option<String>,
}

impl std::fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field but the password, which is only said to be set.
        let MqttConfig {
            client_id,
            broker_url,
            broker_port,
            failover,
            username,
            password,
            keepalive,
            clean_session,
            tls,
            last_will,
            transport,
            ws_path,
            protocol,
            shared_group,
            max_inflight,
            max_pending,
            max_packet_size,
            reconnect_min,
            reconnect_max,
            handler_concurrency,
            handler_queue,
            connect_timeout,
            outbox,
            prefix,
        } = self;
        f.debug_struct("MqttConfig")
            .field("client_id", client_id)
            .field("broker_url", broker_url)
            .field("broker_port", broker_port)
            .field("failover", failover)
            .field("username", username)
            .field("password", &password.as_ref().map(|_| "***"))
            .field("keepalive", keepalive)
            .field("clean_session", clean_session)
            .field("tls", tls)
            .field("last_will", last_will)
            .field("transport", transport)
            .field("ws_path", ws_path)
            .field("protocol", protocol)
            .field("shared_group", shared_group)
            .field("max_inflight", max_inflight)
            .field("max_pending", max_pending)
            .field("max_packet_size", max_packet_size)
            .field("reconnect_min", reconnect_min)
            .field("reconnect_max", reconnect_max)
            .field("handler_concurrency", handler_concurrency)
            .field("handler_queue", handler_queue)
            .field("connect_timeout", connect_timeout)
            .field("outbox", outbox)
            .field("prefix", prefix)
            .finish()
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            client_id: String::new(),
            broker_url: "localhost".into(),
            broker_port: 1883,
            failover: Vec::new(),
            username: None,
            password: None,
            keepalive: Duration::from_secs(60),
            clean_session: true,
            tls: TlsConfig::default(),
            last_will: None,
            transport: Transport::Tcp,
            ws_path: "/mqtt".into(),
            protocol: Protocol::V311,
            shared_group: None,
            max_inflight: 100,
            max_pending: 1000,
            max_packet_size: 1024 * 1024,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(30),
            handler_concurrency: 8,
            handler_queue: 256,
            connect_timeout: Duration::from_secs(10),
            outbox: None,
            prefix: None,
        }
    }
}

impl MqttConfig {
    /// Defaults with the given broker host and port.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        MqttConfig {
            broker_url: host.into(),
            broker_port: port,
            ..Default::default()
        }
    }

    /// Checks values that can only be judged together (and those set in code).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.broker_url.trim().is_empty() {
            return Err(self.error("BROKER_URL", &self.broker_url, "must not be empty"));
        }
        if self.broker_port == 0 {
            return Err(self.error("BROKER_PORT", "0", "expected a port number 1-65535"));
        }
        self.validate_failover()?;
        if !self.clean_session && self.client_id.is_empty() {
            return Err(self.error(
                "CLEAN_SESSION",
                "false",
                "a persistent session needs a fixed CLIENT_ID (a random one would start a new session every time)",
            ));
        }
        let keepalive = self.keepalive.as_secs();
        if keepalive > u64::from(u16::MAX) || self.keepalive.subsec_nanos() != 0 {
            let v = format!("{:?}", self.keepalive);
            return Err(self.error(
                "KEEPALIVE",
                &v,
                "whole seconds, at most 65535 seconds (MQTT limit)",
            ));
        }
        if self.protocol == Protocol::V5 && keepalive < 5 {
            // rumqttc's MQTT 5 client panics below 5 s (and cannot disable pings).
            let v = keepalive.to_string();
            return Err(self.error(
                "KEEPALIVE",
                &v,
                "MQTT 5 needs at least 5 seconds (0 and shorter intervals work with PROTOCOL=3.1.1)",
            ));
        }
        if self.client_id.len() > 65_535 {
            return Err(self.error("CLIENT_ID", &self.client_id, "longer than 65535 bytes"));
        }
        if let Err(reason) = client_id::check(&self.client_id) {
            return Err(self.error("CLIENT_ID", &self.client_id, &reason));
        }
        if !self.clean_session && client_id::is_random(&self.client_id) {
            return Err(self.error(
                "CLIENT_ID",
                &self.client_id,
                "`{random}` makes a new id, and so a new session, on every start: a persistent session \
                 (CLEAN_SESSION=false) needs an id that stays the same, e.g. `{hostname}`",
            ));
        }
        if self.max_inflight == 0 {
            return Err(self.error("MAX_INFLIGHT", "0", "must be at least 1"));
        }
        if self.max_pending == 0 {
            return Err(self.error("MAX_PENDING", "0", "must be at least 1"));
        }
        if self.handler_concurrency == 0 || self.handler_concurrency > 1024 {
            let v = self.handler_concurrency.to_string();
            return Err(self.error("HANDLER_CONCURRENCY", &v, "expected 1-1024"));
        }
        if self.handler_queue == 0 {
            return Err(self.error("HANDLER_QUEUE", "0", "must be at least 1"));
        }
        if self.connect_timeout.is_zero() {
            return Err(self.error("CONNECTION_TIMEOUT", "0", "must be at least 1 second"));
        }
        if self.max_packet_size < 64 {
            let v = self.max_packet_size.to_string();
            return Err(self.error("MAX_PACKET_SIZE", &v, "must be at least 64 bytes"));
        }
        if self.reconnect_min.is_zero() || self.reconnect_max < self.reconnect_min {
            let v = format!(
                "{}..{}",
                self.reconnect_min.as_millis(),
                self.reconnect_max.as_millis()
            );
            return Err(self.error(
                "RECONNECT_MIN_MS",
                &v,
                "need 0 < RECONNECT_MIN_MS <= RECONNECT_MAX_MS",
            ));
        }
        if self.tls.certfile.is_some() != self.tls.keyfile.is_some() {
            let v = format!(
                "{:?}",
                self.tls.certfile.as_ref().or(self.tls.keyfile.as_ref())
            );
            return Err(self.error(
                "TLS_CERTFILE",
                &v,
                "TLS_CERTFILE and TLS_KEYFILE go together",
            ));
        }
        if self.tls.enabled && !cfg!(feature = "tls") {
            return Err(self.error("TLS_ENABLED", "true", NO_TLS));
        }
        if self.transport == Transport::Websockets && !cfg!(feature = "websocket") {
            return Err(self.error("TRANSPORT", "websockets", NO_WEBSOCKET));
        }
        if let Some(o) = &self.outbox {
            let path = o.path.display().to_string();
            if !cfg!(feature = "outbox") {
                return Err(self.error("OUTBOX_PATH", &path, NO_OUTBOX));
            }
            if o.path.as_os_str().is_empty() {
                return Err(self.error("OUTBOX_PATH", "", "must name a file"));
            }
            if o.max_messages == 0 || o.max_bytes == 0 {
                return Err(self.error(
                    "OUTBOX_MAX_MESSAGES",
                    "0",
                    "the outbox limits must be at least 1",
                ));
            }
        }
        if let Some(w) = &self.last_will {
            if let Err(e) = crate::topic::validate_topic(&w.topic) {
                return Err(self.error("LAST_WILL_TOPIC", &w.topic, &e.to_string()));
            }
        }
        if let Some(g) = &self.shared_group {
            if g.is_empty() || g.contains(['/', '+', '#']) {
                return Err(self.error("SHARED_GROUP", g, "a group name without `/`, `+` or `#`"));
            }
        }
        Ok(())
    }

    /// The client id to use: the configured one with its placeholders filled in, or a random one
    /// when empty. Called once per client, when it starts.
    pub(crate) fn effective_client_id(&self) -> Result<String, ConfigError> {
        if self.client_id.is_empty() {
            return Ok(format!("axum-mqtt-{:016x}", client_id::process_random()));
        }
        let id = client_id::expand_here(&self.client_id)
            .map_err(|reason| self.error("CLIENT_ID", &self.client_id, &reason))?;
        if id.len() > 65_535 {
            return Err(self.error("CLIENT_ID", &id, "longer than 65535 bytes once filled in"));
        }
        Ok(id)
    }

    pub(crate) fn error(&self, key: &str, value: &str, reason: &str) -> ConfigError {
        config_error(self.prefix.as_deref().unwrap_or("MQTT"), key, value, reason)
    }
}

fn config_error(prefix: &str, key: &str, value: &str, reason: &str) -> ConfigError {
    let value = if key == "PASSWORD" { "***" } else { value };
    ConfigError {
        key: format!("{prefix}_{key}"),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests;
