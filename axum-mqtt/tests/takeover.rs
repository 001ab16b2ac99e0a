//! Two instances with one client id (Flask-MQTT #64): the broker keeps replacing one with the other.
//! The client must say so clearly and back off instead of fighting in a tight loop.

mod common;

use std::time::Duration;

use axum_mqtt::{Mqtt, Protocol};
use axum_mqtt_testkit::{unique, Mosquitto};
use common::*;

async fn fight(protocol: Protocol) {
    let Some(m) = Mosquitto::start(Default::default()) else {
        return;
    };
    let id = unique("same-id").replace('/', "-");
    let mut a = mosquitto_config(m.port, protocol);
    a.client_id = id.clone();
    a.reconnect_min = std::time::Duration::from_millis(50);
    a.reconnect_max = std::time::Duration::from_millis(2_000);
    // Same broker under another name: the in-process guard cannot tell, like two separate processes.
    let mut b = a.clone();
    b.broker_url = "localhost".into();
    let first = connected(Mqtt::builder(a)).await;
    let second = Mqtt::start(b).await.unwrap();
    let mut state = first.watch_state();
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        state
            .wait_for(|s| {
                s.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("same client id"))
            })
            .await
            .map(|s| s.clone())
    })
    .await
    .expect("a clear error about the shared client id")
    .unwrap();
    assert!(seen.last_error.unwrap().contains(&id));
    // Backoff grows: over 3 s the pair connects far fewer times than a tight loop would (hundreds).
    let before = first.state().connects + second.state().connects;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = first.state().connects + second.state().connects - before;
    assert!(
        during <= 12,
        "{during} connects in 3 s: a tight takeover loop"
    );
}

#[tokio::test]
async fn takeover_is_reported_v5() {
    fight(Protocol::V5).await;
}

#[tokio::test]
async fn takeover_is_reported_v311() {
    fight(Protocol::V311).await;
}
