//! The client's measurements through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`), so whatever exporter the application installed (Prometheus, StatsD, OpenTelemetry)
//! picks them up. [`Stats`](super::Stats) keeps the same counts without any recorder.
//!
//! Handles are registered once per client (and per route) when the client starts, so the hot path
//! is an increment on a handle, not a registry lookup: install the recorder before
//! [`MqttBuilder::start`](super::MqttBuilder::start). Without the feature the handles are no-ops.

use crate::message::QoS;

/// One row of the metrics table: what the exporter shows and what `docs/metrics.md` documents.
#[cfg_attr(not(test), allow(dead_code))] // `labels` and the kind's name are read by the docs test
pub(crate) struct MetricDoc {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static str,
    pub help: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(any(test, feature = "metrics")), allow(dead_code))]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    #[cfg_attr(not(test), allow(dead_code))]
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

const RECEIVED: &str = "mqtt_messages_received_total";
const PUBLISHED: &str = "mqtt_messages_published_total";
const CALLS: &str = "mqtt_handler_calls_total";
const DURATION: &str = "mqtt_handler_duration_seconds";
const RETRIES: &str = "mqtt_handler_retries_total";
const DEAD_LETTERS: &str = "mqtt_handler_dead_letters_total";
const QUEUED: &str = "mqtt_handler_queue_depth";
const INFLIGHT: &str = "mqtt_publishes_inflight";
const CONNECTED: &str = "mqtt_connected";
const CONNECTS: &str = "mqtt_connects_total";
const RECONNECTS: &str = "mqtt_reconnects_total";
const LOST: &str = "mqtt_connection_lost_total";
const STREAM_DROPPED: &str = "mqtt_stream_dropped_total";
const EVENTS_DROPPED: &str = "mqtt_events_dropped_total";
const OUTBOX_MESSAGES: &str = "mqtt_outbox_messages";
const OUTBOX_BYTES: &str = "mqtt_outbox_bytes";
const OUTBOX_AGE: &str = "mqtt_outbox_oldest_age_seconds";
const OUTBOX_STORED: &str = "mqtt_outbox_stored_total";
const OUTBOX_ACKED: &str = "mqtt_outbox_acked_total";
const OUTBOX_FAILED: &str = "mqtt_outbox_failed_total";
const OUTBOX_FULL: &str = "mqtt_outbox_full_total";

/// Every metric the library emits. `client` is the MQTT client id (one value per client in the
/// process); `route` is the route's pattern as written, `(on_message)` or `(fallback)`, so the label
/// sets stay as small as the router.
#[cfg_attr(not(any(test, feature = "metrics")), allow(dead_code))]
pub(crate) const TABLE: &[MetricDoc] = &[
    MetricDoc {
        name: RECEIVED,
        kind: Kind::Counter,
        labels: "client, qos",
        help: "Messages received from the broker.",
    },
    MetricDoc {
        name: PUBLISHED,
        kind: Kind::Counter,
        labels: "client, qos",
        help: "Publishes the broker acknowledged (QoS 0: written to the socket).",
    },
    MetricDoc {
        name: CALLS,
        kind: Kind::Counter,
        labels: "client, route, outcome",
        help: "Handler calls by outcome: handled, rejected (extraction failed), error, panic.",
    },
    MetricDoc {
        name: DURATION,
        kind: Kind::Histogram,
        labels: "client, route",
        help: "Time a handler call took, extraction included, whatever its outcome.",
    },
    MetricDoc {
        name: RETRIES,
        kind: Kind::Counter,
        labels: "client, route",
        help: "Handler runs repeated after an error or a panic (RouteOptions::retry).",
    },
    MetricDoc {
        name: DEAD_LETTERS,
        kind: Kind::Counter,
        labels: "client, route, outcome",
        help: "Dead letters (RouteOptions::dead_letter) by outcome: published (the broker acknowledged), failed (not published; the original is not acknowledged).",
    },
    MetricDoc {
        name: QUEUED,
        kind: Kind::Gauge,
        labels: "client",
        help: "Messages waiting in the handler lanes (bounded by HANDLER_CONCURRENCY x HANDLER_QUEUE).",
    },
    MetricDoc {
        name: INFLIGHT,
        kind: Kind::Gauge,
        labels: "client",
        help: "QoS 1 and 2 publishes sent and not yet acknowledged by the broker.",
    },
    MetricDoc {
        name: CONNECTED,
        kind: Kind::Gauge,
        labels: "client",
        help: "1 while connected to the broker, else 0.",
    },
    MetricDoc {
        name: CONNECTS,
        kind: Kind::Counter,
        labels: "client",
        help: "Accepted connections (CONNACK), the first one included.",
    },
    MetricDoc {
        name: RECONNECTS,
        kind: Kind::Counter,
        labels: "client",
        help: "Accepted connections after the first one.",
    },
    MetricDoc {
        name: LOST,
        kind: Kind::Counter,
        labels: "client",
        help: "Connections lost (or refused) and retried.",
    },
    MetricDoc {
        name: STREAM_DROPPED,
        kind: Kind::Counter,
        labels: "client",
        help: "Messages a slow MessageStream reader missed.",
    },
    MetricDoc {
        name: EVENTS_DROPPED,
        kind: Kind::Counter,
        labels: "client",
        help: "Callback events dropped because callbacks fell behind.",
    },
    MetricDoc {
        name: OUTBOX_MESSAGES,
        kind: Kind::Gauge,
        labels: "client",
        help: "Messages stored in the outbox and not yet acknowledged (feature `outbox`).",
    },
    MetricDoc {
        name: OUTBOX_BYTES,
        kind: Kind::Gauge,
        labels: "client",
        help: "Topic and payload bytes of those messages (bounded by OUTBOX_MAX_BYTES).",
    },
    MetricDoc {
        name: OUTBOX_AGE,
        kind: Kind::Gauge,
        labels: "client",
        help: "How long the oldest waiting outbox message has been stored (0 when none waits; measured every second).",
    },
    MetricDoc {
        name: OUTBOX_STORED,
        kind: Kind::Counter,
        labels: "client",
        help: "Durable publishes stored in the outbox.",
    },
    MetricDoc {
        name: OUTBOX_ACKED,
        kind: Kind::Counter,
        labels: "client",
        help: "Outbox messages the broker acknowledged (and that were removed).",
    },
    MetricDoc {
        name: OUTBOX_FAILED,
        kind: Kind::Counter,
        labels: "client",
        help: "Outbox messages the broker refused; they are not sent again.",
    },
    MetricDoc {
        name: OUTBOX_FULL,
        kind: Kind::Counter,
        labels: "client",
        help: "Durable publishes refused because the outbox was full (OutboxFull).",
    },
];

/// The documentation table, as `docs/metrics.md` holds it (a test keeps the two equal).
#[cfg(test)]
fn markdown() -> String {
    let mut out = String::from("| Metric | Type | Labels | Meaning |\n|---|---|---|---|\n");
    for m in TABLE {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            m.name,
            m.kind.as_str(),
            m.labels,
            m.help
        ));
    }
    out
}

#[cfg(feature = "metrics")]
use metrics::{Counter, Gauge, Histogram};

#[cfg(feature = "metrics")]
fn describe() {
    for m in TABLE {
        let unit = (m.name == DURATION).then_some(metrics::Unit::Seconds);
        match (m.kind, unit) {
            (Kind::Counter, _) => metrics::describe_counter!(m.name, m.help),
            (Kind::Gauge, _) => metrics::describe_gauge!(m.name, m.help),
            (Kind::Histogram, Some(u)) => metrics::describe_histogram!(m.name, u, m.help),
            (Kind::Histogram, None) => metrics::describe_histogram!(m.name, m.help),
        }
    }
}

#[cfg(feature = "metrics")]
fn counter(name: &'static str, labels: &[(&'static str, String)]) -> Counter {
    metrics::counter!(name, labels)
}

#[cfg(feature = "metrics")]
fn gauge(name: &'static str, labels: &[(&'static str, String)]) -> Gauge {
    metrics::gauge!(name, labels)
}

#[cfg(feature = "metrics")]
fn histogram(name: &'static str, labels: &[(&'static str, String)]) -> Histogram {
    metrics::histogram!(name, labels)
}

/// Without the `metrics` feature: handles that do nothing, so the code that bumps them is the same.
#[cfg(not(feature = "metrics"))]
mod noop {
    #[derive(Clone, Default)]
    pub struct Counter;
    impl Counter {
        pub fn increment(&self, _: u64) {}
    }
    #[derive(Clone, Default)]
    pub struct Gauge;
    impl Gauge {
        pub fn set(&self, _: f64) {}
        pub fn increment(&self, _: f64) {}
        pub fn decrement(&self, _: f64) {}
    }
    #[derive(Clone, Default)]
    pub struct Histogram;
    impl Histogram {
        pub fn record(&self, _: f64) {}
    }
}
#[cfg(not(feature = "metrics"))]
use noop::{Counter, Gauge, Histogram};

#[cfg(not(feature = "metrics"))]
fn describe() {}
#[cfg(not(feature = "metrics"))]
fn counter(_: &'static str, _: &[(&'static str, String)]) -> Counter {
    Counter
}
#[cfg(not(feature = "metrics"))]
fn gauge(_: &'static str, _: &[(&'static str, String)]) -> Gauge {
    Gauge
}
#[cfg(not(feature = "metrics"))]
fn histogram(_: &'static str, _: &[(&'static str, String)]) -> Histogram {
    Histogram
}

/// The client-wide handles.
pub(crate) struct Meters {
    client: String,
    received: [Counter; 3],
    published: [Counter; 3],
    pub queued: Gauge,
    pub inflight: Gauge,
    pub connected: Gauge,
    pub connects: Counter,
    pub reconnects: Counter,
    pub lost: Counter,
    pub stream_dropped: Counter,
    pub events_dropped: Counter,
}

impl Meters {
    pub fn new(client: &str) -> Self {
        describe();
        let c = || vec![("client", client.to_string())];
        let by_qos = |name| {
            [0u8, 1, 2].map(|q| {
                counter(
                    name,
                    &[("client", client.to_string()), ("qos", q.to_string())],
                )
            })
        };
        Meters {
            client: client.to_string(),
            received: by_qos(RECEIVED),
            published: by_qos(PUBLISHED),
            queued: gauge(QUEUED, &c()),
            inflight: gauge(INFLIGHT, &c()),
            connected: gauge(CONNECTED, &c()),
            connects: counter(CONNECTS, &c()),
            reconnects: counter(RECONNECTS, &c()),
            lost: counter(LOST, &c()),
            stream_dropped: counter(STREAM_DROPPED, &c()),
            events_dropped: counter(EVENTS_DROPPED, &c()),
        }
    }

    pub fn received(&self, qos: QoS) -> &Counter {
        &self.received[qos as usize]
    }

    pub fn published(&self, qos: QoS) -> &Counter {
        &self.published[qos as usize]
    }

    /// The outbox's handles.
    #[cfg_attr(not(feature = "outbox"), allow(dead_code))]
    pub fn outbox(&self) -> OutboxMeters {
        let c = || vec![("client", self.client.clone())];
        OutboxMeters {
            messages: gauge(OUTBOX_MESSAGES, &c()),
            bytes: gauge(OUTBOX_BYTES, &c()),
            oldest_age: gauge(OUTBOX_AGE, &c()),
            stored: counter(OUTBOX_STORED, &c()),
            acked: counter(OUTBOX_ACKED, &c()),
            failed: counter(OUTBOX_FAILED, &c()),
            full: counter(OUTBOX_FULL, &c()),
        }
    }

    /// The handles of one route, labelled with its pattern.
    pub fn route(&self, route: &str) -> RouteMeters {
        let l = |outcome: &'static str| {
            counter(
                CALLS,
                &[
                    ("client", self.client.clone()),
                    ("route", route.to_string()),
                    ("outcome", outcome.to_string()),
                ],
            )
        };
        let dead = |outcome: &'static str| {
            counter(
                DEAD_LETTERS,
                &[
                    ("client", self.client.clone()),
                    ("route", route.to_string()),
                    ("outcome", outcome.to_string()),
                ],
            )
        };
        RouteMeters {
            handled: l("handled"),
            rejected: l("rejected"),
            error: l("error"),
            panic: l("panic"),
            retried: counter(
                RETRIES,
                &[
                    ("client", self.client.clone()),
                    ("route", route.to_string()),
                ],
            ),
            dead_lettered: dead("published"),
            dead_letter_failed: dead("failed"),
            duration: histogram(
                DURATION,
                &[
                    ("client", self.client.clone()),
                    ("route", route.to_string()),
                ],
            ),
        }
    }
}

/// The outbox's handles (registered only when the client has an outbox).
#[derive(Clone)]
#[cfg_attr(not(feature = "outbox"), allow(dead_code))]
pub(crate) struct OutboxMeters {
    pub messages: Gauge,
    pub bytes: Gauge,
    pub oldest_age: Gauge,
    pub stored: Counter,
    pub acked: Counter,
    pub failed: Counter,
    pub full: Counter,
}

/// The handles of one route (cloned into every lane: clones share the same series).
#[derive(Clone)]
pub(crate) struct RouteMeters {
    pub handled: Counter,
    pub rejected: Counter,
    pub error: Counter,
    pub panic: Counter,
    pub retried: Counter,
    pub dead_lettered: Counter,
    pub dead_letter_failed: Counter,
    pub duration: Histogram,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_docs_table_is_current() {
        crate::generated_docs::assert_current("metrics.md", &super::markdown());
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        for m in super::TABLE {
            assert!(m.name.starts_with("mqtt_"), "{}", m.name);
            assert_eq!(
                m.name.ends_with("_total"),
                m.kind == super::Kind::Counter,
                "{}: counters and only counters end in _total",
                m.name
            );
        }
    }
}
