//! An embedded MQTT broker for axum-mqtt apps, examples and tests.
//!
//! This wraps [rumqttd](https://docs.rs/rumqttd) so that a program can serve MQTT from its own process
//! with one call, no installation needed. rumqttd speaks one protocol version per listener, so the
//! broker opens one port for MQTT 3.1.1 and, optionally, one for MQTT 5 and one for MQTT over
//! WebSocket (3.1.1).
//!
//! rumqttd has no stop call: the broker runs until the process exits. Start it once per process.
//!
//! ```no_run
//! use axum_mqtt_broker::{BrokerConfig, EmbeddedBroker};
//!
//! let broker = EmbeddedBroker::start(BrokerConfig::new("127.0.0.1:1883".parse().unwrap()))?;
//! println!("MQTT 3.1.1 on {}", broker.v4_addr());
//! # Ok::<(), axum_mqtt_broker::BrokerError>(())
//! ```
#![deny(missing_docs)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// What can go wrong when starting the embedded broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A listen address is taken by another program (or not ours to bind).
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Which listener (`MQTT 3.1.1`, `MQTT 5`, `WebSocket`).
        what: &'static str,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The broker thread could not be started.
    #[error("embedded broker failed to start: {0}")]
    Start(String),
    /// A listener did not accept connections in time.
    #[error("embedded broker did not open {addr} within {waited:?}")]
    NotListening {
        /// The address that stayed closed.
        addr: SocketAddr,
        /// How long we waited.
        waited: Duration,
    },
}

/// Where and how the embedded broker listens.
///
/// ```
/// use axum_mqtt_broker::BrokerConfig;
///
/// let cfg = BrokerConfig::new("127.0.0.1:1883".parse().unwrap())
///     .with_v5("127.0.0.1:1884".parse().unwrap())
///     .with_max_payload_size(1 << 20);
/// assert_eq!(cfg.max_payload_size, 1 << 20);
/// ```
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// MQTT 3.1.1 listener.
    pub v4: SocketAddr,
    /// Optional MQTT 5 listener (rumqttd cannot serve both versions on one port).
    pub v5: Option<SocketAddr>,
    /// Optional MQTT-over-WebSocket listener (3.1.1, path `/mqtt` or any path).
    pub ws: Option<SocketAddr>,
    /// Largest accepted payload in bytes (default 256 KiB).
    pub max_payload_size: usize,
    /// Largest number of unacknowledged QoS 1/2 messages per connection (default 500).
    pub max_inflight: usize,
}

impl BrokerConfig {
    /// A broker with one MQTT 3.1.1 listener on `v4`.
    pub fn new(v4: SocketAddr) -> Self {
        BrokerConfig {
            v4,
            v5: None,
            ws: None,
            max_payload_size: 256 * 1024,
            max_inflight: 500,
        }
    }

    /// Adds an MQTT 5 listener.
    pub fn with_v5(mut self, addr: SocketAddr) -> Self {
        self.v5 = Some(addr);
        self
    }

    /// Adds a WebSocket listener (MQTT 3.1.1 inside WebSocket frames).
    pub fn with_ws(mut self, addr: SocketAddr) -> Self {
        self.ws = Some(addr);
        self
    }

    /// Sets the largest accepted payload in bytes.
    pub fn with_max_payload_size(mut self, bytes: usize) -> Self {
        self.max_payload_size = bytes;
        self
    }

    fn listeners(&self) -> Vec<(&'static str, SocketAddr)> {
        let mut out = vec![("MQTT 3.1.1", self.v4)];
        out.extend(self.v5.map(|a| ("MQTT 5", a)));
        out.extend(self.ws.map(|a| ("WebSocket", a)));
        out
    }

    fn to_rumqttd(&self) -> Config {
        let connections = ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: self.max_payload_size,
            max_inflight_count: self.max_inflight,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        };
        let server = |name: &str, listen: SocketAddr| {
            let mut map = HashMap::new();
            map.insert(
                "1".to_string(),
                ServerSettings {
                    name: name.to_string(),
                    listen,
                    tls: None,
                    next_connection_delay_ms: 1,
                    connections: connections.clone(),
                },
            );
            map
        };
        Config {
            id: 0,
            router: RouterConfig {
                max_connections: 10_010,
                max_outgoing_packet_count: 200,
                // Segments bound the broker's memory per topic: 10 × 8 MiB at most.
                max_segment_size: 8 * 1024 * 1024,
                max_segment_count: 10,
                custom_segment: None,
                initialized_filters: None,
                shared_subscriptions_strategy: Default::default(),
            },
            v4: Some(server("v4", self.v4)),
            v5: self.v5.map(|a| server("v5", a)),
            ws: self.ws.map(|a| server("ws", a)),
            ..Default::default()
        }
    }
}

/// A running embedded broker. It lives until the process exits.
#[derive(Debug, Clone)]
pub struct EmbeddedBroker {
    config: BrokerConfig,
}

impl EmbeddedBroker {
    /// Starts the broker on a background thread and returns once every listener accepts connections.
    ///
    /// Fails with [`BrokerError::Bind`] when an address is already taken, so a second copy of an app
    /// does not silently talk to someone else's broker.
    pub fn start(config: BrokerConfig) -> Result<Self, BrokerError> {
        for (what, addr) in config.listeners() {
            // rumqttd binds on its own thread and only logs failures; probe first for a clear error.
            TcpListener::bind(addr).map_err(|source| BrokerError::Bind { addr, what, source })?;
        }
        let mut broker = Broker::new(config.to_rumqttd());
        std::thread::Builder::new()
            .name("embedded-mqtt-broker".into())
            .spawn(move || {
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "embedded broker stopped");
                }
            })
            .map_err(|e| BrokerError::Start(e.to_string()))?;
        let waited = Duration::from_secs(10);
        for (_, addr) in config.listeners() {
            wait_listening(addr, waited)?;
        }
        tracing::info!(v4 = %config.v4, v5 = ?config.v5, ws = ?config.ws, "embedded MQTT broker listening");
        Ok(EmbeddedBroker { config })
    }

    /// The MQTT 3.1.1 address.
    pub fn v4_addr(&self) -> SocketAddr {
        self.config.v4
    }

    /// The MQTT 5 address, when configured.
    pub fn v5_addr(&self) -> Option<SocketAddr> {
        self.config.v5
    }

    /// The WebSocket address, when configured.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.config.ws
    }
}

fn wait_listening(addr: SocketAddr, waited: Duration) -> Result<(), BrokerError> {
    let start = Instant::now();
    while start.elapsed() < waited {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(BrokerError::NotListening { addr, waited })
}
