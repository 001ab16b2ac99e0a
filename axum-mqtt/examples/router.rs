//! What Flask-MQTT cannot do: topics routed like URLs, with named segments, JSON payloads and
//! shared state, the way axum routes HTTP requests. The same state is served over HTTP.
//!
//! ```text
//! cargo run -p axum-mqtt --example router
//! mosquitto_pub -t sensors/kitchen/temperature -m '{"celsius": 21.5}'
//! mosquitto_pub -t sensors/kitchen/status -m online
//! mosquitto_pub -t logs/app/db -m 'slow query'
//! curl localhost:5000/latest          # {"kitchen":21.5}
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum_mqtt::extract::{Json, Params, State, Text, Topic};
use axum_mqtt::{web, Mqtt, MqttConfig, Router};
use clap::Parser;
use serde::Deserialize;

#[derive(Parser)]
struct Args {
    /// Where the HTTP API listens.
    #[arg(long, env = "APP_HTTP_ADDR", default_value = "127.0.0.1:5000")]
    http: SocketAddr,
}

/// The payload of `sensors/{device}/temperature`.
#[derive(Deserialize)]
struct Reading {
    celsius: f64,
}

/// State shared by MQTT handlers and HTTP handlers: the latest temperature of each device.
type Latest = Arc<Mutex<BTreeMap<String, f64>>>;

/// `sensors/{device}/temperature`: subscribes `sensors/+/temperature`; `device` is the `+` level,
/// the body is parsed as JSON (a bad body never reaches this function, see `on_rejection`).
async fn temperature(
    Params(device): Params<String>,
    Json(reading): Json<Reading>,
    State(latest): State<Latest>,
) {
    let mut latest = latest.lock().unwrap_or_else(|e| e.into_inner());
    latest.insert(device.clone(), reading.celsius);
    println!(
        "{device}: {} °C ({} devices known)",
        reading.celsius,
        latest.len()
    );
}

/// `sensors/{device}/status`: a text payload.
async fn status(Params(device): Params<String>, Text(status): Text) {
    println!("{device} is {status}");
}

/// `logs/{*path}`: subscribes `logs/#`; `path` is the rest of the topic (`app/db` for `logs/app/db`).
async fn log_line(Params(path): Params<String>, Topic(topic): Topic, Text(line): Text) {
    println!("[{path}] {line} (on {topic})");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init();
    let args = Args::parse();
    let latest = Latest::default();

    let routes = Router::new()
        .route("sensors/{device}/temperature", temperature)
        .route("sensors/{device}/status", status)
        .route("logs/{*path}", log_line)
        .on_rejection(|rejection, message| async move {
            println!("Rejected a message on {}: {rejection}", message.topic());
        })
        .with_state(latest.clone());
    let mqtt = Mqtt::builder(MqttConfig::from_env()?)
        .router(routes)
        .start()
        .await?;

    // GET /latest reads the state the MQTT handlers write.
    let app = axum::Router::new().route(
        "/latest",
        get(
            move || async move { axum::Json(latest.lock().map(|m| m.clone()).unwrap_or_default()) },
        ),
    );
    let listener = tokio::net::TcpListener::bind(args.http).await?;
    println!("Serving on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(web::shutdown_signal())
        .await?;
    mqtt.shutdown(std::time::Duration::from_secs(5)).await;
    Ok(())
}
