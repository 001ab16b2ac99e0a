//! Helpers shared by the integration tests: configs for real brokers and waiting on events.
#![allow(dead_code)]

pub mod apps;

use std::time::Duration;

use axum_mqtt::{Message, Mqtt, MqttConfig, Protocol, Status};
use axum_mqtt_testkit::embedded;
use tokio::sync::mpsc;

pub const WAIT: Duration = Duration::from_secs(10);

/// A config for the shared embedded broker (one port for 3.1.1 and 5), with fast reconnects.
pub fn embedded_config(protocol: Protocol) -> MqttConfig {
    let mut cfg = MqttConfig::new("127.0.0.1", embedded().tcp_addr().port());
    cfg.protocol = protocol;
    cfg.reconnect_min = std::time::Duration::from_millis(20);
    cfg.reconnect_max = std::time::Duration::from_millis(500);
    cfg.keepalive = std::time::Duration::from_secs(5);
    cfg
}

/// A config for a Mosquitto child on `port`.
pub fn mosquitto_config(port: u16, protocol: Protocol) -> MqttConfig {
    let mut cfg = MqttConfig::new("127.0.0.1", port);
    cfg.protocol = protocol;
    cfg.reconnect_min = std::time::Duration::from_millis(20);
    cfg.reconnect_max = std::time::Duration::from_millis(300);
    cfg.keepalive = std::time::Duration::from_secs(5);
    cfg
}

/// Starts a client and waits until it is connected.
pub async fn connected(builder: axum_mqtt::MqttBuilder) -> Mqtt {
    let mqtt = builder.start().await.expect("start");
    let state = mqtt.wait_connected(WAIT).await;
    assert_eq!(state.status, Status::Connected, "not connected: {state:?}");
    mqtt
}

/// Receives the next item or fails the test after [`WAIT`].
pub async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting for an event")
        .expect("channel closed")
}

/// Asserts that nothing arrives within `d`.
pub async fn nothing<T: std::fmt::Debug>(rx: &mut mpsc::UnboundedReceiver<T>, d: Duration) {
    if let Ok(Some(x)) = tokio::time::timeout(d, rx.recv()).await {
        panic!("unexpected: {x:?}");
    }
}

/// A channel and a handler that forwards every message into it.
pub fn collector() -> (
    impl Fn(Message) -> std::future::Ready<()> + Clone + Send + Sync + 'static,
    mpsc::UnboundedReceiver<Message>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        move |m: Message| {
            let _ = tx.send(m);
            std::future::ready(())
        },
        rx,
    )
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,axum_mqtt=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Waits until the watched connection state satisfies `pred`, or fails the test after [`WAIT`].
pub async fn wait_state(
    rx: &mut tokio::sync::watch::Receiver<axum_mqtt::ConnectionState>,
    what: &str,
    pred: impl FnMut(&axum_mqtt::ConnectionState) -> bool,
) -> axum_mqtt::ConnectionState {
    let res = tokio::time::timeout(WAIT, rx.wait_for(pred))
        .await
        .map(|r| r.map(|s| s.clone()));
    match res {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => panic!("client gone while waiting for {what}"),
        Err(_) => panic!("timed out waiting for {what}; state: {:?}", *rx.borrow()),
    }
}

/// Polls [`Mqtt::stats`] until `done` holds (counters have no change events), or fails the test
/// after [`WAIT`].
pub async fn wait_stats(mqtt: &Mqtt, done: impl Fn(&axum_mqtt::Stats) -> bool) -> axum_mqtt::Stats {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = mqtt.stats();
        if done(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stats never got there: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until Mosquitto's log contains `needle` (the log is a file; it is read every 20 ms).
pub async fn wait_log(m: &axum_mqtt_testkit::Mosquitto, needle: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !m.log().contains(needle) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "mosquitto never logged {needle:?}; log:\n{}",
            m.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client id unique to this process and call, made of characters every broker accepts.
pub fn unique_id(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A channel and a callback (for `on_connect`, `on_subscribe`, …) that forwards every event into it.
pub fn event_collector<E: Send + 'static>() -> (
    impl Fn(Mqtt, E) -> std::future::Ready<()> + Send + Sync + 'static,
    mpsc::UnboundedReceiver<E>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        move |_m: Mqtt, e: E| {
            let _ = tx.send(e);
            std::future::ready(())
        },
        rx,
    )
}

/// With ack-after-handling: proves that nothing `worker` acknowledged comes back after a
/// reconnect. A QoS 1 barrier publish on the worker's connection (its acks were queued before it,
/// so once the broker acknowledged the barrier it has them too), the connection cut through
/// `proxy`, the reconnect, then `probe` published on `topic` must be the next handler run.
pub async fn no_redelivery_after_cut(
    worker: &Mqtt,
    proxy: &Proxy,
    publisher: &Mqtt,
    topic: &str,
    probe: &str,
    runs: &mut mpsc::UnboundedReceiver<String>,
) {
    worker
        .publish(format!("{topic}/barrier"), "x")
        .qos(axum_mqtt::QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut state = worker.watch_state();
    let connects = state.borrow().connects;
    proxy.cut();
    wait_state(&mut state, "the reconnect", |s| {
        s.connects > connects && s.status == Status::Connected
    })
    .await;
    publisher
        .publish(topic.to_string(), probe.to_string())
        .qos(axum_mqtt::QoS::AtLeastOnce)
        .await
        .unwrap();
    // A redelivered message of the old session would come before it, on the same topic and lane.
    assert_eq!(
        next(runs).await,
        probe,
        "nothing acknowledged came back after the reconnect"
    );
}

/// A TCP proxy between a client and a broker that a test can break like a network would:
/// [`cut`](Proxy::cut) closes every live connection at once (the broker sees the socket close
/// without DISCONNECT), [`refuse`](Proxy::refuse) closes new connections on accept, and
/// [`stall`](Proxy::stall) stops forwarding bytes while keeping the sockets open (a half-open link).
pub struct Proxy {
    /// Loopback port clients connect to.
    pub port: u16,
    refusing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
    stalled: tokio::sync::watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `127.0.0.1:target` on a free loopback port.
    pub async fn start(target: u16) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let refusing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let (stalled, _) = tokio::sync::watch::channel(false);
        let (r, c, s) = (refusing.clone(), cut.clone(), stalled.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if r.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(broker) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let mut cut_rx = c.subscribe();
                let (s1, s2) = (s.subscribe(), s.subscribe());
                tokio::spawn(async move {
                    let (cr, cw) = client.into_split();
                    let (br, bw) = broker.into_split();
                    tokio::select! {
                        _ = pump(cr, bw, s1) => {}
                        _ = pump(br, cw, s2) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Proxy {
            port,
            refusing,
            cut,
            stalled,
            accept,
        }
    }

    /// Closes every live connection now (no DISCONNECT reaches the broker).
    pub fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// While `on`, new connections are closed as soon as they are accepted.
    pub fn refuse(&self, on: bool) {
        self.refusing.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// While `on`, no byte is forwarded in either direction; the sockets stay open.
    pub fn stall(&self, on: bool) {
        self.stalled.send_replace(on);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A loopback port that is up at the TCP level but is no broker: it accepts every connection and
/// closes it at once, and counts them. The listener stays bound for the test, so the port cannot
/// be taken by anyone else meanwhile.
pub struct Hangup {
    /// Loopback port clients connect to.
    pub port: u16,
    accepted: tokio::sync::watch::Receiver<u64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Hangup {
    /// Starts the listener on a port the kernel chooses.
    pub async fn start() -> Hangup {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind hang-up listener");
        let port = listener.local_addr().expect("hang-up addr").port();
        let (count, accepted) = tokio::sync::watch::channel(0u64);
        let accept = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                drop(socket);
                count.send_modify(|n| *n += 1);
            }
        });
        Hangup {
            port,
            accepted,
            accept,
        }
    }

    /// Waits until at least `n` connections were accepted (and closed), or fails after [`WAIT`].
    pub async fn wait_accepted(&mut self, n: u64) {
        let res = tokio::time::timeout(WAIT, self.accepted.wait_for(|c| *c >= n))
            .await
            .map(|r| r.is_ok());
        assert!(
            res == Ok(true),
            "the hang-up listener saw {} connections, not {n}",
            *self.accepted.borrow()
        );
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        *self.accepted.borrow()
    }
}

impl Drop for Hangup {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
