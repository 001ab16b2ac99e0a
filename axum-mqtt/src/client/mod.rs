//! The client: one background task owns the connection; [`Mqtt`] handles talk to it.
//!
//! * `publish(...).await` resolves when the broker acknowledged (PUBACK for QoS 1, PUBCOMP for
//!   QoS 2; for QoS 0 when written to the socket), or fails with a typed [`Error`].
//! * Subscriptions live in a registry and are restored after every reconnect on which the broker
//!   lost the session; publishes caught by a disconnect are re-sent.
//! * Reconnects use capped exponential backoff with jitter (`RECONNECT_MIN_MS`..`RECONNECT_MAX_MS`),
//!   each to the next broker of a failover list (round robin).
//!
//! **Backpressure.** At most `MAX_PENDING` publish/subscribe requests wait for the broker; the next
//! `publish` waits for room (so a slow broker slows producers instead of growing memory). Incoming
//! messages go to `HANDLER_CONCURRENCY` lanes of `HANDLER_QUEUE` messages each (one lane per topic
//! hash, which keeps order per topic); when a lane is full the client stops reading from the broker,
//! and TCP backpressure reaches the broker. A stream ([`Mqtt::stream`]) that is not read fast enough
//! skips messages (counted in [`Stats::stream_dropped`]) instead of slowing anyone.

pub(crate) mod ack_after;
pub(crate) mod callbacks;
pub(crate) mod claim;
pub(crate) mod connection;
pub(crate) mod core;
pub(crate) mod deadlines;
pub(crate) mod events;
mod failover;
pub(crate) mod handle;
pub(crate) mod link;
mod lock;
pub(crate) mod meters;
#[cfg(feature = "outbox")]
pub(crate) mod outbox;
pub(crate) mod publish;
pub(crate) mod registry;
pub(crate) mod requests;
mod retained;
pub(crate) mod shared;
pub(crate) mod slot;
pub(crate) mod stats;
pub(crate) mod stream;
#[cfg(feature = "tls")]
pub(crate) mod tls;
#[cfg(not(feature = "tls"))]
#[path = "tls_off.rs"]
pub(crate) mod tls;

pub use events::{
    Connack, ConnectionState, Disconnected, Published, Status, Subscribed, Unsubscribed,
};
pub use handle::Mqtt;
#[cfg(feature = "outbox")]
pub use outbox::{Delivery, Outbox, OutboxDepth, OutboxId, OutboxStatus};
pub use publish::Publish;
pub use stats::Stats;
pub use stream::MessageStream;
