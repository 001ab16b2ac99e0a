//! Runs the real app binary on ports it picks itself (port 0, read back from its banner) and talks
//! to it over HTTP, WebSocket and MQTT.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as WsMessage;

pub const BIN: &str = env!("CARGO_BIN_EXE_axum-mqtt-app");
pub const WAIT: Duration = Duration::from_secs(10);

/// One running app. The ports are known once [`App::wait_ready`] has read the banner (0 for a
/// listener the app does not have).
pub struct App {
    child: Option<Child>,
    pub http_port: u16,
    /// The embedded broker's MQTT port (3.1.1 and 5).
    pub broker_port: u16,
    /// The embedded broker's WebSocket port.
    pub ws_port: u16,
    pub base: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    lines: watch::Receiver<usize>,
}

/// A command for the app with the environment cleared of APP_* and MQTT_* settings.
pub fn command() -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("APP_") || k.starts_with("MQTT_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "info");
    cmd
}

fn pump(
    r: impl std::io::Read + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
    tx: Option<watch::Sender<usize>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            let n = {
                let mut v = into.lock().unwrap();
                v.push(line);
                v.len()
            };
            if let Some(tx) = &tx {
                tx.send_replace(n);
            }
        }
    });
}

impl App {
    /// Starts the app with its own embedded broker on free ports, plus `args` and `env`, and waits
    /// until `/healthz` says connected.
    pub async fn start(args: &[&str], env: &[(&str, &str)]) -> App {
        let mut app = Self::spawn(args, env, true);
        app.wait_ready().await;
        app
    }

    /// Starts the app without waiting.
    pub fn spawn(args: &[&str], env: &[(&str, &str)], ports: bool) -> App {
        let mut cmd = command();
        if ports {
            let any = "127.0.0.1:0";
            cmd.args(["--http", any, "--broker-listen", any, "--broker-ws", any]);
        }
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the app");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = watch::channel(0);
        pump(child.stdout.take().unwrap(), stdout.clone(), Some(tx));
        pump(child.stderr.take().unwrap(), stderr.clone(), None);
        App {
            child: Some(child),
            http_port: 0,
            broker_port: 0,
            ws_port: 0,
            base: String::new(),
            stdout,
            stderr,
            lines,
        }
    }

    /// Waits for the banner, reads the ports from it, and waits for a connected `/healthz`.
    pub async fn wait_ready(&mut self) {
        self.wait_banner().await;
        self.wait_health(200).await;
    }

    /// Waits until `/healthz` answers `status` (200 connected, 503 not).
    pub async fn wait_health(&self, status: u16) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = client.get(self.url("/healthz")).send().await {
                if r.status() == status {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "/healthz never answered {status}: {}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the banner and reads the ports from it (the client may not be connected yet).
    pub async fn wait_banner(&mut self) {
        self.wait_line(|l| l.starts_with("Press Ctrl-C"), Duration::from_secs(20))
            .await;
        let banner = self.stdout();
        let port_after = |prefix: &str| -> u16 {
            banner
                .iter()
                .find_map(|l| {
                    let rest = l.split_once(prefix)?.1;
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse().ok()
                })
                .unwrap_or(0)
        };
        self.http_port = port_after("Web page:     http://127.0.0.1:");
        self.broker_port = port_after("MQTT 3.1.1 and 5            mqtt://127.0.0.1:");
        self.ws_port = port_after("MQTT over WebSocket         ws://127.0.0.1:");
        assert_ne!(
            self.http_port,
            0,
            "no web address in the banner: {}",
            self.output()
        );
        self.base = format!("http://127.0.0.1:{}", self.http_port);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://127.0.0.1:{}/ws{query}", self.http_port)
    }

    /// Everything printed so far, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout.lock().unwrap().join("\n"),
            self.stderr.lock().unwrap().join("\n")
        )
    }

    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits until a stdout line matches.
    pub async fn wait_line(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        let mut rx = self.lines.clone();
        let found = tokio::time::timeout(timeout, async {
            loop {
                if let Some(l) = self.stdout.lock().unwrap().iter().find(|l| pred(l)) {
                    return l.clone();
                }
                if rx.changed().await.is_err() {
                    // stdout closed: the app exited.
                    return self
                        .stdout
                        .lock()
                        .unwrap()
                        .iter()
                        .find(|l| pred(l))
                        .cloned()
                        .unwrap_or_default();
                }
            }
        })
        .await;
        match found {
            Ok(l) if !l.is_empty() => l,
            _ => panic!("expected line not printed: {}", self.output()),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends a signal and waits (up to `timeout`) for the exit.
    pub fn signal_and_wait(&mut self, sig: &str, timeout: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status();
        self.wait_exit(timeout)
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.output());
        }
    }
}

/// Runs the binary to completion (for CLI errors), killing it after 20 s.
pub fn run_to_end(mut cmd: Command) -> (Option<i32>, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().expect("wait");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

pub type Raw =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client of the app that keeps frames it skipped while waiting for another kind.
pub struct Ws {
    pub raw: Raw,
    backlog: std::collections::VecDeque<Value>,
}

impl Ws {
    pub fn new(raw: Raw) -> Self {
        Ws {
            raw,
            backlog: Default::default(),
        }
    }

    /// A frame read earlier but not yet consumed.
    pub fn backlog_pop(&mut self) -> Option<Value> {
        self.backlog.pop_front()
    }
}

/// Opens the app's WebSocket and reads the first (status) frame.
pub async fn ws_connect(app: &App, query: &str) -> Ws {
    let (raw, _) = tokio_tungstenite::connect_async(app.ws_url(query))
        .await
        .expect("WebSocket connect");
    let mut ws = Ws::new(raw);
    let first = next_frame(&mut ws).await;
    assert_eq!(first["type"], "status", "{first}");
    ws
}

/// The next JSON text frame (panics after [`WAIT`]).
pub async fn next_frame(ws: &mut Ws) -> Value {
    if let Some(v) = ws.backlog.pop_front() {
        return v;
    }
    read_frame(&mut ws.raw).await
}

async fn read_frame(raw: &mut Raw) -> Value {
    loop {
        let m = tokio::time::timeout(WAIT, raw.next())
            .await
            .expect("no WebSocket frame in time")
            .expect("WebSocket closed")
            .expect("WebSocket error");
        match m {
            WsMessage::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON frame"),
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// The next frame of a type; frames of other types stay queued for later calls.
pub async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    if let Some(i) = ws.backlog.iter().position(|f| f["type"] == kind) {
        return ws.backlog.remove(i).unwrap();
    }
    loop {
        let f = read_frame(&mut ws.raw).await;
        if f["type"] == kind {
            return f;
        }
        ws.backlog.push_back(f);
    }
}

pub async fn ws_send(ws: &mut Ws, v: Value) {
    ws.raw
        .send(WsMessage::Text(v.to_string().into()))
        .await
        .expect("send");
}

/// Sends an op and returns its ack or error frame (other frames stay queued).
pub async fn op(ws: &mut Ws, v: Value) -> Value {
    ws_send(ws, v).await;
    loop {
        let f = read_frame(&mut ws.raw).await;
        if f["type"] == "ack" || f["type"] == "error" {
            return f;
        }
        ws.backlog.push_back(f);
    }
}

/// An MQTT client on the app's embedded broker.
pub async fn mqtt_client(app: &App) -> axum_mqtt::Mqtt {
    let mqtt = axum_mqtt::Mqtt::start(axum_mqtt::MqttConfig::new("127.0.0.1", app.broker_port))
        .await
        .expect("client");
    let s = mqtt.wait_connected(WAIT).await;
    assert_eq!(s.status, axum_mqtt::Status::Connected);
    mqtt
}

pub fn unique(name: &str) -> String {
    axum_mqtt_testkit::unique(name)
}

/// One HTTP/1.1 request written byte for byte (so the Host header is exactly what the test says),
/// sent with `Connection: close`; returns the status and the body as JSON (`Null` if it is not).
pub async fn raw_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .expect("no answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// `GET /metrics`, checked against the exposition format by a parser.
pub async fn scrape(app: &App) -> prom_text_format_parser::Scrape {
    let r = reqwest::get(app.url("/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("metrics body");
    prom_text_format_parser::Scrape::parse(&text)
        .unwrap_or_else(|e| panic!("not the exposition format ({e:?}):\n{text}"))
}

/// The sum of the plain samples of `name` whose labels include every pair of `labels` (a metric
/// with a `client` label has one series per MQTT client; the app has one).
pub fn sample(s: &prom_text_format_parser::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    use prom_text_format_parser::ValueType;
    let m = s
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} is not exported"));
    m.samples
        .iter()
        .filter(|x| x.value.value_type == ValueType::Sample)
        .filter(|x| {
            labels
                .iter()
                .all(|(k, v)| x.labels.iter().any(|l| l.key == *k && l.value == *v))
        })
        .map(|x| x.value.value.as_f64())
        .sum()
}
