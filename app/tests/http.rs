//! The HTTP API of the real app binary: every endpoint and every bad input, token and allow-lists.

mod common;

use std::time::{Duration, Instant};

use axum_mqtt::QoS;
use common::*;
use serde_json::{json, Value};

async fn post(app: &App, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(app.url("/publish"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(app: &App, path: &str) -> (u16, Value) {
    let r = reqwest::get(app.url(path)).await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_is_the_flask_tutorial_endpoint_and_is_logged_and_kept() {
    let app = App::start(&[], &[]).await;
    let sub = mqtt_client(&app).await;
    let mut s = sub
        .stream("/flask/mqtt", QoS::AtLeastOnce, 16)
        .await
        .unwrap();

    let (status, body) = post(&app, r#"{"topic": "/flask/mqtt", "msg": "hello"}"#).await;
    assert_eq!((status, body["code"].clone()), (200, json!(0)), "{body}");
    let m = tokio::time::timeout(WAIT, s.recv()).await.unwrap().unwrap();
    assert_eq!(m.payload_str(), Some("hello"));
    app.wait_line(
        |l| l == "Received message on topic: /flask/mqtt with payload: hello",
        WAIT,
    )
    .await;

    // Extensions: qos (acked, so a packet id), retain, binary payloads.
    let (status, body) = post(
        &app,
        r#"{"topic": "/flask/mqtt", "payload_base64": "/wA=", "qos": 1}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["mid"].as_u64().unwrap() > 0, "{body}");
    let m = tokio::time::timeout(WAIT, s.recv()).await.unwrap().unwrap();
    assert_eq!(m.payload().as_ref(), &[0xff, 0x00]);

    // The ring buffer: newest first, limit honoured.
    let deadline = std::time::Instant::now() + WAIT;
    let body = loop {
        let (status, body) = get(&app, "/api/messages").await;
        assert_eq!(status, 200);
        if body["count"] == 2 || std::time::Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(body["count"], 2, "{body}");
    assert_eq!(body["messages"][0]["payload_base64"], "/wA=");
    assert_eq!(body["messages"][1]["payload"], "hello");
    assert_eq!(body["messages"][1]["topic"], "/flask/mqtt");
    assert!(body["messages"][0]["id"].as_u64() > body["messages"][1]["id"].as_u64());
    let (_, body) = get(&app, "/api/messages?limit=99999").await;
    assert_eq!(body["count"], 2, "a limit past the history is capped");
    let (_, body) = get(&app, "/api/messages?limit=1").await;
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    for bad in ["0", "abc", "100001", "-1"] {
        let (status, body) = get(&app, &format!("/api/messages?limit={bad}")).await;
        assert_eq!(
            (status, body["kind"].as_str()),
            (400, Some("invalid_limit")),
            "{bad}"
        );
    }

    // Retained messages reach a later subscriber.
    let topic = unique("retained");
    let (status, _) = post(
        &app,
        json!({"topic": topic, "msg": "kept", "retain": true, "qos": 1}).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let mut late = sub.stream(&topic, QoS::AtLeastOnce, 4).await.unwrap();
    let m = tokio::time::timeout(WAIT, late.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(m.retain());
    assert_eq!(m.payload_str(), Some("kept"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_publish_gets_a_precise_4xx_and_the_app_keeps_serving() {
    let app = App::start(&["--max-payload", "1024"], &[]).await;
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "invalid_json"),
        (vec![0xff, 0xfe, b'{'], 400, "invalid_utf8"),
        (b"[1, 2]".to_vec(), 422, "invalid_body"),
        (br#"{"msg": "no topic"}"#.to_vec(), 422, "invalid_body"),
        (br#"{"topic": "a/b"}"#.to_vec(), 422, "invalid_payload"),
        (
            br#"{"topic": "a/+", "msg": "x"}"#.to_vec(),
            422,
            "invalid_topic",
        ),
        (
            br#"{"topic": "a/#", "msg": "x"}"#.to_vec(),
            422,
            "invalid_topic",
        ),
        (
            br#"{"topic": "", "msg": "x"}"#.to_vec(),
            422,
            "invalid_topic",
        ),
        (
            br#"{"topic": "a", "msg": "x", "qos": 3}"#.to_vec(),
            422,
            "invalid_qos",
        ),
        (
            br#"{"topic": "a", "msg": "x", "qos": "high"}"#.to_vec(),
            422,
            "invalid_qos",
        ),
        (br#"{"topic": 5, "msg": "x"}"#.to_vec(), 422, "invalid_body"),
        (
            br#"{"topic": "a", "msg": "x", "payload": "y"}"#.to_vec(),
            422,
            "invalid_payload",
        ),
        (
            br#"{"topic": "a", "payload_base64": "%%%"}"#.to_vec(),
            422,
            "invalid_payload",
        ),
        (
            json!({"topic": "a", "msg": "x".repeat(1025)})
                .to_string()
                .into_bytes(),
            413,
            "payload_too_large",
        ),
        (
            json!({"topic": "a".repeat(66_000), "msg": "x"})
                .to_string()
                .into_bytes(),
            422,
            "invalid_topic",
        ),
        // Larger than the whole-body limit (2 × max payload + 64 KiB).
        (vec![b' '; 200_000], 413, "body_too_large"),
    ];
    for (body, status, kind) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let (got, v) = post(&app, body).await;
        assert_eq!(got, status, "{shown}: {v}");
        assert_eq!(v["code"], 1, "{shown}: {v}");
        assert_eq!(v["kind"], kind, "{shown}: {v}");
        assert!(!v["error"].as_str().unwrap().is_empty());
    }
    let (status, _) = post(&app, r#"{"topic": "still/ok", "msg": "fine"}"#).await;
    assert_eq!(status, 200);
    // A topic starting with a non-ASCII character used to kill rumqttd 0.20, the embedded broker before rmqtt.
    for _ in 0..2 {
        let (status, v) = post(&app, r#"{"topic": "Ärger/x", "msg": "x", "qos": 1}"#).await;
        assert_eq!(status, 200, "{v}");
    }

    // Unknown routes and methods answer JSON too.
    let (status, v) = get(&app, "/nope").await;
    assert_eq!((status, v["kind"].as_str()), (404, Some("not_found")));
    let (status, v) = get(&app, "/publish").await;
    assert_eq!(
        (status, v["kind"].as_str()),
        (405, Some("method_not_allowed"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_the_api_and_the_websocket() {
    let app = App::start(&["--token", "s3cret"], &[]).await;
    let http = reqwest::Client::new();
    let body = r#"{"topic": "t/token", "msg": "x"}"#;
    let r = http
        .post(app.url("/publish"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"axum-mqtt-app\""
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["kind"], "missing_token");
    let r = http
        .post(app.url("/publish"))
        .bearer_auth("wrong")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["kind"], "invalid_token");
    let r = http
        .post(app.url("/publish"))
        .bearer_auth("s3cret")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(app.url("/publish?token=s3cret"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for path in [
        "/api/messages",
        "/api/info",
        "/metrics",
        "/asyncapi.json",
        "/events?filter=a",
    ] {
        assert_eq!(get(&app, path).await.0, 401, "{path}");
    }
    // The page, its assets, health and the API description stay open.
    for path in [
        "/",
        "/assets/app.js",
        "/assets/style.css",
        "/healthz",
        "/openapi.json",
    ] {
        let r = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let r = http
        .get(app.url("/api/info"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["token_required"], true);

    // WebSocket: browsers cannot set headers, so ?token= is accepted.
    match tokio_tungstenite::connect_async(app.ws_url("")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    match tokio_tungstenite::connect_async(app.ws_url("?token=nope")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    let mut ws = ws_connect(&app, "?token=s3cret").await;
    let f = op(&mut ws, json!({"op": "subscribe", "filter": "t/token"})).await;
    assert_eq!(f["type"], "ack", "{f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_lists_refuse_with_403_over_http_sse_and_websocket() {
    let app = App::start(
        &[
            "--allow-publish",
            "open/#,lights/+/set",
            "--allow-subscribe",
            "open/#",
        ],
        &[],
    )
    .await;
    let (status, v) = post(&app, r#"{"topic": "admin/reboot", "msg": "now"}"#).await;
    assert_eq!(
        (status, v["kind"].as_str()),
        (403, Some("topic_not_allowed")),
        "{v}"
    );
    assert!(v["error"].as_str().unwrap().contains("admin/reboot"));
    assert_eq!(
        post(&app, r#"{"topic": "open/a", "msg": "x"}"#).await.0,
        200
    );
    assert_eq!(
        post(&app, r#"{"topic": "lights/k/set", "msg": "on"}"#)
            .await
            .0,
        200
    );
    assert_eq!(
        post(&app, r#"{"topic": "lights/k/get", "msg": "on"}"#)
            .await
            .0,
        403
    );

    for (filter, status) in [
        ("%23", 403),
        ("open/%23", 200),
        ("open/+/x", 200),
        ("other", 403),
    ] {
        let r = reqwest::get(app.url(&format!("/events?filter={filter}")))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{filter}");
        if status == 403 {
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["kind"], "filter_not_allowed");
        }
    }

    let mut ws = ws_connect(&app, "").await;
    let f = op(&mut ws, json!({"op": "subscribe", "id": 1, "filter": "#"})).await;
    assert_eq!(
        (f["type"].as_str(), f["status"].as_u64()),
        (Some("error"), Some(403)),
        "{f}"
    );
    assert_eq!(f["kind"], "filter_not_allowed");
    assert_eq!(f["id"], 1);
    let f = op(
        &mut ws,
        json!({"op": "publish", "id": 2, "topic": "admin/x", "payload": "y"}),
    )
    .await;
    assert_eq!(
        (f["kind"].as_str(), f["status"].as_u64()),
        (Some("topic_not_allowed"), Some(403)),
        "{f}"
    );
    let f = op(&mut ws, json!({"op": "subscribe", "filter": "open/+"})).await;
    assert_eq!(f["type"], "ack", "{f}");

    let (_, info) = get(&app, "/api/info").await;
    assert_eq!(info["allow_publish"], json!(["open/#", "lights/+/set"]));
    assert_eq!(info["allow_subscribe"], json!(["open/#"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_pages_cannot_publish() {
    let app = App::start(&[], &[]).await;
    let http = reqwest::Client::new();
    let body = r#"{"topic": "t/origin", "msg": "x"}"#;
    let r = http
        .post(app.url("/publish"))
        .header("origin", "http://evil.example")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["kind"], "cross_origin");
    let r = http
        .post(app.url("/publish"))
        .header("origin", app.base.clone())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Reads SSE chunks until `pred` holds for the text so far.
async fn read_sse(resp: &mut reqwest::Response, pred: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    tokio::time::timeout(WAIT, async {
        while !pred(&text) {
            let chunk = resp.chunk().await.expect("chunk").expect("stream ended");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("SSE text so far: {text}"));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_streams_messages_published_via_publish() {
    let app = App::start(&[], &[]).await;
    let base = unique("sse");
    let mut resp = reqwest::get(app.url(&format!("/events?filter={base}/%23&qos=1")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    // The stream is subscribed once the response started: publish now.
    let (status, _) = post(
        &app,
        json!({"topic": format!("{base}/a"), "msg": "via-sse", "qos": 1}).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let text = read_sse(&mut resp, |t| t.contains("via-sse")).await;
    assert!(text.contains("event: message"), "{text}");
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line");
    let v: Value = serde_json::from_str(data).unwrap();
    assert_eq!(v["topic"], format!("{base}/a"));
    assert_eq!(v["payload"], "via-sse");

    assert_eq!(sample(&scrape(&app).await, "app_sse_clients", &[]), 1.0);

    for (query, status, kind) in [
        ("", 400, "missing_filter"),
        ("?filter=a/%23/b", 422, "invalid_filter"),
        ("?filter=", 422, "invalid_filter"),
        ("?filter=a&qos=3", 422, "invalid_qos"),
    ] {
        let (got, v) = get(&app, &format!("/events{query}")).await;
        assert_eq!(
            (got, v["kind"].as_str()),
            (status, Some(kind)),
            "{query}: {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_info_openapi_and_the_page() {
    let app = App::start(&[], &[]).await;
    assert_eq!(post(&app, r#"{"topic": "t/m", "msg": "1"}"#).await.0, 200);
    assert_eq!(post(&app, r#"{"topic": "t/+", "msg": "1"}"#).await.0, 422);
    // The app subscribes to /flask/mqtt: this one comes back and runs its route.
    assert_eq!(
        post(&app, r#"{"topic": "/flask/mqtt", "msg": "2", "qos": 1}"#)
            .await
            .0,
        200
    );
    let _ws = ws_connect(&app, "").await;

    let r = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    // Wait for the route to have run (the message comes back from the broker).
    let deadline = Instant::now() + WAIT;
    let s = loop {
        let s = scrape(&app).await;
        let handled = [("route", "/flask/mqtt"), ("outcome", "handled")];
        if sample(&s, "mqtt_handler_calls_total", &handled) >= 1.0 {
            break s;
        }
        assert!(Instant::now() < deadline, "the route never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for (name, labels, want) in [
        ("mqtt_connected", &[][..], 1.0),
        ("app_http_publishes_total", &[], 2.0),
        ("app_http_publish_errors_total", &[], 1.0),
        ("app_ws_clients", &[], 1.0),
        ("app_history_received_total", &[], 1.0),
        ("mqtt_messages_published_total", &[("qos", "0")], 1.0),
        ("mqtt_messages_published_total", &[("qos", "1")], 1.0),
        ("mqtt_messages_received_total", &[("qos", "1")], 1.0),
        (
            "mqtt_handler_calls_total",
            &[("route", "/flask/mqtt"), ("outcome", "handled")],
            1.0,
        ),
    ] {
        assert_eq!(sample(&s, name, labels), want, "{name} {labels:?}");
    }
    let kind = |name: &str| {
        s.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.kind)
            .unwrap_or_else(|| panic!("{name} is not exported"))
    };
    use prom_text_format_parser::Type;
    assert_eq!(kind("app_ws_messages_dropped_total"), Type::Counter);
    assert_eq!(kind("mqtt_messages_received_total"), Type::Counter);
    assert_eq!(kind("app_ws_clients"), Type::Gauge);
    assert_eq!(kind("mqtt_handler_duration_seconds"), Type::Histogram);
    assert!(sample(&s, "tokio_alive_tasks", &[]) > 0.0);

    let (status, h) = get(&app, "/healthz").await;
    assert_eq!((status, h["status"].as_str()), (200, Some("connected")));
    // The broker in use, as `host:port` (with a failover list: which node).
    let broker = h["broker"].as_str().unwrap_or_default();
    assert!(broker.starts_with("127.0.0.1:"), "{h}");

    let (status, info) = get(&app, "/api/info").await;
    assert_eq!(status, 200);
    assert_eq!(info["subscriptions"], json!(["/flask/mqtt"]));
    // One port for MQTT 3.1.1 and 5, one for WebSocket.
    let listeners = info["embedded_broker"].as_array().unwrap();
    assert_eq!(listeners.len(), 2, "{info}");
    assert_eq!(listeners[0]["protocol"], "MQTT 3.1.1 and 5", "{info}");
    assert_eq!(info["token_required"], false);

    let (status, doc) = get(&app, "/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/publish",
        "/api/messages",
        "/api/info",
        "/events",
        "/healthz",
        "/metrics",
    ] {
        assert!(paths.contains_key(p), "{p}");
    }
    // Every documented GET answers one of its documented statuses.
    for (path, item) in paths {
        if let Some(op) = item.get("get") {
            if path == "/events" {
                continue; // endless; tested above
            }
            let r = reqwest::get(app.url(path)).await.unwrap();
            let code = r.status().as_str().to_string();
            assert!(
                op["responses"].get(&code).is_some(),
                "{path} answered {code}"
            );
        }
    }
    // Every $ref points at a schema that exists.
    let raw = doc.to_string();
    for part in raw.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        assert!(doc["components"]["schemas"].get(name).is_some(), "{name}");
    }

    let r = reqwest::get(app.url("/")).await.unwrap();
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    let html = r.text().await.unwrap();
    assert!(
        html.contains("/assets/app.js") && !html.contains("https://"),
        "no CDN"
    );
}
