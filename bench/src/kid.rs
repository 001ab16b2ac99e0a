//! The parent's side of our child processes (`recv`, `serve-http`): spawn, read JSON events,
//! sample /proc, and end them by closing stdin.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::procinfo;

pub struct Kid {
    pub name: String,
    pub pid: u32,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Kid {
    /// Runs this executable with `args`; its stderr goes to `log`.
    pub fn spawn(name: &str, args: &[String], log: &Path) -> Result<Kid, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawn {name}: {e}"))?;
        let pid = child.id().ok_or("child has no pid")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        Ok(Kid {
            name: name.to_string(),
            pid,
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// Waits for the JSON line `{"event": want, ...}`.
    pub async fn event(
        &mut self,
        want: &str,
        timeout: Duration,
    ) -> Result<serde_json::Value, String> {
        let name = self.name.clone();
        let read = async {
            loop {
                let line = self
                    .lines
                    .next_line()
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("{name} exited before {want:?}"))?;
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v["event"] == want {
                        return Ok(v);
                    }
                }
            }
        };
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| format!("{} sent no {want:?} within {timeout:?}", self.name))?
    }

    pub async fn send(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = s.write_all(format!("{line}\n").as_bytes()).await;
            let _ = s.flush().await;
        }
    }

    pub fn cpu(&self) -> f64 {
        procinfo::cpu_seconds(self.pid).unwrap_or(f64::NAN)
    }

    pub fn hwm_kib(&self) -> u64 {
        procinfo::vm_hwm_kib(self.pid).unwrap_or(0)
    }

    /// Closes stdin (the child exits) and waits; kills after 5 s.
    pub async fn finish(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
