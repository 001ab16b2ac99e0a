//! [`AckAfter`]: acknowledging a message only once its handlers succeeded
//! ([`RouteOptions::ack_after_handling`](crate::router::RouteOptions::ack_after_handling)).

use std::sync::atomic::{AtomicU64, Ordering};

use super::link::Sender;
use crate::message::{Message, QoS};
use crate::topic::TopicPattern;

/// Which messages wait for their handlers before they are acknowledged, and the acks themselves.
pub(crate) struct AckAfter {
    /// Patterns of routes that acknowledge after handling; empty when rumqttc acks by itself.
    patterns: Vec<TopicPattern>,
    /// CONNACKs without a session so far: a packet id means the same message only while this stays.
    fresh_sessions: AtomicU64,
    sender: Sender,
}

impl AckAfter {
    /// Acks after handling for the routes matching `patterns`, sent through `sender`.
    pub fn new(patterns: Vec<TopicPattern>, sender: Sender) -> Self {
        AckAfter {
            patterns,
            fresh_sessions: AtomicU64::new(0),
            sender,
        }
    }

    /// True when some route acknowledges after handling (rumqttc's own acks are off then, and
    /// every other message is acknowledged on receipt by the connection task).
    pub fn is_on(&self) -> bool {
        !self.patterns.is_empty()
    }

    /// True when `msg` must wait for its handlers before being acknowledged.
    pub fn applies_to(&self, msg: &Message) -> bool {
        msg.qos != QoS::AtMostOnce
            && self
                .patterns
                .iter()
                .any(|p| p.matches(msg.topic()).is_some())
    }

    /// The session a message received now belongs to (see [`ack`](Self::ack)).
    pub fn session(&self) -> u64 {
        self.fresh_sessions.load(Ordering::Acquire)
    }

    /// The broker started a fresh session (a CONNACK without one): called before any message of
    /// it reaches a lane.
    pub fn session_lost(&self) {
        self.fresh_sessions.fetch_add(1, Ordering::Release);
    }

    /// Acknowledges a message that waited for its handlers, received in `session`.
    ///
    /// Not when the broker started a fresh session since: the message is gone with the old session,
    /// and its packet id may already name another message, which the ack would then lose. (After a
    /// resumed session the ack is right: the broker redelivers the message with the same packet id.)
    pub fn ack(&self, msg: &Message, session: u64) {
        if self.session() != session {
            tracing::info!(
                topic = msg.topic(),
                "not acknowledged: the broker's session it came in is gone"
            );
            return;
        }
        if let Err(e) = self.sender.try_ack(msg.pkid, msg.qos) {
            tracing::error!(topic = msg.topic(), error = %e, "could not queue the acknowledgement");
        }
    }
}
