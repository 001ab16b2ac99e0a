//! Two brokers in one app, as in Flask-MQTT's README (`Mqtt(app)` and
//! `Mqtt(app, config_prefix='MQTT2')`): every message under `bridge/` on the first broker is
//! forwarded to `from-mqtt/` on the second one (another prefix, so pointing both at one broker
//! does not loop).
//!
//! ```text
//! MQTT_BROKER_URL=mqtt://broker-a:1883 MQTT2_BROKER_URL=mqtt://broker-b:1883 \
//!     cargo run -p axum-mqtt --example multiple_brokers
//! ```

use std::time::Duration;

use axum_mqtt::extract::{Params, State, Text, Topic};
use axum_mqtt::{Mqtt, MqttConfig, QoS, Router};

/// Prints the connection result of one client, named by its prefix.
fn announce(
    prefix: &'static str,
) -> impl Fn(Mqtt, axum_mqtt::Connack) -> std::future::Ready<()> + Send + Sync + 'static {
    move |_, ack| {
        match ack.code {
            0 => println!("[{prefix}] Connected successfully"),
            code => println!("[{prefix}] Bad connection. Code: {code}"),
        }
        std::future::ready(())
    }
}

/// Runs on the first broker's messages; `State` is the second client.
async fn forward(
    Params(rest): Params<String>,
    Text(payload): Text,
    State(second): State<Mqtt>,
) -> Result<(), axum_mqtt::Error> {
    second
        .publish(format!("from-mqtt/{rest}"), payload)
        .qos(QoS::AtLeastOnce)
        .await?;
    println!("[MQTT] Forwarded bridge/{rest} to MQTT2 from-mqtt/{rest}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init();

    // mqtt2 = Mqtt(app, config_prefix='MQTT2'): reads MQTT2_BROKER_URL, MQTT2_BROKER_PORT, ...
    let second = Mqtt::builder(MqttConfig::from_env_prefix("MQTT2")?)
        .on_connect(announce("MQTT2"))
        .on_topic(
            "from-mqtt/#",
            |Topic(topic): Topic, Text(payload): Text| async move {
                println!("[MQTT2] Received `{payload}` on `{topic}`");
            },
        )
        .start()
        .await?;

    // mqtt = Mqtt(app): reads MQTT_BROKER_URL, MQTT_BROKER_PORT, ...
    let first = Mqtt::builder(MqttConfig::from_env()?)
        .on_connect(announce("MQTT"))
        .router(
            Router::new()
                .route("bridge/{*rest}", forward)
                .with_state(second.clone()),
        )
        .start()
        .await?;

    axum_mqtt::web::shutdown_signal().await;
    first.shutdown(Duration::from_secs(5)).await;
    second.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
