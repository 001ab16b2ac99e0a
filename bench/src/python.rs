//! The Python original: the Flask-MQTT tutorial app (bench/python/app.py) in a throwaway
//! virtualenv under the output folder, served by gunicorn with one worker and 8 threads; and the
//! same app.py on our package (python/, `flask_mqtt` on the Rust client) in a second one.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::http::request;

/// Creates `out/venv` with the pinned versions, once. Returns the venv's folder.
pub async fn ensure_venv(out: &Path, python_dir: &Path) -> Result<PathBuf, String> {
    make_venv(out.join("venv"), python_dir.join("requirements.txt")).await
}

/// `out/venv-rs`: requirements-rs.txt once, then our package (`pip install <package>`, a release
/// build by maturin) reinstalled on every run, so the figures are of the current code. With
/// `BENCH_BUILD_LOCK=<file>` the build runs under `flock <file>` (a machine shared with other
/// builds).
pub async fn ensure_venv_rs(
    out: &Path,
    python_dir: &Path,
    package: &Path,
) -> Result<PathBuf, String> {
    let venv = make_venv(out.join("venv-rs"), python_dir.join("requirements-rs.txt")).await?;
    // Absolute: pip takes a bare `python` for a name on PyPI.
    let package = package
        .canonicalize()
        .map_err(|e| format!("{}: {e}", package.display()))?;
    eprintln!("[bench] pip install {} (release build)", package.display());
    let pip = venv.join("bin/pip");
    let mut cmd = match std::env::var_os("BENCH_BUILD_LOCK") {
        Some(lock) => {
            let mut c = Command::new("flock");
            c.arg(lock).arg(&pip);
            c
        }
        None => Command::new(&pip),
    };
    let st = cmd
        .args([
            "install",
            "-q",
            "--disable-pip-version-check",
            "--force-reinstall",
            "--no-deps",
        ])
        .arg(&package)
        .status()
        .await
        .map_err(|e| format!("pip: {e}"))?;
    if !st.success() {
        return Err(format!("pip install {} failed", package.display()));
    }
    Ok(venv)
}

async fn make_venv(venv: PathBuf, reqs: PathBuf) -> Result<PathBuf, String> {
    let stamp = venv.join(".bench-requirements");
    let wanted = std::fs::read_to_string(&reqs).map_err(|e| format!("{}: {e}", reqs.display()))?;
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str())
        && venv.join("bin/gunicorn").exists()
    {
        return Ok(venv);
    }
    eprintln!("creating {} (pinned: {})", venv.display(), reqs.display());
    let st = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .await
        .map_err(|e| format!("python3 -m venv: {e}"))?;
    if !st.success() {
        return Err("python3 -m venv failed (apt-get install python3-venv)".into());
    }
    let st = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check", "-r"])
        .arg(&reqs)
        .status()
        .await
        .map_err(|e| format!("pip: {e}"))?;
    if !st.success() {
        return Err(format!("pip install -r {} failed", reqs.display()));
    }
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())?;
    Ok(venv)
}

/// Versions actually installed of `packages` (for the results).
pub async fn versions(venv: &Path, packages: &str) -> String {
    let out = Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(format!("import sys, importlib.metadata as m; print('Python %s, ' % sys.version.split()[0] + ', '.join('%s %s' % (p, m.version(p)) for p in [{packages}]))"))
        .output()
        .await;
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

/// Which app to start: its virtualenv (Flask-MQTT or ours), gunicorn workers (8 threads each),
/// and the topic root it subscribes to (`<root>/#`), so apps running at once on one broker do not
/// receive each other's floods.
#[derive(Clone, Copy)]
pub struct Spec<'a> {
    pub venv: &'a Path,
    pub workers: usize,
    pub root: &'a str,
}

pub struct Flask {
    pub port: u16,
    /// The gunicorn worker that answered /stats: with one worker, the process holding the MQTT
    /// client.
    pub worker_pid: u32,
    /// Every gunicorn worker (CPU per request sums them).
    pub worker_pids: Vec<u32>,
    /// The topic root it subscribed to (`<root>/#`).
    pub root: String,
    master: Child,
}

impl Flask {
    /// Starts the app and waits until its MQTT client is connected and subscribed; up to four
    /// starts. A safety net: the stall it was written for (on_connect never called) was
    /// Flask-MQTT's registration race, which `app.py` now avoids by connecting after its handlers.
    pub async fn start(
        spec: Spec<'_>,
        python_dir: &Path,
        mqtt_port: u16,
        log: &Path,
    ) -> Result<Flask, String> {
        // Up to four starts: two in a row stalled in one full run (2026-12-02).
        let mut attempt = 1;
        loop {
            let wait = Duration::from_secs(if attempt == 1 { 20 } else { 30 });
            match Self::start_once(spec, python_dir, mqtt_port, log, wait).await {
                Ok(f) => return Ok(f),
                Err(e) if attempt < 4 => {
                    eprintln!("[bench] Flask app not ready ({e}); starting it again");
                    attempt += 1;
                }
                Err(e) => return Err(format!("{e} (after {attempt} starts)")),
            }
        }
    }

    async fn start_once(
        spec: Spec<'_>,
        python_dir: &Path,
        mqtt_port: u16,
        log: &Path,
        wait: Duration,
    ) -> Result<Flask, String> {
        let port = crate::broker::free_port().map_err(|e| e.to_string())?;
        let seen_before = std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches("Connected successfully")
            .count();
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| e.to_string())?;
        let out = err.try_clone().map_err(|e| e.to_string())?;
        let master = Command::new(spec.venv.join("bin/gunicorn"))
            .arg("-w")
            .arg(spec.workers.to_string())
            .args(["--threads", "8", "-b"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--chdir")
            .arg(python_dir)
            .arg("app:app")
            .env("MQTT_BROKER_PORT", mqtt_port.to_string())
            .env("BENCH_TOPIC", format!("{}/#", spec.root))
            .env("BENCH_QOS", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("gunicorn: {e}"))?;
        let master_pid = master.id().unwrap_or(0);
        let mut f = Flask {
            port,
            worker_pid: 0,
            worker_pids: Vec::new(),
            root: spec.root.to_string(),
            master,
        };
        let deadline = Instant::now() + wait;
        // Wait for the app's own "Connected successfully" (printed by its on_connect, which
        // subscribes) before the first HTTP request (see RESULTS.md, the start-up section).
        let connected_lines = |s: &str| s.matches("Connected successfully").count();
        while connected_lines(&std::fs::read_to_string(log).unwrap_or_default())
            < seen_before + spec.workers
        {
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        loop {
            if let Ok(s) = f.stats().await {
                f.worker_pids = crate::procinfo::children(master_pid);
                if s["connected"] == true
                    && s["subscribed"] == true
                    && f.worker_pids.len() == spec.workers
                {
                    f.worker_pid = s["pid"].as_u64().unwrap_or(0) as u32;
                    return Ok(f);
                }
            }
            if Instant::now() > deadline {
                let tail: String = std::fs::read_to_string(log).unwrap_or_default();
                let tail = tail.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                f.stop().await;
                return Err(format!(
                    "the Flask app did not come up within {wait:?}: {tail}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stats(&self) -> Result<serde_json::Value, String> {
        let (status, body) = request(self.port, "GET", "/stats").await?;
        if status != 200 {
            return Err(format!("/stats: {status}"));
        }
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    }

    pub async fn reset(&self) -> Result<(), String> {
        request(self.port, "POST", "/reset").await.map(|_| ())
    }

    /// SIGTERM to the gunicorn master (it stops its worker), then wait.
    pub async fn stop(mut self) {
        if let Some(pid) = self.master.id() {
            // SAFETY: signalling our own child.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(Duration::from_secs(10), self.master.wait())
            .await
            .is_err()
        {
            let _ = self.master.kill().await;
        }
    }
}

/// bench/python/publish_cpu.py: `mqtt.publish(topic, 32 B, qos=0)` called N times in one process.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PublishCpu {
    #[serde(default)]
    pub client: String,
    pub calls: u64,
    pub errors: u64,
    /// Process CPU from the first call until a QoS 1 marker after the last was acked.
    pub cpu_us_per_call: f64,
    /// Process CPU of the loop alone.
    pub loop_cpu_us_per_call: f64,
    pub calls_per_s: f64,
}

/// bench/python/publish_cpu.py in `venv` against the broker on `mqtt_port`: 100k publish() calls.
pub async fn publish_cpu(
    venv: &Path,
    python_dir: &Path,
    mqtt_port: u16,
    topic: &str,
    log: &Path,
) -> Result<PublishCpu, String> {
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| e.to_string())?;
    let mut cmd = Command::new(venv.join("bin/python"));
    cmd.arg(python_dir.join("publish_cpu.py"))
        .env("MQTT_BROKER_PORT", mqtt_port.to_string())
        .env("BENCH_TOPIC", topic)
        .env("BENCH_N", "100000")
        .stdin(Stdio::null())
        .stderr(err)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .map_err(|_| "publish_cpu.py took over 300 s".to_string())?
        .map_err(|e| format!("publish_cpu.py: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .map_err(|e| format!("publish_cpu.py ({}): {e}: {line:?}", out.status))
}
