//! No client can take the broker down: malformed packets, floods, garbage mid-stream, oversized
//! packets, deep and odd topics. Every test ends by checking that a normal 3.1.1 and 5 client
//! still exchange messages, and the property test feeds arbitrary bytes to the listener.

mod common;

use std::time::Duration;

use common::*;
use proptest::prelude::*;
use tokio::io::AsyncWriteExt;

const SHORT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn random_bytes_on_many_connections() {
    let b = broker();
    let addr = b.tcp_addr();
    let mut tasks = Vec::new();
    for i in 0..300u32 {
        tasks.push(tokio::spawn(async move {
            let len = 1 + (i as usize * 37) % 2048;
            let bytes: Vec<u8> = (0..len).map(|_| fastrand::u8(..)).collect();
            raw(addr, &bytes, SHORT).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_serving(&b).await;
}

#[tokio::test]
async fn every_packet_type_with_random_bodies_before_and_after_connect() {
    let b = broker();
    for level in [4u8, 5] {
        for kind in 0u8..16 {
            for flags in [0u8, 2, 0x0f] {
                let body: Vec<u8> = (0..fastrand::usize(0..64))
                    .map(|_| fastrand::u8(..))
                    .collect();
                let pkt = packet((kind << 4) | flags, &body);
                // Before CONNECT.
                raw(b.tcp_addr(), &pkt, SHORT).await;
                // After a valid CONNECT.
                let mut bytes = connect(level, &unique("rand"), 30);
                bytes.extend_from_slice(&pkt);
                raw(b.tcp_addr(), &bytes, SHORT).await;
            }
        }
    }
    assert_serving(&b).await;
}

#[tokio::test]
async fn huge_remaining_length_and_oversized_packets_are_refused() {
    let b = broker();
    // A CONNECT announcing 256 MiB: the broker must not wait for, or allocate, all of it.
    let mut announce = vec![0x10];
    announce.extend(remaining_length(256 << 20));
    announce.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 30]);
    let answer = raw(b.tcp_addr(), &announce, Duration::from_secs(2)).await;
    assert!(answer.is_empty() || answer[0] == 0x20, "{answer:?}");
    // A remaining length with a fifth continuation byte is malformed.
    raw(b.tcp_addr(), &[0x10, 0xff, 0xff, 0xff, 0xff, 0x7f], SHORT).await;
    // A PUBLISH larger than the packet limit after a valid CONNECT: that connection is closed.
    let limit = axum_mqtt_broker::Limits::default().max_packet_size as usize;
    for level in [4u8, 5] {
        let mut s = tokio::net::TcpStream::connect(b.tcp_addr()).await.unwrap();
        s.write_all(&connect(level, &unique("big"), 30))
            .await
            .unwrap();
        let big = publish0(b"big/topic", &vec![b'x'; limit + 1024], level == 5);
        let _ = s.write_all(&big).await; // the broker may close before reading it all
        let mut buf = vec![0u8; 64];
        let closed = tokio::time::timeout(WAIT, async {
            use tokio::io::AsyncReadExt;
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue, // CONNACK, maybe a DISCONNECT with a reason
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "oversized publish did not close the connection (v{level})"
        );
    }
    assert_serving(&b).await;
}

#[tokio::test]
async fn a_connect_flood_does_not_lock_out_normal_clients() {
    let b = broker();
    // 1000 connections that never send a CONNECT, held open while a normal client connects.
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(tokio::net::TcpStream::connect(b.tcp_addr()).await.unwrap());
    }
    // 500 valid CONNECTs sent as fast as possible.
    let mut flood = Vec::new();
    for i in 0..500 {
        let addr = b.tcp_addr();
        flood.push(tokio::spawn(async move {
            raw(
                addr,
                &connect(4 + (i % 2) as u8, &unique("flood"), 30),
                SHORT,
            )
            .await
        }));
    }
    assert_serving(&b).await;
    for f in flood {
        let answer = f.await.unwrap();
        assert_eq!(
            answer.first(),
            Some(&0x20),
            "a flood CONNECT got no CONNACK"
        );
    }
    drop(idle);
    assert_serving(&b).await;
}

#[tokio::test]
async fn garbage_after_a_valid_session_closes_only_that_connection() {
    let b = broker();
    let t = unique("garbage");
    let mut watcher = v4(v4_options(&b, Via::Tcp, &unique("watch"))).await;
    watcher
        .subscribe(&format!("{t}/#"), rumqttc::QoS::AtLeastOnce)
        .await;
    for level in [4u8, 5] {
        let mut bytes = connect(level, &unique("g"), 30);
        bytes.extend(publish0(
            format!("{t}/ok").as_bytes(),
            b"before",
            level == 5,
        ));
        bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x13, 0x37]);
        raw(b.tcp_addr(), &bytes, SHORT).await;
        // What came before the garbage was delivered.
        let m = watcher.publish().await;
        assert_eq!(&m.payload[..], b"before");
    }
    assert_serving(&b).await;
}

#[tokio::test]
async fn deep_odd_and_dollar_topics() {
    use rumqttc::v5::mqttbytes::v5::{Filter, Packet, SubscribeReasonCode};
    let b = broker();
    let t = unique("odd");
    let mut sub = v4(v4_options(&b, Via::Tcp, &unique("odd-sub"))).await;
    sub.subscribe("#", rumqttc::QoS::AtMostOnce).await;
    sub.subscribe(&format!("{t}/+"), rumqttc::QoS::AtLeastOnce)
        .await;
    let (mut p, _) = v5(v5_options(&b, Via::Tcp, &unique("odd-pub"))).await;
    let q1 = rumqttc::v5::mqttbytes::QoS::AtLeastOnce;

    // A 10,000-level topic (it overflowed rmqtt's stack and aborted the process): refused with a
    // reason, and so is a 10,000-level subscription; 128 levels, the limit, still route.
    let deep = format!("{t}/{}", vec!["l"; 10_000].join("/"));
    p.client
        .publish(deep.clone(), q1, false, "deep")
        .await
        .unwrap();
    let ack = first(&mut p.rx, "PUBACK", |x| match x {
        Packet::PubAck(a) => Some(a),
        _ => None,
    })
    .await;
    assert_ne!(
        ack.reason,
        rumqttc::v5::mqttbytes::v5::PubAckReason::Success,
        "{ack:?}"
    );
    p.client
        .subscribe_many([Filter::new(deep.clone(), q1)])
        .await
        .unwrap();
    let suback = first(&mut p.rx, "SUBACK", |x| match x {
        Packet::SubAck(a) => Some(a),
        _ => None,
    })
    .await;
    assert!(
        !matches!(suback.return_codes[..], [SubscribeReasonCode::Success(_)]),
        "{suback:?}"
    );
    let at_limit = format!("{t}/{}", vec!["l"; 126].join("/"));
    p.client
        .publish(at_limit, q1, false, "at the limit")
        .await
        .unwrap();
    // 3.1.1 cannot be told: its deep publish is dropped, and the connection stays.
    let mut bytes = connect(4, &unique("deep4"), 30);
    bytes.extend(publish0(deep.as_bytes(), b"deep", false));
    raw(b.tcp_addr(), &bytes, SHORT).await;

    // Non-ASCII first characters and `$` topics.
    p.client.publish("Á/x", q1, false, "accent").await.unwrap();
    p.client.publish("€uro/ü", q1, false, "euro").await.unwrap();
    p.client
        .publish("$SYS/fake", q1, false, "dollar")
        .await
        .unwrap();
    p.client
        .publish(format!("{t}/end"), q1, false, "end")
        .await
        .unwrap();
    // `#` sees the non-ASCII ones but not `$SYS/fake` (MQTT-4.7.2-1).
    let mut got = Vec::new();
    while !["at the limit", "accent", "euro", "end"]
        .iter()
        .all(|w| got.iter().any(|g| g == w))
    {
        let m = sub.publish().await;
        got.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    assert!(!got.contains(&"dollar".to_string()), "{got:?}");
    assert!(!got.contains(&"deep".to_string()), "{got:?}");
    // Raw: invalid UTF-8 and a NUL in a topic (malformed per MQTT-1.5.4-1/2) close that connection.
    for topic in [&b"\xff\xfe/bad"[..], &b"a\0b"[..]] {
        let mut bytes = connect(4, &unique("badutf"), 30);
        bytes.extend(publish0(topic, b"x", false));
        raw(b.tcp_addr(), &bytes, SHORT).await;
    }
    assert_serving(&b).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Arbitrary bytes, alone or after a valid CONNECT of either version, never stop the broker.
    #[test]
    fn arbitrary_bytes_never_stop_the_broker(
        bytes in proptest::collection::vec(any::<u8>(), 0..1024),
        after_connect in proptest::option::of(4u8..=5),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let b = shared();
            let mut input = after_connect
                .map(|level| connect(level, &unique("prop"), 30))
                .unwrap_or_default();
            input.extend_from_slice(&bytes);
            raw(b.tcp_addr(), &input, Duration::from_millis(100)).await;
            assert_serving(b).await;
        });
    }
}

/// One broker for all property cases (started on first use, never stopped).
fn shared() -> &'static axum_mqtt_broker::EmbeddedBroker {
    static B: std::sync::OnceLock<axum_mqtt_broker::EmbeddedBroker> = std::sync::OnceLock::new();
    B.get_or_init(broker)
}
