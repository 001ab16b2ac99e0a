//! Extractors: typed pieces of a message, taken by handler arguments, as in axum.
//!
//! A handler is an async function whose arguments implement [`FromMessage`]:
//!
//! ```
//! use axum_mqtt::extract::{Json, Params, State, Topic};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Reading { celsius: f64 }
//!
//! #[derive(Deserialize)]
//! struct Device { device: String }
//!
//! async fn on_temp(Topic(topic): Topic, Params(d): Params<Device>, Json(r): Json<Reading>, State(db): State<Db>) {
//!     db.store(&d.device, r.celsius);
//!     println!("{topic}: {}", r.celsius);
//! }
//! # #[derive(Clone)] struct Db; impl Db { fn store(&self, _: &str, _: f64) {} }
//! ```
//!
//! When an extractor fails the handler is not called; the [`Rejection`] is logged, counted, and
//! passed to the router's rejection handler (see [`Router::on_rejection`](crate::Router::on_rejection)).
//! Extraction is synchronous: the whole payload is already in memory.

mod json;
mod message;
mod params;
mod payload;
mod properties;
mod rejection;
mod request;
mod state;
mod topic;

pub use json::Json;
pub use message::Retain;
pub use params::Params;
pub use payload::{Payload, Text};
pub use properties::{ContentType, CorrelationData, ResponseTopic, UserProperties};
pub use rejection::Rejection;
pub use request::MqttRequest;

pub use state::State;
pub use topic::Topic;

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

impl<S> FromMessage<S> for crate::Message {
    fn from_message(req: &MqttRequest, _: &S) -> Result<Self, Rejection> {
        Ok(req.message().clone())
    }
}

impl<S> FromMessage<S> for crate::QoS {
    fn from_message(req: &MqttRequest, _: &S) -> Result<Self, Rejection> {
        Ok(req.message().qos())
    }
}

impl<S> FromMessage<S> for crate::Properties {
    fn from_message(req: &MqttRequest, _: &S) -> Result<Self, Rejection> {
        Ok(req.message().properties().cloned().unwrap_or_default())
    }
}

/// The client handle, to publish replies from a handler.
impl<S> FromMessage<S> for crate::Mqtt {
    fn from_message(req: &MqttRequest, _: &S) -> Result<Self, Rejection> {
        req.client().cloned().ok_or(Rejection::NoClient)
    }
}

/// An extractor that can be absent: `Option<T>` is `None` only when what `T` extracts is missing
/// from the message; a malformed value is still a [`Rejection`] (axum 0.8's
/// `OptionalFromRequestParts`). Implemented for the MQTT 5 property extractors, [`Json`] (an
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

impl<S> OptionalFromMessage<S> for crate::Mqtt {
    fn from_message(req: &MqttRequest, _: &S) -> Result<Option<Self>, Rejection> {
        Ok(req.client().cloned())
    }
}

impl<S, T: FromMessage<S>> FromMessage<S> for Result<T, Rejection> {
    fn from_message(req: &MqttRequest, state: &S) -> Result<Self, Rejection> {
        Ok(T::from_message(req, state))
    }
}
