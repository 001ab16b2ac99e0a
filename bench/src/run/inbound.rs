//! Section 1, inbound dispatch: one flood, counted by one receiver (our `recv` child,
//! `mosquitto_sub`, or an app.py).

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ctx::{done_of, recv_args, Ctx};
use crate::broker::Broker;
use crate::kid::Kid;
use crate::procinfo::{self, now_ns};
use crate::publisher;
use crate::python::Flask;
use crate::receiver::Done;
use crate::results::Inbound;

/// The two payload sizes of the floods.
pub const SMALL: usize = 32;
pub const LARGE: usize = 4096;
/// In-flight window of the flood publisher (QoS 1 PUBACKs awaited at once).
const PUB_INFLIGHT: u16 = 1000;

/// Dropped-counter delta over a run, read only when something was lost (it costs a $SYS tick).
async fn dropped_since(b: &Broker, before: Option<u64>, lost: bool) -> Option<u64> {
    if !lost {
        return Some(0);
    }
    let after = b.dropped_now().await?;
    Some(after.saturating_sub(before.unwrap_or(0)))
}

/// Our receiver child (`recv --kind axum|rumqttc`) counting a flood.
pub async fn receiver(
    ctx: &Ctx,
    kind: &str,
    b: &Broker,
    q: u8,
    size: usize,
) -> Result<Inbound, String> {
    let topic = ctx.topic("flood");
    let args = recv_args(kind, b.port, &topic, ctx.count);
    let mut kid = Kid::spawn(kind, &args, &ctx.log)?;
    kid.event("ready", Duration::from_secs(15)).await?;
    let before = b.dropped_last();
    let cpu0 = kid.cpu();
    let flood = publisher::flood(b.port, &topic, q, ctx.count, size, PUB_INFLIGHT).await?;
    let done = done_of(&kid.event("done", Duration::from_secs(300)).await?)?;
    let cpu1 = kid.cpu();
    let hwm = kid.hwm_kib();
    kid.finish().await;
    let lost = done.received < flood.done;
    Ok(Inbound {
        receiver: kind.to_string(),
        qos: q,
        size,
        sent: flood.done,
        received: done.received,
        rate: done.rate(),
        cpu_s: cpu1 - cpu0,
        hwm_kib: hwm,
        broker_dropped: dropped_since(b, before, lost).await,
        pub_secs: flood.secs,
    })
}

/// `mosquitto_sub` counting lines (bytes / (size + 1), payloads hold no newline). Its CPU and peak
/// RSS come from `wait4` when it exits (after `-C N` messages, or SIGTERM when idle), so its CPU
/// includes its start-up (a few ms).
pub async fn mosquitto_sub(ctx: &Ctx, b: &Broker, q: u8, size: usize) -> Result<Inbound, String> {
    let topic = ctx.topic("flood");
    let mut child = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &b.port.to_string(),
            "-t",
            &topic,
            "-q",
            "1",
            "-C",
        ])
        .arg(ctx.count.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("mosquitto_sub: {e}"))?;
    let pid = child.id();
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let bytes = Arc::new(AtomicU64::new(0));
    let times = Arc::new(Mutex::new((0u64, 0u64)));
    let reader = {
        let bytes = bytes.clone();
        let times = times.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let now = now_ns();
                let mut t = times.lock().unwrap_or_else(|p| p.into_inner());
                if t.0 == 0 {
                    t.0 = now;
                }
                t.1 = now;
                bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
        })
    };
    // mosquitto_sub says nothing when subscribed; it connects and subscribes in a few ms locally.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = b.dropped_last();
    let flood = publisher::flood(b.port, &topic, q, ctx.count, size, PUB_INFLIGHT).await?;
    let line = size as u64 + 1;
    let mut last_change = Instant::now();
    let mut last_seen = 0;
    loop {
        let n = bytes.load(Ordering::Relaxed);
        if reader.is_finished() || n >= ctx.count * line {
            break;
        }
        if n != last_seen {
            last_seen = n;
            last_change = Instant::now();
        } else if last_change.elapsed() > Duration::from_secs(2) {
            // SAFETY: signalling our own child.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let exited = tokio::task::spawn_blocking(move || procinfo::wait4(pid))
        .await
        .map_err(|e| e.to_string())?
        .ok_or("wait4 failed")?;
    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
    let received = bytes.load(Ordering::Relaxed) / line;
    let (first, last) = *times.lock().unwrap_or_else(|p| p.into_inner());
    let done = Done {
        received,
        first_ns: first,
        last_ns: last,
        lat_us: None,
    };
    Ok(Inbound {
        receiver: "mosquitto_sub".into(),
        qos: q,
        size,
        sent: flood.done,
        received,
        rate: done.rate(),
        cpu_s: exited.cpu_s,
        hwm_kib: exited.maxrss_kib,
        broker_dropped: dropped_since(b, before, received < flood.done).await,
        pub_secs: flood.secs,
    })
}

/// The app.py of `flask` (its on_message counts; /stats reports), flooded.
pub async fn flask(
    ctx: &Ctx,
    flask: &Flask,
    receiver: &str,
    b: &Broker,
    q: u8,
    size: usize,
) -> Result<Inbound, String> {
    flask.reset().await?;
    let topic = ctx.topic(&format!("{}/flood", flask.root));
    let pid = flask.worker_pid;
    let before = b.dropped_last();
    let cpu0 = procinfo::cpu_seconds(pid).unwrap_or(f64::NAN);
    let flood = publisher::flood(b.port, &topic, q, ctx.count, size, PUB_INFLIGHT).await?;
    let started = Instant::now();
    let s = loop {
        let s = flask.stats().await?;
        let n = s["received"].as_u64().unwrap_or(0);
        let last = s["last_ns"].as_u64().unwrap_or(0);
        if n >= flood.done
            || (n > 0 && now_ns().saturating_sub(last) > 2_000_000_000)
            || started.elapsed() > Duration::from_secs(300)
        {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let cpu1 = procinfo::cpu_seconds(pid).unwrap_or(f64::NAN);
    let done = Done {
        received: s["received"].as_u64().unwrap_or(0),
        first_ns: s["first_ns"].as_u64().unwrap_or(0),
        last_ns: s["last_ns"].as_u64().unwrap_or(0),
        lat_us: None,
    };
    Ok(Inbound {
        receiver: receiver.into(),
        qos: q,
        size,
        sent: flood.done,
        received: done.received,
        rate: done.rate(),
        cpu_s: cpu1 - cpu0,
        hwm_kib: procinfo::vm_hwm_kib(pid).unwrap_or(0),
        broker_dropped: dropped_since(b, before, done.received < flood.done).await,
        pub_secs: flood.secs,
    })
}
