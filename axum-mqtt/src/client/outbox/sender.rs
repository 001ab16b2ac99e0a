//! The sender task: stored messages to the broker, oldest first, marked done once acknowledged.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;

use super::store::{Row, RowState};
use super::{Outbox, KEEP_FINISHED};
use crate::client::events::Published;
use crate::client::requests::{Requests, Stop};
use crate::Error;

/// How often the age of the oldest message is measured for `mqtt_outbox_oldest_age_seconds`.
const AGE_EVERY: Duration = Duration::from_secs(1);

type Sent = (Row, Result<Published, Error>);

/// Runs until the client stops, with at most `window` messages in flight. Messages left on disk
/// then go out on the next start.
pub(crate) async fn run(outbox: Outbox, requests: Arc<Requests>, window: usize) {
    let window = window.max(1);
    let mut stop = requests.watch_stop();
    let mut inflight = FuturesUnordered::new();
    // Stored rows after this id have not been sent by this run yet.
    let mut cursor = 0u64;
    // Rows to send again first (a QoS 2 exchange the broker's new session lost).
    let mut again: VecDeque<Row> = VecDeque::new();
    let mut age = tokio::time::interval(AGE_EVERY);
    let mut finished_since_prune = 0usize;
    loop {
        let running = *stop.borrow() == Stop::Running;
        if running && inflight.len() < window {
            let room = window - inflight.len();
            let mut rows: Vec<Row> = again.drain(..room.min(again.len())).collect();
            if rows.len() < room {
                let n = room - rows.len();
                match outbox.blocking(move |s| s.store.next(cursor, n)).await {
                    Ok(more) => rows.extend(more),
                    Err(e) => tracing::error!(error = %e, "cannot read the outbox"),
                }
            }
            let mut refused: Vec<(u64, Error)> = Vec::new();
            for row in rows {
                cursor = cursor.max(row.id);
                if let Err(e) = requests.check(&row.msg) {
                    // Stored under another configuration (e.g. MQTT 5 properties, now 3.1.1).
                    refused.push((row.id, e));
                    continue;
                }
                match requests.enqueue(row.msg.clone()).await {
                    Ok(rx) => inflight.push(
                        rx.map(move |r| (row, r.unwrap_or(Err(Error::Closed))))
                            .boxed(),
                    ),
                    Err(Error::Closed) => break,
                    Err(e) => refused.push((row.id, e)),
                }
            }
            if !refused.is_empty() {
                let replies = refused
                    .iter()
                    .map(|(id, e)| (*id, Err(e.clone())))
                    .collect();
                let done = refused
                    .into_iter()
                    .map(|(id, e)| {
                        (
                            id,
                            RowState::Failed {
                                reason: e.to_string(),
                            },
                        )
                    })
                    .collect();
                finish(&outbox, done, replies).await;
            }
        }
        if !running && inflight.is_empty() {
            break;
        }
        tokio::select! {
            Some(first) = inflight.next() => {
                let mut sent: Vec<Sent> = vec![first];
                // Every other ack that is already in: one commit for all of them.
                while let Some(Some(more)) = inflight.next().now_or_never() {
                    sent.push(more);
                }
                let mut done = Vec::with_capacity(sent.len());
                let mut replies = Vec::with_capacity(sent.len());
                for (row, res) in sent {
                    match res {
                        Ok(p) => {
                            done.push((row.id, RowState::Acked { mid: p.mid }));
                            replies.push((row.id, Ok(p)));
                        }
                        Err(Error::SessionLost) => again.push_back(row),
                        // Shutting down: stays stored for the next run.
                        Err(Error::Closed) => {}
                        Err(e) => {
                            tracing::warn!(id = row.id, topic = %row.msg.topic, error = %e, "outbox message refused");
                            done.push((row.id, RowState::Failed { reason: e.to_string() }));
                            replies.push((row.id, Err(e)));
                        }
                    }
                }
                finished_since_prune += done.len();
                finish(&outbox, done, replies).await;
                if finished_since_prune >= KEEP_FINISHED / 10 {
                    finished_since_prune = 0;
                    if let Err(e) = outbox.blocking(|s| s.store.prune(KEEP_FINISHED)).await {
                        tracing::warn!(error = %e, "cannot prune the outbox");
                    }
                }
            }
            _ = outbox.inner.wake.notified(), if running && inflight.len() < window => {}
            _ = age.tick() => {
                if let Ok(age) = outbox.oldest_age().await {
                    outbox.inner.meters.oldest_age.set(age.map_or(0.0, |a| a.as_secs_f64()));
                }
            }
            _ = stop.changed(), if running => {}
        }
    }
    tracing::debug!("outbox sender stopped");
}

/// Marks rows done on disk, then answers the callers still waiting for them.
async fn finish(
    outbox: &Outbox,
    done: Vec<(u64, RowState)>,
    replies: Vec<(u64, Result<Published, Error>)>,
) {
    let meters = outbox.inner.meters.clone();
    let res = outbox
        .blocking(move |s| {
            s.store.finish(&done)?;
            for (_, state) in &done {
                match state {
                    RowState::Acked { .. } => meters.acked.increment(1),
                    RowState::Failed { .. } => meters.failed.increment(1),
                    RowState::Queued => {}
                }
            }
            meters.messages.set(s.store.depth.messages as f64);
            meters.bytes.set(s.store.depth.bytes as f64);
            for (id, r) in replies {
                if let Some(tx) = s.waiters.remove(&id) {
                    let _ = tx.send(r);
                }
            }
            Ok(())
        })
        .await;
    if let Err(e) = res {
        // The broker has the messages; marking them failed means they are sent again (at least once).
        tracing::error!(error = %e, "cannot mark acknowledged outbox messages");
    }
}
