//! `axum-mqtt-app --no-broker` child processes in a shared-subscription group, for the scale-out
//! tests (`faults.rs` on one Mosquitto, `cluster.rs` on an rmqtt cluster).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A binary of this workspace next to this test binary (`cargo test --workspace` builds the app,
/// as it has integration tests; alone: `cargo build -p axum-mqtt-app`).
pub fn workspace_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?; // target/<profile>/deps/<test>-… → target/<profile>
    let bin = profile_dir.join(name);
    bin.exists().then_some(bin)
}

/// The app binary, see [`workspace_binary`].
pub fn app_binary() -> Option<PathBuf> {
    workspace_binary("axum-mqtt-app")
}

/// What an app process printed that the tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `Connected successfully` (after every (re)connect).
    Connected,
    /// The HTTP port from the banner.
    Http(u16),
    /// The payload of a `Received message on topic: … with payload: <payload>` line.
    Payload(String),
}

/// One `axum-mqtt-app --no-broker` process in the shared group `workers`, subscribed to a filter.
/// Its stdout lines arrive on the channel given to [`App::start`] as `(instance, Line)`.
pub struct App {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl App {
    /// Starts instance `instance` against `broker` (one URL or a failover list).
    pub fn start(
        bin: &Path,
        instance: usize,
        broker: &str,
        filter: &str,
        tx: mpsc::Sender<(usize, Line)>,
    ) -> App {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("stderr.log");
        let mut child = Command::new(bin)
            .args(["--no-broker", "--history", "16", "--subscribe", filter])
            .args(["--http", "127.0.0.1:0"])
            .env("MQTT_BROKER_URL", broker)
            .env("MQTT_SHARED_GROUP", "workers")
            .env("MQTT_CLIENT_ID", "scale-{hostname}-{pid}")
            // Fast reconnects, so a failover takes what the client needs, not a long backoff.
            .env("MQTT_RECONNECT_MIN_MS", "50")
            .env("MQTT_RECONNECT_MAX_MS", "500")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start axum-mqtt-app");
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let item = if let Some((_, payload)) = line.rsplit_once(" with payload: ") {
                    Line::Payload(payload.to_string())
                } else if line == "Connected successfully" {
                    Line::Connected
                } else if let Some(port) = line
                    .split_once("Web page:     http://127.0.0.1:")
                    .and_then(|(_, rest)| rest.trim_end_matches('/').parse().ok())
                {
                    Line::Http(port)
                } else {
                    continue;
                };
                if tx.send((instance, item)).is_err() {
                    break;
                }
            }
        });
        App {
            child,
            log,
            _dir: dir,
        }
    }

    /// CPU time (user + system) the process has used so far.
    pub fn cpu(&self) -> Duration {
        process_cpu(self.child.id())
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A receiver of app lines that async code can wait on without blocking the runtime.
pub type Lines = Arc<Mutex<mpsc::Receiver<(usize, Line)>>>;

/// Receives the next app line within `d`.
pub async fn app_line(rx: &Lines, d: Duration) -> Option<(usize, Line)> {
    let rx = rx.clone();
    tokio::task::spawn_blocking(move || {
        rx.lock()
            .unwrap_or_else(|p| p.into_inner())
            .recv_timeout(d)
            .ok()
    })
    .await
    .ok()
    .flatten()
}

/// CPU time (user + system) process `pid` has used, from `/proc/<pid>/stat` (zero if unreadable).
pub fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3; utime and stime
    // are fields 14 and 15, in clock ticks (USER_HZ, 100 on Linux).
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    Duration::from_millis(f.iter().sum::<u64>() * 10)
}

/// The scale-out load: publishes each of `ids` from `publisher` at QoS 1, up to 1000 in flight, on
/// `<t>/m/<id % 16>` with the id as payload (what [`Line::Payload`] carries back).
pub fn spawn_id_load(
    publisher: &axum_mqtt::Mqtt,
    t: &str,
    ids: impl Iterator<Item = u64> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    use futures_util::StreamExt;
    let (publisher, t) = (publisher.clone(), t.to_string());
    tokio::spawn(async move {
        futures_util::stream::iter(ids)
            .for_each_concurrent(1000, |id| {
                let (p, topic) = (publisher.clone(), format!("{t}/m/{}", id % 16));
                async move {
                    p.publish(topic, id.to_string())
                        .qos(axum_mqtt::QoS::AtLeastOnce)
                        .await
                        .expect("publish");
                }
            })
            .await;
    })
}
