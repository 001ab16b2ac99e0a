//! `GET /asyncapi.json` of the real app binary: one channel per `--subscribe` filter, the broker the
//! app's client uses as the server. (CI also runs the official parser on it:
//! `app/e2e/asyncapi-validate.mjs`.)

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_describes_the_subscribed_filters() {
    let app = App::start(&["--subscribe", "sensors/{device}/temperature,logs/#"], &[]).await;
    let r = reqwest::get(app.url("/asyncapi.json"))
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc: Value = r.json().await.expect("json");
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["info"]["title"], "axum-mqtt-app");
    let channels = doc["channels"].as_object().unwrap();
    assert_eq!(channels.len(), 2, "{doc:#}");
    let temp = &doc["channels"]["sensors.device.temperature"];
    assert_eq!(temp["address"], "sensors/{device}/temperature");
    assert!(temp["parameters"]["device"].is_object());
    assert_eq!(doc["channels"]["logs.rest"]["address"], "logs/{rest}");
    assert_eq!(
        doc["operations"]["receive.logs.rest"]["bindings"]["mqtt"]["qos"],
        1
    );
    assert_eq!(
        doc["servers"]["broker"],
        json!({"host": format!("127.0.0.1:{}", app.broker_port), "protocol": "mqtt"})
    );
}
