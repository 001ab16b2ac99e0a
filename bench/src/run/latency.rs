//! Section 3, latency: 1000 timestamped QoS 1 messages a second, publish → handler.

use std::time::{Duration, Instant};

use super::ctx::{done_of, recv_args, Ctx};
use crate::broker::Broker;
use crate::kid::Kid;
use crate::publisher;
use crate::python::Flask;
use crate::results::Latency;

/// 1k msg/s of timestamped QoS 1 messages; the axum-mqtt and rumqttc receivers listen at once.
pub async fn ours(ctx: &Ctx, b: &Broker) -> Result<Vec<Latency>, String> {
    let topic = ctx.topic("lat");
    let expected = (1000.0 * ctx.lat_secs).round() as u64;
    let mut kids = Vec::new();
    for kind in ["axum", "rumqttc"] {
        let mut args = recv_args(kind, b.port, &topic, expected);
        args.push("--latency".into());
        let mut k = Kid::spawn(kind, &args, &ctx.log)?;
        k.event("ready", Duration::from_secs(15)).await?;
        kids.push(k);
    }
    let sent = publisher::paced(b.port, &topic, 1, 1000, ctx.lat_secs).await?;
    let mut out = Vec::new();
    for mut k in kids {
        k.send(&format!("expect {sent}")).await;
        let d = done_of(&k.event("done", Duration::from_secs(60)).await?)?;
        let [p50, p99, max] = d.lat_us.unwrap_or_default();
        out.push(Latency {
            receiver: k.name.clone(),
            qos: 1,
            sent,
            received: d.received,
            p50_us: p50,
            p99_us: p99,
            max_us: max,
        });
        k.finish().await;
    }
    Ok(out)
}

/// The same rate to app.py, whose on_message takes the latencies; /stats reports them.
pub async fn flask(ctx: &Ctx, flask: &Flask, b: &Broker) -> Result<Latency, String> {
    flask.reset().await?;
    let topic = ctx.topic("bench/lat");
    let sent = publisher::paced(b.port, &topic, 1, 1000, ctx.lat_secs).await?;
    let started = Instant::now();
    let s = loop {
        let s = flask.stats().await?;
        let n = s["received"].as_u64().unwrap_or(0);
        if n >= sent || started.elapsed() > Duration::from_secs(5) {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lat: Vec<u32> = s["lat_us"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(0) as u32).collect())
        .unwrap_or_default();
    Ok(Latency {
        receiver: "Flask-MQTT".into(),
        qos: 1,
        sent,
        received: s["received"].as_u64().unwrap_or(0),
        p50_us: lat.first().copied().unwrap_or(0),
        p99_us: lat.get(1).copied().unwrap_or(0),
        max_us: lat.get(2).copied().unwrap_or(0),
    })
}
