#![doc = include_str!("docs/front.md")]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::print_stdout, clippy::dbg_macro))]

#[cfg(any(feature = "asyncapi", feature = "openapi"))]
mod api_docs;
mod builder;
mod client;
mod config;
mod error;
pub mod extract;
#[cfg(test)]
mod generated_docs;
mod message;
pub mod router;
pub mod rpc;
pub mod topic;
pub mod web;

#[cfg(feature = "asyncapi")]
pub use api_docs::asyncapi;
pub use builder::MqttBuilder;
pub use client::{
    Connack, ConnectionState, Disconnected, MessageStream, Mqtt, Publish, Published, Stats, Status,
    Subscribed, Unsubscribed,
};
#[cfg(feature = "outbox")]
pub use client::{Delivery, Outbox, OutboxDepth, OutboxId, OutboxStatus};
pub use config::{
    BrokerAddr, LastWill, MqttConfig, OutboxConfig, Protocol, TlsConfig, TlsVersion, Transport,
};
pub use error::{
    ConfigError, Error, OutboxCause, OutboxError, OutboxLimit, ReasonCode, RouterError,
    RouterSetting, StartError, TlsError,
};
pub use message::{Message, Properties, QoS};
pub use router::routes::Router;
