//! The book: which caller waits for which packet, per request kind (the core's state; see
//! `mod.rs` for how it is fed).

use std::collections::{HashMap, VecDeque};

use tokio::time::Instant;

use super::waiters::{PubWaiter, SubWaiter, UnsubWaiter};
use crate::error::Error;

/// Waiters queued (not yet written) and in flight (written, keyed by packet id), per kind.
pub(super) struct Queue<W> {
    pub(super) queued: VecDeque<W>,
    pub(super) inflight: HashMap<u16, W>,
}

impl<W> Default for Queue<W> {
    fn default() -> Self {
        Queue {
            queued: VecDeque::new(),
            inflight: HashMap::new(),
        }
    }
}

impl<W> Queue<W> {
    /// Puts waiters back at the front, keeping their order.
    pub(super) fn requeue_front(&mut self, front: Vec<W>) {
        for w in front.into_iter().rev() {
            self.queued.push_front(w);
        }
    }

    /// Takes the in-flight waiters, in packet id order.
    pub(super) fn take_inflight(&mut self) -> Vec<W> {
        let mut all: Vec<(u16, W)> = self.inflight.drain().collect();
        all.sort_by_key(|(pkid, _)| *pkid);
        all.into_iter().map(|(_, w)| w).collect()
    }

    pub(super) fn drain_all(&mut self) -> Vec<W> {
        let mut out: Vec<W> = self.queued.drain(..).collect();
        out.extend(self.inflight.drain().map(|(_, w)| w));
        out
    }

    pub(super) fn len(&self) -> usize {
        self.queued.len() + self.inflight.len()
    }
}

/// The waiters of one client, per request kind.
#[derive(Default)]
pub(super) struct Book {
    pub(super) pubs: Queue<PubWaiter>,
    pub(super) subs: Queue<SubWaiter>,
    pub(super) unsubs: Queue<UnsubWaiter>,
}

impl Book {
    /// Requests still waiting for the broker.
    pub(super) fn outstanding(&self) -> usize {
        self.pubs.len() + self.subs.len() + self.unsubs.len()
    }

    /// The deadline event: answers every publish waiter whose deadline is past `now` with
    /// [`Error::Timeout`], and forgets the deadlines of callers that stopped waiting; returns the
    /// earliest deadline left. Their entries stay in the book, which keeps matching the broker's
    /// packet ids to callers in order (as when a caller gives up by dropping its future).
    pub(super) fn expire(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let pubs = &mut self.pubs;
        for w in pubs.queued.iter_mut().chain(pubs.inflight.values_mut()) {
            let Some(d) = w.deadline else { continue };
            let gone = w.reply.as_ref().is_none_or(|r| r.is_closed());
            if gone || d.at <= now {
                w.deadline = None;
                if let (false, Some(r)) = (gone, w.reply.take()) {
                    let _ = r.send(Err(Error::Timeout(d.after)));
                }
            } else {
                next = Some(next.map_or(d.at, |n| n.min(d.at)));
            }
        }
        next
    }
}
