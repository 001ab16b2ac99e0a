//! The durable outbox against the embedded broker: a durable publish is acknowledged when the broker
//! is there, queued on disk when it is not, sent in order once it is back (also by the next client
//! started on the same file), bounded, and a damaged file is refused at start naming it.
//! The app-level kill tests against Mosquitto are in `app/tests/outbox.rs`.

mod common;

use std::time::Duration;

use axum_mqtt::{
    Delivery, Error, Mqtt, MqttConfig, OutboxCause, OutboxConfig, OutboxError, OutboxLimit,
    OutboxStatus, Protocol, QoS, StartError, Status,
};
use axum_mqtt_testkit::{embedded, unique};
use common::*;

/// A client of the embedded broker through a proxy the test can close, with an outbox at `path`.
fn config(proxy: &Proxy, path: &std::path::Path, protocol: Protocol) -> MqttConfig {
    let mut cfg = embedded_config(protocol);
    cfg.broker_port = proxy.port;
    cfg.outbox = Some(OutboxConfig::new(path));
    cfg
}

/// A plain subscriber of the embedded broker, collecting the payloads of `filter` as text.
async fn subscriber(
    filter: &str,
) -> (
    Mqtt,
    tokio::sync::mpsc::UnboundedReceiver<axum_mqtt::Message>,
) {
    let (handler, rx) = collector();
    let sub = connected(Mqtt::builder(embedded_config(Protocol::V5)).on_message(handler)).await;
    sub.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    (sub, rx)
}

async fn payloads(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<axum_mqtt::Message>,
    n: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(String::from_utf8_lossy(next(rx).await.payload()).into_owned());
    }
    out
}

/// Waits until the outbox holds `n` messages (depth changes have no event of their own).
async fn wait_depth(mqtt: &Mqtt, n: u64) {
    let outbox = mqtt.outbox().expect("an outbox");
    let deadline = tokio::time::Instant::now() + WAIT;
    while outbox.depth().messages != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox depth stayed {:?}, expected {n}",
            outbox.depth()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_publish_is_acknowledged_when_the_broker_is_there() {
    let t = unique("outbox-ack");
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(embedded().tcp_addr().port()).await;
    let (_sub, mut rx) = subscriber(&format!("{t}/#")).await;
    let mqtt = connected(Mqtt::builder(config(
        &proxy,
        &dir.path().join("o.db"),
        Protocol::V5,
    )))
    .await;
    let outbox = mqtt.outbox().unwrap().clone();

    for (i, qos) in [QoS::AtLeastOnce, QoS::ExactlyOnce].into_iter().enumerate() {
        let d = mqtt
            .publish(format!("{t}/a"), format!("m{i}"))
            .qos(qos)
            .durable()
            .await
            .unwrap();
        let Delivery::Acked(ack) = d else {
            panic!("connected, but {d:?}")
        };
        assert_eq!(ack.qos, qos);
        assert_ne!(ack.mid, 0);
    }
    assert_eq!(payloads(&mut rx, 2).await, ["m0", "m1"]);
    assert_eq!(
        outbox.depth().messages,
        0,
        "acknowledged messages leave the outbox"
    );
    assert_eq!(outbox.oldest_age().await.unwrap(), None);

    // QoS 0 cannot be confirmed, so it cannot be durable; a client without outbox says so.
    let e = mqtt
        .publish(format!("{t}/a"), "x")
        .durable()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::DurableNeedsQos), "{e}");
    let plain = connected(Mqtt::builder(embedded_config(Protocol::V311))).await;
    let e = plain
        .publish(format!("{t}/a"), "x")
        .qos(QoS::AtLeastOnce)
        .durable()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NoOutbox), "{e}");
    assert!(e.to_string().contains("MQTT_OUTBOX_PATH"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_broker_is_unreachable_publishes_are_queued_at_once_and_sent_in_order_later() {
    let t = unique("outbox-queue");
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(embedded().tcp_addr().port()).await;
    let (_sub, mut rx) = subscriber(&format!("{t}/#")).await;
    let mqtt = connected(Mqtt::builder(config(
        &proxy,
        &dir.path().join("o.db"),
        Protocol::V311,
    )))
    .await;
    let mut state = mqtt.watch_state();
    proxy.refuse(true);
    proxy.cut();
    wait_state(&mut state, "the loss", |s| s.status != Status::Connected).await;

    let mut ids = Vec::new();
    for i in 0..50 {
        // Two topics: order holds per topic (and, from one sender, across them).
        let topic = format!("{t}/{}", i % 2);
        let started = tokio::time::Instant::now();
        let d = mqtt
            .publish(topic, format!("{i}"))
            .qos(QoS::AtLeastOnce)
            .timeout(Duration::from_secs(30))
            .durable()
            .await
            .unwrap();
        let Delivery::Queued { id } = d else {
            panic!("the broker is unreachable, but {d:?}")
        };
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not connected: the answer must not wait for the timeout"
        );
        ids.push(id);
    }
    let outbox = mqtt.outbox().unwrap();
    assert_eq!(outbox.depth().messages, 50);
    assert_eq!(
        outbox.status(ids[0]).await.unwrap(),
        Some(OutboxStatus::Queued)
    );
    assert!(outbox.oldest_age().await.unwrap().is_some());
    nothing(&mut rx, Duration::from_millis(100)).await;

    proxy.refuse(false);
    let mut by_topic: [Vec<u32>; 2] = Default::default();
    for _ in 0..50 {
        let m = next(&mut rx).await;
        let n: u32 = String::from_utf8_lossy(m.payload()).parse().unwrap();
        by_topic[usize::from(m.topic().ends_with("/1"))].push(n);
    }
    // The subscriber's handler lanes keep order per topic (not across topics).
    assert_eq!(
        by_topic[0],
        (0..50).step_by(2).collect::<Vec<_>>(),
        "topic 0: once each, in order"
    );
    assert_eq!(
        by_topic[1],
        (1..50).step_by(2).collect::<Vec<_>>(),
        "topic 1: once each, in order"
    );
    wait_depth(&mqtt, 0).await;
    for id in &ids {
        assert!(
            matches!(
                outbox.status(*id).await.unwrap(),
                Some(OutboxStatus::Acked { .. })
            ),
            "{id}"
        );
    }
    nothing(&mut rx, Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_client_on_the_same_file_sends_what_the_last_one_could_not_qos_1_and_2() {
    let t = unique("outbox-restart");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let proxy = Proxy::start(embedded().tcp_addr().port()).await;
    proxy.refuse(true);
    let (_sub, mut rx) = subscriber(&format!("{t}/#")).await;
    {
        // Never connected at all: everything stays on disk.
        let first = Mqtt::builder(config(&proxy, &path, Protocol::V5))
            .start()
            .await
            .unwrap();
        for i in 0..20 {
            let qos = if i % 2 == 0 {
                QoS::AtLeastOnce
            } else {
                QoS::ExactlyOnce
            };
            let d = first
                .publish(format!("{t}/x"), format!("{i}"))
                .qos(qos)
                .durable()
                .await
                .unwrap();
            assert!(matches!(d, Delivery::Queued { .. }), "{d:?}");
        }
        first.shutdown(Duration::from_millis(100)).await;
    }
    proxy.refuse(false);
    let second = connected(Mqtt::builder(config(&proxy, &path, Protocol::V5))).await;
    let got = payloads(&mut rx, 20).await;
    assert_eq!(got, (0..20).map(|i| i.to_string()).collect::<Vec<_>>());
    wait_depth(&second, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_refuses_new_messages_and_keeps_the_stored_ones() {
    let t = unique("outbox-full");
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(embedded().tcp_addr().port()).await;
    proxy.refuse(true);
    let (_sub, mut rx) = subscriber(&format!("{t}/#")).await;
    let mut cfg = config(&proxy, &dir.path().join("o.db"), Protocol::V311);
    if let Some(o) = cfg.outbox.as_mut() {
        o.max_messages = 3;
        o.max_bytes = 1000;
    }
    let mqtt = Mqtt::builder(cfg).start().await.unwrap();
    let durable = |p: String| {
        let mqtt = mqtt.clone();
        let topic = format!("{t}/x");
        async move { mqtt.publish(topic, p).qos(QoS::AtLeastOnce).durable().await }
    };
    for i in 0..3 {
        assert!(matches!(
            durable(format!("{i}")).await,
            Ok(Delivery::Queued { .. })
        ));
    }
    let e = durable("3".into()).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::OutboxFull(OutboxLimit::Messages { held: 3, max: 3 })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("3 of 3 messages"), "{e}");
    assert_eq!(mqtt.outbox().unwrap().depth().messages, 3);

    proxy.refuse(false);
    assert_eq!(payloads(&mut rx, 3).await, ["0", "1", "2"]);
    wait_depth(&mqtt, 0).await;
    // Room again; a payload larger than the byte limit never fits.
    assert!(matches!(durable("4".into()).await, Ok(Delivery::Acked(_))));
    let e = durable("x".repeat(2000)).await.unwrap_err();
    assert!(
        matches!(e, Error::OutboxFull(OutboxLimit::Bytes { max: 1000, .. })),
        "{e}"
    );
    assert!(e.to_string().contains("would exceed 1000 bytes"), "{e}");
    assert_eq!(payloads(&mut rx, 1).await, ["4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_outbox_file_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.db");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let mut cfg = embedded_config(Protocol::V311);
    cfg.outbox = Some(OutboxConfig::new(&path));
    let e = Mqtt::builder(cfg).start().await.unwrap_err();
    match &e {
        StartError::Outbox(OutboxError {
            path: p,
            cause: OutboxCause::Sqlite(_),
        }) => assert_eq!(p, &path),
        other => panic!("expected the outbox's SQLite error, got {other:?}"),
    }
    assert!(e.to_string().contains("damaged.db"), "{e}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        vec![0x42u8; 8192],
        "the file is left as it was"
    );
}

#[test]
fn the_outbox_keys_read_and_check() {
    let cfg = MqttConfig::from_pairs(
        "MQTT",
        [
            ("MQTT_OUTBOX_PATH", "/tmp/x.db"),
            ("MQTT_OUTBOX_MAX_MESSAGES", "10"),
            ("MQTT_OUTBOX_MAX_BYTES", "2048"),
        ],
    )
    .unwrap();
    let o = cfg.outbox.unwrap();
    assert_eq!(
        (o.path.to_str(), o.max_messages, o.max_bytes),
        (Some("/tmp/x.db"), 10, 2048)
    );
    let e = MqttConfig::from_pairs("MQTT", [("MQTT_OUTBOX_MAX_BYTES", "5")]).unwrap_err();
    assert_eq!(e.key, "MQTT_OUTBOX_MAX_BYTES");
    assert!(e.reason.contains("OUTBOX_PATH"), "{e}");
}
