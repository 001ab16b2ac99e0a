//! `TestBroker` as a user of the library meets it: a route handler tested end to end in a
//! `#[tokio::test]` (device publishes → handler → reply published), with the errors a failing test
//! would show, and brokers of parallel tests kept apart.

use std::time::Duration;

use axum_mqtt::extract::{Json, Params};
use axum_mqtt::{Mqtt, Protocol, Router, Status};
use axum_mqtt_testkit::{TestBroker, TestError};

const WAIT: Duration = Duration::from_secs(10);

#[derive(serde::Deserialize)]
struct Reading {
    celsius: f64,
}

/// The handler under test: a reading above 30 °C raises `alerts/<device>`.
async fn temperature(
    mqtt: Mqtt,
    Params(device): Params<String>,
    Json(r): Json<Reading>,
) -> Result<(), axum_mqtt::Error> {
    if r.celsius > 30.0 {
        mqtt.publish(format!("alerts/{device}"), format!("{:.1}", r.celsius))
            .await?;
    }
    Ok(())
}

/// The app under test, connected to the test broker.
async fn app(broker: &TestBroker, protocol: Protocol) -> Mqtt {
    let mut cfg = broker.config();
    cfg.protocol = protocol;
    let routes = Router::new().route("sensors/{device}/temperature", temperature);
    let app = broker
        .start_app(Mqtt::builder(cfg).router(routes))
        .await
        .expect("start the app");
    assert_eq!(app.state().status, Status::Connected);
    app
}

#[tokio::test]
async fn a_route_handler_tested_end_to_end() -> Result<(), Box<dyn std::error::Error>> {
    let broker = TestBroker::start().await?;
    let _app = app(&broker, Protocol::V5).await;

    let mut alerts = broker.subscribe("alerts/#").await?;
    broker
        .publish("sensors/boiler/temperature", r#"{"celsius": 31.5}"#)
        .await?;
    let alert = alerts.next_message(WAIT).await?;
    assert_eq!(alert.topic(), "alerts/boiler");
    assert_eq!(alert.payload_str(), Some("31.5"));

    // Below the threshold, or not JSON: no alert.
    broker
        .publish("sensors/boiler/temperature", r#"{"celsius": 20}"#)
        .await?;
    broker.publish("sensors/boiler/temperature", "hot!").await?;
    alerts.expect_none(Duration::from_millis(300)).await?;
    broker.stop().await;
    Ok(())
}

#[tokio::test]
async fn failures_say_what_was_waited_for() -> Result<(), Box<dyn std::error::Error>> {
    let broker = TestBroker::start().await?;
    let _app = app(&broker, Protocol::V311).await;
    let mut alerts = broker.subscribe("alerts/#").await?;

    let err = alerts
        .next_message(Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(matches!(err, TestError::Timeout { .. }), "{err:?}");
    assert_eq!(err.to_string(), r#"no message on "alerts/#" within 100ms"#);

    broker
        .publish("sensors/attic/temperature", r#"{"celsius": 40}"#)
        .await?;
    let err = alerts.expect_none(WAIT).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"unexpected message on "alerts/attic" (subscribed to "alerts/#"): "40.0""#
    );

    assert!(matches!(
        broker.subscribe("a/#/b").await.unwrap_err(),
        TestError::Mqtt(axum_mqtt::Error::InvalidFilter { .. })
    ));
    assert!(matches!(
        broker.publish("a/+", "x").await.unwrap_err(),
        TestError::Mqtt(_)
    ));
    Ok(())
}

#[tokio::test]
async fn each_test_broker_is_its_own() -> Result<(), Box<dyn std::error::Error>> {
    let (a, b) = (TestBroker::start().await?, TestBroker::start().await?);
    assert_ne!(a.url(), b.url());
    let mut on_b = b.subscribe("shared/topic").await?;
    let mut on_a = a.subscribe("shared/topic").await?;
    a.publish("shared/topic", "for a").await?;
    assert_eq!(on_a.next_message(WAIT).await?.payload_str(), Some("for a"));
    on_b.expect_none(Duration::from_millis(200)).await?;
    Ok(())
}

#[tokio::test]
async fn an_app_that_cannot_start_is_a_typed_error() -> Result<(), Box<dyn std::error::Error>> {
    let broker = TestBroker::start().await?;
    let bad = Router::new().route("a/#/b", || async {});
    let err = broker
        .start_app(Mqtt::builder(broker.config()).router(bad))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TestError::AppStart(axum_mqtt::StartError::Router(
                axum_mqtt::RouterError::InvalidFilter { .. }
            ))
        ),
        "{err:?}"
    );
    Ok(())
}
