//! The broker URL: `mqtt://[user[:pass]@]host[:port]`, `mqtts://`, `ws://host:port/path`, `wss://`,
//! or a comma-separated list of them (brokers to fail over between).
//!
//! The rule for a list: every entry is written the same way, either all host names (transport and
//! TLS then come from `TRANSPORT` / `TLS_ENABLED`, the port from `BROKER_PORT`) or all URLs of one
//! scheme family (`mqtt`/`tcp`, `mqtts`/`ssl`/`tls`, `ws`, `wss`). A URL without a port gets
//! `BROKER_PORT` when that is set, else its scheme's default. Credentials and a WebSocket path,
//! where an entry gives them, must agree with the first entry's: one client has one of each.

use super::{BrokerAddr, ConfigError, MqttConfig, Transport};

/// How an entry reaches its broker, as its URL scheme says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scheme {
    transport: Transport,
    tls: bool,
    default_port: u16,
}

/// One entry of `BROKER_URL`, as written.
#[derive(Debug, Default, PartialEq, Eq)]
struct Entry {
    host: String,
    port: Option<u16>,
    /// `None` for a bare host name.
    scheme: Option<Scheme>,
    username: Option<String>,
    password: Option<String>,
    /// The WebSocket path, when the URL has one.
    path: Option<String>,
}

/// Parses one entry: a bare host name or a URL. The error is the reason.
fn parse_entry(value: &str) -> Result<Entry, String> {
    if !value.contains("://") {
        if value.is_empty() || value.contains(['/', ' ', '@']) {
            return Err("expected a host name or a URL like mqtt://host:1883".into());
        }
        return Ok(Entry {
            host: value.to_string(),
            ..Entry::default()
        });
    }
    let url = ::url::Url::parse(value).map_err(|e| format!("not a valid URL ({e})"))?;
    let (transport, tls, default_port) = match url.scheme() {
        "mqtt" | "tcp" => (Transport::Tcp, false, 1883),
        "mqtts" | "ssl" | "tls" => (Transport::Tcp, true, 8883),
        "ws" => (Transport::Websockets, false, 80),
        "wss" => (Transport::Websockets, true, 443),
        _ => return Err("expected scheme mqtt://, mqtts://, ws:// or wss://".into()),
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("the URL has no host")?;
    let path = url.path();
    let path = (transport == Transport::Websockets && path != "/" && !path.is_empty())
        .then(|| path.to_string());
    Ok(Entry {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port: url.port(),
        scheme: Some(Scheme {
            transport,
            tls,
            default_port,
        }),
        username: (!url.username().is_empty()).then(|| percent_decode(url.username())),
        password: url.password().map(percent_decode),
        path,
    })
}

/// The entry with its password, if any, replaced by `***` (for error messages).
fn redact(entry: &str) -> String {
    let Some(start) = entry.find("://").map(|i| i + 3) else {
        return entry.to_string();
    };
    let rest = &entry[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return entry.to_string();
    };
    match authority[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &entry[..start],
            &authority[..colon],
            &rest[at..]
        ),
        None => entry.to_string(),
    }
}

impl MqttConfig {
    /// Parses a broker URL: `mqtt://[user[:pass]@]host[:port]`, `mqtts://`, `ws://host:port/path`,
    /// `wss://`; or a comma-separated list of brokers to fail over between, all of one scheme
    /// (the first becomes `broker_url`/`broker_port`, the others [`failover`](Self::failover)).
    ///
    /// ```
    /// let cfg = axum_mqtt::MqttConfig::from_url("wss://broker.example/ws")?;
    /// assert!(cfg.tls.enabled);
    /// assert_eq!(cfg.broker_port, 443);
    /// assert_eq!(cfg.ws_path, "/ws");
    ///
    /// let cfg = axum_mqtt::MqttConfig::from_url("mqtt://a:1883,mqtt://b:1884")?;
    /// assert_eq!(cfg.brokers().len(), 2);
    /// let mixed = axum_mqtt::MqttConfig::from_url("mqtt://a,ws://b").unwrap_err();
    /// assert_eq!((mixed.key.as_str(), mixed.value.as_str()), ("MQTT_URL", "ws://b"));
    /// # Ok::<(), axum_mqtt::ConfigError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        let mut cfg = MqttConfig::default();
        cfg.apply_url("URL", url, false)?;
        Ok(cfg)
    }

    /// Sets the brokers (and, for URLs, scheme, port, credentials, path) from `BROKER_URL`.
    /// `port_given`: `BROKER_PORT` was set (its value is in `broker_port`).
    pub(super) fn apply_url(
        &mut self,
        key: &str,
        value: &str,
        port_given: bool,
    ) -> Result<(), ConfigError> {
        let value = value.trim();
        let given_port = port_given.then_some(self.broker_port);
        let mut entries = value.split(',').map(str::trim);
        let raw = entries.next().unwrap_or_default();
        let first = self.entry(key, value, raw)?;
        self.broker_url = first.host;
        if let Some(s) = first.scheme {
            self.transport = s.transport;
            self.tls.enabled |= s.tls;
        }
        match (first.port, first.scheme) {
            (Some(p), _) => self.broker_port = p,
            (None, Some(s)) if !port_given => self.broker_port = s.default_port,
            (None, _) => {}
        }
        if first.username.is_some() {
            self.username = first.username;
        }
        if first.password.is_some() {
            self.password = first.password;
        }
        if let Some(path) = first.path {
            self.ws_path = path;
        }
        let mut failover = Vec::new();
        for raw in entries {
            let e = self.entry(key, value, raw)?;
            let disagree = |what: &str| {
                self.error(
                    key,
                    &redact(raw),
                    &format!("every broker of the list needs the same {what} as the first"),
                )
            };
            if e.scheme != first.scheme {
                return Err(disagree(
                    "form (all host names, or all URLs of one scheme: mqtt://, mqtts://, ws:// or wss://)",
                ));
            }
            if e.username.is_some() && e.username != self.username
                || e.password.is_some() && e.password != self.password
            {
                return Err(disagree(
                    "credentials (one MQTT_USERNAME/PASSWORD per client)",
                ));
            }
            if e.path.as_ref().is_some_and(|p| *p != self.ws_path) {
                return Err(disagree("WebSocket path (one WS_PATH per client)"));
            }
            let port = match (e.port, e.scheme, given_port) {
                (Some(p), _, _) => p,
                (None, _, Some(p)) => p,
                (None, Some(s), None) => s.default_port,
                (None, None, None) => self.broker_port,
            };
            failover.push(BrokerAddr::new(e.host, port));
        }
        self.failover = failover;
        Ok(())
    }

    /// Parses one entry of `value` for `key`; errors name the entry, its password masked.
    fn entry(&self, key: &str, value: &str, raw: &str) -> Result<Entry, ConfigError> {
        if raw.is_empty() && value.contains(',') {
            return Err(self.error(key, &redact(value), "an empty entry in the list of brokers"));
        }
        parse_entry(raw).map_err(|reason| self.error(key, &redact(raw), &reason))
    }
}

fn percent_decode(s: &str) -> String {
    ::url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries() {
        let e = parse_entry("h").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.scheme), ("h", None, None));
        let e = parse_entry("wss://u:p%40@[::1]:9/ws").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", Some(9)));
        assert_eq!(
            e.scheme,
            Some(Scheme {
                transport: Transport::Websockets,
                tls: true,
                default_port: 443
            })
        );
        assert_eq!(
            (e.username.as_deref(), e.password.as_deref()),
            (Some("u"), Some("p@"))
        );
        assert_eq!(e.path.as_deref(), Some("/ws"));
        // `tcp` is `mqtt` under another name: the same scheme for a list.
        assert_eq!(
            parse_entry("tcp://a").unwrap().scheme,
            parse_entry("mqtt://b").unwrap().scheme
        );
        assert!(parse_entry("").is_err());
        assert!(parse_entry("http://a").unwrap_err().contains("scheme"));
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(redact("mqtt://u:secret@h:1"), "mqtt://u:***@h:1");
        assert_eq!(redact("mqtt://u@h"), "mqtt://u@h");
        assert_eq!(redact("ws://h:80/p@x"), "ws://h:80/p@x");
        assert_eq!(redact("host"), "host");
        assert_eq!(redact("mqtt://u:a@b@h"), "mqtt://u:***@h");
    }
}
