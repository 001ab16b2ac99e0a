//! MQTT 5 as clients use it, on the embedded broker: properties across versions and transports,
//! session expiry, subscription options, topic aliases, wills with a delay.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use rumqttc::v5::mqttbytes::v5::{
    Filter, LastWill, LastWillProperties, PublishProperties, RetainForwardRule,
};
use rumqttc::v5::mqttbytes::QoS;

fn every_property(response_topic: &str) -> PublishProperties {
    PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(600),
        topic_alias: None,
        response_topic: Some(response_topic.to_string()),
        correlation_data: Some(Bytes::from_static(b"\x00corr\xff")),
        user_properties: vec![("k".into(), "v".into()), ("k".into(), "second".into())],
        subscription_identifiers: vec![],
        content_type: Some("application/json".into()),
    }
}

#[tokio::test]
async fn a_publish_with_every_property_reaches_31_5_and_websocket_subscribers() {
    let b = broker();
    let t = unique("props");
    let filter = format!("{t}/#");
    let mut v4_tcp = v4(v4_options(&b, Via::Tcp, &unique("p4t"))).await;
    let mut v4_ws = v4(v4_options(&b, Via::Ws, &unique("p4w"))).await;
    v4_tcp.subscribe(&filter, rumqttc::QoS::ExactlyOnce).await;
    v4_ws.subscribe(&filter, rumqttc::QoS::ExactlyOnce).await;
    let (mut v5_tcp, _) = v5(v5_options(&b, Via::Tcp, &unique("p5t"))).await;
    let (mut v5_ws, _) = v5(v5_options(&b, Via::Ws, &unique("p5w"))).await;
    v5_tcp
        .subscribe(Filter::new(&filter, QoS::ExactlyOnce))
        .await;
    v5_ws
        .subscribe(Filter::new(&filter, QoS::ExactlyOnce))
        .await;

    let (p, _) = v5(v5_options(&b, Via::Tcp, &unique("p5pub"))).await;
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let topic = format!("{t}/q{}", qos as u8);
        p.client
            .publish_with_properties(&topic, qos, false, "{\"x\":1}", every_property("reply/to"))
            .await
            .unwrap();
        for sub in [&mut v4_tcp, &mut v4_ws] {
            let m = sub.publish().await;
            assert_eq!(
                (&m.topic[..], &m.payload[..]),
                (topic.as_str(), &b"{\"x\":1}"[..])
            );
            assert_eq!(
                m.qos as u8, qos as u8,
                "delivered at min(publish, subscription) QoS"
            );
        }
        for sub in [&mut v5_tcp, &mut v5_ws] {
            let m = sub.publish().await;
            assert_eq!(&m.topic[..], topic.as_bytes());
            assert_eq!(m.qos, qos);
            let props = m.properties.expect("properties forwarded");
            let sent = every_property("reply/to");
            assert_eq!(
                props.user_properties, sent.user_properties,
                "order and duplicates kept"
            );
            assert_eq!(props.content_type, sent.content_type);
            assert_eq!(props.response_topic, sent.response_topic);
            assert_eq!(props.correlation_data, sent.correlation_data);
            assert_eq!(props.payload_format_indicator, Some(1));
            let expiry = props.message_expiry_interval.expect("expiry forwarded");
            assert!((590..=600).contains(&expiry), "remaining lifetime {expiry}");
        }
    }
    // The broker survived the mixed delivery (rumqttd 0.20 panicked here).
    assert_serving(&b).await;
}

#[tokio::test]
async fn qos_is_downgraded_to_the_subscription() {
    let b = broker();
    let t = unique("downgrade");
    let (mut sub, _) = v5(v5_options(&b, Via::Tcp, &unique("dg"))).await;
    sub.subscribe(Filter::new(format!("{t}/zero"), QoS::AtMostOnce))
        .await;
    sub.subscribe(Filter::new(format!("{t}/one"), QoS::AtLeastOnce))
        .await;
    let (p, _) = v5(v5_options(&b, Via::Tcp, &unique("dgp"))).await;
    for (topic, sent, expected) in [
        ("zero", QoS::ExactlyOnce, QoS::AtMostOnce),
        ("one", QoS::ExactlyOnce, QoS::AtLeastOnce),
        ("one", QoS::AtMostOnce, QoS::AtMostOnce),
    ] {
        p.client
            .publish(format!("{t}/{topic}"), sent, false, "x")
            .await
            .unwrap();
        assert_eq!(sub.publish().await.qos, expected, "{topic} at {sent:?}");
    }
}

#[tokio::test]
async fn session_expiry_keeps_a_session_and_its_messages_for_its_interval_only() {
    let b = broker();
    let t = unique("expiry");
    let id = unique("sess");
    let persistent = |expiry: u32| {
        let mut o = v5_options(&b, Via::Tcp, &id);
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(expiry));
        o
    };
    let (mut p, _) = v5(v5_options(&b, Via::Tcp, &unique("sessp"))).await;
    p.subscribe(Filter::new(format!("{t}-gone"), QoS::AtLeastOnce))
        .await;
    let mut first_connect = persistent(60);
    first_connect.set_last_will(LastWill::new(
        format!("{t}-gone"),
        "gone",
        QoS::AtLeastOnce,
        false,
        None,
    ));
    let (mut c, ack) = v5(first_connect).await;
    assert!(!ack.session_present);
    c.subscribe(Filter::new(format!("{t}/#"), QoS::AtLeastOnce))
        .await;
    c.kill().await;
    // Its will says the broker has seen the connection drop, so what follows is queued in the
    // offline session. Without this wait the publishes race the drop and the reconnect, and
    // rmqtt 0.24 can lose or reorder QoS 1 messages routed while it takes a session over
    // (fixed in vendor/rmqtt, tested in sessions.rs); a CI run failed so.
    assert_eq!(p.publish().await.payload, "gone");

    // Messages published while it is away are queued in its session: each is acknowledged
    // before it comes back.
    for i in 0..3 {
        p.client
            .publish(
                format!("{t}/m"),
                QoS::AtLeastOnce,
                false,
                format!("queued {i}"),
            )
            .await
            .unwrap();
    }
    for _ in 0..3 {
        first(&mut p.rx, "PUBACK", |x| {
            matches!(x, rumqttc::v5::mqttbytes::v5::Packet::PubAck(_)).then_some(())
        })
        .await;
    }
    let (mut c, ack) = v5(persistent(1)).await;
    assert!(
        ack.session_present,
        "reconnect within expiry resumes the session"
    );
    for i in 0..3 {
        assert_eq!(
            c.publish().await.payload,
            format!("queued {i}").into_bytes()
        );
    }
    // Now with a 1 s expiry: gone after it.
    c.kill().await;
    tokio::time::sleep(Duration::from_millis(2500)).await; // the interval under test
    let (_c, ack) = v5(persistent(1)).await;
    assert!(!ack.session_present, "session kept past its expiry");
}

#[tokio::test]
async fn subscription_options_no_local_retain_as_published_retain_handling() {
    let b = broker();
    let t = unique("subopts");
    let (mut me, _) = v5(v5_options(&b, Via::Tcp, &unique("me"))).await;
    let (mut other, _) = v5(v5_options(&b, Via::Tcp, &unique("other"))).await;

    // No local: my own publishes do not come back to me; others still get them.
    let mut f = Filter::new(format!("{t}/nl"), QoS::AtLeastOnce);
    f.nolocal = true;
    me.subscribe(f).await;
    other
        .subscribe(Filter::new(format!("{t}/nl"), QoS::AtLeastOnce))
        .await;
    me.client
        .publish(format!("{t}/nl"), QoS::AtLeastOnce, false, "mine")
        .await
        .unwrap();
    assert_eq!(other.publish().await.payload, "mine");
    other
        .client
        .publish(format!("{t}/nl"), QoS::AtLeastOnce, false, "theirs")
        .await
        .unwrap();
    assert_eq!(
        me.publish().await.payload,
        "theirs",
        "no-local let my own message through"
    );

    // Retain as published: the retain flag of a live message is kept only when asked.
    let mut keep = Filter::new(format!("{t}/rap"), QoS::AtLeastOnce);
    keep.preserve_retain = true;
    me.subscribe(keep).await;
    other
        .subscribe(Filter::new(format!("{t}/rap"), QoS::AtLeastOnce))
        .await;
    let (p, _) = v5(v5_options(&b, Via::Tcp, &unique("rap"))).await;
    p.client
        .publish(format!("{t}/rap"), QoS::AtLeastOnce, true, "live")
        .await
        .unwrap();
    assert!(
        me.publish().await.retain,
        "retain-as-published cleared the flag"
    );
    assert!(
        !other.publish().await.retain,
        "flag kept without retain-as-published"
    );

    // Retain handling: 0 sends retained messages on every subscribe, 1 only on a new one, 2 never.
    let rh = |rule| {
        let mut f = Filter::new(format!("{t}/rap"), QoS::AtLeastOnce);
        f.retain_forward_rule = rule;
        f
    };
    let (mut c, _) = v5(v5_options(&b, Via::Tcp, &unique("rh"))).await;
    c.subscribe(rh(RetainForwardRule::Never)).await;
    assert!(
        c.quiet_for(Duration::from_millis(500)).await.is_ok(),
        "rule 2 sent a retained message"
    );
    let (mut c, _) = v5(v5_options(&b, Via::Tcp, &unique("rh"))).await;
    c.subscribe(rh(RetainForwardRule::OnNewSubscribe)).await;
    assert!(c.publish().await.retain, "rule 1 on a new subscription");
    c.subscribe(rh(RetainForwardRule::OnNewSubscribe)).await;
    assert!(
        c.quiet_for(Duration::from_millis(500)).await.is_ok(),
        "rule 1 resent on an existing subscription"
    );
    c.subscribe(rh(RetainForwardRule::OnEverySubscribe)).await;
    assert!(
        c.publish().await.retain,
        "rule 0 on a repeated subscription"
    );
}

#[tokio::test]
async fn topic_aliases_from_the_client_are_resolved() {
    let b = broker();
    let t = unique("alias");
    let (mut sub, _) = v5(v5_options(&b, Via::Tcp, &unique("as"))).await;
    sub.subscribe(Filter::new(format!("{t}/#"), QoS::AtLeastOnce))
        .await;
    let mut o = v5_options(&b, Via::Tcp, &unique("ap"));
    o.set_topic_alias_max(Some(16));
    let (p, ack) = v5(o).await;
    let max = ack.properties.and_then(|p| p.topic_alias_max).unwrap_or(0);
    assert!(max >= 1, "broker topic alias maximum is {max}");
    let alias = |n| PublishProperties {
        topic_alias: Some(n),
        ..Default::default()
    };
    let topic = format!("{t}/long/topic/name");
    p.client
        .publish_with_properties(&topic, QoS::AtLeastOnce, false, "first", alias(1))
        .await
        .unwrap();
    p.client
        .publish_with_properties("", QoS::AtLeastOnce, false, "second", alias(1))
        .await
        .unwrap();
    for payload in ["first", "second"] {
        let m = sub.publish().await;
        assert_eq!(
            (&m.topic[..], &m.payload[..]),
            (topic.as_bytes(), payload.as_bytes())
        );
    }
}

#[tokio::test]
async fn wills_fire_on_a_dropped_connection_and_wait_for_their_delay() {
    let b = broker();
    let t = unique("will");
    let (mut watcher, _) = v5(v5_options(&b, Via::Tcp, &unique("ww"))).await;
    watcher
        .subscribe(Filter::new(format!("{t}/#"), QoS::AtLeastOnce))
        .await;
    let will = |name: &str, delay: Option<u32>| {
        LastWill::new(
            format!("{t}/{name}"),
            format!("{name} gone"),
            QoS::AtLeastOnce,
            false,
            Some(LastWillProperties {
                delay_interval: delay,
                payload_format_indicator: None,
                message_expiry_interval: None,
                content_type: None,
                response_topic: None,
                correlation_data: None,
                user_properties: vec![("why".into(), "test".into())],
            }),
        )
    };

    // No delay: published as soon as the connection drops.
    let mut o = v5_options(&b, Via::Tcp, &unique("w0"));
    o.set_last_will(will("now", None));
    let (c, _) = v5(o).await;
    c.kill().await;
    let m = watcher.publish().await;
    assert_eq!(m.payload, "now gone");
    let props = m.properties.expect("will properties");
    assert_eq!(props.user_properties, vec![("why".into(), "test".into())]);

    // A 2 s delay (with a session that outlives it): not before the delay.
    let mut o = v5_options(&b, Via::Tcp, &unique("w2"));
    o.set_last_will(will("later", Some(2)));
    o.set_session_expiry_interval(Some(30));
    let (c, _) = v5(o).await;
    let dropped = Instant::now();
    c.kill().await;
    let m = watcher.publish().await;
    assert_eq!(m.payload, "later gone");
    let waited = dropped.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "will delay not honoured: {waited:?}"
    );

    // A 3.1.1 will: no properties, published on a dropped connection.
    let mut o = v4_options(&b, Via::Tcp, &unique("w4"));
    o.set_last_will(rumqttc::LastWill::new(
        format!("{t}/v4"),
        "v4 gone",
        rumqttc::QoS::AtLeastOnce,
        false,
    ));
    let c = v4(o).await;
    c.kill().await;
    assert_eq!(watcher.publish().await.payload, "v4 gone");
}
