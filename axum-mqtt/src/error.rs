//! The crate's error types.

/// A configuration value that cannot be used. The message names the key and the value.
///
/// ```
/// let e = axum_mqtt::MqttConfig::from_pairs("MQTT2", [("MQTT2_KEEPALIVE", "soon")]).unwrap_err();
/// assert_eq!(e.key, "MQTT2_KEEPALIVE");
/// assert_eq!(e.to_string(), "MQTT2_KEEPALIVE=\"soon\": expected a whole number");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}={value:?}: {reason}")]
pub struct ConfigError {
    /// The full key, prefix included (e.g. `MQTT_BROKER_PORT`).
    pub key: String,
    /// The offending value (passwords are masked).
    pub value: String,
    /// What is expected instead.
    pub reason: String,
}

/// Everything an MQTT operation can fail with.
///
/// Each variant says what went wrong in words a user can act on; none of them is ever a panic.
///
/// ```
/// use axum_mqtt::{Error, topic};
///
/// let err = topic::validate_topic("a/+/b").unwrap_err();
/// assert!(matches!(err, Error::InvalidTopic { .. }));
/// assert!(err.to_string().contains("wildcard"));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; the inner error names the key.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A topic name (for publishing) is not valid.
    #[error("invalid topic {topic:?}: {reason}")]
    InvalidTopic {
        /// The topic as given.
        topic: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A dead-letter topic template
    /// ([`RouteOptions::dead_letter`](crate::router::RouteOptions::dead_letter)) cannot give a
    /// topic to publish to.
    ///
    /// ```
    /// use axum_mqtt::{router::RouteOptions, Error, Mqtt, MqttConfig, Router};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let opts = RouteOptions::new().dead_letter("dlq/#");
    /// let router: Router = Router::new().route_with("orders/{id}", opts, || async {});
    /// let err = Mqtt::builder(MqttConfig::default()).router(router).start().await.unwrap_err();
    /// assert!(matches!(err, Error::InvalidDeadLetter { .. }));
    /// assert!(err.to_string().contains("wildcard"));
    /// # });
    /// ```
    #[error("invalid dead-letter topic template {template:?}: {reason}")]
    InvalidDeadLetter {
        /// The template as given.
        template: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A topic filter (for subscribing) is not valid.
    #[error("invalid topic filter {filter:?}: {reason}")]
    InvalidFilter {
        /// The filter as given.
        filter: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// The payload is larger than the configured maximum packet size.
    #[error("payload of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PayloadTooLarge {
        /// Payload size in bytes.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// MQTT 5 properties were given to a client connected with MQTT 3.1.1.
    #[error("MQTT 5 properties need `PROTOCOL=5`; this client speaks MQTT 3.1.1")]
    PropertiesNeedV5,
    /// The broker refused the operation (a failure reason code in an ack).
    #[error("the broker refused: {0}")]
    Refused(String),
    /// The broker lost the session after it had received a QoS 2 message but before it completed;
    /// whether subscribers got it is unknown.
    #[error(
        "the broker lost the session before completing this QoS 2 publish; delivery is unknown"
    )]
    SessionLost,
    /// No acknowledgement came before the deadline. The request may still complete later.
    #[error("no acknowledgement from the broker within {0:?}")]
    Timeout(std::time::Duration),
    /// The client was shut down (or its last handle dropped) before the operation completed.
    #[error("the MQTT client is shut down")]
    Closed,
    /// The router cannot be built as written: two fallbacks or rejection handlers merged, or a
    /// nested router with settings that only the outer router can have.
    #[error("invalid router: {0}")]
    Router(String),
    /// A durable publish does not fit in the outbox (`OUTBOX_MAX_MESSAGES` or `OUTBOX_MAX_BYTES`);
    /// nothing was stored, nothing stored before was touched.
    #[error("the outbox is full: {reason}; the message was not stored")]
    OutboxFull {
        /// Which limit, with the figures.
        reason: String,
    },
    /// The outbox file cannot be used: damaged, truncated, not an outbox, or a failed write.
    #[error("outbox {path}: {reason}")]
    Outbox {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// [`Publish::durable`](crate::Publish) on a client started without an outbox.
    #[error("this client has no outbox: set MQTT_OUTBOX_PATH (or MqttConfig::outbox)")]
    NoOutbox,
    /// A durable publish at QoS 0: only an acknowledged publish can leave the outbox.
    #[error("a durable publish needs QoS 1 or 2 (QoS 0 is never acknowledged)")]
    DurableNeedsQos,
    /// TLS could not be set up (bad certificate file, key, or version).
    #[error("TLS setup failed: {0}")]
    Tls(String),
}
