//! [`RouteOptions`]: per-route QoS and acknowledgement mode.

use crate::message::QoS;

/// Per-route settings for [`Router::route_with`](crate::Router::route_with).
///
/// ```
/// use axum_mqtt::{QoS, router::RouteOptions};
/// let opts = RouteOptions::new().qos(QoS::ExactlyOnce).ack_after_handling();
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RouteOptions {
    pub(crate) qos: QoS,
    pub(crate) ack_after: bool,
}

impl Default for RouteOptions {
    fn default() -> Self {
        RouteOptions {
            qos: QoS::AtLeastOnce,
            ack_after: false,
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
}
