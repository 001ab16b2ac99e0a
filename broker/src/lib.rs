//! An embedded MQTT broker for axum-mqtt apps, examples and tests.
//!
//! This wraps [rmqtt](https://docs.rs/rmqtt) so that a program can serve MQTT from its own process
//! with one call, no installation needed:
//!
//! * one TCP listener for MQTT 3.1.1 **and** 5 (the protocol is read from each CONNECT),
//! * an optional WebSocket listener for both versions (any path; clients use `/mqtt`),
//! * an optional TLS listener (mqtts) from PEM certificate and key files,
//! * retained messages, shared subscriptions (`$share/<group>/<filter>`), wills (with MQTT 5 delay),
//!   persistent sessions for `clean_session = false` / session-expiry clients while the broker runs.
//!
//! Every listener may be given port 0; the ports actually bound are reported by
//! [`EmbeddedBroker::tcp_addr`], [`EmbeddedBroker::ws_addr`] and [`EmbeddedBroker::tls_addr`].
//! The broker runs on its own threads (its own tokio runtime), so it neither needs nor starves
//! the caller's runtime; [`EmbeddedBroker::stop`] (or dropping the last handle) closes the
//! listeners and ends every connection, and one process may start and stop as many brokers as it
//! likes.
//!
//! ```
//! use axum_mqtt_broker::{BrokerConfig, EmbeddedBroker};
//!
//! let broker = EmbeddedBroker::start(BrokerConfig::new("127.0.0.1:0".parse().unwrap()))?;
//! println!("MQTT 3.1.1 and 5 on mqtt://{}", broker.tcp_addr());
//! broker.stop();
//! # Ok::<(), axum_mqtt_broker::BrokerError>(())
//! ```
//!
//! Known deviations of rmqtt 0.24 from MQTT, measured by this crate's tests: a topic level that
//! starts with `$` anywhere in a topic (`a/$b/c`, not only `$SYS/..`) is never matched by `+` or
//! `#`; a 3.1.1 publish refused for too many levels ([`Limits::max_topic_levels`]) is dropped
//! without a word, as 3.1.1 has no way to say so. rmqtt's own WebSocket listener is not used (it
//! drops connections that send an empty WebSocket message, as MQTT.js does): WebSocket
//! connections go through a relay to the TCP listener, so the broker sees them as loopback peers.
//!
//! Which rmqtt: `axum-mqtt-rmqtt` 0.24.0, rmqtt 0.24.0 (the newest release) with our fixes,
//! published under our name so that everyone who depends on this crate gets them (a
//! `[patch.crates-io]` entry would fix only this workspace). Its library is still called `rmqtt`.
//! rmqtt 0.24.0 loses or reorders QoS 1 messages when a resumed session is taken over by a new
//! connection while messages for it flow; the fork has that fixed. So do the retainer and
//! shared-subscription plugins (`axum-mqtt-rmqtt-retainer`, `axum-mqtt-rmqtt-shared-subscription`,
//! upstream's code built on the fork). The repository's `vendor/README.md` lists every fix, each
//! also kept as a patch against upstream.
//!
//! With the feature `cluster`, a broker can be one node of an rmqtt broadcast cluster
//! ([`BrokerConfig::with_cluster`]); the binary `axum-mqtt-cluster-node` starts such a node from
//! the command line. The cluster plugin is rmqtt-cluster-broadcast 0.24.0's code inside this crate
//! (MIT, `src/cluster/broadcast/`), with its losses of a persistent session that moves to another
//! live node fixed: the session keeps its subscriptions and queued messages, and a message in
//! flight between nodes while it moves is forwarded by the old node to the new one, which parks it
//! until the session is set and gives each message once. Sessions stay node-local: a node that
//! dies takes its sessions and the messages queued for them.
//!
//! rmqtt logs through the `log` crate; a `tracing-subscriber` with its default `tracing-log`
//! feature picks those records up, so `RUST_LOG=rmqtt=debug` shows them.
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::print_stdout, clippy::dbg_macro))]

#[cfg(feature = "cluster")]
mod cluster;
mod config;
mod guard;
mod server;
mod ws;

#[cfg(feature = "cluster")]
pub use cluster::{ClusterConfig, ClusterNode};
pub use config::{BrokerConfig, Limits, TlsListener};
pub use server::{BrokerStats, EmbeddedBroker};

use std::net::SocketAddr;

/// What can go wrong when starting the embedded broker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// A listen address is taken by another program (or not ours to bind).
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Which listener (`MQTT`, `WebSocket`, `TLS`).
        what: &'static str,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The TLS listener's certificate or key could not be loaded.
    #[error("TLS listener on {addr}: {reason}")]
    Tls {
        /// The address asked for.
        addr: SocketAddr,
        /// What is wrong with the files.
        reason: String,
    },
    /// A limit is out of range.
    #[error("invalid broker setting {name}: {reason}")]
    Config {
        /// The setting (`max_inflight`, ...).
        name: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// The broker's thread, runtime or plugins could not be started.
    #[error("embedded broker failed to start: {0}")]
    Start(String),
}
