//! Acknowledgement after handling: a message whose handler failed is not acknowledged, so the broker
//! redelivers it after a reconnect on a persistent session, and nothing is lost.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum_mqtt::extract::{State, Text};
use axum_mqtt::router::RouteOptions;
use axum_mqtt::{Message, Mqtt, Protocol, QoS, Router, Status};
use axum_mqtt_testkit::{unique, Mosquitto, MosquittoOptions};
use common::*;
use tokio::sync::mpsc;

#[derive(Clone)]
struct Ctx {
    calls: Arc<AtomicUsize>,
    tx: mpsc::UnboundedSender<(String, bool)>,
}

async fn redelivered_after_failure(protocol: Protocol) {
    let Some(mut broker) = Mosquitto::start(MosquittoOptions {
        persistence: true,
        ..Default::default()
    }) else {
        return;
    };
    let t = unique("ack");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let ctx = Ctx {
        calls: Arc::new(AtomicUsize::new(0)),
        tx,
    };
    let router = Router::new()
        .route_with(
            &format!("{t}/jobs"),
            RouteOptions::new()
                .qos(QoS::AtLeastOnce)
                .ack_after_handling(),
            |Text(body): Text, m: Message, State(ctx): State<Ctx>| async move {
                let n = ctx.calls.fetch_add(1, Ordering::SeqCst);
                let _ = ctx.tx.send((body, m.dup()));
                if n == 0 {
                    Err("simulated failure before the work was saved")
                } else {
                    Ok(())
                }
            },
        )
        .with_state(ctx.clone());
    let mut cfg = mosquitto_config(broker.port, protocol);
    cfg.client_id = format!("worker-{}", t.replace('/', "-"));
    cfg.clean_session = false;
    let worker = connected(Mqtt::builder(cfg).router(router)).await;
    worker
        .subscribe(&format!("{t}/jobs"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let publisher = connected(Mqtt::builder(mosquitto_config(broker.port, protocol))).await;
    publisher
        .publish(format!("{t}/jobs"), "job-1")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    let (body, dup) = next(&mut rx).await;
    assert_eq!((body.as_str(), dup), ("job-1", false));
    // The failed message was not acknowledged; a broker restart (session kept on disk) makes the
    // worker reconnect with its session, and the broker redelivers it.
    let mut state = worker.watch_state();
    broker.stop(true);
    state
        .wait_for(|s| s.status != Status::Connected)
        .await
        .unwrap();
    broker.restart();
    let (body, dup) = next(&mut rx).await;
    assert_eq!(body, "job-1", "the unacknowledged message must come back");
    assert!(dup, "a redelivery carries the DUP flag");
    assert_eq!(ctx.calls.load(Ordering::SeqCst), 2);
    // Acknowledged this time. The handler reported the message before returning, so its ack may
    // not be queued yet: a second message on the same topic (the same lane, handled after the first
    // one's ack was queued) and then a SUBSCRIBE round trip (behind that ack in rumqttc's channel)
    // make sure the broker has it before the restart.
    publisher
        .publish(format!("{t}/jobs"), "job-2")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    let (body, _) = next(&mut rx).await;
    assert_eq!(body, "job-2");
    worker
        .subscribe(&format!("{t}/barrier"), QoS::AtLeastOnce)
        .await
        .unwrap();
    // Another restart does not bring job-1 back (job-2's own ack may race the stop).
    let mut state = worker.watch_state();
    broker.stop(true);
    state
        .wait_for(|s| s.status != Status::Connected)
        .await
        .unwrap();
    broker.restart();
    worker.wait_connected(WAIT).await;
    let quiet = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
    while let Ok(Some((body, dup))) = tokio::time::timeout_at(quiet, rx.recv()).await {
        assert_eq!(
            (body.as_str(), dup),
            ("job-2", true),
            "job-1 was acknowledged"
        );
    }
}

#[tokio::test]
async fn failed_handler_message_is_redelivered_v311() {
    redelivered_after_failure(Protocol::V311).await;
}

#[tokio::test]
async fn failed_handler_message_is_redelivered_v5() {
    redelivered_after_failure(Protocol::V5).await;
}
