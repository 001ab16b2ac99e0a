//! The `run` subcommand: starts the brokers, runs every scenario `--runs` times (interleaved, so
//! drift on a shared machine hits every contender alike), and writes the markdown report.

mod ctx;
mod http_points;
mod inbound;
mod latency;
mod python_apps;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use crate::broker::Broker;
use crate::procinfo;
use crate::results::{Meta, Results, STEAL_WARN_PCT};
use ctx::{say, Ctx};
use inbound::{LARGE, SMALL};

pub use http_points::publish_body;

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
                        inbound::mosquitto_sub(&ctx, b, q, size).await
                    } else {
                        inbound::receiver(&ctx, kind, b, q, size).await
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
                    match inbound::receiver(&ctx, kind, &embedded, q, size).await {
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
        http_points::section(&ctx, &deep, &embedded, &mut res).await?;
        res.sections_secs
            .push(("http".into(), t.elapsed().as_secs_f64()));
    }

    if sections.contains(&"latency") {
        let t = Instant::now();
        for rep in 0..ctx.runs {
            say(format!("latency run {}", rep + 1));
            match latency::ours(&ctx, &deep).await {
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
        match python_apps::section(
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
