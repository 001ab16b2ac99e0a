//! The requests the core books, as the link writes them for either protocol version.

use bytes::Bytes;

use crate::error::ReasonCode;
use crate::message::{Properties, QoS};

/// The broker's answer for one filter of a SUBSCRIBE: the granted QoS, or why it refused.
pub(crate) type SubCode = Result<QoS, ReasonCode>;

/// An outgoing publish, before it is turned into a version's packet.
#[derive(Debug, Clone)]
pub(crate) struct OutPublish {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub properties: Option<Properties>,
}
