//! The Python original: the Flask-MQTT tutorial app (bench/python/app.py) in a throwaway
//! virtualenv under the output folder, served by gunicorn with one worker and 8 threads.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::http::request;

/// Creates `out/venv` with the pinned versions, once. Returns the venv's folder.
pub async fn ensure_venv(out: &Path, python_dir: &Path) -> Result<PathBuf, String> {
    let venv = out.join("venv");
    let reqs = python_dir.join("requirements.txt");
    let stamp = venv.join(".bench-requirements");
    let wanted = std::fs::read_to_string(&reqs).map_err(|e| format!("{}: {e}", reqs.display()))?;
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str())
        && venv.join("bin/gunicorn").exists()
    {
        return Ok(venv);
    }
    eprintln!(
        "creating {} (Flask-MQTT and friends, pinned)",
        venv.display()
    );
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
        return Err("pip install of bench/python/requirements.txt failed".into());
    }
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())?;
    Ok(venv)
}

/// Versions actually installed (for the results).
pub async fn versions(venv: &Path) -> String {
    let out = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import sys, importlib.metadata as m; print('Python %s, ' % sys.version.split()[0] + ', '.join('%s %s' % (p, m.version(p)) for p in ['Flask', 'Flask-MQTT', 'paho-mqtt', 'gunicorn']))",
        ])
        .output()
        .await;
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

pub struct Flask {
    pub port: u16,
    /// The gunicorn worker: the process holding the MQTT client.
    pub worker_pid: u32,
    master: Child,
}

impl Flask {
    /// Starts the app and waits until its MQTT client is connected and subscribed; up to four
    /// starts. A safety net: the stall it was written for (on_connect never called) was
    /// Flask-MQTT's registration race, which `app.py` now avoids by connecting after its handlers.
    pub async fn start(
        venv: &Path,
        python_dir: &Path,
        mqtt_port: u16,
        log: &Path,
    ) -> Result<Flask, String> {
        // Up to four starts: two in a row stalled in one full run (2026-12-02).
        let mut attempt = 1;
        loop {
            let wait = Duration::from_secs(if attempt == 1 { 20 } else { 30 });
            match Self::start_once(venv, python_dir, mqtt_port, log, wait).await {
                Ok(f) => return Ok(f),
                Err(e) if attempt < 4 => {
                    eprintln!("[bench] Flask-MQTT app not ready ({e}); starting it again");
                    attempt += 1;
                }
                Err(e) => return Err(format!("{e} (after {attempt} starts)")),
            }
        }
    }

    async fn start_once(
        venv: &Path,
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
        let master = Command::new(venv.join("bin/gunicorn"))
            .args(["-w", "1", "--threads", "8", "-b"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--chdir")
            .arg(python_dir)
            .arg("app:app")
            .env("MQTT_BROKER_PORT", mqtt_port.to_string())
            .env("BENCH_TOPIC", "bench/#")
            .env("BENCH_QOS", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("gunicorn: {e}"))?;
        let mut f = Flask {
            port,
            worker_pid: 0,
            master,
        };
        let deadline = Instant::now() + wait;
        // Wait for the app's own "Connected successfully" (printed by its on_connect, which
        // subscribes) before the first HTTP request (see RESULTS.md, the start-up section).
        let connected_lines = |s: &str| s.matches("Connected successfully").count();
        while connected_lines(&std::fs::read_to_string(log).unwrap_or_default()) <= seen_before {
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        loop {
            if let Ok(s) = f.stats().await {
                if s["connected"] == true && s["subscribed"] == true {
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
