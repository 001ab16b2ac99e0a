//! Starting and stopping: port 0 reported, both protocol versions on one port, stop closes the
//! listeners and ends connections, many brokers in one process, a taken port is a clear error.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum_mqtt_broker::{BrokerConfig, BrokerError, EmbeddedBroker, Limits};
use common::*;

#[tokio::test]
async fn port_zero_is_reported_and_one_port_serves_both_versions() {
    let b = broker();
    assert_ne!(b.tcp_addr().port(), 0);
    assert_ne!(b.ws_addr().unwrap().port(), 0);
    assert_ne!(b.tcp_addr(), b.ws_addr().unwrap());
    // A 3.1.1 and a 5 client on the same TCP port, and both over WebSocket.
    assert_serving(&b).await;
    let _ = v4(v4_options(&b, Via::Ws, &unique("ws4"))).await;
    let (_c, ack) = v5(v5_options(&b, Via::Ws, &unique("ws5"))).await;
    assert_eq!(
        ack.code,
        rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success
    );
    assert!(b.stats().connections >= 2, "{:?}", b.stats());
}

#[tokio::test]
async fn stop_closes_listeners_and_ends_connections_and_the_port_can_be_reused() {
    let b = broker();
    let addr = b.tcp_addr();
    let mut conn = v4(v4_options(&b, Via::Tcp, &unique("stopped"))).await;
    tokio::task::spawn_blocking(move || b.stop()).await.unwrap();
    // The connection ends: the client's event loop stops on the closed socket.
    tokio::time::timeout(WAIT, async { while conn.rx.recv().await.is_some() {} })
        .await
        .expect("connection ended by stop");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
    // The same port can be bound again at once, by a new broker in the same process.
    let again = EmbeddedBroker::start(BrokerConfig::new(addr)).expect("rebind after stop");
    assert_eq!(again.tcp_addr(), addr);
    assert_serving(&again).await;
}

#[tokio::test]
async fn many_brokers_start_and_stop_in_one_process() {
    for _ in 0..5 {
        let brokers: Vec<_> = (0..3).map(|_| broker()).collect();
        for b in &brokers {
            assert_serving(b).await;
        }
        tokio::task::spawn_blocking(move || drop(brokers))
            .await
            .unwrap();
    }
}

#[test]
fn a_taken_port_is_a_bind_error_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    match EmbeddedBroker::start(BrokerConfig::new(addr)) {
        Err(e @ BrokerError::Bind { .. }) => {
            assert!(e.to_string().contains(&addr.to_string()), "{e}");
        }
        other => panic!("expected a bind error, got {other:?}"),
    }
    // The WebSocket listener too, named as such.
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    match EmbeddedBroker::start(BrokerConfig::new(any).with_ws(addr)) {
        Err(BrokerError::Bind { what, .. }) => assert_eq!(what, "WebSocket"),
        other => panic!("expected a bind error, got {other:?}"),
    }
}

#[test]
fn bad_limits_and_missing_tls_files_are_errors() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut limits = Limits::default();
    limits.max_inflight = 0;
    let e = EmbeddedBroker::start(BrokerConfig::new(any).with_limits(limits)).unwrap_err();
    assert!(e.to_string().contains("max_inflight"), "{e}");
    let tls =
        axum_mqtt_broker::TlsListener::new(any, "/nonexistent/cert.pem", "/nonexistent/key.pem");
    let e = EmbeddedBroker::start(BrokerConfig::new(any).with_tls(tls)).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");
}

#[tokio::test]
async fn keepalive_zero_is_accepted() {
    // MQTT allows keepalive 0 ("no keepalive"); rumqttd dropped such a CONNECT.
    let b = broker();
    for level in [4u8, 5] {
        let answer = raw(
            b.tcp_addr(),
            &connect(level, &unique("ka0"), 0),
            Duration::from_millis(500),
        )
        .await;
        assert!(
            answer.len() >= 4,
            "no CONNACK for level {level}: {answer:?}"
        );
        assert_eq!(answer[0], 0x20, "CONNACK expected: {answer:?}");
        let code = answer[3];
        assert_eq!(code, 0, "level {level} refused with {code}");
    }
}
