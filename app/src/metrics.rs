//! `GET /metrics`: the client's counters and the app's own, in Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use axum_mqtt::{Mqtt, Status};

use crate::messages::MessageLog;

/// The app's counters (the MQTT client keeps its own, see [`Mqtt::stats`]).
#[derive(Debug, Default)]
pub struct Metrics {
    pub ws_clients: AtomicI64,
    pub ws_connections: AtomicU64,
    pub ws_sent: AtomicU64,
    pub ws_dropped: AtomicU64,
    pub ws_errors: AtomicU64,
    pub ws_publishes: AtomicU64,
    pub sse_clients: AtomicI64,
    pub http_publish_ok: AtomicU64,
    pub http_publish_failed: AtomicU64,
    pub unauthorized: AtomicU64,
    pub forbidden: AtomicU64,
}

/// Adds one.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
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
        metrics.gauge(kind).fetch_add(1, Ordering::Relaxed);
        ClientGuard { metrics, kind }
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.metrics
            .gauge(self.kind)
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    fn gauge(&self, kind: Client) -> &AtomicI64 {
        match kind {
            Client::WebSocket => &self.ws_clients,
            Client::Sse => &self.sse_clients,
        }
    }

    /// Connected clients of one kind.
    pub fn clients(&self, kind: Client) -> i64 {
        self.gauge(kind).load(Ordering::Relaxed)
    }

    /// Renders every metric.
    pub fn render(&self, mqtt: &Mqtt, log: &MessageLog) -> String {
        let mut out = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed).to_string();
        let gi = |c: &AtomicI64| c.load(Ordering::Relaxed).max(0).to_string();
        let s = mqtt.stats();
        let state = mqtt.state();
        let connected = u8::from(state.status == Status::Connected);
        metric(
            "mqtt_connected",
            "gauge",
            "1 when the MQTT client is connected to the broker.",
            connected.to_string(),
        );
        metric(
            "mqtt_connects_total",
            "counter",
            "Successful MQTT connections since start.",
            state.connects.to_string(),
        );
        metric(
            "mqtt_messages_received_total",
            "counter",
            "Messages received from the broker.",
            s.received.to_string(),
        );
        metric(
            "mqtt_messages_handled_total",
            "counter",
            "Handler calls that succeeded.",
            s.handled.to_string(),
        );
        metric(
            "mqtt_messages_rejected_total",
            "counter",
            "Messages whose extraction failed.",
            s.rejected.to_string(),
        );
        metric(
            "mqtt_handler_errors_total",
            "counter",
            "Handler calls that returned an error.",
            s.handler_errors.to_string(),
        );
        metric(
            "mqtt_handler_panics_total",
            "counter",
            "Handler calls that panicked.",
            s.handler_panics.to_string(),
        );
        metric(
            "mqtt_stream_dropped_total",
            "counter",
            "Messages skipped by slow message streams.",
            s.stream_dropped.to_string(),
        );
        metric(
            "mqtt_messages_published_total",
            "counter",
            "Publishes acknowledged by the broker.",
            s.published.to_string(),
        );
        metric(
            "mqtt_events_dropped_total",
            "counter",
            "Callback events dropped because callbacks fell behind.",
            s.events_dropped.to_string(),
        );
        metric(
            "mqtt_subscriptions",
            "gauge",
            "Filters subscribed at the broker (routes, streams).",
            mqtt.subscriptions().len().to_string(),
        );
        metric(
            "app_ws_clients",
            "gauge",
            "Browser WebSocket connections open now.",
            gi(&self.ws_clients),
        );
        metric(
            "app_ws_connections_total",
            "counter",
            "Browser WebSocket connections since start.",
            g(&self.ws_connections),
        );
        metric(
            "app_ws_messages_sent_total",
            "counter",
            "Message frames sent to browsers.",
            g(&self.ws_sent),
        );
        metric(
            "app_ws_messages_dropped_total",
            "counter",
            "Messages skipped because a browser could not keep up.",
            g(&self.ws_dropped),
        );
        metric(
            "app_ws_errors_total",
            "counter",
            "Error frames sent to browsers (bad requests).",
            g(&self.ws_errors),
        );
        metric(
            "app_ws_publishes_total",
            "counter",
            "Publishes from browsers acknowledged by the broker.",
            g(&self.ws_publishes),
        );
        metric(
            "app_sse_clients",
            "gauge",
            "Server-Sent Events streams open now.",
            gi(&self.sse_clients),
        );
        metric(
            "app_http_publishes_total",
            "counter",
            "POST /publish requests acknowledged by the broker.",
            g(&self.http_publish_ok),
        );
        metric(
            "app_http_publish_errors_total",
            "counter",
            "POST /publish requests answered with an error.",
            g(&self.http_publish_failed),
        );
        metric(
            "app_unauthorized_total",
            "counter",
            "Requests refused for a missing or wrong token.",
            g(&self.unauthorized),
        );
        metric(
            "app_forbidden_total",
            "counter",
            "Requests refused by a topic allow-list.",
            g(&self.forbidden),
        );
        metric(
            "app_history_messages",
            "gauge",
            "Messages held for GET /api/messages.",
            log.len().to_string(),
        );
        metric(
            "app_history_received_total",
            "counter",
            "Messages received on the app's subscriptions.",
            log.total().to_string(),
        );
        out
    }
}
