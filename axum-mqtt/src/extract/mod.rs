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

mod from_message;
mod json;
mod message;
mod params;
mod payload;
mod properties;
mod rejection;
mod request;
mod state;
mod topic;

pub use from_message::{FromMessage, OptionalFromMessage};
pub use json::Json;
pub use message::Retain;
pub use params::Params;
pub use payload::{Payload, Text};
pub use properties::{ContentType, CorrelationData, ResponseTopic, UserProperties};
pub use rejection::Rejection;
pub use request::MqttRequest;

pub use state::State;
pub use topic::Topic;
