//! The HTTP API's handlers: `POST /publish`, `GET /api/messages`, `/api/info`, `/events`, `/metrics`.

use std::collections::HashMap;

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_mqtt::web::ApiError;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::json;

use crate::metrics::inc;
use crate::state::AppState;
use crate::streams::{check_filter, open_stream, parse_qos};

/// The largest `limit` of `GET /api/messages` (the history size caps what comes back).
const MAX_LIMIT: usize = 100_000;
/// Messages an SSE stream buffers before it skips.
const SSE_CAPACITY: usize = 256;

/// `POST /publish`: the Flask tutorial's endpoint (validation and errors by the library).
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
        s if s.is_success() => inc(&st.metrics.http_publish_ok),
        s => {
            if s == StatusCode::FORBIDDEN {
                inc(&st.metrics.forbidden);
            }
            inc(&st.metrics.http_publish_failed);
        }
    }
    resp
}

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

fn params(q: Params) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

/// `GET /api/messages?limit=N`: recent messages on the app's subscriptions, newest first.
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
    Ok(Json(json!({
        "code": 0,
        "count": messages.len(),
        "capacity": cap,
        "total": st.log.total(),
        "subscriptions": *st.subscriptions,
        "messages": messages,
    }))
    .into_response())
}

/// `GET /api/info`: what the page needs to know about the app.
pub async fn info(State(st): State<AppState>) -> Response {
    Json(json!({
        "code": 0,
        "name": env!("CARGO_PKG_NAME"),
        "version": env!("CARGO_PKG_VERSION"),
        "mqtt": st.mqtt.state(),
        "broker": st.endpoints.broker,
        "embedded_broker": st.endpoints.embedded_broker,
        "subscriptions": *st.subscriptions,
        "allow_publish": st.publish.allow_list().unwrap_or_default(),
        "allow_subscribe": st.allow_subscribe.filters(),
        "token_required": st.token.is_some(),
        "limits": st.limits,
    }))
    .into_response()
}

/// `GET /events?filter=...&qos=...`: messages as Server-Sent Events.
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
