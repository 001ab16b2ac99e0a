//! axum-mqtt patch: a persistent session that moves to another node takes the messages still on
//! their way with it (`README.md`, "Fixed: messages in flight while the session moves").
//!
//! Every node gets every publish and routes it by its own subscriptions. While client X's session
//! moves from node 1 to node 2, a publish could reach node 1 after node 1 had handed the session
//! over, and node 2 before node 2 had restored its subscriptions: neither delivered it. Now:
//! - node 2, before it asks the other nodes for X's session, opens a *move in* for X: what it has
//!   for X until the session is set (forwarded by node 1, or routed by its own restored
//!   subscriptions) is parked, and handed to the new session before anything else can reach it;
//! - node 1, asked for X's session, opens a *move out* before it kicks the session: for
//!   `MOVE_OUT_FOR`, what matches X's subscriptions (which node 1's router no longer has) or names
//!   X goes to node 2 (`Message::ForwardsTo`) instead of to the old session;
//! - a publish usually reaches both nodes, so node 2 gives X each message once: for `MOVE_IN_FOR`
//!   after the takeover it keeps a key of what it gave X (the old session's queue included).
//!
//! Both maps are bounded (`MAX_MOVES` clients, `MAX_PARKED` messages and `MAX_SEEN` keys per
//! client); past a bound a move is handled as before the patch.
use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rmqtt::session::OfflineInfo;
use rmqtt::topic::Topic;
use rmqtt::types::{
    ClientId, From, Message as SessionMessage, NodeId, Publish, SubRelation, SubRelations,
    SubscriptioRelationsCollector, Subscriptions, Tx,
};

type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

/// How long the old node forwards what matches a moved session: longer than a message can be on
/// its way between two nodes.
const MOVE_OUT_FOR: Duration = Duration::from_secs(5);
/// How long the new node remembers what it gave a moved session, from the takeover: the old
/// node's `MOVE_OUT_FOR` and the way of its last forward.
const MOVE_IN_FOR: Duration = Duration::from_secs(10);
/// At most this many moves in and this many moves out are remembered at once.
const MAX_MOVES: usize = 10_000;
/// At most this many messages are parked for one session being taken over.
const MAX_PARKED: usize = 10_000;
/// At most this many delivered messages are remembered for one moved session.
const MAX_SEEN: usize = 10_000;
/// Expired moves are looked for at most this often.
const PRUNE_EVERY: Duration = Duration::from_millis(500);

/// The moves of sessions between this node and the others.
pub(crate) struct Moves {
    state: Mutex<State>,
    /// Whether any move is remembered: the one check a publish pays when none is.
    any: AtomicBool,
    /// Held (read) by a delivery from its look-up in the moves to its hand-over to sessions, and
    /// (write) by opening a move out: a delivery that missed the new move out has sent its
    /// message to the old session before the kick does, so the message is in the session's queue
    /// that moves with it.
    gate: tokio::sync::RwLock<()>,
}

struct State {
    outs: HashMap<ClientId, MoveOut>,
    ins: HashMap<ClientId, MoveIn>,
    next_prune: Instant,
}

/// A session of this node that moved to node `to`, with its subscriptions.
struct MoveOut {
    to: NodeId,
    subs: Subscriptions,
    until: Instant,
}

/// A session this node takes over from another node.
struct MoveIn {
    arrival: Arrival,
    /// Keys (`key`) of the messages given to the session.
    seen: HashSet<u64>,
    until: Instant,
}

enum Arrival {
    /// From before the kick to `set`: messages wait here.
    Parking(Vec<(From, Publish)>),
    /// In `set`, once the parked messages are on the session's channel and until the session is
    /// reachable: messages follow them on that channel.
    Handing(Tx),
    /// The session is reachable; only the keys are still needed.
    Direct,
}

/// What `Moves::take` did with the relations of one message.
#[derive(Default)]
pub(crate) struct Taken {
    /// Relations for this node's sessions, delivered as usual.
    pub(crate) keep: SubRelations,
    /// Clients the moves took the message for (parked, handed over, or already given).
    pub(crate) given: Vec<ClientId>,
    /// Relations for sessions that moved away, by the node they moved to.
    pub(crate) forward: HashMap<NodeId, SubRelations>,
}

impl Moves {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                outs: HashMap::default(),
                ins: HashMap::default(),
                next_prune: Instant::now(),
            }),
            any: AtomicBool::new(false),
            gate: tokio::sync::RwLock::new(()),
        }
    }

    #[inline]
    pub(crate) async fn gate(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().await
    }

    #[inline]
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update_any(&self, st: &State) {
        self.any.store(!st.outs.is_empty() || !st.ins.is_empty(), Ordering::Release);
    }

    /// Node 1: `client_id`'s session, subscribed to `subs`, is about to be kicked for node `to`.
    pub(crate) async fn start_out(&self, client_id: &ClientId, to: NodeId, subs: Subscriptions) {
        let _gate = self.gate.write().await;
        let mut st = self.state();
        st.prune(Instant::now());
        st.ins.remove(client_id);
        if st.outs.len() < MAX_MOVES || st.outs.contains_key(client_id) {
            st.outs.insert(client_id.clone(), MoveOut { to, subs, until: Instant::now() + MOVE_OUT_FOR });
        } else {
            log::warn!("{client_id}: {MAX_MOVES} sessions are moving away, this one's in-flight messages are not forwarded");
        }
        self.update_any(&st);
    }

    /// Node 1: the kick is over; with the session handed over, its subscriptions as it had them.
    pub(crate) fn kicked_out(&self, client_id: &ClientId, handed: Option<&OfflineInfo>) {
        let mut st = self.state();
        match handed {
            Some(info) => {
                if let Some(out) = st.outs.get_mut(client_id) {
                    out.subs = info.subscriptions.clone();
                    out.until = Instant::now() + MOVE_OUT_FOR;
                }
            }
            None => {
                st.outs.remove(client_id);
            }
        }
        self.update_any(&st);
    }

    /// Node 2: `client_id`'s session is about to be asked for. False when too many are moving.
    pub(crate) fn start_in(&self, client_id: &ClientId) -> bool {
        let mut st = self.state();
        st.prune(Instant::now());
        st.outs.remove(client_id);
        let opened = st.ins.len() < MAX_MOVES || st.ins.contains_key(client_id);
        if opened {
            // Until `handed`, only `cancel_in` ends a move in (a kick may take 15 s).
            st.ins.insert(
                client_id.clone(),
                MoveIn { arrival: Arrival::Parking(Vec::new()), seen: HashSet::new(), until: Instant::now() },
            );
        } else {
            log::warn!("{client_id}: {MAX_MOVES} sessions are moving here, this one's in-flight messages are not parked");
        }
        self.update_any(&st);
        opened
    }

    /// Node 2: the session came with these queued and in-flight messages: they are given already.
    pub(crate) fn kicked_in(&self, client_id: &ClientId, info: &OfflineInfo) {
        let mut st = self.state();
        if let Some(m) = st.ins.get_mut(client_id) {
            let queued = info.offline_messages.iter().map(|(f, p)| key(f, p));
            let inflight = info.inflight_messages.iter().map(|m| key(&m.from, &m.publish));
            m.seen.extend(queued.chain(inflight).take(MAX_SEEN));
        }
    }

    /// Node 2: no session came, or the new one will not be set.
    pub(crate) fn cancel_in(&self, client_id: &ClientId) {
        let mut st = self.state();
        if let Some(MoveIn { arrival: Arrival::Parking(parked), .. }) = st.ins.remove(client_id) {
            if !parked.is_empty() {
                log::warn!("{client_id}: a takeover failed: {} messages for it dropped", parked.len());
            }
        }
        self.update_any(&st);
    }

    /// Node 2, in `set`: the parked messages go to the new session's channel, and what comes
    /// next follows them there until `handed`.
    pub(crate) fn hand_over(&self, client_id: &ClientId, tx: &Tx) {
        let mut st = self.state();
        if let Some(m) = st.ins.get_mut(client_id) {
            if let Arrival::Parking(parked) = std::mem::replace(&mut m.arrival, Arrival::Handing(tx.clone())) {
                for (from, p) in parked {
                    if tx.unbounded_send(SessionMessage::Forward(from, p)).is_err() {
                        log::warn!("{client_id}: the new session closed before it took its parked messages");
                    }
                }
            }
        }
    }

    /// Node 2, in `set`: the session is reachable.
    pub(crate) fn handed(&self, client_id: &ClientId) {
        let mut st = self.state();
        if let Some(m) = st.ins.get_mut(client_id) {
            m.arrival = Arrival::Direct;
            m.until = Instant::now() + MOVE_IN_FOR;
        }
    }

    /// Sorts the relations of one message: the moves take those of moving sessions. `matched`:
    /// the relations are this node's routing of the message (not relations another node chose),
    /// so a session that moved away gets what matches its subscriptions, which this node's router
    /// no longer has.
    pub(crate) fn take(&self, from: &From, publish: &Publish, relations: SubRelations, matched: bool) -> Taken {
        let mut taken = Taken::default();
        if !self.any.load(Ordering::Acquire) {
            taken.keep = relations;
            return taken;
        }
        let mut guard = self.state();
        let st = &mut *guard;
        let now = Instant::now();
        if now >= st.next_prune {
            st.prune(now);
            self.update_any(st);
        }
        let mut k = None;
        let mut seen_now = Vec::new();
        for rel in relations {
            if let Some(out) = st.outs.get(&rel.1) {
                // A relation of this node's routing for it is made again from its subscriptions
                // below; one another node chose (a shared subscription) goes as it is.
                if !(matched && rel.4.is_none()) {
                    taken.forward.entry(out.to).or_default().push(rel);
                }
                continue;
            }
            let Some(m) = st.ins.get_mut(&rel.1) else {
                taken.keep.push(rel);
                continue;
            };
            let k = *k.get_or_insert_with(|| key(from, publish));
            if m.seen.contains(&k) {
                // The other node's way brought it already.
                taken.given.push(rel.1);
                continue;
            }
            match &mut m.arrival {
                Arrival::Parking(parked) => {
                    if parked.len() >= MAX_PARKED {
                        taken.keep.push(rel);
                        continue;
                    }
                    parked.push((from.clone(), for_subscriber(publish, &rel)));
                    taken.given.push(rel.1.clone());
                }
                Arrival::Handing(tx) => {
                    if tx.unbounded_send(SessionMessage::Forward(from.clone(), for_subscriber(publish, &rel))).is_err() {
                        taken.keep.push(rel);
                        continue;
                    }
                    taken.given.push(rel.1.clone());
                }
                Arrival::Direct => taken.keep.push(rel.clone()),
            }
            // Keys count from the next message on: two subscriptions of one MQTT 3.1.1 client
            // that both match give it two copies, as without a move.
            seen_now.push(rel.1);
        }
        for client_id in seen_now {
            if let Some(m) = st.ins.get_mut(&client_id) {
                if m.seen.len() < MAX_SEEN {
                    m.seen.insert(k.unwrap_or_default());
                }
            }
        }
        if matched {
            for (client_id, out) in st.outs.iter() {
                let mut collector = SubscriptioRelationsCollector::default();
                for (tf, opts) in out.subs.iter() {
                    if opts.shared_group().is_some()
                        || (opts.no_local() == Some(true) && &from.id.client_id == client_id)
                    {
                        continue;
                    }
                    if Topic::from_str(tf).map(|f| f.matches_str(&publish.topic)).unwrap_or(false) {
                        collector.add(tf, client_id.clone(), opts.clone(), None);
                    }
                }
                let rels: SubRelations = collector.into();
                if !rels.is_empty() {
                    taken.forward.entry(out.to).or_default().extend(rels);
                }
            }
        }
        taken
    }
}

impl State {
    fn prune(&mut self, now: Instant) {
        self.outs.retain(|_, m| m.until > now);
        self.ins.retain(|_, m| !matches!(m.arrival, Arrival::Direct) || m.until > now);
        self.next_prune = now + PRUNE_EVERY;
    }
}

/// One message as its two ways to a moved session carry it: who published it (client and
/// connection), when, where and what. Not the packet id: the old session's queue renumbers.
fn key(from: &From, p: &Publish) -> u64 {
    let mut h = DefaultHasher::new();
    from.id.node_id.hash(&mut h);
    from.id.client_id.hash(&mut h);
    from.id.create_time.hash(&mut h);
    p.create_time.hash(&mut h);
    p.topic.hash(&mut h);
    p.payload.hash(&mut h);
    h.finish()
}

/// The copy of `publish` a subscription gets, as rmqtt's `DefaultShared::forwards_to` makes it.
fn for_subscriber(publish: &Publish, rel: &SubRelation) -> Publish {
    let (_, _, opts, sub_ids, _) = rel;
    let mut p = publish.clone();
    p.dup = false;
    p.retain = opts.retain_as_published() == Some(true) && publish.retain;
    p.qos = p.qos.less_value(opts.qos());
    p.packet_id = None;
    if let Some(sub_ids) = sub_ids {
        if let Some(props) = &mut p.properties {
            props.subscription_ids = sub_ids.clone();
        }
    }
    p
}
