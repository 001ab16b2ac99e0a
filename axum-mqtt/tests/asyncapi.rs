//! `Router::asyncapi`: the routes as an AsyncAPI 3.0 document — one channel and one receive
//! operation per route, wildcards as channel parameters, QoS as the MQTT operation binding, the
//! shared group, and JSON Schema payloads for `route_json` routes (bytes for the others). The
//! official parser's verdict on a whole document is checked in CI (`app/e2e/asyncapi-validate.mjs`).

use axum_mqtt::extract::{Json, MqttRequest, Params, State, Topic};
use axum_mqtt::router::{RouteOptions, TraceLayer};
use axum_mqtt::{QoS, Router};
use serde_json::{json, Value};

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
struct Reading {
    /// Degrees Celsius.
    celsius: f64,
    unit: Option<String>,
}

async fn temperature(Params(_device): Params<String>, Json(_r): Json<Reading>) {}

fn channel<'a>(doc: &'a Value, id: &str) -> &'a Value {
    let c = &doc["channels"][id];
    assert!(c.is_object(), "no channel {id} in {doc:#}");
    c
}

fn operation<'a>(doc: &'a Value, id: &str) -> &'a Value {
    let o = &doc["operations"][format!("receive.{id}")];
    assert!(o.is_object(), "no operation for {id} in {doc:#}");
    o
}

fn sample() -> Router {
    let svc = tower::service_fn(|_req: MqttRequest| async { Ok::<_, std::io::Error>(()) });
    Router::new()
        .route_json(
            "sensors/{device}/temperature",
            RouteOptions::new().qos(QoS::ExactlyOnce),
            temperature,
        )
        .route("logs/{*rest}", |Topic(_t): Topic| async {})
        .route_with(
            "raw/+/x/#",
            RouteOptions::new().qos(QoS::AtMostOnce),
            || async {},
        )
        .route_service("svc", RouteOptions::new(), svc)
        .fallback(|| async {})
}

#[test]
fn one_channel_per_route_with_parameters_qos_and_payloads() {
    let doc = sample().asyncapi("Sensors", "1.2.3");

    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["info"], json!({"title": "Sensors", "version": "1.2.3"}));
    // The fallback subscribes nothing and is not a channel.
    assert_eq!(doc["channels"].as_object().unwrap().len(), 4);
    assert_eq!(doc["operations"].as_object().unwrap().len(), 4);

    let temp = channel(&doc, "sensors.device.temperature");
    assert_eq!(temp["address"], "sensors/{device}/temperature");
    assert_eq!(temp["x-mqtt-filter"], "sensors/+/temperature");
    assert_eq!(
        temp["parameters"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["device"]
    );
    let msg = &temp["messages"]["message"];
    assert_eq!(msg["contentType"], "application/json");
    assert_eq!(
        msg["payload"],
        json!({"$ref": "#/components/schemas/Reading"})
    );
    let schema = &doc["components"]["schemas"]["Reading"];
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["celsius"]["type"], "number");
    assert_eq!(
        schema["properties"]["celsius"]["description"],
        "Degrees Celsius."
    );
    assert_eq!(schema["required"], json!(["celsius"]));

    let op = operation(&doc, "sensors.device.temperature");
    assert_eq!(op["action"], "receive");
    assert_eq!(
        op["channel"]["$ref"],
        "#/channels/sensors.device.temperature"
    );
    assert_eq!(
        op["messages"][0]["$ref"],
        "#/channels/sensors.device.temperature/messages/message"
    );
    assert_eq!(op["bindings"]["mqtt"]["qos"], 2);
    assert!(op.get("x-mqtt-shared-group").is_none());

    let logs = channel(&doc, "logs.rest");
    assert_eq!(logs["address"], "logs/{rest}");
    assert!(logs["parameters"]["rest"]["description"]
        .as_str()
        .unwrap()
        .contains('#'));
    let bytes = json!({"type": "string", "format": "binary"});
    assert_eq!(logs["messages"]["message"]["payload"], bytes);
    assert_eq!(
        logs["messages"]["message"]["contentType"],
        "application/octet-stream"
    );
    assert_eq!(operation(&doc, "logs.rest")["bindings"]["mqtt"]["qos"], 1);

    let raw = channel(&doc, "raw.level2.x.rest");
    assert_eq!(raw["address"], "raw/{level2}/x/{rest}");
    assert_eq!(raw["x-mqtt-filter"], "raw/+/x/#");
    assert_eq!(
        operation(&doc, "raw.level2.x.rest")["bindings"]["mqtt"]["qos"],
        0
    );

    let svc = channel(&doc, "svc");
    assert!(svc.get("parameters").is_none());
    assert_eq!(svc["messages"]["message"]["payload"], bytes);
}

#[test]
fn shared_group_on_every_operation() {
    let router: Router = Router::new()
        .route("jobs/{id}", || async {})
        .route("$share/other/audit", || async {})
        .shared("workers");
    let doc = router.asyncapi("Jobs", "1");
    let jobs = operation(&doc, "jobs.id");
    assert_eq!(jobs["x-mqtt-shared-group"], "workers");
    assert_eq!(jobs["x-mqtt-subscription"], "$share/workers/jobs/+");
    // A pattern that names its own group keeps it, and its address is the topic part.
    assert_eq!(channel(&doc, "audit")["address"], "audit");
    assert_eq!(operation(&doc, "audit")["x-mqtt-shared-group"], "other");
}

#[test]
fn payload_survives_nest_layers_and_state() {
    async fn with_state(State(_n): State<u32>, Json(_r): Json<Vec<Reading>>) {}
    let inner: Router<u32> = Router::new().route_json("reading", RouteOptions::new(), with_state);
    let router: Router = Router::new()
        .nest("home/{room}", inner)
        .layer(TraceLayer::new())
        .with_state(7);
    let doc = router.asyncapi("Home", "1");
    let c = channel(&doc, "home.room.reading");
    assert_eq!(c["address"], "home/{room}/reading");
    // A Vec is described inline; its items refer to the named type.
    let payload = &c["messages"]["message"]["payload"];
    assert_eq!(payload["type"], "array");
    assert_eq!(payload["items"]["$ref"], "#/components/schemas/Reading");
    assert!(doc["components"]["schemas"]["Reading"].is_object());
}

#[test]
fn same_pattern_twice_gets_two_channels() {
    let router: Router = Router::new()
        .route("a/b", || async {})
        .route("a/b", || async {});
    let doc = router.asyncapi("Twice", "1");
    assert_eq!(channel(&doc, "a.b")["address"], "a/b");
    assert_eq!(channel(&doc, "a.b-2")["address"], "a/b");
    assert!(doc.get("components").is_none());
}

/// Written for CI's run of the official parser (`app/e2e/asyncapi-validate.mjs`, see `.ci/run`):
/// a shared router with every kind of route, a named JSON type, a nested one and a `Vec`.
#[test]
fn writes_a_document_for_the_official_parser() {
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Batch {
        readings: Vec<Reading>,
        source: Source,
    }
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    enum Source {
        Sensor { id: u32 },
        Manual,
    }
    async fn batch(Json(_b): Json<Batch>) {}
    async fn many(Json(_r): Json<Vec<Reading>>) {}
    let router = sample()
        .route_json("batches/{site}", RouteOptions::new(), batch)
        .route_json("many", RouteOptions::new(), many)
        .shared("workers");
    let doc = router.asyncapi("axum-mqtt test router", "0.1.0");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("asyncapi-router.json");
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    assert!(doc["components"]["schemas"]["Batch"].is_object());
    assert!(doc["components"]["schemas"]["Source"].is_object());
}
