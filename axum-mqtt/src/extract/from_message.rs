//! [`FromMessage`] and [`OptionalFromMessage`]: what makes a handler argument an extractor, and
//! the extractors that are types of their own elsewhere (the message, its QoS and properties, the
//! client).

use super::rejection::Rejection;
use super::request::MqttRequest;
use crate::client::handle::Mqtt;
use crate::message::{Message, Properties, QoS};

/// Something a handler can take as an argument, built from the incoming message and the state.
///
/// A type that is not an extractor gets a compile error saying so:
///
/// ```compile_fail,E0277
/// use axum_mqtt::{Message, extract::{FromMessage, MqttRequest}};
/// let req = MqttRequest::new(Message::new("t", ""));
/// let n = u32::from_message(&req, &());
/// ```
///
/// Implement it for your own types to extract custom things (a decoded protobuf, an authenticated
/// device id, …):
///
/// ```
/// use axum_mqtt::extract::{FromMessage, MqttRequest, Rejection};
///
/// struct DeviceId(String);
///
/// impl<S> FromMessage<S> for DeviceId {
///     fn from_message(req: &MqttRequest, _state: &S) -> Result<Self, Rejection> {
///         req.message().topic().split('/').nth(1).map(|d| DeviceId(d.to_string()))
///             .ok_or(Rejection::Custom("topic has no device level".into()))
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be extracted from an MQTT message",
    label = "not an extractor",
    note = "extractors implement `FromMessage`: Topic, Text, Payload, Json<T>, Params<T>, State<T>, \
            Retain, QoS, Message, Mqtt, the MQTT 5 property extractors, or your own impl"
)]
pub trait FromMessage<S>: Sized {
    /// Builds the value, or says why it cannot.
    fn from_message(req: &MqttRequest, state: &S) -> Result<Self, Rejection>;
}

impl<S> FromMessage<S> for Message {
    fn from_message(req: &MqttRequest, _: &S) -> Result<Self, Rejection> {
        Ok(req.message().clone())
    }
}

impl<S> FromMessage<S> for QoS {
    fn from_message(req: &MqttRequest, _: &S) -> Result<Self, Rejection> {
        Ok(req.message().qos())
    }
}

impl<S> FromMessage<S> for Properties {
    fn from_message(req: &MqttRequest, _: &S) -> Result<Self, Rejection> {
        Ok(req.message().properties().cloned().unwrap_or_default())
    }
}

/// The client handle, to publish replies from a handler.
impl<S> FromMessage<S> for Mqtt {
    fn from_message(req: &MqttRequest, _: &S) -> Result<Self, Rejection> {
        req.client().cloned().ok_or(Rejection::NoClient)
    }
}

/// An extractor that can be absent: `Option<T>` is `None` only when what `T` extracts is missing
/// from the message; a malformed value is still a [`Rejection`] (axum 0.8's
/// `OptionalFromRequestParts`). Implemented for the MQTT 5 property extractors, [`Json`](super::Json) (an
/// empty payload, such as the one that clears a retained message, is absent) and the client.
///
/// ```
/// use axum_mqtt::{Message, extract::{FromMessage, Json, MqttRequest, Rejection}};
///
/// let absent = MqttRequest::new(Message::new("t", ""));
/// assert_eq!(Option::<Json<u32>>::from_message(&absent, &()), Ok(None));
/// let malformed = MqttRequest::new(Message::new("t", "not json"));
/// assert!(matches!(
///     Option::<Json<u32>>::from_message(&malformed, &()),
///     Err(Rejection::JsonSyntax { .. })
/// ));
/// ```
#[diagnostic::on_unimplemented(
    message = "`Option<{Self}>` is not an extractor: `{Self}` cannot be absent",
    note = "take `{Self}` itself, or `Result<{Self}, Rejection>` to see why extraction failed"
)]
pub trait OptionalFromMessage<S>: Sized {
    /// `Ok(None)` when absent, `Err` when present but malformed.
    fn from_message(req: &MqttRequest, state: &S) -> Result<Option<Self>, Rejection>;
}

impl<S, T: OptionalFromMessage<S>> FromMessage<S> for Option<T> {
    fn from_message(req: &MqttRequest, state: &S) -> Result<Self, Rejection> {
        T::from_message(req, state)
    }
}

impl<S> OptionalFromMessage<S> for Mqtt {
    fn from_message(req: &MqttRequest, _: &S) -> Result<Option<Self>, Rejection> {
        Ok(req.client().cloned())
    }
}

impl<S, T: FromMessage<S>> FromMessage<S> for Result<T, Rejection> {
    fn from_message(req: &MqttRequest, state: &S) -> Result<Self, Rejection> {
        Ok(T::from_message(req, state))
    }
}
