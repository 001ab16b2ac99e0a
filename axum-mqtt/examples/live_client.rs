//! Flask-MQTT's Socket.IO example, rebuilt with Server-Sent Events: a browser page that publishes,
//! subscribes, unsubscribes from everything, and shows messages live.
//!
//! ```text
//! cargo run -p axum-mqtt --example live_client    # then open http://127.0.0.1:5000
//! ```
//!
//! | Flask-MQTT + Socket.IO                    | here                                                |
//! |-------------------------------------------|-----------------------------------------------------|
//! | `socketio.on('publish')` → `mqtt.publish` | `fetch('/publish')` → `web::publish`              |
//! | `socketio.on('subscribe')` → `mqtt.subscribe` | `new EventSource('/events?topic=..')` → `mqtt.stream` |
//! | `socketio.on('unsubscribe_all')`          | closing the page's event sources                    |
//! | `on_message` → `socketio.emit`            | the stream, sent as SSE by `web::sse`               |
//!
//! Each browser tab gets only the topics it subscribed to. A stream's subscription is released
//! when its last reader is gone (for a closed event source: on the next message or keep-alive).

use std::net::SocketAddr;

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum_mqtt::web::{self, ApiError};
use axum_mqtt::{Mqtt, MqttConfig, QoS};
use clap::Parser;
use serde::Deserialize;

#[derive(Parser)]
struct Args {
    /// Where the HTTP server listens.
    #[arg(long, env = "APP_HTTP_ADDR", default_value = "127.0.0.1:5000")]
    http: SocketAddr,
}

#[derive(Deserialize)]
struct Subscribe {
    topic: String,
    #[serde(default)]
    qos: u8,
}

/// `GET /events?topic=a/%23&qos=1`: the topic's messages as Server-Sent Events. The response
/// starts once the broker granted the subscription.
async fn events(
    State(mqtt): State<Mqtt>,
    Query(sub): Query<Subscribe>,
) -> Result<impl IntoResponse, ApiError> {
    let qos = QoS::try_from(sub.qos).map_err(|e| ApiError::bad_request("invalid_qos", e))?;
    let stream = mqtt.stream(&sub.topic, qos, 64).await?;
    Ok(web::sse(stream))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init(); // Flask-MQTT's on_log: RUST_LOG=axum_mqtt=debug
    let args = Args::parse();
    let mqtt = Mqtt::start(MqttConfig::from_env()?).await?;

    let app = axum::Router::new()
        .route("/", get(Html(PAGE)))
        .route("/publish", post(web::publish))
        .route("/events", get(events))
        .with_state(mqtt.clone());
    let listener = tokio::net::TcpListener::bind(args.http).await?;
    println!("Serving on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(web::shutdown_signal())
        .await?;
    mqtt.shutdown(std::time::Duration::from_secs(5)).await;
    Ok(())
}

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>axum-mqtt live client</title>
<p>Publish: <input id="pt" value="demo/hello"> <input id="pm" value="hi"> QoS <input id="pq" type="number" min="0" max="2" value="0" size="1">
  <button onclick="publish()">Publish</button>
<p>Subscribe: <input id="st" value="demo/#"> QoS <input id="sq" type="number" min="0" max="2" value="0" size="1">
  <button onclick="subscribe()">Subscribe</button> <button onclick="unsubscribeAll()">Unsubscribe all</button>
<pre id="log"></pre>
<script>
const $ = (id) => document.getElementById(id);
const sources = [];
function show(line) { $('log').textContent = line + '\n' + $('log').textContent; }
function publish() {
  fetch('/publish', {method: 'POST', headers: {'content-type': 'application/json'},
    body: JSON.stringify({topic: $('pt').value, msg: $('pm').value, qos: +$('pq').value})})
    .then((r) => r.json()).then((r) => { if (r.code !== 0) show('publish failed: ' + r.error); });
}
function subscribe() {
  const topic = $('st').value;
  const es = new EventSource('/events?' + new URLSearchParams({topic, qos: $('sq').value}));
  es.onmessage = (e) => { const m = JSON.parse(e.data); show(m.topic + ': ' + (m.payload ?? m.payload_base64)); };
  es.onopen = () => show('subscribed to ' + topic);
  sources.push(es);
}
function unsubscribeAll() { sources.splice(0).forEach((es) => es.close()); show('unsubscribed from everything'); }
</script>
"#;
