//! Running the broker as one node of an rmqtt broadcast cluster (feature `cluster`).
//!
//! Built on rmqtt's own `rmqtt-cluster-broadcast` plugin: every node keeps a gRPC connection to
//! every other node and forwards what the others need (publishes to their subscribers, shared
//! subscription choices, retained messages, session kicks). There is no consensus and no
//! replicated session store: a node that dies takes the sessions of the clients connected to it
//! and the messages queued for them; its clients reconnect to another node and start a new session
//! there. `rmqtt-cluster-raft` is not offered: it misbehaves when nodes start at the same moment on
//! one machine (rmqtt issue 33), which is exactly how tests and the README recipe start them.

// rmqtt's broadcast cluster plugin, rmqtt-cluster-broadcast 0.24.0, with our fixes: upstream's code
// (MIT, `broadcast/LICENSE-rmqtt`), kept in upstream's format and lint level so that its diff to
// upstream stays readable (`broadcast/README.md`). Here rather than as a crate of its own: only this
// feature uses it, and as a workspace member it would be built by every `cargo test --workspace`,
// which would then need `protoc` and switch rmqtt's gRPC on for every test.
#[rustfmt::skip]
#[allow(clippy::all, missing_docs, dead_code, unreachable_pub)]
pub(crate) mod broadcast;
pub(crate) mod grpc;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::BrokerError;

/// One node of a cluster as the others see it: its id and its gRPC address.
///
/// ```
/// use axum_mqtt_broker::ClusterNode;
///
/// let n = ClusterNode::new(2, "127.0.0.1:5364".parse().unwrap());
/// assert_eq!(n.to_string(), "2@127.0.0.1:5364");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterNode {
    /// The node's id, unique in the cluster, at least 1.
    pub id: u64,
    /// Where the node's gRPC server listens for the other nodes.
    pub grpc: SocketAddr,
}

impl ClusterNode {
    /// A node `id` whose gRPC server listens on `grpc`.
    pub fn new(id: u64, grpc: SocketAddr) -> Self {
        ClusterNode { id, grpc }
    }
}

impl std::fmt::Display for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.id, self.grpc)
    }
}

impl std::str::FromStr for ClusterNode {
    type Err = BrokerError;

    /// Parses `ID@HOST:PORT`, as rmqtt's own `node_grpc_addrs` setting.
    fn from_str(s: &str) -> Result<Self, BrokerError> {
        let bad = |reason: String| BrokerError::Config {
            name: "cluster node",
            reason,
        };
        let (id, addr) = s
            .split_once('@')
            .ok_or_else(|| bad(format!("{s:?} is not ID@HOST:PORT")))?;
        let id = id
            .parse::<u64>()
            .map_err(|_| bad(format!("{s:?}: the id {id:?} is not a number")))?;
        let grpc = addr
            .parse()
            .map_err(|_| bad(format!("{s:?}: {addr:?} is not an IP address and port")))?;
        Ok(ClusterNode::new(id, grpc))
    }
}

/// Makes an [`EmbeddedBroker`](crate::EmbeddedBroker) one node of an rmqtt broadcast cluster.
///
/// `nodes` lists every node of the cluster, this one included. Clients may connect to any node: a
/// publish reaches subscribers on every node, a `$share/<group>/..` group with members on several
/// nodes gets each message once, a retained message set on one node is seen by a subscriber on
/// another, and a client id connected to two nodes is kicked from the older one.
///
/// ```no_run
/// use axum_mqtt_broker::{BrokerConfig, ClusterConfig, ClusterNode, EmbeddedBroker};
///
/// let nodes = vec![
///     ClusterNode::new(1, "127.0.0.1:5364".parse().unwrap()),
///     ClusterNode::new(2, "127.0.0.1:5365".parse().unwrap()),
/// ];
/// let node1 = EmbeddedBroker::start(
///     BrokerConfig::new("127.0.0.1:1883".parse().unwrap())
///         .with_cluster(ClusterConfig::new(1, nodes)?),
/// )?;
/// # Ok::<(), axum_mqtt_broker::BrokerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    id: u64,
    nodes: Vec<ClusterNode>,
    /// A listener for this node's gRPC, bound beforehand ([`ClusterConfig::with_grpc_listener`]);
    /// the node takes it when it starts.
    listener: Option<Arc<Mutex<Option<std::net::TcpListener>>>>,
}

impl ClusterConfig {
    /// Node `id` of the cluster made of `nodes` (which must list `id` itself).
    ///
    /// ```
    /// use axum_mqtt_broker::{ClusterConfig, ClusterNode};
    ///
    /// let nodes: Vec<ClusterNode> = ["1@127.0.0.1:5364", "2@127.0.0.1:5365"]
    ///     .iter()
    ///     .map(|s| s.parse().unwrap())
    ///     .collect();
    /// assert!(ClusterConfig::new(1, nodes.clone()).is_ok());
    /// assert!(ClusterConfig::new(3, nodes).is_err()); // not a member
    /// ```
    pub fn new(id: u64, nodes: Vec<ClusterNode>) -> Result<Self, BrokerError> {
        let bad = |reason: String| {
            Err(BrokerError::Config {
                name: "cluster",
                reason,
            })
        };
        if id == 0 {
            return bad("node ids start at 1".into());
        }
        for (i, n) in nodes.iter().enumerate() {
            if n.id == 0 {
                return bad(format!("node {n}: ids start at 1"));
            }
            if nodes[..i].iter().any(|m| m.id == n.id) {
                return bad(format!("node id {} is listed twice", n.id));
            }
            if nodes[..i].iter().any(|m| m.grpc == n.grpc) {
                return bad(format!("gRPC address {} is listed twice", n.grpc));
            }
        }
        if !nodes.iter().any(|n| n.id == id) {
            return bad(format!("node {id} is not in the node list"));
        }
        Ok(ClusterConfig {
            id,
            nodes,
            listener: None,
        })
    }

    /// Serves this node's gRPC on `listener` (already bound and listening) instead of binding the
    /// node's address from the list. The listener's address must be the one listed for this node.
    /// This is how nodes get ports that are free by construction: bind port 0 first, list what was
    /// bound, then start the nodes (see [`ClusterConfig::loopback`]).
    ///
    /// ```
    /// use axum_mqtt_broker::{ClusterConfig, ClusterNode};
    ///
    /// let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let me = ClusterNode::new(1, l.local_addr()?);
    /// let cfg = ClusterConfig::new(1, vec![me])?.with_grpc_listener(l)?;
    /// assert_eq!(cfg.grpc_addr(), me.grpc);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_grpc_listener(
        mut self,
        listener: std::net::TcpListener,
    ) -> Result<Self, BrokerError> {
        let bound = listener.local_addr().map_err(|e| BrokerError::Config {
            name: "cluster gRPC listener",
            reason: format!("not a bound socket: {e}"),
        })?;
        if bound != self.grpc_addr() {
            return Err(BrokerError::Config {
                name: "cluster gRPC listener",
                reason: format!(
                    "it is bound to {bound}, but node {} is listed at {}",
                    self.id,
                    self.grpc_addr()
                ),
            });
        }
        self.listener = Some(Arc::new(Mutex::new(Some(listener))));
        Ok(self)
    }

    /// The configs of an `n`-node cluster on 127.0.0.1, node ids 1..=n, each with a gRPC listener
    /// bound to a free port (port 0, read back). For tests and demos.
    ///
    /// ```
    /// use axum_mqtt_broker::ClusterConfig;
    ///
    /// let configs = ClusterConfig::loopback(3)?;
    /// assert_eq!(configs.len(), 3);
    /// assert_eq!(configs[2].id(), 3);
    /// assert_eq!(configs[0].nodes(), configs[1].nodes());
    /// # Ok::<(), axum_mqtt_broker::BrokerError>(())
    /// ```
    pub fn loopback(n: usize) -> Result<Vec<ClusterConfig>, BrokerError> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut listeners = Vec::with_capacity(n);
        for _ in 0..n {
            let l = std::net::TcpListener::bind(any).map_err(|source| BrokerError::Bind {
                addr: any,
                what: "cluster gRPC",
                source,
            })?;
            let addr = l
                .local_addr()
                .map_err(|e| BrokerError::Start(format!("gRPC listener has no address: {e}")))?;
            listeners.push((l, addr));
        }
        let nodes: Vec<ClusterNode> = listeners
            .iter()
            .zip(1..)
            .map(|((_, addr), id)| ClusterNode::new(id, *addr))
            .collect();
        listeners
            .into_iter()
            .zip(1..)
            .map(|((l, _), id)| ClusterConfig::new(id, nodes.clone())?.with_grpc_listener(l))
            .collect()
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Every node of the cluster, this one included.
    pub fn nodes(&self) -> &[ClusterNode] {
        &self.nodes
    }

    /// This node's gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.nodes
            .iter()
            .find(|n| n.id == self.id)
            .map(|n| n.grpc)
            // `new` and `loopback` make sure the node is listed.
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The `rmqtt-cluster-broadcast` plugin's settings.
    pub(crate) fn plugin_toml(&self) -> String {
        let addrs: Vec<String> = self.nodes.iter().map(|n| format!("\"{n}\"")).collect();
        // Keys of the plugin's sample `rmqtt-cluster-broadcast.toml`. A peer that is down costs a
        // forward at most the client timeout (rmqtt's sample: 5 s, long enough for an MQTT client's
        // keepalive to give up on a connection whose publishes wait on it) until the circuit
        // breaker below opens. A reply between nodes on one network takes well under 1 s.
        format!(
            "message_type = 98\nnode_grpc_addrs = [{}]\nnode_grpc_client_concurrency_limit = 128\n\
             node_grpc_client_timeout = \"1s\"\nnode_grpc_batch_size = 128\n",
            addrs.join(", ")
        )
    }

    /// The listener given with [`with_grpc_listener`](Self::with_grpc_listener), once; else binds
    /// this node's listed address. Called on the broker's runtime.
    pub(crate) async fn grpc_listener(&self) -> Result<tokio::net::TcpListener, BrokerError> {
        let addr = self.grpc_addr();
        let bind = |source| BrokerError::Bind {
            addr,
            what: "cluster gRPC",
            source,
        };
        let given = self
            .listener
            .as_ref()
            .and_then(|l| l.lock().unwrap_or_else(|p| p.into_inner()).take());
        match given {
            Some(l) => {
                l.set_nonblocking(true).map_err(bind)?;
                tokio::net::TcpListener::from_std(l).map_err(bind)
            }
            None => tokio::net::TcpListener::bind(addr).await.map_err(bind),
        }
    }
}

/// When rmqtt stops calling a peer that fails: after 3 calls of the last 10 with half of them
/// failing (rmqtt's default waits for 10 calls in a 45 s window, each up to the client timeout),
/// and it tries again after 1 s (default 30 s), so a restarted node takes its share again soon.
pub(crate) fn circuit_breaker() -> rmqtt::context::CircuitBreakerConfig {
    use rmqtt::context::{CircuitBreakerConfig, CountBasedWindowConfig, WindowConfig};
    CircuitBreakerConfig {
        failure_rate_threshold: 0.5,
        window: WindowConfig::CountBased(CountBasedWindowConfig {
            sliding_window_size: 10,
        }),
        minimum_number_of_calls: 3,
        wait_duration_in_open: std::time::Duration::from_secs(1),
        ..CircuitBreakerConfig::default()
    }
}
