//! `GET /openapi.json`: the HTTP API described as OpenAPI 3 (hand-written, checked by tests).

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The document.
pub const DOCUMENT: &str = include_str!("../assets/openapi.json");

/// Serves [`DOCUMENT`].
pub async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_json_with_every_route() {
        let v: serde_json::Value = serde_json::from_str(super::DOCUMENT).unwrap();
        assert!(v["openapi"].as_str().unwrap().starts_with("3."));
        for p in [
            "/publish",
            "/api/messages",
            "/api/info",
            "/events",
            "/healthz",
            "/metrics",
            "/openapi.json",
        ] {
            assert!(v["paths"].get(p).is_some(), "{p} is not documented");
        }
    }
}
