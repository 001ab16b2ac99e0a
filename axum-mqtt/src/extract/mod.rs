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
pub mod rejection;
mod state;
mod topic;

pub use json::Json;
pub use message::Retain;
pub use params::Params;
pub use payload::{Payload, Text};
pub use properties::{ContentType, CorrelationData, ResponseTopic, UserProperties};
pub use rejection::Rejection;
pub use state::State;
pub use topic::Topic;

use crate::router::MqttRequest;

/// Something a handler can take as an argument, built from the incoming message and the state.
///
/// Implement it for your own types to extract custom things (a decoded protobuf, an authenticated
/// device id, …):
///
/// ```
/// use axum_mqtt::extract::{FromMessage, Rejection};
/// use axum_mqtt::router::MqttRequest;
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

impl<S, T: FromMessage<S>> FromMessage<S> for Option<T> {
    fn from_message(req: &MqttRequest, state: &S) -> Result<Self, Rejection> {
        Ok(T::from_message(req, state).ok())
    }
}

impl<S, T: FromMessage<S>> FromMessage<S> for Result<T, Rejection> {
    fn from_message(req: &MqttRequest, state: &S) -> Result<Self, Rejection> {
        Ok(T::from_message(req, state))
    }
}
