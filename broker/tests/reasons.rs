//! A client that breaks the protocol learns why: the broker sends a DISCONNECT with the reason code
//! MQTT 5 gives for the error (section 4.13) before it closes the connection, and goes on serving
//! everyone else. Each case is sent by a raw-socket client after a valid CONNECT.

mod common;

use axum_mqtt_broker::{BrokerConfig, EmbeddedBroker, Limits};
use bytes::Bytes;
use common::*;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, Connect, ConnectProperties, DisconnectReasonCode as Code, Packet, Publish,
    PublishProperties,
};
use rumqttc::v5::mqttbytes::QoS;

/// Connects a clean MQTT 5 client to `b` and returns it with the CONNACK.
async fn client(b: &EmbeddedBroker) -> (Raw5, ConnAck) {
    Raw5::connect(b.tcp_addr(), Raw5::clean(&unique("reason"))).await
}

fn publish(topic: &str, qos: QoS, pkid: u16, alias: Option<u16>) -> Packet {
    let mut p = Publish::new(topic, qos, Bytes::from_static(b"x"), None);
    p.pkid = pkid;
    p.properties = Some(PublishProperties {
        topic_alias: alias,
        ..Default::default()
    });
    Packet::Publish(p)
}

/// Sends `packets` and returns the reason code of the DISCONNECT that must follow.
async fn reason_for(c: Raw5, packets: Vec<Packet>) -> Code {
    let mut c = c;
    for p in packets {
        c.send(p).await;
    }
    let closed = c.until_closed().await;
    closed
        .disconnect
        .unwrap_or_else(|| panic!("closed without a DISCONNECT after {:?}", closed.before))
        .reason_code
}

#[tokio::test]
async fn a_topic_alias_of_0_or_above_the_maximum_is_topic_alias_invalid() {
    let b = broker();
    let (c, ack) = client(&b).await;
    assert_eq!(
        reason_for(c, vec![publish("a/b", QoS::AtMostOnce, 0, Some(0))]).await,
        Code::TopicAliasInvalid
    );
    let max = ack
        .properties
        .and_then(|p| p.topic_alias_max)
        .expect("the broker grants topic aliases");
    assert_eq!(max, Limits::default().max_topic_aliases);
    let (c, _) = client(&b).await;
    assert_eq!(
        reason_for(c, vec![publish("a/b", QoS::AtLeastOnce, 1, Some(max + 1))]).await,
        Code::TopicAliasInvalid
    );
    // The largest granted alias is fine.
    let (mut c, _) = client(&b).await;
    c.send(publish("a/b", QoS::AtLeastOnce, 1, Some(max))).await;
    assert!(matches!(c.next().await, Some(Packet::PubAck(_))));
    assert_serving(&b).await;
}

#[tokio::test]
async fn an_empty_topic_with_an_alias_never_set_is_a_protocol_error() {
    let b = broker();
    let (c, _) = client(&b).await;
    assert_eq!(
        reason_for(c, vec![publish("", QoS::AtMostOnce, 0, Some(3))]).await,
        Code::ProtocolError
    );
    assert_serving(&b).await;
}

#[tokio::test]
async fn a_packet_larger_than_the_maximum_is_packet_too_large() {
    let b = EmbeddedBroker::start(
        BrokerConfig::new("127.0.0.1:0".parse().unwrap()).with_max_packet_size(4096),
    )
    .expect("broker starts");
    let (mut c, ack) = client(&b).await;
    assert_eq!(ack.properties.and_then(|p| p.max_packet_size), Some(4096));
    let big = Publish::new("a/b", QoS::AtMostOnce, vec![b'x'; 8192], None);
    let mut bytes = bytes::BytesMut::new();
    Packet::Publish(big).write(&mut bytes, None).unwrap();
    c.send_bytes(&bytes).await;
    let closed = c.until_closed().await;
    assert_eq!(
        closed.disconnect.map(|d| d.reason_code),
        Some(Code::PacketTooLarge)
    );
    assert_serving(&b).await;
}

#[tokio::test]
async fn a_malformed_packet_is_malformed_packet() {
    let b = broker();
    let (mut c, _) = client(&b).await;
    // A PUBLISH whose property length runs past the end of the packet.
    let mut body = string(b"a/b");
    body.push(20);
    body.extend_from_slice(&[0x01, 0x01]);
    c.send_bytes(&packet(0x30, &body)).await;
    let closed = c.until_closed().await;
    assert_eq!(
        closed.disconnect.map(|d| d.reason_code),
        Some(Code::MalformedPacket)
    );
    assert_serving(&b).await;
}

#[tokio::test]
async fn a_second_connect_is_a_protocol_error() {
    let b = broker();
    let (c, _) = client(&b).await;
    let again = Packet::Connect(Raw5::clean(&unique("again")), None, None);
    assert_eq!(reason_for(c, vec![again]).await, Code::ProtocolError);
    assert_serving(&b).await;
}

#[tokio::test]
async fn a_publish_above_the_maximum_qos_is_qos_not_supported() {
    let b =
        EmbeddedBroker::start(BrokerConfig::new("127.0.0.1:0".parse().unwrap()).with_max_qos(1))
            .expect("broker starts");
    let (c, ack) = client(&b).await;
    assert_eq!(ack.properties.and_then(|p| p.max_qos), Some(1));
    assert_eq!(
        reason_for(c, vec![publish("a/b", QoS::ExactlyOnce, 1, None)]).await,
        Code::QoSNotSupported
    );
    assert_serving(&b).await;
}

#[tokio::test]
async fn more_unacknowledged_qos2_publishes_than_the_receive_maximum_is_receive_maximum_exceeded() {
    let b = broker();
    let (c, ack) = client(&b).await;
    let max = ack
        .properties
        .and_then(|p| p.receive_max)
        .unwrap_or(u16::MAX);
    // QoS 2 publishes stay in the broker's receive quota until their PUBREL, never sent here.
    let packets = (1..=max as u32 + 1)
        .map(|i| publish("a/b", QoS::ExactlyOnce, i as u16, None))
        .collect();
    assert_eq!(reason_for(c, packets).await, Code::ReceiveMaximumExceeded);
    assert_serving(&b).await;
}

#[tokio::test]
async fn a_client_that_announced_a_small_maximum_packet_size_is_told_in_a_disconnect_that_fits() {
    // 44 bytes: the CONNACK fits, the DISCONNECT with its reason string ("topic alias 1000 is
    // above the maximum 64") would not; the reason string is left out [MQTT-3.1.2-25].
    let b = broker();
    let connect = Connect {
        properties: Some(ConnectProperties {
            max_packet_size: Some(44),
            ..ConnectProperties::new()
        }),
        ..Raw5::clean(&unique("small"))
    };
    let (mut c, ack) = Raw5::connect(b.tcp_addr(), connect).await;
    assert_eq!(
        ack.code,
        rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success
    );
    c.send(publish("a/b", QoS::AtMostOnce, 0, Some(1000))).await;
    let d = c.until_closed().await.disconnect.expect("a DISCONNECT");
    assert_eq!(d.reason_code, Code::TopicAliasInvalid);
    assert_eq!(d.properties.and_then(|p| p.reason_string), None);
    // With room for it, the reason string says what was wrong.
    let (c, _) = client(&b).await;
    let mut c = c;
    c.send(publish("a/b", QoS::AtMostOnce, 0, Some(1000))).await;
    let d = c.until_closed().await.disconnect.expect("a DISCONNECT");
    let why = d
        .properties
        .and_then(|p| p.reason_string)
        .unwrap_or_default();
    assert!(why.contains("1000"), "{why:?}");
}

#[tokio::test]
async fn a_connection_taken_over_by_its_client_id_is_told_session_taken_over() {
    let b = broker();
    let id = unique("taken");
    let (old, _) = Raw5::connect(b.tcp_addr(), Raw5::clean(&id)).await;
    let (_new, ack) = Raw5::connect(b.tcp_addr(), Raw5::clean(&id)).await;
    assert_eq!(
        ack.code,
        rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success
    );
    let closed = old.until_closed().await;
    assert_eq!(
        closed.disconnect.map(|d| d.reason_code),
        Some(Code::SessionTakenOver)
    );
}

#[tokio::test]
async fn a_client_that_disconnects_is_not_sent_a_disconnect() {
    let b = broker();
    let (mut c, _) = client(&b).await;
    c.send(Packet::Disconnect(
        rumqttc::v5::mqttbytes::v5::Disconnect::new(Code::NormalDisconnection),
    ))
    .await;
    let closed = c.until_closed().await;
    assert!(
        closed.disconnect.is_none() && closed.before.is_empty(),
        "{closed:?}"
    );
}
