//! Backpressure: a slow handler under a 100k-message QoS 1 flood keeps the client's queue (and
//! memory) bounded, and loses nothing. Its own test binary, so the RSS figure is this client's.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum_mqtt::extract::{Payload, State};
use axum_mqtt::{Mqtt, Protocol, QoS, Router};
use axum_mqtt_testkit::{unique, Mosquitto};
use common::*;
use futures_util::StreamExt;

#[derive(Clone, Default)]
struct Load {
    handled: Arc<AtomicU64>,
    max_backlog: Arc<AtomicU64>,
    client: Arc<std::sync::OnceLock<Mqtt>>,
    /// Handlers are stuck until the whole flood has been published and acknowledged by the broker.
    gate: Arc<tokio::sync::watch::Sender<bool>>,
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_handler_flood_stays_bounded_and_loses_nothing() {
    let Some(broker) = Mosquitto::start(Default::default()) else {
        return;
    };
    let t = unique("flood");
    let n: u64 = 100_000;
    let load = Load::default();
    let router = Router::new()
        .route(
            &format!("{t}/data"),
            |Payload(_p): Payload, State(l): State<Load>| async move {
                let done = l.handled.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(c) = l.client.get() {
                    let backlog = c.stats().received.saturating_sub(done);
                    l.max_backlog.fetch_max(backlog, Ordering::Relaxed);
                }
                // The slowest handler there is: stuck until the flood is over.
                let _ = l.gate.subscribe().wait_for(|open| *open).await;
            },
        )
        .with_state(load.clone());
    let mut cfg = mosquitto_config(broker.port, Protocol::V311);
    cfg.handler_concurrency = 4;
    cfg.handler_queue = 16;
    let sub = connected(Mqtt::builder(cfg).router(router)).await;
    let _ = load.client.set(sub.clone());
    sub.subscribe(&format!("{t}/data"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let rss_before = rss_kib();

    // The publisher lives in another process-like client; payloads of 1 KiB so buffering would show.
    let publisher = connected(Mqtt::builder(mosquitto_config(broker.port, Protocol::V311))).await;
    let payload = bytes::Bytes::from(vec![b'x'; 1024]);
    let topic = format!("{t}/data");
    futures_util::stream::iter(0..n)
        .map(|_| {
            publisher
                .publish(topic.clone(), payload.clone())
                .qos(QoS::AtLeastOnce)
                .send()
        })
        .buffer_unordered(500)
        .for_each(|r| async move {
            r.expect("publish acknowledged");
        })
        .await;
    // Everything is acknowledged by the broker while the handler is still stuck: the client must have
    // stopped reading (backpressure) instead of buffering the flood.
    assert!(load.handled.load(Ordering::Relaxed) <= 1);
    let stuck = sub.stats();
    assert!(
        stuck.received < 200,
        "client buffered {} messages while blocked",
        stuck.received
    );
    let rss_blocked_mib = rss_kib().saturating_sub(rss_before) / 1024;
    load.gate.send_replace(true);

    tokio::time::timeout(Duration::from_secs(120), async {
        while load.handled.load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "only {} of {n} handled",
            load.handled.load(Ordering::Relaxed)
        )
    });
    let rss_growth_mib = rss_kib().saturating_sub(rss_before) / 1024;
    let stats = sub.stats();
    assert_eq!(
        stats.received, n,
        "every QoS 1 message received exactly once"
    );
    assert_eq!(load.handled.load(Ordering::Relaxed), n);
    // 4 lanes × 16 queued + 4 in handlers + 1 waiting to be queued.
    let bound = 4 * 16 + 4 + 1;
    let max = load.max_backlog.load(Ordering::Relaxed);
    assert!(max <= bound, "client backlog reached {max} > {bound}");
    // 100k × 1 KiB would be ~100 MiB if buffered; bounded queues keep growth small.
    assert!(rss_growth_mib < 40, "RSS grew by {rss_growth_mib} MiB");
    assert!(
        rss_blocked_mib < 40,
        "RSS grew by {rss_blocked_mib} MiB while blocked"
    );
    eprintln!(
        "flood: {} received while blocked, max backlog {max}, RSS growth {rss_blocked_mib} MiB blocked / {rss_growth_mib} MiB after",
        stuck.received
    );
}
