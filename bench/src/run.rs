//! The `run` subcommand: starts the brokers, runs every scenario `--runs` times (interleaved, so
//! drift on a shared machine hits every contender alike), and writes the markdown report.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::broker::Broker;
use crate::http;
use crate::kid::Kid;
use crate::procinfo::{self, now_ns};
use crate::publisher;
use crate::python::{self, Flask, Spec};
use crate::receiver::Done;
use crate::results::{HttpPoint, Inbound, Latency, Meta, Results, OURS_PY, STEAL_WARN_PCT};

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Smoke run: 1 run, 20k messages, 1 s HTTP points, 2 s latency.
    #[arg(long)]
    pub quick: bool,
    /// Repetitions of each measurement (median, min, max are reported).
    #[arg(long)]
    pub runs: Option<usize>,
    /// Messages per inbound flood.
    #[arg(long)]
    pub count: Option<u64>,
    /// Seconds per HTTP load point.
    #[arg(long)]
    pub http_secs: Option<f64>,
    /// Seconds of the 1k msg/s latency run.
    #[arg(long)]
    pub latency_secs: Option<f64>,
    /// Sections to run (comma separated): inbound,http,latency,fanout,python.
    #[arg(long, default_value = "inbound,http,latency,fanout,python")]
    pub only: String,
    /// WebSocket clients of the app in the fan-out run (default 1000; 100 with --quick).
    #[arg(long)]
    pub fanout_clients: Option<usize>,
    /// The app binary (default: axum-mqtt-app next to this executable).
    #[arg(long)]
    pub app_bin: Option<PathBuf>,
    /// Where logs, raw JSON and the virtualenv go.
    #[arg(long, default_value = "bench/out")]
    pub out: PathBuf,
    /// The markdown file to write the tables into (between its bench markers). Default:
    /// bench/RESULTS.md for a full run; a quick or partial run only writes bench/out/.
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// bench/python (the Flask-MQTT app).
    #[arg(long, default_value = "bench/python")]
    pub python_dir: PathBuf,
    /// Our Python package (`pip install`ed into out/venv-rs on every run).
    #[arg(long, default_value = "python")]
    pub package_dir: PathBuf,
}

const SMALL: usize = 32;
const LARGE: usize = 4096;
/// In-flight window of the flood publisher (QoS 1 PUBACKs awaited at once).
const PUB_INFLIGHT: u16 = 1000;
const CONCURRENCY: [usize; 3] = [1, 16, 64];

struct Ctx {
    out: PathBuf,
    log: PathBuf,
    count: u64,
    runs: usize,
    http_secs: f64,
    lat_secs: f64,
    seq: AtomicU64,
}

impl Ctx {
    fn topic(&self, prefix: &str) -> String {
        format!(
            "{prefix}/{}-{}",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        )
    }
}

fn say(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}

pub async fn run(args: RunArgs) -> Result<(), String> {
    let quick = args.quick;
    let ctx = Ctx {
        out: args.out.clone(),
        log: args.out.join("children.log"),
        count: args.count.unwrap_or(if quick { 20_000 } else { 100_000 }),
        runs: args.runs.unwrap_or(if quick { 1 } else { 3 }).max(1),
        http_secs: args.http_secs.unwrap_or(if quick { 1.0 } else { 4.0 }),
        lat_secs: args.latency_secs.unwrap_or(if quick { 2.0 } else { 10.0 }),
        seq: AtomicU64::new(0),
    };
    std::fs::create_dir_all(&ctx.out).map_err(|e| format!("{}: {e}", ctx.out.display()))?;
    let _ = std::fs::remove_file(&ctx.log);
    let sections: Vec<&str> = args.only.split(',').map(str::trim).collect();
    let (cores, model, load_before) = procinfo::machine();
    let started = Instant::now();
    let ticks_before = procinfo::cpu_ticks();
    say(format!(
        "{cores} cores ({model}), load {load_before}; {} run(s), {} messages per flood",
        ctx.runs, ctx.count
    ));

    // QoS 0 and HTTP/latency: Mosquitto's defaults, so a receiver that falls behind loses QoS 0
    // messages at the broker (counted in $SYS) instead of having them buffered without bound.
    let defaults = Broker::start(
        &ctx.out,
        "mosquitto-defaults",
        "max_inflight_messages 20\nmax_queued_messages 1000",
    )
    .await?;
    // QoS 1: the same, with room to queue a whole flood, so any QoS 1 loss is the client's.
    let deep = Broker::start(
        &ctx.out,
        "mosquitto-deep-queue",
        "max_inflight_messages 20\nmax_queued_messages 1000000",
    )
    .await?;
    let broker_for = |q: u8| if q == 0 { &defaults } else { &deep };
    // The embedded broker (rmqtt) with the limits the app runs it with, beside Mosquitto.
    let embedded = Broker::start_embedded(&ctx.out, "rmqtt-embedded").await?;

    let mut res = Results::default();
    let combos = [(0u8, SMALL), (0, LARGE), (1, SMALL), (1, LARGE)];

    if sections.contains(&"inbound") {
        let t = Instant::now();
        for rep in 0..ctx.runs {
            for &(q, size) in &combos {
                for kind in ["axum", "rumqttc", "mosquitto_sub"] {
                    say(format!("inbound run {}: {kind} QoS {q} {size} B", rep + 1));
                    let b = broker_for(q);
                    let r = if kind == "mosquitto_sub" {
                        inbound_mosquitto_sub(&ctx, b, q, size).await
                    } else {
                        inbound_kid(&ctx, kind, b, q, size).await
                    };
                    match r {
                        Ok(s) => res.inbound.push(s),
                        Err(e) => res
                            .notes
                            .push(format!("inbound {kind} QoS {q} {size} B failed: {e}")),
                    }
                }
                for kind in ["axum", "rumqttc"] {
                    say(format!(
                        "inbound run {}: {kind} on rmqtt QoS {q} {size} B",
                        rep + 1
                    ));
                    match inbound_kid(&ctx, kind, &embedded, q, size).await {
                        Ok(mut s) => {
                            s.receiver = format!("{kind} on rmqtt");
                            res.inbound.push(s)
                        }
                        Err(e) => res.notes.push(format!(
                            "inbound {kind} on rmqtt QoS {q} {size} B failed: {e}"
                        )),
                    }
                }
            }
        }
        res.sections_secs
            .push(("inbound".into(), t.elapsed().as_secs_f64()));
    }

    if sections.contains(&"http") {
        let t = Instant::now();
        http_section(&ctx, &deep, &embedded, &mut res).await?;
        res.sections_secs
            .push(("http".into(), t.elapsed().as_secs_f64()));
    }

    if sections.contains(&"latency") {
        let t = Instant::now();
        for rep in 0..ctx.runs {
            say(format!("latency run {}", rep + 1));
            match latency_ours(&ctx, &deep).await {
                Ok(v) => res.latency.extend(v),
                Err(e) => res.notes.push(format!("latency: {e}")),
            }
        }
        res.sections_secs
            .push(("latency".into(), t.elapsed().as_secs_f64()));
    }

    if sections.contains(&"fanout") {
        let t = Instant::now();
        let app_bin = args.app_bin.clone().or_else(|| {
            std::env::current_exe()
                .ok()
                .map(|e| e.with_file_name("axum-mqtt-app"))
        });
        match app_bin.filter(|p| p.exists()) {
            None => res.notes.push(
                "fan-out skipped: no axum-mqtt-app binary next to the harness (bench/run.sh builds it)".into(),
            ),
            Some(app_bin) => {
                let many = args.fanout_clients.unwrap_or(if quick { 100 } else { 1000 });
                let fan_secs = if quick { 2.0 } else { 10.0 };
                for rep in 0..ctx.runs {
                    for (clients, rate, secs) in [(1usize, 1000u32, ctx.lat_secs), (many, 100, fan_secs)] {
                        say(format!("fan-out run {}: {clients} WebSocket client(s), {rate} msg/s", rep + 1));
                        let topic = ctx.topic("fan");
                        match crate::fanout::run(&app_bin, &deep, &ctx.out, clients, rate, secs, &topic).await {
                            Ok(f) => res.fanout.push(f),
                            Err(e) => res.notes.push(format!("fan-out {clients} clients: {e}")),
                        }
                    }
                }
            }
        }
        res.sections_secs
            .push(("fanout".into(), t.elapsed().as_secs_f64()));
    }

    let mut py_versions = None;
    if sections.contains(&"python") {
        let t = Instant::now();
        match python_section(
            &ctx,
            &args.python_dir,
            &args.package_dir,
            &defaults,
            &deep,
            &mut res,
        )
        .await
        {
            Ok(v) => py_versions = Some(v),
            Err(e) => res.notes.push(format!("Flask-MQTT section failed: {e}")),
        }
        res.sections_secs
            .push(("python".into(), t.elapsed().as_secs_f64()));
    }

    for b in [&defaults, &deep] {
        let n = b.dropping_notices();
        if n > 0 {
            res.notes.push(format!(
                "{}: Mosquitto logged \"Outgoing messages are being dropped\" {n} time(s) (see {}).",
                b.name,
                b.log.display()
            ));
        }
    }

    let total = started.elapsed().as_secs_f64();
    let steal_pct = procinfo::steal_pct(ticks_before, procinfo::cpu_ticks());
    if let Some(p) = steal_pct.filter(|&p| p >= STEAL_WARN_PCT) {
        res.notes.push(format!(
            "the hypervisor took {p:.0} % of this VM's CPU time during the run (steal): the host \
             is busy, so these figures are not comparable to a run on a quiet one."
        ));
    }
    let raw = ctx.out.join("results.json");
    let _ = std::fs::write(&raw, serde_json::to_string_pretty(&res).unwrap_or_default());
    let meta = Meta {
        cores,
        model,
        load_before,
        load_after: procinfo::machine().2,
        steal_pct,
        runs: ctx.runs,
        count: ctx.count,
        http_secs: ctx.http_secs,
        lat_secs: ctx.lat_secs,
        quick,
        total_secs: total,
        brokers: vec![
            (defaults.name.clone(), defaults.settings.clone()),
            (deep.name.clone(), deep.settings.clone()),
            (embedded.name.clone(), embedded.settings.clone()),
        ],
        mosquitto: mosquitto_version(),
        python: py_versions.as_ref().map(|v| v.0.clone()),
        python_rs: py_versions.and_then(|v| v.1),
        git: git_describe(),
    };
    let md = crate::report::markdown(&meta, &res);
    let tables = ctx.out.join("RESULTS-latest.md");
    let _ = std::fs::write(&tables, &md);
    let full = !quick
        && ["inbound", "http", "latency", "python"]
            .iter()
            .all(|s| sections.contains(s));
    let results = args
        .results
        .clone()
        .or_else(|| full.then(|| PathBuf::from("bench/RESULTS.md")));
    if let Some(path) = &results {
        crate::report::write_into(path, &md)?;
    }
    say(format!(
        "done in {total:.0} s; tables in {}{}",
        tables.display(),
        results
            .map(|p| format!(" and {}", p.display()))
            .unwrap_or_else(|| " (quick or partial run: bench/RESULTS.md left as it was)".into())
    ));
    for n in &res.notes {
        say(format!("note: {n}"));
    }
    Ok(())
}

fn mosquitto_version() -> String {
    let bin = crate::broker::mosquitto_bin().unwrap_or_default();
    let out = Command::new(bin).arg("-h").output();
    out.ok()
        .and_then(|o| {
            let s = String::from_utf8_lossy(&o.stdout).to_string();
            s.lines()
                .find(|l| l.contains("version"))
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "mosquitto".into())
}

fn git_describe() -> String {
    Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn port_of(v: &serde_json::Value) -> u16 {
    v["port"].as_u64().unwrap_or(0) as u16
}

fn done_of(v: &serde_json::Value) -> Result<Done, String> {
    serde_json::from_value(v["report"].clone()).map_err(|e| e.to_string())
}

/// Dropped-counter delta over a run, read only when something was lost (it costs a $SYS tick).
async fn dropped_since(b: &Broker, before: Option<u64>, lost: bool) -> Option<u64> {
    if !lost {
        return Some(0);
    }
    let after = b.dropped_now().await?;
    Some(after.saturating_sub(before.unwrap_or(0)))
}

async fn inbound_kid(
    ctx: &Ctx,
    kind: &str,
    b: &Broker,
    q: u8,
    size: usize,
) -> Result<Inbound, String> {
    let topic = ctx.topic("flood");
    let args = vec![
        "recv".into(),
        "--kind".into(),
        kind.into(),
        "--port".into(),
        b.port.to_string(),
        "--topic".into(),
        topic.clone(),
        "--qos".into(),
        "1".into(),
        "--count".into(),
        ctx.count.to_string(),
    ];
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
async fn inbound_mosquitto_sub(
    ctx: &Ctx,
    b: &Broker,
    q: u8,
    size: usize,
) -> Result<Inbound, String> {
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

pub fn publish_body(topic: String, q: u8) -> impl Fn(u64) -> Bytes + Send + Sync + Clone + 'static {
    let topic = Arc::<str>::from(topic);
    move |seq| {
        Bytes::from(format!(
            r#"{{"topic":"{topic}","msg":"hello {seq}","qos":{q}}}"#
        ))
    }
}

/// Every HTTP server under test, in the order of its points for each QoS. report.rs picks table
/// rows and targets by the start of `name`.
const HTTP_SERVERS: [HttpServer; 7] = [
    HttpServer {
        name: "axum no-op (ceiling)",
        tag: "noop",
        start: Start::ServeHttp("noop"),
        qos: &[None],
    },
    // The reference a user would pick instead.
    HttpServer {
        name: "naive: axum Json + bare rumqttc, fire and forget",
        tag: "naive",
        start: Start::ServeHttp("naive"),
        qos: QOS_0_1,
    },
    // Our endpoint through the durable outbox: QoS 1 only, QoS 0 does not go through it
    // (nothing to confirm).
    HttpServer {
        name: "outbox: axum-mqtt PublishEndpoint, durable",
        tag: "outbox",
        start: Start::ServeHttp("outbox"),
        qos: &[Some(1)],
    },
    HttpServer {
        name: "axum-mqtt PublishEndpoint",
        tag: "publish",
        start: Start::ServeHttp("publish"),
        qos: QOS_0_1,
    },
    HttpServer {
        name: "rmqtt-embedded: axum-mqtt PublishEndpoint",
        tag: "publish on rmqtt",
        start: Start::ServeHttpOnRmqtt("publish"),
        qos: QOS_0_1,
    },
    HttpServer {
        name: "Flask-MQTT /publish (gunicorn 1×8)",
        tag: "Flask-MQTT",
        start: Start::FlaskMqtt,
        qos: QOS_0_1,
    },
    HttpServer {
        name: "flask_mqtt (Rust) /publish (gunicorn 2×8)",
        tag: OURS_PY,
        start: Start::FlaskRs,
        qos: QOS_0_1,
    },
];

const QOS_0_1: &[Option<u8>] = &[Some(0), Some(1)];

/// An HTTP server under test.
struct HttpServer {
    /// The endpoint column of table 2.
    name: &'static str,
    /// How progress lines and notes name it.
    tag: &'static str,
    start: Start,
    /// Its points' QoS; None: no MQTT and no counting subscriber (the no-op ceiling).
    qos: &'static [Option<u8>],
}

/// How a server under test is started.
enum Start {
    /// The child `serve-http --mode <mode>`, publishing to the deep-queue Mosquitto.
    ServeHttp(&'static str),
    /// The same, publishing to the embedded broker.
    ServeHttpOnRmqtt(&'static str),
    /// app.py on Flask-MQTT (gunicorn -w 1), started by the Python section for its floods too.
    FlaskMqtt,
    /// The same app.py on our package (gunicorn -w 2), started by the Python section.
    FlaskRs,
}

/// A server of the table, started.
struct Running<'a> {
    server: &'a HttpServer,
    port: u16,
    /// Its processes (gunicorn: every worker); its CPU is their sum.
    pids: Vec<u32>,
    /// Where it publishes (the no-op: the deep-queue Mosquitto, idle; its CPU is read all the same).
    broker: &'a Broker,
}

/// Section 2: starts the `serve-http` servers of the table, takes their points `ctx.runs` times.
async fn http_section(
    ctx: &Ctx,
    deep: &Broker,
    embedded: &Broker,
    res: &mut Results,
) -> Result<(), String> {
    let mut kids = Vec::new();
    for server in &HTTP_SERVERS {
        let (mode, broker, kid) = match server.start {
            Start::ServeHttp(mode) => (mode, deep, format!("serve-{mode}")),
            Start::ServeHttpOnRmqtt(mode) => (mode, embedded, format!("serve-{mode}-rmqtt")),
            Start::FlaskMqtt | Start::FlaskRs => continue,
        };
        // The no-op ignores --mqtt-port.
        let args = strings(&[
            "serve-http",
            "--mode",
            mode,
            "--mqtt-port",
            &broker.port.to_string(),
        ]);
        kids.push((server, broker, Kid::spawn(&kid, &args, &ctx.log)?));
    }
    let mut servers = Vec::new();
    for (server, broker, kid) in &mut kids {
        let port = port_of(&kid.event("ready", Duration::from_secs(15)).await?);
        servers.push(Running {
            server,
            port,
            pids: vec![kid.pid],
            broker,
        });
    }
    for rep in 0..ctx.runs {
        for c in CONCURRENCY {
            say(format!("http run {}: c={c}", rep + 1));
            http_round(ctx, c, &servers, None, res).await;
        }
    }
    for (_, _, kid) in kids {
        kid.finish().await;
    }
    Ok(())
}

/// One point of each of `servers` at concurrency `c`, in `round_order`. A failed point becomes a
/// note. With `run`, each point is named on stderr (the Python section's points are interleaved
/// with its other runs).
async fn http_round(
    ctx: &Ctx,
    c: usize,
    servers: &[Running<'_>],
    run: Option<usize>,
    res: &mut Results,
) {
    let table: Vec<&HttpServer> = servers.iter().map(|s| s.server).collect();
    for (i, q) in round_order(&table) {
        let s = &servers[i];
        let qos = q.map(|q| format!(" QoS {q}")).unwrap_or_default();
        if let Some(run) = run {
            say(format!("http run {run}: {}{qos} c={c}", s.server.tag));
        }
        match http_point(ctx, s, q, c).await {
            Ok(p) => res.http.push(p),
            Err(e) => res
                .notes
                .push(format!("http {}{qos} c={c}: {e}", s.server.tag)),
        }
    }
}

/// The points of one round, as (index in `servers`, QoS): QoS by QoS, the servers in table order.
fn round_order(servers: &[&HttpServer]) -> Vec<(usize, Option<u8>)> {
    [None, Some(0u8), Some(1)]
        .into_iter()
        .flat_map(|q| {
            (0..servers.len())
                .filter(move |&i| servers[i].qos.contains(&q))
                .map(move |i| (i, q))
        })
        .collect()
}

/// One load point; with a QoS, a rumqttc subscriber counts the deliveries.
async fn http_point(
    ctx: &Ctx,
    server: &Running<'_>,
    q: Option<u8>,
    c: usize,
) -> Result<HttpPoint, String> {
    let topic = ctx.topic("http");
    let broker = server.broker;
    let mut sub = if q.is_some() {
        let args = vec![
            "recv".into(),
            "--kind".into(),
            "rumqttc".into(),
            "--port".into(),
            broker.port.to_string(),
            "--topic".into(),
            topic.clone(),
            "--qos".into(),
            "1".into(),
        ];
        let mut k = Kid::spawn("http-subscriber", &args, &ctx.log)?;
        k.event("ready", Duration::from_secs(15)).await?;
        Some(k)
    } else {
        None
    };
    let cpu = |pid: Option<u32>| pid.and_then(procinfo::cpu_seconds).unwrap_or(f64::NAN);
    let server_cpu = || server.pids.iter().map(|&p| cpu(Some(p))).sum::<f64>();
    let broker_pid = Some(broker.pid());
    let sub_pid = sub.as_ref().map(|k| k.pid);
    let me = Some(std::process::id());
    let (cpu0, b0, s0, m0) = (server_cpu(), cpu(broker_pid), cpu(sub_pid), cpu(me));
    let body = publish_body(topic, q.unwrap_or(0));
    let load = http::load(server.port, "/publish", c, ctx.http_secs, body).await?;
    let (cpu1, b1, s1, m1) = (server_cpu(), cpu(broker_pid), cpu(sub_pid), cpu(me));
    let hwm = server
        .pids
        .iter()
        .map(|&p| procinfo::vm_hwm_kib(p).unwrap_or(0))
        .sum();
    let delivered = match sub.as_mut() {
        Some(k) if load.ok > 0 => {
            k.send(&format!("expect {}", load.ok)).await;
            Some(done_of(&k.event("done", Duration::from_secs(120)).await?)?.received)
        }
        Some(_) => Some(0),
        None => None,
    };
    if let Some(k) = sub {
        k.finish().await;
    }
    Ok(HttpPoint {
        server: server.server.name.into(),
        qos: q,
        c,
        rps: load.rps(),
        p50_us: load.p50_us,
        p99_us: load.p99_us,
        ok: load.ok,
        failed: load.failed,
        delivered,
        server_cpu_s: cpu1 - cpu0,
        server_hwm_kib: hwm,
        broker_cpu_s: b1 - b0,
        sub_cpu_s: if sub_pid.is_some() { s1 - s0 } else { 0.0 },
        client_cpu_s: m1 - m0,
        first_error: load.first_error,
    })
}

/// 1k msg/s of timestamped QoS 1 messages; the axum-mqtt and rumqttc receivers listen at once.
async fn latency_ours(ctx: &Ctx, b: &Broker) -> Result<Vec<Latency>, String> {
    let topic = ctx.topic("lat");
    let expected = (1000.0 * ctx.lat_secs).round() as u64;
    let mut kids = Vec::new();
    for kind in ["axum", "rumqttc"] {
        let args = vec![
            "recv".into(),
            "--kind".into(),
            kind.into(),
            "--port".into(),
            b.port.to_string(),
            "--topic".into(),
            topic.clone(),
            "--qos".into(),
            "1".into(),
            "--count".into(),
            expected.to_string(),
            "--latency".into(),
        ];
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

/// Flask-MQTT's app, and the same app.py on our package (`OURS_PY`) beside it in every run.
/// Returns the versions of both venvs (ours: None when its venv could not be made).
async fn python_section(
    ctx: &Ctx,
    python_dir: &Path,
    package_dir: &Path,
    defaults: &Broker,
    deep: &Broker,
    res: &mut Results,
) -> Result<(String, Option<String>), String> {
    let venv = python::ensure_venv(&ctx.out, python_dir).await?;
    let versions = python::versions(&venv, "'Flask', 'Flask-MQTT', 'paho-mqtt', 'gunicorn'").await;
    say(format!("Flask-MQTT: {versions}"));
    let venv_rs = match python::ensure_venv_rs(&ctx.out, python_dir, package_dir).await {
        Ok(v) => Some(v),
        Err(e) => {
            res.notes.push(format!("{OURS_PY} not measured: {e}"));
            None
        }
    };
    let mut versions_rs = None;
    if let Some(v) = &venv_rs {
        let s = python::versions(v, "'Flask', 'flask-mqtt-rs', 'gunicorn'").await;
        say(format!("{OURS_PY}: {s}"));
        versions_rs = Some(s);
    }
    let flask_log = ctx.out.join("flask.log");
    let rs_log = ctx.out.join("flask-rs.log");
    let paho = Spec {
        venv: &venv,
        workers: 1,
        root: "bench",
    };
    for (broker, qs) in [(defaults, vec![0u8]), (deep, vec![1u8])] {
        let is_deep = broker.port == deep.port;
        let flask = Flask::start(paho, python_dir, broker.port, &flask_log).await?;
        // Ours beside it, on its own topic root: one worker for the floods (as Flask-MQTT) and,
        // for POST /publish, two (only they publish; neither gets a message there).
        let mut ours = None;
        let mut ours2 = None;
        if let Some(v) = &venv_rs {
            for (workers, root) in [(1, "bench-rs"), (2, "bench-rs2")] {
                if workers == 2 && !is_deep {
                    continue;
                }
                let spec = Spec {
                    venv: v,
                    workers,
                    root,
                };
                match Flask::start(spec, python_dir, broker.port, &rs_log).await {
                    Ok(f) if workers == 1 => ours = Some(f),
                    Ok(f) => ours2 = Some(f),
                    Err(e) => res.notes.push(format!(
                        "{OURS_PY} (gunicorn -w {workers}) did not start: {e}"
                    )),
                }
            }
        }
        for rep in 0..ctx.runs {
            for &q in &qs {
                for size in [SMALL, LARGE] {
                    say(format!(
                        "inbound run {}: Flask-MQTT QoS {q} {size} B",
                        rep + 1
                    ));
                    match inbound_flask(ctx, &flask, "Flask-MQTT", broker, q, size).await {
                        Ok(s) => res.inbound.push(s),
                        Err(e) => res
                            .notes
                            .push(format!("inbound Flask-MQTT QoS {q} {size} B: {e}")),
                    }
                    if let Some(o) = ours.as_ref().filter(|_| size == SMALL) {
                        say(format!(
                            "inbound run {}: {OURS_PY} QoS {q} {size} B",
                            rep + 1
                        ));
                        match inbound_flask(ctx, o, OURS_PY, broker, q, size).await {
                            Ok(s) => res.inbound.push(s),
                            Err(e) => res
                                .notes
                                .push(format!("inbound {OURS_PY} QoS {q} {size} B: {e}")),
                        }
                    }
                }
            }
            if is_deep {
                // The app.py servers of the table, on the apps started above.
                let servers: Vec<Running> = HTTP_SERVERS
                    .iter()
                    .filter_map(|server| {
                        let app = match server.start {
                            Start::FlaskMqtt => &flask,
                            Start::FlaskRs => ours2.as_ref()?,
                            Start::ServeHttp(_) | Start::ServeHttpOnRmqtt(_) => return None,
                        };
                        Some(Running {
                            server,
                            port: app.port,
                            pids: app.worker_pids.clone(),
                            broker: deep,
                        })
                    })
                    .collect();
                for c in CONCURRENCY {
                    http_round(ctx, c, &servers, Some(rep + 1), res).await;
                }
                say(format!("latency run {}: Flask-MQTT", rep + 1));
                match latency_flask(ctx, &flask, broker).await {
                    Ok(l) => res.latency.push(l),
                    Err(e) => res.notes.push(format!("latency Flask-MQTT: {e}")),
                }
                // publish() from Python, one process per client (the apps are idle meanwhile).
                let venvs = [("Flask-MQTT", Some(&venv)), (OURS_PY, venv_rs.as_ref())];
                for (client, v) in venvs {
                    let Some(v) = v else { continue };
                    say(format!("publish() CPU run {}: {client}", rep + 1));
                    let topic = ctx.topic("pubcpu");
                    match python::publish_cpu(v, python_dir, broker.port, &topic, &ctx.log).await {
                        Ok(mut p) => {
                            p.client = client.into();
                            res.publish_cpu.push(p)
                        }
                        Err(e) => res.notes.push(format!("publish() CPU {client}: {e}")),
                    }
                }
            }
        }
        flask.stop().await;
        for f in [ours, ours2].into_iter().flatten() {
            f.stop().await;
        }
    }
    Ok((versions, versions_rs))
}

async fn inbound_flask(
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

async fn latency_flask(ctx: &Ctx, flask: &Flask, b: &Broker) -> Result<Latency, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The order the per-server copies of the `http_point` call measured in, before the table.
    #[test]
    fn http_points_in_the_order_of_the_copies_they_replace() {
        let points = |python: bool| -> Vec<String> {
            let servers: Vec<&HttpServer> = HTTP_SERVERS
                .iter()
                .filter(|s| matches!(s.start, Start::FlaskMqtt | Start::FlaskRs) == python)
                .collect();
            round_order(&servers)
                .into_iter()
                .map(|(i, q)| format!("{} {q:?}", servers[i].tag))
                .collect()
        };
        let section_2 = [
            "noop None",
            "naive Some(0)",
            "publish Some(0)",
            "publish on rmqtt Some(0)",
            "naive Some(1)",
            "outbox Some(1)",
            "publish Some(1)",
            "publish on rmqtt Some(1)",
        ];
        assert_eq!(points(false), section_2);
        let python = [
            "Flask-MQTT Some(0)",
            "flask_mqtt (Rust) Some(0)",
            "Flask-MQTT Some(1)",
            "flask_mqtt (Rust) Some(1)",
        ];
        assert_eq!(points(true), python);
    }
}
