//! Publish and subscribe against the embedded broker, on MQTT 3.1.1 and 5, at every QoS.

mod common;

use axum_mqtt::{Error, Mqtt, Properties, Protocol, QoS, StartError};
use axum_mqtt_testkit::unique;
use common::*;

/// `spec_qos`: the broker delivers at min(publish QoS, subscription QoS) as MQTT requires (the
/// embedded rmqtt broker and Mosquitto both do; the test keeps the switch for other brokers).
async fn roundtrip(cfg: axum_mqtt::MqttConfig, spec_qos: bool) {
    let t = unique("rt");
    let (handler, mut rx) = collector();
    let filter = format!("{t}/#");
    let sub = connected(Mqtt::builder(cfg.clone()).on_topic(&filter, handler)).await;
    let publisher = connected(Mqtt::builder(cfg)).await;
    // The route's subscription is made on connect; wait until the broker confirmed it.
    sub_ready(&sub, &filter).await;
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let topic = format!("{t}/q{}", qos as u8);
        let ack = publisher
            .publish(topic.clone(), format!("hello {}", qos as u8))
            .qos(qos)
            .await
            .unwrap_or_else(|e| panic!("publish at {qos:?}: {e}"));
        assert_eq!(ack.qos, qos);
        assert_eq!(ack.mid == 0, qos == QoS::AtMostOnce, "{ack:?}");
        let m = next(&mut rx).await;
        assert_eq!(m.topic(), topic);
        assert_eq!(
            m.payload_str(),
            Some(format!("hello {}", qos as u8).as_str())
        );
        if spec_qos {
            assert_eq!(m.qos(), qos.min(QoS::AtLeastOnce));
        }
    }
    publisher.shutdown(WAIT).await;
    sub.shutdown(WAIT).await;
}

/// Waits until the broker acknowledged a route subscription (a publish to it then arrives).
async fn sub_ready(mqtt: &Mqtt, filter: &str) {
    // `subscribe` on a filter a route holds resolves when the broker answered; it is idempotent.
    mqtt.subscribe(filter, QoS::AtLeastOnce)
        .await
        .expect("subscribe");
}

#[tokio::test]
async fn roundtrip_v311_embedded() {
    init_tracing();
    roundtrip(embedded_config(Protocol::V311), true).await;
}

#[tokio::test]
async fn roundtrip_v5_embedded() {
    init_tracing();
    roundtrip(embedded_config(Protocol::V5), true).await;
}

#[tokio::test]
async fn roundtrip_v311_mosquitto() {
    let Some(m) = axum_mqtt_testkit::Mosquitto::start(Default::default()) else {
        return;
    };
    roundtrip(mosquitto_config(m.port, Protocol::V311), true).await;
}

#[tokio::test]
async fn roundtrip_v5_mosquitto() {
    let Some(m) = axum_mqtt_testkit::Mosquitto::start(Default::default()) else {
        return;
    };
    roundtrip(mosquitto_config(m.port, Protocol::V5), true).await;
}

#[tokio::test]
async fn retained_message_reaches_later_subscriber() {
    let t = unique("retained");
    let publisher = connected(Mqtt::builder(embedded_config(Protocol::V311))).await;
    publisher
        .publish(format!("{t}/state"), "on")
        .qos(QoS::AtLeastOnce)
        .retain(true)
        .await
        .unwrap();
    let (handler, mut rx) = collector();
    let _sub = connected(
        Mqtt::builder(embedded_config(Protocol::V311)).on_topic(&format!("{t}/+"), handler),
    )
    .await;
    let m = next(&mut rx).await;
    assert_eq!(m.payload_str(), Some("on"));
    assert!(
        m.retain(),
        "retained flag must be set on delivery to a new subscriber"
    );
}

#[tokio::test]
async fn subscribe_unsubscribe_and_registry() {
    let t = unique("subs");
    let (handler, mut rx) = collector();
    let mqtt = connected(Mqtt::builder(embedded_config(Protocol::V311)).on_message(handler)).await;
    let granted = mqtt
        .subscribe(&format!("{t}/a"), QoS::ExactlyOnce)
        .await
        .unwrap();
    assert!(granted >= QoS::AtMostOnce);
    mqtt.subscribe(&format!("{t}/b"), QoS::AtMostOnce)
        .await
        .unwrap();
    let mut subs = mqtt.subscriptions();
    subs.sort();
    assert_eq!(
        subs,
        vec![
            (format!("{t}/a"), QoS::ExactlyOnce),
            (format!("{t}/b"), QoS::AtMostOnce)
        ]
    );
    mqtt.publish(format!("{t}/a"), "1")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await.payload_str(), Some("1"));
    mqtt.unsubscribe(&format!("{t}/a")).await.unwrap();
    assert_eq!(mqtt.subscriptions().len(), 1);
    mqtt.publish(format!("{t}/a"), "2")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    mqtt.publish(format!("{t}/b"), "3")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(
        next(&mut rx).await.payload_str(),
        Some("3"),
        "unsubscribed topic must not arrive"
    );
    mqtt.unsubscribe_all().await.unwrap();
    assert!(mqtt.subscriptions().is_empty());
    mqtt.publish(format!("{t}/b"), "4")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    nothing(&mut rx, std::time::Duration::from_millis(300)).await;
}

#[tokio::test]
async fn invalid_topics_and_filters_are_errors() {
    let mqtt = Mqtt::start(embedded_config(Protocol::V311)).await.unwrap();
    for bad in ["", "a/+", "a/#", "a\0b"] {
        let e = mqtt.publish(bad, "x").await.unwrap_err();
        assert!(matches!(e, Error::InvalidTopic { .. }), "{bad:?}: {e}");
    }
    for bad in ["", "a/#/b", "a+", "$share/g"] {
        let e = mqtt.subscribe(bad, QoS::AtMostOnce).await.unwrap_err();
        assert!(matches!(e, Error::InvalidFilter { .. }), "{bad:?}: {e}");
    }
    let big = vec![0u8; 2 * 1024 * 1024];
    let e = mqtt.publish("a", big).await.unwrap_err();
    assert!(matches!(e, Error::PayloadTooLarge { .. }), "{e}");
    let e = mqtt
        .publish("a", "x")
        .properties(Properties::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::PropertiesNeedV5), "{e}");
}

#[tokio::test]
async fn v5_properties_round_trip() {
    let t = unique("props");
    let (handler, mut rx) = collector();
    let filter = format!("{t}/#");
    let mqtt =
        connected(Mqtt::builder(embedded_config(Protocol::V5)).on_topic(&filter, handler)).await;
    mqtt.subscribe(&filter, QoS::AtLeastOnce).await.unwrap();
    let props = Properties {
        content_type: Some("application/json".into()),
        response_topic: Some(format!("{t}/reply")),
        correlation_data: Some(bytes::Bytes::from_static(b"id-1")),
        user_properties: vec![("k".into(), "v".into())],
        ..Default::default()
    };
    mqtt.publish(format!("{t}/req"), "{}")
        .qos(QoS::AtLeastOnce)
        .properties(props.clone())
        .await
        .unwrap();
    let m = next(&mut rx).await;
    let got = m.properties().expect("v5 message has properties");
    assert_eq!(got.content_type, props.content_type);
    assert_eq!(got.response_topic, props.response_topic);
    assert_eq!(got.correlation_data, props.correlation_data);
    assert_eq!(got.user_properties, props.user_properties);
}

#[tokio::test]
async fn one_client_id_per_broker_in_a_process() {
    let mut cfg = embedded_config(Protocol::V311);
    cfg.client_id = unique("dup").replace('/', "-");
    let first = connected(Mqtt::builder(cfg.clone())).await;
    let e = Mqtt::start(cfg.clone()).await.unwrap_err();
    match e {
        StartError::Config(c) => {
            assert_eq!(c.key, "MQTT_CLIENT_ID");
            assert!(c.reason.contains("already used"), "{c}");
        }
        other => panic!("{other}"),
    }
    // Free again once the first client is shut down (or dropped).
    first.shutdown(WAIT).await;
    let second = connected(Mqtt::builder(cfg.clone())).await;
    drop(second);
    let _third = Mqtt::start(cfg).await.expect("released on drop");
}

#[tokio::test]
async fn non_ascii_topics_keep_the_embedded_broker_alive() {
    // rumqttd 0.20, the embedded broker before rmqtt, panicked on topics starting with a
    // multi-byte character; kept as a regression test for whatever broker is embedded.
    let t = unique("utf8");
    let (handler, mut rx) = collector();
    let sub = connected(Mqtt::builder(embedded_config(Protocol::V311)).on_message(handler)).await;
    sub.subscribe("Ä/+", QoS::AtLeastOnce).await.unwrap();
    sub.subscribe(&format!("{t}/after"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let p = connected(Mqtt::builder(embedded_config(Protocol::V311))).await;
    p.publish("Ä/ü", "grüße")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    let m = next(&mut rx).await;
    assert_eq!((m.topic(), m.payload_str()), ("Ä/ü", Some("grüße")));
    p.publish(format!("{t}/after"), "still alive")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await.payload_str(), Some("still alive"));
}

/// `try_send_now`: a QoS 0 publish on a connected client is queued at once and arrives; QoS 1 is
/// left to be awaited (and then arrives too); a publish that can never be sent fails at once.
#[tokio::test]
async fn try_send_now_queues_qos0_and_hands_back_the_rest() {
    init_tracing();
    let cfg = embedded_config(Protocol::V311);
    let t = unique("now");
    let filter = format!("{t}/#");
    let (handler, mut rx) = collector();
    let sub = connected(Mqtt::builder(cfg.clone()).on_topic(&filter, handler)).await;
    sub_ready(&sub, &filter).await;
    let publisher = connected(Mqtt::builder(cfg)).await;

    let mut p = publisher.publish(format!("{t}/zero"), "now");
    let done = p
        .try_send_now()
        .expect("connected with room: queued at once");
    assert_eq!(done.expect("queued").qos, QoS::AtMostOnce);
    assert_eq!(next(&mut rx).await.payload_str(), Some("now"));

    let mut p = publisher
        .publish(format!("{t}/one"), "later")
        .qos(QoS::AtLeastOnce);
    assert!(p.try_send_now().is_none(), "QoS 1 waits for its ack");
    p.await.expect("the handed-back publish still works");
    assert_eq!(next(&mut rx).await.payload_str(), Some("later"));

    let mut p = publisher.publish(format!("{t}/+"), "never");
    assert!(matches!(
        p.try_send_now(),
        Some(Err(Error::InvalidTopic { .. }))
    ));
    publisher.shutdown(WAIT).await;
    sub.shutdown(WAIT).await;
}

/// Publishes made while the connection task finishes a write are written by it, never held back
/// until some later event: callers publishing in a closed loop (each waits for its answer, then
/// publishes again, as HTTP clients of `POST /publish` do) never reach their timeout. On MQTT
/// 3.1.1 the task batches publishes; a caller that read its "awake" flag outside the core's lock
/// could hold a publish in a batch nobody wrote. While others publish, their acks wake the task;
/// the last publishes of a wave have nobody to do that, so the test runs many short waves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_publishers_never_wait_for_a_later_event() {
    let mut cfg = embedded_config(Protocol::V311);
    // No PINGREQ within the test: its answer would be the later event that rescues a held publish.
    cfg.keepalive = std::time::Duration::from_secs(60);
    let mqtt = connected(Mqtt::builder(cfg)).await;
    let t = unique("closed-loop");
    for wave in 0..40 {
        let callers: Vec<_> = (0..32)
            .map(|i| {
                let mqtt = mqtt.clone();
                let topic = format!("{t}/{i}");
                tokio::spawn(async move {
                    for n in 0..50 {
                        let qos = [QoS::AtMostOnce, QoS::AtLeastOnce][n % 2];
                        mqtt.publish(topic.clone(), "x")
                            .qos(qos)
                            .timeout(WAIT)
                            .await
                            .map_err(|e| {
                                format!("wave {wave}, caller {i}, publish {n} at {qos:?}: {e}")
                            })?;
                    }
                    Ok::<_, String>(())
                })
            })
            .collect();
        for c in callers {
            c.await
                .expect("caller task")
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    mqtt.shutdown(WAIT).await;
}
