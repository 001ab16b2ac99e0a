//! Load sources: a rumqttc flood publisher with a large in-flight window (mosquitto_pub manages
//! under 2k msg/s at QoS 1) and a paced publisher of timestamped messages for latency.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};

use crate::procinfo::now_ns;

pub fn qos(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

async fn connect(port: u16, tag: &str, inflight: u16) -> Result<(AsyncClient, EventLoop), String> {
    let mut o = MqttOptions::new(
        format!(
            "bench-{tag}-{}-{}",
            std::process::id(),
            now_ns() % 1_000_000
        ),
        "127.0.0.1",
        port,
    );
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(inflight);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut el) = AsyncClient::new(o, 4096);
    // Nagle off: a paced stream of small publishes would otherwise wait for the broker's delayed
    // ACKs (tens of ms), and the latency sections would measure that instead of the path.
    let mut net = el.network_options();
    net.set_tcp_nodelay(true);
    el.set_network_options(net);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ev = tokio::time::timeout_at(deadline.into(), el.poll())
            .await
            .map_err(|_| "publisher: no CONNACK within 10 s".to_string())?;
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok((client, el)),
            Ok(_) => {}
            Err(e) => return Err(format!("publisher connect: {e}")),
        }
    }
}

async fn disconnect(client: AsyncClient, mut el: EventLoop) {
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match el.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

/// What a flood publisher did.
#[derive(Debug, Clone, Copy)]
pub struct Flood {
    /// Messages written (QoS 0) or acknowledged by the broker (QoS 1).
    pub done: u64,
    pub secs: f64,
}

/// Publishes `count` messages of `size` bytes as fast as the broker takes them. At QoS 1 up to
/// `inflight` wait for PUBACK at once; returns when all were acknowledged (or written, at QoS 0).
pub async fn flood(
    port: u16,
    topic: &str,
    q: u8,
    count: u64,
    size: usize,
    inflight: u16,
) -> Result<Flood, String> {
    let (client, mut el) = connect(port, "flood", inflight).await?;
    let payload = Bytes::from(vec![b'x'; size]);
    let t0 = Instant::now();
    let producer = {
        let client = client.clone();
        let topic = topic.to_string();
        tokio::spawn(async move {
            for _ in 0..count {
                if client
                    .publish_bytes(topic.clone(), qos(q), false, payload.clone())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        })
    };
    let mut written = 0u64;
    let mut acked = 0u64;
    let deadline = t0 + Duration::from_secs(300);
    while (q == 0 && written < count) || (q > 0 && acked < count) {
        let ev = tokio::time::timeout_at(deadline.into(), el.poll())
            .await
            .map_err(|_| format!("flood: stuck at {written} written, {acked} acked"))?;
        match ev {
            Ok(Event::Outgoing(Outgoing::Publish(_))) => written += 1,
            Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
            Ok(Event::Incoming(Packet::PubComp(_))) => acked += 1,
            Ok(_) => {}
            Err(e) => {
                return Err(format!(
                    "flood: connection error after {written} written: {e}"
                ))
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let _ = producer.await;
    disconnect(client, el).await;
    Ok(Flood {
        done: if q == 0 { written } else { acked },
        secs,
    })
}

/// Publishes `rate` messages per second for `secs` seconds; each payload starts with the send time
/// (nanoseconds since the epoch, 20 ASCII digits). Returns how many were sent.
pub async fn paced(port: u16, topic: &str, q: u8, rate: u32, secs: f64) -> Result<u64, String> {
    let (client, mut el) = connect(port, "paced", 1000).await?;
    let poller = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return String::new(),
                Ok(_) => {}
                Err(e) => return format!("paced publisher: {e}"),
            }
        }
    });
    let total = (rate as f64 * secs).round() as u64;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0;
    for _ in 0..total {
        tick.tick().await;
        let payload = format!("{:020}-latency-probe", now_ns());
        if client
            .publish(topic, qos(q), false, payload.into_bytes())
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    // Let the last messages go out before disconnecting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = client.disconnect().await;
    let abort = poller.abort_handle();
    if tokio::time::timeout(Duration::from_secs(2), poller)
        .await
        .is_err()
    {
        abort.abort();
    }
    Ok(sent)
}

pub fn axum_qos(q: u8) -> axum_mqtt::QoS {
    match q {
        0 => axum_mqtt::QoS::AtMostOnce,
        1 => axum_mqtt::QoS::AtLeastOnce,
        _ => axum_mqtt::QoS::ExactlyOnce,
    }
}
