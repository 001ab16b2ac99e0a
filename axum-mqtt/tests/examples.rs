//! Every example, built once and run as a child process against a real broker (the embedded rmqtt broker,
//! a second embedded broker, or Mosquitto with TLS), checked by the lines it prints.

mod common;

use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum_mqtt::{Protocol, QoS};
use axum_mqtt_testkit::{
    closed_port, embedded, unique, EmbeddedBroker, Mosquitto, MosquittoOptions, TestPki,
};
use common::{connected, embedded_config};
use tokio::sync::mpsc;

/// How long an example may take to print an expected line or to exit.
const WAIT: Duration = Duration::from_secs(20);

/// Builds every example once (`cargo build --workspace --examples`, into this test's target dir
/// and profile) and returns the folder holding them. `--workspace` resolves features as
/// `cargo test --workspace` does, so under it this finds the examples that command already built;
/// `-p axum-mqtt` alone would compile axum-mqtt, the broker and rmqtt again with other features.
fn examples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // This test runs from <target>/<profile>/deps/examples-<hash>.
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary is in <target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("target dir");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_string(),
            Some(other) => other.to_string(),
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "--quiet", "--workspace", "--examples"])
            .args(["--profile", &profile])
            .arg("--manifest-path")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir)
            .stdin(Stdio::null())
            .output()
            .expect("run cargo build --examples");
        assert!(
            out.status.success(),
            "cargo build --examples failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        profile_dir.join("examples")
    })
}

/// A running example, killed on drop.
struct Example {
    name: String,
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every stdout line read so far.
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Example {
    /// Starts `examples/<name>` with these arguments and environment (inherited `MQTT*` and
    /// `APP_HTTP_ADDR` variables are removed so only the test's settings count).
    fn start(name: &str, args: &[&str], env: &[(&str, String)]) -> Example {
        let bin = examples_dir().join(name);
        let mut cmd = Command::new(&bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("MQTT") || k == "APP_HTTP_ADDR" {
                cmd.env_remove(k);
            }
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));

        let (tx, lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                if s.len() < 64 * 1024 {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        Example {
            name: name.to_string(),
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// What the example printed so far, for failure messages.
    fn report(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- stderr ---\n{}",
            self.name,
            self.seen.join("\n"),
            self.stderr.lock().unwrap_or_else(|e| e.into_inner())
        )
    }

    /// Waits up to `d` for a line (printed at any time so far) that satisfies `pred`; `None` on
    /// timeout. Panics when the example's output ends first.
    async fn line_within(&mut self, d: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        if let Some(l) = self.seen.iter().find(|l| pred(l)) {
            return Some(l.clone());
        }
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return Some(line);
                    }
                }
                Ok(None) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "{} ended (status {status:?}) before the expected line\n{}",
                        self.name,
                        self.report()
                    );
                }
                Err(_) => return None,
            }
        }
    }

    /// Waits for a line satisfying `pred`, or fails the test after [`WAIT`].
    async fn expect_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        match self.line_within(WAIT, pred).await {
            Some(l) => l,
            None => panic!("{} did not print {what}\n{}", self.name, self.report()),
        }
    }

    /// Waits for exactly this line.
    async fn expect(&mut self, line: &str) {
        self.expect_line(&format!("{line:?}"), |l| l == line).await;
    }

    /// Repeats `act` (every 500 ms) until a line satisfying `pred` is printed, or fails after
    /// [`WAIT`]. For actions that may happen before the example subscribed (a retried publish).
    async fn expect_after<F, Fut>(&mut self, what: &str, pred: impl Fn(&str) -> bool, mut act: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            act().await;
            if self
                .line_within(Duration::from_millis(500), &pred)
                .await
                .is_some()
            {
                return;
            }
        }
        panic!("{} did not print {what}\n{}", self.name, self.report());
    }

    /// The "Serving on http://ADDR" line's URL.
    async fn serving(&mut self) -> String {
        let line = self
            .expect_line("Serving on http://…", |l| {
                l.starts_with("Serving on http://")
            })
            .await;
        line.trim_start_matches("Serving on ").to_string()
    }

    /// Waits for the process to exit (up to [`WAIT`]).
    async fn exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader thread hand over the last lines.
                while let Ok(Some(l)) =
                    tokio::time::timeout(Duration::from_secs(2), self.lines.recv()).await
                {
                    self.seen.push(l);
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit\n{}",
                self.name,
                self.report()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM (graceful shutdown).
    fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `MQTT_BROKER_URL` / `MQTT_BROKER_PORT` (or another prefix's) for a broker on loopback.
fn broker_env(prefix: &str, port: u16) -> Vec<(&'static str, String)> {
    let key = |k: &str| -> &'static str { Box::leak(format!("{prefix}_{k}").into_boxed_str()) };
    vec![
        (key("BROKER_URL"), "127.0.0.1".into()),
        (key("BROKER_PORT"), port.to_string()),
        (key("RECONNECT_MAX_MS"), "500".into()),
    ]
}

fn embedded_port() -> u16 {
    embedded().tcp_addr().port()
}

/// A test-side client on the embedded broker.
async fn client() -> axum_mqtt::Mqtt {
    connected(axum_mqtt::Mqtt::builder(embedded_config(Protocol::V311))).await
}

#[tokio::test]
async fn sub_prints_what_pub_sent() {
    let port = embedded_port().to_string();
    let topic = unique("paho");
    let common = [
        "--port", &port, "--topic", &topic, "--qos", "1", "--count", "3",
    ];

    let mut sub = Example::start("sub", &common, &[]);
    sub.expect("Connected to MQTT Broker!").await;
    sub.expect(&format!("Subscribed to `{topic}` (QoS 1)"))
        .await;

    let mut publisher = Example::start(
        "pub",
        &[&common[..], &["--interval-ms", "100"]].concat(),
        &[],
    );
    publisher.expect("Connected to MQTT Broker!").await;
    // pub.py counts from 0.
    for n in 0..3 {
        publisher
            .expect(&format!("Send `messages: {n}` to topic `{topic}`"))
            .await;
        sub.expect(&format!("Received `messages: {n}` from `{topic}` topic"))
            .await;
    }
    assert!(publisher.exit().await.success(), "{}", publisher.report());
    assert!(sub.exit().await.success(), "{}", sub.report());
    // `--count 3`: messages 0, 1 and 2, nothing more.
    assert!(!publisher.seen.iter().any(|l| l.contains("messages: 3")));
}

#[tokio::test]
async fn pub_reports_a_failed_send() {
    // Nothing listens on this port: the publish times out and the failure line is printed.
    let nobody = closed_port();
    let port = nobody.port.to_string();
    let mut publisher = Example::start(
        "pub",
        &[
            "--port",
            &port,
            "--topic",
            "x/y",
            "--count",
            "1",
            "--interval-ms",
            "10",
        ],
        &[],
    );
    publisher
        .expect("Failed to send message to topic x/y")
        .await;
    assert!(publisher.exit().await.success(), "{}", publisher.report());
}

#[tokio::test]
async fn flask_tutorial_publishes_and_prints_received_messages() {
    let http = "127.0.0.1:0".to_string();
    let mut app = Example::start(
        "flask_tutorial",
        &["--http", &http],
        &broker_env("MQTT", embedded_port()),
    );
    app.expect("Connected successfully").await;
    let url = app.serving().await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let http_client = reqwest::Client::new();
    let payload = format!("hello {}", unique("flask"));
    let body = serde_json::json!({"topic": "/flask/mqtt", "msg": payload});
    let expected = format!("Received message on topic: /flask/mqtt with payload: {payload}");
    // The route's subscription is made right after the CONNACK: publish until it is in place.
    app.expect_after(
        &expected,
        |l| l == expected,
        || async {
            let res = http_client
                .post(format!("{url}/publish"))
                .json(&body)
                .send()
                .await
                .expect("POST /publish");
            assert_eq!(res.status(), 200);
            let answer: serde_json::Value = res.json().await.expect("JSON answer");
            assert_eq!(answer["code"], 0, "{answer}");
            assert!(answer["mid"].is_u64(), "{answer}");
        },
    )
    .await;

    // Ctrl-C / SIGTERM: HTTP and MQTT shut down gracefully.
    app.terminate();
    let status = app.exit().await;
    assert!(status.success(), "{status}\n{}", app.report());
}

#[tokio::test]
async fn flask_tutorial_prints_a_refused_connection() {
    let Some(broker) = Mosquitto::start(MosquittoOptions {
        extra: "allow_anonymous false".into(),
        ..Default::default()
    }) else {
        return;
    };
    let http = "127.0.0.1:0".to_string();
    let mut app = Example::start(
        "flask_tutorial",
        &["--http", &http],
        &broker_env("MQTT", broker.port),
    );
    // MQTT 3.1.1 CONNACK code 5: not authorized.
    app.expect("Bad connection. Code: 5").await;
    assert!(!app.seen.iter().any(|l| l == "Connected successfully"));
}

#[tokio::test]
async fn multiple_brokers_bridges_the_first_to_the_second() {
    static SECOND: OnceLock<EmbeddedBroker> = OnceLock::new();
    let second = SECOND.get_or_init(|| axum_mqtt_testkit::broker().expect("second broker"));
    let mut env = broker_env("MQTT", embedded_port());
    env.extend(broker_env("MQTT2", second.tcp_addr().port()));
    let mut app = Example::start("multiple_brokers", &[], &env);
    app.expect("[MQTT] Connected successfully").await;
    app.expect("[MQTT2] Connected successfully").await;

    let first = client().await;
    let rest = unique("bridge");
    let expected = format!("[MQTT2] Received `over the bridge` on `from-mqtt/{rest}`");
    app.expect_after(
        &expected,
        |l| l == expected,
        || async {
            first
                .publish(format!("bridge/{rest}"), "over the bridge")
                .qos(QoS::AtLeastOnce)
                .await
                .expect("publish to the first broker");
        },
    )
    .await;
    app.expect(&format!(
        "[MQTT] Forwarded bridge/{rest} to MQTT2 from-mqtt/{rest}"
    ))
    .await;
}

/// The `MQTT_TLS_*` keys for a Mosquitto TLS listener, with or without the client certificate.
fn tls_env(pki: &TestPki, port: u16, client_cert: bool) -> Vec<(&'static str, String)> {
    let path = |n: &str| pki.path(n).display().to_string();
    let mut env = broker_env("MQTT", port);
    env.push(("MQTT_TLS_ENABLED", "true".into()));
    env.push(("MQTT_TLS_CA_CERTS", path("ca.pem")));
    if client_cert {
        env.push(("MQTT_TLS_CERTFILE", path("client.pem")));
        env.push(("MQTT_TLS_KEYFILE", path("client.key")));
    }
    env
}

#[tokio::test]
async fn tls_connects_with_ca_and_client_certificate() {
    let pki = TestPki::generate();
    let Some(broker) = Mosquitto::start(MosquittoOptions {
        tls: Some(pki.server_files(true)),
        ..Default::default()
    }) else {
        return;
    };
    let port = broker.tls_port.expect("tls port");
    let mut app = Example::start("tls", &[], &tls_env(&pki, port, true));
    app.expect(&format!("Connected to 127.0.0.1:{port} over TLS"))
        .await;
    app.expect("Received `hello over TLS` back").await;
    assert!(app.exit().await.success(), "{}", app.report());
}

#[tokio::test]
async fn tls_without_the_client_certificate_is_refused() {
    let pki = TestPki::generate();
    let Some(broker) = Mosquitto::start(MosquittoOptions {
        tls: Some(pki.server_files(true)),
        ..Default::default()
    }) else {
        return;
    };
    let port = broker.tls_port.expect("tls port");
    let mut app = Example::start("tls", &["--wait-secs", "2"], &tls_env(&pki, port, false));
    app.expect_line("the connection failure", |l| {
        l.starts_with(&format!("Could not connect to 127.0.0.1:{port}: "))
    })
    .await;
    assert!(!app.exit().await.success(), "{}", app.report());
}

#[tokio::test]
async fn router_routes_json_params_and_shared_state() {
    let http = "127.0.0.1:0".to_string();
    let mut app = Example::start(
        "router",
        &["--http", &http],
        &broker_env("MQTT", embedded_port()),
    );
    let url = app.serving().await;
    let mqtt = client().await;
    // A device name no other run uses (one `+` level: no slashes).
    let device = unique("dev").replace('/', "-");
    let temperature = format!("sensors/{device}/temperature");

    let prefix = format!("{device}: 21.5 °C (");
    app.expect_after(
        &prefix,
        |l| l.starts_with(&prefix),
        || async {
            mqtt.publish(&temperature, r#"{"celsius": 21.5}"#)
                .qos(QoS::AtLeastOnce)
                .await
                .expect("publish");
        },
    )
    .await;

    // Subscriptions are in place now: one message each is enough.
    mqtt.publish(&temperature, "twenty degrees")
        .qos(QoS::AtLeastOnce)
        .await
        .expect("publish");
    let rejected = format!("Rejected a message on {temperature}: ");
    app.expect_line(&rejected, |l| l.starts_with(&rejected))
        .await;

    mqtt.publish(format!("sensors/{device}/status"), "online")
        .qos(QoS::AtLeastOnce)
        .await
        .expect("publish");
    app.expect(&format!("{device} is online")).await;

    mqtt.publish(format!("logs/{device}/db"), "slow query")
        .qos(QoS::AtLeastOnce)
        .await
        .expect("publish");
    app.expect(&format!("[{device}/db] slow query (on logs/{device}/db)"))
        .await;

    let latest: serde_json::Value = reqwest::get(format!("{url}/latest"))
        .await
        .expect("GET /latest")
        .json()
        .await
        .expect("JSON");
    assert_eq!(latest[&device], 21.5, "{latest}");
}

#[tokio::test]
async fn live_client_serves_its_page_and_streams_messages() {
    let http = "127.0.0.1:0".to_string();
    let mut app = Example::start(
        "live_client",
        &["--http", &http],
        &broker_env("MQTT", embedded_port()),
    );
    let url = app.serving().await;
    let http_client = reqwest::Client::new();

    let page = http_client.get(&url).send().await.expect("GET /");
    assert_eq!(page.status(), 200);
    let page = page.text().await.expect("page");
    assert!(page.contains("new EventSource('/events?"), "{page}");
    assert!(page.contains("fetch('/publish'"), "{page}");

    // The page's "Subscribe": the response starts once the broker granted the subscription.
    let topic = unique("live");
    let mut events = http_client
        .get(format!("{url}/events"))
        .query(&[("topic", topic.as_str()), ("qos", "1")])
        .send()
        .await
        .expect("GET /events");
    assert_eq!(events.status(), 200);
    assert_eq!(
        events.headers()["content-type"],
        "text/event-stream",
        "{:?}",
        events.headers()
    );

    // The page's "Publish".
    let answer: serde_json::Value = http_client
        .post(format!("{url}/publish"))
        .json(&serde_json::json!({"topic": topic, "msg": "hello live", "qos": 1}))
        .send()
        .await
        .expect("POST /publish")
        .json()
        .await
        .expect("JSON answer");
    assert_eq!(answer["code"], 0, "{answer}");

    let mut received = String::new();
    let wanted = format!(r#""topic":"{topic}","payload":"hello live""#);
    let found = tokio::time::timeout(WAIT, async {
        while let Some(chunk) = events.chunk().await.expect("SSE body") {
            received.push_str(&String::from_utf8_lossy(&chunk));
            if received.contains(&wanted) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "SSE sent:\n{received}\n{}", app.report());
    assert!(received.contains("event: message"), "{received}");

    // A bad subscription is a precise 4xx, not a hanging stream.
    let bad = http_client
        .get(format!("{url}/events"))
        .query(&[("topic", "a/#/b")])
        .send()
        .await
        .expect("GET /events");
    assert_eq!(bad.status(), 422);
}
