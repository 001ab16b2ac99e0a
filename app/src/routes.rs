//! The routes: `/publish`, `/api/*`, `/events`, `/healthz`, `/metrics`, `/ws`, `/openapi.json`,
//! `/asyncapi.json`, the page and its assets; the Host check in front of all but `/healthz`, the
//! token guard on the API, and the request timeout on all but the long-lived `/ws` and `/events`.

use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware;
use axum::routing::get;
use axum::{BoxError, Router};
use axum_mqtt::web::ApiError;
use tower::ServiceBuilder;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::host::{self, AllowedHosts};
use crate::openapi::{ApiDoc, Document};
use crate::state::AppState;
use crate::{api, assets, asyncapi, guard, ws};

/// All routes, with their checks and limits.
pub fn router(state: AppState, hosts: Arc<AllowedHosts>, request_timeout: Duration) -> Router {
    let body_limit = state.limits.max_payload * 2 + 64 * 1024;
    // tower's timeout with a JSON answer (tower-http's TimeoutLayer answers with an empty body).
    let timeout = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |e: BoxError| async move {
            timed_out(e, request_timeout)
        }))
        .timeout(request_timeout);
    let guarded = api()
        .route_layer(timeout.clone())
        // Long-lived: bounded by --max-ws-clients / --max-sse-clients, WebSocket pings and shutdown.
        .merge(streams())
        .route_layer(middleware::from_fn_with_state(state.clone(), guard::guard));
    let (routes, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(open())
        .route_layer(timeout)
        .merge(guarded)
        .split_for_parts();
    let doc = Document::new(&doc);
    routes
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { doc.response() }
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(hosts, host::check))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// The token-guarded API with a request timeout. Each `routes!` serves a handler at the path its
/// `#[utoipa::path]` documents.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::publish))
        .routes(routes!(api::publish_status))
        .routes(routes!(api::messages))
        .routes(routes!(api::info))
        .routes(routes!(api::metrics))
        // Names the app's subscriptions and its broker, like /api/info: behind the token too.
        .routes(routes!(asyncapi::document))
}

/// Guarded long-lived streams (no request timeout). `/ws` is described in the README: OpenAPI has no
/// WebSocket.
fn streams() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::events))
        .route("/ws", get(ws::upgrade))
}

/// Open to anyone who passes the Host check: the page, its assets, health.
fn open() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(assets::index))
        .route("/assets/{name}", get(assets::file))
        .route("/assets/vendor/{name}", get(assets::vendor_file))
        .routes(routes!(api::healthz))
}

/// The whole document as [`router`] builds it (for tests).
#[cfg(test)]
pub fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(open())
        .merge(api())
        .merge(streams())
}

fn timed_out(e: BoxError, limit: Duration) -> ApiError {
    if e.is::<tower::timeout::error::Elapsed>() {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request was not read and answered within {} (--request-timeout)",
                humantime::format_duration(limit)
            ),
        )
    } else {
        tracing::error!(error = %e, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the request failed: {e}"),
        )
    }
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
