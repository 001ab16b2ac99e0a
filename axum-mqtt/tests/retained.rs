//! Retained messages reach every new stream once, as they reach a direct MQTT subscriber, even when
//! the filter is already held by a route or another stream; holders that were there before get no
//! duplicate. On the embedded broker and on Mosquitto, MQTT 3.1.1 and 5.

mod common;

use axum_mqtt::extract::{Retain, State, Text};
use axum_mqtt::{Message, MessageStream, Mqtt, MqttConfig, Protocol, QoS, Router};
use axum_mqtt_testkit::{unique, Mosquitto};
use common::*;
use futures_util::StreamExt;
use tokio::sync::mpsc;

type Seen = mpsc::UnboundedSender<(String, bool)>;

async fn next_msg(s: &mut MessageStream) -> Message {
    tokio::time::timeout(WAIT, s.next())
        .await
        .expect("a message in time")
        .expect("stream open")
}

async fn publish(mqtt: &Mqtt, topic: &str, payload: &str, retain: bool) {
    mqtt.publish(topic, payload.to_string())
        .qos(QoS::AtLeastOnce)
        .retain(retain)
        .await
        .expect("publish");
}

async fn retained_reach_every_new_stream(cfg: MqttConfig) {
    let t = unique("retained");
    let topic = format!("{t}/state");
    // Another client leaves a retained message behind before the app starts.
    let publisher = connected(Mqtt::builder(cfg.clone())).await;
    publish(&publisher, &topic, "retained hello", true).await;

    // The app holds the filter for good through a route, as the app does with /flask/mqtt.
    let (tx, mut route_rx) = mpsc::unbounded_channel::<(String, bool)>();
    let router = Router::new()
        .route(
            &topic,
            |Text(body): Text, Retain(r): Retain, State(tx): State<Seen>| async move {
                let _ = tx.send((body, r));
            },
        )
        .with_state(tx);
    let app = connected(Mqtt::builder(cfg.clone()).router(router)).await;
    assert_eq!(
        next(&mut route_rx).await,
        ("retained hello".into(), true),
        "the route subscribed"
    );

    // A first stream on the held filter gets the retained message, flagged retained.
    let mut first = app.stream(&topic, QoS::AtLeastOnce, 16).await.unwrap();
    let m = next_msg(&mut first).await;
    assert_eq!(
        (m.payload_str(), m.retain()),
        (Some("retained hello"), true)
    );

    // A second stream gets it too; the first stream and the route do not get it again.
    let mut second = app.stream(&topic, QoS::AtMostOnce, 16).await.unwrap();
    let m = next_msg(&mut second).await;
    assert_eq!(
        (m.payload_str(), m.retain()),
        (Some("retained hello"), true)
    );

    // A live message afterwards: everyone's next message is that one, not a retained copy.
    publish(&publisher, &topic, "live", false).await;
    for (name, s) in [("first", &mut first), ("second", &mut second)] {
        let m = next_msg(s).await;
        assert_eq!(
            (m.payload_str(), m.retain()),
            (Some("live"), false),
            "{name} stream"
        );
    }
    assert_eq!(next(&mut route_rx).await, ("live".into(), false), "route");

    // A retained message published while they are subscribed is live: everyone gets it once.
    publish(&publisher, &topic, "new state", true).await;
    for (name, s) in [("first", &mut first), ("second", &mut second)] {
        assert_eq!(
            next_msg(s).await.payload_str(),
            Some("new state"),
            "{name} stream"
        );
    }
    assert_eq!(next(&mut route_rx).await.0, "new state", "route");

    // A stream on a wildcard filter nobody holds gets the retained message too.
    let mut wild = app
        .stream(&format!("{t}/+"), QoS::AtLeastOnce, 16)
        .await
        .unwrap();
    let m = next_msg(&mut wild).await;
    assert_eq!((m.payload_str(), m.retain()), (Some("new state"), true));

    // Nothing else arrived anywhere: no duplicate for the earlier holders.
    publish(&publisher, &topic, "end", false).await;
    for (name, s) in [
        ("first", &mut first),
        ("second", &mut second),
        ("wild", &mut wild),
    ] {
        assert_eq!(
            next_msg(s).await.payload_str(),
            Some("end"),
            "{name} stream"
        );
    }
    assert_eq!(next(&mut route_rx).await.0, "end", "route");
    assert_eq!(app.stats().stream_dropped, 0);

    // Leave nothing retained behind for other runs.
    publish(&publisher, &topic, "", true).await;
}

#[tokio::test]
async fn retained_reach_every_new_stream_embedded_v311() {
    retained_reach_every_new_stream(embedded_config(Protocol::V311)).await;
}

#[tokio::test]
async fn retained_reach_every_new_stream_embedded_v5() {
    retained_reach_every_new_stream(embedded_config(Protocol::V5)).await;
}

#[tokio::test]
async fn retained_reach_every_new_stream_mosquitto() {
    let Some(m) = Mosquitto::start(Default::default()) else {
        return;
    };
    retained_reach_every_new_stream(mosquitto_config(m.port, Protocol::V311)).await;
    retained_reach_every_new_stream(mosquitto_config(m.port, Protocol::V5)).await;
}
