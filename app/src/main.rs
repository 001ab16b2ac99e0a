//! The axum-mqtt app (work in progress): an embedded broker and a client that prints what it receives.

use axum_mqtt::extract::{Text, Topic};
use axum_mqtt::{Mqtt, MqttConfig};
use axum_mqtt_broker::{BrokerConfig, EmbeddedBroker};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let broker = EmbeddedBroker::start(BrokerConfig::new("127.0.0.1:1883".parse()?))?;
    let config = MqttConfig::new("127.0.0.1", broker.v4_addr().port());
    let mqtt = Mqtt::builder(config)
        .on_topic("/flask/mqtt", |Topic(t): Topic, Text(p): Text| async move {
            println!("Received message on topic: {t} with payload: {p}");
        })
        .start()
        .await?;
    println!(
        "MQTT broker on mqtt://{}; try: mosquitto_pub -p 1883 -t /flask/mqtt -m hello",
        broker.v4_addr()
    );
    tokio::signal::ctrl_c().await?;
    mqtt.shutdown(std::time::Duration::from_secs(3)).await;
    Ok(())
}
