//! Running handlers off the connection task: the message lanes.
//!
//! Messages are spread over `HANDLER_CONCURRENCY` lanes by a hash of the topic, so messages of one
//! topic are handled in order while different topics run concurrently. Each lane is a bounded queue;
//! when it is full the connection task waits, which stops reading from the broker (backpressure).
//! A handler that panics is caught and counted; the lane and the connection go on. A message whose
//! route failed for good goes to the route's dead-letter topic, if it has one (`dead_letter_sender.rs`).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};
use std::time::Instant;

use futures_util::FutureExt;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::{Notify, Semaphore};
use tower::{BoxError, Service, ServiceExt};

use super::dead_letter_sender::{DeadLetterSender, Failed, Letter};
use super::route::{Outcome, Route};
use super::routes::RejectionHandler;
use super::table::RouteTable;
use crate::client::connection::MessageSink;
use crate::client::handle::Mqtt;
use crate::client::meters::RouteMeters;
use crate::client::shared::{Inner, Shared};
use crate::client::stats::CallOutcome;
use crate::extract::MqttRequest;
use crate::message::Message;

/// The connection task's side of the lanes.
pub(crate) struct Dispatcher {
    lanes: Vec<mpsc::Sender<Incoming>>,
    /// Per lane: told when the connection task found the lane full and waits for it.
    blocked: Vec<Arc<Notify>>,
    shared: Arc<Shared>,
}

/// A message for a lane, with the connection task's one decision about its acknowledgement.
struct Incoming {
    msg: Message,
    /// Acknowledge after the handlers succeeded (an ack-after-handling route matches it).
    ack_after: bool,
    /// The broker session it came in (see `AckAfter::ack`).
    session: u64,
}

impl MessageSink for Dispatcher {
    /// Queues a message on its topic's lane, waiting while the lane is full (backpressure).
    /// `ack_after`: the lane acknowledges it once its handlers succeeded.
    async fn message(&self, msg: Message, ack_after: bool) {
        let lane = if self.lanes.len() == 1 {
            0
        } else {
            let mut h = DefaultHasher::new();
            msg.topic().hash(&mut h);
            (h.finish() % self.lanes.len() as u64) as usize
        };
        self.shared.counters.received(msg.qos);
        self.shared.counters.meters.queued.increment(1.0);
        let incoming = Incoming {
            msg,
            ack_after,
            session: self.shared.ack_after.session(),
        };
        let sent = match self.lanes[lane].try_send(incoming) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(incoming)) => {
                self.blocked[lane].notify_one();
                self.lanes[lane].send(incoming).await.map_err(drop)
            }
            Err(TrySendError::Closed(_)) => Err(()),
        };
        if sent.is_err() {
            self.shared.counters.meters.queued.decrement(1.0);
            tracing::error!("message lane closed; message dropped");
        }
    }
}

/// Starts the lanes.
pub(crate) fn spawn(shared: Arc<Shared>, client: Weak<Inner>, table: RouteTable) -> Dispatcher {
    let n = shared.config.handler_concurrency;
    let in_flight = Arc::new(Semaphore::new(DeadLetterSender::capacity(
        n,
        shared.config.handler_queue,
    )));
    let mut lanes = Vec::with_capacity(n);
    let mut blocked = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = mpsc::channel(shared.config.handler_queue);
        let notify = Arc::new(Notify::new());
        lanes.push(tx);
        blocked.push(notify.clone());
        let dead_letters = DeadLetterSender::new(shared.clone(), in_flight.clone(), notify);
        tokio::spawn(lane(
            rx,
            table.clone(),
            shared.clone(),
            client.clone(),
            dead_letters,
        ));
    }
    Dispatcher {
        lanes,
        blocked,
        shared,
    }
}

async fn lane(
    mut rx: mpsc::Receiver<Incoming>,
    mut table: RouteTable,
    shared: Arc<Shared>,
    client: Weak<Inner>,
    dead_letters: DeadLetterSender,
) {
    let mut matching = Vec::new();
    while let Some(Incoming {
        msg,
        ack_after,
        session,
    }) = rx.recv().await
    {
        shared.counters.meters.queued.decrement(1.0);
        let mqtt = client.upgrade().map(Mqtt::from_inner);
        let mut matched = false;
        let mut ack_ok = true;
        let mut letters = Vec::new();
        table.matching(msg.topic(), &mut matching);
        for &i in &matching {
            let mut run = 1;
            loop {
                let Some(m) = table.request(i, &msg, mqtt.clone()) else {
                    break;
                };
                matched |= m.by_pattern;
                let (ack_after, retry, meters) = (m.ack_after, m.retry, m.meters);
                let (dead_letter, pattern) = (m.dead_letter, m.pattern);
                let (outcome, error) =
                    call(m.route, m.meters, m.req, &shared, m.on_rejection).await;
                let failed = matches!(outcome, CallOutcome::Error | CallOutcome::Panic);
                if failed && run < retry.attempts {
                    // In the lane: later messages of this topic wait, so their order holds.
                    run += 1;
                    shared.counters.retried(meters);
                    tracing::info!(
                        topic = msg.topic(),
                        run,
                        of = retry.attempts,
                        "running the handler again"
                    );
                    tokio::time::sleep(retry.delay(run)).await;
                    continue;
                }
                if outcome != CallOutcome::Handled {
                    // Failed for good (a rejection at once): to the dead-letter topic, if any.
                    let letter = dead_letter.and_then(|dead_letter| {
                        let f = Failed {
                            dead_letter,
                            pattern,
                            meters,
                            error: error.as_deref().unwrap_or_default(),
                            attempts: run,
                        };
                        Letter::new(&shared, &msg, f)
                    });
                    match letter {
                        Some(l) => letters.push(l),
                        None if ack_after => ack_ok = false,
                        None => {}
                    }
                }
                break;
            }
        }
        if ack_after && !ack_ok {
            // Not acknowledged: the broker redelivers it after the next reconnect (persistent session).
            tracing::warn!(
                topic = msg.topic(),
                "handler failed; message left unacknowledged"
            );
        }
        let ack = (ack_after && ack_ok).then_some(session);
        if !letters.is_empty() {
            // Acknowledged (if at all) once the broker has the dead letters.
            dead_letters
                .send(&msg, letters, ack, || rx.capacity() == 0)
                .await;
        } else if let Some(session) = ack {
            shared.ack_after.ack(&msg, session);
        }
        if !matched {
            if let Some((f, meters)) = table.fallback.as_mut() {
                let req = MqttRequest::with(msg.clone(), Vec::new(), mqtt.clone());
                call(f, meters, req, &shared, table.on_rejection.as_ref()).await;
            }
        }
        shared.streams.offer(&msg, &shared.counters);
    }
}

/// Runs one route on one message; counts and reports the outcome, with the failure's text.
async fn call(
    route: &mut Route,
    meters: &RouteMeters,
    req: MqttRequest,
    shared: &Shared,
    on_rejection: Option<&RejectionHandler>,
) -> (CallOutcome, Option<String>) {
    let msg = req.message().clone();
    let run = async {
        let svc = route.ready().await?;
        svc.call(req).await
    };
    let started = Instant::now();
    let outcome: Result<Result<Outcome, BoxError>, _> = AssertUnwindSafe(run).catch_unwind().await;
    let took = started.elapsed();
    let c = &shared.counters;
    match outcome {
        Ok(Ok(Outcome::Handled)) => {
            c.call(meters, CallOutcome::Handled, took);
            (CallOutcome::Handled, None)
        }
        Ok(Ok(Outcome::Rejected(rejection))) => {
            c.call(meters, CallOutcome::Rejected, took);
            tracing::warn!(topic = msg.topic(), kind = rejection.kind(), error = %rejection, "message rejected");
            let text = format!("rejected: {rejection}");
            if let Some(f) = on_rejection {
                let fut = f(rejection, msg);
                if AssertUnwindSafe(fut).catch_unwind().await.is_err() {
                    c.rejection_handler_panicked(meters);
                }
            }
            (CallOutcome::Rejected, Some(text))
        }
        Ok(Err(e)) => {
            c.call(meters, CallOutcome::Error, took);
            tracing::warn!(topic = msg.topic(), error = %e, "handler failed");
            (CallOutcome::Error, Some(e.to_string()))
        }
        Err(panic) => {
            c.call(meters, CallOutcome::Panic, took);
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(topic = msg.topic(), panic = %what, "handler panicked");
            (CallOutcome::Panic, Some(format!("panic: {what}")))
        }
    }
}
