//! The HTTP API's handlers: `POST /publish`, `GET /api/messages`, `/api/info`, `/events`, `/metrics`.

use std::collections::HashMap;

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_mqtt::web::ApiError;
use axum_mqtt::web::{OutboxStatusResponse, PublishRequest, PublishResponse, QueuedResponse};
use axum_mqtt::{ConnectionState, QoS};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;

use crate::messages::Stored;
use crate::openapi::Guarded;
use crate::state::{AppState, Limits, Listener};
use crate::streams::{check_filter, open_stream, parse_qos};

/// The largest `limit` of `GET /api/messages` (the history size caps what comes back).
const MAX_LIMIT: usize = 100_000;
/// Messages an SSE stream buffers before it skips.
const SSE_CAPACITY: usize = 256;

/// `POST /publish`: the Flask tutorial's endpoint (validation and errors by the library).
#[utoipa::path(
    post,
    path = "/publish",
    operation_id = "publish",
    summary = "Publish a message and wait for the broker's acknowledgement",
    description = "The Flask-MQTT tutorial's endpoint: `{\"topic\": \"...\", \"msg\": \"...\"}` answers \
        `{\"code\": 0, ...}`. Give exactly one of `msg`, `payload` (a text payload; other JSON values are \
        sent as their JSON text) or `payload_base64` (binary). The body is read as JSON whatever its \
        Content-Type.",
    request_body(content = PublishRequest, content_type = "application/json"),
    security((), ("bearerAuth" = []), ("queryToken" = [])),
    responses(
        (status = 200, description = "QoS 1/2: the broker has the message (PUBACK/PUBCOMP). QoS 0 has no acknowledgement: the connected client has queued it (while not connected it waits for the connection, then 504).", body = PublishResponse),
        (status = 202, description = "With `--outbox`, QoS 1/2 only: the message is stored on disk and goes out when the broker acknowledges it (the broker did not within the wait, or the client is not connected: then this comes at once). Ask `GET /publish/{id}`.", body = QueuedResponse),
        (status = 400, description = "The body is not JSON, or not UTF-8.", body = ApiError),
        (status = 413, description = "The payload with its user properties (or the whole body) is too large.", body = ApiError),
        (status = 422, description = "The JSON is not a valid publish request: missing or invalid topic (empty, wildcard, NUL, over 65535 bytes), invalid qos, missing or conflicting payload fields, invalid base64, bad user_properties (`invalid_body`, `invalid_user_property`: NUL or over 65535 bytes), or user properties while the app's client speaks MQTT 3.1.1 (`needs_mqtt5`).", body = ApiError),
        (status = 502, description = "The broker refused the message.", body = ApiError),
        (status = 503, description = "The MQTT client is shutting down (`client_closed`), or with `--outbox` the outbox is full (`outbox_full`: nothing was stored).", body = ApiError),
        (status = 504, description = "The broker did not acknowledge in time (e.g. it is unreachable); the message may still be delivered.", body = ApiError),
        Guarded,
    )
)]
pub async fn publish(State(st): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let resp = match body {
        Ok(body) => st.publish.handle(&st.mqtt, &body).await,
        Err(e) => {
            let kind = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "body_too_large"
            } else {
                "invalid_body"
            };
            ApiError::new(e.status(), kind, e.body_text()).into_response()
        }
    };
    match resp.status() {
        s if s.is_success() => st.metrics.http_publish_ok.increment(1),
        s => {
            if s == StatusCode::FORBIDDEN {
                st.metrics.forbidden.increment(1);
            }
            st.metrics.http_publish_failed.increment(1);
        }
    }
    resp
}

/// `GET /publish/{id}`: what became of a publish `POST /publish` answered 202 for.
#[utoipa::path(
    get,
    path = "/publish/{id}",
    operation_id = "publishStatus",
    summary = "What became of a queued publish (with --outbox)",
    params(("id" = String, Path, description = "The id of a 202 answer of POST /publish.")),
    security((), ("bearerAuth" = []), ("queryToken" = [])),
    responses(
        (status = 200, description = "`queued` (stored, not yet acknowledged), `acked` (with its `mid`) or `failed` (the broker refused it; with its `reason`).", body = OutboxStatusResponse),
        (status = 404, description = "`unknown_id`: this outbox never had that id, or finished it long ago (the newest 10 000 finished ids are kept); `no_outbox`: the app runs without `--outbox`.", body = ApiError),
        Guarded,
    )
)]
pub async fn publish_status(
    State(st): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    st.publish.status(&st.mqtt, &id).await
}

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

fn params(q: Params) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

/// The answer of `GET /api/messages`.
#[derive(Serialize, ToSchema)]
pub struct MessagesPage {
    /// Always 0.
    #[schema(minimum = 0, maximum = 0)]
    code: u8,
    /// Messages in this answer.
    count: usize,
    /// Messages the history holds at most (`--history`).
    capacity: usize,
    /// Messages received since start.
    total: u64,
    /// The app's subscriptions.
    subscriptions: Vec<String>,
    /// Newest first.
    messages: Vec<Stored>,
}

/// `GET /api/messages?limit=N`: recent messages on the app's subscriptions, newest first.
#[utoipa::path(
    get,
    path = "/api/messages",
    operation_id = "recentMessages",
    summary = "Recent messages received on the app's subscriptions, newest first",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 100000,
        description = "At most how many messages (the history, `--history`, holds 1000 by default). Default: 100.")),
    security((), ("bearerAuth" = []), ("queryToken" = [])),
    responses(
        (status = 200, description = "The messages.", body = MessagesPage),
        (status = 400, description = "`limit` is not a whole number from 1 to 100000.", body = ApiError),
        Guarded,
    )
)]
pub async fn messages(State(st): State<AppState>, q: Params) -> Result<Response, ApiError> {
    let q = params(q)?;
    let cap = st.log.capacity();
    let limit = match q.get("limit") {
        None => cap.min(100),
        // More than the history holds is fine: you get what there is.
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n.min(cap),
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_limit",
                    format!("limit must be a whole number from 1 to {MAX_LIMIT}, got {v:?}"),
                ))
            }
        },
    };
    let messages = st.log.recent(limit);
    Ok(Json(MessagesPage {
        code: 0,
        count: messages.len(),
        capacity: cap,
        total: st.log.total(),
        subscriptions: (*st.subscriptions).clone(),
        messages,
    })
    .into_response())
}

/// The answer of `GET /api/info`.
#[derive(Serialize, ToSchema)]
pub struct Info {
    /// Always 0.
    #[schema(minimum = 0, maximum = 0)]
    code: u8,
    /// The app's crate name.
    name: &'static str,
    /// The app's version.
    version: &'static str,
    /// The MQTT client's connection.
    mqtt: ConnectionState,
    /// URL of the broker the app's client uses.
    broker: String,
    /// The embedded broker's listeners (empty when none runs).
    embedded_broker: Vec<Listener>,
    /// The app's subscriptions.
    subscriptions: Vec<String>,
    /// Topics `POST /publish` may publish to; empty: every topic.
    allow_publish: Vec<String>,
    /// Filters `/events` and the page may subscribe to; empty: every filter.
    allow_subscribe: Vec<String>,
    /// Whether the API needs the app's token.
    token_required: bool,
    /// Limits of the WebSocket and the streams.
    limits: Limits,
}

/// `GET /api/info`: what the page needs to know about the app.
#[utoipa::path(
    get,
    path = "/api/info",
    operation_id = "info",
    summary = "The app's configuration as the live page needs it",
    security((), ("bearerAuth" = []), ("queryToken" = [])),
    responses(
        (status = 200, description = "Broker, subscriptions, allow-lists and limits.", body = Info),
        Guarded,
    )
)]
pub async fn info(State(st): State<AppState>) -> Response {
    let owned = |v: Vec<&str>| v.into_iter().map(str::to_string).collect();
    Json(Info {
        code: 0,
        name: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        mqtt: st.mqtt.state(),
        broker: st.endpoints.broker.clone(),
        embedded_broker: st.endpoints.embedded_broker.clone(),
        subscriptions: (*st.subscriptions).clone(),
        allow_publish: owned(st.publish.allow_list().unwrap_or_default()),
        allow_subscribe: st.allow_subscribe.filters().to_vec(),
        token_required: st.token.is_some(),
        limits: st.limits,
    })
    .into_response()
}

/// `GET /events?filter=...&qos=...`: messages as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/events",
    operation_id = "events",
    summary = "Follow a topic filter as Server-Sent Events",
    description = "Each MQTT message matching `filter` becomes an event `message` whose data is a JSON \
        object `{topic, payload | payload_base64, qos, retain}`. The stream stays open until the client \
        goes away or the app stops; comments keep it alive. A reader that falls behind skips messages \
        (counted in `/metrics`).",
    params(
        ("filter" = String, Query, min_length = 1, description = "An MQTT topic filter, e.g. `sensors/#`."),
        ("qos" = Option<QoS>, Query, description = "Subscription QoS (default 0)."),
    ),
    security((), ("bearerAuth" = []), ("queryToken" = [])),
    responses(
        (status = 200, description = "An endless stream of events.", content_type = "text/event-stream", body = String),
        (status = 400, description = "`filter` is missing, or the query string cannot be read.", body = ApiError),
        (status = 422, description = "`filter` is not a valid MQTT topic filter, or `qos` is not 0, 1 or 2.", body = ApiError),
        (status = 502, description = "The broker refused the subscription.", body = ApiError),
        (status = 503, description = "The MQTT client is shutting down, or --max-sse-clients streams are open.", body = ApiError),
        (status = 504, description = "The broker did not acknowledge the subscription in time (e.g. it is unreachable).", body = ApiError),
        Guarded,
    )
)]
pub async fn events(State(st): State<AppState>, q: Params) -> Result<Response, ApiError> {
    let q = params(q)?;
    let filter = q.get("filter").ok_or_else(|| {
        ApiError::bad_request(
            "missing_filter",
            "add ?filter=<MQTT topic filter>, e.g. /events?filter=sensors/%23",
        )
    })?;
    check_filter(&st, filter)?;
    let qos = parse_qos(q.get("qos").map(String::as_str))?;
    let slot = st.sse_slots.take(&st.metrics)?;
    let stream = open_stream(&st, filter, qos, SSE_CAPACITY).await?;
    // Ends with the app (so graceful shutdown does not wait for browsers); the slot (which counts
    // the client) is held as long as the stream.
    let messages = stream
        .inspect(move |_| {
            let _alive = &slot;
        })
        .take_until(st.stopping());
    Ok(axum_mqtt::web::sse(messages).into_response())
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    summary = "Measurements in the Prometheus text format",
    security((), ("bearerAuth" = []), ("queryToken" = [])),
    responses(
        (status = 200, description = "Prometheus exposition format 0.0.4.", content_type = "text/plain", body = String),
        Guarded,
    )
)]
pub async fn metrics(State(st): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(&st.mqtt, &st.log),
    )
        .into_response()
}

/// `GET /healthz`: the library's health handler, documented.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "health",
    summary = "The MQTT connection state (never needs a token)",
    responses(
        (status = 200, description = "Connected to the broker.", body = ConnectionState),
        (status = 503, description = "Not connected (connecting, reconnecting or stopped).", body = ConnectionState),
    )
)]
pub async fn healthz(mqtt: State<axum_mqtt::Mqtt>) -> Response {
    axum_mqtt::web::health(mqtt).await
}
