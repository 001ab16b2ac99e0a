//! The brokers under the benchmarks, each a child process so its CPU is measured apart:
//! Mosquitto with a config we state in the results, watched through its
//! `$SYS/broker/publish/messages/dropped` counter, and the embedded rmqtt broker
//! (`axum-mqtt-bench serve-broker`), which reports its own dropped counter. Either way loss is
//! explained rather than guessed.

use std::fmt::Write as _;
use std::io::BufRead;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::watch;

/// A free loopback port (bound, then released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn mosquitto_bin() -> Option<PathBuf> {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

pub struct Broker {
    pub name: String,
    pub port: u16,
    /// The settings that matter for the figures, as written in the config.
    pub settings: String,
    pub log: PathBuf,
    child: Child,
    dropped: watch::Receiver<Option<u64>>,
    _monitor: Option<AsyncClient>,
}

impl Broker {
    /// Starts Mosquitto with `settings` (config lines) under `dir/<name>/`.
    pub async fn start(dir: &Path, name: &str, settings: &str) -> Result<Broker, String> {
        let bin =
            mosquitto_bin().ok_or("mosquitto is not installed (apt-get install mosquitto)")?;
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let port = free_port().map_err(|e| e.to_string())?;
        let mut conf = String::new();
        let _ = writeln!(conf, "per_listener_settings false\nallow_anonymous true");
        let _ = writeln!(conf, "listener {port} 127.0.0.1");
        let _ = writeln!(conf, "sys_interval 1");
        // Nagle off towards clients (Mosquitto 2 leaves it on by default): otherwise a paced stream
        // waits on the receivers' delayed ACKs and the latency sections measure that, for every
        // receiver alike.
        let _ = writeln!(conf, "set_tcp_nodelay true");
        let _ = writeln!(
            conf,
            "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice"
        );
        conf.push_str(settings);
        conf.push('\n');
        let conf_path = dir.join("mosquitto.conf");
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let log = dir.join("mosquitto.log");
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("spawn mosquitto: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = child.try_wait() {
                return Err(format!(
                    "mosquitto exited with {st}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("mosquitto did not listen on {port}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (tx, dropped) = watch::channel(None);
        let mut o = MqttOptions::new(
            format!("bench-sys-{name}-{}", std::process::id()),
            "127.0.0.1",
            port,
        );
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = AsyncClient::new(o, 16);
        client
            .subscribe("$SYS/broker/publish/messages/dropped", QoS::AtMostOnce)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let v = std::str::from_utf8(&p.payload)
                            .ok()
                            .and_then(|s| s.trim().parse::<u64>().ok());
                        if v.is_some() {
                            tx.send_replace(v);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        if tx.is_closed() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        Ok(Broker {
            name: name.to_string(),
            port,
            settings: settings.trim().replace('\n', "; "),
            log,
            child,
            dropped,
            _monitor: Some(client),
        })
    }

    /// Starts the embedded broker (`serve-broker`, this binary) with its default limits.
    pub async fn start_embedded(dir: &Path, name: &str) -> Result<Broker, String> {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let log = dir.join("broker.log");
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .arg("serve-broker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("spawn serve-broker: {e}"))?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (tx, dropped) = watch::channel(None);
        // Lines: {"event":"ready","port":P}, then {"event":"stats","dropped":N} every 500 ms.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                match v["event"].as_str() {
                    Some("ready") => {
                        let _ = port_tx.send(v["port"].as_u64().unwrap_or(0) as u16);
                    }
                    Some("stats") => {
                        tx.send_replace(v["dropped"].as_u64());
                    }
                    _ => {}
                }
            }
        });
        let port =
            tokio::task::spawn_blocking(move || port_rx.recv_timeout(Duration::from_secs(15)))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|_| "the embedded broker did not start".to_string())?;
        let l = axum_mqtt_broker::Limits::default();
        Ok(Broker {
            name: name.to_string(),
            port,
            settings: format!(
                "rmqtt 0.24, axum-mqtt-broker defaults: max_inflight {}, max_mqueue_len {}, max_packet_size {}",
                l.max_inflight, l.max_mqueue_len, l.max_packet_size
            ),
            log,
            child,
            dropped,
            _monitor: None,
        })
    }

    /// The broker's dropped-message counter, after waiting for its next `$SYS` update (≤ 2.5 s).
    pub async fn dropped_now(&self) -> Option<u64> {
        let mut rx = self.dropped.clone();
        rx.mark_unchanged();
        let _ = tokio::time::timeout(Duration::from_millis(2500), rx.changed()).await;
        let v = *rx.borrow();
        v
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last value seen, without waiting.
    pub fn dropped_last(&self) -> Option<u64> {
        *self.dropped.borrow()
    }

    /// How many times Mosquitto logged that it started dropping messages for a client.
    pub fn dropping_notices(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("Outgoing messages are being dropped")
            .count()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `serve-broker`: the embedded broker as a process of its own, reporting its port and its dropped
/// counter as JSON lines until stdin closes.
pub async fn serve() -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let b = tokio::task::spawn_blocking(move || {
        axum_mqtt_broker::EmbeddedBroker::start(axum_mqtt_broker::BrokerConfig::new(any))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    println!("{{\"event\":\"ready\",\"port\":{}}}", b.tcp_addr().port());
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            n = stdin.read(&mut buf) => if matches!(n, Ok(0) | Err(_)) { break },
            _ = tick.tick() => println!(
                "{{\"event\":\"stats\",\"dropped\":{},\"delivered\":{}}}",
                b.stats().messages_dropped,
                b.stats().messages_delivered
            ),
        }
    }
    tokio::task::spawn_blocking(move || b.stop())
        .await
        .map_err(|e| e.to_string())
}
