//! Shared subscriptions: app instances in one group split the messages, each exactly once in total.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use axum_mqtt::extract::{State, Text};
use axum_mqtt::{Mqtt, MqttConfig, Protocol, QoS, Router};
use axum_mqtt_testkit::{unique, Mosquitto};
use common::*;
use tokio::sync::mpsc;

type Tx = mpsc::UnboundedSender<(usize, String)>;

async fn split(cfg: MqttConfig, group_by_config: bool) {
    let t = unique("shared");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut instances = Vec::new();
    for i in 0..2 {
        let mut router = Router::new().route(
            &format!("{t}/jobs/{{id}}"),
            move |Text(body): Text, State(tx): State<Tx>| async move {
                let _ = tx.send((i, body));
            },
        );
        let mut cfg = cfg.clone();
        if group_by_config {
            cfg.shared_group = Some("workers".into());
        } else {
            router = router.shared("workers");
        }
        let mqtt = connected(Mqtt::builder(cfg).router(router.with_state(tx.clone()))).await;
        let subs = mqtt.subscriptions();
        assert_eq!(
            subs,
            vec![(format!("$share/workers/{t}/jobs/+"), QoS::AtLeastOnce)]
        );
        // Wait for the broker's SUBACK of the shared subscription before publishing.
        mqtt.subscribe(&subs[0].0, QoS::AtLeastOnce).await.unwrap();
        instances.push(mqtt);
    }
    let publisher = connected(Mqtt::builder(cfg.clone())).await;
    let n = 200;
    for k in 0..n {
        publisher
            .publish(format!("{t}/jobs/{k}"), k.to_string())
            .qos(QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    let mut seen = HashSet::new();
    let mut per = [0usize; 2];
    for _ in 0..n {
        let (i, body) = next(&mut rx).await;
        assert!(seen.insert(body.clone()), "message {body} handled twice");
        per[i] += 1;
    }
    nothing(&mut rx, Duration::from_millis(300)).await;
    assert_eq!(seen.len(), n);
    assert!(
        per[0] > 0 && per[1] > 0,
        "both instances must get a share: {per:?}"
    );
}

#[tokio::test]
async fn mosquitto_v5_splits_messages() {
    let Some(m) = Mosquitto::start(Default::default()) else {
        return;
    };
    split(mosquitto_config(m.port, Protocol::V5), false).await;
}

#[tokio::test]
async fn mosquitto_v311_splits_messages() {
    let Some(m) = Mosquitto::start(Default::default()) else {
        return;
    };
    split(mosquitto_config(m.port, Protocol::V311), true).await;
}

#[tokio::test]
async fn embedded_broker_splits_messages() {
    split(embedded_config(Protocol::V311), true).await;
}
