//! Publish timeouts without a timer per publish.
//!
//! Wrapping each publish in `tokio::time::timeout` registers a timer entry and cancels it again,
//! about 1.5 µs of the 16 µs a QoS 1 `POST /publish` costs the server (bench/RESULTS.md, profile
//! section), although nearly every publish is acknowledged long before its deadline. So the deadline
//! is written into the waiter's book entry instead, and one task per client sleeps until the
//! earliest one and answers the waiters whose time is up with [`Error::Timeout`]. Their entries
//! stay in the book, which keeps matching the broker's packet ids to callers in order (as when a
//! caller gives up by dropping its future).
//!
//! With one timeout for every publish (an endpoint's), deadlines grow in the order publishes are
//! made, so the task wakes about once per timeout period under load, and is woken early only when a
//! publish has a deadline before the one it sleeps until (the first after an idle spell, or a
//! shorter timeout).

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::book::Book;
use super::shared::{Shared, Stop};
use crate::Error;

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

/// Called under the book's lock when a waiter with `deadline` was added: wakes the watcher when it
/// sleeps past that deadline (or not at all).
pub(crate) fn added(book: &mut Book, deadline: Deadline, notify: &Notify) {
    if book.next_deadline.is_none_or(|next| deadline.at < next) {
        book.next_deadline = Some(deadline.at);
        // Stores a wake-up when the watcher is not waiting yet: none is lost.
        notify.notify_one();
    }
}

/// Answers every publish waiter whose deadline is past `now` with [`Error::Timeout`]; returns the
/// earliest deadline left (and remembers it in the book).
pub(crate) fn expire(book: &mut Book, now: Instant) -> Option<Instant> {
    let mut next: Option<Instant> = None;
    let pubs = &mut book.pubs;
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
    book.next_deadline = next;
    next
}

/// The watcher task: ends when the client's shared state is gone.
pub(crate) async fn watch(
    shared: Weak<Shared>,
    notify: Arc<Notify>,
    mut stop: watch::Receiver<Stop>,
) {
    loop {
        let next = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let mut book = Shared::lock(&shared.book);
            expire(&mut book, Instant::now())
        };
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = notify.notified() => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::book::PubWaiter;
    use crate::QoS;
    use tokio::sync::oneshot;

    fn waiter(
        deadline: Option<Deadline>,
    ) -> (
        PubWaiter,
        oneshot::Receiver<Result<crate::Published, Error>>,
    ) {
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
        let mut book = Book::default();
        let (early, mut early_rx) = waiter(Some(at(10)));
        let (late, mut late_rx) = waiter(Some(at(30)));
        let (never, mut never_rx) = waiter(None);
        let (flying, mut flying_rx) = waiter(Some(at(20)));
        book.pubs.queued.extend([early, late, never]);
        book.pubs.inflight.insert(7, flying);

        assert_eq!(
            expire(&mut book, now),
            Some(now + Duration::from_millis(10))
        );
        assert!(early_rx.try_recv().is_err(), "nothing is due yet");

        let next = expire(&mut book, now + Duration::from_millis(25));
        assert_eq!(next, Some(now + Duration::from_millis(30)));
        assert_eq!(book.next_deadline, next);
        assert!(matches!(early_rx.try_recv(), Ok(Err(Error::Timeout(d))) if d.as_millis() == 10));
        assert!(matches!(flying_rx.try_recv(), Ok(Err(Error::Timeout(d))) if d.as_millis() == 20));
        assert!(late_rx.try_recv().is_err());
        assert!(never_rx.try_recv().is_err());
        // The entries stay, so packet ids still match callers in order.
        assert_eq!(book.pubs.len(), 4);

        // A caller that gave up (dropped its receiver) no longer holds the watcher's attention.
        drop(late_rx);
        assert_eq!(expire(&mut book, now + Duration::from_millis(26)), None);
        assert!(never_rx.try_recv().is_err());
    }

    /// True when a wake-up is stored (the watcher would return from `notified()` at once).
    async fn woken(notify: &Notify) -> bool {
        tokio::select! {
            biased;
            _ = notify.notified() => true,
            _ = std::future::ready(()) => false,
        }
    }

    #[tokio::test]
    async fn only_an_earlier_deadline_wakes_the_watcher() {
        let notify = Notify::new();
        let mut book = Book::default();
        let d = Deadline::after(Duration::from_secs(10)).unwrap();
        added(&mut book, d, &notify);
        assert_eq!(book.next_deadline, Some(d.at));
        assert!(
            woken(&notify).await,
            "the first deadline wakes an idle watcher"
        );
        let later = Deadline {
            at: d.at + Duration::from_secs(1),
            ..d
        };
        added(&mut book, later, &notify);
        assert_eq!(book.next_deadline, Some(d.at));
        assert!(!woken(&notify).await, "a later deadline does not");
        let earlier = Deadline {
            at: d.at - Duration::from_secs(1),
            ..d
        };
        added(&mut book, earlier, &notify);
        assert_eq!(book.next_deadline, Some(earlier.at));
        assert!(woken(&notify).await);
        assert!(Deadline::after(Duration::MAX).is_none());
    }
}
