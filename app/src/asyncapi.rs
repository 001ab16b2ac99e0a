//! `GET /asyncapi.json`: the app's MQTT side as an AsyncAPI 3.0 document, made by the library's
//! `Router::asyncapi` from the same routes the app subscribes with (`--subscribe`), with the broker
//! the app's client talks to as its server.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;

/// Serves the document.
#[utoipa::path(
    get,
    path = "/asyncapi.json",
    operation_id = "asyncapi",
    summary = "The app's MQTT side as AsyncAPI 3.0",
    description = "One channel per `--subscribe` route (QoS, payload) with the broker the app's client \
        uses as server.",
    security((), ("bearerAuth" = []), ("queryToken" = [])),
    responses(
        (status = 200, description = "AsyncAPI 3.0 document.", content_type = "application/json", body = Object),
        crate::openapi::Guarded,
    )
)]
pub async fn document(State(state): State<AppState>) -> Response {
    Json(describe(&state.subscriptions, &state.endpoints.broker)).into_response()
}

/// The routes `main` adds for `--subscribe` (each filter with the default QoS 1, payload logged
/// as bytes), described, with `broker` (`mqtt://host:port`, `ws://…`) as the server.
pub fn describe(filters: &[String], broker: &str) -> Value {
    let routes = filters.iter().fold(axum_mqtt::Router::<()>::new(), |r, f| {
        r.route(f, || async {})
    });
    let mut doc = routes.asyncapi("axum-mqtt-app", env!("CARGO_PKG_VERSION"));
    doc["info"]["description"] = json!(
        "The topics the app subscribes to (--subscribe); every message is logged, kept for \
         GET /api/messages and relayed to the live page."
    );
    if let Some(server) = server(broker) {
        doc["servers"] = json!({ "broker": server });
    }
    doc
}

/// An AsyncAPI server object for a broker URL.
fn server(broker: &str) -> Option<Value> {
    let url = url::Url::parse(broker).ok()?;
    let protocol = match url.scheme() {
        "mqtt" => "mqtt",
        "mqtts" => "secure-mqtt",
        "ws" => "ws",
        "wss" => "wss",
        _ => return None,
    };
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str()?),
        None => url.host_str()?.to_string(),
    };
    let mut server = json!({ "host": host, "protocol": protocol });
    if matches!(protocol, "ws" | "wss") {
        server["pathname"] = json!(url.path());
    }
    Some(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_channel_per_filter_and_the_broker_as_server() {
        let filters = vec!["sensors/#".to_string(), "alerts/+".to_string()];
        let doc = describe(&filters, "mqtt://127.0.0.1:1883");
        assert_eq!(doc["asyncapi"], "3.0.0");
        assert_eq!(doc["channels"]["sensors.rest"]["address"], "sensors/{rest}");
        assert_eq!(
            doc["channels"]["alerts.level2"]["address"],
            "alerts/{level2}"
        );
        assert_eq!(
            doc["servers"]["broker"],
            json!({"host": "127.0.0.1:1883", "protocol": "mqtt"})
        );
        let ws = describe(&[], "wss://[::1]:8884/mqtt");
        assert_eq!(
            ws["servers"]["broker"],
            json!({"host": "[::1]:8884", "protocol": "wss", "pathname": "/mqtt"})
        );
    }
}
