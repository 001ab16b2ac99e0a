//! Sessions that outlive their connection, taken over by a new one while messages for them flow:
//! a device whose connection died without the broker noticing reconnects at once. rmqtt 0.24.0
//! lost or reordered QoS 1 messages there (4 runs of the 5 test in 4 failed;
//! vendor/rmqtt/PATCHES.md has where they went); every one must arrive, once, in order.

mod common;

use std::time::Duration;

use common::*;
use rumqttc::v5::mqttbytes::v5::Filter;
use rumqttc::v5::mqttbytes::QoS;

const ROUNDS: usize = 20;
/// Between rounds: a broker idle for a moment wakes slower to the drop, which widens the window the
/// publishes race into (without it the crates.io rmqtt failed 1 run in 4 instead of 4 in 4). Not
/// a wait for anything: every round waits on its messages.
const IDLE: Duration = Duration::from_millis(100);

#[tokio::test]
async fn a_5_session_taken_over_while_messages_flow_loses_none_and_keeps_their_order() {
    let b = broker();
    for round in 0..ROUNDS {
        let t = unique("takeover");
        let id = unique("device");
        let persistent = || {
            let mut o = v5_options(&b, Via::Tcp, &id);
            o.set_clean_start(false);
            o.set_session_expiry_interval(Some(60));
            o
        };
        let (mut c, _) = v5(persistent()).await;
        c.subscribe(Filter::new(format!("{t}/#"), QoS::AtLeastOnce))
            .await;
        c.kill().await;
        // No wait for the broker to see the drop: the publishes race it and the takeover (a
        // publisher connected after the drop hits the window most often).
        let (p, _) = v5(v5_options(&b, Via::Tcp, &unique("takeover-pub"))).await;
        let sent: Vec<String> = (0..3).map(|i| format!("m{i}")).collect();
        for m in &sent {
            p.client
                .publish(format!("{t}/m"), QoS::AtLeastOnce, false, m.clone())
                .await
                .unwrap();
        }
        let (mut c, ack) = v5(persistent()).await;
        assert!(ack.session_present, "round {round}");
        let mut got = Vec::new();
        for _ in &sent {
            got.push(String::from_utf8_lossy(&c.publish().await.payload).into_owned());
        }
        assert_eq!(got, sent, "round {round}: lost or out of order");
        tokio::time::sleep(IDLE).await;
    }
}

#[tokio::test]
async fn a_3_1_1_session_taken_over_while_messages_flow_loses_none_and_keeps_their_order() {
    let b = broker();
    for round in 0..ROUNDS {
        let t = unique("takeover4");
        let id = unique("device4");
        let persistent = || {
            let mut o = v4_options(&b, Via::Tcp, &id);
            o.set_clean_session(false);
            o
        };
        let mut c = v4(persistent()).await;
        c.subscribe(&format!("{t}/#"), rumqttc::QoS::AtLeastOnce)
            .await;
        c.kill().await;
        let p = v4(v4_options(&b, Via::Tcp, &unique("takeover4-pub"))).await;
        let sent: Vec<String> = (0..3).map(|i| format!("m{i}")).collect();
        for m in &sent {
            p.client
                .publish(
                    format!("{t}/m"),
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    m.clone(),
                )
                .await
                .unwrap();
        }
        let mut c = v4(persistent()).await;
        let mut got = Vec::new();
        for _ in &sent {
            got.push(String::from_utf8_lossy(&c.publish().await.payload).into_owned());
        }
        assert_eq!(got, sent, "round {round}: lost or out of order");
        tokio::time::sleep(IDLE).await;
    }
}
