//! Counters of one client: bumped by the tasks, read as a [`Stats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::meters::{Meters, RouteMeters};
use crate::message::QoS;

/// Counters of one client, for metrics.
///
/// ```
/// # async fn demo(mqtt: axum_mqtt::Mqtt) {
/// let s = mqtt.stats();
/// println!("{} received, {} rejected", s.received, s.rejected);
/// # }
/// ```
///
/// New counters may be added: the struct is `#[non_exhaustive]`, read its fields.
///
/// # Metrics
///
/// With the `metrics` feature (on by default) the client also emits these measurements through the
/// [`metrics`](https://docs.rs/metrics) facade, so the exporter an application installed picks them
/// up (the app uses `metrics-exporter-prometheus`). Handles are registered when the client starts:
/// install the recorder before [`MqttBuilder::start`](crate::MqttBuilder::start).
///
#[doc = include_str!("../docs/metrics.md")]
///
/// ```compile_fail,E0639
/// let s = axum_mqtt::Stats { received: 0, handled: 0, rejected: 0, handler_errors: 0,
///     handler_panics: 0, handler_retries: 0, dead_lettered: 0, dead_letter_failures: 0,
///     stream_dropped: 0, published: 0, events_dropped: 0 };
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Messages received from the broker.
    pub received: u64,
    /// Handler calls that returned `Ok`.
    pub handled: u64,
    /// Messages whose extraction failed (see [`Rejection`](crate::extract::Rejection)).
    pub rejected: u64,
    /// Handler calls that returned `Err`.
    pub handler_errors: u64,
    /// Handler calls that panicked (the client keeps running).
    pub handler_panics: u64,
    /// Handler runs repeated after an error or a panic
    /// ([`RouteOptions::retry`](crate::router::RouteOptions::retry)); each run is also counted
    /// as handled, an error or a panic.
    pub handler_retries: u64,
    /// Messages published to their route's dead-letter topic and acknowledged by the broker
    /// ([`RouteOptions::dead_letter`](crate::router::RouteOptions::dead_letter)).
    pub dead_lettered: u64,
    /// Messages that were to be dead-lettered but were not (refused, shut down, too large, backlog
    /// full, or a topic that would loop); their originals are not acknowledged.
    pub dead_letter_failures: u64,
    /// Messages a slow [`MessageStream`](crate::MessageStream) reader missed.
    pub stream_dropped: u64,
    /// Publishes acknowledged by the broker.
    pub published: u64,
    /// Callback events dropped because callbacks fell behind.
    pub events_dropped: u64,
}

/// The counts behind [`Stats`], and the same events through the `metrics` facade.
pub(crate) struct Counters {
    received: AtomicU64,
    handled: AtomicU64,
    rejected: AtomicU64,
    handler_errors: AtomicU64,
    handler_panics: AtomicU64,
    handler_retries: AtomicU64,
    dead_lettered: AtomicU64,
    dead_letter_failures: AtomicU64,
    stream_dropped: AtomicU64,
    published: AtomicU64,
    events_dropped: AtomicU64,
    pub meters: Meters,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// How one handler call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallOutcome {
    Handled,
    Rejected,
    Error,
    Panic,
}

impl Counters {
    pub fn new(client_id: &str) -> Self {
        Counters {
            received: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            handler_errors: AtomicU64::new(0),
            handler_panics: AtomicU64::new(0),
            handler_retries: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            dead_letter_failures: AtomicU64::new(0),
            stream_dropped: AtomicU64::new(0),
            published: AtomicU64::new(0),
            events_dropped: AtomicU64::new(0),
            meters: Meters::new(client_id),
        }
    }

    pub fn received(&self, qos: QoS) {
        bump(&self.received);
        self.meters.received(qos).increment(1);
    }

    pub fn published(&self, qos: QoS) {
        bump(&self.published);
        self.meters.published(qos).increment(1);
    }

    pub fn stream_dropped(&self) {
        bump(&self.stream_dropped);
        self.meters.stream_dropped.increment(1);
    }

    pub fn events_dropped(&self) {
        bump(&self.events_dropped);
        self.meters.events_dropped.increment(1);
    }

    /// One handler call of a route, and how long it took.
    pub fn call(&self, route: &RouteMeters, outcome: CallOutcome, took: Duration) {
        let (total, meter) = match outcome {
            CallOutcome::Handled => (&self.handled, &route.handled),
            CallOutcome::Rejected => (&self.rejected, &route.rejected),
            CallOutcome::Error => (&self.handler_errors, &route.error),
            CallOutcome::Panic => (&self.handler_panics, &route.panic),
        };
        bump(total);
        meter.increment(1);
        route.duration.record(took.as_secs_f64());
    }

    /// A failed handler run is about to be repeated.
    pub fn retried(&self, route: &RouteMeters) {
        bump(&self.handler_retries);
        route.retried.increment(1);
    }

    /// A dead letter was acknowledged by the broker (`true`) or could not be published.
    pub fn dead_letter(&self, route: &RouteMeters, published: bool) {
        if published {
            bump(&self.dead_lettered);
            route.dead_lettered.increment(1);
        } else {
            bump(&self.dead_letter_failures);
            route.dead_letter_failed.increment(1);
        }
    }

    /// A rejection handler panicked (counted with the handler panics).
    pub fn rejection_handler_panicked(&self, route: &RouteMeters) {
        bump(&self.handler_panics);
        route.panic.increment(1);
    }

    /// A snapshot of every counter.
    pub fn snapshot(&self) -> Stats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            received: g(&self.received),
            handled: g(&self.handled),
            rejected: g(&self.rejected),
            handler_errors: g(&self.handler_errors),
            handler_panics: g(&self.handler_panics),
            handler_retries: g(&self.handler_retries),
            dead_lettered: g(&self.dead_lettered),
            dead_letter_failures: g(&self.dead_letter_failures),
            stream_dropped: g(&self.stream_dropped),
            published: g(&self.published),
            events_dropped: g(&self.events_dropped),
        }
    }
}
