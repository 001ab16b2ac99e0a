//! The connection task: the only code that polls rumqttc.
//!
//! It turns rumqttc events into acks for waiting callers, messages for the lanes and events for the
//! callbacks, and it owns what happens around a reconnect:
//!
//! * On an error, rumqttc moves the lost connection's in-flight publishes and every request still in
//!   its channel into its replay queue (`pending`). We take that queue at once, so nothing is dropped
//!   silently when the broker then answers `session_present = false` (rumqttc 0.25 clears the queue
//!   on a fresh session).
//! * On CONNACK we rebuild the queue: with a fresh session, one SUBSCRIBE restoring every
//!   subscription in the registry, publishes re-sent as new ones (QoS 2 publishes the broker already
//!   received fail with [`Error::SessionLost`] instead of being duplicated); with a resumed session,
//!   everything replayed as it was. The ack book is reordered to match, request for request.
//! * Between attempts it waits with capped exponential backoff and jitter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::book::SubWaiter;
use super::dispatch::Dispatcher;
use super::events::{Connack, Disconnected, Event, Published, Status, Subscribed, Unsubscribed};
use super::link::{Link, LinkError, NetEvent, Req, ReqKind};
use super::{Counters, Shared, Stop};
use crate::message::QoS;
use crate::Error;

pub(crate) async fn run(shared: Arc<Shared>, link: Link, dispatcher: Dispatcher) {
    let stop = shared.stop.subscribe();
    let mut conn = Connection {
        shared,
        link,
        dispatcher,
        stop,
        stranded: Vec::new(),
        connected: false,
        ever_connected: false,
        disconnect_sent: false,
        attempts: 0,
        connected_at: None,
        short_lived: 0,
        taken_over: false,
    };
    conn.run().await;
}

#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Exit,
}

struct Connection {
    shared: Arc<Shared>,
    link: Link,
    dispatcher: Dispatcher,
    stop: watch::Receiver<Stop>,
    /// rumqttc's replay queue, taken when a connection was lost, put back (rebuilt) on CONNACK.
    stranded: Vec<Req>,
    connected: bool,
    ever_connected: bool,
    disconnect_sent: bool,
    attempts: u32,
    connected_at: Option<Instant>,
    /// Connections in a row that dropped within [`SHORT_LIVED`] of their CONNACK.
    short_lived: u32,
    /// The broker said another connection took our client id over (MQTT 5).
    taken_over: bool,
}

/// A connection that drops sooner than this does not reset the backoff, so two instances fighting
/// over one client id (Flask-MQTT #64) slow down instead of taking each other over in a tight loop.
const SHORT_LIVED: Duration = Duration::from_secs(5);

impl Connection {
    async fn run(&mut self) {
        loop {
            let stopping = *self.stop.borrow() != Stop::Running;
            let polled = if self.connected {
                // Never cancel a poll on a live connection: rumqttc may be mid-write.
                self.link.poll().await
            } else {
                if stopping {
                    break;
                }
                tokio::select! {
                    r = self.link.poll() => r,
                    _ = self.stop.changed() => continue,
                }
            };
            match polled {
                Ok(ev) => {
                    if self.on_event(ev).await == Flow::Exit {
                        break;
                    }
                    if stopping
                        && !self.disconnect_sent
                        && Shared::lock(&self.shared.book).outstanding() == 0
                    {
                        self.disconnect_sent = true;
                        let _ = self.shared.sender.try_disconnect();
                    }
                }
                Err(e) => {
                    if self.on_error(e).await == Flow::Exit || stopping {
                        break;
                    }
                    let delay = self.backoff();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.stop.changed() => {}
                    }
                }
            }
        }
        self.finish();
    }

    fn backoff(&self) -> Duration {
        let cfg = &self.shared.config;
        let exp = self.attempts.saturating_sub(1).min(20);
        let base = cfg
            .reconnect_min_ms
            .saturating_mul(1u64 << exp)
            .min(cfg.reconnect_max_ms);
        // ±20 % jitter, so a fleet of app instances does not reconnect in lockstep.
        let jitter = 0.8 + fastrand::f64() * 0.4;
        Duration::from_millis((base as f64 * jitter) as u64)
    }

    fn set_state(&self, f: impl FnOnce(&mut super::ConnectionState)) {
        self.shared.state.send_modify(f);
    }

    async fn on_event(&mut self, ev: NetEvent) -> Flow {
        match ev {
            NetEvent::ConnAck { session_present } => self.on_connack(session_present),
            NetEvent::Publish(msg) => {
                if !self.shared.ack_after.is_empty() && !self.shared.acks_after_handling(&msg) {
                    // Manual acks are on for other routes; this message is acknowledged on receipt.
                    self.link.push_ack(msg.pkid, msg.qos);
                }
                tokio::select! {
                    _ = self.dispatcher.message(msg) => {}
                    // A handler stuck forever must not keep shutdown waiting.
                    _ = self.stop.changed() => {}
                }
            }
            NetEvent::OutPublish { pkid } => self.on_out_publish(pkid),
            NetEvent::PubAck { pkid, refused } => self.on_pub_done(pkid, refused),
            NetEvent::PubRec { pkid, refused } => {
                if refused.is_some() {
                    self.on_pub_done(pkid, refused);
                } else if let Some(w) = Shared::lock(&self.shared.book).pubs.inflight.get_mut(&pkid)
                {
                    w.received = true;
                }
            }
            NetEvent::PubComp { pkid } => self.on_pub_done(pkid, None),
            NetEvent::OutSubscribe { pkid } => {
                let mut book = Shared::lock(&self.shared.book);
                match book.subs.queued.pop_front() {
                    Some(w) => {
                        book.subs.inflight.insert(pkid, w);
                    }
                    None => tracing::warn!(pkid, "SUBSCRIBE sent that nobody waits for"),
                }
            }
            NetEvent::SubAck { pkid, codes } => {
                let w = Shared::lock(&self.shared.book).subs.inflight.remove(&pkid);
                if let Some(w) = w {
                    let results: Vec<(String, Result<QoS, String>)> = w
                        .filters
                        .iter()
                        .map(|(f, _)| f.clone())
                        .zip(codes.iter().cloned())
                        .collect();
                    for (f, r) in &results {
                        if let Err(reason) = r {
                            tracing::error!(filter = %f, %reason, "broker refused subscription");
                        }
                    }
                    self.dispatcher
                        .event(Event::Subscribe(Subscribed { mid: pkid, results }));
                    w.finish(Ok(codes));
                }
            }
            NetEvent::OutUnsubscribe { pkid } => {
                let mut book = Shared::lock(&self.shared.book);
                if let Some(w) = book.unsubs.queued.pop_front() {
                    book.unsubs.inflight.insert(pkid, w);
                }
            }
            NetEvent::UnsubAck { pkid } => {
                let w = Shared::lock(&self.shared.book)
                    .unsubs
                    .inflight
                    .remove(&pkid);
                if let Some(w) = w {
                    self.dispatcher.event(Event::Unsubscribe(Unsubscribed {
                        mid: pkid,
                        filters: w.filters.clone(),
                    }));
                    w.finish(Ok(()));
                }
            }
            NetEvent::OutDisconnect => return Flow::Exit,
            NetEvent::Disconnect { reason, taken_over } => {
                self.taken_over |= taken_over;
                tracing::warn!(%reason, "broker disconnected us");
            }
            NetEvent::Other => {}
        }
        Flow::Continue
    }

    fn on_out_publish(&mut self, pkid: u16) {
        let mut book = Shared::lock(&self.shared.book);
        if pkid != 0 && book.pubs.inflight.contains_key(&pkid) {
            return; // a replay of a publish already in flight (resumed session)
        }
        let Some(w) = book.pubs.queued.pop_front() else {
            tracing::warn!(pkid, "PUBLISH sent that nobody waits for");
            return;
        };
        if w.qos == QoS::AtMostOnce {
            drop(book);
            Counters::bump(&self.shared.counters.published);
            let p = Published { mid: 0, qos: w.qos };
            self.dispatcher.event(Event::Publish(p.clone()));
            w.finish(Ok(p));
        } else {
            book.pubs.inflight.insert(pkid, w);
        }
    }

    fn on_pub_done(&mut self, pkid: u16, refused: Option<String>) {
        let w = Shared::lock(&self.shared.book).pubs.inflight.remove(&pkid);
        let Some(w) = w else { return };
        match refused {
            None => {
                Counters::bump(&self.shared.counters.published);
                let p = Published {
                    mid: pkid,
                    qos: w.qos,
                };
                self.dispatcher.event(Event::Publish(p.clone()));
                w.finish(Ok(p));
            }
            Some(reason) => w.finish(Err(Error::Refused(reason))),
        }
    }

    fn on_connack(&mut self, session_present: bool) {
        let first = !self.ever_connected;
        self.connected = true;
        self.ever_connected = true;
        self.connected_at = Some(Instant::now());
        self.disconnect_sent = false;
        let fresh = !session_present;
        let stranded = std::mem::take(&mut self.stranded);
        let mut pending: Vec<Req> = Vec::new();
        {
            let mut book = Shared::lock(&self.shared.book);
            let book = &mut *book;
            let mut inflight_subs: Vec<SubWaiter> =
                book.subs.inflight.drain().map(|(_, w)| w).collect();
            let mut inflight_unsubs: Vec<_> =
                book.unsubs.inflight.drain().map(|(_, w)| w).collect();
            let count = |k: ReqKind| stranded.iter().filter(|r| r.kind() == k).count();
            let queued_subs: Vec<SubWaiter> = (0..count(ReqKind::Subscribe))
                .filter_map(|_| book.subs.queued.pop_front())
                .collect();
            let queued_unsubs: Vec<_> = (0..count(ReqKind::Unsubscribe))
                .filter_map(|_| book.unsubs.queued.pop_front())
                .collect();
            let mut front_subs: Vec<SubWaiter> = Vec::new();
            let mut front_unsubs = Vec::new();
            if fresh || first {
                // One SUBSCRIBE restores everything; callers whose SUBSCRIBE was caught by the
                // disconnect are answered from it.
                let filters = Shared::lock(&self.shared.registry).all();
                let attached: Vec<SubWaiter> = queued_subs
                    .into_iter()
                    .chain(std::mem::take(&mut inflight_subs))
                    .collect();
                if filters.is_empty() {
                    for a in attached {
                        a.finish(Err(Error::Refused(
                            "unsubscribed before the broker confirmed".into(),
                        )));
                    }
                } else {
                    tracing::debug!(count = filters.len(), "restoring subscriptions");
                    pending.push(self.link.subscribe_request(&filters));
                    front_subs.push(SubWaiter {
                        filters,
                        reply: None,
                        attached,
                        _permit: None,
                    });
                }
                // A new session has no subscriptions to remove.
                for w in queued_unsubs
                    .into_iter()
                    .chain(std::mem::take(&mut inflight_unsubs))
                {
                    w.finish(Ok(()));
                }
            } else {
                front_subs.extend(queued_subs);
                front_unsubs.extend(queued_unsubs);
            }
            let mut front_pubs = Vec::new();
            for mut req in stranded {
                match req.kind() {
                    ReqKind::Publish { pkid }
                        if pkid == 0 || !book.pubs.inflight.contains_key(&pkid) =>
                    {
                        // Never written: its caller is next in the queue.
                        if let Some(w) = book.pubs.queued.pop_front() {
                            front_pubs.push(w);
                        }
                        pending.push(req);
                    }
                    ReqKind::Publish { pkid } => {
                        if !fresh {
                            pending.push(req); // replayed with its packet id (DUP)
                        } else if let Some(w) = book.pubs.inflight.remove(&pkid) {
                            if w.received {
                                w.finish(Err(Error::SessionLost));
                            } else {
                                req.renew_publish();
                                front_pubs.push(w);
                                pending.push(req);
                            }
                        }
                    }
                    ReqKind::PubRel | ReqKind::Subscribe | ReqKind::Unsubscribe if fresh => {}
                    ReqKind::Other if fresh && req.is_incoming_ack() => {}
                    _ => pending.push(req),
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
                    pending.push(self.link.subscribe_request(&w.filters));
                    front_subs.push(w);
                }
                for w in inflight_unsubs {
                    for f in &w.filters {
                        pending.push(self.link.unsubscribe_request(f));
                    }
                    front_unsubs.push(w);
                }
            }
            book.pubs.requeue_front(front_pubs);
            book.subs.requeue_front(front_subs);
            book.unsubs.requeue_front(front_unsubs);
        }
        self.link.push_pending(pending);
        self.set_state(|s| {
            s.status = Status::Connected;
            s.connects += 1;
            s.attempts = 0;
            s.last_error = None;
        });
        tracing::info!(
            session_present,
            reconnect = !first,
            "connected to MQTT broker"
        );
        self.dispatcher.event(Event::Connect(Connack {
            code: 0,
            session_present,
            reconnect: !first,
        }));
    }

    async fn on_error(&mut self, e: LinkError) -> Flow {
        // Events rumqttc buffered before the failure happened first (acks, messages, writes).
        for ev in self.link.take_buffered_events() {
            if self.on_event(ev).await == Flow::Exit {
                return Flow::Exit;
            }
        }
        self.stranded.extend(self.link.take_pending());
        let was_connected = std::mem::replace(&mut self.connected, false);
        if was_connected {
            let lived = self.connected_at.map_or(Duration::ZERO, |t| t.elapsed());
            if lived < SHORT_LIVED {
                self.short_lived += 1;
            } else {
                self.short_lived = 0;
                self.attempts = 0;
            }
        } else {
            // The broker could not be reached at all: it is restarting or down, not taken over.
            self.short_lived = 0;
        }
        self.attempts = self.attempts.saturating_add(1);
        let attempts = self.attempts;
        let mut msg = match e.refused {
            Some(code) => format!(
                "connection refused by the broker (code {code}): {}",
                e.message
            ),
            None => e.message.clone(),
        };
        if std::mem::take(&mut self.taken_over) || self.short_lived >= 3 {
            let id = self.shared.state.borrow().client_id.clone();
            msg = format!(
                "{msg}; the broker keeps dropping us right after connecting: another client is probably \
                 using the same client id {id:?} (each instance needs its own MQTT_CLIENT_ID)"
            );
            tracing::error!(client_id = %id, "client id taken over by another connection");
        }
        if was_connected {
            tracing::warn!(error = %msg, "connection to MQTT broker lost");
            self.dispatcher.event(Event::Disconnect(Disconnected {
                reason: Some(msg.clone()),
            }));
        } else {
            tracing::warn!(error = %msg, attempts, "cannot connect to MQTT broker");
        }
        if let Some(code) = e.refused {
            self.dispatcher.event(Event::Connect(Connack {
                code,
                session_present: false,
                reconnect: self.ever_connected,
            }));
        }
        self.set_state(|s| {
            s.status = Status::Reconnecting;
            s.last_error = Some(msg);
            s.attempts = attempts;
        });
        Flow::Continue
    }

    fn finish(&mut self) {
        let was_connected = std::mem::replace(&mut self.connected, false);
        self.shared.permits.close();
        Shared::lock(&self.shared.book).fail_all(&Error::Closed);
        self.shared
            .streams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        if was_connected {
            self.dispatcher
                .event(Event::Disconnect(Disconnected { reason: None }));
        }
        self.set_state(|s| s.status = Status::Stopped);
        tracing::info!("MQTT client stopped");
    }
}
