//! The HTTP API and the routes: `/publish`, `/api/*`, `/events`, `/healthz`, `/metrics`,
//! `/openapi.json`, the page and its assets.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_mqtt::web::{self, ApiError};
use axum_mqtt::QoS;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::json;

use crate::metrics::{inc, Client, ClientGuard};
use crate::state::AppState;
use crate::{assets, openapi, ws};

/// How long a subscription may wait for the broker's SUBACK.
pub const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest `limit` of `GET /api/messages` (the history size caps what comes back).
const MAX_LIMIT: usize = 100_000;
/// Messages an SSE stream buffers before it skips.
const SSE_CAPACITY: usize = 256;

/// All routes, with the token guard on the API.
pub fn router(state: AppState) -> Router {
    let body_limit = state.limits.max_payload * 2 + 64 * 1024;
    let guarded = Router::new()
        .route("/publish", post(publish))
        .route("/api/messages", get(messages))
        .route("/api/info", get(info))
        .route("/events", get(events))
        .route("/metrics", get(metrics))
        .route("/ws", get(ws::upgrade))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard));
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/app.js", get(assets::script))
        .route("/assets/style.css", get(assets::style))
        .route("/healthz", get(web::health))
        .route("/openapi.json", get(openapi::document))
        .merge(guarded)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Token and origin checks for the API and the WebSocket.
async fn guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        if !same_origin(origin, req.headers().get(header::HOST)) {
            inc(&st.metrics.forbidden);
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "cross_origin",
                "requests from pages of other sites are refused (the Origin header does not match the Host)",
            )
            .into_response();
        }
    }
    if let Some(expected) = st.token.as_deref() {
        let given = bearer(req.headers()).or_else(|| query_token(req.uri().query()));
        let problem = match given {
            None => Some(("missing_token", "this app needs a token: send `Authorization: Bearer <token>` or add `?token=<token>`")),
            Some(t) if !constant_time_eq(t.as_bytes(), expected.as_bytes()) => {
                Some(("invalid_token", "the token is not valid"))
            }
            Some(_) => None,
        };
        if let Some((kind, message)) = problem {
            inc(&st.metrics.unauthorized);
            let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, kind, message).into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"axum-mqtt-app\""),
            );
            return resp;
        }
    }
    next.run(req).await
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

fn query_token(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn same_origin(origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
    let (Ok(origin), Some(Ok(host))) = (origin.to_str(), host.map(|h| h.to_str())) else {
        return false;
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    !authority.is_empty() && authority.eq_ignore_ascii_case(host)
}

/// `POST /publish`: the Flask tutorial's endpoint (validation and errors by the library).
async fn publish(State(st): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
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
async fn messages(State(st): State<AppState>, q: Params) -> Result<Response, ApiError> {
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
async fn info(State(st): State<AppState>) -> Response {
    Json(json!({
        "code": 0,
        "name": env!("CARGO_PKG_NAME"),
        "version": env!("CARGO_PKG_VERSION"),
        "mqtt": st.mqtt.state(),
        "broker": st.endpoints.broker,
        "embedded_broker": st.endpoints.embedded_broker,
        "subscriptions": *st.subscriptions,
        "allow_publish": st.allow_publish.filters(),
        "allow_subscribe": st.allow_subscribe.filters(),
        "token_required": st.token.is_some(),
        "limits": st.limits,
    }))
    .into_response()
}

/// Parses an optional `qos` (0, 1 or 2; default 0) from text.
pub fn parse_qos(v: Option<&str>) -> Result<QoS, ApiError> {
    match v {
        None => Ok(QoS::AtMostOnce),
        Some(s) => QoS::parse(s).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_qos",
                format!("qos must be 0, 1 or 2, got {s:?}"),
            )
        }),
    }
}

/// Checks a filter someone wants to follow: valid, and within the subscribe allow-list.
pub fn check_filter(st: &AppState, filter: &str) -> Result<(), ApiError> {
    axum_mqtt::topic::validate_filter(filter)?;
    if !st.allow_subscribe.allows_filter(filter) {
        inc(&st.metrics.forbidden);
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "filter_not_allowed",
            format!(
                "subscribing to {filter:?} is not allowed here (allowed: {})",
                st.allow_subscribe.filters().join(", ")
            ),
        ));
    }
    Ok(())
}

/// Subscribes a stream, waiting at most [`SUBSCRIBE_TIMEOUT`] for the broker.
pub async fn open_stream(
    st: &AppState,
    filter: &str,
    qos: QoS,
    capacity: usize,
) -> Result<axum_mqtt::MessageStream, ApiError> {
    match tokio::time::timeout(SUBSCRIBE_TIMEOUT, st.mqtt.stream(filter, qos, capacity)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "broker_timeout",
            format!(
                "the broker did not acknowledge the subscription within {SUBSCRIBE_TIMEOUT:?} (MQTT is {:?})",
                st.mqtt.state().status
            ),
        )),
    }
}

/// `GET /events?filter=...&qos=...`: messages as Server-Sent Events.
async fn events(State(st): State<AppState>, q: Params) -> Result<Response, ApiError> {
    let q = params(q)?;
    let filter = q.get("filter").ok_or_else(|| {
        ApiError::bad_request(
            "missing_filter",
            "add ?filter=<MQTT topic filter>, e.g. /events?filter=sensors/%23",
        )
    })?;
    check_filter(&st, filter)?;
    let qos = parse_qos(q.get("qos").map(String::as_str))?;
    let stream = open_stream(&st, filter, qos, SSE_CAPACITY).await?;
    let guard = ClientGuard::new(st.metrics.clone(), Client::Sse);
    // Ends with the app (so graceful shutdown does not wait for browsers); the guard counts the client.
    let messages = stream
        .inspect(move |_| {
            let _alive = &guard;
        })
        .take_until(st.stopping());
    Ok(axum_mqtt::web::sse(messages).into_response())
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(st): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(&st.mqtt, &st.log),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_origins() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h).as_deref(), Some("abc"));
        assert_eq!(query_token(Some("a=1&token=x%20y")).as_deref(), Some("x y"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        let host = HeaderValue::from_static("127.0.0.1:5000");
        assert!(same_origin(
            &HeaderValue::from_static("http://127.0.0.1:5000"),
            Some(&host)
        ));
        assert!(!same_origin(
            &HeaderValue::from_static("http://evil.example"),
            Some(&host)
        ));
        assert!(!same_origin(&HeaderValue::from_static("null"), Some(&host)));
    }
}
