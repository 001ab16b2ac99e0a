//! The core's invariant over generated event sequences, without rumqttc or a broker: a model of
//! rumqttc (its request channel, packet ids, replay queue) and of a broker (acks in any order,
//! sessions kept or lost) feeds [`Core`] requests, writes, acks, lost connections and CONNACKs in
//! any order, and checks that every caller is answered exactly once, by the ack of its own packet.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use proptest::prelude::*;
use tokio::sync::oneshot::{self, error::TryRecvError};

use super::packet::{OutPublish, SubCode};
use super::replay::{Connack, Outgoing, Replayable, ReqKind};
use super::waiters::{PubWaiter, SubWaiter, UnsubWaiter};
use super::{Core, Written};
use crate::client::events::Published;
use crate::error::Error;
use crate::message::QoS;

/// A request in the model's rumqttc: channel and replay queue.
#[derive(Debug, Clone)]
enum M {
    /// Caller `k`'s publish; `pkid` 0 until written.
    Pub {
        k: usize,
        qos: QoS,
        pkid: u16,
    },
    /// The PUBREL of caller `k`'s QoS 2 publish.
    PubRel(u16, usize),
    /// A SUBSCRIBE (a caller's, or one the core made: a restore or a re-send).
    Sub(Vec<(String, QoS)>),
    Unsub,
}

impl Replayable for M {
    fn kind(&self) -> ReqKind {
        match self {
            M::Pub { pkid, .. } => ReqKind::Publish { pkid: *pkid },
            M::PubRel(..) => ReqKind::PubRel,
            M::Sub(_) => ReqKind::Subscribe,
            M::Unsub => ReqKind::Unsubscribe,
        }
    }
    fn renew_publish(&mut self) {
        if let M::Pub { pkid, .. } = self {
            *pkid = 0;
        }
    }
}

/// What the broker still owes for a written packet.
#[derive(Debug, Clone)]
enum Owed {
    PubAck(usize),
    PubRec(usize),
    PubComp(usize),
    SubAck(usize),
    UnsubAck,
}

#[derive(Debug, Clone)]
enum Step {
    Publish(u8, bool),
    Subscribe(u8),
    Unsubscribe(u8),
    Write,
    WriteBatch(u8),
    Ack(u8),
    Lose,
    Connack(bool, bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..3, any::<bool>()).prop_map(|(q, awake)| Step::Publish(q, awake)),
        1 => (0u8..3).prop_map(Step::Subscribe),
        1 => (0u8..3).prop_map(Step::Unsubscribe),
        4 => Just(Step::Write),
        1 => (0u8..4).prop_map(Step::WriteBatch),
        3 => any::<u8>().prop_map(Step::Ack),
        1 => Just(Step::Lose),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(s, b)| Step::Connack(s, b)),
    ]
}

enum Rx {
    Pub(oneshot::Receiver<Result<Published, Error>>),
    Sub(oneshot::Receiver<Result<Vec<SubCode>, Error>>),
    Unsub(oneshot::Receiver<Result<(), Error>>),
}

struct Model {
    core: Core,
    channel: VecDeque<M>,
    /// Written packets the broker has not answered yet, by packet id.
    owed: BTreeMap<u16, Owed>,
    /// Written publishes, for the replay queue on a lost connection.
    sent: BTreeMap<u16, (usize, M)>,
    next_pkid: u16,
    rx: Vec<Rx>,
    /// Answers seen, per caller.
    answered: Vec<u32>,
    registry: Vec<(String, QoS)>,
    connected: bool,
    first: bool,
    stranded: Vec<M>,
}

fn qos(n: u8) -> QoS {
    [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][n as usize % 3]
}

impl Model {
    fn new() -> Model {
        let mut m = Model {
            core: Core::default(),
            channel: VecDeque::new(),
            owed: BTreeMap::new(),
            sent: BTreeMap::new(),
            next_pkid: 0,
            rx: Vec::new(),
            answered: Vec::new(),
            registry: Vec::new(),
            connected: false,
            first: true,
            stranded: Vec::new(),
        };
        m.connack(false, true);
        m
    }

    fn pkid(&mut self) -> u16 {
        self.next_pkid = self.next_pkid.wrapping_add(1).max(1);
        self.next_pkid
    }

    /// Reads every answer that arrived; an answer to a caller that was answered before fails.
    fn collect(&mut self) {
        for (k, rx) in self.rx.iter_mut().enumerate() {
            let got = match rx {
                Rx::Pub(r) => r.try_recv().map(|_| ()),
                Rx::Sub(r) => r.try_recv().map(|_| ()),
                Rx::Unsub(r) => r.try_recv().map(|_| ()),
            };
            match got {
                Ok(()) => self.answered[k] += 1,
                Err(TryRecvError::Empty) => {}
                // Answered before (the sender is gone after its one message) or dropped.
                Err(TryRecvError::Closed) => {
                    assert!(self.answered[k] == 1, "caller {k} was dropped unanswered")
                }
            }
            assert!(self.answered[k] <= 1, "caller {k} answered twice");
        }
    }

    fn publish(&mut self, q: QoS, awake: bool) {
        let k = self.rx.len();
        let (tx, rx) = oneshot::channel();
        self.rx.push(Rx::Pub(rx));
        self.answered.push(0);
        let msg = OutPublish {
            topic: format!("t/{k}"),
            payload: Bytes::new(),
            qos: q,
            retain: false,
            properties: None,
        };
        let w = PubWaiter {
            reply: Some(tx),
            qos: q,
            received: false,
            deadline: None,
            _permit: None,
        };
        let channel = &mut self.channel;
        self.core
            .request_publish(msg, w, awake, |_| {
                channel.push_back(M::Pub { k, qos: q, pkid: 0 });
                Ok(())
            })
            .expect("the model's channel takes everything");
    }

    fn subscribe(&mut self, f: u8) {
        let _k = self.rx.len();
        let (tx, rx) = oneshot::channel();
        self.rx.push(Rx::Sub(rx));
        self.answered.push(0);
        let filters = vec![(format!("f/{f}"), QoS::AtLeastOnce)];
        if !self.registry.contains(&filters[0]) {
            self.registry.push(filters[0].clone());
        }
        let w = SubWaiter {
            filters: filters.clone(),
            reply: Some(tx),
            attached: Vec::new(),
            stream: None,
            _permit: None,
        };
        let channel = &mut self.channel;
        self.core
            .request_subscribe(w, |_| {
                channel.push_back(M::Sub(filters));
                Ok(())
            })
            .expect("taken");
    }

    fn unsubscribe(&mut self, f: u8) {
        let _k = self.rx.len();
        let (tx, rx) = oneshot::channel();
        self.rx.push(Rx::Unsub(rx));
        self.answered.push(0);
        let filter = format!("f/{f}");
        self.registry.retain(|(g, _)| *g != filter);
        let w = UnsubWaiter {
            filters: vec![filter.clone()],
            reply: Some(tx),
            _permit: None,
        };
        let channel = &mut self.channel;
        self.core
            .request_unsubscribe(w, |_| {
                channel.push_back(M::Unsub);
                Ok(())
            })
            .expect("taken");
    }

    /// rumqttc writes the next request of its channel.
    fn write(&mut self) {
        if !self.connected {
            return;
        }
        let Some(req) = self.channel.pop_front() else {
            return;
        };
        self.write_req(req);
    }

    fn write_req(&mut self, req: M) {
        match req {
            M::Pub { k, qos: q, pkid } => {
                let pkid = match (q, pkid) {
                    (QoS::AtMostOnce, _) => 0,
                    (_, 0) => self.pkid(),
                    (_, p) => p,
                };
                match self.core.publish_written(pkid) {
                    Written::Done(w) => w.finish(Ok(Published { mid: 0, qos: q })),
                    Written::Replay | Written::InFlight(_) => {
                        self.owed.insert(
                            pkid,
                            if q == QoS::ExactlyOnce {
                                Owed::PubRec(k)
                            } else {
                                Owed::PubAck(k)
                            },
                        );
                        self.sent.insert(pkid, (k, M::Pub { k, qos: q, pkid }));
                    }
                    Written::Unknown => panic!("publish of caller {k} written, nobody waits"),
                }
            }
            M::PubRel(pkid, k) => {
                self.owed.insert(pkid, Owed::PubComp(k));
                self.sent.insert(pkid, (k, M::PubRel(pkid, k)));
            }
            M::Sub(filters) => {
                let pkid = self.pkid();
                assert!(
                    self.core.subscribe_written(pkid),
                    "SUBSCRIBE nobody waits for"
                );
                self.owed.insert(pkid, Owed::SubAck(filters.len()));
            }
            M::Unsub => {
                let pkid = self.pkid();
                assert!(
                    self.core.unsubscribe_written(pkid),
                    "UNSUBSCRIBE nobody waits for"
                );
                self.owed.insert(pkid, Owed::UnsubAck);
            }
        }
    }

    /// The connection task writes held publishes itself.
    fn write_batch(&mut self, room: u8) {
        if !self.connected {
            return;
        }
        for p in self.core.take_batch(|| Some(room as usize)) {
            let k: usize = p.topic[2..].parse().expect("t/k");
            self.write_req(M::Pub {
                k,
                qos: p.qos,
                pkid: 0,
            });
        }
    }

    /// The broker answers the `i`-th packet it owes an answer for.
    fn ack(&mut self, i: u8) {
        if !self.connected || self.owed.is_empty() {
            return;
        }
        let pkid = *self
            .owed
            .keys()
            .nth(i as usize % self.owed.len())
            .expect("some");
        match self.owed.remove(&pkid).expect("owed") {
            Owed::PubAck(k) | Owed::PubComp(k) => {
                self.sent.remove(&pkid);
                let (w, _) = self
                    .core
                    .publish_acked(pkid)
                    .expect("someone waits for the ack");
                w.finish(Ok(Published {
                    mid: pkid,
                    qos: QoS::AtLeastOnce,
                }));
                let Rx::Pub(rx) = &mut self.rx[k] else {
                    panic!("caller {k} is no publish")
                };
                match rx.try_recv() {
                    Ok(Ok(p)) => assert_eq!(p.mid, pkid, "caller {k} got another packet's ack"),
                    other => panic!(
                        "the ack of caller {k}'s packet {pkid} reached someone else: {other:?}"
                    ),
                }
                self.answered[k] += 1;
            }
            Owed::PubRec(k) => {
                self.core.publish_received(pkid);
                // rumqttc writes the PUBREL at once and keeps it (not the PUBLISH) for a replay.
                self.sent.insert(pkid, (k, M::PubRel(pkid, k)));
                self.owed.insert(pkid, Owed::PubComp(k));
            }
            Owed::SubAck(n) => {
                let w = self
                    .core
                    .subscribe_acked(pkid)
                    .expect("someone waits for the SUBACK");
                w.finish(Ok(vec![Ok(QoS::AtLeastOnce); n]));
            }
            Owed::UnsubAck => {
                let w = self
                    .core
                    .unsubscribe_acked(pkid)
                    .expect("someone waits for the UNSUBACK");
                w.finish(Ok(()));
            }
        }
    }

    /// The connection breaks: rumqttc's replay queue is its written publishes and PUBRELs, then
    /// its channel; the core's held publishes come after.
    fn lose(&mut self) {
        if !self.connected {
            return;
        }
        self.connected = false;
        self.owed.clear();
        let mut stranded: Vec<M> = std::mem::take(&mut self.sent)
            .into_values()
            .map(|(_, m)| m)
            .collect();
        stranded.extend(self.channel.drain(..));
        for p in self.core.connection_lost() {
            let k: usize = p.topic[2..].parse().expect("t/k");
            stranded.push(M::Pub {
                k,
                qos: p.qos,
                pkid: 0,
            });
        }
        self.stranded = stranded;
    }

    fn connack(&mut self, session_present: bool, batching: bool) {
        if self.connected {
            return;
        }
        let connack = Connack {
            first: self.first,
            session_present: session_present && !self.first,
        };
        self.first = false;
        self.connected = true;
        let stranded = std::mem::take(&mut self.stranded);
        let out = self
            .core
            .connected(stranded, self.registry.clone(), connack, batching);
        let mut front: VecDeque<M> = out
            .into_iter()
            .map(|o| match o {
                Outgoing::Replay(m) => m,
                Outgoing::Subscribe(f) => M::Sub(f),
                Outgoing::Unsubscribe(_) => M::Unsub,
            })
            .collect();
        front.extend(self.channel.drain(..));
        self.channel = front;
    }

    fn run(&mut self, s: &Step) {
        match *s {
            Step::Publish(q, awake) => self.publish(qos(q), awake),
            Step::Subscribe(f) => self.subscribe(f),
            Step::Unsubscribe(f) => self.unsubscribe(f),
            Step::Write => self.write(),
            Step::WriteBatch(room) => self.write_batch(room),
            Step::Ack(i) => self.ack(i),
            Step::Lose => self.lose(),
            Step::Connack(present, batching) => self.connack(present, batching),
        }
        self.collect();
    }

    /// Connected for good: everything is written and answered; no caller is left waiting.
    fn settle(&mut self) {
        self.connack(true, false);
        for _ in 0..10_000 {
            if self.channel.is_empty() && self.owed.is_empty() && self.core.outstanding() == 0 {
                break;
            }
            self.write_batch(u8::MAX);
            self.write();
            self.ack(0);
            self.collect();
        }
        assert_eq!(self.core.outstanding(), 0, "callers left waiting");
        for (k, n) in self.answered.iter().enumerate() {
            assert_eq!(*n, 1, "caller {k} answered {n} times");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn every_caller_is_answered_once_by_its_own_packet(steps in prop::collection::vec(step(), 0..80)) {
        let mut m = Model::new();
        for s in &steps {
            m.run(s);
        }
        m.settle();
    }
}

#[test]
fn shutdown_answers_everyone_still_waiting() {
    let mut m = Model::new();
    for s in [
        Step::Publish(1, false),
        Step::Subscribe(0),
        Step::Write,
        Step::Publish(2, false),
        Step::Unsubscribe(1),
    ] {
        m.run(&s);
    }
    m.core.fail_all(&Error::Closed);
    m.collect();
    assert!(m.answered.iter().all(|n| *n == 1), "{:?}", m.answered);
    assert_eq!(m.core.outstanding(), 0);
}
