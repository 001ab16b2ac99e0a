//! The app binary as a user runs it: defaults, the banner, `--help`, bad options, busy ports,
//! an external broker, and the Flask tutorial's curl → subscriber round trip.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use axum_mqtt::{MqttConfig, Protocol, QoS};
use axum_mqtt_testkit::{Mosquitto, MosquittoOptions};
use common::*;
use serde_json::Value;

/// `mosquitto_sub -d` on a port and topic; returns the child and a receiver of its stdout lines.
fn mosquitto_sub(
    port: u16,
    topic: &str,
) -> Option<(std::process::Child, std::sync::mpsc::Receiver<String>)> {
    if axum_mqtt_testkit::mosquitto_path().is_none() {
        assert!(
            !axum_mqtt_testkit::mosquitto_required(),
            "mosquitto_sub is required"
        );
        return None;
    }
    // stdbuf: mosquitto_sub's stdout is block-buffered into a pipe otherwise.
    let mut child = match Command::new("stdbuf")
        .args([
            "-oL",
            "mosquitto_sub",
            "-d",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            topic,
            "-C",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => {
            assert!(
                !axum_mqtt_testkit::mosquitto_required(),
                "mosquitto_sub is required"
            );
            return None;
        }
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Some((child, rx))
}

fn wait_for(rx: &std::sync::mpsc::Receiver<String>, pred: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if pred(&l) => return l,
            Ok(_) => continue,
            Err(e) => panic!("mosquitto_sub: expected line not seen ({e})"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_publish_reaches_a_subscriber_and_the_log_like_the_tutorial() {
    // Only the ports differ from `cargo run --release`.
    let mut app = App::start(&[], &[]).await;
    let banner = app.stdout().join("\n");
    for needle in [
        format!("http://127.0.0.1:{}/", app.http_port),
        format!(
            "MQTT 3.1.1 and 5            mqtt://127.0.0.1:{}",
            app.broker_port
        ),
        format!(
            "MQTT over WebSocket         ws://127.0.0.1:{}/mqtt",
            app.ws_port
        ),
        "Subscribed:   /flask/mqtt".to_string(),
    ] {
        assert!(banner.contains(&needle), "{needle:?} not in\n{banner}");
    }
    app.wait_line(|l| l == "Connected successfully", WAIT).await;

    // An MQTT 5 subscriber and mosquitto_sub (3.1.1) on the same port.
    let mut v5 = MqttConfig::new("127.0.0.1", app.broker_port);
    v5.protocol = Protocol::V5;
    let v5 = axum_mqtt::Mqtt::start(v5).await.unwrap();
    let mut v5_stream = v5.stream("/flask/mqtt", QoS::AtLeastOnce, 8).await.unwrap();
    let sub = mosquitto_sub(app.broker_port, "/flask/mqtt");
    if let Some((_, rx)) = &sub {
        wait_for(rx, |l| l.contains("SUBACK"));
    }

    let r = reqwest::Client::new()
        .post(app.url("/publish"))
        .header("content-type", "application/json")
        .body(r#"{"topic": "/flask/mqtt", "msg": "Hello from curl"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], 0);

    let m = tokio::time::timeout(WAIT, v5_stream.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.payload_str(), Some("Hello from curl"));
    if let Some((mut child, rx)) = sub {
        wait_for(&rx, |l| l == "Hello from curl");
        let _ = child.wait();
    }
    app.wait_line(
        |l| l == "Received message on topic: /flask/mqtt with payload: Hello from curl",
        WAIT,
    )
    .await;

    let status =
        tokio::task::block_in_place(|| app.signal_and_wait("INT", Duration::from_secs(10)))
            .expect("exit after Ctrl-C");
    assert!(status.success());
}

#[test]
fn help_lists_every_option_with_its_environment_variable() {
    let mut cmd = command();
    cmd.arg("--help");
    let (code, out, _) = run_to_end(cmd);
    assert_eq!(code, Some(0));
    for needle in [
        "--http <ADDR>",
        "APP_HTTP_ADDR",
        "127.0.0.1:5000",
        "--broker-listen <ADDR>",
        "APP_BROKER_ADDR",
        "127.0.0.1:1883",
        "--broker-ws <ADDR>",
        "APP_BROKER_WS_ADDR",
        "--broker-tls <ADDR>",
        "APP_BROKER_TLS_ADDR",
        "--broker-tls-cert <FILE>",
        "--broker-tls-key <FILE>",
        "--no-broker",
        "APP_NO_BROKER",
        "--subscribe <FILTER>",
        "APP_SUBSCRIBE",
        "/flask/mqtt",
        "--token <TOKEN>",
        "APP_TOKEN",
        "--allow-publish",
        "APP_ALLOW_PUBLISH",
        "--allow-subscribe",
        "APP_ALLOW_SUBSCRIBE",
        "MQTT_BROKER_URL",
        "--allowed-host <HOST[:PORT]>",
        "APP_ALLOWED_HOSTS",
        "--header-read-timeout <DURATION>",
        "APP_HEADER_READ_TIMEOUT",
        "--request-timeout <DURATION>",
        "APP_REQUEST_TIMEOUT",
        "--max-connections <N>",
        "APP_MAX_CONNECTIONS",
        "--max-ws-clients <N>",
        "APP_MAX_WS_CLIENTS",
        "--max-sse-clients <N>",
        "APP_MAX_SSE_CLIENTS",
        "--ws-ping-interval <DURATION>",
        "APP_WS_PING_INTERVAL",
        "--ws-peer-timeout <DURATION>",
        "APP_WS_PEER_TIMEOUT",
    ] {
        assert!(out.contains(needle), "{needle} missing from --help:\n{out}");
    }
}

#[test]
fn bad_options_and_keys_exit_2_with_a_message_naming_them() {
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["--bogus"], vec![], "--bogus"),
        (vec!["--http", "nonsense"], vec![], "--http"),
        (vec![], vec![("APP_HTTP_ADDR", "localhost")], "--http"),
        (vec!["--subscribe", "a/#/b"], vec![], "--subscribe"),
        (vec![], vec![("APP_SUBSCRIBE", "ok,a/#/b")], "--subscribe"),
        (vec![], vec![("APP_ALLOW_PUBLISH", "x+")], "--allow-publish"),
        (vec![], vec![("APP_NO_BROKER", "maybe")], "--no-broker"),
        (vec!["--max-payload", "0"], vec![], "--max-payload"),
        (
            vec!["--broker-listen", "localhost:1883"],
            vec![],
            "--broker-listen",
        ),
        (
            vec!["--broker-v5-listen", "127.0.0.1:1884"],
            vec![],
            "--broker-listen",
        ),
        (
            vec![],
            vec![("APP_BROKER_V5_ADDR", "127.0.0.1:1884")],
            "one port",
        ),
        (
            vec!["--broker-tls", "127.0.0.1:8883"],
            vec![],
            "--broker-tls-cert",
        ),
        (
            vec![],
            vec![("MQTT_BROKER_PORT", "eighty")],
            "MQTT_BROKER_PORT",
        ),
        (vec![], vec![("MQTT_KEEPALIVE", "-1")], "MQTT_KEEPALIVE"),
        (
            vec![],
            vec![("MQTT_BROKER_URL", "http://x")],
            "MQTT_BROKER_URL",
        ),
        (
            vec![
                "--broker-listen",
                "127.0.0.1:4000",
                "--broker-ws",
                "127.0.0.1:4000",
            ],
            vec![],
            "127.0.0.1:4000",
        ),
    ];
    for (args, env, needle) in cases {
        let mut cmd = command();
        cmd.args(&args);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let (code, _, err) = run_to_end(cmd);
        assert_eq!(code, Some(2), "{args:?} {env:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?} {env:?}: {needle} not in {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn busy_ports_are_clear_errors() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut cmd = command();
    cmd.args(["--http", &format!("127.0.0.1:{port}")]);
    let (code, _, err) = run_to_end(cmd);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")) && err.contains("--http"),
        "{err}"
    );

    let mut cmd = command();
    cmd.args([
        "--http",
        "127.0.0.1:0",
        "--broker-listen",
        &format!("127.0.0.1:{port}"),
        "--broker-ws",
        "off",
    ]);
    let (code, _, err) = run_to_end(cmd);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("--broker-listen"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_broker_url_uses_that_broker_and_starts_none() {
    let Some(mosq) = Mosquitto::start(MosquittoOptions::default()) else {
        return;
    };
    for env in [
        vec![("MQTT_BROKER_URL", mosq.url())],
        vec![
            ("MQTT_BROKER_URL", mosq.url()),
            ("APP_NO_BROKER", "1".to_string()),
        ],
    ] {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let app = App::start(&[], &env).await;
        let out = app.stdout().join("\n");
        assert!(out.contains("MQTT broker:  none embedded"), "{out}");
        assert!(
            out.contains(&format!("MQTT client:  mqtt://127.0.0.1:{}", mosq.port)),
            "{out}"
        );
        // No embedded broker listens.
        assert!(!out.contains("MQTT 3.1.1 and 5"), "{out}");
        assert_eq!(app.broker_port, 0, "{out}");

        let sub = axum_mqtt::Mqtt::start(MqttConfig::new("127.0.0.1", mosq.port))
            .await
            .unwrap();
        let mut s = sub
            .stream("/flask/mqtt", QoS::AtLeastOnce, 8)
            .await
            .unwrap();
        let r = reqwest::Client::new()
            .post(app.url("/publish"))
            .body(r#"{"topic": "/flask/mqtt", "msg": "via mosquitto", "qos": 1}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let m = tokio::time::timeout(WAIT, s.recv()).await.unwrap().unwrap();
        assert_eq!(m.payload_str(), Some("via mosquitto"));
        // Mosquitto delivers at min(publish, subscription) QoS.
        assert_eq!(m.qos(), QoS::AtLeastOnce);
        app.wait_line(
            |l| l == "Received message on topic: /flask/mqtt with payload: via mosquitto",
            WAIT,
        )
        .await;
        sub.shutdown(Duration::from_secs(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt5_client_setting_connects_to_the_same_listener() {
    let app = App::start(&[], &[("MQTT_PROTOCOL", "5")]).await;
    let out = app.stdout().join("\n");
    assert!(
        out.contains(&format!(
            "MQTT client:  mqtt://127.0.0.1:{}",
            app.broker_port
        )),
        "{out}"
    );
    let r = reqwest::Client::new()
        .post(app.url("/publish"))
        .body(r#"{"topic": "/flask/mqtt", "msg": "five"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.wait_line(
        |l| l == "Received message on topic: /flask/mqtt with payload: five",
        WAIT,
    )
    .await;
}
