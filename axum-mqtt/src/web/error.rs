//! [`ApiError`]: the one shape of every 4xx/5xx answer of the web pieces.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::Error;

/// A 4xx/5xx answer with a reason: `{"code": 1, "kind": ..., "error": ...}`.
///
/// ```
/// use axum_mqtt::web::ApiError;
/// let e = ApiError::bad_request("invalid_json", "expected a JSON object");
/// assert_eq!(e.status.as_u16(), 400);
/// assert_eq!(e.to_string(), "expected a JSON object");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable short name of the problem.
    pub kind: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

impl ApiError {
    /// A 400.
    ///
    /// ```
    /// let e = axum_mqtt::web::ApiError::bad_request("invalid_query", "limit must be a number");
    /// assert_eq!((e.status.as_u16(), e.kind), (400, "invalid_query"));
    /// ```
    pub fn bad_request(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind, message)
    }

    /// A 422: the request was read but its content is wrong.
    ///
    /// ```
    /// let e = axum_mqtt::web::ApiError::unprocessable("invalid_qos", "qos must be 0, 1 or 2");
    /// assert_eq!(e.status.as_u16(), 422);
    /// ```
    pub fn unprocessable(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, kind, message)
    }

    /// Any status.
    ///
    /// ```
    /// use axum::http::StatusCode;
    /// let e = axum_mqtt::web::ApiError::new(StatusCode::FORBIDDEN, "topic_not_allowed", "no");
    /// assert_eq!(e.status, StatusCode::FORBIDDEN);
    /// ```
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }
}

/// The JSON body of an error answer.
pub(crate) fn body(e: &ApiError) -> serde_json::Value {
    json!({"code": 1, "kind": e.kind, "error": e.message})
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(body(&self))).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, kind) = match &e {
            Error::InvalidTopic { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_topic"),
            Error::InvalidFilter { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_filter"),
            Error::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Error::PropertiesNeedV5 => (StatusCode::UNPROCESSABLE_ENTITY, "needs_mqtt5"),
            Error::Refused(_) | Error::MissingSubackCode | Error::SessionLost => {
                (StatusCode::BAD_GATEWAY, "broker_refused")
            }
            // Another request removed the subscription meanwhile.
            Error::Unsubscribed => (StatusCode::CONFLICT, "unsubscribed"),
            Error::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "broker_timeout"),
            Error::Closed => (StatusCode::SERVICE_UNAVAILABLE, "client_closed"),
            Error::OutboxFull(_) => (StatusCode::SERVICE_UNAVAILABLE, "outbox_full"),
            Error::Outbox(_) => (StatusCode::INTERNAL_SERVER_ERROR, "outbox"),
            Error::DurableNeedsQos => (StatusCode::UNPROCESSABLE_ENTITY, "durable_needs_qos"),
            Error::NoOutbox => (StatusCode::NOT_FOUND, "no_outbox"),
            Error::Start(_) => (StatusCode::INTERNAL_SERVER_ERROR, "config"),
        };
        ApiError::new(status, kind, e.to_string())
    }
}
