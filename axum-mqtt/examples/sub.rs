//! The paho-mqtt tutorial's `sub.py`: print every message of a topic.
//!
//! ```text
//! cargo run -p axum-mqtt --example sub -- --broker broker.emqx.io
//! cargo run -p axum-mqtt --example sub -- --count 3
//! ```

use std::time::Duration;

use axum_mqtt::{Message, Mqtt, MqttConfig, QoS};
use clap::Parser;
use tokio::sync::mpsc;

#[derive(Parser)]
struct Args {
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    broker: String,
    /// Broker port.
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Topic (filter) to subscribe to.
    #[arg(long, default_value = "/python/mqtt")]
    topic: String,
    /// QoS 0, 1 or 2.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Stop after this many messages (default: run forever).
    #[arg(long)]
    count: Option<u64>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init();
    let args = Args::parse();
    let qos = QoS::try_from(args.qos)?;

    let mut config = MqttConfig::new(&args.broker, args.port);
    config.client_id = format!("rust-mqtt-{}", fastrand::u32(..));

    // Each received message is also counted here, to stop after `--count`.
    let (done, mut received) = mpsc::channel::<()>(16);
    let mqtt = Mqtt::builder(config)
        .on_connect(|_mqtt, ack| async move {
            if ack.is_success() {
                println!("Connected to MQTT Broker!");
            } else {
                println!("Failed to connect, return code {}", ack.code);
            }
        })
        // client.on_message = on_message
        .on_message(move |msg: Message| {
            let done = done.clone();
            async move {
                let payload = String::from_utf8_lossy(msg.payload());
                println!("Received `{payload}` from `{}` topic", msg.topic());
                let _ = done.send(()).await;
            }
        })
        .start()
        .await?;

    // client.subscribe(topic): waits for the broker's SUBACK, and is restored after reconnects.
    let granted = mqtt.subscribe(&args.topic, qos).await?;
    println!("Subscribed to `{}` (QoS {})", args.topic, u8::from(granted));

    // client.loop_forever(), or until `--count` messages arrived.
    let mut n = 0;
    while args.count.is_none_or(|count| n < count) && received.recv().await.is_some() {
        n += 1;
    }
    mqtt.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
