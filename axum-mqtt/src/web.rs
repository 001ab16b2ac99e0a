//! axum integration: ready pieces to mount in one line.
//!
//! * [`Mqtt`] is `Clone` and works as axum `State` (or through `FromRef` from your app state).
//! * [`publish`] / [`PublishEndpoint`]: `POST /publish` with Flask-MQTT's tutorial body
//!   `{"topic": "...", "msg": "..."}` (plus `payload`, `payload_base64`, `qos`, `retain`). It waits for
//!   the broker's acknowledgement and answers `{"code": 0, "mid": N}`; bad input gets a 4xx with
//!   `{"code": 1, "kind": "...", "error": "..."}` saying what is wrong.
//! * [`health`]: `GET /healthz`, 200 with the connection state when connected, 503 otherwise.
//! * [`sse`]: a [`MessageStream`](crate::MessageStream) as Server-Sent Events.
//! * [`shutdown_signal`]: Ctrl-C or SIGTERM, for `axum::serve(..).with_graceful_shutdown(..)`.
//!
//! ```no_run
//! use axum::{routing::{get, post}, Router};
//! use axum_mqtt::{web, Mqtt, MqttConfig};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mqtt = Mqtt::start(MqttConfig::from_env()?).await?;
//! let app = Router::new()
//!     .route("/publish", post(web::publish))
//!     .route("/healthz", get(web::health))
//!     .with_state(mqtt.clone());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
//! axum::serve(listener, app).with_graceful_shutdown(web::shutdown_signal()).await?;
//! mqtt.shutdown(std::time::Duration::from_secs(5)).await; // after HTTP requests finished
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::topic::TopicPattern;
use crate::{Error, Message, Mqtt, QoS, Status};

/// The body of `POST /publish`.
#[derive(Debug, Clone, Deserialize)]
pub struct PublishRequest {
    /// Topic to publish to (no wildcards).
    pub topic: String,
    /// Text payload (Flask-MQTT tutorial's field). Non-string JSON values are sent as their JSON text.
    #[serde(default)]
    pub msg: Option<serde_json::Value>,
    /// Text payload (alias of `msg`).
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
    /// Binary payload, base64.
    #[serde(default)]
    pub payload_base64: Option<String>,
    /// QoS 0, 1 or 2 (default 0).
    #[serde(default)]
    pub qos: Option<serde_json::Value>,
    /// Retain flag (default false).
    #[serde(default)]
    pub retain: Option<bool>,
}

/// A 4xx/5xx answer with a reason: `{"code": 1, "kind": ..., "error": ...}`.
///
/// ```
/// use axum_mqtt::web::ApiError;
/// let e = ApiError::bad_request("invalid_json", "expected a JSON object");
/// assert_eq!(e.status.as_u16(), 400);
/// ```
#[derive(Debug, Clone)]
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
    pub fn bad_request(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind, message)
    }

    /// Any status.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"code": 1, "kind": self.kind, "error": self.message});
        (self.status, Json(body)).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, kind) = match &e {
            Error::InvalidTopic { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_topic"),
            Error::InvalidFilter { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_filter"),
            Error::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Error::PropertiesNeedV5 => (StatusCode::UNPROCESSABLE_ENTITY, "needs_mqtt5"),
            Error::Refused(_) | Error::SessionLost => (StatusCode::BAD_GATEWAY, "broker_refused"),
            Error::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "broker_timeout"),
            Error::Closed => (StatusCode::SERVICE_UNAVAILABLE, "client_closed"),
            Error::Config(_) | Error::Tls(_) | Error::Router(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "config")
            }
        };
        ApiError::new(status, kind, e.to_string())
    }
}

/// `POST /publish` with settings: an allow-list of topics, the ack timeout, the largest payload.
///
/// ```
/// use axum_mqtt::web::PublishEndpoint;
/// let endpoint = PublishEndpoint::new().allow(["sensors/#", "lights/+"])?.timeout(std::time::Duration::from_secs(3));
/// assert!(endpoint.allows("sensors/a/b"));
/// assert!(!endpoint.allows("admin/reboot"));
/// # Ok::<(), axum_mqtt::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PublishEndpoint {
    allow: Option<Arc<Vec<TopicPattern>>>,
    timeout: Duration,
    max_payload: usize,
}

impl Default for PublishEndpoint {
    fn default() -> Self {
        PublishEndpoint {
            allow: None,
            timeout: Duration::from_secs(10),
            max_payload: 256 * 1024,
        }
    }
}

impl PublishEndpoint {
    /// Any topic, 10 s ack timeout, 256 KiB payloads.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only topics matching one of these MQTT filters may be published to (403 otherwise).
    pub fn allow<I, T>(mut self, filters: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let patterns = filters
            .into_iter()
            .map(|f| {
                crate::topic::validate_filter(f.as_ref())?;
                TopicPattern::parse(f.as_ref())
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.allow = Some(Arc::new(patterns));
        Ok(self)
    }

    /// How long to wait for the broker's acknowledgement (504 after that).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Largest payload accepted (413 above).
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// True when the allow-list (if any) permits `topic`.
    pub fn allows(&self, topic: &str) -> bool {
        self.allow
            .as_ref()
            .is_none_or(|a| a.iter().any(|p| p.matches(topic).is_some()))
    }

    /// An axum router with `POST /publish` bound to this endpoint and client.
    pub fn router<S: Clone + Send + Sync + 'static>(self, mqtt: Mqtt) -> axum::Router<S> {
        axum::Router::new().route(
            "/publish",
            axum::routing::post(move |body: Bytes| {
                let ep = self.clone();
                let mqtt = mqtt.clone();
                async move { ep.handle(&mqtt, &body).await }
            }),
        )
    }

    /// Handles one request body: validates, publishes, waits for the ack; answers
    /// `{"code": 0, "mid": N}` or the [`ApiError`].
    pub async fn handle(&self, mqtt: &Mqtt, body: &[u8]) -> Response {
        match self.publish(mqtt, body).await {
            Ok(ack) => Json(json!({"code": 0, "mid": ack.mid})).into_response(),
            Err(e) => e.into_response(),
        }
    }

    /// Validates a request body and publishes it, for other transports (a WebSocket op, a queue)
    /// that want exactly the HTTP endpoint's rules and errors.
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) {
    /// let endpoint = axum_mqtt::web::PublishEndpoint::new();
    /// match endpoint.publish(&mqtt, br#"{"topic": "a/b", "msg": "hi", "qos": 1}"#).await {
    ///     Ok(ack) => println!("acknowledged as {}", ack.mid),
    ///     Err(e) => println!("{}: {}", e.kind, e.message),
    /// }
    /// # }
    /// ```
    pub async fn publish(&self, mqtt: &Mqtt, body: &[u8]) -> Result<crate::Published, ApiError> {
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            if std::str::from_utf8(body).is_err() {
                ApiError::bad_request("invalid_utf8", "the body is not UTF-8 text")
            } else {
                ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
            }
        })?;
        if !value.is_object() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                "expected a JSON object like {\"topic\": \"a/b\", \"msg\": \"hello\"}",
            ));
        }
        // Which payload field is given, and that it is not null, is judged on the raw object
        // (serde would read an explicit null as an absent field).
        let given: Vec<&str> = PAYLOAD_FIELDS
            .into_iter()
            .filter(|k| value.get(k).is_some())
            .collect();
        let unprocessable =
            |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", m);
        match given.as_slice() {
            [] => {
                return Err(unprocessable(
                    "missing `msg` (or `payload` / `payload_base64`)".into(),
                ))
            }
            [one] if value[one].is_null() => {
                return Err(unprocessable(format!(
                    "`{one}` must not be null (send \"\" for an empty payload)"
                )))
            }
            [_] => {}
            _ => {
                return Err(unprocessable(
                    "give only one of `msg`, `payload`, `payload_base64`".into(),
                ))
            }
        }
        let mut req: PublishRequest = serde_json::from_value(value).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                e.to_string(),
            )
        })?;
        let qos = match &req.qos {
            None | Some(serde_json::Value::Null) => QoS::AtMostOnce,
            Some(v) => v
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .and_then(|n| QoS::try_from(n).ok())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_qos",
                        format!("qos must be 0, 1 or 2, got {v}"),
                    )
                })?,
        };
        let payload = payload_of(&mut req)?;
        if payload.len() > self.max_payload {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "payload of {} bytes exceeds {} bytes",
                    payload.len(),
                    self.max_payload
                ),
            ));
        }
        crate::topic::validate_topic(&req.topic)?;
        if !self.allows(&req.topic) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "topic_not_allowed",
                format!("publishing to {:?} is not allowed here", req.topic),
            ));
        }
        Ok(mqtt
            .publish(req.topic, payload)
            .qos(qos)
            .retain(req.retain.unwrap_or(false))
            .timeout(self.timeout)
            .await?)
    }
}

/// The fields that carry the payload; exactly one must be given.
const PAYLOAD_FIELDS: [&str; 3] = ["msg", "payload", "payload_base64"];

/// The payload of a request whose payload field was checked (exactly one, not null).
fn payload_of(req: &mut PublishRequest) -> Result<Bytes, ApiError> {
    // Taken, not cloned: the text becomes the payload without a copy.
    let text = |v: serde_json::Value| match v {
        serde_json::Value::String(s) => Bytes::from(s),
        other => Bytes::from(other.to_string()),
    };
    let unprocessable =
        |m: &str| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", m);
    match (
        req.msg.take(),
        req.payload.take(),
        req.payload_base64.take(),
    ) {
        (Some(v), None, None) | (None, Some(v), None) => Ok(text(v)),
        (None, None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map(Bytes::from)
            .map_err(|e| unprocessable(&format!("payload_base64 is not valid base64: {e}"))),
        (None, None, None) => Err(unprocessable(
            "missing `msg` (or `payload` / `payload_base64`)",
        )),
        _ => Err(unprocessable(
            "give only one of `msg`, `payload`, `payload_base64`",
        )),
    }
}

/// `POST /publish` with the default [`PublishEndpoint`], for `State<Mqtt>` routers.
pub async fn publish(State(mqtt): State<Mqtt>, body: Bytes) -> Response {
    PublishEndpoint::default().handle(&mqtt, &body).await
}

/// `GET /healthz`: the connection state; 200 when connected, 503 otherwise.
pub async fn health(State(mqtt): State<Mqtt>) -> Response {
    let state = mqtt.state();
    let code = if state.status == Status::Connected {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(state)).into_response()
}

/// A message as JSON for browsers: text payloads as `payload`, others as `payload_base64`.
///
/// ```
/// use axum_mqtt::{Message, web::MessageJson};
/// let j = MessageJson::from(&Message::new("a", vec![0xff, 0x00]));
/// assert!(j.payload.is_none());
/// assert_eq!(j.payload_base64.as_deref(), Some("/wA="));
/// ```
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MessageJson {
    /// Topic.
    pub topic: String,
    /// UTF-8 payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// Non-UTF-8 payload, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    /// QoS.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
}

impl From<&Message> for MessageJson {
    fn from(m: &Message) -> Self {
        let (payload, payload_base64) = match m.payload_str() {
            Some(s) => (Some(s.to_string()), None),
            None => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(m.payload())),
            ),
        };
        MessageJson {
            topic: m.topic().to_string(),
            payload,
            payload_base64,
            qos: m.qos(),
            retain: m.retain(),
        }
    }
}

/// Turns messages (a [`MessageStream`](crate::MessageStream), or any stream of them, e.g. one ended
/// by a shutdown signal with `StreamExt::take_until`) into Server-Sent Events (`event: message`,
/// JSON data), with keep-alives.
pub fn sse<S>(stream: S) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    S: Stream<Item = Message> + Send + 'static,
{
    let events = stream.map(|m| {
        let data = serde_json::to_string(&MessageJson::from(&m)).unwrap_or_default();
        Ok(Event::default().event("message").data(data))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// Resolves on Ctrl-C or SIGTERM: pass it to `axum::serve(..).with_graceful_shutdown(..)`.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
