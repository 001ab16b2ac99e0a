//! Third-party clients on the embedded broker: Mosquitto's `mosquitto_pub`/`mosquitto_sub` with
//! `-V mqttv5` and `-V mqttv311` on the same port, and MQTT.js 5 over TCP and WebSocket.
//!
//! Skipped when the tools are missing, unless CI asks for them (`AXUM_MQTT_REQUIRE_MOSQUITTO=1`,
//! `AXUM_MQTT_REQUIRE_NODE=1`; `.ci/run` installs both).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Instant;

use common::*;

fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found || !required("AXUM_MQTT_REQUIRE_MOSQUITTO"),
        "{tool} is required"
    );
    found
}

/// A child whose stdout lines arrive on a channel; killed on drop.
struct Lines {
    child: Child,
    rx: Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn spawn(cmd: &mut Command) -> Lines {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Lines {
            child,
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line matching `pred` (up to [`WAIT`]).
    fn expect(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if pred(&l) {
                        return l;
                    }
                }
                Err(_) => panic!("{what}: not seen; got {:#?}", self.seen),
            }
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mosquitto_sub -d` printing `topic|qos|retain|payload|user properties|content type|response topic`,
/// once its SUBACK came; `conn` says how it connects (`-h 127.0.0.1 -p P`, or with TLS options).
fn sub_with(conn: &[&str], version: &str, filter: &str, qos: u8, extra: &[&str]) -> Lines {
    let mut s = Lines::spawn(
        Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub", "-d"])
            .args(conn)
            .args(["-V", version, "-t", filter, "-q", &qos.to_string()])
            .args(["-F", "MSG %t|%q|%r|%p|%P|%C|%R"])
            .args(extra),
    );
    s.expect("SUBACK", |l| l.contains("SUBACK"));
    s
}

fn sub(port: u16, version: &str, filter: &str, qos: u8) -> Lines {
    sub_with(
        &["-h", "127.0.0.1", "-p", &port.to_string()],
        version,
        filter,
        qos,
        &[],
    )
}

fn publish_with(conn: &[&str], version: &str, args: &[&str]) {
    let status = Command::new("mosquitto_pub")
        .args(conn)
        .args(["-V", version])
        .args(args)
        .status()
        .expect("mosquitto_pub");
    assert!(status.success(), "mosquitto_pub {args:?}");
}

fn publish(port: u16, version: &str, args: &[&str]) {
    publish_with(&["-h", "127.0.0.1", "-p", &port.to_string()], version, args)
}

fn msg(l: &str) -> Vec<&str> {
    l.trim_start_matches("MSG ").split('|').collect()
}

#[test]
fn mosquitto_clients_of_both_versions_on_one_port() {
    if !have("mosquitto_sub") || !have("stdbuf") {
        return;
    }
    let b = broker();
    let port = b.tcp_addr().port();
    let t = unique("mosq");
    let mut s5 = sub(port, "mqttv5", &format!("{t}/#"), 1);
    let mut s4 = sub(port, "mqttv311", &format!("{t}/#"), 2);

    for qos in 0..=2u8 {
        let topic = format!("{t}/q{qos}");
        publish(
            port,
            "mqttv5",
            &[
                "-t",
                &topic,
                "-m",
                &format!("m{qos}"),
                "-q",
                &qos.to_string(),
                "-D",
                "publish",
                "user-property",
                "k",
                "v",
                "-D",
                "publish",
                "content-type",
                "text/plain",
                "-D",
                "publish",
                "response-topic",
                "reply/here",
            ],
        );
        let l = s5.expect("v5 message", |l| l.starts_with(&format!("MSG {topic}|")));
        let f = msg(&l);
        assert_eq!(
            f[1],
            qos.min(1).to_string(),
            "downgraded to the subscription: {l}"
        );
        assert_eq!(f[3], format!("m{qos}"));
        assert!(f[4].contains("k:v"), "user property: {l}");
        assert_eq!((f[5], f[6]), ("text/plain", "reply/here"), "{l}");
        let l = s4.expect("v3.1.1 message", |l| {
            l.starts_with(&format!("MSG {topic}|"))
        });
        assert_eq!(msg(&l)[1], qos.to_string(), "{l}");
        assert_eq!(msg(&l)[3], format!("m{qos}"));
    }

    // Retained, set by a 3.1.1 client, seen by a new 5 subscriber with the retain flag.
    let topic = format!("{t}/retained");
    publish(
        port,
        "mqttv311",
        &["-t", &topic, "-m", "kept", "-r", "-q", "1"],
    );
    let mut late = sub(port, "mqttv5", &topic, 1);
    let l = late.expect("retained", |l| l.starts_with("MSG "));
    assert_eq!(msg(&l)[2], "1", "retain flag: {l}");
    assert_eq!(msg(&l)[3], "kept");
    publish(port, "mqttv311", &["-t", &topic, "-n", "-r", "-q", "1"]);

    // A will of each version, published when the client is killed.
    for version in ["mqttv311", "mqttv5"] {
        let will_topic = format!("{t}/will/{version}");
        let mut w = sub(port, "mqttv5", &will_topic, 1);
        let dying = sub_with(
            &["-h", "127.0.0.1", "-p", &port.to_string()],
            version,
            &format!("{t}/nothing"),
            0,
            &[
                "--will-topic",
                &will_topic,
                "--will-payload",
                "bye",
                "--will-qos",
                "1",
            ],
        );
        drop(dying); // killed: no DISCONNECT, so the will fires
        let l = w.expect("will", |l| l.starts_with("MSG "));
        assert_eq!(msg(&l)[3], "bye", "{l}");
    }
    drop((s5, s4));
    // Still serving after all of it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(assert_serving(&b));
}

#[test]
fn mqtt_js_over_tcp_and_websocket() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mqttjs");
    let ready = dir.join("node_modules/mqtt").is_dir() && have_node();
    if !ready {
        assert!(
            !required("AXUM_MQTT_REQUIRE_NODE"),
            "MQTT.js is required: run `npm ci` in {}",
            dir.display()
        );
        eprintln!(
            "MQTT.js not installed (npm ci in {}): skipping",
            dir.display()
        );
        return;
    }
    let b = broker();
    let out = Command::new("node")
        .arg(dir.join("interop.mjs"))
        .arg(format!("mqtt://{}", b.tcp_addr()))
        .arg(format!("ws://{}/mqtt", b.ws_addr().unwrap()))
        .stdin(Stdio::null())
        .output()
        .expect("node");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(" 0 failed"),
        "MQTT.js interop failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn have_node() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn mosquitto_clients_over_the_tls_listener() {
    if !have("mosquitto_sub") || !have("stdbuf") {
        return;
    }
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "broker test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["localhost".into()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = server.signed_by(&key, &ca, &ca_key).unwrap();
    let (ca_pem, cert_pem, key_pem) = (
        dir.path().join("ca.pem"),
        dir.path().join("server.pem"),
        dir.path().join("server.key"),
    );
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();

    let any = "127.0.0.1:0".parse().unwrap();
    let b = axum_mqtt_broker::EmbeddedBroker::start(
        axum_mqtt_broker::BrokerConfig::new(any)
            .with_tls(axum_mqtt_broker::TlsListener::new(any, &cert_pem, &key_pem)),
    )
    .expect("broker with TLS");
    let port = b.tls_addr().expect("TLS listener").port().to_string();
    let t = unique("tls");
    let ca = ca_pem.display().to_string();
    for version in ["mqttv311", "mqttv5"] {
        let topic = format!("{t}/{version}");
        let tls = ["-h", "localhost", "-p", &port, "--cafile", &ca];
        let mut s = sub_with(&tls, version, &topic, 1, &[]);
        publish_with(&tls, version, &["-t", &topic, "-m", "secret", "-q", "1"]);
        let l = s.expect("message over TLS", |l| l.starts_with("MSG "));
        assert_eq!(msg(&l)[3], "secret", "{l}");
    }
    // A client that does not trust the broker's CA is refused.
    let other = tempfile::NamedTempFile::new().unwrap();
    let ca2 = CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&KeyPair::generate().unwrap())
        .unwrap();
    std::fs::write(other.path(), ca2.pem()).unwrap();
    let status = Command::new("mosquitto_pub")
        .args(["-h", "localhost", "-p", &port, "--cafile"])
        .arg(other.path())
        .args(["-t", "x", "-m", "y"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "an untrusted CA connected");
}
