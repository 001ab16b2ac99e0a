//! Command line and environment: every option has a flag and an `APP_*` variable; the MQTT client
//! reads the library's `MQTT_*` keys.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum_mqtt::topic::validate_filter;
use axum_mqtt::{MqttConfig, Transport};
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use crate::addr::connect_host;
#[cfg(test)]
use crate::addr::url_authority;
use crate::host::HostRule;

const AFTER_HELP: &str = "\
MQTT client settings come from the axum-mqtt library's MQTT_* environment variables
(MQTT_CLIENT_ID, MQTT_BROKER_URL, MQTT_BROKER_PORT, MQTT_USERNAME, MQTT_PASSWORD, MQTT_KEEPALIVE,
MQTT_PROTOCOL, MQTT_TLS_*, MQTT_RECONNECT_MIN_MS, MQTT_RECONNECT_MAX_MS, ...). When MQTT_BROKER_URL
is set, no embedded broker starts and the app connects there.

The embedded broker (rmqtt) serves MQTT 3.1.1 and 5 on one port, --broker-listen, and both over
WebSocket on --broker-ws (path /mqtt; `off` closes it). --broker-tls with --broker-tls-cert and
--broker-tls-key adds an MQTT over TLS (mqtts) listener. Port 0 picks a free port; the banner shows
the ports in use.

Examples:
  axum-mqtt-app
  axum-mqtt-app --http 127.0.0.1:8080 --subscribe 'sensors/#,alerts/+'
  MQTT_BROKER_URL=mqtt://broker.local:1883 APP_TOKEN=secret axum-mqtt-app";

/// A live MQTT web client: an embedded MQTT broker, an HTTP API and a live page.
#[derive(Debug, Clone, Parser)]
#[command(name = "axum-mqtt-app", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Address of the web page and HTTP API.
    #[arg(
        long = "http",
        env = "APP_HTTP_ADDR",
        value_name = "ADDR",
        default_value = "127.0.0.1:5000"
    )]
    pub http: SocketAddr,

    /// Embedded broker: MQTT listener, 3.1.1 and 5 on one port.
    #[arg(
        long = "broker-listen",
        env = "APP_BROKER_ADDR",
        value_name = "ADDR",
        default_value = "127.0.0.1:1883",
        value_parser = parse_listen
    )]
    pub broker_listen: SocketAddr,

    /// Embedded broker: MQTT over WebSocket listener, 3.1.1 and 5, path /mqtt (`off` to disable).
    #[arg(
        long = "broker-ws",
        visible_alias = "broker-ws-listen",
        env = "APP_BROKER_WS_ADDR",
        value_name = "ADDR",
        default_value = "127.0.0.1:8083",
        value_parser = parse_optional_listen
    )]
    pub broker_ws: OptionalAddr,

    /// Embedded broker: MQTT over TLS (mqtts) listener; needs --broker-tls-cert and --broker-tls-key.
    #[arg(long = "broker-tls", env = "APP_BROKER_TLS_ADDR", value_name = "ADDR",
          value_parser = parse_listen, requires_all = ["broker_tls_cert", "broker_tls_key"])]
    pub broker_tls: Option<SocketAddr>,

    /// Server certificate chain (PEM) of the --broker-tls listener.
    #[arg(
        long = "broker-tls-cert",
        env = "APP_BROKER_TLS_CERT",
        value_name = "FILE",
        requires = "broker_tls"
    )]
    pub broker_tls_cert: Option<PathBuf>,

    /// Server private key (PEM) of the --broker-tls listener.
    #[arg(
        long = "broker-tls-key",
        env = "APP_BROKER_TLS_KEY",
        value_name = "FILE",
        requires = "broker_tls"
    )]
    pub broker_tls_key: Option<PathBuf>,

    /// Gone: the embedded broker serves MQTT 5 on --broker-listen.
    #[arg(long = "broker-v5-listen", hide = true, value_name = "ADDR")]
    pub broker_v5_listen: Option<String>,

    /// Do not start the embedded broker (connect to MQTT_BROKER_URL instead).
    #[arg(
        long = "no-broker",
        env = "APP_NO_BROKER",
        value_parser = clap::builder::BoolishValueParser::new(),
        action = clap::ArgAction::SetTrue
    )]
    pub no_broker: bool,

    /// Durable outbox file: POST /publish at QoS 1/2 is stored there before it is sent and answers
    /// 202 with an id when the broker does not acknowledge in time; kept across restarts.
    #[arg(long, env = "APP_OUTBOX", value_name = "PATH")]
    pub outbox: Option<PathBuf>,

    /// Topic filters the app subscribes to and logs (comma-separated; '' for none).
    #[arg(
        long,
        env = "APP_SUBSCRIBE",
        value_name = "FILTER",
        value_delimiter = ',',
        num_args = 1..,
        default_value = "/flask/mqtt",
        value_parser = parse_filter
    )]
    pub subscribe: Vec<String>,

    /// Bearer token required by the HTTP API and the WebSocket (none: open).
    #[arg(long, env = "APP_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Topic filters browsers and POST /publish may publish to (comma-separated; default: all).
    #[arg(
        long = "allow-publish",
        env = "APP_ALLOW_PUBLISH",
        value_name = "FILTER",
        value_delimiter = ',',
        num_args = 1..,
        value_parser = parse_filter
    )]
    pub allow_publish: Vec<String>,

    /// Topic filters browsers and /events may subscribe within (comma-separated; default: all).
    #[arg(
        long = "allow-subscribe",
        env = "APP_ALLOW_SUBSCRIBE",
        value_name = "FILTER",
        value_delimiter = ',',
        num_args = 1..,
        value_parser = parse_filter
    )]
    pub allow_subscribe: Vec<String>,

    /// Messages kept for GET /api/messages.
    #[arg(long, env = "APP_HISTORY", value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub history: u32,

    /// Largest payload accepted from POST /publish and the page, in bytes.
    #[arg(long = "max-payload", env = "APP_MAX_PAYLOAD", value_name = "BYTES", default_value_t = 262_144,
          value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    pub max_payload: u32,

    /// Development: serve the page from this directory (e.g. app/assets), read on every request,
    /// instead of the copy embedded in the binary; files it lacks come from the embedded copy.
    #[arg(long = "assets-dir", env = "APP_ASSETS_DIR", value_name = "DIR")]
    pub assets_dir: Option<PathBuf>,

    /// Messages queued per browser tab before it skips messages.
    #[arg(long = "ws-queue", env = "APP_WS_QUEUE", value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub ws_queue: u32,

    /// Host names the page and API also answer to, as HOST or HOST:PORT (comma-separated), besides
    /// the listen address and localhost / 127.0.0.1 / [::1] with its port; `*` accepts any Host
    /// (turns the DNS rebinding check off).
    #[arg(
        long = "allowed-host",
        env = "APP_ALLOWED_HOSTS",
        value_name = "HOST[:PORT]",
        value_delimiter = ',',
        num_args = 1..,
        value_parser = parse_host_rule
    )]
    pub allowed_hosts: Vec<Option<HostRule>>,

    /// Time a client has to send a request head (also how long an idle keep-alive connection stays).
    #[arg(long = "header-read-timeout", env = "APP_HEADER_READ_TIMEOUT", value_name = "DURATION",
          default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// Time a request (its body and the answer) may take; not /ws and /events, which stay open.
    #[arg(long = "request-timeout", env = "APP_REQUEST_TIMEOUT", value_name = "DURATION",
          default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// HTTP connections open at once; past that, new ones wait to be accepted.
    #[arg(long = "max-connections", env = "APP_MAX_CONNECTIONS", value_name = "N", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// WebSocket clients (/ws) at once; past that, 503 too_many_clients.
    #[arg(long = "max-ws-clients", env = "APP_MAX_WS_CLIENTS", value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_ws_clients: u32,

    /// Server-Sent Events clients (/events) at once; past that, 503 too_many_clients.
    #[arg(long = "max-sse-clients", env = "APP_MAX_SSE_CLIENTS", value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_sse_clients: u32,

    /// How often the app pings each WebSocket.
    #[arg(long = "ws-ping-interval", env = "APP_WS_PING_INTERVAL", value_name = "DURATION",
          default_value = "20s", value_parser = parse_duration)]
    pub ws_ping_interval: Duration,

    /// A WebSocket from which nothing (not even a pong) arrives for this long is closed.
    #[arg(long = "ws-peer-timeout", env = "APP_WS_PEER_TIMEOUT", value_name = "DURATION",
          default_value = "60s", value_parser = parse_duration)]
    pub ws_peer_timeout: Duration,
}

/// A listen address that can be switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalAddr(pub Option<SocketAddr>);

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s
        .trim()
        .parse()
        .map_err(|_| format!("expected IP:PORT like 127.0.0.1:1883, got {s:?}"))?;
    Ok(addr)
}

fn parse_optional_listen(s: &str) -> Result<OptionalAddr, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "off" | "none" | "no" | "false" => Ok(OptionalAddr(None)),
        _ => parse_listen(s).map(|a| OptionalAddr(Some(a))),
    }
}

/// `None` for an empty item (`APP_ALLOWED_HOSTS=` or a trailing comma).
fn parse_host_rule(s: &str) -> Result<Option<HostRule>, String> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|e: crate::host::HostRuleError| e.to_string())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?}: {e} (write e.g. 10s, 500ms, 2m)"))?;
    if d.is_zero() {
        return Err(format!("{s:?}: must be more than 0"));
    }
    Ok(d)
}

fn parse_filter(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    validate_filter(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

/// Where the client connects and what the embedded broker opens.
#[derive(Debug, Clone)]
pub struct Settings {
    pub http: SocketAddr,
    /// `None` with `--no-broker` or `MQTT_BROKER_URL`. The client's address is set once the
    /// broker has bound its ports (see [`Settings::connect_to_embedded`]).
    pub broker: Option<axum_mqtt_broker::BrokerConfig>,
    pub mqtt: MqttConfig,
    pub subscribe: Vec<String>,
    pub token: Option<String>,
    pub allow_publish: Vec<String>,
    pub allow_subscribe: Vec<String>,
    pub history: usize,
    pub max_payload: usize,
    pub ws_queue: usize,
    /// `--assets-dir`: the page from disk (development).
    pub assets_dir: Option<PathBuf>,
    /// `--allowed-host`: names the app answers to besides its own.
    pub allowed_hosts: Vec<HostRule>,
    pub http_limits: HttpLimits,
}

/// Limits of the HTTP server and its long-lived clients.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub max_ws_clients: usize,
    pub max_sse_clients: usize,
    pub ws_ping_interval: Duration,
    pub ws_peer_timeout: Duration,
}

impl Cli {
    /// Checks what clap cannot check alone and reads `MQTT_*`; errors exit with code 2 like clap's.
    pub fn into_settings(self) -> Result<Settings, clap::Error> {
        let bad = |msg: String| Cli::command().error(ErrorKind::ValueValidation, msg);
        let v5_gone = self.broker_v5_listen.is_some()
            || std::env::var_os("APP_BROKER_V5_ADDR").is_some_and(|v| !v.is_empty());
        if v5_gone {
            return Err(Cli::command().error(
                ErrorKind::ArgumentConflict,
                "--broker-v5-listen / APP_BROKER_V5_ADDR are gone: the embedded broker serves \
                 MQTT 3.1.1 and 5 on one port, --broker-listen (default 127.0.0.1:1883)",
            ));
        }
        // --outbox is MQTT_OUTBOX_PATH under the app's name (so MQTT_OUTBOX_MAX_* apply to it).
        let outbox = self
            .outbox
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| ("MQTT_OUTBOX_PATH".to_string(), p.display().to_string()));
        let mut mqtt = MqttConfig::from_pairs("MQTT", std::env::vars().chain(outbox))
            .map_err(|e| bad(format!("invalid MQTT setting {e}")))?;
        let url_set = std::env::var_os("MQTT_BROKER_URL").is_some_and(|v| !v.is_empty());
        let max_payload = self.max_payload as usize;
        let broker = if self.no_broker || url_set {
            None
        } else {
            let packet = (max_payload + 64 * 1024).max(1 << 20) as u32;
            let mut b = axum_mqtt_broker::BrokerConfig::new(self.broker_listen)
                .with_max_packet_size(packet);
            b.ws = self.broker_ws.0;
            if let (Some(addr), Some(cert), Some(key)) =
                (self.broker_tls, self.broker_tls_cert, self.broker_tls_key)
            {
                b = b.with_tls(axum_mqtt_broker::TlsListener::new(addr, cert, key));
            }
            let mut seen = vec![b.listen];
            for a in [b.ws, b.tls.as_ref().map(|t| t.addr)].into_iter().flatten() {
                if a.port() != 0 && seen.contains(&a) {
                    return Err(bad(format!(
                        "the embedded broker's listeners need different ports: {a} is given twice"
                    )));
                }
                seen.push(a);
            }
            if self.http.port() != 0 && seen.contains(&self.http) {
                return Err(bad(format!(
                    "--http {} is also a broker listener address",
                    self.http
                )));
            }
            if mqtt.tls.enabled {
                return Err(bad(
                    "MQTT_TLS_ENABLED=true needs MQTT_BROKER_URL: the app's client reaches its \
                     embedded broker over plain TCP or WebSocket on loopback"
                        .into(),
                ));
            }
            if mqtt.transport == Transport::Websockets && b.ws.is_none() {
                return Err(bad("MQTT_TRANSPORT=websockets needs the embedded broker's WebSocket listener (--broker-ws)".into()));
            }
            if std::env::var_os("MQTT_BROKER_PORT").is_some() {
                tracing::warn!("MQTT_BROKER_PORT is ignored without MQTT_BROKER_URL: the client connects to the embedded broker");
            }
            // The embedded broker speaks MQTT 5, so the app's client does too (the page shows
            // message properties) unless MQTT_PROTOCOL says otherwise.
            if std::env::var_os("MQTT_PROTOCOL").is_none_or(|v| v.is_empty()) {
                mqtt.protocol = axum_mqtt::Protocol::V5;
            }
            Some(b)
        };
        let assets_dir = self.assets_dir.filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = &assets_dir {
            if !dir.is_dir() {
                return Err(bad(format!(
                    "--assets-dir {}: not a directory (point it at app/assets)",
                    dir.display()
                )));
            }
        }
        if self.ws_peer_timeout <= self.ws_ping_interval {
            return Err(bad(format!(
                "--ws-peer-timeout ({}) must be longer than --ws-ping-interval ({}): a peer gets \
                 at least one ping to answer",
                humantime::format_duration(self.ws_peer_timeout),
                humantime::format_duration(self.ws_ping_interval)
            )));
        }
        let http_limits = HttpLimits {
            header_read_timeout: self.header_read_timeout,
            request_timeout: self.request_timeout,
            max_connections: self.max_connections as usize,
            max_ws_clients: self.max_ws_clients as usize,
            max_sse_clients: self.max_sse_clients as usize,
            ws_ping_interval: self.ws_ping_interval,
            ws_peer_timeout: self.ws_peer_timeout,
        };
        let nonempty = |v: Vec<String>| v.into_iter().filter(|s| !s.is_empty()).collect();
        Ok(Settings {
            http: self.http,
            broker,
            mqtt,
            subscribe: nonempty(self.subscribe),
            token: self.token.filter(|t| !t.is_empty()),
            allow_publish: nonempty(self.allow_publish),
            allow_subscribe: nonempty(self.allow_subscribe),
            history: self.history as usize,
            max_payload,
            ws_queue: self.ws_queue as usize,
            assets_dir,
            allowed_hosts: self.allowed_hosts.into_iter().flatten().collect(),
            http_limits,
        })
    }
}

impl Settings {
    /// Points the client at the embedded broker's listener for its transport, now that the
    /// broker reported the ports it bound.
    pub fn connect_to_embedded(&mut self, broker: &axum_mqtt_broker::EmbeddedBroker) {
        let target = match (self.mqtt.transport, broker.ws_addr()) {
            (Transport::Websockets, Some(ws)) => ws,
            _ => broker.tcp_addr(),
        };
        self.mqtt.broker_url = connect_host(target);
        self.mqtt.broker_port = target.port();
        // The embedded broker is the only one: no failover list applies to it.
        self.mqtt.failover.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_defaults_and_lists() {
        let cli =
            Cli::try_parse_from(["app", "--subscribe", "a/#,b/+", "--broker-ws", "off"]).unwrap();
        assert_eq!(cli.subscribe, vec!["a/#", "b/+"]);
        assert_eq!(cli.broker_ws, OptionalAddr(None));
        assert_eq!(cli.http.to_string(), "127.0.0.1:5000");
    }

    #[test]
    fn rejects_bad_filters_and_ports() {
        let e = Cli::try_parse_from(["app", "--subscribe", "a/#/b"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--subscribe"), "{e}");
        let e = Cli::try_parse_from(["app", "--broker-listen", "localhost"]).unwrap_err();
        assert!(e.to_string().contains("--broker-listen"), "{e}");
        let e = Cli::try_parse_from(["app", "--broker-v5-listen", "127.0.0.1:1884"])
            .unwrap()
            .into_settings()
            .unwrap_err();
        assert!(e.to_string().contains("one port"), "{e}");
    }

    #[test]
    fn limits_and_hosts() {
        let s = Cli::try_parse_from([
            "app",
            "--allowed-host",
            "a.example,b.example:8080,",
            "--header-read-timeout",
            "500ms",
        ])
        .unwrap();
        assert_eq!(s.allowed_hosts.iter().flatten().count(), 2);
        assert_eq!(s.header_read_timeout, Duration::from_millis(500));
        let e = Cli::try_parse_from(["app", "--allowed-host", "http://a.example"]).unwrap_err();
        assert!(e.to_string().contains("--allowed-host"), "{e}");
        let e = Cli::try_parse_from(["app", "--request-timeout", "0s"]).unwrap_err();
        assert!(e.to_string().contains("more than 0"), "{e}");
        let e = Cli::try_parse_from(["app", "--ws-ping-interval", "2m"])
            .unwrap()
            .into_settings()
            .unwrap_err();
        assert!(e.to_string().contains("--ws-peer-timeout"), "{e}");
    }

    #[test]
    fn authority_brackets_ipv6() {
        assert_eq!(
            url_authority("0.0.0.0:5000".parse().unwrap()),
            "127.0.0.1:5000"
        );
        assert_eq!(url_authority("[::1]:80".parse().unwrap()), "[::1]:80");
    }
}
