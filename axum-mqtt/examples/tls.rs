//! Connecting over TLS with a CA bundle and a client certificate, configured with Flask-MQTT's
//! `MQTT_TLS_*` keys; checks the connection with one message sent to itself and back.
//!
//! ```text
//! MQTT_BROKER_URL=broker.example MQTT_BROKER_PORT=8883 MQTT_TLS_ENABLED=true \
//! MQTT_TLS_CA_CERTS=ca.pem MQTT_TLS_CERTFILE=client.pem MQTT_TLS_KEYFILE=client.key \
//!     cargo run -p axum-mqtt --example tls
//! ```
//!
//! `MQTT_TLS_CA_CERTS` may be left out to trust the system's roots; `MQTT_TLS_CERTFILE` and
//! `MQTT_TLS_KEYFILE` only when the broker asks for client certificates; `MQTT_TLS_VERSION=1.3`
//! restricts the version. (`mqtts://host` in `MQTT_BROKER_URL` also turns TLS on.)

use std::time::Duration;

use axum_mqtt::{Mqtt, MqttConfig, QoS, Status};
use clap::Parser;
use futures_util::StreamExt;

#[derive(Parser)]
struct Args {
    /// How long to wait for the first connection.
    #[arg(long, default_value_t = 10)]
    wait_secs: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init();
    let args = Args::parse();
    let config = MqttConfig::from_env()?;
    let broker = format!("{}:{}", config.broker_url, config.broker_port);
    if !config.tls.enabled {
        eprintln!("TLS is off: set MQTT_TLS_ENABLED=true (or MQTT_BROKER_URL=mqtts://...)");
    }

    // Certificates are read here: a missing or unreadable file is an error now, not at connect.
    let mqtt = Mqtt::start(config).await?;

    // A refused handshake (unknown CA, no client certificate, ...) is retried in the background;
    // give up after a while and say why.
    let state = mqtt
        .wait_connected(Duration::from_secs(args.wait_secs))
        .await;
    if state.status != Status::Connected {
        let why = state.last_error.as_deref().unwrap_or("no answer");
        println!("Could not connect to {broker}: {why}");
        std::process::exit(1);
    }
    println!("Connected to {broker} over TLS");

    // One message to ourselves proves the session works end to end.
    let topic = format!("tls-check/{}", state.client_id);
    let mut echo = mqtt.stream(&topic, QoS::AtLeastOnce, 1).await?;
    mqtt.publish(&topic, "hello over TLS")
        .qos(QoS::AtLeastOnce)
        .await?;
    let back = tokio::time::timeout(Duration::from_secs(10), echo.next()).await;
    mqtt.shutdown(Duration::from_secs(5)).await;
    match back {
        Ok(Some(msg)) => println!("Received `{}` back", String::from_utf8_lossy(msg.payload())),
        _ => return Err("the message did not come back".into()),
    }
    Ok(())
}
