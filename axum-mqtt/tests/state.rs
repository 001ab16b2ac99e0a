//! Connection state as users see it: refused credentials (reported, retried with backoff, never a
//! tight loop), a broker unreachable at start, and configuration mistakes caught before connecting.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use axum_mqtt::{Connack, Mqtt, MqttConfig, Protocol, QoS, StartError, Status, TlsError};
use axum_mqtt_testkit::{mosquitto_required, unique, Mosquitto, MosquittoOptions};
use common::*;

/// A Mosquitto that only accepts `user`/`secret` (password file made with `mosquitto_passwd`).
/// Returns the broker and the folder holding the password file (kept alive by the caller).
fn broker_with_password() -> Option<(Mosquitto, tempfile::TempDir)> {
    let passwd = [
        "/usr/bin/mosquitto_passwd",
        "/usr/local/bin/mosquitto_passwd",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists());
    let Some(passwd) = passwd else {
        assert!(
            !mosquitto_required(),
            "AXUM_MQTT_REQUIRE_MOSQUITTO=1 but mosquitto_passwd is not installed"
        );
        return None;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("passwd");
    let out = std::process::Command::new(passwd)
        .args(["-b", "-c"])
        .arg(&file)
        .args(["user", "secret"])
        .output()
        .expect("run mosquitto_passwd");
    assert!(out.status.success(), "mosquitto_passwd: {out:?}");
    // Mosquitto drops to the `mosquitto` user: the folder and file must be readable by it.
    use std::os::unix::fs::PermissionsExt;
    for (p, mode) in [(dir.path(), 0o755), (file.as_path(), 0o644)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let m = Mosquitto::start(MosquittoOptions {
        extra: format!("allow_anonymous false\npassword_file {}", file.display()),
        ..Default::default()
    })?;
    Some((m, dir))
}

async fn refused_credentials(protocol: Protocol) {
    init_tracing();
    let Some((m, _dir)) = broker_with_password() else {
        return;
    };
    let mut cfg = mosquitto_config(m.port, protocol);
    cfg.username = Some("user".into());
    cfg.password = Some("wrong".into());
    cfg.reconnect_min = std::time::Duration::from_millis(100);
    cfg.reconnect_max = std::time::Duration::from_millis(1000);
    let (on_connect, mut acks) = event_collector::<Connack>();
    let started = tokio::time::Instant::now();
    let mqtt = Mqtt::builder(cfg)
        .on_connect(on_connect)
        .start()
        .await
        .unwrap();

    let first = next(&mut acks).await;
    let expected: &[u8] = match protocol {
        // Bad user name or password, or not authorized (what Mosquitto 2.0 answers to a wrong password).
        Protocol::V311 => &[4, 5],
        Protocol::V5 => &[0x86, 0x87],
    };
    assert!(
        expected.contains(&first.code),
        "refusal code {:#x} on {protocol:?}",
        first.code
    );
    assert!(!first.is_success() && !first.reconnect, "{first:?}");
    let mut state = mqtt.watch_state();
    let s = wait_state(&mut state, "Reconnecting", |s| {
        s.status == Status::Reconnecting
    })
    .await;
    let err = s.last_error.clone().unwrap_or_default();
    assert!(
        err.contains("refused") && err.contains(&format!("code {}", first.code)),
        "last_error should name the refusal: {s:?}"
    );
    assert_eq!(s.connects, 0);

    // Backoff (100 ms doubling up to 1 s): a handful of attempts in 2 s, not a tight loop.
    tokio::time::sleep_until(started + Duration::from_secs(2)).await;
    let mut refusals = 1;
    while let Ok(ack) = acks.try_recv() {
        assert_eq!(ack.code, first.code);
        refusals += 1;
    }
    assert!(
        (3..10).contains(&refusals),
        "{refusals} attempts in 2 s with RECONNECT_MIN_MS=100, RECONNECT_MAX_MS=1000"
    );
    let s = mqtt.state();
    assert_eq!(s.status, Status::Reconnecting);
    assert!(s.attempts >= 3, "{s:?}");
    // `wait_connected` gives up at its timeout and reports the state.
    let s = mqtt.wait_connected(Duration::from_millis(50)).await;
    assert_eq!(s.status, Status::Reconnecting);
    mqtt.shutdown(Duration::from_secs(1)).await;
    assert_eq!(mqtt.state().status, Status::Stopped);
}

#[tokio::test]
async fn refused_credentials_v311() {
    refused_credentials(Protocol::V311).await;
}

#[tokio::test]
async fn refused_credentials_v5() {
    refused_credentials(Protocol::V5).await;
}

/// The right credentials connect, from the keys and from the URL; none at all are refused.
#[tokio::test]
async fn good_credentials_connect() {
    init_tracing();
    let Some((m, _dir)) = broker_with_password() else {
        return;
    };
    let port = m.port.to_string();
    let cfg = MqttConfig::from_pairs(
        "MQTT",
        [
            ("MQTT_BROKER_URL", "127.0.0.1"),
            ("MQTT_BROKER_PORT", port.as_str()),
            ("MQTT_USERNAME", "user"),
            ("MQTT_PASSWORD", "secret"),
            ("MQTT_PROTOCOL", "5"),
        ],
    )
    .unwrap();
    let mqtt = connected(Mqtt::builder(cfg)).await;
    assert_eq!(mqtt.state().last_error, None);
    mqtt.shutdown(WAIT).await;

    let cfg = MqttConfig::from_url(&format!("mqtt://user:secret@127.0.0.1:{}", m.port)).unwrap();
    let t = unique("auth");
    let (h, mut rx) = collector();
    let mqtt = connected(Mqtt::builder(cfg).on_topic(&format!("{t}/#"), h)).await;
    mqtt.subscribe(&format!("{t}/#"), QoS::AtLeastOnce)
        .await
        .unwrap();
    mqtt.publish(format!("{t}/a"), "in")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await.payload_str(), Some("in"));
    mqtt.shutdown(WAIT).await;

    let (on_connect, mut acks) = event_collector::<Connack>();
    let anonymous = Mqtt::builder(mosquitto_config(m.port, Protocol::V311))
        .on_connect(on_connect)
        .start()
        .await
        .unwrap();
    let ack = next(&mut acks).await;
    assert_eq!(ack.code, 5, "anonymous is not authorized: {ack:?}");
    anonymous.shutdown(Duration::from_secs(1)).await;
}

/// Started while nothing listens: the client reports why, keeps trying, and once the broker is
/// reachable connects, subscribes its routes and sends what was published meanwhile.
#[tokio::test]
async fn broker_unreachable_at_start() {
    init_tracing();
    let Some(m) = Mosquitto::start(MosquittoOptions::default()) else {
        return;
    };
    let proxy = Proxy::start(m.port).await;
    proxy.refuse(true);
    let t = unique("late");
    let (h, mut rx) = collector();
    let mqtt = Mqtt::builder(mosquitto_config(proxy.port, Protocol::V311))
        .on_topic(&format!("{t}/+"), h)
        .start()
        .await
        .unwrap();
    let mut state = mqtt.watch_state();
    let s = wait_state(&mut state, "failed attempts", |s| s.attempts >= 2).await;
    assert_eq!((s.status, s.connects), (Status::Reconnecting, 0), "{s:?}");
    assert!(s.last_error.is_some(), "{s:?}");
    let early = {
        let mqtt = mqtt.clone();
        let topic = format!("{t}/early");
        tokio::spawn(async move {
            mqtt.publish(topic, "queued before the first connect")
                .qos(QoS::AtLeastOnce)
                .await
        })
    };
    proxy.refuse(false);
    let s = wait_state(&mut state, "connected", |s| s.status == Status::Connected).await;
    assert_eq!((s.connects, s.attempts, s.last_error), (1, 0, None));
    early
        .await
        .unwrap()
        .expect("publish made before the first connect");
    let msg = next(&mut rx).await;
    assert_eq!(msg.payload_str(), Some("queued before the first connect"));
    mqtt.shutdown(WAIT).await;
}

/// Configuration mistakes are typed errors at start, naming the key, never a panic.
#[tokio::test]
async fn bad_configuration_is_an_error_at_start() {
    let mut cfg = embedded_config(Protocol::V5);
    cfg.keepalive = std::time::Duration::from_secs(1); // rumqttc's MQTT 5 client would panic below 5 s
    match Mqtt::start(cfg).await {
        Err(StartError::Config(e)) => assert_eq!(e.key, "MQTT_KEEPALIVE", "{e}"),
        other => panic!("expected a config error, got {other:?}"),
    }
    let mut cfg = embedded_config(Protocol::V311);
    cfg.keepalive = std::time::Duration::from_secs(70_000);
    match Mqtt::start(cfg).await {
        Err(StartError::Config(e)) => assert_eq!(e.key, "MQTT_KEEPALIVE", "{e}"),
        other => panic!("expected a config error, got {other:?}"),
    }
    let mut cfg = embedded_config(Protocol::V311);
    cfg.tls.enabled = true;
    cfg.tls.ca_certs = Some("/nonexistent/ca.pem".into());
    match Mqtt::start(cfg).await {
        Err(StartError::Tls(e @ TlsError::File { .. })) => {
            assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
            // The PEM reader's error is kept as the cause.
            assert!(std::error::Error::source(&e).is_some(), "{e:?}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}
