//! The durable outbox (feature `outbox`): QoS 1/2 publishes stored on disk before they are sent,
//! re-sent after reconnects and restarts, removed once the broker acknowledged them.
//!
//! * [`Publish::durable`](crate::Publish::durable) stores the message (the commit is on disk when
//!   it returns), wakes the sender task and waits for the broker's ack. It answers
//!   [`Delivery::Acked`] when the ack came in time, and [`Delivery::Queued`] as soon as the client is
//!   not connected, loses the connection, or the publish's timeout runs out: the message is safe on
//!   disk and goes out when the broker is back, also after the process restarted.
//! * One sender task takes the stored messages in the order they were stored (so per topic, and
//!   across topics) and publishes them with at most `MAX_INFLIGHT` unacknowledged at once.
//! * The outbox is bounded by `OUTBOX_MAX_MESSAGES` and `OUTBOX_MAX_BYTES`; a durable publish that
//!   does not fit fails with [`Error::OutboxFull`] and nothing already stored is touched.
//!
//! **Guarantees.** QoS 1: at least once, across broker restarts, reconnects and app restarts (a
//! message in flight when the app died is sent again: duplicates are possible, losses are not).
//! QoS 2: exactly once while the app process lives; across an app restart the broker's session
//! state for an unfinished QoS 2 exchange cannot be resumed (the packet ids lived in the dead
//! process), so such a message is sent again as a new publish: at least once.

mod sender;
mod store;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch, Notify};

use super::core::packet::OutPublish;
use super::core::waiters::PubReply;
use super::events::{ConnectionState, Published, Status};
use super::lock::lock;
use super::meters::OutboxMeters;
use crate::config::OutboxConfig;
use crate::error::{OutboxCause, OutboxError, OutboxLimit};
use crate::message::QoS;
use crate::Error;

pub(crate) use sender::run as run_sender;
use store::{RowState, Store};

/// Finished ids [`Outbox::status`] still answers for: the newest this many.
const KEEP_FINISHED: usize = 10_000;

/// The id of a message stored in the outbox. Never reused by one outbox file.
///
/// ```
/// let id: axum_mqtt::OutboxId = "42".parse().unwrap();
/// assert_eq!(id.to_string(), "42");
/// assert!("x".parse::<axum_mqtt::OutboxId>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutboxId(u64);

impl OutboxId {
    /// The number behind the id.
    ///
    /// ```
    /// assert_eq!("7".parse::<axum_mqtt::OutboxId>().unwrap().get(), 7);
    /// ```
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for OutboxId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for OutboxId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(OutboxId)
    }
}

/// How a durable publish ended: acknowledged, or stored and not yet acknowledged.
///
/// ```
/// use axum_mqtt::{Delivery, Published, QoS};
/// fn describe(d: &Delivery) -> String {
///     match d {
///         Delivery::Acked(p) => format!("acked as {}", p.mid),
///         Delivery::Queued { id } => format!("queued as {id}"),
///     }
/// }
/// # let _ = describe;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The broker acknowledged it within the wait.
    Acked(Published),
    /// Stored on disk; it goes out when the broker can be reached (see [`Outbox::status`]).
    Queued {
        /// Ask [`Outbox::status`] about it later.
        id: OutboxId,
    },
}

/// What the outbox knows about a stored message.
///
/// ```
/// use axum_mqtt::OutboxStatus;
/// assert_ne!(OutboxStatus::Queued, OutboxStatus::Acked { mid: 1 });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutboxStatus {
    /// Stored, not yet acknowledged.
    Queued,
    /// The broker acknowledged it (packet id `mid`).
    Acked {
        /// Packet id of the publish that was acknowledged.
        mid: u16,
    },
    /// The broker refused it (e.g. not authorized); it is not sent again.
    Failed {
        /// The broker's reason.
        reason: String,
    },
}

/// The outbox of a client started with an [`OutboxConfig`]: [`Mqtt::outbox`](crate::Mqtt::outbox).
///
/// ```no_run
/// # async fn demo(mqtt: axum_mqtt::Mqtt) -> Result<(), axum_mqtt::Error> {
/// use axum_mqtt::{Delivery, OutboxStatus, QoS};
/// let outbox = mqtt.outbox().expect("started with MQTT_OUTBOX_PATH");
/// if let Delivery::Queued { id } = mqtt.publish("a", "b").qos(QoS::AtLeastOnce).durable().await? {
///     assert_ne!(outbox.status(id).await?, None);
/// }
/// println!("{} messages waiting", outbox.depth().messages);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("path", &self.inner.config.path)
            .field("depth", &self.depth())
            .finish()
    }
}

/// Messages and bytes waiting in the outbox.
///
/// ```
/// let d = axum_mqtt::OutboxDepth::default();
/// assert_eq!((d.messages, d.bytes), (0, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct OutboxDepth {
    /// Stored messages not yet acknowledged.
    pub messages: u64,
    /// Their topic and payload bytes.
    pub bytes: u64,
}

struct Inner {
    config: OutboxConfig,
    /// Durable publishes waiting to be stored: whoever commits next stores them all in one
    /// transaction (group commit: one fsync for every concurrent caller, not one each).
    incoming: Mutex<Vec<Incoming>>,
    state: Mutex<State>,
    wake: Notify,
    meters: OutboxMeters,
}

/// Where a caller learns its message's id, and then waits for the broker's ack.
type Stored = Result<(u64, oneshot::Receiver<Result<Published, Error>>), Error>;

/// A message to store, and where its caller waits for the id (and then the ack).
struct Incoming {
    msg: OutPublish,
    stored: oneshot::Sender<Stored>,
}

struct State {
    store: Store,
    /// Callers of `durable` still waiting for their message's ack.
    waiters: HashMap<u64, PubReply>,
}

impl Outbox {
    /// Opens (or creates) the file and checks it (a damaged file is an [`OutboxError`]).
    pub(crate) fn open(config: &OutboxConfig, meters: OutboxMeters) -> Result<Outbox, OutboxError> {
        let store = Store::open(&config.path)?;
        let depth = store.depth;
        if depth.messages > 0 {
            tracing::info!(
                path = %config.path.display(),
                messages = depth.messages,
                bytes = depth.bytes,
                "outbox holds messages from an earlier run; they are sent once connected"
            );
        }
        meters.messages.set(depth.messages as f64);
        meters.bytes.set(depth.bytes as f64);
        Ok(Outbox {
            inner: Arc::new(Inner {
                config: config.clone(),
                incoming: Mutex::new(Vec::new()),
                state: Mutex::new(State {
                    store,
                    waiters: HashMap::new(),
                }),
                wake: Notify::new(),
                meters,
            }),
        })
    }

    /// Messages and bytes waiting.
    ///
    /// ```no_run
    /// # fn demo(outbox: axum_mqtt::Outbox) {
    /// let depth = outbox.depth();
    /// println!("{} messages, {} bytes", depth.messages, depth.bytes);
    /// # }
    /// ```
    pub fn depth(&self) -> OutboxDepth {
        let d = lock(&self.inner.state).store.depth;
        OutboxDepth {
            messages: d.messages,
            bytes: d.bytes,
        }
    }

    /// The file.
    ///
    /// ```no_run
    /// # fn demo(outbox: axum_mqtt::Outbox) {
    /// println!("outbox at {}", outbox.path().display());
    /// # }
    /// ```
    pub fn path(&self) -> &Path {
        &self.inner.config.path
    }

    /// What became of a stored message; `None` for an id this file never had, or one finished so
    /// long ago that it was forgotten (the newest 10 000 finished ids are kept).
    ///
    /// ```no_run
    /// # async fn demo(outbox: axum_mqtt::Outbox) -> Result<(), axum_mqtt::Error> {
    /// let id = "1".parse().unwrap();
    /// println!("{:?}", outbox.status(id).await?);
    /// # Ok(()) }
    /// ```
    pub async fn status(&self, id: OutboxId) -> Result<Option<OutboxStatus>, Error> {
        let state = self
            .blocking(move |s| s.store.status(id.0))
            .await?
            .map(|r| match r {
                RowState::Queued => OutboxStatus::Queued,
                RowState::Acked { mid } => OutboxStatus::Acked { mid },
                RowState::Failed { reason } => OutboxStatus::Failed { reason },
            });
        Ok(state)
    }

    /// How long the oldest waiting message has been stored; `None` when none waits.
    ///
    /// ```no_run
    /// # async fn demo(outbox: axum_mqtt::Outbox) -> Result<(), axum_mqtt::Error> {
    /// if let Some(age) = outbox.oldest_age().await? {
    ///     println!("oldest message waits for {age:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn oldest_age(&self) -> Result<Option<Duration>, Error> {
        let oldest = self.blocking(|s| s.store.oldest_ms()).await?;
        Ok(oldest.map(|ms| Duration::from_millis((store::now_ms() - ms).max(0) as u64)))
    }

    /// Runs `f` on the file from the blocking pool (SQLite calls block; a commit waits for fsync).
    async fn blocking<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut State) -> Result<T, Error> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&inner.state)))
            .await
            .map_err(|e| self.error(OutboxCause::Task(Arc::new(e))))?
    }

    /// This file's error for `cause`.
    fn error(&self, cause: OutboxCause) -> Error {
        OutboxError {
            path: self.inner.config.path.clone(),
            cause,
        }
        .into()
    }

    /// `Publish::durable`: store, wake the sender, wait for the ack as long as that makes sense
    /// (while `state` says connected).
    pub(crate) async fn publish(
        &self,
        mut state: watch::Receiver<ConnectionState>,
        msg: OutPublish,
        timeout: Option<Duration>,
    ) -> Result<Delivery, Error> {
        if msg.qos == QoS::AtMostOnce {
            return Err(Error::DurableNeedsQos);
        }
        let (stored, rx) = oneshot::channel();
        lock(&self.inner.incoming).push(Incoming { msg, stored });
        let inner = self.inner.clone();
        self.blocking(move |s| {
            commit(&inner, s);
            Ok(())
        })
        .await?;
        let (id, rx) = rx.await.map_err(|_| self.error(OutboxCause::NotStored))??;
        self.inner.wake.notify_one();
        let queued = Delivery::Queued { id: OutboxId(id) };
        if state.borrow_and_update().status != Status::Connected {
            return Ok(queued);
        }
        let wait = async move {
            let mut rx = rx;
            loop {
                tokio::select! {
                    r = &mut rx => return r.ok(),
                    changed = state.changed() => {
                        if changed.is_err() || state.borrow().status != Status::Connected {
                            return None;
                        }
                    }
                }
            }
        };
        let answer = match timeout {
            Some(d) => tokio::time::timeout(d, wait).await.ok().flatten(),
            None => wait.await,
        };
        match answer {
            Some(Ok(p)) => Ok(Delivery::Acked(p)),
            // Closed, or no answer yet: the message is on disk and goes out later.
            Some(Err(Error::Closed)) | None => Ok(queued),
            // Refused for good (the row is marked failed): it will not go out.
            Some(Err(e)) => Err(e),
        }
    }
}

/// Stores every waiting message in one transaction and answers their callers. Runs with the state
/// locked; a caller whose message an earlier commit already took finds nothing to do.
fn commit(inner: &Inner, s: &mut State) {
    let batch = std::mem::take(&mut *lock(&inner.incoming));
    if batch.is_empty() {
        return;
    }
    let (max_messages, max_bytes) = (inner.config.max_messages, inner.config.max_bytes);
    let meters = &inner.meters;
    // The limits, in arrival order: what does not fit is refused, the rest is stored.
    let mut depth = s.store.depth;
    let mut fits = Vec::with_capacity(batch.len());
    let mut msgs = Vec::with_capacity(batch.len());
    for item in batch {
        let size = store::row_bytes(&item.msg);
        let full = if depth.messages >= max_messages {
            Some(OutboxLimit::Messages {
                held: depth.messages,
                max: max_messages,
            })
        } else if depth.bytes + size > max_bytes {
            Some(OutboxLimit::Bytes {
                held: depth.bytes,
                size,
                max: max_bytes,
            })
        } else {
            None
        };
        match full {
            Some(limit) => {
                meters.full.increment(1);
                let _ = item.stored.send(Err(Error::OutboxFull(limit)));
            }
            None => {
                depth.messages += 1;
                depth.bytes += size;
                msgs.push(item.msg);
                fits.push(item.stored);
            }
        }
    }
    if msgs.is_empty() {
        return;
    }
    match s.store.insert_all(&msgs) {
        Ok(ids) => {
            meters.stored.increment(ids.len() as u64);
            meters.messages.set(s.store.depth.messages as f64);
            meters.bytes.set(s.store.depth.bytes as f64);
            for (id, stored) in ids.into_iter().zip(fits) {
                let (tx, rx) = oneshot::channel();
                s.waiters.insert(id, tx);
                let _ = stored.send(Ok((id, rx)));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot store durable publishes");
            for stored in fits {
                let _ = stored.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_and_parse_as_numbers() {
        let id: OutboxId = "18446744073709551615".parse().unwrap();
        assert_eq!(id.get(), u64::MAX);
        assert!("-1".parse::<OutboxId>().is_err());
    }
}
