//! What the handles and the background tasks share: the client's parts, each owning its data.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::ack_after::AckAfter;
use super::claim::ClientIdClaim;
use super::events::ConnectionState;
use super::registry::Registry;
use super::requests::{Requests, Stop};
use super::slot::Streams;
use super::stats::Counters;
use crate::config::MqttConfig;

/// State shared by the handles and the connection task.
pub(crate) struct Shared {
    pub config: MqttConfig,
    /// The way to the connection task: permits, the protocol core, stopping.
    pub requests: Arc<Requests>,
    /// Acks sent once handlers succeeded.
    pub ack_after: AckAfter,
    /// What to subscribe to (again after a fresh session), and who holds each filter.
    pub registry: Mutex<Registry>,
    /// The connection's status, written by the connection task only.
    pub state: watch::Sender<ConnectionState>,
    /// The streams' ends ([`Mqtt::stream`](crate::Mqtt::stream)).
    pub streams: Streams,
    pub counters: Counters,
    /// The durable outbox, when configured.
    #[cfg(feature = "outbox")]
    pub outbox: Option<super::outbox::Outbox>,
}

/// Owned by the handles: dropping the last one stops the client.
pub(crate) struct Inner {
    pub shared: Arc<Shared>,
    pub claim: Arc<ClientIdClaim>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Last handle gone: leave cleanly (DISCONNECT, so the will is not published) and end the task.
        self.shared.requests.begin_stop(Stop::Dropped);
        self.shared.requests.disconnect();
        self.claim.release();
    }
}
