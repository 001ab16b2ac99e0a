//! Where the broker listens and the limits it enforces.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where and how the embedded broker listens.
///
/// ```
/// use axum_mqtt_broker::BrokerConfig;
///
/// let cfg = BrokerConfig::new("127.0.0.1:1883".parse().unwrap())
///     .with_ws("127.0.0.1:8083".parse().unwrap())
///     .with_max_packet_size(2 << 20);
/// assert_eq!(cfg.limits.max_packet_size, 2 << 20);
/// assert_eq!(cfg.ws.unwrap().port(), 8083);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BrokerConfig {
    /// MQTT over TCP, both 3.1.1 and 5 (port 0: any free port).
    pub listen: SocketAddr,
    /// Optional MQTT over WebSocket listener, both versions.
    pub ws: Option<SocketAddr>,
    /// Optional MQTT over TLS listener (mqtts).
    pub tls: Option<TlsListener>,
    /// What one client may do and hold.
    pub limits: Limits,
    /// Run as one node of an rmqtt broadcast cluster (feature `cluster`).
    #[cfg(feature = "cluster")]
    pub cluster: Option<crate::ClusterConfig>,
}

/// An MQTT over TLS listener.
///
/// ```
/// use axum_mqtt_broker::TlsListener;
///
/// let tls = TlsListener::new("127.0.0.1:8883".parse().unwrap(), "server.pem", "server.key");
/// assert_eq!(tls.cert.to_str(), Some("server.pem"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TlsListener {
    /// Listen address (port 0: any free port).
    pub addr: SocketAddr,
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
}

impl TlsListener {
    /// A TLS listener on `addr` with a PEM certificate chain and key.
    pub fn new(addr: SocketAddr, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        TlsListener {
            addr,
            cert: cert.into(),
            key: key.into(),
        }
    }
}

/// Limits per client. The defaults lose nothing in this project's own floods (100k QoS 1 messages
/// to one slow subscriber) while bounding what one client can make the broker hold.
///
/// Memory is bounded by `max_mqueue_len × message size` per subscriber that does not keep up, plus
/// `max_inflight` messages awaiting its acknowledgement. When a subscriber's queue is full, further
/// messages for it are dropped and counted ([`BrokerStats::messages_dropped`](crate::BrokerStats)).
///
/// ```
/// use axum_mqtt_broker::Limits;
///
/// let l = Limits::default();
/// assert_eq!(l.max_mqueue_len, 200_000);
/// assert!(l.max_topic_aliases > 0);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Limits {
    /// Largest MQTT packet accepted, in bytes (default 1 MiB + 64 KiB of headers).
    pub max_packet_size: u32,
    /// Unacknowledged QoS 1/2 messages sent to one client at a time (default 1024; an MQTT 5
    /// client's smaller Receive Maximum wins).
    pub max_inflight: u16,
    /// Messages queued for one client beyond its in-flight window, also while a persistent session
    /// is offline (default 200 000).
    pub max_mqueue_len: usize,
    /// How long a queued message is kept when its publisher set no expiry (default 1 hour).
    pub message_expiry: Duration,
    /// How long a 3.1.1 `clean_session = false` session is kept after its client left (MQTT 5
    /// clients choose their own expiry; default 2 hours).
    pub session_expiry: Duration,
    /// Topic aliases a client may use towards the broker (MQTT 5; default 64).
    pub max_topic_aliases: u16,
    /// Highest QoS a client may publish with, 0 to 2 (default 2). MQTT 5 clients are told in the
    /// CONNACK, and one that publishes above it is disconnected with 0x9B "QoS not supported";
    /// subscriptions are granted at most this QoS.
    pub max_qos: u8,
    /// Open connections per listener (default 10 000).
    pub max_connections: usize,
    /// Time a new connection has to send its CONNECT (default 10 s).
    pub handshake_timeout: Duration,
    /// Retained messages kept, all topics together (default 100 000; 0 means no limit).
    pub max_retained_messages: usize,
    /// Levels in a topic or filter (default 128, as EMQX). A deeper publish is refused (MQTT 5:
    /// PUBACK "not authorized" with a reason string; 3.1.1 has no way to say so and it is
    /// dropped), a deeper subscription is refused in its SUBACK.
    pub max_topic_levels: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet_size: (1 << 20) + 64 * 1024,
            max_inflight: 1024,
            max_mqueue_len: 200_000,
            message_expiry: Duration::from_secs(3600),
            session_expiry: Duration::from_secs(2 * 3600),
            max_topic_aliases: 64,
            max_qos: 2,
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            max_retained_messages: 100_000,
            max_topic_levels: 128,
        }
    }
}

impl BrokerConfig {
    /// A broker with one MQTT listener (3.1.1 and 5) on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        BrokerConfig {
            listen,
            ws: None,
            tls: None,
            limits: Limits::default(),
            #[cfg(feature = "cluster")]
            cluster: None,
        }
    }

    /// Adds a WebSocket listener (3.1.1 and 5 inside WebSocket frames).
    pub fn with_ws(mut self, addr: SocketAddr) -> Self {
        self.ws = Some(addr);
        self
    }

    /// Adds a TLS listener (mqtts) with a PEM certificate chain and key.
    pub fn with_tls(mut self, tls: TlsListener) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets the largest accepted MQTT packet in bytes.
    pub fn with_max_packet_size(mut self, bytes: u32) -> Self {
        self.limits.max_packet_size = bytes;
        self
    }

    /// Sets the highest QoS a client may publish with (0 to 2; see [`Limits::max_qos`]).
    ///
    /// ```
    /// use axum_mqtt_broker::BrokerConfig;
    ///
    /// let cfg = BrokerConfig::new("127.0.0.1:0".parse().unwrap()).with_max_qos(1);
    /// assert_eq!(cfg.limits.max_qos, 1);
    /// ```
    pub fn with_max_qos(mut self, qos: u8) -> Self {
        self.limits.max_qos = qos;
        self
    }

    /// Makes this broker one node of a cluster (feature `cluster`); see [`ClusterConfig`](crate::ClusterConfig).
    #[cfg(feature = "cluster")]
    pub fn with_cluster(mut self, cluster: crate::ClusterConfig) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Replaces all limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}
