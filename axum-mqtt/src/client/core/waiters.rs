//! Who waits for what: a caller's end of a request, answered once by the core's owner.

use std::sync::Weak;

use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::deadlines::Deadline;
use super::packet::SubCode;
use crate::client::events::Published;
use crate::client::slot::Slot;
use crate::error::Error;
use crate::message::QoS;

pub(crate) type PubReply = oneshot::Sender<Result<Published, Error>>;
pub(crate) type SubReply = oneshot::Sender<Result<Vec<SubCode>, Error>>;
pub(crate) type UnsubReply = oneshot::Sender<Result<(), Error>>;

/// A caller waiting for a publish to be acknowledged.
pub(crate) struct PubWaiter {
    pub reply: Option<PubReply>,
    pub qos: QoS,
    /// The broker sent PUBREC (QoS 2): it has the message.
    pub received: bool,
    /// When the caller gives up waiting (see `deadlines.rs`).
    pub deadline: Option<Deadline>,
    pub _permit: Option<OwnedSemaphorePermit>,
}

impl PubWaiter {
    pub fn finish(mut self, res: Result<Published, Error>) {
        if let Some(r) = self.reply.take() {
            let _ = r.send(res);
        }
    }
}

/// A caller (or the restore of all subscriptions) waiting for a SUBACK.
pub(crate) struct SubWaiter {
    pub filters: Vec<(String, QoS)>,
    pub reply: Option<SubReply>,
    /// Callers whose own SUBSCRIBE was folded into this one (restore after reconnect).
    pub attached: Vec<SubWaiter>,
    /// The new stream this SUBSCRIBE is for: the retained messages it brings are that stream's.
    pub stream: Option<Weak<Slot>>,
    pub _permit: Option<OwnedSemaphorePermit>,
}

impl SubWaiter {
    /// The restore of every subscription after a reconnect, answering `attached` callers from it.
    pub fn restore(filters: Vec<(String, QoS)>, attached: Vec<SubWaiter>) -> Self {
        SubWaiter {
            filters,
            reply: None,
            attached,
            stream: None,
            _permit: None,
        }
    }

    /// Answers this waiter and every attached one from the codes of this request's filters.
    pub fn finish(mut self, res: Result<Vec<SubCode>, Error>) {
        for a in std::mem::take(&mut self.attached) {
            let mine = match &res {
                // A filter the SUBACK has no code for fails the whole request.
                Ok(codes) => a
                    .filters
                    .iter()
                    .map(|(f, _)| {
                        self.filters
                            .iter()
                            .position(|(g, _)| g == f)
                            .and_then(|i| codes.get(i).cloned())
                            .ok_or(Error::MissingSubackCode)
                    })
                    .collect(),
                Err(e) => Err(e.clone()),
            };
            a.finish(mine);
        }
        if let Some(r) = self.reply.take() {
            let _ = r.send(res);
        }
    }
}

/// A caller waiting for an UNSUBACK.
pub(crate) struct UnsubWaiter {
    pub filters: Vec<String>,
    pub reply: Option<UnsubReply>,
    pub _permit: Option<OwnedSemaphorePermit>,
}

impl UnsubWaiter {
    pub fn finish(mut self, res: Result<(), Error>) {
        if let Some(r) = self.reply.take() {
            let _ = r.send(res);
        }
    }
}
