//! What `GET /events` and the WebSocket share to follow a filter: the filter and QoS checks and the
//! subscription with a deadline.

use std::time::Duration;

use axum::http::StatusCode;
use axum_mqtt::web::ApiError;
use axum_mqtt::{MessageStream, QoS};

use crate::state::AppState;

/// How long a subscription may wait for the broker's SUBACK.
pub const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Parses an optional `qos` (0, 1 or 2; default 0) from text.
pub fn parse_qos(v: Option<&str>) -> Result<QoS, ApiError> {
    match v {
        None => Ok(QoS::AtMostOnce),
        Some(s) => QoS::parse(s).ok_or_else(|| {
            ApiError::unprocessable("invalid_qos", format!("qos must be 0, 1 or 2, got {s:?}"))
        }),
    }
}

/// Checks a filter someone wants to follow: valid, and within the subscribe allow-list.
pub fn check_filter(st: &AppState, filter: &str) -> Result<(), ApiError> {
    axum_mqtt::topic::validate_filter(filter)?;
    if !st.allow_subscribe.allows_filter(filter) {
        st.metrics.forbidden.increment(1);
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
) -> Result<MessageStream, ApiError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_from_text() {
        assert_eq!(parse_qos(None).unwrap(), QoS::AtMostOnce);
        assert_eq!(parse_qos(Some("2")).unwrap(), QoS::ExactlyOnce);
        let e = parse_qos(Some("3")).unwrap_err();
        assert_eq!((e.status.as_u16(), e.kind), (422, "invalid_qos"));
    }
}
