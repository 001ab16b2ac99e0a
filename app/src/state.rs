//! What every request handler shares.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use axum_mqtt::web::PublishEndpoint;
use axum_mqtt::Mqtt;
use serde::Serialize;
use tokio::sync::watch;

use crate::allow::AllowList;
use crate::assets::Assets;
use crate::messages::MessageLog;
use crate::metrics::Metrics;
use crate::slots::Slots;

/// Limits of the WebSocket and the streams.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Limits {
    /// Largest payload of a publish, in bytes.
    pub max_payload: usize,
    /// Largest WebSocket message accepted from a browser, in bytes.
    pub max_ws_message: usize,
    /// Frames queued per browser before messages are skipped.
    pub ws_queue: usize,
    /// Bytes queued per browser before messages are skipped.
    pub ws_queue_bytes: usize,
    /// Subscriptions per browser tab.
    pub ws_max_subscriptions: usize,
    /// Messages kept for `GET /api/messages`.
    pub history: usize,
    /// WebSocket clients at once.
    pub max_ws_clients: usize,
    /// Server-Sent Events clients at once.
    pub max_sse_clients: usize,
    /// How often each WebSocket is pinged.
    #[serde(rename = "ws_ping_interval_ms", serialize_with = "millis")]
    #[schema(value_type = u64)]
    pub ws_ping_interval: Duration,
    /// A WebSocket silent (no pong, no frame) for this long is closed.
    #[serde(rename = "ws_peer_timeout_ms", serialize_with = "millis")]
    #[schema(value_type = u64)]
    pub ws_peer_timeout: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Where things are, for `GET /api/info` and the page.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoints {
    /// The MQTT broker the app's client talks to.
    pub broker: String,
    /// The embedded broker's listeners (empty when none runs).
    pub embedded_broker: Vec<Listener>,
}

/// One listener of the embedded broker.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Listener {
    /// What it speaks, e.g. "MQTT 3.1.1 and 5".
    pub protocol: &'static str,
    /// Where, e.g. `mqtt://127.0.0.1:1883`.
    pub url: String,
}

/// The application state (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub mqtt: Mqtt,
    /// `POST /publish` and the WebSocket's publish op: size limit and the publish allow-list.
    pub publish: PublishEndpoint,
    /// Which filters `/events` and the WebSocket may subscribe within.
    pub allow_subscribe: AllowList,
    /// The page and its scripts.
    pub assets: Assets,
    pub token: Option<Arc<str>>,
    pub log: Arc<MessageLog>,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub endpoints: Arc<Endpoints>,
    pub subscriptions: Arc<Vec<String>>,
    /// Caps on `/ws` and `/events` clients.
    pub ws_slots: Slots,
    pub sse_slots: Slots,
    /// Turns true when the app shuts down: WebSockets and SSE streams end.
    pub shutdown: watch::Receiver<bool>,
}

impl FromRef<AppState> for Mqtt {
    fn from_ref(s: &AppState) -> Mqtt {
        s.mqtt.clone()
    }
}

impl FromRef<AppState> for Assets {
    fn from_ref(s: &AppState) -> Assets {
        s.assets.clone()
    }
}

impl AppState {
    /// Resolves when the app shuts down.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}
