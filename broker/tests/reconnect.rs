//! A client that disconnects and connects again at once with the same client id (what a device
//! does after a hiccup, or a web worker that restarts) is served as Mosquitto serves it: it is
//! never refused, and it finds what its DISCONNECT left: no session when the session ended with the
//! connection, and no will. rmqtt 0.24.0 refused such a connect with 0x88 now and then and handed
//! it the old session, subscription included, while that was still being torn down (FACTS: 15 of
//! 40 tries idle). Several clients do it at once, 3.1.1 and 5, over TCP and WebSocket, with raw
//! sockets so that nothing waits between the DISCONNECT and the next CONNECT. `.ci/run` also runs
//! this file with both cores busy.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum_mqtt_broker::EmbeddedBroker;
use bytes::Bytes;
use common::*;
use rumqttc::v5::mqttbytes::v5::{
    ConnectProperties, ConnectReturnCode, Disconnect, DisconnectProperties, DisconnectReasonCode,
    Filter, LastWill, Packet, Publish, Subscribe,
};
use rumqttc::v5::mqttbytes::QoS;

/// Clients reconnecting at the same time, and reconnects each.
const CLIENTS: usize = 6;
const ROUNDS: usize = 12;

/// Runs `f(broker, client index)` for [`CLIENTS`] clients at once.
async fn each_client<F, Fut>(b: &Arc<EmbeddedBroker>, f: F)
where
    F: Fn(Arc<EmbeddedBroker>, usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(f(b.clone(), i)))
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
}

fn bye() -> Packet {
    Packet::Disconnect(Disconnect::new(DisconnectReasonCode::NormalDisconnection))
}

fn subscribe(topic: &str) -> Packet {
    let mut s = Subscribe::new(Filter::new(topic, QoS::AtLeastOnce), None);
    s.pkid = 1;
    Packet::Subscribe(s)
}

fn connect5(
    id: &str,
    clean_start: bool,
    expiry: Option<u32>,
) -> rumqttc::v5::mqttbytes::v5::Connect {
    rumqttc::v5::mqttbytes::v5::Connect {
        clean_start,
        properties: expiry.map(|e| ConnectProperties {
            session_expiry_interval: Some(e),
            ..ConnectProperties::new()
        }),
        ..Raw5::clean(id)
    }
}

async fn suback5(c: &mut Raw5) {
    match c.next().await {
        Some(Packet::SubAck(_)) => {}
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reconnects_at_once_is_never_refused() {
    let b = Arc::new(broker());
    for via in [Via::Tcp, Via::Ws] {
        each_client(&b, move |b, _| async move {
            let id = unique("again5");
            for round in 0..ROUNDS {
                let wire = Wire::open(&b, via).await;
                let (mut c, ack) = Raw5::connect_on(wire, Raw5::clean(&id), None).await;
                assert_eq!(
                    ack.code,
                    ConnectReturnCode::Success,
                    "{via:?} MQTT 5 round {round}"
                );
                c.send(bye()).await;
            }
        })
        .await;
        each_client(&b, move |b, _| async move {
            let id = unique("again4");
            for round in 0..ROUNDS {
                let wire = Wire::open(&b, via).await;
                let (mut c, ack) = Raw4::connect_on(wire, &id, true, None).await;
                assert_eq!(
                    ack.code,
                    rumqttc::ConnectReturnCode::Success,
                    "{via:?} 3.1.1 round {round}"
                );
                c.send(rumqttc::Packet::Disconnect).await;
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_its_disconnect_ended_is_not_resumed_by_a_reconnect_at_once() {
    let b = Arc::new(broker());
    for via in [Via::Tcp, Via::Ws] {
        each_client(&b, move |b, _| {
            async move {
                let id = unique("ended5");
                // Round 0 starts clean; every later connect asks to resume (clean start 0) and
                // must find nothing: the session before it ended with its connection, by a
                // Session Expiry Interval of 0 in the CONNECT (odd rounds) or in the DISCONNECT.
                for round in 0..ROUNDS {
                    let expiry_in_connect = round % 2 == 0;
                    let connect = connect5(&id, round == 0, expiry_in_connect.then_some(300));
                    let (mut c, ack) =
                        Raw5::connect_on(Wire::open(&b, via).await, connect, None).await;
                    assert_eq!(ack.code, ConnectReturnCode::Success);
                    assert!(
                        !ack.session_present,
                        "{via:?} MQTT 5 round {round}: the ended session was resumed"
                    );
                    c.send(subscribe(&format!("ended/{id}"))).await;
                    suback5(&mut c).await;
                    let mut d = Disconnect::new(DisconnectReasonCode::NormalDisconnection);
                    if expiry_in_connect {
                        d.properties = Some(DisconnectProperties {
                            session_expiry_interval: Some(0),
                            reason_string: None,
                            user_properties: vec![],
                            server_reference: None,
                        });
                    }
                    c.send(Packet::Disconnect(d)).await;
                }
                // And a session that outlives its connection is resumed, also at once.
                let (mut c, _) = Raw5::connect_on(
                    Wire::open(&b, via).await,
                    connect5(&id, true, Some(300)),
                    None,
                )
                .await;
                c.send(subscribe(&format!("ended/{id}"))).await;
                suback5(&mut c).await;
                c.send(bye()).await;
                let (mut c, ack) = Raw5::connect_on(
                    Wire::open(&b, via).await,
                    connect5(&id, false, Some(0)),
                    None,
                )
                .await;
                assert!(
                    ack.session_present,
                    "{via:?}: a session with expiry 300 was not resumed"
                );
                c.send(bye()).await;
            }
        })
        .await;
        each_client(&b, move |b, _| {
            async move {
                let id = unique("ended4");
                for round in 0..ROUNDS {
                    // A clean 3.1.1 session ends with its connection: the persistent connect
                    // right after it must not find it.
                    let (mut c, _) =
                        Raw4::connect_on(Wire::open(&b, via).await, &id, true, None).await;
                    let mut s =
                        rumqttc::Subscribe::new(format!("ended/{id}"), rumqttc::QoS::AtLeastOnce);
                    s.pkid = 1;
                    c.send(rumqttc::Packet::Subscribe(s)).await;
                    assert!(matches!(c.next().await, Some(rumqttc::Packet::SubAck(_))));
                    c.send(rumqttc::Packet::Disconnect).await;
                    let (mut c, ack) =
                        Raw4::connect_on(Wire::open(&b, via).await, &id, false, None).await;
                    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
                    assert!(
                        !ack.session_present,
                        "{via:?} 3.1.1 round {round}: the clean session was resumed"
                    );
                    c.send(rumqttc::Packet::Disconnect).await;
                }
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_will_suppressed_by_disconnect_stays_suppressed_when_the_client_reconnects_at_once() {
    let b = Arc::new(broker());
    let tag = unique("will");
    let (mut watcher, _) =
        Raw5::connect(b.tcp_addr(), Raw5::clean(&format!("{tag}-watcher"))).await;
    watcher.send(subscribe(&format!("{tag}/#"))).await;
    suback5(&mut watcher).await;
    for via in [Via::Tcp, Via::Ws] {
        let tag = tag.clone();
        each_client(&b, move |b, i| {
            let tag = tag.clone();
            async move {
                let id = unique("will5");
                for _ in 0..ROUNDS {
                    let will = LastWill::new(
                        format!("{tag}/{via:?}/{i}"),
                        "gone",
                        QoS::AtLeastOnce,
                        false,
                        None,
                    );
                    let (mut c, _) =
                        Raw5::connect_on(Wire::open(&b, via).await, Raw5::clean(&id), Some(will))
                            .await;
                    c.send(bye()).await;
                }
            }
        })
        .await;
    }
    // Every session the rounds made is gone (a will is published before that), then a marker
    // follows: nothing may come before it.
    let deadline = tokio::time::Instant::now() + WAIT;
    while b.stats().sessions > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sessions left: {}",
            b.stats().sessions
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (mut p, _) = Raw5::connect(b.tcp_addr(), Raw5::clean(&format!("{tag}-marker"))).await;
    let mut marker = Publish::new(
        format!("{tag}/end"),
        QoS::AtLeastOnce,
        Bytes::from_static(b"end"),
        None,
    );
    marker.pkid = 1;
    p.send(Packet::Publish(marker)).await;
    loop {
        match watcher.next().await {
            Some(Packet::Publish(m)) if m.topic == format!("{tag}/end").as_bytes() => break,
            Some(Packet::Publish(m)) => panic!("a will was published: {:?}", m.topic),
            Some(_) => {}
            None => panic!("the watcher was disconnected"),
        }
    }
}
