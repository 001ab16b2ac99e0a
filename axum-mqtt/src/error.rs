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

/// Why a client did not start ([`Mqtt::start`](crate::Mqtt::start),
/// [`MqttBuilder::start`](crate::MqttBuilder::start)): nothing was connected and nothing runs.
///
/// Each of these is fixed by changing the program or its configuration; a running client never
/// fails with one. `?` turns it into an [`Error`] ([`Error::Start`]) in a function that returns
/// that.
///
/// ```
/// use axum_mqtt::{Mqtt, MqttConfig, StartError};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut config = MqttConfig::default();
/// config.keepalive = std::time::Duration::from_secs(70_000); // over MQTT's 18 h 12 min
/// match Mqtt::start(config).await {
///     Err(StartError::Config(e)) => assert_eq!(e.key, "MQTT_KEEPALIVE"),
///     other => panic!("{other:?}"),
/// }
/// # });
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid; the inner error names the key.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The router cannot be built as written.
    #[error(transparent)]
    Router(#[from] RouterError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The outbox file cannot be opened: damaged, truncated or not an outbox.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

/// A router that cannot run as written. Reported by `start`, so a router is built with plain
/// chained calls and every mistake in it comes out at one place.
///
/// ```
/// use axum_mqtt::{Mqtt, MqttConfig, Router, RouterError, StartError};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let router: Router = Router::new().route("sensors/#/x", || async {});
/// match Mqtt::builder(MqttConfig::default()).router(router).start().await.unwrap_err() {
///     StartError::Router(RouterError::InvalidFilter { filter, .. }) => assert_eq!(filter, "sensors/#/x"),
///     other => panic!("{other:?}"),
/// }
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// A route's topic pattern, or a shared group's name, is not a valid filter.
    #[error("invalid topic filter {filter:?}: {reason}")]
    InvalidFilter {
        /// The pattern as given.
        filter: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A dead-letter topic template
    /// ([`RouteOptions::dead_letter`](crate::router::RouteOptions::dead_letter)) cannot give a
    /// topic to publish to.
    ///
    /// ```
    /// use axum_mqtt::{router::RouteOptions, Mqtt, MqttConfig, Router, RouterError, StartError};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let opts = RouteOptions::new().dead_letter("dlq/#");
    /// let router: Router = Router::new().route_with("orders/{id}", opts, || async {});
    /// let err = Mqtt::builder(MqttConfig::default()).router(router).start().await.unwrap_err();
    /// assert!(matches!(err, StartError::Router(RouterError::InvalidDeadLetter { .. })));
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
    /// Two merged routers both have a setting there can be only one of.
    #[error("both merged routers have {0}; keep one")]
    MergedTwice(RouterSetting),
    /// Two merged routers have different shared groups.
    #[error("merged routers have different shared groups ({ours:?} and {theirs:?})")]
    SharedGroups {
        /// The group of the router merged into.
        ours: String,
        /// The group of the router merged.
        theirs: String,
    },
    /// A nested router has a setting that only the outermost router can have.
    #[error("the router nested under {prefix:?} has {setting}; set it on the outer router")]
    Nested {
        /// The prefix it was nested under.
        prefix: String,
        /// What it has.
        setting: RouterSetting,
    },
}

/// A router setting that applies to all routes, so only the outermost router can have it.
///
/// ```
/// use axum_mqtt::{Mqtt, MqttConfig, Router, RouterError, RouterSetting, StartError};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let inner: Router = Router::new().fallback(|| async {});
/// let router: Router = Router::new().nest("home", inner);
/// match Mqtt::builder(MqttConfig::default()).router(router).start().await.unwrap_err() {
///     StartError::Router(RouterError::Nested { setting, .. }) => {
///         assert_eq!(setting, RouterSetting::Fallback)
///     }
///     other => panic!("{other:?}"),
/// }
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RouterSetting {
    /// [`Router::fallback`](crate::Router::fallback).
    Fallback,
    /// [`Router::on_rejection`](crate::Router::on_rejection).
    RejectionHandler,
    /// [`Router::shared`](crate::Router::shared).
    SharedGroup,
    /// A handler for every message (the builder's `on_message`).
    CatchAll,
}

impl std::fmt::Display for RouterSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RouterSetting::Fallback => "a fallback",
            RouterSetting::RejectionHandler => "a rejection handler",
            RouterSetting::SharedGroup => "a shared group",
            RouterSetting::CatchAll => "a catch-all handler",
        })
    }
}

/// TLS to the broker could not be set up. The file, where there is one, is named; the cause is the
/// error of the PEM reader or of rustls.
///
/// ```
/// use axum_mqtt::{Mqtt, MqttConfig, StartError, TlsError};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut config = MqttConfig::default();
/// config.tls.enabled = true;
/// config.tls.ca_certs = Some("/nonexistent/ca.pem".into());
/// match Mqtt::start(config).await.unwrap_err() {
///     StartError::Tls(TlsError::File { path, source }) => {
///         assert_eq!(path, std::path::Path::new("/nonexistent/ca.pem"));
///         println!("cannot read {}: {source}", path.display());
///     }
///     other => panic!("{other:?}"),
/// }
/// # });
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file cannot be read or parsed.
    #[error("{}: {source}", .path.display())]
    File {
        /// The file (`TLS_CA_CERTS`, `TLS_CERTFILE`).
        path: std::path::PathBuf,
        /// What the PEM reader said.
        source: std::sync::Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A PEM file holds no certificate.
    #[error("{}: no PEM certificate found", .path.display())]
    NoCertificate {
        /// The file.
        path: std::path::PathBuf,
    },
    /// A certificate of the CA file is not usable as a trust anchor.
    #[error("{}: {source}", .path.display())]
    CaCertificate {
        /// The file (`TLS_CA_CERTS`).
        path: std::path::PathBuf,
        /// What rustls said.
        source: std::sync::Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The key file holds no usable private key.
    #[error("{}: no usable private key ({source})", .path.display())]
    PrivateKey {
        /// The file (`TLS_KEYFILE`).
        path: std::path::PathBuf,
        /// What the PEM reader said.
        source: std::sync::Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The client certificate and key do not go together.
    #[error("client certificate: {0}")]
    ClientCertificate(#[source] std::sync::Arc<dyn std::error::Error + Send + Sync>),
    /// The TLS versions asked for cannot be used (`TLS_VERSION`).
    #[error("TLS versions: {0}")]
    Versions(#[source] std::sync::Arc<dyn std::error::Error + Send + Sync>),
    /// No CA certificate was found in the system's store and none was given.
    #[error("no system CA certificates found; set TLS_CA_CERTS")]
    NoSystemRoots,
}

/// The outbox file cannot be used. Names the file; nothing in it was dropped or rewritten.
///
/// ```
/// use axum_mqtt::{OutboxCause, OutboxError};
/// let e = OutboxError { path: "/var/lib/app/outbox.db".into(), cause: OutboxCause::Empty };
/// assert!(e.to_string().starts_with("outbox /var/lib/app/outbox.db: the file exists but is empty"));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("outbox {}: {cause}", .path.display())]
pub struct OutboxError {
    /// The file (`OUTBOX_PATH`).
    pub path: std::path::PathBuf,
    /// What is wrong.
    pub cause: OutboxCause,
}

/// What is wrong with an outbox file ([`OutboxError`]).
///
/// ```
/// use axum_mqtt::{Error, OutboxCause};
/// fn retry_later(e: &Error) -> bool {
///     // A full disk or a busy file may pass; an empty (truncated) file needs a person.
///     matches!(e, Error::Outbox(o) if !matches!(o.cause, OutboxCause::Empty))
/// }
/// # let _ = retry_later;
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxCause {
    /// The file exists but is empty, as a truncated one would be.
    #[error("the file exists but is empty (truncated?); move it away to start a new outbox")]
    Empty,
    /// SQLite failed: a damaged file, one that is not an outbox or of another layout, or a failed
    /// write (a full disk).
    #[cfg(feature = "outbox")]
    #[error(transparent)]
    Sqlite(std::sync::Arc<rusqlite::Error>),
    /// The task that writes the file panicked or was cancelled.
    #[error("outbox task failed: {0}")]
    Task(std::sync::Arc<tokio::task::JoinError>),
    /// The message was neither stored nor refused (the writer went away first).
    #[error("the message was neither stored nor refused")]
    NotStored,
}

/// Which outbox limit a durable publish would exceed ([`Error::OutboxFull`]).
///
/// ```
/// use axum_mqtt::OutboxLimit;
/// let full = OutboxLimit::Messages { held: 100_000, max: 100_000 };
/// assert_eq!(full.to_string(), "100000 of 100000 messages");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxLimit {
    /// `OUTBOX_MAX_MESSAGES`.
    #[error("{held} of {max} messages")]
    Messages {
        /// Messages in the outbox.
        held: u64,
        /// The limit.
        max: u64,
    },
    /// `OUTBOX_MAX_BYTES` (topics and payloads).
    #[error("{held} + {size} bytes would exceed {max} bytes")]
    Bytes {
        /// Bytes in the outbox.
        held: u64,
        /// The message's bytes.
        size: u64,
        /// The limit.
        max: u64,
    },
}

/// A failure reason code the broker answered a request with: a PUBACK or PUBREC (MQTT 5), or a
/// SUBACK entry (MQTT 5; MQTT 3.1.1 has only 0x80).
///
/// ```
/// use axum_mqtt::ReasonCode;
/// let code = ReasonCode::new(0x87);
/// assert_eq!(code.get(), 0x87);
/// assert_eq!(code.to_string(), "not authorized (0x87)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReasonCode(u8);

impl ReasonCode {
    /// The code as sent.
    pub const fn new(code: u8) -> Self {
        ReasonCode(code)
    }

    /// The code's value.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// The name MQTT 5 gives the code (§2.4), in lower case; `None` for a code it does not define
    /// for acks.
    pub fn name(self) -> Option<&'static str> {
        // The failure codes of PUBACK, PUBREC and SUBACK (MQTT 5 §3.4.2.1, §3.5.2.1, §3.9.3).
        // rumqttc names them per packet type with no numeric value to read back, so the table is
        // here, once.
        Some(match self.0 {
            0x80 => "unspecified error",
            0x83 => "implementation specific error",
            0x87 => "not authorized",
            0x8F => "topic filter invalid",
            0x90 => "topic name invalid",
            0x91 => "packet identifier in use",
            0x97 => "quota exceeded",
            0x99 => "payload format invalid",
            0x9E => "shared subscriptions not supported",
            0xA1 => "subscription identifiers not supported",
            0xA2 => "wildcard subscriptions not supported",
            _ => return None,
        })
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} (0x{:02X})", self.0),
            None => write!(f, "reason code 0x{:02X}", self.0),
        }
    }
}

/// Everything an operation of a running client can fail with. (Starting one fails with a
/// [`StartError`].)
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
    /// A topic name (for publishing) is not valid.
    #[error("invalid topic {topic:?}: {reason}")]
    InvalidTopic {
        /// The topic as given.
        topic: String,
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
    /// The broker refused the operation with a failure reason code in its ack.
    #[error("the broker refused: {0}")]
    Refused(ReasonCode),
    /// The broker's SUBACK had no entry for the filter (a broker that breaks the protocol).
    #[error("the broker's SUBACK had no reason code for the filter")]
    MissingSubackCode,
    /// Every subscription was removed before the broker confirmed this one.
    #[error("unsubscribed before the broker confirmed the subscription")]
    Unsubscribed,
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
    /// A durable publish does not fit in the outbox (`OUTBOX_MAX_MESSAGES` or `OUTBOX_MAX_BYTES`);
    /// nothing was stored, nothing stored before was touched.
    #[error("the outbox is full: {0}; the message was not stored")]
    OutboxFull(OutboxLimit),
    /// The outbox file cannot be used: damaged, truncated, not an outbox, or a failed write.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// [`Publish::durable`](crate::Publish) on a client started without an outbox.
    #[error("this client has no outbox: set MQTT_OUTBOX_PATH (or MqttConfig::outbox)")]
    NoOutbox,
    /// A durable publish at QoS 0: only an acknowledged publish can leave the outbox.
    #[error("a durable publish needs QoS 1 or 2 (QoS 0 is never acknowledged)")]
    DurableNeedsQos,
    /// A client did not start. Never returned by a running client: it is here so that `?` can
    /// carry a [`StartError`] (or a [`ConfigError`]) in a function that returns an `Error`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), axum_mqtt::Error> {
    /// let mqtt = axum_mqtt::Mqtt::start(axum_mqtt::MqttConfig::from_env()?).await?;
    /// # Ok(()) }
    /// ```
    #[error(transparent)]
    Start(#[from] StartError),
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Start(StartError::Config(e))
    }
}
