//! axum integration: ready pieces to mount in one line.
//!
//! * [`Mqtt`] is `Clone` and works as axum `State` (or through `FromRef` from your app state).
//! * [`publish`] / [`PublishEndpoint`]: `POST /publish` with Flask-MQTT's tutorial body
//!   `{"topic": "...", "msg": "..."}` (plus `payload`, `payload_base64`, `qos`, `retain`). It waits for
//!   the broker's acknowledgement and answers `{"code": 0, "mid": N}`; bad input gets a 4xx with
//!   `{"code": 1, "kind": "...", "error": "..."}` ([`ApiError`]) saying what is wrong. The body is read
//!   once into a typed [`PublishRequest`]; other transports (a WebSocket op) publish the same type
//!   through [`PublishEndpoint::publish_request`] and get the same checks and errors.
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

pub(crate) mod error;
pub(crate) mod publish;
pub(crate) mod request;
mod sse;

pub use error::ApiError;
pub use publish::{publish, PublishEndpoint, PublishResponse};
#[cfg(feature = "outbox")]
pub use publish::{OutboxStatusResponse, QueuedResponse};
pub use request::PublishRequest;
pub use sse::{sse, MessageJson, PropertiesJson};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::{Mqtt, Status};

/// `GET /healthz`: the connection state; 200 when connected, 503 otherwise.
///
/// ```no_run
/// # async fn demo(mqtt: axum_mqtt::Mqtt) {
/// let app = axum::Router::new()
///     .route("/healthz", axum::routing::get(axum_mqtt::web::health))
///     .with_state(mqtt);
/// # let _: axum::Router = app;
/// # }
/// ```
pub async fn health(State(mqtt): State<Mqtt>) -> Response {
    let state = mqtt.state();
    let code = if state.status == Status::Connected {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(state)).into_response()
}

/// Resolves on Ctrl-C or SIGTERM: pass it to `axum::serve(..).with_graceful_shutdown(..)`.
///
/// ```no_run
/// # async fn demo(app: axum::Router) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
/// axum::serve(listener, app).with_graceful_shutdown(axum_mqtt::web::shutdown_signal()).await
/// # }
/// ```
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
