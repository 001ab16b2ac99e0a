//! The reconnect decision in tables, without rumqttc or a broker: fresh vs resumed session ×
//! queued vs in flight × QoS 0/1/2 publishes, subscribes and unsubscribes.

use tokio::sync::oneshot;

use super::*;
use crate::client::core::packet::SubCode;
use crate::client::core::waiters::{PubWaiter, UnsubWaiter};
use crate::client::events::Published;

/// A request as the tests write it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum R {
    Pub { pkid: u16, dup: bool },
    PubRel(u16),
    Sub(&'static str),
    Unsub(&'static str),
    InAck(u16),
    Ping,
}

impl Replayable for R {
    fn kind(&self) -> ReqKind {
        match self {
            R::Pub { pkid, .. } => ReqKind::Publish { pkid: *pkid },
            R::PubRel(_) => ReqKind::PubRel,
            R::Sub(_) => ReqKind::Subscribe,
            R::Unsub(_) => ReqKind::Unsubscribe,
            R::InAck(_) => ReqKind::IncomingAck,
            R::Ping => ReqKind::Other,
        }
    }

    fn renew_publish(&mut self) {
        if let R::Pub { pkid, dup } = self {
            *pkid = 0;
            *dup = false;
        }
    }
}

const FRESH: Connack = Connack {
    first: false,
    session_present: false,
};
const RESUMED: Connack = Connack {
    first: false,
    session_present: true,
};
const FIRST: Connack = Connack {
    first: true,
    session_present: false,
};
const FIRST_RESUMED: Connack = Connack {
    first: true,
    session_present: true,
};

/// How a caller's request stands in the end.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// Still waiting for the broker.
    Waiting,
    Ok,
    /// Answered with an error (its display).
    Failed(String),
}

fn answer<T>(rx: &mut oneshot::Receiver<Result<T, Error>>) -> Answer {
    match rx.try_recv() {
        Err(oneshot::error::TryRecvError::Empty) => Answer::Waiting,
        Err(oneshot::error::TryRecvError::Closed) => Answer::Failed("dropped unanswered".into()),
        Ok(Ok(_)) => Answer::Ok,
        Ok(Err(e)) => Answer::Failed(e.to_string()),
    }
}

type PubRx = oneshot::Receiver<Result<Published, Error>>;
type SubRx = oneshot::Receiver<Result<Vec<SubCode>, Error>>;
type UnsubRx = oneshot::Receiver<Result<(), Error>>;

fn pub_waiter(qos: QoS, received: bool) -> (PubWaiter, PubRx) {
    let (tx, rx) = oneshot::channel();
    let w = PubWaiter {
        reply: Some(tx),
        qos,
        received,
        deadline: None,
        _permit: None,
    };
    (w, rx)
}

fn sub_waiter(filter: &str) -> (SubWaiter, SubRx) {
    let (tx, rx) = oneshot::channel();
    let w = SubWaiter {
        filters: vec![(filter.to_string(), QoS::AtLeastOnce)],
        reply: Some(tx),
        attached: Vec::new(),
        stream: None,
        _permit: None,
    };
    (w, rx)
}

fn unsub_waiter(filter: &str) -> (UnsubWaiter, UnsubRx) {
    let (tx, rx) = oneshot::channel();
    let w = UnsubWaiter {
        filters: vec![filter.to_string()],
        reply: Some(tx),
        _permit: None,
    };
    (w, rx)
}

fn registry() -> Vec<(String, QoS)> {
    vec![
        ("a".to_string(), QoS::AtLeastOnce),
        ("route/#".to_string(), QoS::AtMostOnce),
    ]
}

/// Where a publish stood when the connection was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PubAt {
    /// Still in rumqttc's channel: never written (packet id 0).
    Queued,
    /// Written (packet id 7), no ack yet.
    InFlight,
    /// QoS 2, PUBREC received, our PUBREL caught by the disconnect.
    PubRelStranded,
    /// QoS 2, PUBREC received, PUBREL not yet queued: only the book knows it.
    ReceivedOnly,
    /// QoS 2, PUBREC received while the publish itself is still in the replay queue.
    ReceivedPubStranded,
}

/// Where the publish's caller is in the end.
#[derive(Debug, PartialEq, Eq)]
enum InBook {
    Queued,
    InFlight,
    Gone,
}

#[test]
fn publishes() {
    use Answer::{Failed, Waiting};
    use PubAt::*;
    use QoS::{AtLeastOnce as Q1, AtMostOnce as Q0, ExactlyOnce as Q2};
    let lost = || Failed(Error::SessionLost.to_string());
    let renewed = R::Pub {
        pkid: 0,
        dup: false,
    };
    let same = R::Pub { pkid: 7, dup: true };
    #[rustfmt::skip]
    let table: Vec<(Connack, QoS, PubAt, Vec<R>, Answer, InBook)> = vec![
        // Never written: sent as it is, whatever the session, and its caller stays first in line.
        (FRESH,   Q0, Queued, vec![R::Pub { pkid: 0, dup: false }], Waiting, InBook::Queued),
        (FRESH,   Q1, Queued, vec![R::Pub { pkid: 0, dup: false }], Waiting, InBook::Queued),
        (FRESH,   Q2, Queued, vec![R::Pub { pkid: 0, dup: false }], Waiting, InBook::Queued),
        (RESUMED, Q0, Queued, vec![R::Pub { pkid: 0, dup: false }], Waiting, InBook::Queued),
        (RESUMED, Q1, Queued, vec![R::Pub { pkid: 0, dup: false }], Waiting, InBook::Queued),
        (RESUMED, Q2, Queued, vec![R::Pub { pkid: 0, dup: false }], Waiting, InBook::Queued),
        (FIRST,   Q1, Queued, vec![R::Pub { pkid: 0, dup: false }], Waiting, InBook::Queued),
        // In flight, fresh session: a new publish (new packet id, no DUP), its caller queued again.
        (FRESH,   Q1, InFlight, vec![renewed.clone()], Waiting, InBook::Queued),
        (FRESH,   Q2, InFlight, vec![renewed.clone()], Waiting, InBook::Queued),
        // In flight, resumed session: replayed with its packet id; the caller waits for that id.
        (RESUMED, Q1, InFlight, vec![same.clone()], Waiting, InBook::InFlight),
        (RESUMED, Q2, InFlight, vec![same.clone()], Waiting, InBook::InFlight),
        (FIRST_RESUMED, Q1, InFlight, vec![same.clone()], Waiting, InBook::InFlight),
        // QoS 2 the broker already has: a new session would duplicate it, so it fails instead.
        (FRESH,   Q2, PubRelStranded, vec![], lost(), InBook::Gone),
        (FRESH,   Q2, ReceivedOnly,   vec![], lost(), InBook::Gone),
        (FRESH,   Q2, ReceivedPubStranded, vec![], lost(), InBook::Gone),
        (RESUMED, Q2, ReceivedPubStranded, vec![same.clone()], Waiting, InBook::InFlight),
        // ... while a resumed session completes it with the PUBREL.
        (RESUMED, Q2, PubRelStranded, vec![R::PubRel(7)], Waiting, InBook::InFlight),
        (RESUMED, Q2, ReceivedOnly,   vec![], Waiting, InBook::InFlight),
    ];
    for (i, (connack, qos, at, want_out, want_answer, want_book)) in table.into_iter().enumerate() {
        let mut book = Book::default();
        let received = matches!(
            at,
            PubAt::PubRelStranded | PubAt::ReceivedOnly | PubAt::ReceivedPubStranded
        );
        let (w, mut rx) = pub_waiter(qos, received);
        let stranded = match at {
            PubAt::Queued => {
                book.pubs.queued.push_back(w);
                vec![R::Pub {
                    pkid: 0,
                    dup: false,
                }]
            }
            PubAt::InFlight => {
                book.pubs.inflight.insert(7, w);
                vec![R::Pub { pkid: 7, dup: true }]
            }
            PubAt::PubRelStranded => {
                book.pubs.inflight.insert(7, w);
                vec![R::PubRel(7)]
            }
            PubAt::ReceivedOnly => {
                book.pubs.inflight.insert(7, w);
                vec![]
            }
            PubAt::ReceivedPubStranded => {
                book.pubs.inflight.insert(7, w);
                vec![R::Pub { pkid: 7, dup: true }]
            }
        };
        let out = reconcile(stranded, &mut book, Vec::new(), connack);
        let ctx = format!("row {i}: {connack:?} {qos:?} {at:?}");
        let want_out: Vec<_> = want_out.into_iter().map(Outgoing::Replay).collect();
        assert_eq!(out, want_out, "{ctx}: requests");
        assert_eq!(answer(&mut rx), want_answer, "{ctx}: caller");
        let in_book = match (book.pubs.queued.len(), book.pubs.inflight.len()) {
            (1, 0) => InBook::Queued,
            (0, 1) => InBook::InFlight,
            (0, 0) => InBook::Gone,
            other => panic!("{ctx}: book holds {other:?}"),
        };
        assert_eq!(in_book, want_book, "{ctx}: book");
    }
}

/// Where a SUBSCRIBE or UNSUBSCRIBE stood when the connection was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReqAt {
    Queued,
    InFlight,
}

#[test]
fn subscribes() {
    use ReqAt::*;
    let restore = || Outgoing::Subscribe(registry());
    #[rustfmt::skip]
    let table: Vec<(Connack, ReqAt, bool, Vec<Outgoing<R>>)> = vec![
        // (session, where, registry holds subscriptions, requests)
        // Fresh session or first connect: one SUBSCRIBE restores everything, the caller rides on it.
        (FRESH,         Queued,   true, vec![restore()]),
        (FRESH,         InFlight, true, vec![restore()]),
        (FIRST,         Queued,   true, vec![restore()]),
        // First connect to a session the broker kept: still one restore, never a second SUBSCRIBE.
        (FIRST_RESUMED, Queued,   true, vec![restore()]),
        // Resumed session: the stranded SUBSCRIBE is replayed, an unanswered one is sent again.
        (RESUMED,       Queued,   true, vec![Outgoing::Replay(R::Sub("a"))]),
        (RESUMED,       InFlight, true, vec![Outgoing::Subscribe(vec![("a".into(), QoS::AtLeastOnce)])]),
    ];
    for (i, (connack, at, _, want_out)) in table.into_iter().enumerate() {
        let ctx = format!("row {i}: {connack:?} {at:?}");
        let mut book = Book::default();
        let (w, mut rx) = sub_waiter("a");
        let stranded = match at {
            Queued => {
                book.subs.queued.push_back(w);
                vec![R::Sub("a")]
            }
            InFlight => {
                book.subs.inflight.insert(3, w);
                vec![]
            }
        };
        let out = reconcile(stranded, &mut book, registry(), connack);
        assert_eq!(out, want_out, "{ctx}: requests");
        assert_eq!(answer(&mut rx), Answer::Waiting, "{ctx}: caller");
        assert_eq!(
            book.subs.queued.len(),
            1,
            "{ctx}: one SUBSCRIBE, one waiter"
        );
        assert!(book.subs.inflight.is_empty(), "{ctx}");
        // The broker answers the one SUBSCRIBE: the caller gets the code of its own filter.
        let head = book.subs.queued.pop_front().expect("a waiter");
        let codes: Vec<SubCode> = head
            .filters
            .iter()
            .map(|(f, _)| {
                if f == "a" {
                    Ok(QoS::AtLeastOnce)
                } else {
                    Ok(QoS::AtMostOnce)
                }
            })
            .collect();
        head.finish(Ok(codes));
        assert_eq!(
            rx.try_recv().expect("answered").expect("granted"),
            vec![Ok(QoS::AtLeastOnce)],
            "{ctx}: granted QoS of the caller's filter"
        );
    }
}

#[test]
fn subscribe_caught_by_a_disconnect_after_its_unsubscribe_is_refused() {
    for at in [ReqAt::Queued, ReqAt::InFlight] {
        let mut book = Book::default();
        let (w, mut rx) = sub_waiter("a");
        let stranded = match at {
            ReqAt::Queued => {
                book.subs.queued.push_back(w);
                vec![R::Sub("a")]
            }
            ReqAt::InFlight => {
                book.subs.inflight.insert(3, w);
                vec![]
            }
        };
        // The registry is empty: the filter was unsubscribed before the broker confirmed it.
        let out = reconcile(stranded, &mut book, Vec::new(), FRESH);
        assert!(out.is_empty(), "{at:?}: nothing to restore");
        assert!(
            matches!(answer(&mut rx), Answer::Failed(e) if e.contains("unsubscribed before")),
            "{at:?}"
        );
        assert_eq!(book.outstanding(), 0);
    }
}

#[test]
fn unsubscribes() {
    use ReqAt::*;
    #[rustfmt::skip]
    let table: Vec<(Connack, ReqAt, Vec<Outgoing<R>>, Answer)> = vec![
        // A new session has nothing to remove: done at once, nothing sent.
        (FRESH,         Queued,   vec![], Answer::Ok),
        (FRESH,         InFlight, vec![], Answer::Ok),
        (FIRST,         Queued,   vec![], Answer::Ok),
        // A kept session still holds the subscription: the UNSUBSCRIBE goes out.
        (FIRST_RESUMED, Queued,   vec![Outgoing::Replay(R::Unsub("a"))], Answer::Waiting),
        (RESUMED,       Queued,   vec![Outgoing::Replay(R::Unsub("a"))], Answer::Waiting),
        (RESUMED,       InFlight, vec![Outgoing::Unsubscribe("a".into())], Answer::Waiting),
    ];
    for (i, (connack, at, want_out, want_answer)) in table.into_iter().enumerate() {
        let ctx = format!("row {i}: {connack:?} {at:?}");
        let mut book = Book::default();
        let (w, mut rx) = unsub_waiter("a");
        let stranded = match at {
            Queued => {
                book.unsubs.queued.push_back(w);
                vec![R::Unsub("a")]
            }
            InFlight => {
                book.unsubs.inflight.insert(4, w);
                vec![]
            }
        };
        // No subscriptions in the registry, so no restore SUBSCRIBE in the way.
        let out = reconcile(stranded, &mut book, Vec::new(), connack);
        assert_eq!(out, want_out, "{ctx}: requests");
        let waiting = want_answer == Answer::Waiting;
        assert_eq!(answer(&mut rx), want_answer, "{ctx}: caller");
        assert_eq!(
            book.unsubs.queued.len(),
            usize::from(waiting),
            "{ctx}: book"
        );
        assert!(book.unsubs.inflight.is_empty(), "{ctx}");
    }
}

#[test]
fn acks_of_incoming_messages_and_other_requests() {
    let stranded = || vec![R::InAck(9), R::Ping];
    let mut book = Book::default();
    let out = reconcile(stranded(), &mut book, Vec::new(), FRESH);
    assert_eq!(
        out,
        vec![Outgoing::Replay(R::Ping)],
        "acks mean nothing to a new session"
    );
    let out = reconcile(stranded(), &mut book, Vec::new(), RESUMED);
    assert_eq!(
        out,
        vec![Outgoing::Replay(R::InAck(9)), Outgoing::Replay(R::Ping)]
    );
}

#[test]
fn restore_goes_first_and_order_is_kept() {
    let mut book = Book::default();
    let mut rxs = Vec::new();
    for _ in 0..3 {
        let (w, rx) = pub_waiter(QoS::AtLeastOnce, false);
        book.pubs.queued.push_back(w);
        rxs.push(rx);
    }
    let (w, _sub_rx) = sub_waiter("a");
    book.subs.queued.push_back(w);
    let stranded = vec![
        R::Pub {
            pkid: 0,
            dup: false,
        },
        R::Sub("a"),
        R::Pub {
            pkid: 0,
            dup: false,
        },
        R::Pub {
            pkid: 0,
            dup: false,
        },
    ];
    let out = reconcile(stranded, &mut book, registry(), FRESH);
    let fresh_pub = || {
        Outgoing::Replay(R::Pub {
            pkid: 0,
            dup: false,
        })
    };
    assert_eq!(
        out,
        vec![
            Outgoing::Subscribe(registry()),
            fresh_pub(),
            fresh_pub(),
            fresh_pub()
        ]
    );
    assert_eq!(book.pubs.queued.len(), 3);
}

mod combinations;
