//! Test [axum-mqtt](https://docs.rs/axum-mqtt) handlers end to end against a real MQTT broker,
//! without installing one: what axum-test does for HTTP handlers and FastStream's `TestBroker` for
//! MQTT, here with the real protocol on a loopback port.
//!
//! [`TestBroker::start`] starts an embedded broker (rmqtt, through
//! [axum-mqtt-broker](https://docs.rs/axum-mqtt-broker): MQTT 3.1.1 and 5 on one TCP port, plus
//! WebSocket) on ports the kernel chose, with a client of its own. [`TestBroker::config`] points
//! the app under test at it, and [`TestBroker::start_app`] starts the app and returns once its
//! routes are subscribed; [`TestBroker::publish`] sends what a device would send, and
//! [`TestBroker::subscribe`] + [`Subscription::next_message`] wait, with a timeout, for what the
//! handlers publish. Every failure is a [`TestError`] that says what was waited for.
//!
//! ```
//! use std::time::Duration;
//! use axum_mqtt::{extract::Text, Mqtt, Router};
//! use axum_mqtt_testkit::TestBroker;
//!
//! async fn echo(mqtt: Mqtt, Text(t): Text) -> Result<(), axum_mqtt::Error> {
//!     mqtt.publish("echo/out", t.to_uppercase()).await?;
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let broker = TestBroker::start().await?;
//!     let routes = Router::new().route("echo/in", echo);
//!     let _app = broker.start_app(Mqtt::builder(broker.config()).router(routes)).await?;
//!
//!     let mut out = broker.subscribe("echo/out").await?;
//!     broker.publish("echo/in", "hello").await?;
//!     assert_eq!(out.next_message(Duration::from_secs(5)).await?.payload_str(), Some("HELLO"));
//!     Ok(())
//! }
//! ```
//!
//! In a test, the same reads `#[tokio::test] async fn echo_shouts() -> Result<(), Box<dyn Error>>`.
//!
//! ## Helpers of axum-mqtt's own test suite
//!
//! Also here, and usable by anyone, at the price of panicking instead of returning errors:
//!
//! * [`embedded`]: one in-process rmqtt broker per test binary (MQTT 3.1.1 and 5 on one TCP port,
//!   plus WebSocket), on ports the kernel chose (port 0). Tests share it and use [`unique`]
//!   topics. [`broker`] starts a private one that a test can stop.
//! * [`Mosquitto`]: a Mosquitto child process per test, with a generated config, that a test can stop,
//!   kill, pause and restart on the same ports.
//! * [`TestPki`]: a CA, a server certificate for `localhost`/`127.0.0.1` and a client certificate,
//!   generated at test time with rcgen.
//! * [`ClosedPort`]: a port where nothing listens (connections are refused), held for the test.
//!
//! No port is ever found by binding, releasing and binding again: ours bind port 0 and report the
//! port; Mosquitto cannot, so it is given ports outside the kernel's ephemeral range and started
//! again on other ports when one is taken (see [`Mosquitto::start`]).
//!
//! Mosquitto tests skip when the binary is missing, unless `AXUM_MQTT_REQUIRE_MOSQUITTO=1`.
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::print_stdout, clippy::dbg_macro))]

use std::fmt::Write as _;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod test_broker;

pub use axum_mqtt_broker::{BrokerConfig, EmbeddedBroker};
pub use test_broker::{Subscription, TestBroker, TestError};

/// `127.0.0.1:0`: a loopback address whose port the kernel chooses when it is bound.
pub const ANY_LOOPBACK: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// A topic prefix unique to this process and call, so tests sharing a broker never see each other.
pub fn unique(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "t/{}-{}-{}",
        name,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The embedded broker of this test binary, started on first use: MQTT 3.1.1 and 5 on
/// [`EmbeddedBroker::tcp_addr`], WebSocket on [`EmbeddedBroker::ws_addr`].
pub fn embedded() -> &'static EmbeddedBroker {
    static BROKER: OnceLock<EmbeddedBroker> = OnceLock::new();
    BROKER.get_or_init(|| broker().expect("embedded broker did not start"))
}

/// A new embedded broker of the test's own (TCP and WebSocket on loopback, any free ports),
/// stopped when dropped.
pub fn broker() -> Result<EmbeddedBroker, axum_mqtt_broker::BrokerError> {
    EmbeddedBroker::start(BrokerConfig::new(ANY_LOOPBACK).with_ws(ANY_LOOPBACK))
}

/// A loopback port where nothing listens: connecting to it is refused. The port stays reserved
/// (bound, not listening) while this value lives, so no other test can start a server there.
pub struct ClosedPort {
    _socket: socket2::Socket,
    /// The port.
    pub port: u16,
}

/// Reserves a loopback port where connections are refused (see [`ClosedPort`]).
pub fn closed_port() -> ClosedPort {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket
        .bind(&ANY_LOOPBACK.into())
        .expect("bind a loopback port");
    let port = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.port())
        .expect("bound port");
    ClosedPort {
        _socket: socket,
        port,
    }
}

/// Ports for programs that cannot bind port 0 themselves (Mosquitto): drawn at random from below
/// the kernel's ephemeral range, so never a port the kernel hands out for port 0 or for an outgoing
/// connection. Another test may still draw the same one; callers start again on a fresh draw when
/// the program says its port is taken.
fn draw_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let low = low.max(12000);
    fastrand::u16(10000..low)
}

/// Where the `mosquitto` binary is, if installed.
pub fn mosquitto_path() -> Option<PathBuf> {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// True when Mosquitto tests must not skip (CI sets `AXUM_MQTT_REQUIRE_MOSQUITTO=1`).
pub fn mosquitto_required() -> bool {
    std::env::var("AXUM_MQTT_REQUIRE_MOSQUITTO").is_ok_and(|v| v == "1")
}

/// What a [`Mosquitto`] child listens on.
#[derive(Debug, Clone, Default)]
pub struct MosquittoOptions {
    /// Open a WebSocket listener too.
    pub websockets: bool,
    /// Open a TLS listener with these files, requiring client certificates when `require_cert`.
    pub tls: Option<TlsFiles>,
    /// The TLS listener speaks MQTT over WebSocket (`wss://`) instead of plain MQTT (`mqtts://`).
    pub tls_websockets: bool,
    /// Keep sessions and queued messages across restarts (persistence file).
    pub persistence: bool,
    /// Extra lines appended to the generated config.
    pub extra: String,
}

/// Certificate files for a TLS listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// CA certificate (PEM).
    pub ca: PathBuf,
    /// Server certificate (PEM).
    pub cert: PathBuf,
    /// Server key (PEM).
    pub key: PathBuf,
    /// Require a client certificate signed by `ca`.
    pub require_cert: bool,
}

/// Mosquitto said a port is taken.
struct PortTaken;

/// A Mosquitto child process on free loopback ports, killed on drop.
pub struct Mosquitto {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Plain MQTT port (3.1.1 and 5).
    pub port: u16,
    /// WebSocket port, when enabled.
    pub ws_port: Option<u16>,
    /// TLS port, when enabled.
    pub tls_port: Option<u16>,
}

impl Mosquitto {
    /// Starts Mosquitto, or returns `None` (test skipped) when it is not installed and not required.
    ///
    /// Mosquitto cannot listen on port 0, so its ports are drawn from outside the kernel's
    /// ephemeral range; when one is taken (another test drew it), it is started again on fresh
    /// ports. It counts as started once it logged "running", i.e. every listener is its own.
    pub fn start(opts: MosquittoOptions) -> Option<Mosquitto> {
        let Some(bin) = mosquitto_path() else {
            assert!(
                !mosquitto_required(),
                "AXUM_MQTT_REQUIRE_MOSQUITTO=1 but mosquitto is not installed"
            );
            eprintln!("mosquitto not installed: skipping");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        // Mosquitto started as root drops to the `mosquitto` user, which must read and write here.
        set_mode(dir.path(), 0o777);
        let mut m = Mosquitto {
            dir,
            child: None,
            port: 0,
            ws_port: None,
            tls_port: None,
        };
        for _ in 0..20 {
            m.port = draw_port();
            m.ws_port = opts.websockets.then(draw_port);
            m.tls_port = opts.tls.as_ref().map(|_| draw_port());
            m.write_config(&opts);
            match m.spawn(&bin) {
                Ok(()) => return Some(m),
                Err(PortTaken) => continue,
            }
        }
        panic!("mosquitto found no free port in 20 tries: {}", m.log());
    }

    fn write_config(&self, opts: &MosquittoOptions) {
        let dir = self.dir.path();
        let mut conf = String::new();
        let _ = writeln!(conf, "per_listener_settings false\nallow_anonymous true");
        let _ = writeln!(
            conf,
            "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information"
        );
        let _ = writeln!(conf, "max_queued_messages 100000\nmax_inflight_messages 0");
        if opts.persistence {
            let _ = writeln!(
                conf,
                "persistence true\npersistence_location {}/\nautosave_interval 1",
                dir.display()
            );
        }
        let _ = writeln!(conf, "listener {} 127.0.0.1", self.port);
        if let Some(p) = self.ws_port {
            let _ = writeln!(conf, "listener {p} 127.0.0.1\nprotocol websockets");
        }
        if let (Some(p), Some(t)) = (self.tls_port, &opts.tls) {
            for f in [&t.ca, &t.cert, &t.key] {
                set_mode(f, 0o644);
            }
            let _ = writeln!(conf, "listener {p} 127.0.0.1");
            if opts.tls_websockets {
                let _ = writeln!(conf, "protocol websockets");
            }
            let _ = writeln!(
                conf,
                "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {}",
                t.ca.display(),
                t.cert.display(),
                t.key.display(),
                t.require_cert
            );
        }
        conf.push_str(&opts.extra);
        conf.push('\n');
        std::fs::write(dir.join("mosquitto.conf"), conf).expect("write mosquitto.conf");
    }

    /// Starts the child and waits until it logs "running" (all listeners bound).
    fn spawn(&mut self, bin: &Path) -> Result<(), PortTaken> {
        let log_path = self.dir.path().join("mosquitto.log");
        let offset = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0) as usize;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open log");
        let child = Command::new(bin)
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            let new = log.get(offset..).unwrap_or("");
            if new.contains(" running") {
                return Ok(());
            }
            if let Some(Some(status)) = self.child.as_mut().map(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                if new.contains("Address already in use") {
                    return Err(PortTaken);
                }
                panic!("mosquitto exited with {status}: {log}");
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start within 10 s: {log}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The broker URL for the plain listener, e.g. `mqtt://127.0.0.1:1234`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// What Mosquitto logged so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("mosquitto.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The process id of the running broker.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Sends a signal (`TERM`, `KILL`, `STOP`, `CONT`) to the broker.
    pub fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(pid.to_string())
                .status();
        }
    }

    /// Stops the broker: SIGTERM (graceful, persistence saved) or SIGKILL, and waits for the exit.
    pub fn stop(&mut self, graceful: bool) {
        self.signal(if graceful { "TERM" } else { "KILL" });
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// Starts the broker again on the same ports with the same config (and persistence file).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the broker before restarting it");
        let bin = mosquitto_path().expect("mosquitto");
        if self.spawn(&bin).is_err() {
            panic!(
                "mosquitto cannot listen on its ports again (taken meanwhile): {}",
                self.log()
            );
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

/// A throwaway PKI: CA, server certificate (`localhost`, `127.0.0.1`) and a client certificate.
pub struct TestPki {
    dir: tempfile::TempDir,
}

impl TestPki {
    /// Generates the CA and both certificates into a temporary folder.
    pub fn generate() -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let dir = tempfile::tempdir().expect("tempdir");
        set_mode(dir.path(), 0o755);
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "axum-mqtt test CA");
        let ca_key = KeyPair::generate().expect("ca key");
        let ca = ca_params.self_signed(&ca_key).expect("ca cert");
        let issue = |names: Vec<String>, cn: &str| {
            let mut p = CertificateParams::new(names).expect("params");
            p.distinguished_name.push(DnType::CommonName, cn);
            let key = KeyPair::generate().expect("key");
            let cert = p.signed_by(&key, &ca, &ca_key).expect("sign");
            (cert.pem(), key.serialize_pem())
        };
        let (server, server_key) = issue(vec!["localhost".into(), "127.0.0.1".into()], "localhost");
        let (client, client_key) = issue(vec!["client".into()], "client");
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write pem");
            set_mode(&p, 0o644);
        };
        write("ca.pem", &ca.pem());
        write("server.pem", &server);
        write("server.key", &server_key);
        write("client.pem", &client);
        write("client.key", &client_key);
        TestPki { dir }
    }

    /// Path of a generated file: `ca.pem`, `server.pem`, `server.key`, `client.pem`, `client.key`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The files for a Mosquitto TLS listener.
    pub fn server_files(&self, require_cert: bool) -> TlsFiles {
        TlsFiles {
            ca: self.path("ca.pem"),
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            require_cert,
        }
    }
}
