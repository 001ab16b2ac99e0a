//! Failover between brokers (`MQTT_BROKER_URL=mqtt://a,mqtt://b`), against real embedded rmqtt
//! brokers: a dead first broker is skipped, and a client whose broker dies moves to the next one,
//! restores its routes there, delivers the QoS 1 publishes made during the outage, and says in
//! `state().broker` where it is.

mod common;

use axum_mqtt::{Connack, Mqtt, MqttConfig, Protocol, QoS, Status, Subscribed};
use axum_mqtt_testkit::{closed_port, embedded, unique};
use common::*;

/// A config from a comma-separated `MQTT_BROKER_URL`, with fast reconnects.
fn list_config(urls: &[String], protocol: Protocol) -> MqttConfig {
    let mut cfg = MqttConfig::from_pairs("MQTT", [("MQTT_BROKER_URL", urls.join(","))])
        .expect("a valid broker list");
    cfg.protocol = protocol;
    cfg.reconnect_min = std::time::Duration::from_millis(20);
    cfg.reconnect_max = std::time::Duration::from_millis(500);
    cfg.keepalive = std::time::Duration::from_secs(5);
    cfg
}

/// Waits for a SUBACK that grants every one of `filters`.
async fn subscribed(subs: &mut tokio::sync::mpsc::UnboundedReceiver<Subscribed>, filters: &[&str]) {
    loop {
        let s = next(subs).await;
        if filters
            .iter()
            .all(|f| s.results.iter().any(|(g, r)| g == f && r.is_ok()))
        {
            return;
        }
    }
}

/// The client starts on the first broker of the list, which is dead, and ends up on the live
/// second one: connected, `state().broker` naming it, its route subscribed there.
async fn skips_dead_first(protocol: Protocol, dead: String, live: String, live_broker: String) {
    let t = unique("dead-first");
    let (h, mut rx) = collector();
    let (conn_cb, mut connacks) = event_collector::<Connack>();
    let cfg = list_config(&[dead, live], protocol);
    let client = connected(
        Mqtt::builder(cfg)
            .on_topic(&format!("{t}/+"), h)
            .on_connect(conn_cb),
    )
    .await;
    let state = client.state();
    assert_eq!(state.broker, live_broker, "{state:?}");
    assert_eq!(state.connects, 1, "{state:?}");
    let ack = next(&mut connacks).await;
    assert_eq!((ack.code, ack.reconnect), (0, false), "{ack:?}");
    client
        .publish(format!("{t}/x"), "hi")
        .qos(QoS::AtLeastOnce)
        .timeout(WAIT)
        .await
        .expect("publish on the second broker");
    assert_eq!(next(&mut rx).await.topic(), format!("{t}/x"));
    client.shutdown(WAIT).await;
}

/// A live URL of the shared embedded broker and the `host:port` the state names for it.
fn live_tcp() -> (String, String) {
    let port = embedded().tcp_addr().port();
    (
        format!("mqtt://127.0.0.1:{port}"),
        format!("127.0.0.1:{port}"),
    )
}

async fn hangup_first(protocol: Protocol) {
    init_tracing();
    let mut dead = Hangup::start().await;
    let (live, name) = live_tcp();
    let url = format!("mqtt://127.0.0.1:{}", dead.port);
    skips_dead_first(protocol, url, live, name).await;
    // The first broker was tried (and hung up) before the client settled on the second.
    dead.wait_accepted(1).await;
}

#[tokio::test]
async fn hangup_first_v311() {
    hangup_first(Protocol::V311).await;
}

#[tokio::test]
async fn hangup_first_v5() {
    hangup_first(Protocol::V5).await;
}

/// The first port refuses connections (nothing listens there).
#[tokio::test]
async fn refused_first_v311() {
    init_tracing();
    let dead = closed_port();
    let (live, name) = live_tcp();
    let url = format!("mqtt://127.0.0.1:{}", dead.port);
    skips_dead_first(Protocol::V311, url, live, name).await;
}

/// The same over WebSocket: every entry is a `ws://` URL with the path.
#[tokio::test]
async fn hangup_first_websocket() {
    init_tracing();
    let mut dead = Hangup::start().await;
    let ws = embedded().ws_addr().expect("ws listener");
    let live = format!("ws://127.0.0.1:{}/mqtt", ws.port());
    let name = format!("127.0.0.1:{}", ws.port());
    let url = format!("ws://127.0.0.1:{}/mqtt", dead.port);
    skips_dead_first(Protocol::V311, url, live, name).await;
    dead.wait_accepted(1).await;
}

/// Two independent brokers A and B (like two nodes of a cluster whose sessions are node-local).
/// A dies while the client is on it; B hangs up at first, so the outage lasts until the test lets
/// B answer. The client moves to B, subscribes its route again there (B has no session), delivers
/// the QoS 1 publish made during the outage, and receives what another client publishes on B.
async fn moves_to_the_next_broker(protocol: Protocol) {
    init_tracing();
    let a = axum_mqtt_testkit::broker().expect("broker A");
    let b = axum_mqtt_testkit::broker().expect("broker B");
    let b_proxy = Proxy::start(b.tcp_addr().port()).await;
    let a_name = format!("127.0.0.1:{}", a.tcp_addr().port());
    let b_name = format!("127.0.0.1:{}", b_proxy.port);
    let t = unique("failover");
    let route = format!("{t}/r/+");
    let (h, mut rx) = collector();
    let (sub_cb, mut subacks) = event_collector::<Subscribed>();
    let (conn_cb, mut connacks) = event_collector::<Connack>();
    let cfg = list_config(
        &[format!("mqtt://{a_name}"), format!("mqtt://{b_name}")],
        protocol,
    );
    let client = connected(
        Mqtt::builder(cfg)
            .on_topic(&route, h)
            .on_subscribe(sub_cb)
            .on_connect(conn_cb),
    )
    .await;
    assert_eq!(client.state().broker, a_name);
    let first = next(&mut connacks).await;
    assert_eq!((first.code, first.reconnect), (0, false), "{first:?}");
    subscribed(&mut subacks, &[&route]).await;

    b_proxy.refuse(true);
    let mut state = client.watch_state();
    tokio::task::spawn_blocking(move || a.stop())
        .await
        .expect("stop broker A");
    let lost = wait_state(&mut state, "the loss of A", |s| {
        s.status == Status::Reconnecting
    })
    .await;
    assert_eq!(lost.connects, 1, "{lost:?}");

    let publisher = client.clone();
    let topic = format!("{t}/r/down");
    let pending = tokio::spawn(async move {
        publisher
            .publish(topic, "during")
            .qos(QoS::AtLeastOnce)
            .timeout(WAIT)
            .await
    });
    // One attempt on each: A (gone), then B (hanging up).
    let tried = wait_state(&mut state, "an attempt on B", |s| s.attempts >= 2).await;
    assert_eq!(tried.status, Status::Reconnecting, "{tried:?}");
    assert!(
        !pending.is_finished(),
        "no broker could have acknowledged it"
    );

    b_proxy.refuse(false);
    let up = wait_state(&mut state, "connected to B", |s| {
        s.status == Status::Connected && s.connects == 2
    })
    .await;
    assert_eq!(up.broker, b_name, "{up:?}");
    assert_eq!((up.last_error.as_deref(), up.attempts), (None, 0), "{up:?}");
    let again = next(&mut connacks).await;
    assert_eq!(
        (again.code, again.reconnect, again.session_present),
        (0, true, false),
        "B has no session of this client: {again:?}"
    );
    subscribed(&mut subacks, &[&route]).await;

    let ack = pending
        .await
        .expect("publish task")
        .expect("the publish made during the outage is acknowledged by B");
    assert_eq!(ack.qos, QoS::AtLeastOnce);
    assert_ne!(ack.mid, 0);
    // Re-sent after the restored subscription, so the route sees it through B.
    let msg = next(&mut rx).await;
    assert_eq!(
        (msg.topic(), msg.payload_str()),
        (format!("{t}/r/down").as_str(), Some("during"))
    );

    let mut other_cfg = MqttConfig::new("127.0.0.1", b.tcp_addr().port());
    other_cfg.protocol = protocol;
    let other = connected(Mqtt::builder(other_cfg)).await;
    other
        .publish(format!("{t}/r/x"), "on B")
        .qos(QoS::AtLeastOnce)
        .await
        .expect("publish on B");
    let msg = next(&mut rx).await;
    assert_eq!(
        (msg.topic(), msg.payload_str()),
        (format!("{t}/r/x").as_str(), Some("on B"))
    );
    assert_eq!(client.state().broker, b_name);
    other.shutdown(WAIT).await;
    client.shutdown(WAIT).await;
}

#[tokio::test]
async fn moves_to_the_next_broker_v311() {
    moves_to_the_next_broker(Protocol::V311).await;
}

#[tokio::test]
async fn moves_to_the_next_broker_v5() {
    moves_to_the_next_broker(Protocol::V5).await;
}
