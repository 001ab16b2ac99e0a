//! Why an extractor refused a message. One variant per cause, as precise as axum's rejections.

/// A failed extraction. The handler is not called; the router's rejection handler gets this.
///
/// ```
/// use axum_mqtt::extract::Rejection;
/// let r = Rejection::InvalidUtf8 { topic: "t".into(), valid_up_to: 3 };
/// assert_eq!(r.kind(), "invalid_utf8");
/// assert!(r.to_string().contains("not valid UTF-8"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// `Text` or `Json` got a payload that is not UTF-8.
    #[error("payload on {topic:?} is not valid UTF-8 (valid up to byte {valid_up_to})")]
    InvalidUtf8 {
        /// The topic.
        topic: String,
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// `Json` got a payload that is not JSON at all.
    #[error("failed to parse the payload on {topic:?} as JSON: {error}")]
    JsonSyntax {
        /// The topic.
        topic: String,
        /// serde_json's message (with line and column).
        error: String,
    },
    /// `Json` got valid JSON of the wrong shape.
    #[error(
        "the JSON payload on {topic:?} could not be deserialized into the target type: {error}"
    )]
    JsonData {
        /// The topic.
        topic: String,
        /// serde_json's message.
        error: String,
    },
    /// `Params` could not deserialize the named segments.
    #[error("topic {topic:?}: named segments do not fit the target type: {error}")]
    Params {
        /// The topic.
        topic: String,
        /// What did not fit.
        error: String,
    },
    /// An MQTT 5 property the handler needs is absent (or the connection is MQTT 3.1.1).
    #[error("message on {topic:?} has no {property} property")]
    MissingProperty {
        /// The topic.
        topic: String,
        /// The property's name.
        property: &'static str,
    },
    /// The `Mqtt` extractor was used outside a running client.
    #[error("no MQTT client is attached to this message")]
    NoClient,
    /// A custom extractor's reason.
    #[error("{0}")]
    Custom(String),
}

impl Rejection {
    /// A short stable name for counters and logs (`json_syntax`, `invalid_utf8`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::InvalidUtf8 { .. } => "invalid_utf8",
            Rejection::JsonSyntax { .. } => "json_syntax",
            Rejection::JsonData { .. } => "json_data",
            Rejection::Params { .. } => "params",
            Rejection::MissingProperty { .. } => "missing_property",
            Rejection::NoClient => "no_client",
            Rejection::Custom(_) => "custom",
        }
    }
}
