//! Starting and stopping the broker on its own thread and tokio runtime.

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rmqtt::codec::types::QoS;
use rmqtt::context::ServerContext;
use rmqtt::net::{Builder, Listener};
use rmqtt::server::MqttServer;

use crate::config::{BrokerConfig, Limits};
use crate::BrokerError;

/// The deepest topic the broker may be configured to route (see `guard`): with the worker stack
/// below, rmqtt's recursive topic walk stays far from overflowing at this depth.
const MAX_TOPIC_LEVELS: usize = 4096;

/// Stack of the broker's worker threads (virtual memory; only what is used is committed).
const WORKER_STACK: usize = 16 << 20;

/// How long a stop waits for connection tasks to end before the runtime is dropped anyway.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// A running embedded broker. Stopped by [`stop`](EmbeddedBroker::stop) or when dropped.
///
/// ```
/// use axum_mqtt_broker::{BrokerConfig, EmbeddedBroker};
///
/// let broker = EmbeddedBroker::start(
///     BrokerConfig::new("127.0.0.1:0".parse().unwrap()).with_ws("127.0.0.1:0".parse().unwrap()),
/// )?;
/// assert_ne!(broker.tcp_addr().port(), 0);
/// assert!(broker.ws_addr().is_some());
/// assert_eq!(broker.stats().connections, 0);
/// drop(broker); // listeners closed, connections ended
/// # Ok::<(), axum_mqtt_broker::BrokerError>(())
/// ```
pub struct EmbeddedBroker {
    tcp: SocketAddr,
    ws: Option<SocketAddr>,
    tls: Option<SocketAddr>,
    scx: ServerContext,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("tcp", &self.tcp)
            .field("ws", &self.ws)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Counters of a running broker, read with [`EmbeddedBroker::stats`].
///
/// ```
/// use axum_mqtt_broker::{BrokerConfig, EmbeddedBroker};
///
/// let broker = EmbeddedBroker::start(BrokerConfig::new("127.0.0.1:0".parse().unwrap()))?;
/// let s = broker.stats();
/// assert_eq!((s.messages_received, s.messages_dropped), (0, 0));
/// # Ok::<(), axum_mqtt_broker::BrokerError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BrokerStats {
    /// Connections open now.
    pub connections: usize,
    /// Sessions held now (connected or offline persistent ones).
    pub sessions: usize,
    /// PUBLISH packets received from clients.
    pub messages_received: usize,
    /// Messages delivered to subscribers.
    pub messages_delivered: usize,
    /// Messages dropped: a subscriber's queue was full, or a queued message expired.
    pub messages_dropped: usize,
}

type Started = (
    SocketAddr,
    Option<SocketAddr>,
    Option<SocketAddr>,
    ServerContext,
);

impl EmbeddedBroker {
    /// Starts the broker on its own thread and returns once every listener is bound (and so accepts
    /// connections: the kernel queues them until the broker's accept loop takes them).
    ///
    /// Fails with [`BrokerError::Bind`] when an address is already taken, so a second copy of an app
    /// does not silently talk to someone else's broker. May be called from inside or outside a
    /// tokio runtime; it blocks the calling thread for the few milliseconds start-up takes.
    pub fn start(config: BrokerConfig) -> Result<Self, BrokerError> {
        validate(&config.limits)?;
        let (ready_tx, ready_rx) = mpsc::channel::<Result<Started, BrokerError>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("mqtt-broker".into())
            .spawn(move || run_broker(config, ready_tx, stop_rx))
            .map_err(|e| BrokerError::Start(format!("cannot start its thread: {e}")))?;
        let started = ready_rx
            .recv()
            .map_err(|_| BrokerError::Start("its thread ended during start-up".into()));
        let (tcp, ws, tls, scx) = match started.and_then(|r| r) {
            Ok(s) => s,
            Err(e) => {
                let _ = thread.join();
                return Err(e);
            }
        };
        tracing::info!(%tcp, ws = ?ws, tls = ?tls, "embedded MQTT broker listening (MQTT 3.1.1 and 5)");
        Ok(EmbeddedBroker {
            tcp,
            ws,
            tls,
            scx,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The MQTT over TCP address (3.1.1 and 5), with the port actually bound.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp
    }

    /// The MQTT over WebSocket address, when configured.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws
    }

    /// The MQTT over TLS address, when configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls
    }

    /// The broker's counters now.
    pub fn stats(&self) -> BrokerStats {
        let m = &self.scx.metrics;
        BrokerStats {
            connections: self.scx.connections.count().max(0) as usize,
            sessions: self.scx.sessions.count().max(0) as usize,
            messages_received: m.messages_publish(),
            messages_delivered: m.messages_delivered(),
            messages_dropped: m.messages_dropped(),
        }
    }

    /// Closes the listeners, ends every connection (clients see the socket close; wills of
    /// connected clients are published to no one) and waits until the broker's threads are gone.
    /// The ports are free again when this returns.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the embedded broker's thread panicked while stopping");
            }
            tracing::info!(tcp = %self.tcp, "embedded MQTT broker stopped");
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn validate(l: &Limits) -> Result<(), BrokerError> {
    let bad = |name, reason: &str| {
        Err(BrokerError::Config {
            name,
            reason: reason.into(),
        })
    };
    if l.max_inflight == 0 {
        return bad("max_inflight", "must be at least 1");
    }
    if l.max_packet_size < 1024 {
        return bad("max_packet_size", "must be at least 1024 bytes");
    }
    if l.max_mqueue_len == 0 {
        return bad("max_mqueue_len", "must be at least 1");
    }
    if l.max_qos > 2 {
        return bad("max_qos", "must be 0, 1 or 2");
    }
    if !(1..=MAX_TOPIC_LEVELS).contains(&l.max_topic_levels) {
        return bad("max_topic_levels", "must be between 1 and 4096");
    }
    Ok(())
}

/// The broker thread: its own runtime, start-up reported through `ready`, then serve until `stop`.
fn run_broker(
    config: BrokerConfig,
    ready: mpsc::Sender<Result<Started, BrokerError>>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(WORKER_STACK)
        .thread_name("mqtt-broker-worker")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(BrokerError::Start(format!(
                "cannot start its runtime: {e}"
            ))));
            return;
        }
    };
    let started = runtime.block_on(async {
        let (scx, server, addrs, ws) = build(&config).await?;
        if let Some((listener, relay)) = ws {
            tokio::spawn(crate::ws::serve(
                listener,
                relay,
                config.limits.max_connections,
            ));
        }
        tokio::spawn(async move {
            if let Err(e) = server.run().await {
                tracing::error!(error = %e, "embedded MQTT broker stopped serving");
            }
        });
        Ok((addrs.0, addrs.1, addrs.2, scx))
    });
    let ok = started.is_ok();
    let _ = ready.send(started);
    if ok {
        // Serve until told to stop (or until the handle is gone without a word).
        runtime.block_on(async {
            let _ = stop.await;
        });
    }
    // Dropping the runtime drops every task: accept loops (listeners close) and connections.
    runtime.shutdown_timeout(STOP_GRACE);
}

type Addrs = (SocketAddr, Option<SocketAddr>, Option<SocketAddr>);

type WsListener = Option<(tokio::net::TcpListener, crate::ws::Relay)>;

async fn build(
    config: &BrokerConfig,
) -> Result<(ServerContext, MqttServer, Addrs, WsListener), BrokerError> {
    let l = &config.limits;
    let retainer = format!(
        "storage.type = \"ram\"\nmax_retained_messages = {}\nmax_payload_size = \"{}B\"\nretained_message_ttl = \"0m\"\n",
        l.max_retained_messages, l.max_packet_size
    );
    let scx = ServerContext::new()
        // rmqtt refuses connections when the machine's load average is high; an embedded broker
        // shares its machine with the app (and tests with each other) and must not.
        .busy_check_enable(false)
        .plugins_config_map_add("rmqtt-retainer", retainer)
        .plugins_config_map_add("rmqtt-shared-subscription", "strategy = \"round_robin\"\n");
    #[cfg(feature = "cluster")]
    let scx = match &config.cluster {
        Some(c) => scx
            .node(rmqtt::node::Node::new(
                c.id(),
                80.0,
                90.0,
                Duration::from_secs(2),
            ))
            .circuit_breaker_config(crate::cluster::circuit_breaker())
            .plugins_config_map_add("rmqtt-cluster-broadcast", c.plugin_toml()),
        None => scx,
    };
    let scx = scx.build().await;
    let plugin = |name: &str, e: rmqtt::Error| BrokerError::Start(format!("plugin {name}: {e}"));
    rmqtt_retainer::register_named(&scx, "rmqtt-retainer", true, false)
        .await
        .map_err(|e| plugin("rmqtt-retainer", e))?;
    // Between the retainer and shared subscriptions, as in rmqtt's `examples/cluster-broadcast`.
    #[cfg(feature = "cluster")]
    if let Some(c) = &config.cluster {
        let listener = c.grpc_listener().await?;
        crate::cluster::broadcast::register_named(&scx, "rmqtt-cluster-broadcast", true, false)
            .await
            .map_err(|e| plugin("rmqtt-cluster-broadcast", e))?;
        tokio::spawn(crate::cluster::grpc::serve(scx.clone(), listener));
    }
    rmqtt_shared_subscription::register_named(&scx, "rmqtt-shared-subscription", true, false)
        .await
        .map_err(|e| plugin("rmqtt-shared-subscription", e))?;
    crate::guard::install(&scx, l.max_topic_levels).await;

    let mut server = MqttServer::new(scx.clone());
    let tcp_listener = bind(listener_builder("tcp", config.listen, l), "MQTT")?
        .tcp()
        .map_err(|e| BrokerError::Start(format!("MQTT listener on {}: {e}", config.listen)))?;
    let tcp = local_addr(&tcp_listener, config.listen)?;
    server = server.listener_by_id(tcp_listener, 1);
    let mut ws = None;
    let mut ws_listener = None;
    if let Some(addr) = config.ws {
        // Our relay, not rmqtt's `ws` listener: see `ws.rs` for why.
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| BrokerError::Bind {
                addr,
                what: "WebSocket",
                source,
            })?;
        ws = Some(
            listener
                .local_addr()
                .map_err(|e| BrokerError::Start(e.to_string()))?,
        );
        let broker = match tcp.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => {
                SocketAddr::from(([127, 0, 0, 1], tcp.port()))
            }
            ip if ip.is_unspecified() => {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, tcp.port()))
            }
            _ => tcp,
        };
        let relay = crate::ws::Relay {
            broker,
            max_packet_size: l.max_packet_size as usize,
            handshake_timeout: l.handshake_timeout,
        };
        ws_listener = Some((listener, relay));
    }
    let mut tls = None;
    if let Some(t) = &config.tls {
        for (what, path) in [("certificate", &t.cert), ("key", &t.key)] {
            if !path.is_file() {
                return Err(BrokerError::Tls {
                    addr: t.addr,
                    reason: format!("{what} file {} does not exist", path.display()),
                });
            }
        }
        let builder = listener_builder("tls", t.addr, l)
            .tls_cert(Some(t.cert.display().to_string()))
            .tls_key(Some(t.key.display().to_string()));
        let listener = bind(builder, "TLS")?.tls().map_err(|e| BrokerError::Tls {
            addr: t.addr,
            reason: e.to_string(),
        })?;
        tls = Some(local_addr(&listener, t.addr)?);
        server = server.listener_by_id(listener, 3);
    }
    Ok((scx, server.build(), (tcp, ws, tls), ws_listener))
}

fn listener_builder(name: &str, addr: SocketAddr, l: &Limits) -> Builder {
    Builder::new()
        .name(format!("embedded/{name}"))
        .laddr(addr)
        // A restarted broker may rebind its port while old connections sit in TIME_WAIT.
        .reuseaddr(Some(true))
        .nodelay(true)
        .allow_anonymous(true)
        .allow_zero_keepalive(true)
        .max_connections(l.max_connections)
        .max_packet_size(l.max_packet_size)
        .max_inflight(NonZeroU16::new(l.max_inflight).unwrap_or(NonZeroU16::MIN))
        .max_mqueue_len(l.max_mqueue_len)
        .message_expiry_interval(l.message_expiry)
        .session_expiry_interval(l.session_expiry)
        .max_topic_aliases(l.max_topic_aliases)
        .max_qos_allowed(match l.max_qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        })
        .max_topic_levels(l.max_topic_levels)
        .handshake_timeout(l.handshake_timeout)
}

fn bind(builder: Builder, what: &'static str) -> Result<Listener, BrokerError> {
    let addr = builder.laddr;
    builder.bind().map_err(|e| bind_error(e, addr, what))
}

fn bind_error(e: rmqtt::Error, addr: SocketAddr, what: &'static str) -> BrokerError {
    match e.downcast::<std::io::Error>() {
        Ok(source) => BrokerError::Bind { addr, what, source },
        Err(e) => BrokerError::Start(format!("{what} listener on {addr}: {e}")),
    }
}

fn local_addr(listener: &Listener, asked: SocketAddr) -> Result<SocketAddr, BrokerError> {
    listener
        .local_addr()
        .map_err(|e| BrokerError::Start(format!("listener on {asked} has no address: {e}")))
}
