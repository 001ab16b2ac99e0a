//! Counters of one client: bumped by the tasks, read as a [`Stats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

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
/// ```compile_fail,E0639
/// let s = axum_mqtt::Stats { received: 0, handled: 0, rejected: 0, handler_errors: 0,
///     handler_panics: 0, stream_dropped: 0, published: 0, events_dropped: 0 };
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
    /// Messages a slow [`MessageStream`](crate::MessageStream) reader missed.
    pub stream_dropped: u64,
    /// Publishes acknowledged by the broker.
    pub published: u64,
    /// Callback events dropped because callbacks fell behind.
    pub events_dropped: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub received: AtomicU64,
    pub handled: AtomicU64,
    pub rejected: AtomicU64,
    pub handler_errors: AtomicU64,
    pub handler_panics: AtomicU64,
    pub stream_dropped: AtomicU64,
    pub published: AtomicU64,
    pub events_dropped: AtomicU64,
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

impl Counters {
    /// A snapshot of every counter.
    pub fn snapshot(&self) -> Stats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            received: g(&self.received),
            handled: g(&self.handled),
            rejected: g(&self.rejected),
            handler_errors: g(&self.handler_errors),
            handler_panics: g(&self.handler_panics),
            stream_dropped: g(&self.stream_dropped),
            published: g(&self.published),
            events_dropped: g(&self.events_dropped),
        }
    }
}
