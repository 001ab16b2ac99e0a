//! The "How to use MQTT in Flask" tutorial app, in Rust.
//!
//! ```text
//! MQTT_BROKER_URL=broker.emqx.io cargo run -p axum-mqtt --example flask_tutorial
//! curl -X POST localhost:5000/publish -H 'content-type: application/json' \
//!      -d '{"topic": "/flask/mqtt", "msg": "hello"}'
//! ```
//!
//! The Python original keeps its settings in `app.config['MQTT_*']`; here the same keys come from
//! the environment (`MQTT_BROKER_URL`, `MQTT_BROKER_PORT`, `MQTT_USERNAME`, `MQTT_PASSWORD`,
//! `MQTT_KEEPALIVE`, `MQTT_TLS_ENABLED`, ...). It prints the same lines as the tutorial.

use std::net::SocketAddr;

use axum::routing::post;
use axum_mqtt::{web, Message, Mqtt, MqttConfig};
use clap::Parser;

/// The tutorial's topic.
const TOPIC: &str = "/flask/mqtt";

#[derive(Parser)]
struct Args {
    /// Where the HTTP API listens.
    #[arg(long, env = "APP_HTTP_ADDR", default_value = "127.0.0.1:5000")]
    http: SocketAddr,
}

/// `@mqtt_client.on_message()`: here a handler of the `/flask/mqtt` route.
async fn handle_mqtt_message(message: Message) {
    let payload = String::from_utf8_lossy(message.payload());
    println!(
        "Received message on topic: {} with payload: {payload}",
        message.topic()
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init(); // RUST_LOG=info shows what paho's on_log would
    let args = Args::parse();

    // app.config['MQTT_*']: read from the environment, with the tutorial's keepalive of 5 s
    // (TLS is off unless MQTT_TLS_ENABLED=true).
    let mut config = MqttConfig::from_env()?;
    if std::env::var_os("MQTT_KEEPALIVE").is_none() {
        config.keepalive = std::time::Duration::from_secs(5);
    }

    // mqtt_client = Mqtt(app), with @on_connect and the subscription. A route is subscribed on
    // every connect, so unlike `subscribe()` inside on_connect it cannot be forgotten.
    let mqtt = Mqtt::builder(config)
        .on_connect(|_mqtt, ack| async move {
            if ack.is_success() {
                println!("Connected successfully");
            } else {
                println!("Bad connection. Code: {}", ack.code);
            }
        })
        .on_topic(TOPIC, handle_mqtt_message)
        .start()
        .await?;

    // @app.route('/publish', methods=['POST']): {"topic", "msg"} -> {"code": 0, "mid": N}, answered
    // once the broker has the message.
    let app = axum::Router::new()
        .route("/publish", post(web::publish))
        .with_state(mqtt.clone());
    let listener = tokio::net::TcpListener::bind(args.http).await?;
    println!("Serving on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(web::shutdown_signal())
        .await?;
    mqtt.shutdown(std::time::Duration::from_secs(5)).await;
    Ok(())
}
