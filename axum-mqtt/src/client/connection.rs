//! The connection task: the only code that polls rumqttc.
//!
//! It turns rumqttc events into acks for waiting callers, messages for the lanes and events for the
//! callbacks, and it owns what happens around a reconnect:
//!
//! * On an error, rumqttc moves the lost connection's in-flight publishes and every request still in
//!   its channel into its replay queue. We take that queue at once, so nothing is dropped silently
//!   when the broker then answers `session_present = false` (rumqttc 0.25 clears the queue on a
//!   fresh session).
//! * It feeds the protocol core ([`Core`](super::core::Core)) every event and acts on what comes back: on CONNACK
//!   the core decides what goes out again and keeps its book in step (`core/replay.rs`); this
//!   task only hands its answer to rumqttc.
//! * Under load it writes publishes itself, many per flush (MQTT 3.1.1): the handles hold a
//!   publish back while an earlier one is unwritten (the core's batch), and after
//!   each event this task writes what piled up (`write_batch`). A failed write is a lost
//!   connection like a failed poll; the held publishes join the stranded requests, in order.
//! * Between attempts it waits with capped exponential backoff and jitter, and with a failover
//!   list it dials the next broker each time ([`Failover`]): rumqttc keeps its session state
//!   (in flight, replay queue) across the change, so the same replay serves the new broker.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::callbacks::Events;
use super::core::replay;
use super::core::Written;
use super::events::{Connack, Disconnected, Event, Published, Status, Subscribed, Unsubscribed};
use super::failover::Failover;
use super::link::{Link, LinkError, NetEvent, Req};
use super::lock::lock;
use super::requests::Stop;
use super::retained::RetainedRoutes;
use super::shared::Shared;
use crate::error::ReasonCode;
use crate::message::{Message, QoS};
use crate::Error;

/// Where the connection task hands the messages it receives: the routing layer's lanes
/// (`router/dispatch.rs`) implement it, so this task knows nothing of routes or handlers.
pub(crate) trait MessageSink: Send + Sync + 'static {
    /// Takes `msg`, waiting while there is no room for it (which stops reading from the broker:
    /// backpressure). `ack_after`: acknowledge it once its handlers succeeded.
    fn message(&self, msg: Message, ack_after: bool) -> impl Future<Output = ()> + Send;
}

/// Runs the connection until the client stops: messages go to `messages`, protocol events to the
/// callbacks (`events`).
pub(crate) async fn run<M: MessageSink>(
    shared: Arc<Shared>,
    link: Link,
    events: Events,
    messages: M,
) {
    let stop = shared.requests.watch_stop();
    let cfg = &shared.config;
    let failover = Failover::new(
        crate::config::BrokerAddr::new(cfg.broker_url.clone(), cfg.broker_port),
        cfg.failover.iter().cloned(),
    );
    let mut conn = Connection {
        failover,
        shared,
        link,
        events,
        messages,
        stop,
        stranded: Vec::new(),
        phase: Phase::Starting,
        retry: Retry::default(),
        retained: RetainedRoutes::default(),
        yield_first: false,
    };
    conn.run().await;
}

#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Exit,
}

struct Connection<M> {
    shared: Arc<Shared>,
    link: Link,
    /// The callbacks' queue.
    events: Events,
    /// The lanes that run the handlers.
    messages: M,
    stop: watch::Receiver<Stop>,
    /// rumqttc's replay queue, taken when a connection was lost, put back (rebuilt) on CONNACK.
    stranded: Vec<Req>,
    phase: Phase,
    retry: Retry,
    /// Retained messages answering a new stream's SUBSCRIBE go to that stream alone.
    retained: RetainedRoutes,
    /// The broker dialled now, and the next ones of a failover list.
    failover: Failover,
    /// Publish events were handled since the last batch write: handles woken by them (or by the
    /// same readiness that woke this task) may be about to publish, so the write waits for them.
    yield_first: bool,
}

/// Where the connection is, from the task's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No CONNACK yet since the client started.
    Starting,
    /// Acknowledged by the broker.
    Connected {
        since: Instant,
        /// Shutting down: DISCONNECT is queued.
        disconnect_sent: bool,
    },
    /// Lost after having been connected; reconnecting.
    Lost,
}

/// What the backoff and the take-over diagnosis remember between attempts.
#[derive(Debug, Default)]
struct Retry {
    /// Failed attempts since the last connection that lived long enough.
    attempts: u32,
    /// Connections in a row that dropped within [`SHORT_LIVED`] of their CONNACK.
    short_lived: u32,
    /// The broker said another connection took our client id over (MQTT 5).
    taken_over: bool,
}

/// A connection that drops sooner than this does not reset the backoff, so two instances fighting
/// over one client id (Flask-MQTT #64) slow down instead of taking each other over in a tight loop.
const SHORT_LIVED: Duration = Duration::from_secs(5);

/// The delay before attempt `attempts + 1` (without jitter): `min` doubled per failed attempt,
/// capped at `max`.
fn backoff(min: Duration, max: Duration, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(20);
    min.saturating_mul(1u32 << exp).min(max)
}

impl<M: MessageSink> Connection<M> {
    async fn run(&mut self) {
        loop {
            let stopping = *self.stop.borrow() != Stop::Running;
            let polled = if matches!(self.phase, Phase::Connected { .. }) {
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
            let polled = match polled {
                Ok(ev) => {
                    self.shared.requests.set_writer_awake(true);
                    if self.on_event(ev).await == Flow::Exit {
                        break;
                    }
                    // Only when the next poll would wait: a burst of acks wakes many handlers,
                    // whose publishes then go out together in one write, not a few per ack.
                    if self.link.has_buffered_events() {
                        Ok(())
                    } else {
                        self.write_batch().await
                    }
                }
                Err(e) => Err(e),
            };
            match polled {
                Ok(()) => {
                    if let Phase::Connected {
                        disconnect_sent: sent @ false,
                        ..
                    } = &mut self.phase
                    {
                        // Read again: a shutdown may have begun while the poll waited, and the
                        // event just handled may have been the last acknowledgement it waits for.
                        let stopping = *self.stop.borrow() != Stop::Running;
                        if stopping && self.shared.requests.disconnect_when_idle() {
                            *sent = true;
                        }
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

    /// Writes the publishes the handles held back (the core's batch) in one go, once
    /// every unwritten publish is among them, as many as the in-flight window allows. Called when
    /// the next poll would wait; when there is nothing to write, the task is about to wait, so it
    /// clears `writer_awake` here, under the core's lock the handles read it under
    /// (`Requests::push`).
    async fn write_batch(&mut self) -> Result<(), LinkError> {
        if !self.link.writes_directly() {
            return Ok(());
        }
        // After publish events, the tasks already queued (handles answered by a burst of acks,
        // requests read in the same wake-up) run first: their publishes are held
        // (`writer_awake`) and go out in this write. Not after inbound messages: a flood would pay
        // a yield per read for nothing.
        if std::mem::take(&mut self.yield_first) {
            YieldOnce(false).await;
        }
        let batch: Vec<_> = {
            let requests = &self.shared.requests;
            let mut core = requests.core();
            let batch = core.take_batch(|| self.link.direct_room());
            if batch.is_empty() {
                // The task waits in a poll next: the next publish wakes rumqttc through its
                // channel, unless it is held behind an unwritten one.
                requests.set_writer_awake(false);
                return Ok(());
            }
            batch
        };
        self.link.write_publishes(batch).await
    }

    fn backoff(&self) -> Duration {
        let cfg = &self.shared.config;
        // ±20 % jitter, so a fleet of app instances does not reconnect in lockstep.
        let jitter = 0.8 + fastrand::f64() * 0.4;
        backoff(cfg.reconnect_min, cfg.reconnect_max, self.retry.attempts).mul_f64(jitter)
    }

    fn set_state(&self, f: impl FnOnce(&mut super::ConnectionState)) {
        self.shared.state.send_modify(f);
    }

    async fn on_event(&mut self, ev: NetEvent) -> Flow {
        match ev {
            NetEvent::ConnAck { session_present } => self.on_connack(session_present),
            NetEvent::Publish(msg) => {
                if let Some(slot) = self.retained.recipient(&msg) {
                    // Acknowledged here: no handler runs for it.
                    if self.shared.ack_after.is_on() {
                        self.link.push_ack(msg.pkid, msg.qos);
                    }
                    self.shared.counters.received(msg.qos);
                    slot.offer(&msg, &self.shared.counters);
                    return Flow::Continue;
                }
                let ack_after = self.shared.ack_after.applies_to(&msg);
                if self.shared.ack_after.is_on() && !ack_after {
                    // Manual acks are on for other routes; this message is acknowledged on receipt.
                    self.link.push_ack(msg.pkid, msg.qos);
                }
                tokio::select! {
                    _ = self.messages.message(msg, ack_after) => {}
                    // A handler stuck forever must not keep shutdown waiting.
                    _ = self.stop.changed() => {}
                }
            }
            NetEvent::OutPublish { pkid } => self.on_out_publish(pkid),
            NetEvent::PubAck { pkid, refused } => self.on_pub_done(pkid, refused),
            NetEvent::PubRec { pkid, refused } => {
                if refused.is_some() {
                    self.on_pub_done(pkid, refused);
                } else {
                    self.shared.requests.core().publish_received(pkid);
                }
            }
            NetEvent::PubComp { pkid } => self.on_pub_done(pkid, None),
            NetEvent::OutSubscribe { pkid } => {
                if !self.shared.requests.core().subscribe_written(pkid) {
                    tracing::warn!(pkid, "SUBSCRIBE sent that nobody waits for");
                }
            }
            NetEvent::SubAck { pkid, codes } => {
                let w = self.shared.requests.core().subscribe_acked(pkid);
                if let Some(w) = w {
                    self.retained.on_suback(w.stream.as_ref());
                    let results: Vec<(String, Result<QoS, ReasonCode>)> = w
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
                    self.events
                        .send(Event::Subscribe(Subscribed { mid: pkid, results }));
                    w.finish(Ok(codes));
                }
            }
            NetEvent::OutUnsubscribe { pkid } => {
                self.shared.requests.core().unsubscribe_written(pkid);
            }
            NetEvent::UnsubAck { pkid } => {
                let w = self.shared.requests.core().unsubscribe_acked(pkid);
                if let Some(w) = w {
                    self.events.send(Event::Unsubscribe(Unsubscribed {
                        mid: pkid,
                        filters: w.filters.clone(),
                    }));
                    w.finish(Ok(()));
                }
            }
            NetEvent::OutDisconnect => return Flow::Exit,
            NetEvent::Disconnect { reason, taken_over } => {
                self.retry.taken_over |= taken_over;
                tracing::warn!(%reason, "broker disconnected us");
            }
            NetEvent::Other => {}
        }
        Flow::Continue
    }

    fn on_out_publish(&mut self, pkid: u16) {
        self.yield_first = true;
        let written = self.shared.requests.core().publish_written(pkid);
        match written {
            Written::Replay => {} // a replay of a publish already in flight (resumed session)
            Written::Unknown => tracing::warn!(pkid, "PUBLISH sent that nobody waits for"),
            Written::Done(w) => {
                self.shared.counters.published(w.qos);
                let p = Published { mid: 0, qos: w.qos };
                self.events.send(Event::Publish(p.clone()));
                w.finish(Ok(p));
            }
            Written::InFlight(n) => self.shared.counters.meters.inflight.set(n as f64),
        }
    }

    fn on_pub_done(&mut self, pkid: u16, refused: Option<ReasonCode>) {
        self.yield_first = true;
        let done = self.shared.requests.core().publish_acked(pkid);
        let Some((w, left)) = done else { return };
        self.shared.counters.meters.inflight.set(left as f64);
        match refused {
            None => {
                self.shared.counters.published(w.qos);
                let p = Published {
                    mid: pkid,
                    qos: w.qos,
                };
                self.events.send(Event::Publish(p.clone()));
                w.finish(Ok(p));
            }
            Some(code) => w.finish(Err(Error::Refused(code))),
        }
    }

    fn on_connack(&mut self, session_present: bool) {
        let first = self.phase == Phase::Starting;
        if !session_present {
            // Before any message of the new session reaches a lane (see `AckAfter::ack`).
            self.shared.ack_after.session_lost();
        }
        self.retained.clear();
        self.phase = Phase::Connected {
            since: Instant::now(),
            disconnect_sent: false,
        };
        let subscriptions = lock(&self.shared.registry).all();
        let connack = replay::Connack {
            first,
            session_present,
        };
        let stranded = std::mem::take(&mut self.stranded);
        let pending = {
            let mut core = self.shared.requests.core();
            let batching = self.link.writes_directly();
            let pending = core.connected(stranded, subscriptions, connack, batching);
            let m = &self.shared.counters.meters;
            m.inflight.set(core.inflight_publishes() as f64);
            pending
        };
        let m = &self.shared.counters.meters;
        m.connected.set(1.0);
        m.connects.increment(1);
        if !first {
            m.reconnects.increment(1);
        }
        self.link.push_pending(pending);
        let broker = self.failover.current().to_string();
        tracing::info!(
            %broker,
            session_present,
            reconnect = !first,
            "connected to MQTT broker"
        );
        self.set_state(|s| {
            s.status = Status::Connected;
            s.connects += 1;
            s.attempts = 0;
            s.last_error = None;
            s.broker = broker;
        });
        self.events.send(Event::Connect(Connack {
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
        // Held publishes come after everything rumqttc had (they were accepted later).
        let held = self.shared.requests.core().connection_lost();
        let link = &self.link;
        self.stranded
            .extend(held.into_iter().map(|p| link.publish_request(p)));
        let ever_connected = self.phase != Phase::Starting;
        let was_connected = match self.phase {
            Phase::Connected { since, .. } => {
                self.phase = Phase::Lost;
                if since.elapsed() < SHORT_LIVED {
                    self.retry.short_lived += 1;
                } else {
                    self.retry.short_lived = 0;
                    self.retry.attempts = 0;
                }
                true
            }
            Phase::Starting | Phase::Lost => {
                // The broker could not be reached at all: it is restarting or down, not taken over.
                self.retry.short_lived = 0;
                false
            }
        };
        self.retry.attempts = self.retry.attempts.saturating_add(1);
        let m = &self.shared.counters.meters;
        m.connected.set(0.0);
        m.lost.increment(1);
        let attempts = self.retry.attempts;
        let mut msg = match e.refused {
            Some(code) => format!(
                "connection refused by the broker (code {code}): {}",
                e.message
            ),
            None => e.message.clone(),
        };
        if std::mem::take(&mut self.retry.taken_over) || self.retry.short_lived >= 3 {
            let id = self.shared.state.borrow().client_id.clone();
            msg = format!(
                "{msg}; the broker keeps dropping us right after connecting: another client is probably \
                 using the same client id {id:?} (each instance needs its own MQTT_CLIENT_ID)"
            );
            tracing::error!(client_id = %id, "client id taken over by another connection");
        }
        let broker = self.failover.current().to_string();
        // The next attempt goes to the next broker of a failover list, after the same backoff.
        let next = self.failover.advance().map(|b| {
            self.link.set_broker(b);
            b.to_string()
        });
        let next = next.as_deref().unwrap_or(&broker);
        if was_connected {
            tracing::warn!(%broker, error = %msg, %next, "connection to MQTT broker lost");
            self.events.send(Event::Disconnect(Disconnected {
                reason: Some(msg.clone()),
            }));
        } else {
            tracing::warn!(%broker, error = %msg, attempts, %next, "cannot connect to MQTT broker");
        }
        if let Some(code) = e.refused {
            self.events.send(Event::Connect(Connack {
                code,
                session_present: false,
                reconnect: ever_connected,
            }));
        }
        self.set_state(|s| {
            s.status = Status::Reconnecting;
            s.last_error = Some(msg);
            s.attempts = attempts;
            s.broker = broker;
        });
        Flow::Continue
    }

    fn finish(&mut self) {
        let was_connected = matches!(self.phase, Phase::Connected { .. });
        self.phase = Phase::Lost;
        self.shared.requests.close();
        let m = &self.shared.counters.meters;
        m.inflight.set(0.0);
        m.connected.set(0.0);
        self.shared.streams.clear();
        if was_connected {
            self.events
                .send(Event::Disconnect(Disconnected { reason: None }));
        }
        self.set_state(|s| s.status = Status::Stopped);
        tracing::info!("MQTT client stopped");
    }
}

/// Lets the tasks already queued on this worker run before the connection task goes on: it wakes
/// itself, so it is queued behind them. (`tokio::task::yield_now` defers the wake-up until the
/// worker has also polled its I/O driver, one more `epoll_wait` per yield.)
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(3));
        let delays: Vec<u128> = (0..9).map(|a| backoff(min, max, a).as_millis()).collect();
        assert_eq!(delays, [100, 100, 200, 400, 800, 1600, 3000, 3000, 3000]);
        assert_eq!(backoff(min, max, u32::MAX), max);
    }
}
