//! Scale-out on a real clustered broker: three `axum-mqtt-cluster-node` processes (rmqtt with its
//! broadcast cluster plugin) on loopback and `axum-mqtt-app --no-broker` instances, one per node,
//! in one shared group, each with the other nodes as failover brokers.
//!
//! * Messages published through all three nodes are each handled exactly once, by id.
//! * One node SIGKILLed under a steady QoS 1 load through the apps' `POST /publish`: its instance
//!   moves to another node within a measured time, the other instances never reconnect and every
//!   publish of theirs succeeds, every publish answered `code: 0` reaches a subscriber on a
//!   surviving node; what the group loses (messages dealt to the dead node's instance) is counted
//!   and printed. The node is restarted: it rejoins and a new instance on it takes a share.
//!
//! The node binary is built with the broker's `cluster` feature (it needs `protoc`):
//! `cargo build -p axum-mqtt-broker --features cluster --bin axum-mqtt-cluster-node`. Without it
//! the tests skip, unless `AXUM_MQTT_REQUIRE_CLUSTER=1` (set by CI) makes that a failure.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum_mqtt::{Mqtt, Protocol, QoS};
use axum_mqtt_testkit::unique;
use common::apps::{app_binary, app_line, spawn_id_load, workspace_binary, App, Line, Lines};
use common::*;

/// The node binary and the app binary, or `None` (skip) when they are not built.
fn binaries() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    match (workspace_binary("axum-mqtt-cluster-node"), app_binary()) {
        (Some(node), Some(app)) => Some((node, app)),
        _ => {
            assert!(
                std::env::var_os("AXUM_MQTT_REQUIRE_CLUSTER").is_none(),
                "AXUM_MQTT_REQUIRE_CLUSTER is set but the binaries are missing next to the test: \
                 cargo build -p axum-mqtt-broker --features cluster --bin axum-mqtt-cluster-node \
                 && cargo build -p axum-mqtt-app"
            );
            eprintln!("axum-mqtt-cluster-node or axum-mqtt-app not built: skipping");
            None
        }
    }
}

/// A node's gRPC listener, bound (port 0) and held by the test for its whole run and handed to
/// the node process as its standard input: the nodes must know each other's ports before they
/// start, and a killed node gets the same port back (connections wait in the backlog meanwhile).
struct GrpcPort {
    addr: SocketAddr,
    listener: std::net::TcpListener,
}

impl GrpcPort {
    fn hold() -> GrpcPort {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind gRPC listener");
        let addr = listener.local_addr().unwrap();
        GrpcPort { addr, listener }
    }

    fn for_child(&self) -> Stdio {
        let l = self.listener.try_clone().expect("dup gRPC listener");
        Stdio::from(std::os::fd::OwnedFd::from(l))
    }
}

/// One cluster node process; its MQTT port is read from its ready line.
struct Node {
    child: Child,
    port: u16,
}

impl Node {
    fn start(bin: &std::path::Path, id: usize, nodes: &str, grpc: &GrpcPort) -> Node {
        let mut child = Command::new(bin)
            .args([
                "--id",
                &id.to_string(),
                "--listen",
                "127.0.0.1:0",
                "--nodes",
                nodes,
            ])
            .arg("--grpc-listener-stdin")
            .env("RUST_LOG", "warn")
            .stdin(grpc.for_child())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start axum-mqtt-cluster-node");
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("ready line");
        // "cluster node 1 ready: mqtt://127.0.0.1:PORT (gRPC ...)"
        let port = line
            .split_once("mqtt://127.0.0.1:")
            .and_then(|(_, rest)| rest.split(' ').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("node {id} did not start: {line:?}"));
        std::thread::spawn(move || for _ in out.lines() {});
        Node { child, port }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Cluster {
    bin: std::path::PathBuf,
    ports: Vec<GrpcPort>,
    nodes: Vec<Node>,
}

impl Cluster {
    fn start(bin: std::path::PathBuf, n: usize) -> Cluster {
        let ports: Vec<GrpcPort> = (0..n).map(|_| GrpcPort::hold()).collect();
        let mut c = Cluster {
            bin,
            ports,
            nodes: Vec::new(),
        };
        for id in 1..=n {
            let node = Node::start(&c.bin, id, &c.list(), &c.ports[id - 1]);
            c.nodes.push(node);
        }
        c
    }

    fn list(&self) -> String {
        let all: Vec<String> = (1..)
            .zip(&self.ports)
            .map(|(id, p)| format!("{id}@{}", p.addr))
            .collect();
        all.join(",")
    }

    /// The broker list of an instance whose home is node `i` (0-based): that node first, then
    /// the others in order.
    fn failover_list(&self, i: usize) -> String {
        let n = self.nodes.len();
        let urls: Vec<String> = (0..n).map(|k| self.nodes[(i + k) % n].url()).collect();
        urls.join(",")
    }

    fn restart(&mut self, i: usize) {
        let node = Node::start(&self.bin, i + 1, &self.list(), &self.ports[i]);
        self.nodes[i] = node;
    }
}

/// A client of node `port` that collects every message under `filter`, non-shared.
async fn subscriber(
    port: u16,
    filter: &str,
) -> (
    Mqtt,
    tokio::sync::mpsc::UnboundedReceiver<axum_mqtt::Message>,
) {
    let (h, rx) = collector();
    let mut cfg = mosquitto_config(port, Protocol::V5);
    cfg.max_inflight = 1000;
    let client = connected(Mqtt::builder(cfg).on_topic(filter, h)).await;
    (client, rx)
}

/// Waits until every running app is connected, has printed its HTTP port and has handled a probe
/// (published through every node in turn), so the gRPC links and the group's members are all in
/// place. Returns the apps' HTTP ports.
async fn apps_ready(t: &str, rx: &Lines, running: &[App], probers: &[Mqtt]) -> Vec<u16> {
    let n = running.len();
    let mut http = vec![0u16; n];
    let mut connected = vec![false; n];
    while connected.iter().any(|c| !c) || http.contains(&0) {
        match app_line(rx, WAIT).await {
            Some((i, Line::Connected)) => connected[i] = true,
            Some((i, Line::Http(p))) => http[i] = p,
            Some(_) => {}
            None => panic!(
                "apps not ready ({connected:?}, {http:?}): {:#?}",
                running.iter().map(App::stderr).collect::<Vec<_>>()
            ),
        }
    }
    let mut probed = vec![false; n];
    let deadline = Instant::now() + WAIT * 2;
    while probed.iter().any(|p| !p) {
        assert!(Instant::now() < deadline, "probes reached only {probed:?}");
        for p in probers {
            p.publish(format!("{t}/probe"), "probe")
                .qos(QoS::AtLeastOnce)
                .await
                .expect("probe");
        }
        while let Some((i, l)) = app_line(rx, Duration::from_millis(100)).await {
            if l == Line::Payload("probe".into()) {
                probed[i] = true;
            }
        }
    }
    while app_line(rx, Duration::from_millis(300)).await.is_some() {} // late probes
    http
}

/// `apps` instances (1 or 3) on the three nodes, one group; `n` messages through all nodes, each
/// handled exactly once. Returns the CPU the apps and the nodes used while handling them.
async fn apps_exactly_once(apps: usize, n: u64) -> (Duration, Duration) {
    init_tracing();
    let Some((node_bin, app_bin)) = binaries() else {
        return Default::default();
    };
    let cluster = Cluster::start(node_bin, 3);
    let t = unique("cluster");
    let (tx, rx) = std::sync::mpsc::channel();
    let rx: Lines = Arc::new(Mutex::new(rx));
    let running: Vec<App> = (0..apps)
        .map(|i| {
            App::start(
                &app_bin,
                i,
                &cluster.failover_list(i),
                &format!("{t}/#"),
                tx.clone(),
            )
        })
        .collect();
    drop(tx);
    let mut publishers = Vec::new();
    for node in &cluster.nodes {
        let mut cfg = mosquitto_config(node.port, Protocol::V311);
        cfg.max_inflight = 1000;
        cfg.max_pending = 5000;
        // A broadcast node answers a PINGREQ after the publishes ahead of it (each forwarded to the
        // other nodes); with 1000 in flight on a loaded machine that took more than the tests'
        // usual 5 s keepalive, the publishers reconnected and re-sent what was in flight: QoS 1
        // duplicates in 2 runs of 10. The load publishers here keep the default 60 s.
        cfg.keepalive = Duration::from_secs(60);
        publishers.push(connected(Mqtt::builder(cfg)).await);
    }
    apps_ready(&t, &rx, &running, &publishers).await;

    // ids 0..n round robin over the three nodes, up to 1000 in flight each, 16 topics.
    let node_pids: Vec<u32> = cluster.nodes.iter().map(|n| n.child.id()).collect();
    let cpu_now = || -> (Duration, Duration) {
        (
            running.iter().map(App::cpu).sum(),
            node_pids
                .iter()
                .map(|p| common::apps::process_cpu(*p))
                .sum(),
        )
    };
    let cpu_before = cpu_now();
    let started = Instant::now();
    let senders: Vec<_> = publishers
        .iter()
        .enumerate()
        .map(|(k, p)| spawn_id_load(p, &t, (k as u64..n).step_by(3)))
        .collect();
    let mut counts: Vec<HashMap<u64, u32>> = vec![HashMap::new(); apps];
    let mut handled = 0u64;
    while handled < n {
        match app_line(&rx, Duration::from_secs(30)).await {
            Some((i, Line::Payload(p))) => {
                if let Ok(id) = p.parse::<u64>() {
                    *counts[i].entry(id).or_default() += 1;
                    handled += 1;
                }
            }
            Some(_) => {}
            None => panic!(
                "only {handled} of {n} handled: {:#?}",
                running.iter().map(App::stderr).collect::<Vec<_>>()
            ),
        }
    }
    let elapsed = started.elapsed();
    for s in senders {
        s.await.expect("publisher task");
    }
    let cpu_after = cpu_now();
    if let Some((i, l)) = app_line(&rx, Duration::from_millis(500)).await {
        panic!("app {i} got more than the {n} messages: {l:?}");
    }
    let shares: Vec<usize> = counts.iter().map(HashMap::len).collect();
    let (app_cpu, node_cpu) = (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1);
    eprintln!(
        "{apps} app(s) on 3 nodes: {n} QoS 1 messages in {elapsed:.2?} ({:.0} msg/s), split \
         {shares:?}; CPU per message: apps {:.1} µs, nodes {:.1} µs",
        n as f64 / elapsed.as_secs_f64(),
        app_cpu.as_secs_f64() * 1e6 / n as f64,
        node_cpu.as_secs_f64() * 1e6 / n as f64,
    );
    let mut total: HashMap<u64, u32> = HashMap::new();
    for c in &counts {
        for (id, k) in c {
            *total.entry(*id).or_default() += k;
        }
    }
    assert_eq!(total.len() as u64, n, "messages never handled");
    assert!(total.values().all(|k| *k == 1), "a message handled twice");
    for (i, s) in shares.iter().enumerate() {
        assert!(*s as u64 >= n / 10, "app {i} handled only {s}: {shares:?}");
    }
    for p in publishers {
        p.shutdown(WAIT).await;
    }
    (app_cpu, node_cpu)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_apps_on_three_nodes_handle_each_message_once() {
    apps_exactly_once(3, 10_000).await;
}

/// The cost per message with 1 and with 3 instances on the cluster (run by hand, figures in
/// docs/scale-out.md): `cargo test -p axum-mqtt --test cluster cost -- --ignored --nocapture`
/// with the node binary built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: 100k messages, 1 and 3 instances, twice"]
async fn cost_per_message_1_vs_3_instances_100k() {
    for apps in [1, 3, 1, 3] {
        apps_exactly_once(apps, 100_000).await;
    }
}

/// What the HTTP load saw: ids answered `code: 0`, and failures per app.
#[derive(Default)]
struct Ledger {
    acked: HashSet<u64>,
    failed: Vec<(usize, u64, String)>,
}

/// What the app processes printed: ids handled and reconnects, per app.
struct Observed {
    handled: Vec<HashSet<u64>>,
    connects: [usize; 4],
}

impl Default for Observed {
    fn default() -> Self {
        Observed {
            handled: vec![HashSet::new(); 4],
            connects: [0; 4],
        }
    }
}

impl Observed {
    /// Reads app lines until `until`, or until app `want_connect` connects (then its time).
    async fn read_until(
        &mut self,
        rx: &Lines,
        until: Instant,
        want_connect: Option<usize>,
    ) -> Option<Instant> {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match app_line(rx, left).await {
                Some((i, Line::Payload(p))) => {
                    if let Ok(id) = p.parse() {
                        self.handled[i].insert(id);
                    }
                }
                Some((i, Line::Connected)) => {
                    self.connects[i] += 1;
                    if want_connect == Some(i) {
                        return Some(Instant::now());
                    }
                }
                Some(_) => {}
                None => return None,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_fails_its_instance_over_and_loses_nothing_acked() {
    init_tracing();
    let Some((node_bin, app_bin)) = binaries() else {
        return;
    };
    let mut cluster = Cluster::start(node_bin, 3);
    let t = unique("nodekill");
    let (tx, rx) = std::sync::mpsc::channel();
    let rx: Lines = Arc::new(Mutex::new(rx));
    let filter = format!("{t}/#");
    let mut running: Vec<App> = (0..3)
        .map(|i| App::start(&app_bin, i, &cluster.failover_list(i), &filter, tx.clone()))
        .collect();
    // The witness: a plain (non-shared) subscriber on node 1, which is never killed.
    let (witness, mut seen_rx) = subscriber(cluster.nodes[0].port, &filter).await;
    let mut probers = Vec::new();
    for node in &cluster.nodes {
        probers.push(connected(Mqtt::builder(mosquitto_config(node.port, Protocol::V311))).await);
    }
    let http = apps_ready(&t, &rx, &running, &probers).await;
    for p in probers {
        p.shutdown(WAIT).await;
    }
    while tokio::time::timeout(Duration::from_millis(300), seen_rx.recv())
        .await
        .is_ok()
    {}

    // Steady load: 6 HTTP callers, each its own stream of ids, round robin over the 3 apps.
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let next_id = Arc::new(AtomicU64::new(0));
    let http_client = reqwest::Client::new();
    let callers: Vec<_> = (0..6)
        .map(|c| {
            let (ledger, stop, next_id, http_client) = (
                ledger.clone(),
                stop.clone(),
                next_id.clone(),
                http_client.clone(),
            );
            let (http, t) = (http.clone(), t.clone());
            tokio::spawn(async move {
                let mut k = c;
                while !stop.load(Ordering::Relaxed) {
                    let app = k % 3;
                    k += 1;
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    let r = http_client
                        .post(format!("http://127.0.0.1:{}/publish", http[app]))
                        .json(&serde_json::json!({
                            "topic": format!("{t}/m/{}", id % 16), "msg": id.to_string(), "qos": 1
                        }))
                        .send()
                        .await;
                    let outcome = match r {
                        Ok(r) => {
                            let status = r.status();
                            let body: serde_json::Value = r.json().await.unwrap_or_default();
                            if status == 200 && body["code"] == 0 {
                                Ok(())
                            } else {
                                Err(format!("{status} {body}"))
                            }
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    let mut l = ledger.lock().unwrap();
                    match outcome {
                        Ok(()) => {
                            l.acked.insert(id);
                        }
                        Err(e) => l.failed.push((app, id, e)),
                    }
                }
            })
        })
        .collect();

    // Handled ids per app, and each app's (re)connects, read while the load runs.
    let mut seen_by_apps = Observed::default();
    // Two seconds of load, then SIGKILL node 2 (index 1) and time app 2's reconnect elsewhere.
    seen_by_apps
        .read_until(&rx, Instant::now() + Duration::from_secs(2), None)
        .await;
    let before_kill = ledger.lock().unwrap().acked.len();
    assert!(
        before_kill > 50,
        "the load is running ({before_kill} acked)"
    );
    let killed_at = Instant::now();
    cluster.nodes[1].kill();
    let reconnected = seen_by_apps
        .read_until(&rx, killed_at + WAIT, Some(1))
        .await
        .unwrap_or_else(|| {
            panic!(
                "app 2 did not reconnect within {WAIT:?}: {}",
                running[1].stderr()
            )
        });
    let failover = reconnected - killed_at;
    // Three more seconds of load on the two nodes left, then the node comes back.
    seen_by_apps
        .read_until(&rx, Instant::now() + Duration::from_secs(3), None)
        .await;
    cluster.restart(1);
    let app4 = App::start(&app_bin, 3, &cluster.nodes[1].url(), &filter, tx.clone());
    drop(tx);
    running.push(app4);
    seen_by_apps
        .read_until(&rx, Instant::now() + WAIT, Some(3))
        .await
        .unwrap_or_else(|| {
            panic!(
                "app 4 did not connect to the restarted node: {}",
                running[3].stderr()
            )
        });
    // The restarted node takes load: app 4 handles messages published through the other apps.
    let deadline = Instant::now() + WAIT * 2;
    while seen_by_apps.handled[3].is_empty() {
        assert!(
            Instant::now() < deadline,
            "app 4 on the restarted node never got a message"
        );
        seen_by_apps
            .read_until(&rx, Instant::now() + Duration::from_millis(200), None)
            .await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.await.unwrap();
    }

    // Every id answered `code: 0` reaches the witness on node 1.
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    let mut seen: HashSet<u64> = HashSet::new();
    let mut duplicates = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ledger.acked.iter().all(|id| seen.contains(id)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, seen_rx.recv()).await {
            Ok(Some(m)) => {
                if let Ok(id) = String::from_utf8_lossy(m.payload()).parse::<u64>() {
                    if !seen.insert(id) {
                        duplicates += 1;
                    }
                }
            }
            _ => {
                let missing: Vec<_> = ledger
                    .acked
                    .iter()
                    .filter(|id| !seen.contains(id))
                    .take(20)
                    .collect();
                panic!(
                    "{} of {} acknowledged publishes never reached the witness, e.g. {missing:?}",
                    ledger.acked.iter().filter(|id| !seen.contains(id)).count(),
                    ledger.acked.len()
                );
            }
        }
    }
    seen_by_apps
        .read_until(&rx, Instant::now() + Duration::from_millis(500), None)
        .await;

    // Apps 1 and 3 never stopped: no reconnect, and every publish through them succeeded.
    assert_eq!(seen_by_apps.connects[0], 0, "app 1 reconnected");
    assert_eq!(seen_by_apps.connects[2], 0, "app 3 reconnected");
    let failed_elsewhere: Vec<_> = ledger.failed.iter().filter(|f| f.0 != 1).take(5).collect();
    assert!(
        failed_elsewhere.is_empty(),
        "publishes through apps 1 and 3 failed: {failed_elsewhere:?}"
    );
    // What the group lost: acknowledged ids no instance handled (dealt to app 2 on node 2 and
    // in flight or queued there when it died). Measured and printed, not hidden.
    let all_handled: HashSet<u64> = seen_by_apps.handled.iter().flatten().copied().collect();
    let unhandled = ledger
        .acked
        .iter()
        .filter(|id| !all_handled.contains(id))
        .count();
    let failed_app2 = ledger.failed.iter().filter(|f| f.0 == 1).count();
    assert!(
        failover < Duration::from_secs(5),
        "failover took {failover:?}"
    );
    eprintln!(
        "node kill: app 2 failed over in {failover:?}; {} publishes acknowledged, {} failed (all \
         through app 2: {failed_app2}), witness saw all ({duplicates} duplicates); handled by \
         the group: {} ({unhandled} acknowledged but never handled: lost with node 2's queue); \
         app 4 on the restarted node handled {}",
        ledger.acked.len(),
        ledger.failed.len(),
        all_handled.len(),
        seen_by_apps.handled[3].len()
    );
    witness.shutdown(WAIT).await;
}
