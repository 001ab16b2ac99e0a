#![doc = include_str!("docs/front.md")]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::print_stdout, clippy::dbg_macro))]

mod client;
pub mod config;
mod error;
pub mod extract;
mod message;
pub mod router;
pub mod rpc;
pub mod topic;
pub mod web;

pub use client::events;
pub use client::{
    Connack, ConnectionState, Disconnected, MessageStream, Mqtt, MqttBuilder, Publish, Published,
    Stats, Status, Subscribed, Unsubscribed,
};
pub use config::{ConfigError, MqttConfig, Protocol, Transport};
pub use error::Error;
pub use message::{Message, Properties, QoS};
pub use router::Router;
