//! The broker URL: `mqtt://[user[:pass]@]host[:port]`, `mqtts://`, `ws://host:port/path`, `wss://`.

use super::{ConfigError, MqttConfig, Transport};

impl MqttConfig {
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

    /// Sets host (and, for a URL, scheme, port, credentials, path) from `BROKER_URL`.
    pub(super) fn apply_url(
        &mut self,
        key: &str,
        value: &str,
        port_given: bool,
    ) -> Result<(), ConfigError> {
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
        let url = ::url::Url::parse(value)
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
}

fn percent_decode(s: &str) -> String {
    ::url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}
