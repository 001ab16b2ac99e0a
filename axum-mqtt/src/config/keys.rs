//! The `MQTT_*` keys: one declarative table drives the parser ([`MqttConfig::from_pairs`]), the
//! list of known keys ([`MqttConfig::keys`]) and the documentation table (`docs/config_keys.md`,
//! checked against this table by a test).

use std::path::PathBuf;
use std::time::Duration;

use super::{
    config_error, ConfigError, LastWill, MqttConfig, OutboxConfig, Protocol, TlsVersion, Transport,
};
use crate::message::QoS;

/// One key: its name (without the prefix), what the docs say, and how a value is applied.
pub(super) struct Key {
    pub name: &'static str,
    #[cfg_attr(not(test), allow(dead_code))] // read by the docs-table test
    pub default: &'static str,
    #[cfg_attr(not(test), allow(dead_code))]
    pub meaning: &'static str,
    /// Applied after every other key (the broker URL: its port and credentials win).
    pub last: bool,
    apply: fn(&mut Draft, &str) -> Result<(), Rejected>,
}

/// Why a key's value was refused: a reason (the error then names the key and the whole value), or
/// a whole error (naming one entry of a list, say).
pub(super) enum Rejected {
    Reason(String),
    Error(ConfigError),
}

impl From<String> for Rejected {
    fn from(reason: String) -> Self {
        Rejected::Reason(reason)
    }
}

impl From<&str> for Rejected {
    fn from(reason: &str) -> Self {
        Rejected::Reason(reason.to_string())
    }
}

/// A configuration being read: the config, and the pieces that only make sense together.
pub(super) struct Draft {
    cfg: MqttConfig,
    will_topic: Option<String>,
    will_message: String,
    will_qos: QoS,
    will_retain: bool,
    port_given: bool,
}

const fn key(
    name: &'static str,
    default: &'static str,
    meaning: &'static str,
    apply: fn(&mut Draft, &str) -> Result<(), Rejected>,
) -> Key {
    Key {
        name,
        default,
        meaning,
        last: false,
        apply,
    }
}

fn whole(v: &str) -> Result<u64, String> {
    v.trim()
        .parse::<u64>()
        .map_err(|_| "expected a whole number".into())
}

fn size(v: &str) -> Result<usize, String> {
    whole(v).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

fn secs(v: &str) -> Result<Duration, String> {
    whole(v).map(Duration::from_secs)
}

fn millis(v: &str) -> Result<Duration, String> {
    whole(v).map(Duration::from_millis)
}

fn flag(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

fn path(v: &str) -> Option<PathBuf> {
    Some(PathBuf::from(v))
}

/// The outbox settings an `OUTBOX_MAX_*` key adjusts (`OUTBOX_PATH` is applied before them).
fn outbox(d: &mut Draft) -> Result<&mut OutboxConfig, String> {
    d.cfg
        .outbox
        .as_mut()
        .ok_or_else(|| "needs OUTBOX_PATH (there is no outbox without a file)".into())
}

fn tls_version(v: &str) -> Result<TlsVersion, String> {
    let norm = v
        .trim()
        .to_ascii_lowercase()
        .replace("protocol_", "")
        .replace('_', ".");
    match norm.as_str() {
        "1.2" | "tlsv1.2" | "tls1.2" | "tlsv1.2.client" => Ok(TlsVersion::Tls12),
        "1.3" | "tlsv1.3" | "tls1.3" => Ok(TlsVersion::Tls13),
        "1.0" | "1.1" | "tlsv1" | "tlsv1.1" | "tls1.0" | "tls1.1" => {
            Err("TLS 1.0 and 1.1 are not supported (rustls); use 1.2 or 1.3".into())
        }
        _ => Err("expected 1.2 or 1.3".into()),
    }
}

/// Every key, in the order values are applied (later keys win: `PROTOCOL` over
/// `PROTOCOL_VERSION`, the URL over `BROKER_PORT`).
#[rustfmt::skip]
pub(super) const KEYS: &[Key] = &[
    key("CLIENT_ID", "random `axum-mqtt-…`",
        "client identifier; `{hostname}`, `{pid}` and `{random}` (8 hex digits) are filled in once per client when it starts, \
         e.g. `web-{hostname}-{pid}` for one id per worker (other braces are an error)",
        |d, v| { d.cfg.client_id = v.to_string(); Ok(()) }),
    Key { last: true, ..key("BROKER_URL", "`localhost`",
        "host name, or a whole URL `mqtt://user:pass@host:1883`, `mqtts://`, `ws://host:port/path`, `wss://`; \
         or a comma-separated list of brokers to fail over between, round robin (`mqtt://a:1883,mqtt://b:1883`): \
         all host names or all URLs of one scheme, sharing credentials, TLS and WebSocket path",
        |d, v| { let given = d.port_given; d.cfg.apply_url("BROKER_URL", v, given).map_err(Rejected::Error) }) },
    key("BROKER_PORT", "1883 (8883 for `mqtts`)", "TCP port (of every broker of a `BROKER_URL` list that names none)",
        |d, v| match v.trim().parse::<u16>() {
            Ok(p) if p > 0 => { d.cfg.broker_port = p; d.port_given = true; Ok(()) }
            _ => Err("expected a port number 1-65535".into()),
        }),
    key("USERNAME", "none", "user name",
        |d, v| { d.cfg.username = Some(v.to_string()); Ok(()) }),
    key("PASSWORD", "none", "password (masked in errors and `Debug`)",
        |d, v| { d.cfg.password = Some(v.to_string()); Ok(()) }),
    key("KEEPALIVE", "60", "seconds between pings, at most 65535 (0 disables on 3.1.1; MQTT 5 needs at least 5)",
        |d, v| { d.cfg.keepalive = secs(v)?; Ok(()) }),
    key("CLEAN_SESSION", "true",
        "start a fresh session; false keeps subscriptions and queued messages at the broker (needs a fixed `CLIENT_ID`)",
        |d, v| { d.cfg.clean_session = flag(v)?; Ok(()) }),
    key("TLS_ENABLED", "false", "connect with TLS (rustls)",
        |d, v| { d.cfg.tls.enabled = flag(v)?; Ok(()) }),
    key("TLS_CA_CERTS", "system roots", "CA bundle (PEM) to verify the broker",
        |d, v| { d.cfg.tls.ca_certs = path(v); Ok(()) }),
    key("TLS_CERTFILE", "none", "client certificate (PEM); goes with `TLS_KEYFILE`",
        |d, v| { d.cfg.tls.certfile = path(v); Ok(()) }),
    key("TLS_KEYFILE", "none", "client private key (PEM)",
        |d, v| { d.cfg.tls.keyfile = path(v); Ok(()) }),
    key("TLS_INSECURE", "false", "do not verify the broker's certificate (testing only)",
        |d, v| { d.cfg.tls.insecure = flag(v)?; Ok(()) }),
    key("TLS_VERSION", "any", "`1.2` or `1.3` (also `tlsv1.2`, `PROTOCOL_TLSv1_2`)",
        |d, v| { d.cfg.tls.version = Some(tls_version(v)?); Ok(()) }),
    key("TLS_CERT_REQS", "`CERT_REQUIRED`", "Flask-MQTT's `ssl.CERT_*`: `CERT_NONE` (0) is `TLS_INSECURE`",
        |d, v| match v.trim().to_ascii_uppercase().trim_start_matches("SSL.") {
            "0" | "CERT_NONE" => { d.cfg.tls.insecure = true; Ok(()) }
            "1" | "2" | "CERT_OPTIONAL" | "CERT_REQUIRED" => Ok(()),
            _ => Err("expected CERT_NONE, CERT_OPTIONAL or CERT_REQUIRED (0, 1, 2)".into()),
        }),
    key("TLS_CIPHERS", "", "accepted for compatibility and ignored (rustls offers only its safe cipher suites)",
        |_, _| { tracing::warn!("TLS_CIPHERS is ignored: rustls only offers its safe default cipher suites"); Ok(()) }),
    key("LAST_WILL_TOPIC", "none", "topic of the will; the will is set when this is",
        |d, v| { d.will_topic = Some(v.to_string()); Ok(()) }),
    key("LAST_WILL_MESSAGE", "\"\"", "payload of the will",
        |d, v| { d.will_message = v.to_string(); Ok(()) }),
    key("LAST_WILL_QOS", "0", "QoS of the will",
        |d, v| { d.will_qos = QoS::parse(v).ok_or("expected 0, 1 or 2")?; Ok(()) }),
    key("LAST_WILL_RETAIN", "false", "retain flag of the will",
        |d, v| { d.will_retain = flag(v)?; Ok(()) }),
    key("TRANSPORT", "`tcp`", "`tcp` or `websockets`",
        |d, v| match v.trim().to_ascii_lowercase().as_str() {
            "tcp" => { d.cfg.transport = Transport::Tcp; Ok(()) }
            "websockets" | "websocket" | "ws" => { d.cfg.transport = Transport::Websockets; Ok(()) }
            _ => Err("expected `tcp` or `websockets`".into()),
        }),
    key("WS_PATH", "`/mqtt`", "WebSocket path",
        |d, v| { d.cfg.ws_path = v.to_string(); Ok(()) }),
    key("PROTOCOL_VERSION", "", "Flask-MQTT's name: paho's `4` (3.1.1) or `5`",
        |d, v| match v.trim() {
            "4" | "MQTTv311" => { d.cfg.protocol = Protocol::V311; Ok(()) }
            "5" | "MQTTv5" => { d.cfg.protocol = Protocol::V5; Ok(()) }
            "3" | "MQTTv31" => Err("MQTT 3.1 is not supported; use 4 (3.1.1) or 5".into()),
            _ => Err("expected 4 (MQTT 3.1.1) or 5".into()),
        }),
    key("PROTOCOL", "`3.1.1`", "`3.1.1` (also `4`, `MQTTv311`) or `5` (`MQTTv5`)",
        |d, v| { d.cfg.protocol = v.parse()?; Ok(()) }),
    key("CONNECTION_TIMEOUT", "10", "seconds to wait for TCP/TLS/CONNACK before retrying",
        |d, v| { d.cfg.connect_timeout = secs(v)?; Ok(()) }),
    key("SHARED_GROUP", "none", "subscribe routes as `$share/<group>/<filter>` so app instances split the load",
        |d, v| { d.cfg.shared_group = Some(v.to_string()); Ok(()) }),
    key("MAX_INFLIGHT", "100", "unacknowledged QoS 1/2 publishes on the wire",
        |d, v| { d.cfg.max_inflight = u16::try_from(whole(v)?).map_err(|_| "expected 1-65535")?; Ok(()) }),
    key("MAX_PENDING", "1000", "publish/subscribe requests waiting for the broker before `publish` waits (backpressure)",
        |d, v| { d.cfg.max_pending = size(v)?; Ok(()) }),
    key("MAX_PACKET_SIZE", "1048576", "largest packet sent or received, in bytes",
        |d, v| { d.cfg.max_packet_size = size(v)?; Ok(()) }),
    key("RECONNECT_MIN_MS", "100", "first reconnect delay, in milliseconds",
        |d, v| { d.cfg.reconnect_min = millis(v)?; Ok(()) }),
    key("RECONNECT_MAX_MS", "30000", "largest reconnect delay (capped exponential backoff with jitter), in milliseconds",
        |d, v| { d.cfg.reconnect_max = millis(v)?; Ok(()) }),
    key("HANDLER_CONCURRENCY", "8", "message handlers running at once (order per topic is kept)",
        |d, v| { d.cfg.handler_concurrency = size(v)?; Ok(()) }),
    key("HANDLER_QUEUE", "256", "messages waiting per handler lane before reading from the broker pauses",
        |d, v| { d.cfg.handler_queue = size(v)?; Ok(()) }),
    key("OUTBOX_PATH", "none", "file of the durable outbox (feature `outbox`): `publish(..).durable()` stores QoS 1/2 messages there until the broker acknowledged them",
        |d, v| { d.cfg.outbox = Some(OutboxConfig::new(v.trim())); Ok(()) }),
    key("OUTBOX_MAX_MESSAGES", "100000", "messages the outbox holds before a durable publish fails with `OutboxFull`",
        |d, v| { outbox(d)?.max_messages = whole(v)?.max(1); Ok(()) }),
    key("OUTBOX_MAX_BYTES", "67108864", "topic and payload bytes the outbox holds before `OutboxFull`",
        |d, v| { outbox(d)?.max_bytes = whole(v)?.max(1); Ok(()) }),
    key("REFRESH_TIME", "", "accepted for compatibility and ignored",
        |_, _| Ok(())),
];

impl MqttConfig {
    /// Every key [`from_pairs`](Self::from_pairs) reads, without the prefix (`MQTT_` + key).
    ///
    /// ```
    /// assert!(axum_mqtt::MqttConfig::keys().any(|k| k == "BROKER_URL"));
    /// ```
    pub fn keys() -> impl Iterator<Item = &'static str> {
        KEYS.iter().map(|k| k.name)
    }

    /// Reads `<PREFIX>_<KEY>` entries from any key-value source (env, a `.env` file, a Flask-style
    /// config dict). Keys of other prefixes are ignored; unknown keys of this prefix are logged;
    /// an empty value leaves the key's default.
    ///
    #[doc = include_str!("../docs/config_keys.md")]
    ///
    /// ```
    /// use axum_mqtt::MqttConfig;
    ///
    /// let cfg = MqttConfig::from_pairs("MQTT", [
    ///     ("MQTT_BROKER_URL", "mqtt://user:secret@broker.example:1884"),
    ///     ("MQTT_KEEPALIVE", "5"),
    /// ])?;
    /// assert_eq!(cfg.broker_url, "broker.example");
    /// assert_eq!(cfg.broker_port, 1884);
    /// assert_eq!(cfg.username.as_deref(), Some("user"));
    ///
    /// let err = MqttConfig::from_pairs("MQTT", [("MQTT_BROKER_PORT", "eighty")]).unwrap_err();
    /// assert_eq!(err.to_string(), "MQTT_BROKER_PORT=\"eighty\": expected a port number 1-65535");
    /// # Ok::<(), axum_mqtt::ConfigError>(())
    /// ```
    pub fn from_pairs<K, V>(
        prefix: &str,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let head = format!("{prefix}_");
        let mut found: Vec<(&'static Key, String)> = Vec::new();
        for (k, v) in pairs {
            let Some(short) = k.as_ref().strip_prefix(&head) else {
                continue;
            };
            match KEYS.iter().find(|key| key.name == short) {
                Some(key) => found.push((key, v.as_ref().to_string())),
                None => tracing::warn!(key = k.as_ref(), "unknown MQTT configuration key ignored"),
            }
        }
        let mut draft = Draft {
            cfg: MqttConfig {
                prefix: Some(prefix.to_string()),
                ..Default::default()
            },
            will_topic: None,
            will_message: String::new(),
            will_qos: QoS::AtMostOnce,
            will_retain: false,
            port_given: false,
        };
        for last in [false, true] {
            for key in KEYS.iter().filter(|k| k.last == last) {
                // The last value wins when a source repeats a key (as with the environment).
                let Some((_, value)) = found.iter().rev().find(|(k, _)| k.name == key.name) else {
                    continue;
                };
                if value.trim().is_empty() {
                    continue;
                }
                (key.apply)(&mut draft, value).map_err(|r| match r {
                    Rejected::Reason(reason) => config_error(prefix, key.name, value, &reason),
                    Rejected::Error(e) => e,
                })?;
            }
        }
        let mut cfg = draft.cfg;
        if let Some(topic) = draft.will_topic {
            cfg.last_will = Some(LastWill {
                topic,
                message: draft.will_message,
                qos: draft.will_qos,
                retain: draft.will_retain,
            });
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// The documentation table of every key, as `docs/config_keys.md` holds it.
#[cfg(test)]
pub(super) fn markdown() -> String {
    let mut out = String::from(
        "Every key Flask-MQTT reads is understood under the same name, read with a prefix \
         (`MQTT` by default, `MQTT2` for a second broker, …):\n\n| key | default | meaning |\n|---|---|---|\n",
    );
    for k in KEYS {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            k.name, k.default, k.meaning
        ));
    }
    out
}
