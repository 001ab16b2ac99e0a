//! The one place where MQTT 3.1.1 and MQTT 5 differ: rumqttc has a separate client per version, and
//! this module turns both into the same small vocabulary (requests out, [`NetEvent`]s in).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5 as r5;
use rumqttc::v5::mqttbytes::v5 as p5;

mod convert;

use self::convert::{v4_error, v4_event, v4_publish, v4_qos, v5_error, v5_event, v5_props, v5_qos};
use super::core::packet::{OutPublish, SubCode};
use super::core::replay::{Outgoing, Replayable, ReqKind};
#[cfg(not(feature = "websocket"))]
use crate::config::NO_WEBSOCKET;
use crate::config::{BrokerAddr, MqttConfig, Protocol, Transport};
use crate::error::ReasonCode;
use crate::message::{Message, QoS};
use crate::Error;

/// What the connection task learns from one `poll`.
#[derive(Debug)]
pub(crate) enum NetEvent {
    ConnAck {
        session_present: bool,
    },
    Publish(Message),
    PubAck {
        pkid: u16,
        refused: Option<ReasonCode>,
    },
    PubRec {
        pkid: u16,
        refused: Option<ReasonCode>,
    },
    PubComp {
        pkid: u16,
    },
    SubAck {
        pkid: u16,
        codes: Vec<SubCode>,
    },
    UnsubAck {
        pkid: u16,
    },
    OutPublish {
        pkid: u16,
    },
    OutSubscribe {
        pkid: u16,
    },
    OutUnsubscribe {
        pkid: u16,
    },
    OutDisconnect,
    /// The broker sent DISCONNECT (MQTT 5), with its reason.
    /// `taken_over`: another connection with our client id replaced us (MQTT 5 reason 0x8E).
    Disconnect {
        reason: String,
        taken_over: bool,
    },
    Other,
}

/// Why the link went down (or could not come up).
#[derive(Debug)]
pub(crate) struct LinkError {
    pub message: String,
    /// A CONNACK refusal code (0 is never used here).
    pub refused: Option<u8>,
}

/// A request as it sits in rumqttc's queue, for either version.
#[derive(Debug)]
pub(crate) enum Req {
    V4(rumqttc::Request),
    V5(r5::Request),
}

impl Replayable for Req {
    fn kind(&self) -> ReqKind {
        use r5::Request as R5;
        use rumqttc::Request as R4;
        match self {
            Req::V4(R4::Publish(p)) => ReqKind::Publish { pkid: p.pkid },
            Req::V5(R5::Publish(p)) => ReqKind::Publish { pkid: p.pkid },
            Req::V4(R4::PubRel(_)) | Req::V5(R5::PubRel(_)) => ReqKind::PubRel,
            Req::V4(R4::Subscribe(_)) | Req::V5(R5::Subscribe(_)) => ReqKind::Subscribe,
            Req::V4(R4::Unsubscribe(_)) | Req::V5(R5::Unsubscribe(_)) => ReqKind::Unsubscribe,
            Req::V4(R4::PubAck(_) | R4::PubRec(_) | R4::PubComp(_))
            | Req::V5(R5::PubAck(_) | R5::PubRec(_) | R5::PubComp(_)) => ReqKind::IncomingAck,
            _ => ReqKind::Other,
        }
    }

    fn renew_publish(&mut self) {
        match self {
            Req::V4(rumqttc::Request::Publish(p)) => {
                p.pkid = 0;
                p.dup = false;
            }
            Req::V5(r5::Request::Publish(p)) => {
                p.pkid = 0;
                p.dup = false;
            }
            _ => {}
        }
    }
}

/// The sending half, held by every handle.
#[derive(Clone)]
pub(crate) enum Sender {
    V4(rumqttc::AsyncClient),
    V5(r5::AsyncClient),
}

impl Sender {
    /// Queues a request without waiting; the caller accounts for capacity.
    pub fn try_publish(&self, p: OutPublish) -> Result<(), Error> {
        match self {
            Sender::V4(c) => {
                if p.properties.is_some() {
                    return Err(Error::PropertiesNeedV5);
                }
                c.try_publish(p.topic, v4_qos(p.qos), p.retain, p.payload)
                    .map_err(|_| Error::Closed)
            }
            Sender::V5(c) => match p.properties {
                Some(props) => c.try_publish_with_properties(
                    p.topic,
                    v5_qos(p.qos),
                    p.retain,
                    p.payload,
                    v5_props(props),
                ),
                None => c.try_publish(p.topic, v5_qos(p.qos), p.retain, p.payload),
            }
            .map_err(|_| Error::Closed),
        }
    }

    pub fn try_subscribe(&self, filters: &[(String, QoS)]) -> Result<(), Error> {
        match self {
            Sender::V4(c) => c
                .try_subscribe_many(
                    filters
                        .iter()
                        .map(|(f, q)| rumqttc::SubscribeFilter::new(f.clone(), v4_qos(*q))),
                )
                .map_err(|_| Error::Closed),
            Sender::V5(c) => c
                .try_subscribe_many(
                    filters
                        .iter()
                        .map(|(f, q)| p5::Filter::new(f.clone(), v5_qos(*q))),
                )
                .map_err(|_| Error::Closed),
        }
    }

    pub fn try_unsubscribe(&self, filter: &str) -> Result<(), Error> {
        match self {
            Sender::V4(c) => c.try_unsubscribe(filter).map_err(|_| Error::Closed),
            Sender::V5(c) => c.try_unsubscribe(filter).map_err(|_| Error::Closed),
        }
    }

    /// Acknowledges an incoming QoS 1/2 message (manual acks: after its handler succeeded).
    pub fn try_ack(&self, pkid: u16, qos: QoS) -> Result<(), Error> {
        match self {
            Sender::V4(c) => {
                let mut p = rumqttc::Publish::new("", v4_qos(qos), Bytes::new());
                p.pkid = pkid;
                c.try_ack(&p).map_err(|_| Error::Closed)
            }
            Sender::V5(c) => {
                let mut p = p5::Publish::new("", v5_qos(qos), Bytes::new(), None);
                p.pkid = pkid;
                c.try_ack(&p).map_err(|_| Error::Closed)
            }
        }
    }

    pub fn try_disconnect(&self) -> Result<(), Error> {
        match self {
            Sender::V4(c) => c.try_disconnect().map_err(|_| Error::Closed),
            Sender::V5(c) => c.try_disconnect().map_err(|_| Error::Closed),
        }
    }
}

/// The receiving half: rumqttc's event loop, owned by the connection task only, and what it takes
/// to point that loop at another broker of a failover list.
pub(crate) struct Link {
    el: Loop,
    dial: Dial,
}

/// rumqttc's event loop of either version.
enum Loop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<r5::EventLoop>),
}

/// Everything a connection is made from but the broker's address: kept to build rumqttc's options
/// again when the client moves to the next broker.
struct Dial {
    cfg: MqttConfig,
    client_id: String,
    transport: rumqttc::Transport,
    /// `wss` rather than `ws` (WebSocket URLs carry the scheme).
    tls: bool,
    manual_acks: bool,
}

impl Dial {
    /// The host as rumqttc wants it: the name, or for WebSockets the whole `ws://` URL (rumqttc
    /// then ignores the port argument).
    fn host(&self, broker: &BrokerAddr) -> String {
        if self.cfg.transport != Transport::Websockets {
            return broker.host.clone();
        }
        let scheme = if self.tls { "wss" } else { "ws" };
        let path = &self.cfg.ws_path;
        let slash = if path.starts_with('/') { "" } else { "/" };
        // `BrokerAddr`'s Display brackets an IPv6 address, as a URL needs.
        format!("{scheme}://{broker}{slash}{path}")
    }

    fn v4_options(&self, broker: &BrokerAddr) -> rumqttc::MqttOptions {
        let cfg = &self.cfg;
        let mut o = rumqttc::MqttOptions::new(&self.client_id, self.host(broker), broker.port);
        o.set_keep_alive(cfg.keepalive)
            .set_clean_session(cfg.clean_session)
            .set_transport(self.transport.clone())
            .set_inflight(cfg.max_inflight)
            .set_max_packet_size(cfg.max_packet_size, cfg.max_packet_size)
            .set_pending_throttle(Duration::ZERO)
            .set_manual_acks(self.manual_acks);
        if let (Some(u), p) = (&cfg.username, &cfg.password) {
            o.set_credentials(u.clone(), p.clone().unwrap_or_default());
        }
        if let Some(w) = &cfg.last_will {
            o.set_last_will(rumqttc::LastWill::new(
                w.topic.clone(),
                w.message.clone(),
                v4_qos(w.qos),
                w.retain,
            ));
        }
        o
    }

    // NAGLE_OFF: TCP_NODELAY on every connection (rumqttc's default leaves Nagle on). MQTT packets
    // are small and rumqttc already writes everything pending in one go before it flushes, so
    // Nagle batches nothing more; it only holds a second small packet (a publish, a PUBACK) until
    // the broker ACKs the first, up to its delayed-ACK time (40 ms on Linux) under a steady stream.
    fn v5_options(&self, broker: &BrokerAddr) -> r5::MqttOptions {
        let cfg = &self.cfg;
        let mut o = r5::MqttOptions::new(&self.client_id, self.host(broker), broker.port);
        o.set_keep_alive(cfg.keepalive)
            .set_clean_start(cfg.clean_session)
            .set_transport(self.transport.clone())
            .set_outgoing_inflight_upper_limit(cfg.max_inflight)
            .set_max_packet_size(Some(u32::try_from(cfg.max_packet_size).unwrap_or(u32::MAX)))
            .set_pending_throttle(Duration::ZERO)
            .set_manual_acks(self.manual_acks)
            .set_connection_timeout(cfg.connect_timeout.as_secs().max(1));
        let mut net = o.network_options();
        net.set_tcp_nodelay(true); // see `NAGLE_OFF`
        o.set_network_options(net);
        if !cfg.clean_session {
            // MQTT 5 ends a session when the connection closes unless an expiry is set.
            o.set_session_expiry_interval(Some(u32::MAX));
        }
        if let (Some(u), p) = (&cfg.username, &cfg.password) {
            o.set_credentials(u.clone(), p.clone().unwrap_or_default());
        }
        if let Some(w) = &cfg.last_will {
            o.set_last_will(p5::LastWill::new(
                w.topic.clone(),
                w.message.clone(),
                v5_qos(w.qos),
                w.retain,
                None,
            ));
        }
        o
    }
}

impl Link {
    /// Builds both halves from the configuration, pointed at its first broker. `capacity` bounds
    /// rumqttc's request channel.
    pub fn new(
        cfg: &MqttConfig,
        client_id: &str,
        capacity: usize,
        tls: Option<Arc<super::tls::ClientConfig>>,
        manual_acks: bool,
    ) -> Result<(Sender, Link), crate::error::ConfigError> {
        let ws = cfg.transport == Transport::Websockets;
        let with_tls = tls.is_some();
        let transport = match (ws, tls) {
            (false, None) => rumqttc::Transport::Tcp,
            #[cfg(feature = "tls")]
            (false, Some(t)) => rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(t)),
            #[cfg(feature = "websocket")]
            (true, None) => rumqttc::Transport::Ws,
            #[cfg(all(feature = "tls", feature = "websocket"))]
            (true, Some(t)) => rumqttc::Transport::Wss(rumqttc::TlsConfiguration::Rustls(t)),
            #[cfg(not(feature = "websocket"))]
            (true, _) => return Err(cfg.error("TRANSPORT", "websockets", NO_WEBSOCKET)),
            #[cfg(not(feature = "tls"))]
            (_, Some(t)) => match *t {},
        };
        let dial = Dial {
            cfg: cfg.clone(),
            client_id: client_id.to_string(),
            transport,
            tls: with_tls,
            manual_acks,
        };
        let first = BrokerAddr::new(cfg.broker_url.clone(), cfg.broker_port);
        match cfg.protocol {
            Protocol::V311 => {
                let (client, mut eventloop) =
                    rumqttc::AsyncClient::new(dial.v4_options(&first), capacity);
                let mut net = eventloop.network_options();
                net.set_connection_timeout(cfg.connect_timeout.as_secs().max(1));
                net.set_tcp_nodelay(true); // see `NAGLE_OFF`
                eventloop.set_network_options(net);
                let el = Loop::V4(Box::new(eventloop));
                Ok((Sender::V4(client), Link { el, dial }))
            }
            Protocol::V5 => {
                let (client, eventloop) = r5::AsyncClient::new(dial.v5_options(&first), capacity);
                let el = Loop::V5(Box::new(eventloop));
                Ok((Sender::V5(client), Link { el, dial }))
            }
        }
    }

    /// Points the next connection attempt at `broker`. Call it only between a failed poll and the
    /// next one: rumqttc reads its options when it connects, and keeps its session state (what is
    /// in flight, the replay queue) across the change.
    pub fn set_broker(&mut self, broker: &BrokerAddr) {
        match &mut self.el {
            Loop::V4(el) => el.mqtt_options = self.dial.v4_options(broker),
            Loop::V5(el) => el.options = self.dial.v5_options(broker),
        }
    }

    /// Polls rumqttc once. Not cancel safe: only cancel it when abandoning the connection.
    pub async fn poll(&mut self) -> Result<NetEvent, LinkError> {
        match &mut self.el {
            Loop::V4(el) => el.poll().await.map(v4_event).map_err(v4_error),
            Loop::V5(el) => el.poll().await.map(v5_event).map_err(v5_error),
        }
    }

    /// Whether this link can write publishes itself ([`write_publishes`](Self::write_publishes)):
    /// rumqttc exposes its connection for MQTT 3.1.1 only.
    pub fn writes_directly(&self) -> bool {
        matches!(self.el, Loop::V4(_))
    }

    /// Whether rumqttc holds events it read or wrote earlier, which the next polls return without
    /// waiting (a burst of acks comes in one read). MQTT 5: always false (no direct writes).
    pub fn has_buffered_events(&self) -> bool {
        match &self.el {
            Loop::V4(el) => !el.state.events.is_empty(),
            Loop::V5(_) => false,
        }
    }

    /// How many QoS 1/2 publishes may be written now, or `None` when nothing may be written
    /// directly: no connection, a replay still queued ahead, or a packet id collision to resolve
    /// first (the conditions under which rumqttc itself takes no new request).
    pub fn direct_room(&self) -> Option<usize> {
        match &self.el {
            Loop::V4(el) if el.network.is_some() && el.pending.is_empty() => {
                let s = &el.state;
                (s.collision.is_none())
                    .then(|| usize::from(el.mqtt_options.inflight().saturating_sub(s.inflight())))
            }
            _ => None,
        }
    }

    /// Writes `publishes` in order and flushes once: what rumqttc does for one request, for many,
    /// under the same timeout (its network options' connection timeout). rumqttc reports each
    /// write as an event, returned by the next polls, in order.
    ///
    /// On failure the connection is dropped as a failed poll would drop it (rumqttc's `clean`:
    /// what is in flight moves to its replay queue), the publishes not handed to rumqttc yet
    /// follow them, and the error is returned for the connection task's usual reconnect.
    pub async fn write_publishes(&mut self, publishes: Vec<OutPublish>) -> Result<(), LinkError> {
        let Loop::V4(el) = &mut self.el else {
            // Not called for MQTT 5 (`writes_directly`); rumqttc 5 keeps its connection private.
            return Err(LinkError {
                message: "direct writes need an MQTT 3.1.1 link".into(),
                refused: None,
            });
        };
        let el = &mut **el;
        let timeout = Duration::from_secs(el.network_options.connection_timeout());
        let mut left = publishes.into_iter();
        let written = match el.network.as_mut() {
            None => Err(rumqttc::ConnectionError::RequestsDone),
            Some(net) => {
                let state = &mut el.state;
                let write = async {
                    for p in left.by_ref() {
                        if let Some(packet) = state.handle_outgoing_packet(v4_publish(p))? {
                            net.write(packet).await?;
                        }
                    }
                    net.flush().await
                };
                match tokio::time::timeout(timeout, write).await {
                    Ok(r) => r.map_err(rumqttc::ConnectionError::MqttState),
                    Err(_) => Err(rumqttc::ConnectionError::FlushTimeout),
                }
            }
        };
        written.map_err(|e| {
            el.clean();
            el.pending.extend(left.map(v4_publish));
            v4_error(e)
        })
    }

    /// A held publish as a request of the replay queue (for a batch caught by a disconnect).
    pub fn publish_request(&self, p: OutPublish) -> Req {
        match self.el {
            Loop::V4(_) => Req::V4(v4_publish(p)),
            Loop::V5(_) => {
                let props = p.properties.map(v5_props);
                let mut publish = p5::Publish::new(p.topic, v5_qos(p.qos), p.payload, props);
                publish.retain = p.retain;
                Req::V5(r5::Request::Publish(publish))
            }
        }
    }

    /// Events rumqttc buffered but has not returned yet (they must be seen before the queue is rebuilt).
    pub fn take_buffered_events(&mut self) -> Vec<NetEvent> {
        match &mut self.el {
            Loop::V4(el) => el.state.events.drain(..).map(v4_event).collect(),
            Loop::V5(el) => el.state.events.drain(..).map(v5_event).collect(),
        }
    }

    /// Takes rumqttc's replay queue (in-flight publishes of the lost connection and drained requests).
    pub fn take_pending(&mut self) -> Vec<Req> {
        match &mut self.el {
            Loop::V4(el) => el.pending.drain(..).map(Req::V4).collect(),
            Loop::V5(el) => el.pending.drain(..).map(Req::V5).collect(),
        }
    }

    /// Queues requests ahead of the request channel, in order.
    pub fn push_pending(&mut self, reqs: Vec<Outgoing<Req>>) {
        for r in reqs {
            let r = match r {
                Outgoing::Replay(r) => r,
                Outgoing::Subscribe(filters) => self.subscribe_request(&filters),
                Outgoing::Unsubscribe(filter) => self.unsubscribe_request(&filter),
            };
            match (&mut self.el, r) {
                (Loop::V4(el), Req::V4(r)) => el.pending.push_back(r),
                (Loop::V5(el), Req::V5(r)) => el.pending.push_back(r),
                _ => tracing::error!("request of the other protocol version dropped"),
            }
        }
    }

    /// A PUBACK/PUBREC for an incoming message, queued ahead of the request channel (manual acks).
    pub fn push_ack(&mut self, pkid: u16, qos: QoS) {
        match &mut self.el {
            Loop::V4(el) => el.pending.push_back(match qos {
                QoS::AtMostOnce => return,
                QoS::AtLeastOnce => rumqttc::Request::PubAck(rumqttc::PubAck::new(pkid)),
                QoS::ExactlyOnce => rumqttc::Request::PubRec(rumqttc::PubRec::new(pkid)),
            }),
            Loop::V5(el) => el.pending.push_back(match qos {
                QoS::AtMostOnce => return,
                QoS::AtLeastOnce => r5::Request::PubAck(p5::PubAck::new(pkid, None)),
                QoS::ExactlyOnce => r5::Request::PubRec(p5::PubRec::new(pkid, None)),
            }),
        }
    }

    /// An UNSUBSCRIBE, for re-sending one that got no answer.
    fn unsubscribe_request(&self, filter: &str) -> Req {
        match self.el {
            Loop::V4(_) => Req::V4(rumqttc::Request::Unsubscribe(rumqttc::Unsubscribe::new(
                filter,
            ))),
            Loop::V5(_) => Req::V5(r5::Request::Unsubscribe(p5::Unsubscribe::new(filter, None))),
        }
    }

    /// A SUBSCRIBE for many filters, for restoring subscriptions.
    fn subscribe_request(&self, filters: &[(String, QoS)]) -> Req {
        match self.el {
            Loop::V4(_) => Req::V4(rumqttc::Request::Subscribe(rumqttc::Subscribe::new_many(
                filters
                    .iter()
                    .map(|(f, q)| rumqttc::SubscribeFilter::new(f.clone(), v4_qos(*q))),
            ))),
            Loop::V5(_) => Req::V5(r5::Request::Subscribe(p5::Subscribe::new_many(
                filters
                    .iter()
                    .map(|(f, q)| p5::Filter::new(f.clone(), v5_qos(*q))),
                None,
            ))),
        }
    }
}
