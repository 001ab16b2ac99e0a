//! Issue 12, defect 1: a tab that subscribes to a filter the app already holds (`/flask/mqtt`,
//! held for good) gets the retained message, as `mosquitto_sub` would; a tab already subscribed
//! does not get it twice.

mod common;

use axum_mqtt::QoS;
use common::*;
use serde_json::json;

#[tokio::test]
async fn a_new_tab_gets_the_retained_message_of_a_held_filter() {
    let app = App::start(&[], &[]).await;
    let other = mqtt_client(&app).await;
    other
        .publish("/flask/mqtt", "retained hello")
        .qos(QoS::AtLeastOnce)
        .retain(true)
        .await
        .unwrap();

    let subscribe = json!({"op": "subscribe", "id": "s", "filter": "/flask/mqtt", "qos": 1});
    let mut first = ws_connect(&app, "").await;
    assert_eq!(op(&mut first, subscribe.clone()).await["type"], "ack");
    let m = next_of(&mut first, "message").await;
    assert_eq!(
        (m["payload"].as_str(), m["retain"].as_bool()),
        (Some("retained hello"), Some(true)),
        "{m}"
    );

    let mut second = ws_connect(&app, "").await;
    assert_eq!(op(&mut second, subscribe).await["type"], "ack");
    let m = next_of(&mut second, "message").await;
    assert_eq!(
        (m["payload"].as_str(), m["retain"].as_bool()),
        (Some("retained hello"), Some(true)),
        "{m}"
    );

    // The next message either tab sees is the live one: no retained duplicate for the first tab.
    other
        .publish("/flask/mqtt", "live")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    for tab in [&mut first, &mut second] {
        let m = next_of(tab, "message").await;
        assert_eq!(
            (m["payload"].as_str(), m["retain"].as_bool()),
            (Some("live"), Some(false)),
            "{m}"
        );
    }
}
