//! The protocol core: which caller waits for which packet, as one synchronous state machine.
//!
//! rumqttc gives no packet id back from `publish` (rumqtt RFC #805). It does report, in order, each
//! request it writes (`Outgoing::Publish(pkid)`, …) and each ack it reads. Requests leave its channel
//! in the order they entered, so a FIFO per request kind, filled under the same lock that puts the
//! request into the channel, tells which caller a packet id belongs to.
//!
//! [`Core`] owns that book, the publishes held for one write together ([`Batch`]), the publish
//! deadlines (`deadlines.rs`) and the reconnect replay (`replay.rs`), with private state. The
//! handles and the connection task feed it events through its methods and act on what they return:
//! a request made (`request_*`), a packet written (`*_written`), an ack read (`*_acked`,
//! [`Core::publish_received`]), the connection lost ([`Core::connection_lost`]), a CONNACK
//! ([`Core::connected`]), a deadline passed ([`Core::expire`]), shutdown ([`Core::fail_all`]). It
//! does no I/O; the caller whose request is done is handed back to be answered (with the event the
//! client reports), or answered here when nothing else is reported (a timeout, a lost session).
//! Its invariant, which every event keeps: for each request kind, the queued waiters are, in order,
//! the callers of the not-yet-written requests of that kind, and each caller is answered once.
//! `sequences.rs` checks it over generated event sequences, without a socket.

use std::collections::VecDeque;

use tokio::time::Instant;

use crate::error::Error;
use crate::message::QoS;

mod book;
pub(crate) mod deadlines;
pub(crate) mod packet;
pub(crate) mod replay;
pub(crate) mod waiters;

#[cfg(test)]
mod sequences;

use book::Book;
use deadlines::Deadline;
use packet::OutPublish;
use replay::{Connack, Outgoing, Replayable};
use waiters::{PubWaiter, SubWaiter, UnsubWaiter};

/// The protocol state of one client (see the module docs).
#[derive(Default)]
pub(crate) struct Core {
    book: Book,
    /// The earliest publish deadline the deadline watcher knows of (it sleeps until then).
    next_deadline: Option<Instant>,
    /// Publishes held back for one write together (see [`Batch`]).
    batch: Batch,
}

/// What writing a PUBLISH did to the book ([`Core::publish_written`]).
pub(crate) enum Written {
    /// A replay of a publish already in flight (resumed session): nothing changes.
    Replay,
    /// Nobody waits for it (a bug elsewhere; logged by the caller).
    Unknown,
    /// A QoS 0 publish is done once written: its caller, to answer.
    Done(PubWaiter),
    /// A QoS 1/2 publish is in flight now; how many are.
    InFlight(usize),
}

impl Core {
    // --- requests made (by the handles, under the lock that also queues the request) ---

    /// A publish was made: it is held in the batch when [`holds`](Self::holds) says so, or put
    /// into rumqttc's channel by `send`; then its caller waits in line. Returns whether the
    /// deadline watcher must be woken (the caller's deadline is the earliest).
    pub(crate) fn request_publish(
        &mut self,
        msg: OutPublish,
        waiter: PubWaiter,
        writer_awake: bool,
        send: impl FnOnce(OutPublish) -> Result<(), Error>,
    ) -> Result<bool, Error> {
        if self.holds(writer_awake) {
            self.batch.held.push_back(msg); // written with others by the connection task
        } else {
            send(msg)?;
        }
        let wake = waiter.deadline.is_some_and(|d| self.deadline_added(d));
        self.book.pubs.queued.push_back(waiter);
        Ok(wake)
    }

    /// A SUBSCRIBE was made: `send` puts it into rumqttc's channel, then its caller waits in line.
    pub(crate) fn request_subscribe(
        &mut self,
        waiter: SubWaiter,
        send: impl FnOnce(&SubWaiter) -> Result<(), Error>,
    ) -> Result<(), Error> {
        send(&waiter)?;
        self.book.subs.queued.push_back(waiter);
        Ok(())
    }

    /// An UNSUBSCRIBE was made: `send` puts it into rumqttc's channel, then its caller waits.
    pub(crate) fn request_unsubscribe(
        &mut self,
        waiter: UnsubWaiter,
        send: impl FnOnce(&UnsubWaiter) -> Result<(), Error>,
    ) -> Result<(), Error> {
        send(&waiter)?;
        self.book.unsubs.queued.push_back(waiter);
        Ok(())
    }

    // --- packets written (the connection task, from rumqttc's outgoing events) ---

    /// A PUBLISH with `pkid` was written.
    pub(crate) fn publish_written(&mut self, pkid: u16) -> Written {
        if pkid != 0 && self.book.pubs.inflight.contains_key(&pkid) {
            return Written::Replay;
        }
        let Some(w) = self.book.pubs.queued.pop_front() else {
            return Written::Unknown;
        };
        if w.qos == QoS::AtMostOnce {
            return Written::Done(w);
        }
        self.book.pubs.inflight.insert(pkid, w);
        Written::InFlight(self.book.pubs.inflight.len())
    }

    /// A SUBSCRIBE with `pkid` was written; false when nobody waits for it.
    pub(crate) fn subscribe_written(&mut self, pkid: u16) -> bool {
        let Some(w) = self.book.subs.queued.pop_front() else {
            return false;
        };
        self.book.subs.inflight.insert(pkid, w);
        true
    }

    /// An UNSUBSCRIBE with `pkid` was written; false when nobody waits for it.
    pub(crate) fn unsubscribe_written(&mut self, pkid: u16) -> bool {
        let Some(w) = self.book.unsubs.queued.pop_front() else {
            return false;
        };
        self.book.unsubs.inflight.insert(pkid, w);
        true
    }

    // --- acks read ---

    /// PUBACK, PUBCOMP, or a refusing PUBREC for `pkid`: the caller to answer, and how many
    /// publishes are still in flight.
    pub(crate) fn publish_acked(&mut self, pkid: u16) -> Option<(PubWaiter, usize)> {
        let w = self.book.pubs.inflight.remove(&pkid)?;
        Some((w, self.book.pubs.inflight.len()))
    }

    /// PUBREC for `pkid` (QoS 2): the broker has the message.
    pub(crate) fn publish_received(&mut self, pkid: u16) {
        if let Some(w) = self.book.pubs.inflight.get_mut(&pkid) {
            w.received = true;
        }
    }

    /// SUBACK for `pkid`: the caller to answer.
    pub(crate) fn subscribe_acked(&mut self, pkid: u16) -> Option<SubWaiter> {
        self.book.subs.inflight.remove(&pkid)
    }

    /// UNSUBACK for `pkid`: the caller to answer.
    pub(crate) fn unsubscribe_acked(&mut self, pkid: u16) -> Option<UnsubWaiter> {
        self.book.unsubs.inflight.remove(&pkid)
    }

    // --- the batch (an MQTT 3.1.1 link writes held publishes itself) ---

    /// Whether a new publish is held in the batch rather than sent through rumqttc's channel:
    /// when batching is on and either an earlier publish is still unwritten (the task is bound to
    /// see its write, and then writes the batch) or the connection task is awake (`writer_awake`:
    /// it looks at the batch before it waits in a poll again). Otherwise the publish goes through
    /// the channel, which wakes rumqttc.
    fn holds(&self, writer_awake: bool) -> bool {
        self.batch.on && (writer_awake || !self.book.pubs.queued.is_empty())
    }

    /// Whether the batch may be written now: it holds something and every unwritten publish is
    /// in it (none is left in rumqttc's channel or replay queue ahead of it).
    fn batch_ready(&self) -> bool {
        self.batch.on
            && !self.batch.held.is_empty()
            && self.book.pubs.queued.len() == self.batch.held.len()
    }

    /// The held publishes to write now, from the front: as many as fit in the in-flight `room`
    /// (asked only when the batch is ready; QoS 0 takes none). Empty when there is nothing to
    /// write yet.
    pub(crate) fn take_batch(&mut self, room: impl FnOnce() -> Option<usize>) -> Vec<OutPublish> {
        let n = match self.batch_ready() {
            true => room().map_or(0, |room| self.batch.writable(room)),
            false => 0,
        };
        self.batch.held.drain(..n).collect()
    }

    // --- the connection ---

    /// The connection was lost: batching stops, and the held publishes are handed back to be
    /// replayed after everything rumqttc had (they were accepted later).
    pub(crate) fn connection_lost(&mut self) -> VecDeque<OutPublish> {
        self.batch.on = false;
        std::mem::take(&mut self.batch.held)
    }

    /// A CONNACK: what to send again of the `stranded` requests, with the book reordered to
    /// match (see `replay.rs`); `batching`: whether the new link writes held publishes itself.
    pub(crate) fn connected<R: Replayable>(
        &mut self,
        stranded: Vec<R>,
        subscriptions: Vec<(String, QoS)>,
        connack: Connack,
        batching: bool,
    ) -> Vec<Outgoing<R>> {
        let out = replay::reconcile(stranded, &mut self.book, subscriptions, connack);
        self.batch.on = batching;
        out
    }

    /// Fails every waiter (shutdown).
    pub(crate) fn fail_all(&mut self, e: &Error) {
        self.batch.held.clear();
        for w in self.book.pubs.drain_all() {
            w.finish(Err(e.clone()));
        }
        for w in self.book.subs.drain_all() {
            w.finish(Err(e.clone()));
        }
        for w in self.book.unsubs.drain_all() {
            w.finish(Err(e.clone()));
        }
    }

    // --- deadlines ---

    /// Notes a waiter with `deadline`; true when the watcher must be woken because it sleeps
    /// past that deadline (or not at all).
    fn deadline_added(&mut self, deadline: Deadline) -> bool {
        let earlier = self.next_deadline.is_none_or(|next| deadline.at < next);
        if earlier {
            self.next_deadline = Some(deadline.at);
        }
        earlier
    }

    /// The deadline event: answers every publish waiter whose deadline is past `now` with
    /// [`Error::Timeout`] (their entries stay, so packet ids still match callers in order) and
    /// returns the earliest deadline left, which the watcher sleeps until.
    pub(crate) fn expire(&mut self, now: Instant) -> Option<Instant> {
        self.next_deadline = self.book.expire(now);
        self.next_deadline
    }

    // --- figures ---

    /// Requests still waiting for the broker.
    pub(crate) fn outstanding(&self) -> usize {
        self.book.outstanding()
    }

    /// QoS 1/2 publishes written and not yet acknowledged.
    pub(crate) fn inflight_publishes(&self) -> usize {
        self.book.pubs.inflight.len()
    }
}

/// Publishes held back by the handles for the connection task to write together.
///
/// Why: rumqttc writes and flushes every request from its channel alone, one `writev` (and one
/// wake-up of the broker) per publish. Under load the connection task writes what piled up here
/// in one go instead (`Link::write_publishes`). A publish is held while an earlier one is still
/// unwritten, or while the task is awake anyway and bound to look at the batch before it waits
/// again ([`Core::holds`]). Order is kept: the task writes the batch only once every unwritten
/// publish is in it ([`Core::batch_ready`]). Each held publish keeps its waiter's request
/// permit, so the batch is bounded by `MQTT_MAX_PENDING` like the channel.
#[derive(Default)]
struct Batch {
    /// The connection task writes held publishes itself (an MQTT 3.1.1 link, connected).
    on: bool,
    held: VecDeque<OutPublish>,
}

impl Batch {
    /// How many of the held publishes, from the front, fit in `room` in-flight slots (QoS 0 takes
    /// none): the next write's share.
    fn writable(&self, mut room: usize) -> usize {
        self.held
            .iter()
            .take_while(|p| {
                if p.qos == QoS::AtMostOnce {
                    return true;
                }
                let fits = room > 0;
                room = room.saturating_sub(1);
                fits
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn waiter() -> PubWaiter {
        PubWaiter {
            reply: None,
            qos: QoS::AtLeastOnce,
            received: false,
            deadline: None,
            _permit: None,
        }
    }

    fn publish(n: u8) -> OutPublish {
        OutPublish {
            topic: format!("t/{n}"),
            payload: bytes::Bytes::new(),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: None,
        }
    }

    #[test]
    fn held_behind_an_unwritten_publish_or_while_the_task_is_awake_and_written_when_all_are_held() {
        let mut core = Core::default();
        core.book.pubs.queued.push_back(waiter());
        assert!(
            !core.holds(false),
            "batching off (MQTT 5, or not connected)"
        );
        assert!(!core.holds(true), "batching off, even with the task awake");
        core.batch.on = true;
        assert!(
            core.holds(false),
            "behind the unwritten one in rumqttc's channel"
        );
        core.batch.held.push_back(publish(1));
        core.book.pubs.queued.push_back(waiter());
        assert!(!core.batch_ready(), "the one in the channel goes first");
        core.book.pubs.queued.pop_front(); // its write was seen
        assert!(core.batch_ready());
        core.batch.held.clear();
        core.book.pubs.queued.clear();
        assert!(
            !core.holds(false),
            "nothing unwritten, the task waits: the next one wakes rumqttc"
        );
        assert!(
            core.holds(true),
            "nothing unwritten but the task is awake: it writes the next one itself"
        );
        assert!(!core.batch_ready());
        core.batch.held.push_back(publish(2));
        core.book.pubs.queued.push_back(waiter());
        core.fail_all(&Error::Closed);
        assert!(core.batch.held.is_empty() && core.book.pubs.queued.is_empty());
    }

    #[test]
    fn a_batch_takes_qos_0_freely_and_qos_1_up_to_the_room_in_order() {
        let p = |qos| OutPublish {
            topic: "t".into(),
            payload: bytes::Bytes::new(),
            qos,
            retain: false,
            properties: None,
        };
        let (q0, q1) = (QoS::AtMostOnce, QoS::AtLeastOnce);
        let batch = Batch {
            held: [q0, q1, q0, q1, q1, q0].into_iter().map(p).collect(),
            ..Batch::default()
        };
        assert_eq!(
            batch.writable(0),
            1,
            "a QoS 1 publish with no room stops the batch"
        );
        assert_eq!(batch.writable(1), 3);
        assert_eq!(
            batch.writable(2),
            4,
            "the next QoS 1 one does not fit: nothing after it"
        );
        assert_eq!(batch.writable(3), 6);
        assert_eq!(Batch::default().writable(5), 0);
    }

    fn deadline_waiter(
        deadline: Option<Deadline>,
    ) -> (
        PubWaiter,
        tokio::sync::oneshot::Receiver<Result<crate::client::events::Published, Error>>,
    ) {
        let (tx, rx) = tokio::sync::oneshot::channel();
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
        let (early, mut early_rx) = deadline_waiter(Some(at(10)));
        let (late, mut late_rx) = deadline_waiter(Some(at(30)));
        let (never, mut never_rx) = deadline_waiter(None);
        let (flying, mut flying_rx) = deadline_waiter(Some(at(20)));
        core.book.pubs.queued.extend([early, late, never]);
        core.book.pubs.inflight.insert(7, flying);

        assert_eq!(core.expire(now), Some(now + Duration::from_millis(10)));
        assert!(early_rx.try_recv().is_err(), "nothing is due yet");

        let next = core.expire(now + Duration::from_millis(25));
        assert_eq!(next, Some(now + Duration::from_millis(30)));
        assert_eq!(core.next_deadline, next);
        assert!(matches!(early_rx.try_recv(), Ok(Err(Error::Timeout(d))) if d.as_millis() == 10));
        assert!(matches!(flying_rx.try_recv(), Ok(Err(Error::Timeout(d))) if d.as_millis() == 20));
        assert!(late_rx.try_recv().is_err());
        assert!(never_rx.try_recv().is_err());
        // The entries stay, so packet ids still match callers in order.
        assert_eq!(core.book.pubs.len(), 4);

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
        assert_eq!(core.next_deadline, Some(d.at));
        let later = Deadline {
            at: d.at + Duration::from_secs(1),
            ..d
        };
        assert!(!core.deadline_added(later), "a later deadline does not");
        assert_eq!(core.next_deadline, Some(d.at));
        let earlier = Deadline {
            at: d.at - Duration::from_secs(1),
            ..d
        };
        assert!(core.deadline_added(earlier));
        assert_eq!(core.next_deadline, Some(earlier.at));
        assert!(Deadline::after(Duration::MAX).is_none());
    }
}
