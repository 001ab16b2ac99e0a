//! Micro-benchmarks of the per-message work of the dispatcher: topic matching and extraction.
//!
//! `cargo bench -p axum-mqtt --bench routing` (figures are ns per message; results in
//! bench/RESULTS.md). The dispatcher (src/router/dispatch.rs) finds a message's routes in a topic
//! trie (`FilterIndex`) and then runs each hit's pattern to capture its named segments: "match"
//! below does exactly that, and "scan" tries every pattern in order (what it did before the trie),
//! for comparison.
use std::collections::HashMap;
use std::time::Duration;

use axum_mqtt::extract::MqttRequest;
use axum_mqtt::extract::{FromMessage, Json, Params, Payload, Text};
use axum_mqtt::router::Handler;
use axum_mqtt::topic::{FilterIndex, TopicPattern};
use axum_mqtt::Message;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::FutureExt;

/// Routes with distinct first levels (`site<i>/...`): most mismatch on the first level.
fn distinct_routes(n: usize) -> Vec<TopicPattern> {
    (0..n)
        .map(|i| match i % 4 {
            0 => format!("site{i}/sensors/{{device}}/temperature"),
            1 => format!("site{i}/lights/+/state"),
            2 => format!("site{i}/logs/{{*rest}}"),
            _ => format!("site{i}/alarms/zone/{i}"),
        })
        .map(|p| TopicPattern::parse(&p).expect("valid pattern"))
        .collect()
}

/// Routes sharing `sensors/{device}/`: every one gets past a named segment before mismatching.
fn shared_prefix_routes(n: usize) -> Vec<TopicPattern> {
    (0..n)
        .map(|i| format!("sensors/{{device}}/metric{i}"))
        .map(|p| TopicPattern::parse(&p).expect("valid pattern"))
        .collect()
}

/// Every pattern tried in order (the dispatcher before the topic trie).
fn scan(routes: &[TopicPattern], topic: &str) -> usize {
    routes.iter().filter_map(|p| p.matches(topic)).count()
}

/// Routes with their trie, as the dispatcher holds them.
struct Table {
    routes: Vec<TopicPattern>,
    index: FilterIndex,
}

impl Table {
    fn new(routes: Vec<TopicPattern>) -> Self {
        let mut index = FilterIndex::new();
        for (i, p) in routes.iter().enumerate() {
            index.insert(p.filter(), i);
        }
        Table { routes, index }
    }
}

/// What the dispatcher does per message: trie lookup, then captures for each hit.
fn dispatch(t: &Table, topic: &str, hits: &mut Vec<usize>) -> usize {
    hits.clear();
    t.index.matching(topic, hits);
    hits.iter()
        .filter_map(|&i| t.routes[i].matches(topic))
        .count()
}

fn matcher(c: &mut Criterion) {
    let mut g = c.benchmark_group("match");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for n in [10usize, 1_000, 100_000] {
        if n >= 100_000 {
            g.sample_size(10);
        }
        // ns per message; criterion's throughput line gives patterns per second.
        g.throughput(Throughput::Elements(n as u64));
        let mut hits = Vec::new();
        let routes = Table::new(distinct_routes(n));
        let last = (n - 1) / 4 * 4; // the last `site<i>/sensors/{device}/temperature` route
        let hit = format!("site{last}/sensors/kitchen/temperature");
        assert_eq!(dispatch(&routes, &hit, &mut hits), 1);
        assert_eq!(scan(&routes.routes, &hit), 1);
        g.bench_with_input(
            BenchmarkId::new("distinct prefixes, one hit", n),
            &n,
            |b, _| b.iter(|| dispatch(black_box(&routes), black_box(&hit), &mut hits)),
        );
        g.bench_with_input(
            BenchmarkId::new("distinct prefixes, no hit", n),
            &n,
            |b, _| b.iter(|| dispatch(black_box(&routes), black_box("elsewhere/a/b"), &mut hits)),
        );
        g.bench_with_input(
            BenchmarkId::new("scan: distinct prefixes, one hit", n),
            &n,
            |b, _| b.iter(|| scan(black_box(&routes.routes), black_box(&hit))),
        );
        let shared = Table::new(shared_prefix_routes(n));
        let hit = format!("sensors/kitchen/metric{}", n - 1);
        assert_eq!(dispatch(&shared, &hit, &mut hits), 1);
        g.bench_with_input(
            BenchmarkId::new("shared prefix with {device}, one hit", n),
            &n,
            |b, _| b.iter(|| dispatch(black_box(&shared), black_box(&hit), &mut hits)),
        );
    }
    g.finish();
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Reading {
    device: String,
    celsius: f64,
    ts: u64,
}

fn extractors(c: &mut Criterion) {
    let mut g = c.benchmark_group("extract");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let json = r#"{"device":"kitchen","celsius":21.5,"ts":1767225600}"#;
    let req = MqttRequest::new(Message::new("sensors/kitchen/temperature", json));
    g.bench_function("Payload", |b| {
        b.iter(|| Payload::from_message(black_box(&req), &()).is_ok())
    });
    g.bench_function("Text", |b| {
        b.iter(|| Text::from_message(black_box(&req), &()).is_ok())
    });
    g.bench_function("Json<Reading> (3 fields)", |b| {
        b.iter(|| <Json<Reading>>::from_message(black_box(&req), &()).is_ok())
    });
    g.bench_function("Json<serde_json::Value>", |b| {
        b.iter(|| <Json<serde_json::Value>>::from_message(black_box(&req), &()).is_ok())
    });
    g.bench_function("Params<HashMap> (no captures)", |b| {
        b.iter(|| <Params<HashMap<String, String>>>::from_message(black_box(&req), &()).is_ok())
    });
    let with_device = MqttRequest::with_params(
        Message::new("sensors/kitchen/temperature", json),
        vec![("device".into(), "kitchen".into())],
    );
    g.bench_function("Params<String> (one capture)", |b| {
        b.iter(|| <Params<String>>::from_message(black_box(&with_device), &()).is_ok())
    });
    // A whole handler call as a lane makes it: extraction, the boxed future, the async fn body.
    let handler = |Json(r): Json<Reading>| async move {
        black_box(r.celsius);
    };
    g.bench_function("handler(Json<Reading>) call", |b| {
        b.iter(|| {
            Handler::call(handler, black_box(req.clone()), ())
                .now_or_never()
                .map(|r| r.is_ok())
        })
    });
    // The per-message clone the dispatcher makes for every matching route.
    g.bench_function("MqttRequest clone", |b| b.iter(|| black_box(&req).clone()));
    g.finish();
}

criterion_group!(benches, matcher, extractors);
criterion_main!(benches);
