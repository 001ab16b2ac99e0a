//! [`RouteOptions`]: per-route QoS, acknowledgement mode, retries and dead-letter topic.

use std::time::Duration;

use super::dead_letter_topic::DeadLetterTopic;
use crate::error::RouterError;
use crate::message::QoS;

/// Per-route settings for [`Router::route_with`](crate::Router::route_with).
///
/// ```
/// use axum_mqtt::{QoS, router::RouteOptions};
/// let opts = RouteOptions::new().qos(QoS::ExactlyOnce).ack_after_handling();
/// ```
#[derive(Debug, Clone)]
pub struct RouteOptions {
    pub(crate) qos: QoS,
    pub(crate) ack_after: bool,
    pub(crate) retry: Retry,
    /// Checked when set; an error is reported when the route is added.
    pub(crate) dead_letter: Option<Result<DeadLetterTopic, RouterError>>,
}

/// How often a failing handler runs, and how long it waits in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retry {
    /// Runs in all, the first one included (at least 1).
    pub attempts: u32,
    /// The wait before the second run; it doubles for each later one.
    pub backoff: Duration,
}

impl Retry {
    /// The wait before run number `next` (2 for the first retry), capped at 2^16 times the backoff.
    pub fn delay(&self, next: u32) -> Duration {
        self.backoff
            .saturating_mul(1u32 << next.saturating_sub(2).min(16))
    }
}

impl Default for RouteOptions {
    fn default() -> Self {
        RouteOptions {
            qos: QoS::AtLeastOnce,
            ack_after: false,
            retry: Retry {
                attempts: 1,
                backoff: Duration::ZERO,
            },
            dead_letter: None,
        }
    }
}

impl RouteOptions {
    /// QoS 1, acknowledged on receipt.
    pub fn new() -> Self {
        Self::default()
    }

    /// The subscription's QoS.
    pub fn qos(mut self, qos: QoS) -> Self {
        self.qos = qos;
        self
    }

    /// Acknowledge QoS 1/2 messages only after the handler succeeded (see the crate docs on
    /// acknowledgement after handling).
    pub fn ack_after_handling(mut self) -> Self {
        self.ack_after = true;
        self
    }

    /// Runs a handler that returns an error or panics again, up to `attempts` runs in all (the
    /// first one included; 0 counts as 1), waiting `backoff` before the second run and twice as
    /// long before each later one. A rejection (the payload could not be extracted) is not retried:
    /// it would fail the same way.
    ///
    /// **Order.** The retries run in the message's lane: later messages of the same topic (and of
    /// the topics that share its lane, see `HANDLER_CONCURRENCY`) wait until the message succeeded
    /// or ran out of attempts, so per-topic order holds; other lanes go on. With
    /// [`ack_after_handling`](Self::ack_after_handling) the message is acknowledged once, after the
    /// run that succeeded; after the last failed run it is left unacknowledged as before, or
    /// published to the [`dead_letter`](Self::dead_letter) topic.
    ///
    /// ```
    /// use std::time::Duration;
    /// use axum_mqtt::router::RouteOptions;
    /// // At most 3 runs: now, after 100 ms, after another 200 ms.
    /// let opts = RouteOptions::new().retry(3, Duration::from_millis(100)).ack_after_handling();
    /// ```
    pub fn retry(mut self, attempts: u32, backoff: Duration) -> Self {
        self.retry = Retry {
            attempts: attempts.max(1),
            backoff,
        };
        self
    }

    #[doc = include_str!("../docs/dead_letter.md")]
    pub fn dead_letter(mut self, template: &str) -> Self {
        self.dead_letter = Some(DeadLetterTopic::parse(template));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_the_second_run() {
        let r = RouteOptions::new()
            .retry(4, Duration::from_millis(10))
            .retry;
        let waits: Vec<u128> = (2..=4).map(|n| r.delay(n).as_millis()).collect();
        assert_eq!(waits, [10, 20, 40]);
        assert_eq!(
            RouteOptions::new().retry(0, Duration::ZERO).retry.attempts,
            1
        );
        assert!(r.delay(u32::MAX) <= Duration::from_millis(10 << 16));
    }
}
