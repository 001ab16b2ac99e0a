//! Helpers shared by the integration tests: configs for real brokers and waiting on events.
#![allow(dead_code)]

use std::time::Duration;

use axum_mqtt::{Message, Mqtt, MqttConfig, Protocol, Status};
use axum_mqtt_testkit::embedded;
use tokio::sync::mpsc;

pub const WAIT: Duration = Duration::from_secs(10);

/// A config for the shared embedded broker (v4 or v5 listener), with fast reconnects.
pub fn embedded_config(protocol: Protocol) -> MqttConfig {
    let b = embedded();
    let addr = match protocol {
        Protocol::V311 => b.v4_addr(),
        Protocol::V5 => b.v5_addr().expect("v5 listener"),
    };
    let mut cfg = MqttConfig::new("127.0.0.1", addr.port());
    cfg.protocol = protocol;
    cfg.reconnect_min_ms = 20;
    cfg.reconnect_max_ms = 500;
    cfg.keepalive = 5;
    cfg
}

/// A config for a Mosquitto child on `port`.
pub fn mosquitto_config(port: u16, protocol: Protocol) -> MqttConfig {
    let mut cfg = MqttConfig::new("127.0.0.1", port);
    cfg.protocol = protocol;
    cfg.reconnect_min_ms = 20;
    cfg.reconnect_max_ms = 300;
    cfg.keepalive = 5;
    cfg
}

/// Starts a client and waits until it is connected.
pub async fn connected(builder: axum_mqtt::MqttBuilder) -> Mqtt {
    let mqtt = builder.start().await.expect("start");
    let state = mqtt.wait_connected(WAIT).await;
    assert_eq!(state.status, Status::Connected, "not connected: {state:?}");
    mqtt
}

/// Receives the next item or fails the test after [`WAIT`].
pub async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting for an event")
        .expect("channel closed")
}

/// Asserts that nothing arrives within `d`.
pub async fn nothing<T: std::fmt::Debug>(rx: &mut mpsc::UnboundedReceiver<T>, d: Duration) {
    if let Ok(Some(x)) = tokio::time::timeout(d, rx.recv()).await {
        panic!("unexpected: {x:?}");
    }
}

/// A channel and a handler that forwards every message into it.
pub fn collector() -> (
    impl Fn(Message) -> std::future::Ready<()> + Clone + Send + Sync + 'static,
    mpsc::UnboundedReceiver<Message>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        move |m: Message| {
            let _ = tx.send(m);
            std::future::ready(())
        },
        rx,
    )
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,axum_mqtt=info".into()),
        )
        .with_test_writer()
        .try_init();
}
