//! Dead letters ([`RouteOptions::dead_letter`](crate::router::RouteOptions::dead_letter)): a
//! message whose route failed for good is published to the route's dead-letter topic, and
//! acknowledged (ack after handling) only once the broker has the dead letter.
//!
//! The lane queues the dead letter for the broker itself, so dead letters leave in the order their
//! messages failed; the wait for the PUBACK, and the acknowledgement after it, run in a task of their
//! own. The lane must not wait for the PUBACK: the connection task that reads it may be waiting for
//! room in that very lane. For the same reason a lane that waits for room among the dead letters in
//! flight gives up when the connection task finds the lane full.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use base64::Engine as _;
use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::dead_letter_topic::DeadLetterTopic;
use crate::client::core::packet::OutPublish;
use crate::client::events::Published;
use crate::client::meters::RouteMeters;
use crate::client::shared::Shared;
use crate::config::Protocol;
use crate::error::Error;
use crate::message::{Message, Properties, QoS};
use crate::topic::TopicPattern;

/// MQTT 5 user property: the topic the message was published to.
const ORIGINAL_TOPIC: &str = "x-original-topic";
/// MQTT 5 user property: the text of the last failure.
const ERROR: &str = "x-error";
/// MQTT 5 user property: the number of runs, in decimal.
const ATTEMPTS: &str = "x-attempts";

/// The JSON a dead letter carries on MQTT 3.1.1, which has no properties.
#[derive(serde::Serialize)]
struct Envelope<'a> {
    topic: &'a str,
    error: &'a str,
    attempts: u32,
    payload_base64: String,
}

/// The dead letter of `msg`, to `topic`, after `attempts` runs of which the last failed with `error`.
fn encode(
    protocol: Protocol,
    msg: &Message,
    topic: String,
    error: &str,
    attempts: u32,
) -> Result<OutPublish, serde_json::Error> {
    let (payload, properties) = match protocol {
        Protocol::V5 => {
            let original = msg.properties();
            let mut user_properties = original
                .map(|p| p.user_properties.clone())
                .unwrap_or_default();
            user_properties.extend([
                (ORIGINAL_TOPIC.to_string(), msg.topic().to_string()),
                (ERROR.to_string(), error.to_string()),
                (ATTEMPTS.to_string(), attempts.to_string()),
            ]);
            let properties = Properties {
                content_type: original.and_then(|p| p.content_type.clone()),
                payload_format_indicator: original.and_then(|p| p.payload_format_indicator),
                user_properties,
                ..Default::default()
            };
            (msg.payload().clone(), Some(properties))
        }
        Protocol::V311 => {
            let envelope = Envelope {
                topic: msg.topic(),
                error,
                attempts,
                payload_base64: base64::engine::general_purpose::STANDARD.encode(msg.payload()),
            };
            (Bytes::from(serde_json::to_vec(&envelope)?), None)
        }
    };
    Ok(OutPublish {
        topic,
        payload,
        qos: QoS::AtLeastOnce,
        retain: false,
        properties,
    })
}

/// A dead letter about to be published, with the route it is counted for.
pub(crate) struct Letter {
    publish: OutPublish,
    meters: RouteMeters,
}

/// What a route that failed for good hands to [`Letter::new`].
pub(crate) struct Failed<'a> {
    pub dead_letter: &'a DeadLetterTopic,
    /// The route's pattern: a dead-letter topic it matches would loop.
    pub pattern: Option<&'a TopicPattern>,
    pub meters: &'a RouteMeters,
    pub error: &'a str,
    pub attempts: u32,
}

impl Letter {
    /// The dead letter of `msg`; `None` (logged and counted as a failure) when it cannot be made.
    pub fn new(shared: &Shared, msg: &Message, f: Failed<'_>) -> Option<Letter> {
        let topic = f.dead_letter.topic_for(msg.topic());
        if f.pattern.is_some_and(|p| p.matches(&topic).is_some()) {
            tracing::error!(
                topic = msg.topic(),
                dead_letter = %topic,
                "not dead-lettered: the route's own pattern matches the dead-letter topic, which would \
                 bring the message back to the handler that failed"
            );
            shared.counters.dead_letter(f.meters, false);
            return None;
        }
        match encode(shared.config.protocol, msg, topic, f.error, f.attempts) {
            Ok(publish) => Some(Letter {
                publish,
                meters: f.meters.clone(),
            }),
            Err(e) => {
                tracing::error!(topic = msg.topic(), error = %e, "not dead-lettered: cannot encode it");
                shared.counters.dead_letter(f.meters, false);
                None
            }
        }
    }
}

type Sending = Pin<Box<dyn Future<Output = Result<Published, Error>> + Send>>;

/// A lane's side of the dead letters: publishes them, and acknowledges the message after.
pub(crate) struct DeadLetterSender {
    shared: Arc<Shared>,
    /// Dead letters waiting for their PUBACK, client-wide.
    permits: Arc<Semaphore>,
    /// Notified by the connection task when it finds the lane full.
    blocked: Arc<Notify>,
}

impl DeadLetterSender {
    pub fn new(shared: Arc<Shared>, permits: Arc<Semaphore>, blocked: Arc<Notify>) -> Self {
        DeadLetterSender {
            shared,
            permits,
            blocked,
        }
    }

    /// How many dead letters may wait for their PUBACK at once: as many messages as the lanes hold.
    pub fn capacity(concurrency: usize, queue: usize) -> usize {
        concurrency
            .saturating_mul(queue)
            .clamp(1, Semaphore::MAX_PERMITS)
    }

    /// Queues `letters` for the broker, in order, then leaves the wait for their PUBACKs to a task,
    /// which acknowledges `msg` when `ack` (the session it came in) is given and every letter was
    /// published. Waits while too many dead letters are in flight; gives up (each letter counted as
    /// a failure) when meanwhile the lane fills up (`lane_full`), as the connection task is then
    /// stuck on the lane and cannot read the PUBACKs that would make room.
    pub async fn send(
        &self,
        msg: &Message,
        letters: Vec<Letter>,
        ack: Option<u64>,
        lane_full: impl Fn() -> bool,
    ) {
        let Some(permit) = self.permit(lane_full).await else {
            for l in &letters {
                self.shared.counters.dead_letter(&l.meters, false);
            }
            tracing::warn!(
                topic = msg.topic(),
                "not dead-lettered: too many dead letters wait for the broker while the connection \
                 waits for this lane; message left unacknowledged"
            );
            return;
        };
        let mut sends = Vec::with_capacity(letters.len());
        for l in letters {
            let shared = self.shared.clone();
            let topic = l.publish.topic.clone();
            let mut fut: Sending =
                Box::pin(async move { shared.requests.publish(l.publish, None).await });
            // Polled once here, in the lane: the publish is queued for the broker (or in line for
            // room, the line being fair), so dead letters leave in order.
            let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
            let state = match first {
                Poll::Ready(res) => Sent::Done(res),
                Poll::Pending => Sent::Waiting(fut),
            };
            sends.push((l.meters, topic, state));
        }
        let shared = self.shared.clone();
        let msg = msg.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut outcomes = Vec::with_capacity(sends.len());
            for (meters, topic, state) in sends {
                let res = match state {
                    Sent::Done(res) => res,
                    Sent::Waiting(fut) => fut.await,
                };
                if let Err(e) = &res {
                    tracing::error!(topic = msg.topic(), dead_letter = %topic, error = %e, "dead letter not published");
                }
                outcomes.push((meters, res.is_ok()));
            }
            let all = outcomes.iter().all(|(_, ok)| *ok);
            match ack {
                Some(session) if all => shared.ack_after.ack(&msg, session),
                Some(_) => tracing::warn!(
                    topic = msg.topic(),
                    "message left unacknowledged: its dead letter was not published"
                ),
                None => {}
            }
            // Counted once the acknowledgement is queued: a count seen is an ack on its way.
            for (meters, ok) in outcomes {
                shared.counters.dead_letter(&meters, ok);
            }
        });
    }

    /// Room for one more message's dead letters; `None` when the lane fills up while waiting.
    async fn permit(&self, lane_full: impl Fn() -> bool) -> Option<OwnedSemaphorePermit> {
        let acquire = self.permits.clone().acquire_owned();
        tokio::pin!(acquire);
        loop {
            tokio::select! {
                biased;
                p = &mut acquire => return p.ok(),
                // A notification may be older than the last message taken: only a full lane counts.
                () = self.blocked.notified() => if lane_full() {
                    return None;
                },
            }
        }
    }
}

/// A dead letter after its first poll.
enum Sent {
    Done(Result<Published, Error>),
    Waiting(Sending),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> Message {
        Message::new("orders/42", &b"{\"id\":42}"[..]).with_properties(Properties {
            content_type: Some("application/json".into()),
            response_topic: Some("replies/1".into()),
            message_expiry_interval: Some(60),
            user_properties: vec![("tenant".into(), "a".into())],
            ..Default::default()
        })
    }

    #[test]
    fn on_mqtt_5_the_payload_stays_and_the_facts_are_user_properties() {
        let out = encode(
            Protocol::V5,
            &failed(),
            "dlq/orders/42".into(),
            "out of stock",
            3,
        )
        .unwrap();
        assert_eq!(
            (out.topic.as_str(), out.qos, out.retain),
            ("dlq/orders/42", QoS::AtLeastOnce, false)
        );
        assert_eq!(&out.payload[..], b"{\"id\":42}");
        let p = out.properties.unwrap();
        let pairs: Vec<(&str, &str)> = p
            .user_properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("tenant", "a"),
                ("x-original-topic", "orders/42"),
                ("x-error", "out of stock"),
                ("x-attempts", "3")
            ]
        );
        assert_eq!(p.content_type.as_deref(), Some("application/json"));
        assert_eq!((p.response_topic, p.message_expiry_interval), (None, None));
    }

    #[test]
    fn on_mqtt_3_the_dead_letter_is_a_json_envelope_with_the_payload_in_base64() {
        let msg = Message::new("orders/42", &b"{\"id\":42}"[..]);
        let out = encode(
            Protocol::V311,
            &msg,
            "dlq/orders/42".into(),
            "out of stock",
            3,
        )
        .unwrap();
        assert!(out.properties.is_none());
        assert_eq!(
            std::str::from_utf8(&out.payload).unwrap(),
            r#"{"topic":"orders/42","error":"out of stock","attempts":3,"payload_base64":"eyJpZCI6NDJ9"}"#
        );
    }

    #[test]
    fn at_least_one_dead_letter_may_be_in_flight() {
        assert_eq!(DeadLetterSender::capacity(8, 256), 2048);
        assert_eq!(DeadLetterSender::capacity(0, 0), 1);
        assert_eq!(
            DeadLetterSender::capacity(usize::MAX, 2),
            Semaphore::MAX_PERMITS
        );
    }
}
