//! Every combination of two publishes, a subscribe and an unsubscribe, across the four kinds of
//! CONNACK, with and without subscriptions to restore: the book's invariant holds, no caller is
//! left behind, and a resumed session answers nobody early.

use super::*;

/// Where one publish stood when the connection was lost.
#[derive(Debug, Clone, Copy)]
enum P {
    None,
    Queued(QoS),
    InFlight(QoS),
    PubRel,
    ReceivedOnly,
}

const PUBS: [P; 7] = [
    P::None,
    P::Queued(QoS::AtMostOnce),
    P::Queued(QoS::ExactlyOnce),
    P::InFlight(QoS::AtLeastOnce),
    P::InFlight(QoS::ExactlyOnce),
    P::PubRel,
    P::ReceivedOnly,
];

const REQS: [Option<ReqAt>; 3] = [None, Some(ReqAt::Queued), Some(ReqAt::InFlight)];

#[derive(Debug, Clone, Copy)]
struct Case {
    connack: Connack,
    pubs: [P; 2],
    sub: Option<ReqAt>,
    unsub: Option<ReqAt>,
    restore: bool,
}

impl Case {
    /// Nothing is in flight before the first CONNACK.
    fn possible(&self) -> bool {
        let in_flight = |p: &P| matches!(p, P::InFlight(_) | P::PubRel | P::ReceivedOnly);
        !self.connack.first
            || !(self.pubs.iter().any(in_flight)
                || self.sub == Some(ReqAt::InFlight)
                || self.unsub == Some(ReqAt::InFlight))
    }
}

fn cases() -> impl Iterator<Item = Case> {
    let connacks = [FRESH, RESUMED, FIRST, FIRST_RESUMED];
    connacks.into_iter().flat_map(|connack| {
        PUBS.into_iter().flat_map(move |p1| {
            PUBS.into_iter().flat_map(move |p2| {
                REQS.into_iter().flat_map(move |sub| {
                    REQS.into_iter().flat_map(move |unsub| {
                        [false, true].into_iter().map(move |restore| Case {
                            connack,
                            pubs: [p1, p2],
                            sub,
                            unsub,
                            restore,
                        })
                    })
                })
            })
        })
    })
}

/// The book and the stranded requests of one case, with the callers' receivers.
struct Setup {
    book: Book,
    stranded: Vec<R>,
    pub_rxs: Vec<PubRx>,
    sub_rx: Option<SubRx>,
    unsub_rx: Option<UnsubRx>,
}

fn setup(case: &Case) -> Setup {
    let mut s = Setup {
        book: Book::default(),
        stranded: Vec::new(),
        pub_rxs: Vec::new(),
        sub_rx: None,
        unsub_rx: None,
    };
    for (n, p) in case.pubs.into_iter().enumerate() {
        let pkid = 10 + n as u16;
        let (w, rx) = match p {
            P::None => continue,
            P::Queued(q) => {
                s.stranded.push(R::Pub {
                    pkid: 0,
                    dup: false,
                });
                let (w, rx) = pub_waiter(q, false);
                s.book.pubs.queued.push_back(w);
                s.pub_rxs.push(rx);
                continue;
            }
            P::InFlight(q) => {
                s.stranded.push(R::Pub { pkid, dup: true });
                pub_waiter(q, false)
            }
            P::PubRel => {
                s.stranded.push(R::PubRel(pkid));
                pub_waiter(QoS::ExactlyOnce, true)
            }
            P::ReceivedOnly => pub_waiter(QoS::ExactlyOnce, true),
        };
        s.book.pubs.inflight.insert(pkid, w);
        s.pub_rxs.push(rx);
    }
    if let Some(at) = case.sub {
        let (w, rx) = sub_waiter("a");
        match at {
            ReqAt::Queued => {
                s.stranded.push(R::Sub("a"));
                s.book.subs.queued.push_back(w);
            }
            ReqAt::InFlight => {
                s.book.subs.inflight.insert(20, w);
            }
        }
        s.sub_rx = Some(rx);
    }
    if let Some(at) = case.unsub {
        let (w, rx) = unsub_waiter("b");
        match at {
            ReqAt::Queued => {
                s.stranded.push(R::Unsub("b"));
                s.book.unsubs.queued.push_back(w);
            }
            ReqAt::InFlight => {
                s.book.unsubs.inflight.insert(21, w);
            }
        }
        s.unsub_rx = Some(rx);
    }
    s
}

fn check(case: Case) {
    let ctx = format!("{case:?}");
    let subscriptions = if case.restore { registry() } else { Vec::new() };
    let Setup {
        mut book,
        stranded,
        mut pub_rxs,
        mut sub_rx,
        mut unsub_rx,
    } = setup(&case);
    let waiters_before = book.outstanding();
    let out = reconcile(stranded, &mut book, subscriptions.clone(), case.connack);
    let count = |f: &dyn Fn(&Outgoing<R>) -> bool| out.iter().filter(|o| f(o)).count();

    // The invariant: one queued waiter per not-yet-written request of its kind.
    let new_pubs = count(&|o| {
        matches!(o, Outgoing::Replay(R::Pub { pkid, .. })
            if *pkid == 0 || !book.pubs.inflight.contains_key(pkid))
    });
    assert_eq!(new_pubs, book.pubs.queued.len(), "{ctx}: publishes");
    let subs = count(&|o| matches!(o, Outgoing::Subscribe(_) | Outgoing::Replay(R::Sub(_))));
    assert_eq!(subs, book.subs.queued.len(), "{ctx}: subscribes");
    let unsubs = count(&|o| matches!(o, Outgoing::Unsubscribe(_) | Outgoing::Replay(R::Unsub(_))));
    assert_eq!(unsubs, book.unsubs.queued.len(), "{ctx}: unsubscribes");

    // Publishes still in flight are replayed with their packet id, or wait for their PUBCOMP.
    for id in book.pubs.inflight.keys() {
        assert!(
            case.connack.session_present,
            "{ctx}: in flight after a fresh session"
        );
        let replayed = out.iter().any(
            |o| matches!(o, Outgoing::Replay(R::Pub { pkid, .. } | R::PubRel(pkid)) if pkid == id),
        );
        let waits_for_pubcomp = matches!(case.pubs[usize::from(id - 10)], P::ReceivedOnly);
        assert!(replayed || waits_for_pubcomp, "{ctx}: {id} is stranded");
    }

    // The restore comes first, when there is one, and only once.
    if case.connack.first || !case.connack.session_present {
        let restores = count(&|o| matches!(o, Outgoing::Subscribe(_)));
        assert_eq!(restores, usize::from(case.restore), "{ctx}: restores");
        if case.restore {
            assert_eq!(
                out.first(),
                Some(&Outgoing::Subscribe(subscriptions)),
                "{ctx}"
            );
        }
    }

    // No caller is forgotten: each still waits in the book or was answered.
    let mut answered = 0;
    for rx in &mut pub_rxs {
        match answer(rx) {
            Answer::Waiting => {}
            Answer::Failed(e) => {
                assert_eq!(e, Error::SessionLost.to_string(), "{ctx}");
                answered += 1;
            }
            Answer::Ok => panic!("{ctx}: a publish acknowledged without an ack"),
        }
    }
    let others = sub_rx
        .iter_mut()
        .map(answer)
        .chain(unsub_rx.iter_mut().map(answer));
    answered += others.filter(|a| *a != Answer::Waiting).count();
    // Callers folded into the restore ride on its waiter, which has no caller of its own.
    let attached: usize = book.subs.queued.iter().map(|w| w.attached.len()).sum();
    let restores = book
        .subs
        .queued
        .iter()
        .filter(|w| w.reply.is_none())
        .count();
    assert_eq!(
        book.outstanding() - restores + attached + answered,
        waiters_before,
        "{ctx}: callers accounted for"
    );
    if case.connack.session_present && !case.connack.first {
        assert_eq!(answered, 0, "{ctx}: a resumed session answers nobody early");
    }
}

#[test]
fn every_combination_keeps_the_book_in_step() {
    let mut n = 0;
    for case in cases().filter(Case::possible) {
        check(case);
        n += 1;
    }
    assert!(n > 1000, "{n} cases");
}
