//! What the broker refuses comes back as its reason code ([`Error::Refused`] with a
//! [`ReasonCode`]), from the embedded broker, which refuses topics and filters deeper than its
//! `max_topic_levels` (128).

mod common;

use axum_mqtt::{Error, Mqtt, Protocol, QoS, ReasonCode};
use axum_mqtt_testkit::unique;
use common::*;

/// A topic (or filter) of `levels` levels in all, under a fresh prefix.
fn deep(levels: usize) -> String {
    let prefix = unique("deep");
    let rest = levels - prefix.split('/').count();
    format!("{prefix}/{}", vec!["l"; rest].join("/"))
}

#[tokio::test]
async fn a_refused_publish_fails_with_the_brokers_reason_code() {
    let mqtt = connected(Mqtt::builder(embedded_config(Protocol::V5))).await;
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let e = mqtt
            .publish(deep(200), "too deep")
            .qos(qos)
            .await
            .expect_err("200 levels are over the broker's limit");
        match &e {
            // rmqtt answers its ACL refusal with Not authorized.
            Error::Refused(code) => assert_eq!(*code, ReasonCode::new(0x87), "{qos:?}: {e}"),
            other => panic!("{qos:?}: expected a refusal, got {other:?}"),
        }
        assert_eq!(e.to_string(), "the broker refused: not authorized (0x87)");
        // The limit itself is fine: the refusal is the broker's, for this topic only.
        mqtt.publish(deep(128), "at the limit")
            .qos(qos)
            .await
            .unwrap_or_else(|e| panic!("{qos:?}: {e}"));
    }
    mqtt.shutdown(WAIT).await;
}

#[tokio::test]
async fn a_refused_subscription_fails_with_the_code_and_is_not_kept() {
    for (protocol, expected) in [(Protocol::V5, None), (Protocol::V311, Some(0x80))] {
        let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let mqtt = connected(
            Mqtt::builder(embedded_config(protocol)).on_subscribe(move |_, s| {
                let _ = tx.send(s);
                async {}
            }),
        )
        .await;
        let filter = deep(200);
        let code = match mqtt.subscribe(&filter, QoS::AtLeastOnce).await {
            Err(Error::Refused(code)) => code,
            other => panic!("{protocol:?}: expected a refusal, got {other:?}"),
        };
        assert!(code.get() >= 0x80, "{protocol:?}: {code}");
        if let Some(expected) = expected {
            // MQTT 3.1.1 has one failure code.
            assert_eq!(code.get(), expected, "{protocol:?}");
        }
        assert!(
            !mqtt.subscriptions().iter().any(|(f, _)| *f == filter),
            "{protocol:?}: a refused filter must not be restored on reconnect"
        );
        // `on_subscribe` hears the same code for the filter.
        let ev = loop {
            let s = tokio::time::timeout(WAIT, events.recv())
                .await
                .expect("on_subscribe for the refused filter")
                .expect("callbacks running");
            if s.results.iter().any(|(f, _)| *f == filter) {
                break s.results;
            }
        };
        assert_eq!(ev, vec![(filter.clone(), Err(code))], "{protocol:?}");
        // A stream on the filter fails the same way.
        match mqtt.stream(&filter, QoS::AtLeastOnce, 4).await {
            Err(Error::Refused(c)) => assert_eq!(c, code, "{protocol:?}"),
            other => panic!(
                "{protocol:?}: expected a refusal, got {:?}",
                other.map(|_| ())
            ),
        }
        mqtt.shutdown(WAIT).await;
    }
}
