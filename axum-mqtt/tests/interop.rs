//! Interop with Mosquitto's own command line clients: what `mosquitto_pub` publishes reaches our
//! handlers, and what we publish reaches `mosquitto_sub`, at QoS 1, on MQTT 3.1.1 and 5.

mod common;

use std::path::PathBuf;
use std::process::Stdio;

use axum_mqtt::{Mqtt, Properties, Protocol, QoS};
use axum_mqtt_testkit::{mosquitto_required, unique, Mosquitto, MosquittoOptions};
use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// A Mosquitto command line tool, or `None` (test skipped) when it is not installed and not required.
fn tool(name: &str) -> Option<PathBuf> {
    let found = ["/usr/bin", "/usr/local/bin"]
        .iter()
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            !mosquitto_required(),
            "AXUM_MQTT_REQUIRE_MOSQUITTO=1 but {name} is not installed"
        );
        eprintln!("{name} not installed: skipping");
    }
    found
}

fn cli_version(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::V311 => "mqttv311",
        Protocol::V5 => "mqttv5",
    }
}

/// `mosquitto_pub` → our route handler.
async fn from_mosquitto_pub(protocol: Protocol) {
    init_tracing();
    let Some(pub_bin) = tool("mosquitto_pub") else {
        return;
    };
    let Some(m) = Mosquitto::start(MosquittoOptions::default()) else {
        return;
    };
    let t = unique("cli-pub");
    let filter = format!("{t}/+/reading");
    let (h, mut rx) = collector();
    let mqtt =
        connected(Mqtt::builder(mosquitto_config(m.port, protocol)).on_topic(&filter, h)).await;
    // Resolves once the broker confirmed the filter (the route holds it already).
    mqtt.subscribe(&filter, QoS::AtLeastOnce).await.unwrap();

    let topic = format!("{t}/dev1/reading");
    let mut cmd = Command::new(pub_bin);
    cmd.args(["-h", "127.0.0.1", "-p", &m.port.to_string()])
        .args(["-V", cli_version(protocol), "-q", "1"])
        .args(["-t", &topic, "-m", "21.5 °C"]);
    if protocol == Protocol::V5 {
        cmd.args(["-D", "publish", "user-property", "source", "cli"])
            .args(["-D", "publish", "content-type", "text/plain"]);
    }
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("mosquitto_pub hung")
        .expect("run mosquitto_pub");
    assert!(out.status.success(), "mosquitto_pub failed: {out:?}");

    let msg = next(&mut rx).await;
    assert_eq!(msg.topic(), topic);
    assert_eq!(msg.payload_str(), Some("21.5 °C"));
    assert_eq!(msg.qos(), QoS::AtLeastOnce);
    match protocol {
        Protocol::V311 => assert!(msg.properties().is_none()),
        Protocol::V5 => {
            let p = msg.properties().expect("MQTT 5 properties");
            assert_eq!(p.user_properties, vec![("source".into(), "cli".into())]);
            assert_eq!(p.content_type.as_deref(), Some("text/plain"));
        }
    }
    mqtt.shutdown(WAIT).await;
}

#[tokio::test]
async fn mosquitto_pub_reaches_handler_v311() {
    from_mosquitto_pub(Protocol::V311).await;
}

#[tokio::test]
async fn mosquitto_pub_reaches_handler_v5() {
    from_mosquitto_pub(Protocol::V5).await;
}

/// Our publish → `mosquitto_sub -C 1`.
async fn to_mosquitto_sub(protocol: Protocol) {
    init_tracing();
    let Some(sub_bin) = tool("mosquitto_sub") else {
        return;
    };
    // Mosquitto logs each subscription, so we know when `mosquitto_sub` is ready.
    let Some(m) = Mosquitto::start(MosquittoOptions {
        extra: "log_type subscribe".into(),
        ..Default::default()
    }) else {
        return;
    };
    let topic = format!("{}/out", unique("cli-sub"));
    // `-F` prints QoS, topic, payload and (MQTT 5) user properties and content type of the one
    // message it waits for.
    let mut child = Command::new(sub_bin)
        .args(["-h", "127.0.0.1", "-p", &m.port.to_string()])
        .args(["-V", cli_version(protocol), "-q", "1", "-t", &topic])
        .args(["-C", "1", "-W", "10"])
        .args(["-F", "MSG %q|%t|%p|%P|%C"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn mosquitto_sub");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    wait_log(&m, &format!(" 1 {topic}")).await;

    let mqtt = connected(Mqtt::builder(mosquitto_config(m.port, protocol))).await;
    let mut publish = mqtt
        .publish(topic.clone(), "from axum-mqtt")
        .qos(QoS::AtLeastOnce);
    if protocol == Protocol::V5 {
        publish = publish.properties(Properties {
            user_properties: vec![("k".into(), "v".into())],
            content_type: Some("text/plain".into()),
            ..Default::default()
        });
    }
    let ack = publish.await.unwrap();
    assert_ne!(ack.mid, 0);

    let msg = loop {
        let l = line(&mut lines).await;
        if let Some(rest) = l.strip_prefix("MSG ") {
            break rest.to_string();
        }
    };
    let expected = match protocol {
        Protocol::V311 => format!("1|{topic}|from axum-mqtt||"),
        Protocol::V5 => format!("1|{topic}|from axum-mqtt|k:v|text/plain"),
    };
    assert_eq!(msg, expected);
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("mosquitto_sub did not exit after one message")
        .expect("wait");
    assert!(status.success(), "mosquitto_sub: {status}");
    mqtt.shutdown(WAIT).await;
}

#[tokio::test]
async fn publish_reaches_mosquitto_sub_v311() {
    to_mosquitto_sub(Protocol::V311).await;
}

#[tokio::test]
async fn publish_reaches_mosquitto_sub_v5() {
    to_mosquitto_sub(Protocol::V5).await;
}

async fn line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("mosquitto_sub printed nothing")
        .expect("read stdout")
        .expect("mosquitto_sub exited early")
}
