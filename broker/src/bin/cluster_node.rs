//! `axum-mqtt-cluster-node`: one node of an rmqtt broadcast cluster, from the command line.
//!
//! ```text
//! axum-mqtt-cluster-node --id 1 --listen 127.0.0.1:1883 \
//!     --nodes 1@127.0.0.1:5364,2@127.0.0.1:5365,3@127.0.0.1:5366
//! ```
//! Runs until Ctrl-C or SIGTERM. `RUST_LOG` sets the log filter (default `info,rmqtt=warn`).
//! The README's scale-out recipe starts three of them.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum_mqtt_broker::{BrokerConfig, ClusterConfig, ClusterNode, EmbeddedBroker};
use clap::Parser;

/// One node of an rmqtt broadcast cluster (MQTT 3.1.1 and 5 on one port).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// This node's id (1, 2, ...), one of those in --nodes.
    #[arg(long, env = "NODE_ID")]
    id: u64,
    /// MQTT listen address for clients.
    #[arg(long, env = "NODE_LISTEN", default_value = "127.0.0.1:1883")]
    listen: SocketAddr,
    /// Optional MQTT over WebSocket listen address.
    #[arg(long, env = "NODE_WS")]
    ws: Option<SocketAddr>,
    /// Every node of the cluster as ID@HOST:PORT (gRPC), this one included, comma separated.
    #[arg(long, env = "NODE_NODES", value_delimiter = ',', required = true)]
    nodes: Vec<ClusterNode>,
    /// Serve gRPC on the listening socket given as standard input (inetd style), bound by the
    /// parent to this node's listed address: ports picked with port 0, free by construction.
    #[arg(long)]
    grpc_listener_stdin: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rmqtt=warn".into()),
        )
        .init();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axum-mqtt-cluster-node: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut cluster = ClusterConfig::new(args.id, args.nodes)?;
    if args.grpc_listener_stdin {
        use std::os::fd::AsFd;
        let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
        cluster = cluster.with_grpc_listener(std::net::TcpListener::from(fd))?;
    }
    let grpc = cluster.grpc_addr();
    let mut config = BrokerConfig::new(args.listen).with_cluster(cluster);
    if let Some(ws) = args.ws {
        config = config.with_ws(ws);
    }
    let broker = EmbeddedBroker::start(config)?;
    // One line a script (or a test) can wait for.
    println!(
        "cluster node {} ready: mqtt://{} (gRPC {grpc})",
        args.id,
        broker.tcp_addr()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })?;
    broker.stop();
    Ok(())
}
