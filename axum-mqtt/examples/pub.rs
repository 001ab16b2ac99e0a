//! The paho-mqtt tutorial's `pub.py`: publish `messages: N` every second.
//!
//! ```text
//! cargo run -p axum-mqtt --example pub -- --broker broker.emqx.io
//! cargo run -p axum-mqtt --example pub -- --count 3 --interval-ms 100
//! ```

use std::time::Duration;

use axum_mqtt::{Mqtt, MqttConfig, QoS};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    broker: String,
    /// Broker port.
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Topic to publish to.
    #[arg(long, default_value = "/python/mqtt")]
    topic: String,
    /// QoS 0, 1 or 2.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Stop after this many messages (default: run forever).
    #[arg(long)]
    count: Option<u64>,
    /// Pause between messages.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init();
    let args = Args::parse();
    let qos = QoS::try_from(args.qos)?;

    // client_id = f'python-mqtt-{random.randint(0, 1000)}'
    let mut config = MqttConfig::new(&args.broker, args.port);
    config.client_id = format!("rust-mqtt-{}", fastrand::u32(..));

    // paho's on_connect; the client connects (and reconnects) in the background.
    let mqtt = Mqtt::builder(config)
        .on_connect(|_mqtt, ack| async move {
            if ack.is_success() {
                println!("Connected to MQTT Broker!");
            } else {
                println!("Failed to connect, return code {}", ack.code);
            }
        })
        .start()
        .await?;

    // Like pub.py: the first message is `messages: 0`.
    let mut n = 0;
    while args.count.is_none_or(|count| n < count) {
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
        let msg = format!("messages: {n}");
        // Unlike paho's `client.publish()`, this resolves when the broker has the message
        // (for QoS 0: when it was written to the socket).
        let sent = mqtt
            .publish(&args.topic, msg.clone())
            .qos(qos)
            .timeout(Duration::from_secs(5))
            .await;
        match sent {
            Ok(_) => println!("Send `{msg}` to topic `{}`", args.topic),
            Err(e) => {
                println!("Failed to send message to topic {}", args.topic);
                eprintln!("{e}");
            }
        }
        n += 1;
    }
    mqtt.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
