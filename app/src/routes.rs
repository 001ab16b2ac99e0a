//! The routes: `/publish`, `/api/*`, `/events`, `/healthz`, `/metrics`, `/ws`, `/openapi.json`, the
//! page and its assets, with the token guard on the API.

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use axum_mqtt::web::{self, ApiError};

use crate::state::AppState;
use crate::{api, assets, guard, openapi, ws};

/// All routes, with the token guard on the API.
pub fn router(state: AppState) -> Router {
    let body_limit = state.limits.max_payload * 2 + 64 * 1024;
    let guarded = Router::new()
        .route("/publish", post(api::publish))
        .route("/api/messages", get(api::messages))
        .route("/api/info", get(api::info))
        .route("/events", get(api::events))
        .route("/metrics", get(api::metrics))
        .route("/ws", get(ws::upgrade))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard::guard));
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{name}", get(assets::file))
        .route("/assets/vendor/{name}", get(assets::vendor_file))
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
