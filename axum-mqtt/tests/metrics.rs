//! The `metrics` facade: after known traffic through a real broker, the Prometheus exporter a user
//! would install shows the library's measurements, read back with a parser of the exposition format.
//! One recorder per process, so every test here shares it and tells its series apart by client id.

mod common;

use std::sync::OnceLock;

use axum_mqtt::extract::Json;
use axum_mqtt::router::RouteOptions;
use axum_mqtt::{Mqtt, Protocol, QoS, Router, Status};
use axum_mqtt_testkit::unique;
use common::*;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use prom_text_format_parser::{Metric, Sample, Scrape, Type, ValueType};

fn exporter() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("mqtt_handler_duration_seconds".into()),
                &[0.001, 0.01, 0.1, 1.0],
            )
            .unwrap()
            .install_recorder()
            .expect("the only recorder of this test binary")
    })
}

fn scrape() -> Scrape {
    Scrape::parse(&exporter().render()).expect("the exposition format")
}

fn has(sample: &Sample, labels: &[(&str, &str)]) -> bool {
    labels
        .iter()
        .all(|(k, v)| sample.labels.iter().any(|l| l.key == *k && l.value == *v))
}

fn metric<'a>(s: &'a Scrape, name: &str) -> &'a Metric {
    s.metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} is not exported"))
}

/// The value of the one plain sample of `name` whose labels include every pair of `labels`.
fn number(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let hits: Vec<&Sample> = metric(s, name)
        .samples
        .iter()
        .filter(|x| x.value.value_type == ValueType::Sample && has(x, labels))
        .collect();
    assert_eq!(hits.len(), 1, "{name} {labels:?}: {hits:?}");
    hits[0].value.value.as_f64()
}

#[derive(serde::Deserialize)]
struct Reading {
    celsius: f64,
}

async fn record(Json(r): Json<Reading>) -> Result<(), std::io::Error> {
    if r.celsius < -273.15 {
        panic!("below absolute zero");
    }
    if r.celsius > 1000.0 {
        return Err(std::io::Error::other("implausible reading"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_traffic_shows_in_the_exporter() {
    exporter();
    let t = unique("metrics");
    let pattern = format!("{t}/{{device}}/reading");
    let mut cfg = embedded_config(Protocol::V5);
    cfg.client_id = unique_id("metrics");
    let id = cfg.client_id.clone();
    let router: Router = Router::new().route(&pattern, record);
    let mqtt = connected(Mqtt::builder(cfg).router(router)).await;

    let sends = [
        (QoS::AtLeastOnce, r#"{"celsius": 20}"#),
        (QoS::AtLeastOnce, r#"{"celsius": 21}"#),
        (QoS::AtLeastOnce, "not json"),
        (QoS::AtLeastOnce, r#"{"celsius": 5000}"#),
        (QoS::AtMostOnce, r#"{"celsius": -300}"#),
    ];
    for (qos, payload) in sends {
        mqtt.publish(format!("{t}/d1/reading"), payload)
            .qos(qos)
            .await
            .unwrap();
    }
    let stats = wait_stats(&mqtt, |s| {
        s.handled + s.rejected + s.handler_errors + s.handler_panics >= 5
    })
    .await;
    assert_eq!(
        (
            stats.handled,
            stats.rejected,
            stats.handler_errors,
            stats.handler_panics
        ),
        (2, 1, 1, 1)
    );

    let s = scrape();
    let route = [("client", id.as_str()), ("route", pattern.as_str())];
    for (outcome, want) in [
        ("handled", 2.0),
        ("rejected", 1.0),
        ("error", 1.0),
        ("panic", 1.0),
    ] {
        let mut l = route.to_vec();
        l.push(("outcome", outcome));
        assert_eq!(
            number(&s, "mqtt_handler_calls_total", &l),
            want,
            "{outcome}"
        );
    }
    let h = metric(&s, "mqtt_handler_duration_seconds");
    assert_eq!(h.kind, Type::Histogram);
    let mut inf = route.to_vec();
    inf.push(("le", "+Inf"));
    let count = |t: ValueType, l: &[(&str, &str)]| {
        h.samples
            .iter()
            .filter(|x| x.value.value_type == t && has(x, l))
            .map(|x| x.value.value.as_f64())
            .collect::<Vec<_>>()
    };
    assert_eq!(count(ValueType::Sample, &inf), [5.0], "every call is timed");
    assert_eq!(count(ValueType::Count, &route), [5.0]);
    assert_eq!(metric(&s, "mqtt_handler_calls_total").kind, Type::Counter);
    assert_eq!(metric(&s, "mqtt_connected").kind, Type::Gauge);

    let c = [("client", id.as_str())];
    let by_qos = |name: &str, q: &'static str| number(&s, name, &[c[0], ("qos", q)]);
    assert_eq!(by_qos("mqtt_messages_received_total", "1"), 4.0);
    assert_eq!(by_qos("mqtt_messages_received_total", "0"), 1.0);
    assert_eq!(by_qos("mqtt_messages_published_total", "1"), 4.0);
    assert_eq!(by_qos("mqtt_messages_published_total", "0"), 1.0);
    assert_eq!(number(&s, "mqtt_connected", &c), 1.0);
    assert_eq!(number(&s, "mqtt_connects_total", &c), 1.0);
    assert_eq!(number(&s, "mqtt_publishes_inflight", &c), 0.0);
    assert_eq!(number(&s, "mqtt_handler_queue_depth", &c), 0.0);
    let help = metric(&s, "mqtt_handler_calls_total").help_desc.clone();
    assert!(help.unwrap_or_default().contains("outcome"), "described");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_and_a_reconnect_are_counted() {
    exporter();
    let proxy = Proxy::start(axum_mqtt_testkit::embedded().tcp_addr().port()).await;
    let mut cfg = embedded_config(Protocol::V311);
    cfg.broker_port = proxy.port;
    cfg.client_id = unique_id("metrics-reconnect");
    let id = cfg.client_id.clone();
    let mqtt = connected(Mqtt::builder(cfg)).await;
    let mut state = mqtt.watch_state();
    proxy.cut();
    wait_state(&mut state, "the reconnect", |s| {
        s.connects == 2 && s.status == Status::Connected
    })
    .await;

    let s = scrape();
    let c = [("client", id.as_str())];
    assert_eq!(number(&s, "mqtt_connects_total", &c), 2.0);
    assert_eq!(number(&s, "mqtt_reconnects_total", &c), 1.0);
    assert!(number(&s, "mqtt_connection_lost_total", &c) >= 1.0);
    assert_eq!(number(&s, "mqtt_connected", &c), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_counted_by_outcome() {
    exporter();
    let t = unique("metrics-dlq");
    let mut cfg = embedded_config(Protocol::V5);
    cfg.client_id = unique_id("metrics-dlq");
    let id = cfg.client_id.clone();
    let published = format!("{t}/a");
    // Its own pattern matches its dead-letter topic: not published, counted as failed.
    let looping = format!("{t}/b/{{*rest}}");
    let fail = || async { Err::<(), _>("always") };
    let dead_letter = |template: String| RouteOptions::new().dead_letter(&template);
    let router: Router = Router::new()
        .route_with(&published, dead_letter(format!("{t}/dlq/{{topic}}")), fail)
        .route_with(&looping, dead_letter(format!("{t}/b/dlq/{{topic}}")), fail);
    let mqtt = connected(Mqtt::builder(cfg).router(router)).await;
    for topic in [format!("{t}/a"), format!("{t}/b/x")] {
        mqtt.publish(topic, "x")
            .qos(QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    let stats = wait_stats(&mqtt, |s| {
        s.dead_lettered >= 1 && s.dead_letter_failures >= 1
    })
    .await;
    assert_eq!((stats.dead_lettered, stats.dead_letter_failures), (1, 1));

    let s = scrape();
    let name = "mqtt_handler_dead_letters_total";
    let of = |route: &str, outcome: &str| {
        number(
            &s,
            name,
            &[
                ("client", id.as_str()),
                ("route", route),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(of(&published, "published"), 1.0);
    assert_eq!(of(&published, "failed"), 0.0);
    assert_eq!(of(&looping, "failed"), 1.0);
    assert_eq!(metric(&s, name).kind, Type::Counter);
}
