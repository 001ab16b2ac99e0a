//! Messages, QoS and MQTT 5 properties: the plain data handlers see.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Quality of service of a message or subscription.
///
/// Serialized as the number 0, 1 or 2 (as in Flask-MQTT's `qos=` arguments).
///
/// ```
/// use axum_mqtt::QoS;
/// assert_eq!(QoS::parse("1"), Some(QoS::AtLeastOnce));
/// assert_eq!(QoS::try_from(3u8).unwrap_err(), "QoS must be 0, 1 or 2, got 3");
/// assert_eq!(serde_json::to_string(&QoS::ExactlyOnce).unwrap(), "2");
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(try_from = "u8", into = "u8")]
pub enum QoS {
    /// 0: at most once.
    #[default]
    AtMostOnce,
    /// 1: at least once (PUBACK).
    AtLeastOnce,
    /// 2: exactly once (PUBREC/PUBREL/PUBCOMP).
    ExactlyOnce,
}

impl QoS {
    /// Parses `0`, `1` or `2`.
    pub fn parse(s: &str) -> Option<QoS> {
        s.trim()
            .parse::<u8>()
            .ok()
            .and_then(|n| QoS::try_from(n).ok())
    }
}

impl TryFrom<u8> for QoS {
    type Error = String;
    fn try_from(n: u8) -> Result<Self, String> {
        match n {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            _ => Err(format!("QoS must be 0, 1 or 2, got {n}")),
        }
    }
}

impl From<QoS> for u8 {
    fn from(q: QoS) -> u8 {
        q as u8
    }
}

/// MQTT 5 publish properties, for messages received and sent.
///
/// ```
/// use axum_mqtt::Properties;
/// let props = Properties {
///     content_type: Some("application/json".into()),
///     user_properties: vec![("source".into(), "web".into())],
///     ..Default::default()
/// };
/// assert!(!props.is_empty());
/// assert!(Properties::default().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// MIME type of the payload.
    pub content_type: Option<String>,
    /// Where a reply should be published (request/response).
    pub response_topic: Option<String>,
    /// Data that ties a reply to its request.
    pub correlation_data: Option<Bytes>,
    /// Application key/value pairs, in order, duplicates allowed.
    pub user_properties: Vec<(String, String)>,
    /// Seconds after which the broker may drop the message.
    pub message_expiry_interval: Option<u32>,
    /// `Some(1)` when the payload is UTF-8 text.
    pub payload_format_indicator: Option<u8>,
}

impl Properties {
    /// True when no property is set.
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }
}

/// A message received from the broker.
///
/// Cheap to clone: the payload is reference counted.
///
/// ```
/// use axum_mqtt::{Message, QoS};
/// let m = Message::new("sensors/1/temp", "21.5");
/// assert_eq!(m.topic(), "sensors/1/temp");
/// assert_eq!(m.payload_str(), Some("21.5"));
/// assert_eq!(m.qos(), QoS::AtMostOnce);
/// ```
#[derive(Debug, Clone)]
pub struct Message {
    pub(crate) topic: Arc<str>,
    pub(crate) payload: Bytes,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) dup: bool,
    pub(crate) pkid: u16,
    pub(crate) properties: Option<Arc<Properties>>,
}

impl Message {
    /// A QoS 0 message, as a broker would deliver it (useful in tests of handlers).
    pub fn new(topic: impl Into<Arc<str>>, payload: impl Into<Bytes>) -> Self {
        Message {
            topic: topic.into(),
            payload: payload.into(),
            qos: QoS::AtMostOnce,
            retain: false,
            dup: false,
            pkid: 0,
            properties: None,
        }
    }

    /// Returns the message with the given QoS.
    pub fn with_qos(mut self, qos: QoS) -> Self {
        self.qos = qos;
        self
    }

    /// Returns the message with the retain flag set as given.
    pub fn with_retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }

    /// Returns the message with MQTT 5 properties.
    pub fn with_properties(mut self, properties: Properties) -> Self {
        self.properties = Some(Arc::new(properties));
        self
    }

    /// The concrete topic the message was published to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The raw payload.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The payload as UTF-8 text, if it is.
    pub fn payload_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }

    /// QoS the message was delivered with.
    pub fn qos(&self) -> QoS {
        self.qos
    }

    /// True when the broker sent a retained message (e.g. on subscribe).
    pub fn retain(&self) -> bool {
        self.retain
    }

    /// True when this is a redelivery.
    pub fn dup(&self) -> bool {
        self.dup
    }

    /// The packet id the broker sent it with (paho's `mid`); 0 at QoS 0.
    ///
    /// ```
    /// assert_eq!(axum_mqtt::Message::new("a", "b").pkid(), 0);
    /// ```
    pub fn pkid(&self) -> u16 {
        self.pkid
    }

    /// MQTT 5 properties (`None` on MQTT 3.1.1).
    pub fn properties(&self) -> Option<&Properties> {
        self.properties.as_deref()
    }
}
