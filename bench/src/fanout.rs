//! Fan-out through the app: N WebSocket clients of `axum-mqtt-app` (`GET /ws`, op `subscribe`)
//! follow one topic while the paced publisher sends timestamped messages to Mosquitto. Measures
//! delivery (frames received / messages × clients), publish → browser-client latency, and the
//! app's CPU and peak RSS.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::process::Command;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as Ws;

use crate::broker::{free_port, Broker};
use crate::procinfo::{self, now_ns, percentile};

#[derive(Debug, Clone, Serialize)]
pub struct Fanout {
    pub clients: usize,
    pub rate: u32,
    pub secs: f64,
    pub sent: u64,
    pub frames: u64,
    /// Messages the app reported skipping for slow clients (`dropped` frames).
    pub skipped: u64,
    pub p50_us: u32,
    pub p99_us: u32,
    pub max_us: u32,
    pub app_cpu_s: f64,
    pub app_hwm_kib: u64,
}

/// Where `payload` starts in a message frame, and its 20-digit send time.
fn sent_ns(frame: &str) -> Option<u64> {
    let i = frame.find("\"payload\":\"")? + "\"payload\":\"".len();
    frame.get(i..i + 20)?.parse().ok()
}

pub async fn run(
    app_bin: &Path,
    broker: &Broker,
    out: &Path,
    clients: usize,
    rate: u32,
    secs: f64,
    topic: &str,
) -> Result<Fanout, String> {
    let port = free_port().map_err(|e| e.to_string())?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out.join("app.log"))
        .map_err(|e| e.to_string())?;
    let mut app = Command::new(app_bin)
        .args(["--no-broker", "--http", &format!("127.0.0.1:{port}")])
        // The app admits 256 WebSocket clients and 512 connections by default; the run needs all in.
        .args(["--max-ws-clients", &(clients + 16).to_string()])
        .args(["--max-connections", &(clients + 64).to_string()])
        .env(
            "MQTT_BROKER_URL",
            format!("mqtt://127.0.0.1:{}", broker.port),
        )
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", app_bin.display()))?;
    let pid = app.id().ok_or("app has no pid")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((200, _)) = crate::http::request(port, "GET", "/healthz").await {
            break;
        }
        if Instant::now() > deadline {
            return Err(
                "the app did not become healthy within 20 s (see bench/out/app.log)".into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(clients.max(1));
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        // Open connections a few at a time so the listen backlog never overflows.
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let url = format!("ws://127.0.0.1:{port}/ws");
        let sub = serde_json::json!({"op": "subscribe", "filter": topic, "qos": 0}).to_string();
        let mut stop = stop_rx.clone();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            ws.send(Ws::text(sub)).await.map_err(|e| e.to_string())?;
            let mut lat: Vec<u32> = Vec::new();
            let (mut frames, mut skipped, mut subscribed) = (0u64, 0u64, false);
            loop {
                let next = tokio::select! {
                    m = ws.next() => m,
                    _ = stop.wait_for(|s| *s) => break,
                };
                let Some(Ok(Ws::Text(t))) = next else {
                    if next.is_none() {
                        break;
                    }
                    continue;
                };
                let t = t.as_str();
                if t.starts_with("{\"type\":\"message\"") || t.contains("\"type\":\"message\"") {
                    let now = now_ns();
                    frames += 1;
                    if let Some(sent) = sent_ns(t) {
                        lat.push((now.saturating_sub(sent) / 1000).min(u32::MAX as u64) as u32);
                    }
                } else if !subscribed && t.contains("\"type\":\"ack\"") {
                    subscribed = true;
                    let _ = ready.send(()).await;
                } else if t.contains("\"type\":\"dropped\"") {
                    let v: serde_json::Value = serde_json::from_str(t).unwrap_or_default();
                    skipped += v["count"].as_u64().unwrap_or(0);
                } else if t.contains("\"type\":\"error\"") {
                    return Err(format!("app error frame: {t}"));
                }
            }
            let _ = ws.close(None).await;
            Ok::<_, String>((frames, skipped, lat))
        }));
    }
    drop(ready_tx);
    let mut ready = 0;
    let wait = Instant::now() + Duration::from_secs(60);
    while ready < clients {
        match tokio::time::timeout_at(wait.into(), ready_rx.recv()).await {
            Ok(Some(())) => ready += 1,
            _ => break,
        }
    }
    if ready < clients {
        let _ = stop_tx.send(true);
        let mut first = String::new();
        for t in tasks {
            if let Ok(Err(e)) = t.await {
                first = e;
                break;
            }
        }
        return Err(format!(
            "only {ready} of {clients} WebSocket clients subscribed: {first}"
        ));
    }
    let cpu0 = procinfo::cpu_seconds(pid).unwrap_or(f64::NAN);
    let sent = crate::publisher::paced(broker.port, topic, 0, rate, secs).await?;
    // Let the last frames arrive.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let cpu1 = procinfo::cpu_seconds(pid).unwrap_or(f64::NAN);
    let hwm = procinfo::vm_hwm_kib(pid).unwrap_or(0);
    let _ = stop_tx.send(true);
    let (mut frames, mut skipped, mut lat) = (0, 0, Vec::new());
    for t in tasks {
        if let Ok(Ok((f, s, l))) = t.await {
            frames += f;
            skipped += s;
            lat.extend(l);
        }
    }
    let _ = app.kill().await;
    lat.sort_unstable();
    Ok(Fanout {
        clients,
        rate,
        secs,
        sent,
        frames,
        skipped,
        p50_us: percentile(&lat, 50.0),
        p99_us: percentile(&lat, 99.0),
        max_us: lat.last().copied().unwrap_or(0),
        app_cpu_s: cpu1 - cpu0,
        app_hwm_kib: hwm,
    })
}
