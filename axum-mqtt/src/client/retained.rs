//! Who gets the retained messages a SUBSCRIBE brings.
//!
//! A broker sends retained messages only in answer to a SUBSCRIBE, with the retain flag set; live
//! messages are forwarded with it cleared (MQTT 3.1.1 §3.3.1.3; MQTT 5 without Retain As
//! Published, which we never ask for). When a new stream subscribes again to a filter that is
//! already held, the retained messages answering that SUBSCRIBE are the new stream's alone:
//! handing them to the routes or to streams already open would duplicate what those saw when
//! they subscribed. The connection task keeps track: a stream's SUBACK points the retained
//! messages that follow at that stream, until the next SUBACK or a reconnect.

use std::sync::{Arc, Weak};

use super::slot::Slot;
use crate::message::Message;

#[derive(Default)]
pub(crate) struct RetainedRoutes {
    /// The stream whose SUBSCRIBE was answered last, when the last SUBACK was a stream's: the
    /// retained messages arriving now answer that SUBSCRIBE (a broker sends them right after the
    /// SUBACK, before it reads our next SUBSCRIBE).
    current: Option<Weak<Slot>>,
}

impl RetainedRoutes {
    /// A SUBACK; `stream` when the SUBSCRIBE was made for a new stream.
    pub fn on_suback(&mut self, stream: Option<&Weak<Slot>>) {
        self.current = stream.cloned();
    }

    /// A new connection: every subscription is new, its retained messages are for everyone.
    pub fn clear(&mut self) {
        self.current = None;
    }

    /// The stream a retained message is for alone, or `None` when it goes the usual way.
    pub fn recipient(&mut self, msg: &Message) -> Option<Arc<Slot>> {
        if !msg.retain() {
            return None;
        }
        let slot = self.current.as_ref()?.upgrade();
        if slot.is_none() {
            self.current = None; // the stream is gone already
        }
        slot.filter(|s| s.wants(msg.topic()))
    }
}
