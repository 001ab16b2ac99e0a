//! The list of brokers a client fails over between: `broker_url:broker_port` first, then
//! [`MqttConfig::failover`].

use serde::{Deserialize, Serialize};

use super::{ConfigError, MqttConfig};

/// One broker of the list: a host name or address, and a port. Every broker of one config shares
/// its transport, TLS settings, WebSocket path and credentials.
///
/// ```
/// use axum_mqtt::BrokerAddr;
///
/// assert_eq!(BrokerAddr::new("node-b", 1883).to_string(), "node-b:1883");
/// assert_eq!(BrokerAddr::from(("::1", 1884)).to_string(), "[::1]:1884");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BrokerAddr {
    /// Host name or IP address (an IPv6 address without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl BrokerAddr {
    /// A broker at `host:port`.
    ///
    /// ```
    /// let b = axum_mqtt::BrokerAddr::new("10.0.0.2", 8883);
    /// assert_eq!((b.host.as_str(), b.port), ("10.0.0.2", 8883));
    /// ```
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        BrokerAddr {
            host: host.into(),
            port,
        }
    }
}

impl<S: Into<String>> From<(S, u16)> for BrokerAddr {
    fn from((host, port): (S, u16)) -> Self {
        BrokerAddr::new(host, port)
    }
}

/// `host:port`, with an IPv6 address in brackets (`[::1]:1883`).
impl std::fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl MqttConfig {
    /// Every broker this client may connect to, in the order they are tried:
    /// `broker_url:broker_port` first, then [`failover`](Self::failover). The client starts with the
    /// first and moves on to the next (round robin) whenever a connection attempt fails or a
    /// connection is lost.
    ///
    /// ```
    /// let cfg = axum_mqtt::MqttConfig::from_url("mqtt://node-a:1883,mqtt://node-b")?;
    /// let names: Vec<String> = cfg.brokers().iter().map(|b| b.to_string()).collect();
    /// assert_eq!(names, ["node-a:1883", "node-b:1883"]);
    /// # Ok::<(), axum_mqtt::ConfigError>(())
    /// ```
    pub fn brokers(&self) -> Vec<BrokerAddr> {
        let first = BrokerAddr::new(self.broker_url.clone(), self.broker_port);
        std::iter::once(first)
            .chain(self.failover.iter().cloned())
            .collect()
    }

    /// Sets the whole list of brokers: the first becomes `broker_url`/`broker_port`, the others
    /// [`failover`](Self::failover). An empty list changes nothing.
    ///
    /// ```
    /// use axum_mqtt::MqttConfig;
    ///
    /// let cfg = MqttConfig::default().with_brokers([("node-a", 1883), ("node-b", 1884)]);
    /// assert_eq!((cfg.broker_url.as_str(), cfg.broker_port), ("node-a", 1883));
    /// assert_eq!(cfg.failover, [axum_mqtt::BrokerAddr::new("node-b", 1884)]);
    /// assert!(cfg.validate().is_ok());
    /// ```
    pub fn with_brokers<B: Into<BrokerAddr>>(
        mut self,
        brokers: impl IntoIterator<Item = B>,
    ) -> Self {
        let mut list = brokers.into_iter().map(Into::into);
        if let Some(first) = list.next() {
            self.broker_url = first.host;
            self.broker_port = first.port;
            self.failover = list.collect();
        }
        self
    }

    /// Checks the failover entries (the first broker is checked with `BROKER_URL`/`BROKER_PORT`).
    pub(super) fn validate_failover(&self) -> Result<(), ConfigError> {
        for b in &self.failover {
            if b.host.trim().is_empty() || b.host.contains(['/', ' ', '@', ',']) {
                let v = b.to_string();
                return Err(self.error("BROKER_URL", &v, "a failover broker needs a host name"));
            }
            if b.port == 0 {
                let v = b.to_string();
                return Err(self.error(
                    "BROKER_URL",
                    &v,
                    "a failover broker needs a port number 1-65535",
                ));
            }
        }
        Ok(())
    }
}
