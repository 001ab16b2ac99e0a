//! Receivers, each in its own child process so /proc gives its CPU time and peak RSS alone:
//! `recv --kind axum` (an axum-mqtt route handler that counts) and `recv --kind rumqttc` (a bare
//! event loop that counts). Both speak the same line protocol on stdout/stdin:
//!
//! * stdout `{"event":"ready"}` once the subscription is acknowledged;
//! * stdin `expect N` sets how many messages to wait for (also `--count`);
//! * stdout `{"event":"done",...}` when N arrived or nothing came for `--idle-ms`;
//! * stdin EOF: exit (the parent reads /proc between "done" and EOF).

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum_mqtt::extract::Payload;
use axum_mqtt::router::RouteOptions;
use axum_mqtt::{Mqtt, MqttConfig, Router};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt;
use tokio::sync::Notify;

use crate::procinfo::{now_ns, percentile};

#[derive(Debug, Clone, clap::Args)]
pub struct RecvArgs {
    /// `axum` or `rumqttc`.
    #[arg(long)]
    pub kind: String,
    #[arg(long)]
    pub port: u16,
    #[arg(long)]
    pub topic: String,
    /// Subscription QoS.
    #[arg(long, default_value_t = 1)]
    pub qos: u8,
    /// Messages to wait for (0: until idle).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// Payloads start with a send timestamp: record latencies.
    #[arg(long)]
    pub latency: bool,
    /// Done after this long without a message (once one arrived).
    #[arg(long, default_value_t = 2000)]
    pub idle_ms: u64,
}

/// The receiver's final report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Done {
    pub received: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    /// Latency percentiles in µs: p50, p99, max.
    pub lat_us: Option<[u32; 3]>,
}

impl Done {
    /// Messages per second between the first and the last message.
    pub fn rate(&self) -> f64 {
        let span = self.last_ns.saturating_sub(self.first_ns) as f64 / 1e9;
        if self.received < 2 || span <= 0.0 {
            0.0
        } else {
            (self.received - 1) as f64 / span
        }
    }
}

#[derive(Default)]
struct Tally {
    count: AtomicU64,
    first_ns: AtomicU64,
    last_ns: AtomicU64,
    target: AtomicU64,
    latency: bool,
    lat_us: Mutex<Vec<u32>>,
    reached: Notify,
}

impl Tally {
    fn on_message(&self, payload: &[u8]) {
        let now = now_ns();
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        if n == 1 {
            self.first_ns.store(now, Ordering::Relaxed);
        }
        self.last_ns.store(now, Ordering::Relaxed);
        if self.latency {
            let sent = payload
                .get(..20)
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| s.parse::<u64>().ok());
            if let Some(sent) = sent {
                let us = (now.saturating_sub(sent) / 1000).min(u32::MAX as u64) as u32;
                self.lat_us
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(us);
            }
        }
        let target = self.target.load(Ordering::Relaxed);
        if target > 0 && n >= target {
            self.reached.notify_one();
        }
    }

    fn done(&self) -> Done {
        let mut lat = std::mem::take(&mut *self.lat_us.lock().unwrap_or_else(|p| p.into_inner()));
        lat.sort_unstable();
        Done {
            received: self.count.load(Ordering::Relaxed),
            first_ns: self.first_ns.load(Ordering::Relaxed),
            last_ns: self.last_ns.load(Ordering::Relaxed),
            lat_us: (self.latency && !lat.is_empty()).then(|| {
                [
                    percentile(&lat, 50.0),
                    percentile(&lat, 99.0),
                    *lat.last().unwrap_or(&0),
                ]
            }),
        }
    }
}

fn say(v: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// The `recv` subcommand.
pub async fn run(args: RecvArgs) -> Result<(), String> {
    let tally = Arc::new(Tally {
        latency: args.latency,
        ..Default::default()
    });
    tally.target.store(args.count, Ordering::Relaxed);
    let ready = Arc::new(Notify::new());
    // Keep the client alive for the whole run.
    let _keep: Box<dyn std::any::Any + Send> = match args.kind.as_str() {
        "axum" => Box::new(start_axum(&args, tally.clone(), ready.clone()).await?),
        "rumqttc" => Box::new(start_rumqttc(&args, tally.clone(), ready.clone()).await?),
        other => return Err(format!("unknown receiver kind {other:?}")),
    };
    tokio::time::timeout(Duration::from_secs(10), ready.notified())
        .await
        .map_err(|_| "no SUBACK within 10 s".to_string())?;
    say(serde_json::json!({"event": "ready", "pid": std::process::id()}));

    // stdin: `expect N` lines; EOF ends the process.
    let (eof_tx, mut eof_rx) = tokio::sync::watch::channel(false);
    {
        let tally = tally.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(n) = line.trim().strip_prefix("expect ") {
                    if let Ok(n) = n.trim().parse::<u64>() {
                        tally.target.store(n, Ordering::Relaxed);
                        tally.reached.notify_one();
                    }
                }
            }
            let _ = eof_tx.send(true);
        });
    }

    let started = Instant::now();
    let idle = Duration::from_millis(args.idle_ms);
    loop {
        let n = tally.count.load(Ordering::Relaxed);
        let target = tally.target.load(Ordering::Relaxed);
        if target > 0 && n >= target {
            break;
        }
        let last = tally.last_ns.load(Ordering::Relaxed);
        if n > 0 && now_ns().saturating_sub(last) > idle.as_nanos() as u64 {
            break;
        }
        if n == 0 && started.elapsed() > Duration::from_secs(120) {
            break;
        }
        if *eof_rx.borrow() {
            return Ok(());
        }
        tokio::select! {
            _ = tally.reached.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            _ = eof_rx.changed() => {}
        }
    }
    let done = tally.done();
    say(serde_json::json!({"event": "done", "report": done}));
    let _ = eof_rx.wait_for(|eof| *eof).await;
    Ok(())
}

async fn start_axum(
    args: &RecvArgs,
    tally: Arc<Tally>,
    ready: Arc<Notify>,
) -> Result<Mqtt, String> {
    // Library defaults except the client id: this is what an app gets out of the box.
    let mut cfg = MqttConfig::new("127.0.0.1", args.port);
    cfg.client_id = format!("bench-axum-{}", std::process::id());
    let opts = RouteOptions::new().qos(crate::publisher::axum_qos(args.qos));
    let router = Router::new().route_with(&args.topic, opts, move |Payload(p): Payload| {
        let tally = tally.clone();
        async move { tally.on_message(&p) }
    });
    Mqtt::builder(cfg)
        .router(router)
        .on_subscribe(move |_, _| {
            let ready = ready.clone();
            async move { ready.notify_one() }
        })
        .start()
        .await
        .map_err(|e| e.to_string())
}

async fn start_rumqttc(
    args: &RecvArgs,
    tally: Arc<Tally>,
    ready: Arc<Notify>,
) -> Result<AsyncClient, String> {
    let mut o = MqttOptions::new(
        format!("bench-rumqttc-{}", std::process::id()),
        "127.0.0.1",
        args.port,
    );
    o.set_keep_alive(Duration::from_secs(60));
    // The same packet limit axum-mqtt sets by default (rumqttc's own is 10 KiB).
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut el) = AsyncClient::new(o, 64);
    client
        .subscribe(&args.topic, crate::publisher::qos(args.qos))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => tally.on_message(&p.payload),
                Ok(Event::Incoming(Packet::SubAck(_))) => ready.notify_one(),
                Ok(_) => {}
                Err(e) => {
                    eprintln!("rumqttc receiver: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(client)
}
