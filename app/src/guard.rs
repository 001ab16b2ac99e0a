//! The token and origin checks in front of the API and the WebSocket.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_mqtt::web::ApiError;

use crate::state::AppState;

/// Token and origin checks for the API and the WebSocket.
pub async fn guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        if !same_origin(origin, req.headers().get(header::HOST)) {
            st.metrics.forbidden.increment(1);
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
            st.metrics.unauthorized.increment(1);
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
