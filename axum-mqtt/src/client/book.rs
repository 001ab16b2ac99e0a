//! The ack book: which caller waits for which packet.
//!
//! rumqttc gives no packet id back from `publish` (rumqtt RFC #805). It does report, in order, each
//! request it writes (`Outgoing::Publish(pkid)`, …) and each ack it reads. Requests leave its channel
//! in the order they entered, so a FIFO per request kind, filled under the same lock that puts the
//! request into the channel, tells which caller a packet id belongs to. When a connection is lost the
//! connection task rebuilds rumqttc's replay queue itself and keeps this book in step (see
//! `replay.rs`).

use std::collections::{HashMap, VecDeque};

use tokio::sync::{oneshot, OwnedSemaphorePermit};

use std::sync::Weak;

use super::deadlines::Deadline;
use super::link::{OutPublish, SubCode};
use super::stream::Slot;
use crate::client::events::Published;
use crate::message::QoS;
use crate::Error;

pub(crate) type PubReply = oneshot::Sender<Result<Published, Error>>;
pub(crate) type SubReply = oneshot::Sender<Result<Vec<SubCode>, Error>>;
pub(crate) type UnsubReply = oneshot::Sender<Result<(), Error>>;

/// A caller waiting for a publish to be acknowledged.
pub(crate) struct PubWaiter {
    pub reply: Option<PubReply>,
    pub qos: QoS,
    /// The broker sent PUBREC (QoS 2): it has the message.
    pub received: bool,
    /// When the caller gives up waiting (see `deadlines.rs`).
    pub deadline: Option<Deadline>,
    pub _permit: Option<OwnedSemaphorePermit>,
}

impl PubWaiter {
    pub fn finish(mut self, res: Result<Published, Error>) {
        if let Some(r) = self.reply.take() {
            let _ = r.send(res);
        }
    }
}

/// A caller (or the restore of all subscriptions) waiting for a SUBACK.
pub(crate) struct SubWaiter {
    pub filters: Vec<(String, QoS)>,
    pub reply: Option<SubReply>,
    /// Callers whose own SUBSCRIBE was folded into this one (restore after reconnect).
    pub attached: Vec<SubWaiter>,
    /// The new stream this SUBSCRIBE is for: the retained messages it brings are that stream's.
    pub stream: Option<Weak<Slot>>,
    pub _permit: Option<OwnedSemaphorePermit>,
}

impl SubWaiter {
    /// The restore of every subscription after a reconnect, answering `attached` callers from it.
    pub fn restore(filters: Vec<(String, QoS)>, attached: Vec<SubWaiter>) -> Self {
        SubWaiter {
            filters,
            reply: None,
            attached,
            stream: None,
            _permit: None,
        }
    }

    /// Answers this waiter and every attached one from the codes of this request's filters.
    pub fn finish(mut self, res: Result<Vec<SubCode>, Error>) {
        for a in std::mem::take(&mut self.attached) {
            let mine = match &res {
                Ok(codes) => Ok(a
                    .filters
                    .iter()
                    .map(|(f, _)| {
                        self.filters
                            .iter()
                            .position(|(g, _)| g == f)
                            .and_then(|i| codes.get(i).cloned())
                            .unwrap_or_else(|| Err("no answer from the broker".into()))
                    })
                    .collect()),
                Err(e) => Err(e.clone()),
            };
            a.finish(mine);
        }
        if let Some(r) = self.reply.take() {
            let _ = r.send(res);
        }
    }
}

/// A caller waiting for an UNSUBACK.
pub(crate) struct UnsubWaiter {
    pub filters: Vec<String>,
    pub reply: Option<UnsubReply>,
    pub _permit: Option<OwnedSemaphorePermit>,
}

impl UnsubWaiter {
    pub fn finish(mut self, res: Result<(), Error>) {
        if let Some(r) = self.reply.take() {
            let _ = r.send(res);
        }
    }
}

/// Waiters queued (not yet written) and in flight (written, keyed by packet id), per kind.
pub(crate) struct Queue<W> {
    pub queued: VecDeque<W>,
    pub inflight: HashMap<u16, W>,
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
    pub fn requeue_front(&mut self, front: Vec<W>) {
        for w in front.into_iter().rev() {
            self.queued.push_front(w);
        }
    }

    /// Takes the in-flight waiters, in packet id order.
    pub fn take_inflight(&mut self) -> Vec<W> {
        let mut all: Vec<(u16, W)> = self.inflight.drain().collect();
        all.sort_by_key(|(pkid, _)| *pkid);
        all.into_iter().map(|(_, w)| w).collect()
    }

    pub fn drain_all(&mut self) -> Vec<W> {
        let mut out: Vec<W> = self.queued.drain(..).collect();
        out.extend(self.inflight.drain().map(|(_, w)| w));
        out
    }

    pub fn len(&self) -> usize {
        self.queued.len() + self.inflight.len()
    }
}

/// All waiters of one client.
#[derive(Default)]
pub(crate) struct Book {
    pub pubs: Queue<PubWaiter>,
    pub subs: Queue<SubWaiter>,
    pub unsubs: Queue<UnsubWaiter>,
    /// The earliest publish deadline the deadline watcher knows of (it sleeps until then).
    pub next_deadline: Option<tokio::time::Instant>,
    /// Publishes held back for one write together (see [`Batch`]).
    pub batch: Batch,
}

/// Publishes held back by the handles for the connection task to write together.
///
/// Why: rumqttc writes and flushes every request from its channel alone, one `writev` (and one
/// wake-up of the broker) per publish. Under load the connection task writes what piled up here
/// in one go instead (`Link::write_publishes`). A publish is held while an earlier one is still
/// unwritten, or while the task is awake anyway and bound to look at the batch before it waits
/// again ([`Book::holds`]). Order is kept: the task writes the batch only once every unwritten
/// publish is in it ([`Book::batch_ready`]). Each held publish keeps its waiter's request
/// permit, so the batch is bounded by `MQTT_MAX_PENDING` like the channel.
#[derive(Default)]
pub(crate) struct Batch {
    /// The connection task writes held publishes itself (an MQTT 3.1.1 link, connected).
    pub on: bool,
    pub held: VecDeque<OutPublish>,
}

impl Batch {
    /// How many of the held publishes, from the front, fit in `room` in-flight slots (QoS 0 takes
    /// none): the next write's share.
    pub fn writable(&self, mut room: usize) -> usize {
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

impl Book {
    /// Requests still waiting for the broker.
    pub fn outstanding(&self) -> usize {
        self.pubs.len() + self.subs.len() + self.unsubs.len()
    }

    /// Whether a new publish is held in the batch rather than sent through rumqttc's channel:
    /// when batching is on and either an earlier publish is still unwritten (the task is bound to
    /// see its write, and then writes the batch) or the connection task is awake (`writer_awake`:
    /// it looks at the batch before it waits in a poll again). Otherwise the publish goes through
    /// the channel, which wakes rumqttc.
    pub fn holds(&self, writer_awake: bool) -> bool {
        self.batch.on && (writer_awake || !self.pubs.queued.is_empty())
    }

    /// Whether the batch may be written now: it holds something and every unwritten publish is
    /// in it (none is left in rumqttc's channel or replay queue ahead of it).
    pub fn batch_ready(&self) -> bool {
        self.batch.on
            && !self.batch.held.is_empty()
            && self.pubs.queued.len() == self.batch.held.len()
    }

    /// Fails every waiter (shutdown).
    pub fn fail_all(&mut self, e: &Error) {
        self.batch.held.clear();
        for w in self.pubs.drain_all() {
            w.finish(Err(e.clone()));
        }
        for w in self.subs.drain_all() {
            w.finish(Err(e.clone()));
        }
        for w in self.unsubs.drain_all() {
            w.finish(Err(e.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
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
        let mut book = Book::default();
        book.pubs.queued.push_back(waiter());
        assert!(
            !book.holds(false),
            "batching off (MQTT 5, or not connected)"
        );
        assert!(!book.holds(true), "batching off, even with the task awake");
        book.batch.on = true;
        assert!(
            book.holds(false),
            "behind the unwritten one in rumqttc's channel"
        );
        book.batch.held.push_back(publish(1));
        book.pubs.queued.push_back(waiter());
        assert!(!book.batch_ready(), "the one in the channel goes first");
        book.pubs.queued.pop_front(); // its write was seen
        assert!(book.batch_ready());
        book.batch.held.clear();
        book.pubs.queued.clear();
        assert!(
            !book.holds(false),
            "nothing unwritten, the task waits: the next one wakes rumqttc"
        );
        assert!(
            book.holds(true),
            "nothing unwritten but the task is awake: it writes the next one itself"
        );
        assert!(!book.batch_ready());
        book.batch.held.push_back(publish(2));
        book.pubs.queued.push_back(waiter());
        book.fail_all(&Error::Closed);
        assert!(book.batch.held.is_empty() && book.pubs.queued.is_empty());
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
}
