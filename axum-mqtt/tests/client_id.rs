//! `MQTT_CLIENT_ID` templates against a real broker: two clients started from one config with
//! `{random}` get two ids, are both connected at once (one id would make the broker take one
//! over), and keep their ids across a reconnect (the template is filled in once per client).

mod common;

use axum_mqtt::{Mqtt, MqttConfig, Protocol, QoS, Status};
use axum_mqtt_testkit::{embedded, unique};
use common::*;

async fn random_ids_never_collide(protocol: Protocol) {
    init_tracing();
    let proxy = Proxy::start(embedded().tcp_addr().port()).await;
    let mut cfg = MqttConfig::from_pairs("MQTT", [("MQTT_CLIENT_ID", "worker-{pid}-{random}")])
        .expect("a valid template");
    cfg.broker_url = "127.0.0.1".into();
    cfg.broker_port = proxy.port;
    cfg.protocol = protocol;
    cfg.reconnect_min = std::time::Duration::from_millis(20);
    cfg.keepalive = std::time::Duration::from_secs(5);
    let t = unique("ids");
    let (ha, mut rx_a) = collector();
    let (hb, mut rx_b) = collector();
    let a = connected(Mqtt::builder(cfg.clone()).on_topic(&format!("{t}/a"), ha)).await;
    let b = connected(Mqtt::builder(cfg).on_topic(&format!("{t}/b"), hb)).await;
    let (id_a, id_b) = (a.state().client_id, b.state().client_id);
    assert_ne!(id_a, id_b);
    let prefix = format!("worker-{}-", std::process::id());
    for id in [&id_a, &id_b] {
        let random = id.strip_prefix(&prefix).unwrap_or_else(|| panic!("{id}"));
        assert_eq!(random.len(), 8, "{id}");
        assert!(
            random
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{id}"
        );
    }

    // Both sessions are live at once: each receives what the other publishes.
    b.subscribe(&format!("{t}/b"), QoS::AtLeastOnce)
        .await
        .unwrap();
    a.subscribe(&format!("{t}/a"), QoS::AtLeastOnce)
        .await
        .unwrap();
    a.publish(format!("{t}/b"), "to b")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    b.publish(format!("{t}/a"), "to a")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut rx_b).await.payload_str(), Some("to b"));
    assert_eq!(next(&mut rx_a).await.payload_str(), Some("to a"));

    // A reconnect keeps each id: the template is not filled in again.
    let (mut sa, mut sb) = (a.watch_state(), b.watch_state());
    proxy.cut();
    for (s, id) in [(&mut sa, &id_a), (&mut sb, &id_b)] {
        let back = wait_state(s, "reconnected", |s| {
            s.status == Status::Connected && s.connects == 2
        })
        .await;
        assert_eq!(&back.client_id, id);
    }
    a.shutdown(WAIT).await;
    b.shutdown(WAIT).await;
}

#[tokio::test]
async fn random_ids_never_collide_v311() {
    random_ids_never_collide(Protocol::V311).await;
}

#[tokio::test]
async fn random_ids_never_collide_v5() {
    random_ids_never_collide(Protocol::V5).await;
}
