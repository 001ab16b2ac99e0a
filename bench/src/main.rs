//! Benchmark harness (see bench/README.md): `axum-mqtt-bench run` measures axum-mqtt against bare
//! rumqttc, mosquitto_sub and the Flask-MQTT tutorial app, and writes bench/RESULTS.md.
//!
//! The other subcommands are the pieces `run` starts as child processes, so each receiver's CPU
//! time and peak RSS can be read from /proc on its own.

mod broker;
mod fanout;
mod http;
mod kid;
mod procinfo;
mod publisher;
mod python;
mod receiver;
mod report;
mod results;
mod run;
mod stats;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "axum-mqtt benchmarks: inbound dispatch, HTTP→MQTT publish, latency, Flask-MQTT")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the whole benchmark and write the tables (what bench/run.sh does).
    Run(run::RunArgs),
    /// A counting receiver (child process of `run`).
    Recv(receiver::RecvArgs),
    /// An HTTP server with POST /publish (child process of `run`).
    ServeHttp(http::ServeArgs),
    /// The embedded broker on a free loopback port (child process of `run`); stops when stdin closes.
    ServeBroker,
    /// POST /publish load against a running server (for profiling by hand).
    Load {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 64)]
        c: usize,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        #[arg(long, default_value_t = 0)]
        qos: u8,
        #[arg(long, default_value = "load/test")]
        topic: String,
    },
    /// Flood a topic (for trying things by hand).
    Flood {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 0)]
        qos: u8,
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        #[arg(long, default_value_t = 32)]
        size: usize,
        #[arg(long, default_value_t = 1000)]
        inflight: u16,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Run(a) => run::run(a).await,
        Cmd::Recv(a) => receiver::run(a).await,
        Cmd::ServeHttp(a) => http::serve(a).await,
        Cmd::ServeBroker => broker::serve().await,
        Cmd::Load {
            port,
            c,
            secs,
            qos,
            topic,
        } => http::load(port, "/publish", c, secs, run::publish_body(topic, qos))
            .await
            .map(|l| {
                println!(
                    "{} ok, {} failed, {:.0} req/s, p50 {} µs, p99 {} µs{}",
                    l.ok,
                    l.failed,
                    l.rps(),
                    l.p50_us,
                    l.p99_us,
                    l.first_error
                        .map(|e| format!(", first error: {e}"))
                        .unwrap_or_default()
                )
            }),
        Cmd::Flood {
            port,
            topic,
            qos,
            count,
            size,
            inflight,
        } => publisher::flood(port, &topic, qos, count, size, inflight)
            .await
            .map(|f| {
                println!(
                    "{} messages in {:.3} s: {:.0} msg/s",
                    f.done,
                    f.secs,
                    f.done as f64 / f.secs
                )
            }),
    };
    if let Err(e) = r {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
