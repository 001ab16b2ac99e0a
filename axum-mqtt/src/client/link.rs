//! The one place where MQTT 3.1.1 and MQTT 5 differ: rumqttc has a separate client per version, and
//! this module turns both into the same small vocabulary (requests out, [`NetEvent`]s in).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5 as r5;
use rumqttc::v5::mqttbytes::v5 as p5;

use crate::config::{MqttConfig, Protocol, Transport};
use crate::message::{Message, Properties, QoS};
use crate::Error;

/// One acknowledgement code of a SUBACK: the granted QoS or why the broker refused.
pub(crate) type SubCode = Result<QoS, String>;

/// What the connection task learns from one `poll`.
#[derive(Debug)]
pub(crate) enum NetEvent {
    ConnAck {
        session_present: bool,
    },
    Publish(Message),
    PubAck {
        pkid: u16,
        refused: Option<String>,
    },
    PubRec {
        pkid: u16,
        refused: Option<String>,
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

/// What a queued request is, as far as the ack bookkeeping cares.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReqKind {
    Publish { pkid: u16 },
    PubRel,
    Subscribe,
    Unsubscribe,
    Other,
}

impl Req {
    pub fn kind(&self) -> ReqKind {
        match self {
            Req::V4(rumqttc::Request::Publish(p)) => ReqKind::Publish { pkid: p.pkid },
            Req::V5(r5::Request::Publish(p)) => ReqKind::Publish { pkid: p.pkid },
            Req::V4(rumqttc::Request::PubRel(_)) | Req::V5(r5::Request::PubRel(_)) => {
                ReqKind::PubRel
            }
            Req::V4(rumqttc::Request::Subscribe(_)) | Req::V5(r5::Request::Subscribe(_)) => {
                ReqKind::Subscribe
            }
            Req::V4(rumqttc::Request::Unsubscribe(_)) | Req::V5(r5::Request::Unsubscribe(_)) => {
                ReqKind::Unsubscribe
            }
            _ => ReqKind::Other,
        }
    }

    /// Makes a publish that was in flight in a lost session a new one (fresh packet id).
    pub fn renew_publish(&mut self) {
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

    /// True for acks of incoming messages, which mean nothing to a new session.
    pub fn is_incoming_ack(&self) -> bool {
        matches!(
            self,
            Req::V4(
                rumqttc::Request::PubAck(_)
                    | rumqttc::Request::PubRec(_)
                    | rumqttc::Request::PubComp(_)
            ) | Req::V5(r5::Request::PubAck(_) | r5::Request::PubRec(_) | r5::Request::PubComp(_))
        )
    }
}

/// An outgoing publish, before it is turned into a version's packet.
#[derive(Debug, Clone)]
pub(crate) struct OutPublish {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub properties: Option<Properties>,
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

/// The receiving half: rumqttc's event loop, owned by the connection task only.
pub(crate) enum Link {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<r5::EventLoop>),
}

impl Link {
    /// Builds both halves from the configuration. `capacity` bounds rumqttc's request channel.
    pub fn new(
        cfg: &MqttConfig,
        client_id: &str,
        capacity: usize,
        tls: Option<Arc<rustls::ClientConfig>>,
        manual_acks: bool,
    ) -> Result<(Sender, Link), Error> {
        let ws = cfg.transport == Transport::Websockets;
        // rumqttc wants the whole ws:// URL as the host for WebSockets (the port argument is ignored).
        let host = if ws {
            let scheme = if tls.is_some() { "wss" } else { "ws" };
            let host = if cfg.broker_url.contains(':') {
                format!("[{}]", cfg.broker_url)
            } else {
                cfg.broker_url.clone()
            };
            let path = if cfg.ws_path.starts_with('/') {
                cfg.ws_path.clone()
            } else {
                format!("/{}", cfg.ws_path)
            };
            format!("{scheme}://{host}:{}{path}", cfg.broker_port)
        } else {
            cfg.broker_url.clone()
        };
        let transport = match (ws, tls) {
            (false, None) => rumqttc::Transport::Tcp,
            (false, Some(t)) => rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(t)),
            (true, None) => rumqttc::Transport::Ws,
            (true, Some(t)) => rumqttc::Transport::Wss(rumqttc::TlsConfiguration::Rustls(t)),
        };
        let keepalive = cfg.keepalive_duration();
        match cfg.protocol {
            Protocol::V311 => {
                let mut o = rumqttc::MqttOptions::new(client_id, host, cfg.broker_port);
                o.set_keep_alive(keepalive)
                    .set_clean_session(cfg.clean_session)
                    .set_transport(transport)
                    .set_inflight(cfg.max_inflight)
                    .set_max_packet_size(cfg.max_packet_size, cfg.max_packet_size)
                    .set_pending_throttle(Duration::ZERO)
                    .set_manual_acks(manual_acks);
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
                let (client, mut eventloop) = rumqttc::AsyncClient::new(o, capacity);
                let mut net = eventloop.network_options();
                net.set_connection_timeout(cfg.connect_timeout);
                eventloop.set_network_options(net);
                Ok((Sender::V4(client), Link::V4(Box::new(eventloop))))
            }
            Protocol::V5 => {
                let mut o = r5::MqttOptions::new(client_id, host, cfg.broker_port);
                o.set_keep_alive(keepalive)
                    .set_clean_start(cfg.clean_session)
                    .set_transport(transport)
                    .set_outgoing_inflight_upper_limit(cfg.max_inflight)
                    .set_max_packet_size(Some(
                        u32::try_from(cfg.max_packet_size).unwrap_or(u32::MAX),
                    ))
                    .set_pending_throttle(Duration::ZERO)
                    .set_manual_acks(manual_acks)
                    .set_connection_timeout(cfg.connect_timeout);
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
                let (client, eventloop) = r5::AsyncClient::new(o, capacity);
                Ok((Sender::V5(client), Link::V5(Box::new(eventloop))))
            }
        }
    }

    /// Polls rumqttc once. Not cancel safe: only cancel it when abandoning the connection.
    pub async fn poll(&mut self) -> Result<NetEvent, LinkError> {
        match self {
            Link::V4(el) => el.poll().await.map(v4_event).map_err(v4_error),
            Link::V5(el) => el.poll().await.map(v5_event).map_err(v5_error),
        }
    }

    /// Events rumqttc buffered but has not returned yet (they must be seen before the queue is rebuilt).
    pub fn take_buffered_events(&mut self) -> Vec<NetEvent> {
        match self {
            Link::V4(el) => el.state.events.drain(..).map(v4_event).collect(),
            Link::V5(el) => el.state.events.drain(..).map(v5_event).collect(),
        }
    }

    /// Takes rumqttc's replay queue (in-flight publishes of the lost connection and drained requests).
    pub fn take_pending(&mut self) -> Vec<Req> {
        match self {
            Link::V4(el) => el.pending.drain(..).map(Req::V4).collect(),
            Link::V5(el) => el.pending.drain(..).map(Req::V5).collect(),
        }
    }

    /// Queues requests ahead of the request channel, in order.
    pub fn push_pending(&mut self, reqs: Vec<Req>) {
        for r in reqs {
            match (&mut *self, r) {
                (Link::V4(el), Req::V4(r)) => el.pending.push_back(r),
                (Link::V5(el), Req::V5(r)) => el.pending.push_back(r),
                _ => tracing::error!("request of the other protocol version dropped"),
            }
        }
    }

    /// A PUBACK/PUBREC for an incoming message, queued ahead of the request channel (manual acks).
    pub fn push_ack(&mut self, pkid: u16, qos: QoS) {
        match self {
            Link::V4(el) => el.pending.push_back(match qos {
                QoS::AtMostOnce => return,
                QoS::AtLeastOnce => rumqttc::Request::PubAck(rumqttc::PubAck::new(pkid)),
                QoS::ExactlyOnce => rumqttc::Request::PubRec(rumqttc::PubRec::new(pkid)),
            }),
            Link::V5(el) => el.pending.push_back(match qos {
                QoS::AtMostOnce => return,
                QoS::AtLeastOnce => r5::Request::PubAck(p5::PubAck::new(pkid, None)),
                QoS::ExactlyOnce => r5::Request::PubRec(p5::PubRec::new(pkid, None)),
            }),
        }
    }

    /// An UNSUBSCRIBE, for re-sending one that got no answer.
    pub fn unsubscribe_request(&self, filter: &str) -> Req {
        match self {
            Link::V4(_) => Req::V4(rumqttc::Request::Unsubscribe(rumqttc::Unsubscribe::new(
                filter,
            ))),
            Link::V5(_) => Req::V5(r5::Request::Unsubscribe(p5::Unsubscribe::new(filter, None))),
        }
    }

    /// A SUBSCRIBE for many filters, for restoring subscriptions.
    pub fn subscribe_request(&self, filters: &[(String, QoS)]) -> Req {
        match self {
            Link::V4(_) => Req::V4(rumqttc::Request::Subscribe(rumqttc::Subscribe::new_many(
                filters
                    .iter()
                    .map(|(f, q)| rumqttc::SubscribeFilter::new(f.clone(), v4_qos(*q))),
            ))),
            Link::V5(_) => Req::V5(r5::Request::Subscribe(p5::Subscribe::new_many(
                filters
                    .iter()
                    .map(|(f, q)| p5::Filter::new(f.clone(), v5_qos(*q))),
                None,
            ))),
        }
    }
}

fn v4_qos(q: QoS) -> rumqttc::QoS {
    match q {
        QoS::AtMostOnce => rumqttc::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    }
}

fn from_v4_qos(q: rumqttc::QoS) -> QoS {
    match q {
        rumqttc::QoS::AtMostOnce => QoS::AtMostOnce,
        rumqttc::QoS::AtLeastOnce => QoS::AtLeastOnce,
        rumqttc::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

fn v5_qos(q: QoS) -> r5::mqttbytes::QoS {
    use r5::mqttbytes::QoS as Q;
    match q {
        QoS::AtMostOnce => Q::AtMostOnce,
        QoS::AtLeastOnce => Q::AtLeastOnce,
        QoS::ExactlyOnce => Q::ExactlyOnce,
    }
}

fn from_v5_qos(q: r5::mqttbytes::QoS) -> QoS {
    use r5::mqttbytes::QoS as Q;
    match q {
        Q::AtMostOnce => QoS::AtMostOnce,
        Q::AtLeastOnce => QoS::AtLeastOnce,
        Q::ExactlyOnce => QoS::ExactlyOnce,
    }
}

fn v5_props(p: Properties) -> p5::PublishProperties {
    p5::PublishProperties {
        payload_format_indicator: p.payload_format_indicator,
        message_expiry_interval: p.message_expiry_interval,
        topic_alias: None,
        response_topic: p.response_topic,
        correlation_data: p.correlation_data,
        user_properties: p.user_properties,
        subscription_identifiers: Vec::new(),
        content_type: p.content_type,
    }
}

fn v4_event(e: rumqttc::Event) -> NetEvent {
    use rumqttc::{Event, Outgoing, Packet};
    match e {
        Event::Incoming(p) => match p {
            Packet::ConnAck(c) => NetEvent::ConnAck {
                session_present: c.session_present,
            },
            Packet::Publish(p) => NetEvent::Publish(Message {
                topic: p.topic.into(),
                payload: p.payload,
                qos: from_v4_qos(p.qos),
                retain: p.retain,
                dup: p.dup,
                pkid: p.pkid,
                properties: None,
            }),
            Packet::PubAck(a) => NetEvent::PubAck {
                pkid: a.pkid,
                refused: None,
            },
            Packet::PubRec(a) => NetEvent::PubRec {
                pkid: a.pkid,
                refused: None,
            },
            Packet::PubComp(a) => NetEvent::PubComp { pkid: a.pkid },
            Packet::SubAck(a) => NetEvent::SubAck {
                pkid: a.pkid,
                codes: a
                    .return_codes
                    .into_iter()
                    .map(|c| match c {
                        rumqttc::SubscribeReasonCode::Success(q) => Ok(from_v4_qos(q)),
                        rumqttc::SubscribeReasonCode::Failure => Err("failure (0x80)".to_string()),
                    })
                    .collect(),
            },
            Packet::UnsubAck(a) => NetEvent::UnsubAck { pkid: a.pkid },
            Packet::Disconnect => NetEvent::Disconnect {
                reason: "broker sent DISCONNECT".into(),
                taken_over: false,
            },
            _ => NetEvent::Other,
        },
        Event::Outgoing(o) => match o {
            Outgoing::Publish(pkid) => NetEvent::OutPublish { pkid },
            Outgoing::Subscribe(pkid) => NetEvent::OutSubscribe { pkid },
            Outgoing::Unsubscribe(pkid) => NetEvent::OutUnsubscribe { pkid },
            Outgoing::Disconnect => NetEvent::OutDisconnect,
            _ => NetEvent::Other,
        },
    }
}

fn v5_event(e: r5::Event) -> NetEvent {
    use r5::{Event, Incoming as P};
    use rumqttc::Outgoing;
    match e {
        Event::Incoming(p) => match p {
            P::ConnAck(c) => NetEvent::ConnAck {
                session_present: c.session_present,
            },
            P::Publish(p) => NetEvent::Publish(Message {
                topic: String::from_utf8_lossy(&p.topic).into(),
                payload: p.payload,
                qos: from_v5_qos(p.qos),
                retain: p.retain,
                dup: p.dup,
                pkid: p.pkid,
                properties: p.properties.map(|pp| {
                    Arc::new(Properties {
                        content_type: pp.content_type,
                        response_topic: pp.response_topic,
                        correlation_data: pp.correlation_data,
                        user_properties: pp.user_properties,
                        message_expiry_interval: pp.message_expiry_interval,
                        payload_format_indicator: pp.payload_format_indicator,
                    })
                }),
            }),
            P::PubAck(a) => NetEvent::PubAck {
                pkid: a.pkid,
                refused: match a.reason {
                    p5::PubAckReason::Success | p5::PubAckReason::NoMatchingSubscribers => None,
                    r => Some(format!("{r:?}")),
                },
            },
            P::PubRec(a) => NetEvent::PubRec {
                pkid: a.pkid,
                refused: match a.reason {
                    p5::PubRecReason::Success | p5::PubRecReason::NoMatchingSubscribers => None,
                    r => Some(format!("{r:?}")),
                },
            },
            P::PubComp(a) => NetEvent::PubComp { pkid: a.pkid },
            P::SubAck(a) => NetEvent::SubAck {
                pkid: a.pkid,
                codes: a
                    .return_codes
                    .into_iter()
                    .map(|c| match c {
                        p5::SubscribeReasonCode::Success(q) => Ok(from_v5_qos(q)),
                        other => Err(format!("{other:?}")),
                    })
                    .collect(),
            },
            P::UnsubAck(a) => NetEvent::UnsubAck { pkid: a.pkid },
            P::Disconnect(d) => NetEvent::Disconnect {
                reason: format!("broker sent DISCONNECT: {:?}", d.reason_code),
                taken_over: d.reason_code == p5::DisconnectReasonCode::SessionTakenOver,
            },
            _ => NetEvent::Other,
        },
        Event::Outgoing(o) => match o {
            Outgoing::Publish(pkid) => NetEvent::OutPublish { pkid },
            Outgoing::Subscribe(pkid) => NetEvent::OutSubscribe { pkid },
            Outgoing::Unsubscribe(pkid) => NetEvent::OutUnsubscribe { pkid },
            Outgoing::Disconnect => NetEvent::OutDisconnect,
            _ => NetEvent::Other,
        },
    }
}

fn v4_error(e: rumqttc::ConnectionError) -> LinkError {
    use rumqttc::{ConnectReturnCode as C, ConnectionError as E};
    let refused = match &e {
        E::ConnectionRefused(c) => Some(match c {
            C::Success => 0,
            C::RefusedProtocolVersion => 1,
            C::BadClientId => 2,
            C::ServiceUnavailable => 3,
            C::BadUserNamePassword => 4,
            C::NotAuthorized => 5,
        }),
        _ => None,
    };
    LinkError {
        message: e.to_string(),
        refused,
    }
}

fn v5_error(e: r5::ConnectionError) -> LinkError {
    use p5::ConnectReturnCode as C;
    let refused = match &e {
        r5::ConnectionError::ConnectionRefused(c) => Some(match c {
            C::Success => 0x00,
            C::RefusedProtocolVersion | C::UnsupportedProtocolVersion => 0x84,
            C::BadClientId | C::ClientIdentifierNotValid => 0x85,
            C::ServiceUnavailable | C::ServerUnavailable => 0x88,
            C::UnspecifiedError => 0x80,
            C::MalformedPacket => 0x81,
            C::ProtocolError => 0x82,
            C::ImplementationSpecificError => 0x83,
            C::BadUserNamePassword => 0x86,
            C::NotAuthorized => 0x87,
            C::ServerBusy => 0x89,
            C::Banned => 0x8A,
            C::BadAuthenticationMethod => 0x8C,
            C::TopicNameInvalid => 0x90,
            C::PacketTooLarge => 0x95,
            C::QuotaExceeded => 0x97,
            C::PayloadFormatInvalid => 0x99,
            C::RetainNotSupported => 0x9A,
            C::QoSNotSupported => 0x9B,
            C::UseAnotherServer => 0x9C,
            C::ServerMoved => 0x9D,
            C::ConnectionRateExceeded => 0x9F,
        }),
        _ => None,
    };
    LinkError {
        message: e.to_string(),
        refused,
    }
}
