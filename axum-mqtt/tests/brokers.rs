//! Several brokers at once: two clients configured from the `MQTT_*` and `MQTT2_*` keys of one
//! key-value source, connected to two different brokers (the embedded rmqtt and Mosquitto) in one
//! process, are independent.

mod common;

use std::time::Duration;

use axum_mqtt::{Mqtt, MqttConfig, Protocol, QoS, Status};
use axum_mqtt_testkit::{embedded, unique, Mosquitto, MosquittoOptions};
use common::*;

#[tokio::test]
async fn two_prefixes_two_brokers_independent() {
    init_tracing();
    let Some(mut m) = Mosquitto::start(MosquittoOptions::default()) else {
        return;
    };
    let one_url = format!("mqtt://127.0.0.1:{}", embedded().tcp_addr().port());
    let two_port = m.port.to_string();
    // The same client id on both: different brokers, so no takeover loop.
    let id = unique_id("twin");
    let pairs = vec![
        ("MQTT_BROKER_URL", one_url.as_str()),
        ("MQTT_CLIENT_ID", id.as_str()),
        ("MQTT_RECONNECT_MIN_MS", "20"),
        ("MQTT2_BROKER_URL", "127.0.0.1"),
        ("MQTT2_BROKER_PORT", two_port.as_str()),
        ("MQTT2_CLIENT_ID", id.as_str()),
        ("MQTT2_PROTOCOL", "5"),
        ("MQTT2_RECONNECT_MIN_MS", "20"),
        ("MQTT2_RECONNECT_MAX_MS", "300"),
    ];
    let cfg1 = MqttConfig::from_pairs("MQTT", pairs.iter().copied()).unwrap();
    let cfg2 = MqttConfig::from_pairs("MQTT2", pairs.iter().copied()).unwrap();
    assert_eq!(
        (cfg1.broker_port, cfg1.protocol),
        (embedded().tcp_addr().port(), Protocol::V311)
    );
    assert_eq!((cfg2.broker_port, cfg2.protocol), (m.port, Protocol::V5));

    let t = unique("twins");
    let filter = format!("{t}/#");
    let (h1, mut rx1) = collector();
    let (h2, mut rx2) = collector();
    let one = connected(Mqtt::builder(cfg1).on_topic(&filter, h1)).await;
    let two = connected(Mqtt::builder(cfg2).on_topic(&filter, h2)).await;
    assert_eq!(one.protocol(), Protocol::V311);
    assert_eq!(two.protocol(), Protocol::V5);
    for c in [&one, &two] {
        c.subscribe(&filter, QoS::AtLeastOnce).await.unwrap();
    }

    // A message on broker 1 reaches client 1 only, and the other way round.
    one.publish(format!("{t}/x"), "one")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut rx1).await.payload_str(), Some("one"));
    two.publish(format!("{t}/x"), "two")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut rx2).await.payload_str(), Some("two"));
    nothing(&mut rx1, Duration::from_millis(200)).await;
    nothing(&mut rx2, Duration::ZERO).await;
    assert_eq!((one.stats().received, two.stats().received), (1, 1));

    // Broker 2 going down affects client 2 only.
    let mut state2 = two.watch_state();
    m.stop(false);
    wait_state(&mut state2, "client 2 Reconnecting", |s| {
        s.status == Status::Reconnecting
    })
    .await;
    one.publish(format!("{t}/y"), "still here")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut rx1).await.payload_str(), Some("still here"));
    let s1 = one.state();
    assert_eq!((s1.status, s1.connects), (Status::Connected, 1), "{s1:?}");

    // Shutting client 1 down leaves client 2 running (and reconnecting on its own).
    one.shutdown(WAIT).await;
    assert_eq!(one.state().status, Status::Stopped);
    m.restart();
    wait_state(&mut state2, "client 2 back", |s| {
        s.status == Status::Connected && s.connects == 2
    })
    .await;
    two.publish(format!("{t}/z"), "back")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut rx2).await.payload_str(), Some("back"));
    two.shutdown(WAIT).await;
}
