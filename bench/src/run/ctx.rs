//! What every measurement of a run shares: its settings, fresh topics, the progress log, and
//! reading the children's JSON events.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::receiver::Done;

/// The settings of a run, and a counter that keeps every measurement on a topic of its own.
pub struct Ctx {
    /// Logs and raw JSON.
    pub out: PathBuf,
    /// The children's stderr.
    pub log: PathBuf,
    /// Messages per flood.
    pub count: u64,
    pub runs: usize,
    /// Seconds per HTTP point.
    pub http_secs: f64,
    /// Seconds of a latency run.
    pub lat_secs: f64,
    pub seq: AtomicU64,
}

impl Ctx {
    pub fn topic(&self, prefix: &str) -> String {
        format!(
            "{prefix}/{}-{}",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// A progress line on stderr.
pub fn say(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}

pub fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The arguments of a `recv` child: a receiver of `kind` counting `count` QoS 1 messages on `topic`.
pub fn recv_args(kind: &str, port: u16, topic: &str, count: u64) -> Vec<String> {
    let (port, count) = (port.to_string(), count.to_string());
    strings(&[
        "recv", "--kind", kind, "--port", &port, "--topic", topic, "--qos", "1", "--count", &count,
    ])
}

/// The port in a server child's `ready` event.
pub fn port_of(v: &serde_json::Value) -> u16 {
    v["port"].as_u64().unwrap_or(0) as u16
}

/// The counts in a receiver child's `done` event.
pub fn done_of(v: &serde_json::Value) -> Result<Done, String> {
    serde_json::from_value(v["report"].clone()).map_err(|e| e.to_string())
}
