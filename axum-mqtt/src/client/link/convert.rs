//! rumqttc's packets, events and errors of both versions, turned into our own vocabulary.

use std::sync::Arc;

use rumqttc::v5 as r5;
use rumqttc::v5::mqttbytes::v5 as p5;

use super::{LinkError, NetEvent};
use crate::client::core::packet::OutPublish;
use crate::error::ReasonCode;
use crate::message::{Message, Properties, QoS};

pub(super) fn v4_qos(q: QoS) -> rumqttc::QoS {
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

pub(super) fn v5_qos(q: QoS) -> r5::mqttbytes::QoS {
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

pub(super) fn v5_props(p: Properties) -> p5::PublishProperties {
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

pub(super) fn v4_event(e: rumqttc::Event) -> NetEvent {
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
                        rumqttc::SubscribeReasonCode::Failure => Err(ReasonCode::new(0x80)),
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

// The failure reason codes of MQTT 5 acks (§3.4.2.1, §3.5.2.1, §3.9.3): rumqttc's enums have no
// numeric value to read back.

/// The failure code of a PUBACK or PUBREC reason (`$reason` is `PubAckReason` or `PubRecReason`,
/// two enums with the same variants); `None` for success, with or without subscribers.
macro_rules! publish_ack_code {
    ($r:expr, $reason:ident) => {{
        use p5::$reason as R;
        let code = match $r {
            R::Success | R::NoMatchingSubscribers => None,
            R::UnspecifiedError => Some(0x80),
            R::ImplementationSpecificError => Some(0x83),
            R::NotAuthorized => Some(0x87),
            R::TopicNameInvalid => Some(0x90),
            R::PacketIdentifierInUse => Some(0x91),
            R::QuotaExceeded => Some(0x97),
            R::PayloadFormatInvalid => Some(0x99),
        };
        code.map(ReasonCode::new)
    }};
}

pub(super) fn v5_event(e: r5::Event) -> NetEvent {
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
                refused: publish_ack_code!(a.reason, PubAckReason),
            },
            P::PubRec(a) => NetEvent::PubRec {
                pkid: a.pkid,
                refused: publish_ack_code!(a.reason, PubRecReason),
            },
            P::PubComp(a) => NetEvent::PubComp { pkid: a.pkid },
            P::SubAck(a) => NetEvent::SubAck {
                pkid: a.pkid,
                codes: a
                    .return_codes
                    .into_iter()
                    .map(|c| match c {
                        p5::SubscribeReasonCode::Success(q) => Ok(from_v5_qos(q)),
                        other => Err(suback_code(&other)),
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

/// A publish as rumqttc 3.1.1's request (the topic was validated, no properties on 3.1.1).
pub(super) fn v4_publish(p: OutPublish) -> rumqttc::Request {
    let mut publish = rumqttc::Publish::from_bytes(p.topic, v4_qos(p.qos), p.payload);
    publish.retain = p.retain;
    rumqttc::Request::Publish(publish)
}

pub(super) fn v4_error(e: rumqttc::ConnectionError) -> LinkError {
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

pub(super) fn v5_error(e: r5::ConnectionError) -> LinkError {
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

/// A SUBACK entry's failure code (never called with `Success`).
fn suback_code(r: &p5::SubscribeReasonCode) -> ReasonCode {
    use p5::SubscribeReasonCode as R;
    ReasonCode::new(match r {
        R::Success(_) | R::Failure | R::Unspecified => 0x80,
        R::ImplementationSpecific => 0x83,
        R::NotAuthorized => 0x87,
        R::TopicFilterInvalid => 0x8F,
        R::PkidInUse => 0x91,
        R::QuotaExceeded => 0x97,
        R::SharedSubscriptionsNotSupported => 0x9E,
        R::SubscriptionIdNotSupported => 0xA1,
        R::WildcardSubscriptionsNotSupported => 0xA2,
    })
}
