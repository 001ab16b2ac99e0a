//! `RouteOptions::retry`: a handler that fails or panics runs again, in its lane (per-topic order
//! holds), and with ack-after-handling the message is acknowledged once, after the run that worked.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum_mqtt::extract::{Json, State, Text};
use axum_mqtt::router::RouteOptions;
use axum_mqtt::{Mqtt, Protocol, QoS, Router};
use axum_mqtt_testkit::{embedded, unique};
use common::*;
use tokio::sync::mpsc;

/// What the handlers saw, and how often each payload failed so far.
#[derive(Clone)]
struct Ctx {
    runs: mpsc::UnboundedSender<String>,
    failures: Arc<Mutex<HashMap<String, u32>>>,
}

impl Ctx {
    fn new() -> (Ctx, mpsc::UnboundedReceiver<String>) {
        let (runs, rx) = mpsc::unbounded_channel();
        let failures = Arc::new(Mutex::new(HashMap::new()));
        (Ctx { runs, failures }, rx)
    }

    /// Records a run of `body`; true while `body` has failed fewer than `times` times (and counts it).
    fn fails(&self, body: &str, times: u32) -> bool {
        let _ = self.runs.send(body.to_string());
        let mut f = self.failures.lock().unwrap();
        let n = f.entry(body.to_string()).or_default();
        let fail = *n < times;
        if fail {
            *n += 1;
        }
        fail
    }
}

/// How often a payload fails before it works: `fail2:x` twice, others never.
fn failures_of(body: &str) -> u32 {
    body.strip_prefix("fail")
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handler_runs_again_in_order_and_is_acknowledged_once() {
    let t = unique("retry");
    let topic = format!("{t}/jobs");
    let (ctx, mut runs) = Ctx::new();
    let router = Router::new()
        .route_with(
            &topic,
            RouteOptions::new()
                .qos(QoS::AtLeastOnce)
                .ack_after_handling()
                .retry(3, Duration::from_millis(5)),
            |Text(body): Text, State(ctx): State<Ctx>| async move {
                if ctx.fails(&body, failures_of(&body)) {
                    Err("not yet")
                } else {
                    Ok(())
                }
            },
        )
        .with_state(ctx);
    // The worker reaches the broker through a proxy that can cut its connection; its session is
    // persistent, so anything it did not acknowledge would come back after the reconnect.
    let proxy = Proxy::start(embedded().tcp_addr().port()).await;
    let mut cfg = embedded_config(Protocol::V311);
    cfg.broker_port = proxy.port;
    cfg.client_id = unique_id("retry-worker");
    cfg.clean_session = false;
    let worker = connected(Mqtt::builder(cfg).router(router)).await;
    // The route's SUBSCRIBE went out first on the same connection: once this one is acknowledged,
    // the route's is in place.
    worker.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    let publisher = connected(Mqtt::builder(embedded_config(Protocol::V311))).await;

    for body in ["fail2:a", "b"] {
        publisher
            .publish(topic.clone(), body)
            .qos(QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next(&mut runs).await);
    }
    assert_eq!(
        seen,
        ["fail2:a", "fail2:a", "fail2:a", "b"],
        "three runs of the first message, and the second one waits for them"
    );
    let s = wait_stats(&worker, |s| s.handled >= 2).await;
    assert_eq!((s.handled, s.handler_errors, s.handler_retries), (2, 2, 2));

    no_redelivery_after_cut(&worker, &proxy, &publisher, &topic, "c", &mut runs).await;
}

#[derive(serde::Deserialize)]
struct Reading {
    #[allow(dead_code)]
    celsius: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_are_retried_rejections_are_not_and_a_route_that_always_fails_goes_on() {
    let t = unique("retry-kinds");
    let (ctx, mut runs) = Ctx::new();
    let opts = RouteOptions::new().retry(3, Duration::from_millis(1));
    let router = Router::new()
        .route_with(
            &format!("{t}/panics"),
            opts.clone(),
            |Text(body): Text, State(ctx): State<Ctx>| async move {
                if ctx.fails(&body, 1) {
                    panic!("first run panics");
                }
            },
        )
        .route_with(
            &format!("{t}/always"),
            opts.clone(),
            |Text(body): Text, State(ctx): State<Ctx>| async move {
                ctx.fails(&body, u32::MAX);
                Err::<(), _>("always")
            },
        )
        .route_with(
            &format!("{t}/json"),
            opts,
            |Json(_): Json<Reading>, State(ctx): State<Ctx>| async move {
                let _ = ctx.runs.send("json".into());
            },
        )
        .with_state(ctx);
    let mqtt = connected(Mqtt::builder(embedded_config(Protocol::V5)).router(router)).await;
    let send = |topic: String, body: &'static str| {
        let mqtt = mqtt.clone();
        async move {
            mqtt.publish(topic, body)
                .qos(QoS::AtLeastOnce)
                .await
                .unwrap()
        }
    };

    send(format!("{t}/panics"), "p").await;
    assert_eq!([next(&mut runs).await, next(&mut runs).await], ["p", "p"]);
    let s = wait_stats(&mqtt, |s| s.handled >= 1).await;
    assert_eq!((s.handler_panics, s.handler_retries), (1, 1));

    // Not retried: the payload cannot become valid JSON by trying again.
    send(format!("{t}/json"), "not json").await;
    let s = wait_stats(&mqtt, |s| s.rejected >= 1).await;
    assert_eq!(s.handler_retries, 1, "a rejection is not retried");

    for body in ["x", "y"] {
        send(format!("{t}/always"), body).await;
    }
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(next(&mut runs).await);
    }
    assert_eq!(
        seen,
        ["x", "x", "x", "y", "y", "y"],
        "3 runs each, then the next message"
    );
    let s = wait_stats(&mqtt, |s| s.handler_errors >= 6).await;
    assert_eq!((s.handler_errors, s.handler_retries), (6, 1 + 4));
}
