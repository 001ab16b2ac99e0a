//! The last will: published by Mosquitto when the client vanishes (connection cut, link gone
//! silent), never after `shutdown()` or after the last handle is dropped (both send DISCONNECT).
//!
//! The client reaches the broker through a [`Proxy`] the test can break like a network would, so
//! the test process itself never has to die.

mod common;

use std::time::Duration;

use axum_mqtt::LastWill;
use axum_mqtt::{Mqtt, MqttConfig, Protocol, QoS, Status};
use axum_mqtt_testkit::{unique, Mosquitto, MosquittoOptions};
use common::*;

/// A client on Mosquitto (directly, not through the proxy) that collects the will topic.
async fn watcher(
    m: &Mosquitto,
    topic: &str,
) -> (
    Mqtt,
    tokio::sync::mpsc::UnboundedReceiver<axum_mqtt::Message>,
) {
    let (h, rx) = collector();
    let w =
        connected(Mqtt::builder(mosquitto_config(m.port, Protocol::V311)).on_topic(topic, h)).await;
    w.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    (w, rx)
}

fn will_config(port: u16, protocol: Protocol, topic: &str) -> MqttConfig {
    let mut cfg = mosquitto_config(port, protocol);
    cfg.client_id = unique_id("will");
    cfg.last_will = Some(LastWill {
        topic: topic.to_string(),
        message: "gone".into(),
        qos: QoS::AtLeastOnce,
        retain: false,
    });
    cfg
}

/// The connection is cut under the client: the broker publishes the will at once.
async fn cut_fires_will(protocol: Protocol) {
    init_tracing();
    let Some(m) = Mosquitto::start(MosquittoOptions::default()) else {
        return;
    };
    let topic = format!("{}/will", unique("cut"));
    let (_w, mut wills) = watcher(&m, &topic).await;
    let proxy = Proxy::start(m.port).await;
    let cfg = will_config(proxy.port, protocol, &topic);
    let id = cfg.client_id.clone();
    let client = connected(Mqtt::builder(cfg)).await;
    nothing(&mut wills, Duration::from_millis(100)).await;

    let mut state = client.watch_state();
    proxy.refuse(true);
    proxy.cut();
    let will = next(&mut wills).await;
    assert_eq!(will.payload_str(), Some("gone"));
    assert_eq!(will.qos(), QoS::AtLeastOnce);
    wait_log(&m, &format!("Client {id} closed its connection")).await;
    // The client noticed too, and keeps trying.
    let s = wait_state(&mut state, "Reconnecting", |s| {
        s.status == Status::Reconnecting
    })
    .await;
    assert!(s.last_error.is_some(), "{s:?}");
    proxy.refuse(false);
    wait_state(&mut state, "reconnected", |s| s.connects == 2).await;
    nothing(&mut wills, Duration::from_millis(100)).await;
    client.shutdown(WAIT).await;
}

#[tokio::test]
async fn cut_connection_fires_will_v311() {
    cut_fires_will(Protocol::V311).await;
}

#[tokio::test]
async fn cut_connection_fires_will_v5() {
    cut_fires_will(Protocol::V5).await;
}

/// The will keys of Flask-MQTT (`MQTT_LAST_WILL_*`) reach the broker: topic, message, QoS, retain.
#[tokio::test]
async fn will_from_config_keys_is_retained() {
    init_tracing();
    let Some(m) = Mosquitto::start(MosquittoOptions::default()) else {
        return;
    };
    let topic = format!("{}/status", unique("keys"));
    let proxy = Proxy::start(m.port).await;
    let port = proxy.port.to_string();
    let cfg = MqttConfig::from_pairs(
        "MQTT",
        [
            ("MQTT_BROKER_URL", "127.0.0.1"),
            ("MQTT_BROKER_PORT", port.as_str()),
            ("MQTT_LAST_WILL_TOPIC", topic.as_str()),
            ("MQTT_LAST_WILL_MESSAGE", "offline"),
            ("MQTT_LAST_WILL_QOS", "2"),
            ("MQTT_LAST_WILL_RETAIN", "true"),
            ("MQTT_RECONNECT_MIN_MS", "20"),
            ("MQTT_RECONNECT_MAX_MS", "300"),
        ],
    )
    .unwrap();
    let client = connected(Mqtt::builder(cfg)).await;
    proxy.refuse(true);
    proxy.cut();
    // A subscriber that arrives after the will was published gets it as a retained message.
    let mut state = client.watch_state();
    wait_state(&mut state, "Reconnecting", |s| {
        s.status == Status::Reconnecting
    })
    .await;
    let (_w, mut wills) = watcher(&m, &topic).await;
    let will = next(&mut wills).await;
    assert_eq!(will.payload_str(), Some("offline"));
    assert!(will.retain(), "LAST_WILL_RETAIN=true: {will:?}");
    // Delivered at min(will QoS 2, subscription QoS 1).
    assert_eq!(will.qos(), QoS::AtLeastOnce);
    drop(proxy);
    client.shutdown(Duration::from_secs(1)).await;
}

/// The link goes silent (half-open): the broker's keepalive timer (1.5 × keepalive; Mosquitto 2.0
/// checks it every few seconds) fires the will, and the client's own ping timeout notices the dead link.
#[tokio::test]
async fn silent_link_fires_will_after_keepalive() {
    init_tracing();
    let Some(m) = Mosquitto::start(MosquittoOptions::default()) else {
        return;
    };
    let topic = format!("{}/will", unique("silent"));
    let (_w, mut wills) = watcher(&m, &topic).await;
    let proxy = Proxy::start(m.port).await;
    let mut cfg = will_config(proxy.port, Protocol::V311, &topic);
    cfg.keepalive = std::time::Duration::from_secs(1);
    let id = cfg.client_id.clone();
    let client = connected(Mqtt::builder(cfg)).await;
    let mut state = client.watch_state();
    let stalled_at = tokio::time::Instant::now();
    proxy.stall(true);
    let will = next(&mut wills).await;
    assert_eq!(will.payload_str(), Some("gone"));
    let waited = stalled_at.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "the will came before the keepalive could expire ({waited:?})"
    );
    wait_log(&m, &format!("Client {id} has exceeded timeout")).await;
    let s = wait_state(&mut state, "Reconnecting", |s| {
        s.status == Status::Reconnecting
    })
    .await;
    assert!(s.last_error.is_some(), "{s:?}");
    proxy.stall(false);
    wait_state(&mut state, "reconnected", |s| s.status == Status::Connected).await;
    client.shutdown(WAIT).await;
}

/// `shutdown()` sends DISCONNECT: the broker logs a clean disconnect and keeps the will.
async fn shutdown_keeps_will(protocol: Protocol) {
    init_tracing();
    let Some(m) = Mosquitto::start(MosquittoOptions::default()) else {
        return;
    };
    let topic = format!("{}/will", unique("shutdown"));
    let (_w, mut wills) = watcher(&m, &topic).await;
    let cfg = will_config(m.port, protocol, &topic);
    let id = cfg.client_id.clone();
    let client = connected(Mqtt::builder(cfg)).await;
    client.shutdown(WAIT).await;
    assert_eq!(client.state().status, Status::Stopped);
    wait_log(&m, &format!("Client {id} disconnected.")).await;
    nothing(&mut wills, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn shutdown_does_not_fire_will_v311() {
    shutdown_keeps_will(Protocol::V311).await;
}

#[tokio::test]
async fn shutdown_does_not_fire_will_v5() {
    shutdown_keeps_will(Protocol::V5).await;
}

/// Dropping the last handle ends the connection with DISCONNECT and stops the task: no will, and
/// the broker sees the client leave (it does not linger until the keepalive runs out).
async fn drop_keeps_will(protocol: Protocol) {
    init_tracing();
    let Some(m) = Mosquitto::start(MosquittoOptions::default()) else {
        return;
    };
    let topic = format!("{}/will", unique("drop"));
    let (_w, mut wills) = watcher(&m, &topic).await;
    let cfg = will_config(m.port, protocol, &topic);
    let id = cfg.client_id.clone();
    let client = connected(Mqtt::builder(cfg)).await;
    let mut state = client.watch_state();
    let clone = client.clone();
    drop(client);
    assert_eq!(
        state.borrow().status,
        Status::Connected,
        "a clone still holds the client"
    );
    drop(clone);
    wait_state(&mut state, "Stopped", |s| s.status == Status::Stopped).await;
    wait_log(&m, &format!("Client {id} disconnected.")).await;
    assert!(
        !m.log()
            .contains(&format!("Client {id} closed its connection")),
        "{}",
        m.log()
    );
    nothing(&mut wills, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn dropping_last_handle_does_not_fire_will_v311() {
    drop_keeps_will(Protocol::V311).await;
}

#[tokio::test]
async fn dropping_last_handle_does_not_fire_will_v5() {
    drop_keeps_will(Protocol::V5).await;
}
