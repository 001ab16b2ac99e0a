//! What to send after a CONNACK: the pure decision under the connection task.
//!
//! When a connection is lost, rumqttc moves the lost connection's in-flight publishes and every
//! request still in its channel into its replay queue; the connection task takes that queue
//! ("stranded" requests). On the next CONNACK, [`reconcile`] decides, request by request, what goes
//! out again and keeps the ack [`Book`] in step with it, so every caller is still answered by the
//! ack of its own request:
//!
//! * **Fresh session** (the broker forgot us) or the **first connect**: one SUBSCRIBE restores every
//!   subscription in the registry; callers whose own SUBSCRIBE was caught by the disconnect are
//!   answered from it.
//! * **Fresh session**: publishes in flight are re-sent as new ones; a QoS 2 publish the broker had
//!   already received (PUBREC) fails with [`Error::SessionLost`] instead of being duplicated.
//!   UNSUBSCRIBEs succeed at once (a new session has nothing to remove); PUBRELs and acks of
//!   incoming messages mean nothing to the new session and are dropped.
//! * **Resumed session**: everything is replayed as it was (publishes keep their packet id, DUP),
//!   and SUBSCRIBE/UNSUBSCRIBE requests that got no answer are sent again.
//!
//! The book's invariant, which every case keeps: for each request kind, the waiters queued in the
//! book are, in order, the callers of the not-yet-written requests of that kind.
//!
//! Requests are generic ([`Replayable`]) so the tables in the tests run without rumqttc or a broker.

use super::book::Book;
use super::waiters::SubWaiter;
use crate::error::Error;
use crate::message::QoS;

/// What a queued request is, as far as the ack bookkeeping cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReqKind {
    /// A publish; packet id 0 when it was never written.
    Publish {
        pkid: u16,
    },
    /// The PUBREL of one of our QoS 2 publishes.
    PubRel,
    Subscribe,
    Unsubscribe,
    /// A PUBACK/PUBREC/PUBCOMP for a message we received.
    IncomingAck,
    Other,
}

/// A request in rumqttc's replay queue, whichever the protocol version.
pub(crate) trait Replayable {
    fn kind(&self) -> ReqKind;
    /// Makes a publish that was in flight in a lost session a new one (fresh packet id, no DUP).
    fn renew_publish(&mut self);
}

/// The CONNACK that ends a reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Connack {
    /// The first CONNACK of this client.
    pub first: bool,
    pub session_present: bool,
}

/// One request to queue, in order, ahead of rumqttc's request channel.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outgoing<R> {
    /// A stranded request, sent again (renewed or as it was).
    Replay(R),
    /// A SUBSCRIBE to build (restoring every subscription, or re-sending an unanswered one).
    Subscribe(Vec<(String, QoS)>),
    /// An UNSUBSCRIBE to build (re-sending an unanswered one).
    Unsubscribe(String),
}

/// Decides what to send after `connack` and reorders `book` to match (see the module docs).
///
/// `subscriptions` is every subscription in force (the registry), restored on a fresh session.
/// Waiters that can no longer be answered by the broker are answered here.
pub(super) fn reconcile<R: Replayable>(
    stranded: Vec<R>,
    book: &mut Book,
    subscriptions: Vec<(String, QoS)>,
    connack: Connack,
) -> Vec<Outgoing<R>> {
    let fresh = !connack.session_present;
    let mut out = Vec::new();
    let restore = fresh || connack.first;
    // In-flight waiters in packet id order, so a resumed session re-sends them in a stable order.
    let mut inflight_subs = book.subs.take_inflight();
    let mut inflight_unsubs = book.unsubs.take_inflight();
    let count = |k: ReqKind| stranded.iter().filter(|r| r.kind() == k).count();
    let queued_subs: Vec<SubWaiter> = (0..count(ReqKind::Subscribe))
        .filter_map(|_| book.subs.queued.pop_front())
        .collect();
    let queued_unsubs: Vec<_> = (0..count(ReqKind::Unsubscribe))
        .filter_map(|_| book.unsubs.queued.pop_front())
        .collect();
    let mut front_subs = Vec::new();
    let mut front_unsubs = Vec::new();
    if restore {
        let attached: Vec<SubWaiter> = queued_subs
            .into_iter()
            .chain(std::mem::take(&mut inflight_subs))
            .collect();
        if subscriptions.is_empty() {
            for a in attached {
                a.finish(Err(Error::Unsubscribed));
            }
        } else {
            tracing::debug!(count = subscriptions.len(), "restoring subscriptions");
            out.push(Outgoing::Subscribe(subscriptions.clone()));
            front_subs.push(SubWaiter::restore(subscriptions, attached));
        }
    } else {
        front_subs.extend(queued_subs);
    }
    if fresh {
        // A new session has no subscriptions to remove.
        for w in queued_unsubs
            .into_iter()
            .chain(std::mem::take(&mut inflight_unsubs))
        {
            w.finish(Ok(()));
        }
    } else {
        front_unsubs.extend(queued_unsubs);
    }
    let mut front_pubs = Vec::new();
    for mut req in stranded {
        match req.kind() {
            ReqKind::Publish { pkid } if pkid == 0 || !book.pubs.inflight.contains_key(&pkid) => {
                // Never written: its caller is next in the queue.
                if let Some(w) = book.pubs.queued.pop_front() {
                    front_pubs.push(w);
                }
                out.push(Outgoing::Replay(req));
            }
            ReqKind::Publish { pkid } => {
                if !fresh {
                    out.push(Outgoing::Replay(req)); // replayed with its packet id (DUP)
                } else if let Some(w) = book.pubs.inflight.remove(&pkid) {
                    if w.received {
                        w.finish(Err(Error::SessionLost));
                    } else {
                        req.renew_publish();
                        front_pubs.push(w);
                        out.push(Outgoing::Replay(req));
                    }
                }
            }
            // Folded into the restore above.
            ReqKind::Subscribe if restore => {}
            ReqKind::PubRel | ReqKind::Unsubscribe | ReqKind::IncomingAck if fresh => {}
            _ => out.push(Outgoing::Replay(req)),
        }
    }
    if fresh {
        // QoS 2 publishes between PUBREC and PUBCOMP: the broker's session is gone.
        for (_, w) in book.pubs.inflight.drain() {
            w.finish(Err(Error::SessionLost));
        }
    } else {
        // Resumed session: SUBSCRIBE/UNSUBSCRIBE that got no answer are sent again.
        for w in inflight_subs {
            out.push(Outgoing::Subscribe(w.filters.clone()));
            front_subs.push(w);
        }
        for w in inflight_unsubs {
            for f in &w.filters {
                out.push(Outgoing::Unsubscribe(f.clone()));
            }
            front_unsubs.push(w);
        }
    }
    book.pubs.requeue_front(front_pubs);
    book.subs.requeue_front(front_subs);
    book.unsubs.requeue_front(front_unsubs);
    out
}

#[cfg(test)]
mod tests;
