//! What a run measures, as data: the samples `run` collects and `report` turns into tables (also
//! written raw to bench/out/results.json). Neither module needs the other, only this one.

use serde::Serialize;

use crate::fanout::Fanout;
use crate::python::PublishCpu;

/// The same app.py on our package (python/) instead of Flask-MQTT, in the tables.
pub const OURS_PY: &str = "flask_mqtt (Rust)";

/// Above this share of stolen CPU time the run says its host was busy (a quiet VM steals ~1 %).
pub const STEAL_WARN_PCT: f64 = 5.0;

/// The machine and the settings of a run, printed above and below the tables.
pub struct Meta {
    pub cores: usize,
    pub model: String,
    pub load_before: String,
    pub load_after: String,
    /// CPU time the hypervisor gave to other guests during the run, in percent (None off Linux).
    pub steal_pct: Option<f64>,
    pub runs: usize,
    pub count: u64,
    pub http_secs: f64,
    pub lat_secs: f64,
    pub quick: bool,
    pub total_secs: f64,
    pub brokers: Vec<(String, String)>,
    pub mosquitto: String,
    pub python: Option<String>,
    /// Versions in out/venv-rs (our package), when it was measured.
    pub python_rs: Option<String>,
    pub git: String,
}

/// One flood counted by one receiver (table 1).
#[derive(Debug, Clone, Serialize)]
pub struct Inbound {
    pub receiver: String,
    pub qos: u8,
    pub size: usize,
    pub sent: u64,
    pub received: u64,
    pub rate: f64,
    pub cpu_s: f64,
    pub hwm_kib: u64,
    pub broker_dropped: Option<u64>,
    pub pub_secs: f64,
}

/// One HTTP load point: one server, one QoS, one concurrency (table 2).
#[derive(Debug, Clone, Serialize)]
pub struct HttpPoint {
    pub server: String,
    /// None: the no-op ceiling.
    pub qos: Option<u8>,
    pub c: usize,
    pub rps: f64,
    pub p50_us: u32,
    pub p99_us: u32,
    pub ok: u64,
    pub failed: u64,
    pub delivered: Option<u64>,
    pub server_cpu_s: f64,
    pub server_hwm_kib: u64,
    /// CPU of Mosquitto, the counting subscriber and this load client over the point.
    pub broker_cpu_s: f64,
    pub sub_cpu_s: f64,
    pub client_cpu_s: f64,
    pub first_error: Option<String>,
}

/// One latency run of one receiver (table 3).
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub receiver: String,
    pub qos: u8,
    pub sent: u64,
    pub received: u64,
    pub p50_us: u32,
    pub p99_us: u32,
    pub max_us: u32,
}

/// Every sample of a run, in the order taken; the report takes medians over the runs.
#[derive(Default, Serialize)]
pub struct Results {
    pub fanout: Vec<Fanout>,
    pub inbound: Vec<Inbound>,
    pub http: Vec<HttpPoint>,
    pub latency: Vec<Latency>,
    pub publish_cpu: Vec<PublishCpu>,
    pub notes: Vec<String>,
    pub sections_secs: Vec<(String, f64)>,
}
