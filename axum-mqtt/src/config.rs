//! Configuration: Flask-MQTT's `MQTT_*` keys, a broker URL, serde, or plain Rust.
//!
//! Every key Flask-MQTT reads is understood here under the same name, read with a prefix
//! (`MQTT` by default, `MQTT2` for a second broker, …):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `CLIENT_ID` | random `axum-mqtt-…` | client identifier |
//! | `BROKER_URL` | `localhost` | host name, or a whole URL `mqtt://user:pass@host:1883`, `mqtts://`, `ws://host:port/path`, `wss://` |
//! | `BROKER_PORT` | 1883 (8883 for `mqtts`) | TCP port |
//! | `USERNAME`, `PASSWORD` | none | credentials |
//! | `KEEPALIVE` | 60 | seconds between pings, at most 65535 (0 disables on 3.1.1; MQTT 5 needs at least 5) |
//! | `CLEAN_SESSION` | true | start a fresh session; false keeps subscriptions and queued messages at the broker (needs a fixed `CLIENT_ID`) |
//! | `TLS_ENABLED` | false | connect with TLS (rustls) |
//! | `TLS_CA_CERTS` | system roots | CA bundle (PEM) to verify the broker |
//! | `TLS_CERTFILE`, `TLS_KEYFILE` | none | client certificate and key (PEM) |
//! | `TLS_INSECURE` | false | do not verify the broker's certificate (testing only) |
//! | `TLS_VERSION` | any | `1.2` or `1.3` (also `tlsv1.2`, `PROTOCOL_TLSv1_2`) |
//! | `LAST_WILL_TOPIC`, `LAST_WILL_MESSAGE`, `LAST_WILL_QOS`, `LAST_WILL_RETAIN` | none, "", 0, false | the will |
//! | `TRANSPORT` | `tcp` | `tcp` or `websockets` |
//! | `WS_PATH` | `/mqtt` | WebSocket path |
//! | `PROTOCOL` | `3.1.1` | `3.1.1` (also `4`, `MQTTv311`) or `5` (`MQTTv5`) |
//! | `PROTOCOL_VERSION` | | Flask-MQTT's name: paho's `4` (3.1.1) or `5` |
//! | `CONNECTION_TIMEOUT` | 10 | seconds to wait for TCP/TLS/CONNACK before retrying |
//! | `TLS_CERT_REQS` | `CERT_REQUIRED` | Flask-MQTT's `ssl.CERT_*`: `CERT_NONE` (0) is `TLS_INSECURE` |
//! | `TLS_CIPHERS`, `REFRESH_TIME` | | accepted for compatibility and ignored (rustls picks the cipher suites) |
//! | `SHARED_GROUP` | none | subscribe routes as `$share/<group>/<filter>` so app instances split the load |
//! | `MAX_INFLIGHT` | 100 | unacknowledged QoS 1/2 publishes on the wire |
//! | `MAX_PENDING` | 1000 | publish/subscribe requests waiting for the broker before `publish` waits (backpressure) |
//! | `MAX_PACKET_SIZE` | 1048576 | largest packet sent or received, in bytes |
//! | `RECONNECT_MIN_MS`, `RECONNECT_MAX_MS` | 100, 30000 | reconnect backoff bounds |
//! | `HANDLER_CONCURRENCY` | 8 | message handlers running at once (order per topic is kept) |
//! | `HANDLER_QUEUE` | 256 | messages waiting per handler lane before reading from the broker pauses |
//!
//! ```
//! use axum_mqtt::MqttConfig;
//!
//! let cfg = MqttConfig::from_pairs("MQTT", [
//!     ("MQTT_BROKER_URL", "mqtt://user:secret@broker.example:1884"),
//!     ("MQTT_KEEPALIVE", "5"),
//! ])?;
//! assert_eq!(cfg.broker_url, "broker.example");
//! assert_eq!(cfg.broker_port, 1884);
//! assert_eq!(cfg.username.as_deref(), Some("user"));
//!
//! let err = MqttConfig::from_pairs("MQTT", [("MQTT_BROKER_PORT", "eighty")]).unwrap_err();
//! assert_eq!(err.to_string(), "MQTT_BROKER_PORT=\"eighty\": expected a port number 1-65535");
//! # Ok::<(), axum_mqtt::ConfigError>(())
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::message::QoS;

/// A configuration value that cannot be used. The message names the key and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}={value:?}: {reason}")]
pub struct ConfigError {
    /// The full key, prefix included (e.g. `MQTT_BROKER_PORT`).
    pub key: String,
    /// The offending value (passwords are masked).
    pub value: String,
    /// What is expected instead.
    pub reason: String,
}

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

/// Everything needed to connect one client. Build it from `MQTT_*` keys, a URL, serde, or in code.
///
/// ```
/// use axum_mqtt::{MqttConfig, Protocol};
///
/// let mut cfg = MqttConfig::new("localhost", 1883);
/// cfg.client_id = "my-app".into();
/// cfg.protocol = Protocol::V5;
/// cfg.keepalive = 30;
/// assert!(cfg.validate().is_ok());
///
/// let from_json: MqttConfig = serde_json::from_str(r#"{"broker_url": "10.0.0.2", "keepalive": 5}"#).unwrap();
/// assert_eq!(from_json.broker_port, 1883);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MqttConfig {
    /// Client identifier; empty means a random `axum-mqtt-…` one.
    pub client_id: String,
    /// Broker host name or address.
    pub broker_url: String,
    /// Broker port.
    pub broker_port: u16,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Keepalive in seconds (0 disables pings).
    pub keepalive: u64,
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
    /// First reconnect delay in milliseconds.
    pub reconnect_min_ms: u64,
    /// Largest reconnect delay in milliseconds.
    pub reconnect_max_ms: u64,
    /// Message handlers running at once.
    pub handler_concurrency: usize,
    /// Messages queued per handler lane.
    pub handler_queue: usize,
    /// Seconds to wait for a connection (TCP, TLS, CONNACK) before retrying.
    pub connect_timeout: u64,
    #[serde(skip)]
    prefix: Option<String>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            client_id: String::new(),
            broker_url: "localhost".into(),
            broker_port: 1883,
            username: None,
            password: None,
            keepalive: 60,
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
            reconnect_min_ms: 100,
            reconnect_max_ms: 30_000,
            handler_concurrency: 8,
            handler_queue: 256,
            connect_timeout: 10,
            prefix: None,
        }
    }
}

/// Every key [`MqttConfig::from_pairs`] reads, without the prefix (`MQTT_` + key).
///
/// ```
/// assert!(axum_mqtt::config::KEYS.contains(&"BROKER_URL"));
/// ```
pub const KEYS: &[&str] = &[
    "CLIENT_ID",
    "BROKER_URL",
    "BROKER_PORT",
    "USERNAME",
    "PASSWORD",
    "KEEPALIVE",
    "CLEAN_SESSION",
    "TLS_ENABLED",
    "TLS_CA_CERTS",
    "TLS_CERTFILE",
    "TLS_KEYFILE",
    "TLS_INSECURE",
    "TLS_VERSION",
    "LAST_WILL_TOPIC",
    "LAST_WILL_MESSAGE",
    "LAST_WILL_QOS",
    "LAST_WILL_RETAIN",
    "TRANSPORT",
    "WS_PATH",
    "PROTOCOL",
    "SHARED_GROUP",
    "MAX_INFLIGHT",
    "MAX_PENDING",
    "MAX_PACKET_SIZE",
    "RECONNECT_MIN_MS",
    "RECONNECT_MAX_MS",
    "HANDLER_CONCURRENCY",
    "HANDLER_QUEUE",
    "CONNECTION_TIMEOUT",
    // Flask-MQTT's names: PROTOCOL_VERSION (paho's 4 / 5) and TLS_CERT_REQS (ssl.CERT_*).
    "PROTOCOL_VERSION",
    "TLS_CERT_REQS",
    // Flask-MQTT keys that have no meaning here but are accepted so its configs load unchanged.
    "REFRESH_TIME",
    "TLS_CIPHERS",
];

impl MqttConfig {
    /// Defaults with the given broker host and port.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        MqttConfig {
            broker_url: host.into(),
            broker_port: port,
            ..Default::default()
        }
    }

    /// Reads `MQTT_*` from the process environment.
    ///
    /// ```no_run
    /// let cfg = axum_mqtt::MqttConfig::from_env()?;
    /// # Ok::<(), axum_mqtt::ConfigError>(())
    /// ```
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_prefix("MQTT")
    }

    /// Reads `<PREFIX>_*` from the process environment (e.g. `MQTT2` for a second broker).
    ///
    /// ```no_run
    /// let second = axum_mqtt::MqttConfig::from_env_prefix("MQTT2")?;
    /// # Ok::<(), axum_mqtt::ConfigError>(())
    /// ```
    pub fn from_env_prefix(prefix: &str) -> Result<Self, ConfigError> {
        Self::from_pairs(prefix, std::env::vars())
    }

    /// Parses a broker URL: `mqtt://[user[:pass]@]host[:port]`, `mqtts://`, `ws://host:port/path`, `wss://`.
    ///
    /// ```
    /// let cfg = axum_mqtt::MqttConfig::from_url("wss://broker.example/ws")?;
    /// assert!(cfg.tls.enabled);
    /// assert_eq!(cfg.broker_port, 443);
    /// assert_eq!(cfg.ws_path, "/ws");
    /// # Ok::<(), axum_mqtt::ConfigError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        let mut cfg = MqttConfig::default();
        cfg.apply_url("URL", url, false)?;
        Ok(cfg)
    }

    /// Reads `<PREFIX>_<KEY>` entries from any key-value source (env, a `.env` file, a Flask-style
    /// config dict). Keys of other prefixes are ignored; unknown keys of this prefix are logged.
    pub fn from_pairs<K, V>(
        prefix: &str,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let head = format!("{prefix}_");
        let mut found: Vec<(String, String)> = Vec::new();
        for (k, v) in pairs {
            let Some(short) = k.as_ref().strip_prefix(&head) else {
                continue;
            };
            if KEYS.contains(&short) {
                found.push((short.to_string(), v.as_ref().to_string()));
            } else {
                tracing::warn!(key = k.as_ref(), "unknown MQTT configuration key ignored");
            }
        }
        let get = |key: &str| {
            found
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let mut cfg = MqttConfig {
            prefix: Some(prefix.to_string()),
            ..Default::default()
        };
        let err = |key: &str, value: &str, reason: &str| config_error(prefix, key, value, reason);
        let num = |key: &str| -> Result<Option<u64>, ConfigError> {
            get(key)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| err(key, v, "expected a whole number"))
                })
                .transpose()
        };
        let flag = |key: &str| -> Result<Option<bool>, ConfigError> {
            get(key)
                .map(|v| parse_bool(v).ok_or_else(|| err(key, v, "expected true or false")))
                .transpose()
        };
        let text = |key: &str| get(key).map(str::to_string).filter(|s| !s.is_empty());

        if let Some(v) = text("CLIENT_ID") {
            cfg.client_id = v;
        }
        if let Some(v) = get("BROKER_PORT").filter(|v| !v.is_empty()) {
            cfg.broker_port = match v.trim().parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(err("BROKER_PORT", v, "expected a port number 1-65535")),
            };
        }
        if let Some(v) = num("KEEPALIVE")? {
            cfg.keepalive = v;
        }
        if let Some(v) = flag("CLEAN_SESSION")? {
            cfg.clean_session = v;
        }
        cfg.username = text("USERNAME");
        cfg.password = text("PASSWORD");
        if let Some(v) = flag("TLS_ENABLED")? {
            cfg.tls.enabled = v;
        }
        cfg.tls.ca_certs = text("TLS_CA_CERTS").map(PathBuf::from);
        cfg.tls.certfile = text("TLS_CERTFILE").map(PathBuf::from);
        cfg.tls.keyfile = text("TLS_KEYFILE").map(PathBuf::from);
        if let Some(v) = flag("TLS_INSECURE")? {
            cfg.tls.insecure = v;
        }
        if let Some(v) = text("TLS_VERSION") {
            cfg.tls.version = Some(parse_tls_version(&v).map_err(|r| err("TLS_VERSION", &v, r))?);
        }
        if let Some(v) = text("TRANSPORT") {
            cfg.transport = match v.trim().to_ascii_lowercase().as_str() {
                "tcp" => Transport::Tcp,
                "websockets" | "websocket" | "ws" => Transport::Websockets,
                _ => return Err(err("TRANSPORT", &v, "expected `tcp` or `websockets`")),
            };
        }
        if let Some(v) = text("WS_PATH") {
            cfg.ws_path = v;
        }
        if let Some(v) = text("PROTOCOL_VERSION") {
            cfg.protocol = match v.trim() {
                "4" | "MQTTv311" => Protocol::V311,
                "5" | "MQTTv5" => Protocol::V5,
                "3" | "MQTTv31" => {
                    return Err(err(
                        "PROTOCOL_VERSION",
                        &v,
                        "MQTT 3.1 is not supported; use 4 (3.1.1) or 5",
                    ))
                }
                _ => return Err(err("PROTOCOL_VERSION", &v, "expected 4 (MQTT 3.1.1) or 5")),
            };
        }
        if let Some(v) = text("TLS_CERT_REQS") {
            // ssl.CERT_NONE (0) turns verification off, like TLS_INSECURE; CERT_OPTIONAL/REQUIRED verify.
            match v.trim().to_ascii_uppercase().trim_start_matches("SSL.") {
                "0" | "CERT_NONE" => cfg.tls.insecure = true,
                "1" | "2" | "CERT_OPTIONAL" | "CERT_REQUIRED" => {}
                _ => {
                    return Err(err(
                        "TLS_CERT_REQS",
                        &v,
                        "expected CERT_NONE, CERT_OPTIONAL or CERT_REQUIRED (0, 1, 2)",
                    ))
                }
            }
        }
        if get("TLS_CIPHERS").is_some_and(|v| !v.is_empty()) {
            tracing::warn!(
                "TLS_CIPHERS is ignored: rustls only offers its safe default cipher suites"
            );
        }
        if let Some(v) = num("CONNECTION_TIMEOUT")? {
            cfg.connect_timeout = v;
        }
        if let Some(v) = text("PROTOCOL") {
            cfg.protocol = v.parse().map_err(|r: String| err("PROTOCOL", &v, &r))?;
        }
        cfg.shared_group = text("SHARED_GROUP");
        if let Some(topic) = text("LAST_WILL_TOPIC") {
            let qos = match get("LAST_WILL_QOS").filter(|v| !v.is_empty()) {
                Some(v) => {
                    QoS::parse(v).ok_or_else(|| err("LAST_WILL_QOS", v, "expected 0, 1 or 2"))?
                }
                None => QoS::AtMostOnce,
            };
            cfg.last_will = Some(LastWill {
                topic,
                message: get("LAST_WILL_MESSAGE").unwrap_or_default().to_string(),
                qos,
                retain: flag("LAST_WILL_RETAIN")?.unwrap_or(false),
            });
        }
        if let Some(v) = num("MAX_INFLIGHT")? {
            cfg.max_inflight = u16::try_from(v)
                .map_err(|_| err("MAX_INFLIGHT", &v.to_string(), "expected 1-65535"))?;
        }
        let usize_of = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        if let Some(v) = num("MAX_PENDING")? {
            cfg.max_pending = usize_of(v);
        }
        if let Some(v) = num("MAX_PACKET_SIZE")? {
            cfg.max_packet_size = usize_of(v);
        }
        if let Some(v) = num("RECONNECT_MIN_MS")? {
            cfg.reconnect_min_ms = v;
        }
        if let Some(v) = num("RECONNECT_MAX_MS")? {
            cfg.reconnect_max_ms = v;
        }
        if let Some(v) = num("HANDLER_CONCURRENCY")? {
            cfg.handler_concurrency = usize_of(v);
        }
        if let Some(v) = num("HANDLER_QUEUE")? {
            cfg.handler_queue = usize_of(v);
        }
        // The URL last: a scheme, port or credentials in it win over the separate keys.
        if let Some(v) = text("BROKER_URL") {
            let port_given = get("BROKER_PORT").is_some_and(|p| !p.is_empty());
            cfg.apply_url("BROKER_URL", &v, port_given)?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Sets host (and, for a URL, scheme, port, credentials, path) from `BROKER_URL`.
    fn apply_url(&mut self, key: &str, value: &str, port_given: bool) -> Result<(), ConfigError> {
        let value = value.trim();
        if !value.contains("://") {
            if value.is_empty() || value.contains(['/', ' ', '@']) {
                return Err(self.error(
                    key,
                    value,
                    "expected a host name or a URL like mqtt://host:1883",
                ));
            }
            self.broker_url = value.to_string();
            return Ok(());
        }
        let url = url::Url::parse(value)
            .map_err(|e| self.error(key, value, &format!("not a valid URL ({e})")))?;
        let (transport, tls, default_port) = match url.scheme() {
            "mqtt" | "tcp" => (Transport::Tcp, false, 1883),
            "mqtts" | "ssl" | "tls" => (Transport::Tcp, true, 8883),
            "ws" => (Transport::Websockets, false, 80),
            "wss" => (Transport::Websockets, true, 443),
            _ => {
                return Err(self.error(
                    key,
                    value,
                    "expected scheme mqtt://, mqtts://, ws:// or wss://",
                ))
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| self.error(key, value, "the URL has no host"))?;
        self.broker_url = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        self.transport = transport;
        self.tls.enabled |= tls;
        match url.port() {
            Some(p) => self.broker_port = p,
            None if !port_given => self.broker_port = default_port,
            None => {}
        }
        if !url.username().is_empty() {
            self.username = Some(percent_decode(url.username()));
        }
        if let Some(p) = url.password() {
            self.password = Some(percent_decode(p));
        }
        if transport == Transport::Websockets && url.path() != "/" && !url.path().is_empty() {
            self.ws_path = url.path().to_string();
        }
        Ok(())
    }

    /// Checks values that can only be judged together (and those set in code).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.broker_url.trim().is_empty() {
            return Err(self.error("BROKER_URL", &self.broker_url, "must not be empty"));
        }
        if self.broker_port == 0 {
            return Err(self.error("BROKER_PORT", "0", "expected a port number 1-65535"));
        }
        if !self.clean_session && self.client_id.is_empty() {
            return Err(self.error(
                "CLEAN_SESSION",
                "false",
                "a persistent session needs a fixed CLIENT_ID (a random one would start a new session every time)",
            ));
        }
        if self.keepalive > u64::from(u16::MAX) {
            let v = self.keepalive.to_string();
            return Err(self.error("KEEPALIVE", &v, "at most 65535 seconds (MQTT limit)"));
        }
        if self.protocol == Protocol::V5 && self.keepalive < 5 {
            // rumqttc's MQTT 5 client panics below 5 s (and cannot disable pings).
            let v = self.keepalive.to_string();
            return Err(self.error(
                "KEEPALIVE",
                &v,
                "MQTT 5 needs at least 5 seconds (0 and shorter intervals work with PROTOCOL=3.1.1)",
            ));
        }
        if self.client_id.len() > 65_535 {
            return Err(self.error("CLIENT_ID", &self.client_id, "longer than 65535 bytes"));
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
        if self.connect_timeout == 0 {
            return Err(self.error("CONNECTION_TIMEOUT", "0", "must be at least 1 second"));
        }
        if self.max_packet_size < 64 {
            let v = self.max_packet_size.to_string();
            return Err(self.error("MAX_PACKET_SIZE", &v, "must be at least 64 bytes"));
        }
        if self.reconnect_min_ms == 0 || self.reconnect_max_ms < self.reconnect_min_ms {
            let v = format!("{}..{}", self.reconnect_min_ms, self.reconnect_max_ms);
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

    /// The client id to use: the configured one, or a random one when empty.
    pub(crate) fn effective_client_id(&self) -> String {
        if self.client_id.is_empty() {
            format!("axum-mqtt-{:016x}", fastrand::u64(..))
        } else {
            self.client_id.clone()
        }
    }

    pub(crate) fn keepalive_duration(&self) -> Duration {
        Duration::from_secs(self.keepalive)
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

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

fn parse_tls_version(v: &str) -> Result<TlsVersion, &'static str> {
    let norm = v
        .trim()
        .to_ascii_lowercase()
        .replace("protocol_", "")
        .replace('_', ".");
    match norm.as_str() {
        "1.2" | "tlsv1.2" | "tls1.2" | "tlsv1.2.client" => Ok(TlsVersion::Tls12),
        "1.3" | "tlsv1.3" | "tls1.3" => Ok(TlsVersion::Tls13),
        "1.0" | "1.1" | "tlsv1" | "tlsv1.1" | "tls1.0" | "tls1.1" => {
            Err("TLS 1.0 and 1.1 are not supported (rustls); use 1.2 or 1.3")
        }
        _ => Err("expected 1.2 or 1.3"),
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<MqttConfig, ConfigError> {
        MqttConfig::from_pairs("MQTT", pairs.iter().copied())
    }

    #[test]
    fn defaults_match_flask_mqtt() {
        let c = load(&[]).unwrap();
        assert_eq!(c.broker_url, "localhost");
        assert_eq!(c.broker_port, 1883);
        assert_eq!(c.keepalive, 60);
        assert!(c.clean_session);
        assert!(!c.tls.enabled);
        assert_eq!(c.transport, Transport::Tcp);
        assert_eq!(c.protocol, Protocol::V311);
        assert!(c.effective_client_id().starts_with("axum-mqtt-"));
        assert_ne!(c.effective_client_id(), c.effective_client_id());
    }

    #[test]
    fn every_key_is_read() {
        let c = load(&[
            ("MQTT_CLIENT_ID", "cid"),
            ("MQTT_BROKER_URL", "broker.local"),
            ("MQTT_BROKER_PORT", "1999"),
            ("MQTT_USERNAME", "u"),
            ("MQTT_PASSWORD", "p"),
            ("MQTT_KEEPALIVE", "5"),
            ("MQTT_CLEAN_SESSION", "false"),
            ("MQTT_TLS_ENABLED", "True"),
            ("MQTT_TLS_CA_CERTS", "/ca.pem"),
            ("MQTT_TLS_CERTFILE", "/c.pem"),
            ("MQTT_TLS_KEYFILE", "/c.key"),
            ("MQTT_TLS_INSECURE", "yes"),
            ("MQTT_TLS_VERSION", "PROTOCOL_TLSv1_2"),
            ("MQTT_LAST_WILL_TOPIC", "will/t"),
            ("MQTT_LAST_WILL_MESSAGE", "bye"),
            ("MQTT_LAST_WILL_QOS", "1"),
            ("MQTT_LAST_WILL_RETAIN", "1"),
            ("MQTT_TRANSPORT", "websockets"),
            ("MQTT_WS_PATH", "/ws"),
            ("MQTT_PROTOCOL", "5"),
            ("MQTT_SHARED_GROUP", "web"),
            ("MQTT_MAX_INFLIGHT", "7"),
            ("MQTT_MAX_PENDING", "9"),
            ("MQTT_MAX_PACKET_SIZE", "4096"),
            ("MQTT_RECONNECT_MIN_MS", "10"),
            ("MQTT_RECONNECT_MAX_MS", "20"),
            ("MQTT_HANDLER_CONCURRENCY", "3"),
            ("MQTT_HANDLER_QUEUE", "4"),
            ("OTHER_KEY", "ignored"),
        ])
        .unwrap();
        assert_eq!(c.client_id, "cid");
        assert_eq!(
            (c.broker_url.as_str(), c.broker_port),
            ("broker.local", 1999)
        );
        assert_eq!(
            (c.username.as_deref(), c.password.as_deref()),
            (Some("u"), Some("p"))
        );
        assert_eq!(c.keepalive, 5);
        assert!(!c.clean_session);
        assert!(c.tls.enabled && c.tls.insecure);
        assert_eq!(c.tls.ca_certs, Some(PathBuf::from("/ca.pem")));
        assert_eq!(c.tls.certfile, Some(PathBuf::from("/c.pem")));
        assert_eq!(c.tls.keyfile, Some(PathBuf::from("/c.key")));
        assert_eq!(c.tls.version, Some(TlsVersion::Tls12));
        let w = c.last_will.unwrap();
        assert_eq!((w.topic.as_str(), w.message.as_str()), ("will/t", "bye"));
        assert_eq!((w.qos, w.retain), (QoS::AtLeastOnce, true));
        assert_eq!(c.transport, Transport::Websockets);
        assert_eq!(c.ws_path, "/ws");
        assert_eq!(c.protocol, Protocol::V5);
        assert_eq!(c.shared_group.as_deref(), Some("web"));
        assert_eq!(
            (c.max_inflight, c.max_pending, c.max_packet_size),
            (7, 9, 4096)
        );
        assert_eq!((c.reconnect_min_ms, c.reconnect_max_ms), (10, 20));
        assert_eq!((c.handler_concurrency, c.handler_queue), (3, 4));
    }

    #[test]
    fn bad_values_name_key_and_value() {
        let cases: &[(&str, &str, &str)] = &[
            ("MQTT_BROKER_PORT", "0", "port"),
            ("MQTT_BROKER_PORT", "70000", "port"),
            ("MQTT_KEEPALIVE", "-1", "whole number"),
            ("MQTT_CLEAN_SESSION", "maybe", "true or false"),
            ("MQTT_TLS_ENABLED", "2", "true or false"),
            ("MQTT_TLS_VERSION", "1.1", "not supported"),
            ("MQTT_TLS_VERSION", "ssl3", "1.2 or 1.3"),
            ("MQTT_LAST_WILL_QOS", "3", "0, 1 or 2"),
            ("MQTT_TRANSPORT", "udp", "tcp"),
            ("MQTT_PROTOCOL", "6", "3.1.1"),
            ("MQTT_BROKER_URL", "http://x", "scheme"),
            ("MQTT_BROKER_URL", "mqtt://", "URL"),
            ("MQTT_BROKER_URL", "a b", "host name"),
            ("MQTT_MAX_INFLIGHT", "0", "at least 1"),
            ("MQTT_MAX_INFLIGHT", "70000", "1-65535"),
            ("MQTT_SHARED_GROUP", "a/b", "group"),
            ("MQTT_HANDLER_CONCURRENCY", "0", "1-1024"),
            ("MQTT_KEEPALIVE", "65536", "65535"),
        ];
        for (key, value, needle) in cases {
            let mut pairs = vec![(*key, *value)];
            if key.starts_with("MQTT_LAST_WILL_QOS") {
                pairs.push(("MQTT_LAST_WILL_TOPIC", "w"));
            }
            let e = load(&pairs).expect_err(key);
            assert_eq!(&e.key, key, "{e}");
            assert!(e.to_string().contains(value), "{e}");
            assert!(e.reason.contains(needle), "{key}={value}: {e}");
        }
        let e = load(&[("MQTT_CLEAN_SESSION", "0")]).unwrap_err();
        assert_eq!(e.key, "MQTT_CLEAN_SESSION");
        let e = load(&[("MQTT_LAST_WILL_TOPIC", "a/#")]).unwrap_err();
        assert_eq!(e.key, "MQTT_LAST_WILL_TOPIC");
        let e = load(&[("MQTT_TLS_CERTFILE", "/c.pem")]).unwrap_err();
        assert_eq!(e.key, "MQTT_TLS_CERTFILE");
        // rumqttc's MQTT 5 client panics on a keepalive below 5 s: a config error instead.
        for ka in ["0", "1", "4"] {
            let e = load(&[("MQTT_PROTOCOL", "5"), ("MQTT_KEEPALIVE", ka)]).unwrap_err();
            assert_eq!((e.key.as_str(), e.value.as_str()), ("MQTT_KEEPALIVE", ka));
            assert!(e.reason.contains("MQTT 5"), "{e}");
            assert!(load(&[("MQTT_KEEPALIVE", ka)]).is_ok(), "3.1.1 allows {ka}");
        }
        assert!(load(&[("MQTT_PROTOCOL", "5"), ("MQTT_KEEPALIVE", "5")]).is_ok());
    }

    #[test]
    fn flask_mqtt_names() {
        let c = load(&[
            ("MQTT_PROTOCOL_VERSION", "5"),
            ("MQTT_TLS_CERT_REQS", "ssl.CERT_NONE"),
            ("MQTT_CONNECTION_TIMEOUT", "3"),
        ])
        .unwrap();
        assert_eq!(c.protocol, Protocol::V5);
        assert!(c.tls.insecure);
        assert_eq!(c.connect_timeout, 3);
        assert_eq!(
            load(&[("MQTT_PROTOCOL_VERSION", "4")]).unwrap().protocol,
            Protocol::V311
        );
        let e = load(&[("MQTT_PROTOCOL_VERSION", "3")]).unwrap_err();
        assert_eq!(e.key, "MQTT_PROTOCOL_VERSION");
        assert!(e.reason.contains("3.1 is not supported"));
        let e = load(&[("MQTT_TLS_CERT_REQS", "sometimes")]).unwrap_err();
        assert_eq!(e.key, "MQTT_TLS_CERT_REQS");
        assert!(
            !load(&[
                ("MQTT_TLS_CERT_REQS", "CERT_REQUIRED"),
                ("MQTT_TLS_CIPHERS", "HIGH")
            ])
            .unwrap()
            .tls
            .insecure
        );
        assert_eq!(
            load(&[("MQTT_CONNECTION_TIMEOUT", "0")]).unwrap_err().key,
            "MQTT_CONNECTION_TIMEOUT"
        );
    }

    #[test]
    fn prefix_selects_broker() {
        let pairs = [
            ("MQTT_BROKER_URL", "one"),
            ("MQTT2_BROKER_URL", "two"),
            ("MQTT2_BROKER_PORT", "x"),
        ];
        assert_eq!(
            MqttConfig::from_pairs("MQTT", pairs).unwrap().broker_url,
            "one"
        );
        let e = MqttConfig::from_pairs("MQTT2", pairs).unwrap_err();
        assert_eq!(e.key, "MQTT2_BROKER_PORT");
    }

    #[test]
    fn urls() {
        let c = MqttConfig::from_url("mqtt://us%40er:p%3Ass@h:1234").unwrap();
        assert_eq!((c.broker_url.as_str(), c.broker_port), ("h", 1234));
        assert_eq!(
            (c.username.as_deref(), c.password.as_deref()),
            (Some("us@er"), Some("p:ss"))
        );
        let c = MqttConfig::from_url("mqtts://h").unwrap();
        assert!(c.tls.enabled);
        assert_eq!(c.broker_port, 8883);
        let c = MqttConfig::from_url("ws://h:9001").unwrap();
        assert_eq!(
            (c.transport, c.broker_port, c.ws_path.as_str()),
            (Transport::Websockets, 9001, "/mqtt")
        );
        let c = MqttConfig::from_url("mqtt://[::1]:1883").unwrap();
        assert_eq!(c.broker_url, "::1");
        // A separate BROKER_PORT applies when the URL has none.
        let c = load(&[
            ("MQTT_BROKER_URL", "mqtt://h"),
            ("MQTT_BROKER_PORT", "2000"),
        ])
        .unwrap();
        assert_eq!(c.broker_port, 2000);
        let e = load(&[("MQTT_PASSWORD", "x"), ("MQTT_BROKER_URL", "mqtt://a b")]).unwrap_err();
        assert_eq!(e.key, "MQTT_BROKER_URL");
    }

    #[test]
    fn serde_round_trip() {
        let c: MqttConfig = serde_json::from_str(
            r#"{"broker_url":"b","protocol":"5","transport":"websockets","tls":{"enabled":true,"version":"1.3"},
                "last_will":{"topic":"w","qos":2}}"#,
        )
        .unwrap();
        assert_eq!(c.protocol, Protocol::V5);
        assert_eq!(c.tls.version, Some(TlsVersion::Tls13));
        assert_eq!(c.last_will.as_ref().unwrap().qos, QoS::ExactlyOnce);
        let back: MqttConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
