//! `GET /metrics`: every measurement of the process in the Prometheus text format, rendered by
//! `metrics-exporter-prometheus`.
//!
//! The MQTT client emits its own (`mqtt_*`, the table in the library's `Stats` docs) through the
//! `metrics` facade; the app's (`app_*`) are handles registered on the same recorder. The exporter is
//! the facade's own: the library speaks `metrics`, so `prometheus-client` would need a bridge. It is
//! built without its HTTP listener: the app serves `/metrics` itself, behind its token and Host check.

use std::sync::Arc;

use axum_mqtt::Mqtt;
use metrics::{Counter, Gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::messages::MessageLog;

/// Histogram buckets of handler durations, in seconds (the exporter renders summaries otherwise).
const HANDLER_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

/// The app's measurements, and the exporter that renders them with the client's.
pub struct Metrics {
    handle: PrometheusHandle,
    pub ws_connections: Counter,
    pub ws_sent: Counter,
    pub ws_dropped: Counter,
    pub ws_errors: Counter,
    pub ws_publishes: Counter,
    pub http_publish_ok: Counter,
    pub http_publish_failed: Counter,
    pub unauthorized: Counter,
    pub forbidden: Counter,
    ws_clients: Gauge,
    sse_clients: Gauge,
    subscriptions: Gauge,
    history: Gauge,
    history_received: Counter,
    tasks: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Builds the exporter and makes it the process's recorder, so the MQTT client started after this
    /// reports to it. `Err` when another recorder was installed first.
    pub fn install() -> Result<Self, String> {
        let (recorder, metrics) = Self::build()?;
        metrics::set_global_recorder(recorder)
            .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
        Ok(metrics)
    }

    /// The exporter and the app's handles, without installing it (the library's measurements then
    /// go elsewhere; for unit tests).
    fn build() -> Result<(metrics_exporter_prometheus::PrometheusRecorder, Self), String> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("mqtt_handler_duration_seconds".into()),
                HANDLER_BUCKETS,
            )
            .map_err(|e| format!("metrics buckets: {e}"))?
            .build_recorder();
        let handle = recorder.handle();
        let metrics = metrics::with_local_recorder(&recorder, || Self::register(handle));
        Ok((recorder, metrics))
    }

    fn register(handle: PrometheusHandle) -> Self {
        let counter = |name: &'static str, help: &'static str| {
            metrics::describe_counter!(name, help);
            metrics::counter!(name)
        };
        let gauge = |name: &'static str, help: &'static str| {
            metrics::describe_gauge!(name, help);
            metrics::gauge!(name)
        };
        Metrics {
            handle,
            ws_clients: gauge("app_ws_clients", "Browser WebSocket connections open now."),
            ws_connections: counter(
                "app_ws_connections_total",
                "Browser WebSocket connections since start.",
            ),
            ws_sent: counter(
                "app_ws_messages_sent_total",
                "Message frames sent to browsers.",
            ),
            ws_dropped: counter(
                "app_ws_messages_dropped_total",
                "Messages skipped because a browser could not keep up.",
            ),
            ws_errors: counter(
                "app_ws_errors_total",
                "Error frames sent to browsers (bad requests).",
            ),
            ws_publishes: counter(
                "app_ws_publishes_total",
                "Publishes from browsers acknowledged by the broker.",
            ),
            sse_clients: gauge("app_sse_clients", "Server-Sent Events streams open now."),
            http_publish_ok: counter(
                "app_http_publishes_total",
                "POST /publish requests acknowledged by the broker.",
            ),
            http_publish_failed: counter(
                "app_http_publish_errors_total",
                "POST /publish requests answered with an error.",
            ),
            unauthorized: counter(
                "app_unauthorized_total",
                "Requests refused for a missing or wrong token.",
            ),
            forbidden: counter(
                "app_forbidden_total",
                "Requests refused by a topic allow-list.",
            ),
            subscriptions: gauge(
                "app_mqtt_subscriptions",
                "Filters the MQTT client holds at the broker (routes, streams).",
            ),
            history: gauge(
                "app_history_messages",
                "Messages held for GET /api/messages.",
            ),
            history_received: counter(
                "app_history_received_total",
                "Messages received on the app's subscriptions.",
            ),
            tasks: gauge(
                "tokio_alive_tasks",
                "Tokio tasks alive now (RuntimeMetrics::num_alive_tasks).",
            ),
        }
    }

    /// Renders every metric; values read from state (not counted as they happen) are set first.
    pub fn render(&self, mqtt: &Mqtt, log: &MessageLog) -> String {
        self.subscriptions.set(mqtt.subscriptions().len() as f64);
        self.history.set(log.len() as f64);
        self.history_received.absolute(log.total());
        self.tasks.set(
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks() as f64,
        );
        // Histograms are kept as raw samples until drained; without the exporter's own upkeep task
        // (its async runtime feature is off) the scrape does it.
        self.handle.run_upkeep();
        self.handle.render()
    }

    fn gauge(&self, kind: Client) -> &Gauge {
        match kind {
            Client::WebSocket => &self.ws_clients,
            Client::Sse => &self.sse_clients,
        }
    }
}

/// Kinds of long-lived clients counted by a gauge.
#[derive(Debug, Clone, Copy)]
pub enum Client {
    WebSocket,
    Sse,
}

/// Counts a connected client while alive (the gauge goes down however the connection ends).
pub struct ClientGuard {
    metrics: Arc<Metrics>,
    kind: Client,
}

impl ClientGuard {
    pub fn new(metrics: Arc<Metrics>, kind: Client) -> Self {
        metrics.gauge(kind).increment(1.0);
        ClientGuard { metrics, kind }
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.metrics.gauge(self.kind).decrement(1.0);
    }
}

#[cfg(test)]
impl Metrics {
    /// Handles on a recorder of their own (a unit test cannot own the process's recorder).
    pub fn local() -> Self {
        Self::build().expect("metrics").1
    }

    /// The value of an unlabelled sample, read back through the exposition format.
    pub fn sample(&self, name: &str) -> Option<f64> {
        let text = self.handle.render();
        let scrape = prom_text_format_parser::Scrape::parse(&text).ok()?;
        let m = scrape.metrics.into_iter().find(|m| m.name == name)?;
        m.samples.first().map(|s| s.value.value.as_f64())
    }
}
