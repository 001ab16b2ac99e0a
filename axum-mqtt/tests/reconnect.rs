//! Reconnects against a Mosquitto child that is stopped (SIGTERM), killed (SIGKILL) and restarted on
//! the same port: the client comes back by itself, restores its subscriptions on the new session,
//! delivers QoS 1 publishes made while the broker was down, and resumes persistent sessions.

mod common;

use std::time::Duration;

use axum_mqtt::{Connack, Mqtt, Protocol, QoS, Status, Subscribed};
use axum_mqtt_testkit::{unique, Mosquitto, MosquittoOptions};
use common::*;

/// Waits for the SUBACK that restores the given filters after a reconnect.
async fn restored(subs: &mut tokio::sync::mpsc::UnboundedReceiver<Subscribed>, filters: &[&str]) {
    loop {
        let s = next(subs).await;
        let all = filters
            .iter()
            .all(|f| s.results.iter().any(|(g, r)| g == f && r.is_ok()));
        if all {
            assert_eq!(
                s.results.len(),
                filters.len(),
                "one SUBSCRIBE restores exactly what was held: {s:?}"
            );
            return;
        }
    }
}

/// The broker goes away (SIGTERM or SIGKILL) and comes back on the same port, without the session.
async fn broker_restart(protocol: Protocol, graceful: bool) {
    init_tracing();
    let Some(mut m) = Mosquitto::start(MosquittoOptions::default()) else {
        return;
    };
    let t = unique("restart");
    let route = format!("{t}/r/+");
    let explicit = format!("{t}/e/#");
    let (route_h, mut route_rx) = collector();
    let (all_h, mut all_rx) = collector();
    let (sub_cb, mut subacks) = event_collector::<Subscribed>();
    let (conn_cb, mut connacks) = event_collector::<Connack>();
    let cfg = mosquitto_config(m.port, protocol);
    let client = connected(
        Mqtt::builder(cfg.clone())
            .on_topic(&route, route_h)
            .on_message(all_h)
            .on_subscribe(sub_cb)
            .on_connect(conn_cb),
    )
    .await;
    let first = next(&mut connacks).await;
    assert_eq!((first.code, first.reconnect), (0, false), "{first:?}");
    restored(&mut subacks, &[&route]).await;
    client.subscribe(&explicit, QoS::AtLeastOnce).await.unwrap();
    let _ = next(&mut subacks).await;

    let mut state = client.watch_state();
    m.stop(graceful);
    let down = wait_state(&mut state, "Reconnecting", |s| {
        s.status == Status::Reconnecting && s.last_error.is_some()
    })
    .await;
    assert_eq!(down.connects, 1, "{down:?}");

    // QoS 1 publishes made while the broker is down wait for it, in order.
    let pending: Vec<_> = (0..5)
        .map(|i| {
            let c = client.clone();
            let topic = format!("{t}/e/down");
            tokio::spawn(async move {
                c.publish(topic, format!("d{i}"))
                    .qos(QoS::AtLeastOnce)
                    .timeout(WAIT)
                    .await
            })
        })
        .collect();
    // Failed attempts are counted and keep being made while the broker is away.
    let retrying = wait_state(&mut state, "a second failed attempt", |s| s.attempts >= 2).await;
    assert_eq!(retrying.status, Status::Reconnecting, "{retrying:?}");
    assert!(
        pending.iter().all(|p| !p.is_finished()),
        "a QoS 1 publish cannot be acknowledged while the broker is down"
    );

    m.restart();
    let up = wait_state(&mut state, "reconnected", |s| {
        s.status == Status::Connected && s.connects == 2
    })
    .await;
    assert_eq!((up.last_error.as_deref(), up.attempts), (None, 0), "{up:?}");
    let again = next(&mut connacks).await;
    assert_eq!(
        (again.code, again.reconnect, again.session_present),
        (0, true, false),
        "the restarted broker has no session: {again:?}"
    );

    for p in pending {
        let ack = p.await.unwrap().expect("publish made while down");
        assert_eq!(ack.qos, QoS::AtLeastOnce);
        assert_ne!(ack.mid, 0);
    }
    // Restored by the client (the broker lost the session), before the publishes were re-sent:
    // the client receives its own offline publishes through the restored subscription.
    let mut filters = [route.as_str(), explicit.as_str()];
    filters.sort();
    restored(&mut subacks, &filters).await;
    for i in 0..5 {
        let msg = next(&mut all_rx).await;
        assert_eq!(msg.topic(), format!("{t}/e/down"));
        assert_eq!(msg.payload_str(), Some(format!("d{i}").as_str()));
    }

    // Another client's messages reach both the route and the explicit subscription.
    let other = connected(Mqtt::builder(cfg)).await;
    for topic in [format!("{t}/r/x"), format!("{t}/e/y")] {
        other
            .publish(topic.clone(), "after")
            .qos(QoS::AtLeastOnce)
            .await
            .unwrap();
        assert_eq!(next(&mut all_rx).await.topic(), topic);
    }
    let routed = next(&mut route_rx).await;
    assert_eq!(routed.topic(), format!("{t}/r/x"));
    nothing(&mut route_rx, Duration::from_millis(100)).await;
    other.shutdown(WAIT).await;
    client.shutdown(WAIT).await;
}

#[tokio::test]
async fn sigterm_v311() {
    broker_restart(Protocol::V311, true).await;
}

#[tokio::test]
async fn sigterm_v5() {
    broker_restart(Protocol::V5, true).await;
}

#[tokio::test]
async fn sigkill_v311() {
    broker_restart(Protocol::V311, false).await;
}

#[tokio::test]
async fn sigkill_v5() {
    broker_restart(Protocol::V5, false).await;
}

/// A persistent session (clean_session=false, fixed client id) survives the client's absence and a
/// broker restart: messages published meanwhile are delivered when the client is back.
async fn persistent_session(protocol: Protocol) {
    init_tracing();
    let Some(mut m) = Mosquitto::start(MosquittoOptions {
        persistence: true,
        ..Default::default()
    }) else {
        return;
    };
    let proxy = Proxy::start(m.port).await;
    let t = unique("persist");
    let (h, mut rx) = collector();
    let (conn_cb, mut connacks) = event_collector::<Connack>();
    let mut cfg = mosquitto_config(proxy.port, protocol);
    cfg.client_id = unique_id("persist");
    cfg.clean_session = false;
    let client = connected(
        Mqtt::builder(cfg)
            .on_topic(&format!("{t}/+"), h)
            .on_connect(conn_cb),
    )
    .await;
    assert!(!next(&mut connacks).await.session_present);
    // The route is subscribed (QoS 1) once the broker confirms; `subscribe` on the same filter waits for that.
    client
        .subscribe(&format!("{t}/+"), QoS::AtLeastOnce)
        .await
        .unwrap();

    let mut state = client.watch_state();
    proxy.refuse(true);
    proxy.cut();
    wait_state(&mut state, "Reconnecting", |s| {
        s.status == Status::Reconnecting
    })
    .await;

    let publisher = connected(Mqtt::builder(mosquitto_config(m.port, protocol))).await;
    for i in 0..3 {
        publisher
            .publish(format!("{t}/q"), format!("m{i}"))
            .qos(QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    publisher.shutdown(WAIT).await;
    // The queued messages must survive a broker restart too (persistence file).
    m.stop(true);
    m.restart();
    nothing(&mut rx, Duration::from_millis(200)).await;

    proxy.refuse(false);
    let back = wait_state(&mut state, "reconnected", |s| {
        s.status == Status::Connected && s.connects == 2
    })
    .await;
    assert_eq!(back.last_error, None);
    let again = next(&mut connacks).await;
    assert!(
        again.session_present && again.reconnect,
        "the broker kept the session: {again:?}"
    );
    for i in 0..3 {
        let msg = next(&mut rx).await;
        assert_eq!(msg.topic(), format!("{t}/q"));
        assert_eq!(msg.payload_str(), Some(format!("m{i}").as_str()));
        assert_eq!(msg.qos(), QoS::AtLeastOnce);
    }
    nothing(&mut rx, Duration::from_millis(200)).await;
    client.shutdown(WAIT).await;
}

#[tokio::test]
async fn persistent_session_v311() {
    persistent_session(Protocol::V311).await;
}

#[tokio::test]
async fn persistent_session_v5() {
    persistent_session(Protocol::V5).await;
}

/// The connection drops while most of a burst of QoS 1 publishes is held back for one write (a
/// small in-flight window keeps them waiting): every publish still completes, and the subscriber
/// gets each message in order per topic (first copies; a publish in flight at the cut may come
/// twice).
#[tokio::test]
async fn a_cut_while_publishes_are_held_back_loses_none_and_keeps_their_order() {
    init_tracing();
    let Some(m) = Mosquitto::start(MosquittoOptions {
        extra: "max_queued_messages 100000\n".into(),
        ..Default::default()
    }) else {
        return;
    };
    let t = unique("held");
    let (topics, per_topic) = (4u32, 100u32);
    let (h, mut rx) = collector();
    let filter = format!("{t}/+");
    let sub =
        connected(Mqtt::builder(mosquitto_config(m.port, Protocol::V311)).on_topic(&filter, h))
            .await;
    // At QoS 1, and confirmed by the broker before the burst starts.
    sub.subscribe(&filter, QoS::AtLeastOnce).await.unwrap();

    let proxy = Proxy::start(m.port).await;
    let mut cfg = mosquitto_config(proxy.port, Protocol::V311);
    cfg.max_inflight = 5;
    let publisher = connected(Mqtt::builder(cfg)).await;
    let mut state = publisher.watch_state();
    let burst = {
        let p = publisher.clone();
        let t = t.clone();
        tokio::spawn(async move {
            let sends = (0..topics * per_topic).map(|i| {
                p.publish(format!("{t}/{}", i % topics), (i / topics).to_string())
                    .qos(QoS::AtLeastOnce)
                    .send()
            });
            futures_util::future::join_all(sends).await
        })
    };
    wait_stats(&publisher, |s| s.published >= 40).await;
    proxy.cut();
    wait_state(&mut state, "reconnected after the cut", |s| {
        s.status == Status::Connected && s.connects == 2
    })
    .await;
    let results = tokio::time::timeout(WAIT * 3, burst)
        .await
        .expect("the burst never completed")
        .expect("burst task");
    let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(failed.is_empty(), "publishes failed: {failed:?}");

    let mut firsts: std::collections::HashMap<String, Vec<u32>> = Default::default();
    let mut seen = std::collections::HashSet::new();
    while seen.len() < (topics * per_topic) as usize {
        let msg = next(&mut rx).await;
        let n: u32 = msg.payload_str().unwrap().parse().unwrap();
        if seen.insert((msg.topic().to_string(), n)) {
            firsts.entry(msg.topic().to_string()).or_default().push(n);
        }
    }
    let expected: Vec<u32> = (0..per_topic).collect();
    for (topic, got) in &firsts {
        assert_eq!(got, &expected, "out of order on {topic}");
    }
}
