//! Handlers and callbacks (Flask-MQTT's `on_*`), fixed: all registered handlers run, none misses
//! the first connect, acks are reported with their ids, a panicking or slow handler harms nobody,
//! order per topic holds under concurrency, and dropping the last handle stops the client.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum_mqtt::extract::{Text, Topic};
use axum_mqtt::{
    Connack, Disconnected, Mqtt, Protocol, Published, QoS, Status, Subscribed, Unsubscribed,
};
use axum_mqtt_testkit::{unique, Mosquitto, MosquittoOptions};
use common::*;
use tokio::sync::mpsc;

/// Every `on_connect`, `on_message` and `on_topic` registered runs (Flask-MQTT keeps only the last),
/// and those registered before start see the first CONNACK.
#[tokio::test]
async fn every_registered_handler_runs() {
    init_tracing();
    let t = unique("many");
    let filter = format!("{t}/a/+");
    let (m1, mut m1_rx) = collector();
    let (m2, mut m2_rx) = collector();
    let (t1, mut t1_rx) = collector();
    let (t2, mut t2_rx) = collector();
    let (c1, mut c1_rx) = event_collector::<Connack>();
    let (c2, mut c2_rx) = event_collector::<Connack>();
    let mqtt = Mqtt::builder(embedded_config(Protocol::V311))
        .on_connect(c1)
        .on_message(m1)
        .on_topic(&filter, t1)
        .on_message(m2)
        .on_topic(&filter, t2)
        .on_connect(c2)
        .start()
        .await
        .unwrap();
    for rx in [&mut c1_rx, &mut c2_rx] {
        let ack = next(rx).await;
        assert_eq!(
            (ack.code, ack.reconnect, ack.session_present),
            (0, false, false),
            "{ack:?}"
        );
        assert!(ack.is_success());
    }
    assert_eq!(mqtt.state().connects, 1);
    // Two routes on one filter make one broker subscription (so one delivery).
    assert_eq!(
        mqtt.subscriptions(),
        vec![(filter.clone(), QoS::AtLeastOnce)]
    );
    mqtt.subscribe(&format!("{t}/b"), QoS::AtLeastOnce)
        .await
        .unwrap();

    mqtt.publish(format!("{t}/a/1"), "routed")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    mqtt.publish(format!("{t}/b"), "unrouted")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    for rx in [&mut t1_rx, &mut t2_rx] {
        assert_eq!(next(rx).await.payload_str(), Some("routed"));
    }
    for rx in [&mut m1_rx, &mut m2_rx] {
        assert_eq!(next(rx).await.payload_str(), Some("routed"));
        assert_eq!(next(rx).await.payload_str(), Some("unrouted"));
    }
    for rx in [&mut t1_rx, &mut t2_rx, &mut m1_rx, &mut m2_rx] {
        nothing(rx, Duration::from_millis(100)).await;
    }
    mqtt.shutdown(WAIT).await;
}

/// `on_publish`, `on_subscribe`, `on_unsubscribe`, `on_disconnect` and `on_connect` report what the
/// broker acknowledged, with the packet ids the operations returned.
#[tokio::test]
async fn ack_callbacks_report_ids_and_codes() {
    init_tracing();
    let Some(m) = Mosquitto::start(MosquittoOptions::default()) else {
        return;
    };
    let proxy = Proxy::start(m.port).await;
    let t = unique("acks");
    let (on_pub, mut pubs) = event_collector::<Published>();
    let (on_sub, mut subs) = event_collector::<Subscribed>();
    let (on_unsub, mut unsubs) = event_collector::<Unsubscribed>();
    let (on_conn, mut conns) = event_collector::<Connack>();
    let (on_disc, mut discs) = event_collector::<Disconnected>();
    let mqtt = connected(
        Mqtt::builder(mosquitto_config(proxy.port, Protocol::V5))
            .on_publish(on_pub)
            .on_subscribe(on_sub)
            .on_unsubscribe(on_unsub)
            .on_connect(on_conn)
            .on_disconnect(on_disc),
    )
    .await;
    assert_eq!(next(&mut conns).await.code, 0);

    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let ack = mqtt.publish(format!("{t}/p"), "x").qos(qos).await.unwrap();
        let ev = next(&mut pubs).await;
        assert_eq!(ev, ack);
        assert_eq!(ev.qos, qos);
        assert_eq!(ev.mid == 0, qos == QoS::AtMostOnce, "{ev:?}");
    }

    let filter = format!("{t}/s/#");
    let granted = mqtt.subscribe(&filter, QoS::ExactlyOnce).await.unwrap();
    assert_eq!(granted, QoS::ExactlyOnce, "Mosquitto grants what is asked");
    let ev = next(&mut subs).await;
    assert_ne!(ev.mid, 0);
    assert_eq!(ev.results, vec![(filter.clone(), Ok(QoS::ExactlyOnce))]);
    // A second SUBSCRIBE, at QoS 1: granted QoS 1, under its own packet id.
    let low = format!("{t}/low");
    assert_eq!(
        mqtt.subscribe(&low, QoS::AtLeastOnce).await.unwrap(),
        QoS::AtLeastOnce
    );
    let ev2 = next(&mut subs).await;
    assert_ne!(ev2.mid, ev.mid, "each SUBSCRIBE has its own packet id");
    assert_eq!(ev2.results, vec![(low.clone(), Ok(QoS::AtLeastOnce))]);

    mqtt.unsubscribe(&filter).await.unwrap();
    let ev = next(&mut unsubs).await;
    assert_ne!(ev.mid, 0);
    assert_eq!(ev.filters, vec![filter]);

    // A lost connection is reported with its reason, the reconnect as such.
    proxy.cut();
    let lost = next(&mut discs).await;
    assert!(lost.reason.is_some(), "{lost:?}");
    let again = next(&mut conns).await;
    assert_eq!((again.code, again.reconnect), (0, true));
    // The reconnect restored the remaining subscription in one SUBSCRIBE.
    let restored = next(&mut subs).await;
    assert_eq!(restored.results, vec![(low, Ok(QoS::AtLeastOnce))]);

    // A shutdown we asked for is reported without a reason.
    mqtt.shutdown(WAIT).await;
    assert_eq!(next(&mut discs).await.reason, None);
}

/// A handler that panics is caught and counted; the connection and later messages are unharmed.
#[tokio::test]
async fn panicking_handler_does_not_kill_the_client() {
    init_tracing();
    let t = unique("panic");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (all, mut all_rx) = collector();
    let mqtt = connected(
        Mqtt::builder(embedded_config(Protocol::V5))
            .on_topic(&format!("{t}/+"), move |Text(body): Text| {
                let tx = tx.clone();
                async move {
                    if body == "boom" {
                        panic!("handler exploded on purpose");
                    }
                    let _ = tx.send(body);
                }
            })
            .on_message(all),
    )
    .await;
    mqtt.subscribe(&format!("{t}/+"), QoS::AtLeastOnce)
        .await
        .unwrap();
    for body in ["before", "boom", "after"] {
        mqtt.publish(format!("{t}/x"), body)
            .qos(QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    assert_eq!(next(&mut rx).await, "before");
    assert_eq!(next(&mut rx).await, "after");
    // The other handler saw all three, the panic notwithstanding.
    for body in ["before", "boom", "after"] {
        assert_eq!(next(&mut all_rx).await.payload_str(), Some(body));
    }
    let stats = mqtt.stats();
    assert_eq!(stats.handler_panics, 1, "{stats:?}");
    assert_eq!(stats.received, 3, "{stats:?}");
    let state = mqtt.state();
    assert_eq!((state.status, state.connects), (Status::Connected, 1));
    mqtt.shutdown(WAIT).await;
}

/// A handler that sleeps 3 s (keepalive 1 s) holds up neither other topics nor the connection.
#[tokio::test]
async fn slow_handler_does_not_stall_others() {
    init_tracing();
    let Some(m) = Mosquitto::start(MosquittoOptions::default()) else {
        return;
    };
    // Fixed topic names (this Mosquitto is ours alone): handler lanes are picked by a hash of the
    // topic, and these names land on different lanes, so the test does not depend on chance.
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let mut cfg = mosquitto_config(m.port, Protocol::V311);
    cfg.keepalive = std::time::Duration::from_secs(1);
    cfg.handler_concurrency = 16;
    let slow_tx = tx.clone();
    let mqtt = connected(
        Mqtt::builder(cfg)
            .on_topic("slow", move |Text(body): Text| {
                let tx = slow_tx.clone();
                async move {
                    let _ = tx.send(format!("slow start {body}"));
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    let _ = tx.send(format!("slow done {body}"));
                }
            })
            .on_topic("fast/+", move |Topic(t): Topic| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(t);
                }
            }),
    )
    .await;
    let publisher = connected(Mqtt::builder(mosquitto_config(m.port, Protocol::V311))).await;
    mqtt.subscribe("fast/+", QoS::AtLeastOnce).await.unwrap();
    let mut state = mqtt.watch_state();
    state.mark_unchanged();

    publisher
        .publish("slow", "1")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, "slow start 1");
    let started = tokio::time::Instant::now();
    // While the slow handler sleeps: other topics are handled, our own publishes are acknowledged.
    for i in 0..6 {
        let topic = format!("fast/{i}");
        publisher
            .publish(topic.clone(), "x")
            .qos(QoS::AtLeastOnce)
            .await
            .unwrap();
        assert_eq!(next(&mut rx).await, topic);
        mqtt.publish("elsewhere", "ping")
            .qos(QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "fast topics waited for the slow handler ({:?})",
        started.elapsed()
    );
    // A second slow message waits for the first (order per topic), then runs.
    publisher
        .publish("slow", "2")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, "slow done 1");
    assert!(started.elapsed() >= Duration::from_millis(2900));
    assert_eq!(next(&mut rx).await, "slow start 2");
    let s = mqtt.state();
    assert_eq!((s.status, s.connects), (Status::Connected, 1), "{s:?}");
    assert!(
        !state.has_changed().unwrap(),
        "the connection never dropped"
    );
    drop(publisher);
    mqtt.shutdown(Duration::from_secs(1)).await;
}

/// 500 numbered QoS 1 messages on 5 topics, interleaved and published concurrently (`join_all`),
/// arrive in order per topic although handlers of different topics run concurrently: concurrent
/// publishes go out in the order they were started, also when they must wait for room
/// (`max_pending`).
async fn order_per_topic(max_pending: usize) {
    init_tracing();
    let Some(m) = Mosquitto::start(MosquittoOptions::default()) else {
        return;
    };
    let t = unique("order");
    let seen: Arc<Mutex<HashMap<String, Vec<u32>>>> = Arc::default();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let record = seen.clone();
    let mut cfg = mosquitto_config(m.port, Protocol::V311);
    cfg.handler_concurrency = 4;
    let sub = connected(Mqtt::builder(cfg).on_topic(
        &format!("{t}/+"),
        move |Topic(topic): Topic, Text(n): Text| {
            let record = record.clone();
            let done = done_tx.clone();
            async move {
                let n: u32 = n.parse().expect("number");
                // Vary the time handlers take, so lanes interleave.
                for _ in 0..(n % 7) {
                    tokio::task::yield_now().await;
                }
                let total = {
                    let mut s = record.lock().unwrap();
                    s.entry(topic).or_default().push(n);
                    s.values().map(Vec::len).sum::<usize>()
                };
                if total == 500 {
                    let _ = done.send(());
                }
            }
        },
    ))
    .await;
    sub.subscribe(&format!("{t}/+"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut cfg = mosquitto_config(m.port, Protocol::V311);
    cfg.max_pending = max_pending;
    let publisher = connected(Mqtt::builder(cfg)).await;
    let sends = (0..500u32).map(|i| {
        publisher
            .publish(format!("{t}/{}", i % 5), (i / 5).to_string())
            .qos(QoS::AtLeastOnce)
            .send()
    });
    for r in futures_util::future::join_all(sends).await {
        r.unwrap();
    }
    next(&mut done_rx).await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 5);
    let expected: Vec<u32> = (0..100).collect();
    for (topic, got) in seen.iter() {
        assert_eq!(got, &expected, "out of order on {topic}");
    }
}

#[tokio::test]
async fn order_per_topic_is_preserved() {
    order_per_topic(1000).await;
}

#[tokio::test]
async fn order_per_topic_is_preserved_under_backpressure() {
    order_per_topic(20).await;
}

/// Dropping the last handle stops the connection task (the state reaches Stopped) even with
/// handlers and callbacks registered.
#[tokio::test]
async fn dropping_last_handle_stops_the_task() {
    init_tracing();
    let t = unique("drop");
    let (h, _rx) = collector();
    let (c, _crx) = event_collector::<Connack>();
    let mqtt = connected(
        Mqtt::builder(embedded_config(Protocol::V311))
            .on_topic(&format!("{t}/#"), h)
            .on_connect(c),
    )
    .await;
    let mut state = mqtt.watch_state();
    let clones: Vec<Mqtt> = (0..3).map(|_| mqtt.clone()).collect();
    drop(mqtt);
    drop(clones);
    let s = wait_state(&mut state, "Stopped", |s| s.status == Status::Stopped).await;
    assert_eq!(s.connects, 1);
    // The task is gone: the state's sender was dropped with it.
    tokio::time::timeout(WAIT, async { while state.changed().await.is_ok() {} })
        .await
        .expect("the connection task still holds the state after stopping");
}
