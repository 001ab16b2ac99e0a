//! Publish deadlines, kept in the waiters rather than in a timer each (why: `client/deadlines.rs`,
//! whose watcher task sleeps until [`Core::next_deadline`] and calls [`Core::expire`]).

use std::time::Duration;

use tokio::time::Instant;

use super::Core;
use crate::error::Error;

/// When a waiter gives up, and the timeout it was given (for the error).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub at: Instant,
    pub after: Duration,
}

impl Deadline {
    /// `after` from now; `None` when that is too far away to represent (no timeout, then).
    pub fn after(after: Duration) -> Option<Deadline> {
        Instant::now()
            .checked_add(after)
            .map(|at| Deadline { at, after })
    }
}

impl Core {
    /// Notes a waiter with `deadline`; true when the watcher must be woken because it sleeps
    /// past that deadline (or not at all).
    pub(super) fn deadline_added(&mut self, deadline: Deadline) -> bool {
        let earlier = self.next_deadline.is_none_or(|next| deadline.at < next);
        if earlier {
            self.next_deadline = Some(deadline.at);
        }
        earlier
    }

    /// The deadline event: answers every publish waiter whose deadline is past `now` with
    /// [`Error::Timeout`], and forgets the deadlines of callers that stopped waiting; returns the
    /// earliest deadline left. Their entries stay in the book, which keeps matching the broker's
    /// packet ids to callers in order (as when a caller gives up by dropping its future).
    pub(crate) fn expire(&mut self, now: Instant) -> Option<Instant> {
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
        self.next_deadline = next;
        next
    }

    /// The earliest deadline the watcher knows of.
    #[cfg(test)]
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.next_deadline
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;
    use crate::client::core::waiters::PubWaiter;
    use crate::client::events::Published;
    use crate::message::QoS;

    fn waiter(
        deadline: Option<Deadline>,
    ) -> (PubWaiter, oneshot::Receiver<Result<Published, Error>>) {
        let (tx, rx) = oneshot::channel();
        let w = PubWaiter {
            reply: Some(tx),
            qos: QoS::AtLeastOnce,
            received: false,
            deadline,
            _permit: None,
        };
        (w, rx)
    }

    #[tokio::test]
    async fn only_waiters_past_their_deadline_are_answered_and_the_earliest_left_is_kept() {
        let now = Instant::now();
        let at = |ms| Deadline {
            at: now + Duration::from_millis(ms),
            after: Duration::from_millis(ms),
        };
        let mut core = Core::default();
        let (early, mut early_rx) = waiter(Some(at(10)));
        let (late, mut late_rx) = waiter(Some(at(30)));
        let (never, mut never_rx) = waiter(None);
        let (flying, mut flying_rx) = waiter(Some(at(20)));
        core.pubs.queued.extend([early, late, never]);
        core.pubs.inflight.insert(7, flying);

        assert_eq!(core.expire(now), Some(now + Duration::from_millis(10)));
        assert!(early_rx.try_recv().is_err(), "nothing is due yet");

        let next = core.expire(now + Duration::from_millis(25));
        assert_eq!(next, Some(now + Duration::from_millis(30)));
        assert_eq!(core.next_deadline(), next);
        assert!(matches!(early_rx.try_recv(), Ok(Err(Error::Timeout(d))) if d.as_millis() == 10));
        assert!(matches!(flying_rx.try_recv(), Ok(Err(Error::Timeout(d))) if d.as_millis() == 20));
        assert!(late_rx.try_recv().is_err());
        assert!(never_rx.try_recv().is_err());
        // The entries stay, so packet ids still match callers in order.
        assert_eq!(core.pubs.len(), 4);

        // A caller that gave up (dropped its receiver) no longer holds the watcher's attention.
        drop(late_rx);
        assert_eq!(core.expire(now + Duration::from_millis(26)), None);
        assert!(never_rx.try_recv().is_err());
    }

    #[test]
    fn only_an_earlier_deadline_wakes_the_watcher() {
        let mut core = Core::default();
        let d = Deadline::after(Duration::from_secs(10)).unwrap();
        assert!(
            core.deadline_added(d),
            "the first deadline wakes an idle watcher"
        );
        assert_eq!(core.next_deadline(), Some(d.at));
        let later = Deadline {
            at: d.at + Duration::from_secs(1),
            ..d
        };
        assert!(!core.deadline_added(later), "a later deadline does not");
        assert_eq!(core.next_deadline(), Some(d.at));
        let earlier = Deadline {
            at: d.at - Duration::from_secs(1),
            ..d
        };
        assert!(core.deadline_added(earlier));
        assert_eq!(core.next_deadline(), Some(earlier.at));
        assert!(Deadline::after(Duration::MAX).is_none());
    }
}
