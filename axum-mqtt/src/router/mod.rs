//! Routing messages to handlers by topic, the way axum routes requests by path.
//!
//! ```
//! use axum_mqtt::{Router, extract::{Params, Json, Topic}};
//!
//! #[derive(serde::Deserialize)]
//! struct Reading { celsius: f64 }
//!
//! async fn temperature(Params(device): Params<String>, Json(r): Json<Reading>) {
//!     println!("{device}: {} °C", r.celsius);
//! }
//! async fn logs(Topic(t): Topic) {}
//! async fn anything_else() {}
//!
//! let router: Router = Router::new()
//!     .route("sensors/{device}/temperature", temperature) // subscribes sensors/+/temperature
//!     .route("logs/{*rest}", logs)                        // subscribes logs/#
//!     .fallback(anything_else);
//! assert_eq!(router.subscriptions().len(), 2);
//! ```
//!
//! **Which handlers run.** Every route whose pattern matches the message's topic runs, in the order
//! the routes were added (as paho runs every matching `message_callback_add`). The fallback runs only
//! when no route matched. Catch-all handlers ([`MqttBuilder::on_message`](crate::MqttBuilder::on_message))
//! run for every message. A broker may deliver one message once per overlapping subscription; MQTT
//! offers no way to tell such copies apart, so avoid overlapping routes when that matters.
//!
//! **Subscriptions.** Each route subscribes to its filter with its QoS (default 1) on every connect
//! and reconnect; users never write the subscribe-in-`on_connect` dance. With
//! [`Router::shared`](crate::Router::shared) (or `MQTT_SHARED_GROUP`) the subscriptions become
//! `$share/<group>/<filter>` so several app instances split the messages, while matching still
//! uses the real topic.

mod dead_letter_sender;
mod dead_letter_topic;
pub(crate) mod dispatch;
#[cfg(feature = "asyncapi")]
pub(crate) mod doc;
mod handler;
mod options;
mod route;
pub(crate) mod routes;
pub(crate) mod table;
mod trace;

pub use handler::{Handler, IntoHandlerResult};
pub use options::RouteOptions;
pub use route::{Outcome, Route};
pub use trace::{Trace, TraceLayer};
