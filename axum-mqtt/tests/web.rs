//! The axum pieces through a real HTTP server: POST /publish (success and every bad input), /healthz,
//! SSE, streams, `Mqtt` as part of an app state.

mod common;

use std::time::Duration;

use axum::extract::FromRef;
use axum::routing::{get, post};
use axum_mqtt::web::{self, PublishEndpoint};
use axum_mqtt::{Mqtt, MqttConfig, Protocol, QoS};
use axum_mqtt_testkit::{closed_port, unique};
use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

#[derive(Clone)]
struct AppState {
    mqtt: Mqtt,
}

impl FromRef<AppState> for Mqtt {
    fn from_ref(s: &AppState) -> Mqtt {
        s.mqtt.clone()
    }
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

async fn post_raw(url: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn publish_endpoint_acks_and_rejects_bad_input() {
    let t = unique("http");
    let mqtt = connected(Mqtt::builder(embedded_config(Protocol::V311))).await;
    let mut stream = mqtt
        .stream(&format!("{t}/#"), QoS::AtLeastOnce, 16)
        .await
        .unwrap();
    let app = axum::Router::new()
        .route("/publish", post(web::publish))
        .route("/healthz", get(web::health))
        .with_state(AppState { mqtt: mqtt.clone() });
    let base = serve(app).await;
    let url = format!("{base}/publish");

    // The Flask tutorial's request, byte for byte.
    let (s, v) = post_raw(&url, format!(r#"{{"topic": "{t}/a", "msg": "hello"}}"#)).await;
    assert_eq!((s, &v["code"]), (200, &json!(0)), "{v}");
    let m = tokio::time::timeout(WAIT, stream.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (m.topic(), m.payload_str()),
        (format!("{t}/a").as_str(), Some("hello"))
    );

    // Extensions: qos 1 (mid of the broker's ack), retain, binary payload.
    let (s, v) = post_raw(
        &url,
        json!({"topic": format!("{t}/b"), "payload_base64": "AAEC", "qos": 1, "retain": false})
            .to_string(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["mid"].as_u64().unwrap() > 0, "{v}");
    let m = tokio::time::timeout(WAIT, stream.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.payload().as_ref(), &[0u8, 1, 2]);

    let bad: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "invalid_json"),
        (b"\xff\xfe".to_vec(), 400, "invalid_utf8"),
        (b"[1, 2]".to_vec(), 422, "invalid_body"),
        (br#"{"msg": "x"}"#.to_vec(), 422, "invalid_body"),
        (br#"{"topic": "a"}"#.to_vec(), 422, "invalid_payload"),
        (
            br#"{"topic": "a", "msg": "x", "payload": "y"}"#.to_vec(),
            422,
            "invalid_payload",
        ),
        (
            br#"{"topic": "a/+", "msg": "x"}"#.to_vec(),
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
            br#"{"topic": "a", "msg": "x", "qos": "1"}"#.to_vec(),
            422,
            "invalid_qos",
        ),
        (
            br#"{"topic": "a", "payload_base64": "***"}"#.to_vec(),
            422,
            "invalid_payload",
        ),
        (br#"{"topic": 5, "msg": "x"}"#.to_vec(), 422, "invalid_body"),
        (
            br#"{"topic": "a", "msg": null}"#.to_vec(),
            422,
            "invalid_payload",
        ),
        (
            br#"{"topic": "a", "msg": "x", "payload": null}"#.to_vec(),
            422,
            "invalid_payload",
        ),
        (
            br#"{"topic": "a", "payload_base64": null}"#.to_vec(),
            422,
            "invalid_payload",
        ),
        (
            br#"{"topic": "a", "payload_base64": 5}"#.to_vec(),
            422,
            "invalid_body",
        ),
    ];
    for (body, status, kind) in bad {
        let (s, v) = post_raw(&url, body.clone()).await;
        assert_eq!(s, status, "{}: {v}", String::from_utf8_lossy(&body));
        assert_eq!(v["kind"], kind, "{}: {v}", String::from_utf8_lossy(&body));
        assert_eq!(v["code"], 1);
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let huge = json!({"topic": "a", "msg": "x".repeat(300 * 1024)}).to_string();
    let (s, v) = post_raw(&url, huge).await;
    assert_eq!((s, v["kind"].as_str()), (413, Some("payload_too_large")));
    // Still serving after all that.
    let (s, _) = post_raw(
        &url,
        format!(r#"{{"topic": "{t}/c", "msg": "still here"}}"#),
    )
    .await;
    assert_eq!(s, 200);
    let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let state: Value = r.json().await.unwrap();
    assert_eq!(state["status"], "connected");
}

/// QoS 0 through the endpoint is answered once queued on the live connection, so a caller can run
/// ahead of the socket: every answered message still arrives, in the order answered, with QoS 1
/// publishes (which wait for their PUBACK) among them and a request queue of 4, so the callers also
/// take the path that waits for room.
#[tokio::test]
async fn qos0_answered_when_queued_arrives_in_order() {
    let t = unique("q0order");
    let mut cfg = embedded_config(Protocol::V311);
    cfg.max_pending = 4;
    let mqtt = connected(Mqtt::builder(cfg)).await;
    let mut stream = mqtt
        .stream(&format!("{t}/#"), QoS::AtLeastOnce, 512)
        .await
        .unwrap();
    let base = serve(PublishEndpoint::new().router(mqtt.clone())).await;
    let http = reqwest::Client::new();
    // Four callers on their own topics, each sending the next request when the answer came.
    let mut callers = tokio::task::JoinSet::new();
    for c in 0..4 {
        let (http, url, topic) = (http.clone(), format!("{base}/publish"), format!("{t}/{c}"));
        callers.spawn(async move {
            for i in 0..100 {
                let qos = u8::from(i % 10 == 9);
                let body = json!({"topic": topic, "msg": i.to_string(), "qos": qos});
                let r = http.post(&url).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
            }
        });
    }
    while let Some(done) = callers.join_next().await {
        done.unwrap();
    }
    let mut next_of = [0u32; 4];
    for _ in 0..400 {
        let m = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("an answered publish never arrived")
            .expect("stream open");
        let c: usize = m.topic().rsplit('/').next().unwrap().parse().unwrap();
        assert_eq!(
            m.payload_str(),
            Some(next_of[c].to_string().as_str()),
            "{}",
            m.topic()
        );
        next_of[c] += 1;
    }
    assert_eq!(next_of, [100; 4]);
    mqtt.shutdown(WAIT).await;
}

#[tokio::test]
async fn allow_list_and_broker_down() {
    let t = unique("acl");
    let mqtt = connected(Mqtt::builder(embedded_config(Protocol::V311))).await;
    let endpoint = PublishEndpoint::new()
        .allow([format!("{t}/public/#")])
        .unwrap()
        .timeout(Duration::from_millis(500));
    let base = serve(endpoint.router(mqtt.clone())).await;
    let (s, v) = post_raw(
        &format!("{base}/publish"),
        json!({"topic": format!("{t}/public/x"), "msg": "ok"}).to_string(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post_raw(
        &format!("{base}/publish"),
        json!({"topic": format!("{t}/admin"), "msg": "no"}).to_string(),
    )
    .await;
    assert_eq!(
        (s, v["kind"].as_str()),
        (403, Some("topic_not_allowed")),
        "{v}"
    );

    // A client whose broker is unreachable: a publish times out with 504, health is 503.
    let nobody = closed_port();
    let mut cfg = MqttConfig::new("127.0.0.1", nobody.port);
    cfg.reconnect_min = std::time::Duration::from_millis(50);
    let offline = Mqtt::start(cfg).await.unwrap();
    let base = serve(
        axum::Router::new()
            .route("/healthz", get(web::health))
            .merge(
                PublishEndpoint::new()
                    .timeout(Duration::from_millis(300))
                    .router(offline.clone()),
            )
            .with_state(offline.clone()),
    )
    .await;
    let (s, v) = post_raw(
        &format!("{base}/publish"),
        json!({"topic": "x", "msg": "y", "qos": 1}).to_string(),
    )
    .await;
    assert_eq!(
        (s, v["kind"].as_str()),
        (504, Some("broker_timeout")),
        "{v}"
    );
    // QoS 0 is answered without waiting only on a live connection: here it waits, and times out.
    let (s, v) = post_raw(
        &format!("{base}/publish"),
        json!({"topic": "x", "msg": "y"}).to_string(),
    )
    .await;
    assert_eq!(
        (s, v["kind"].as_str()),
        (504, Some("broker_timeout")),
        "{v}"
    );
    let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(r.status(), 503);
    offline.shutdown(Duration::from_secs(1)).await;
    let (s, v) = post_raw(
        &format!("{base}/publish"),
        json!({"topic": "x", "msg": "y"}).to_string(),
    )
    .await;
    assert_eq!((s, v["kind"].as_str()), (503, Some("client_closed")), "{v}");
}

#[tokio::test]
async fn sse_bridge_and_stream_refcounting() {
    let t = unique("sse");
    let mqtt = connected(Mqtt::builder(embedded_config(Protocol::V311))).await;
    let filter = format!("{t}/#");
    let m2 = mqtt.clone();
    let f2 = filter.clone();
    let app = axum::Router::new().route(
        "/events",
        get(move || {
            let (mqtt, filter) = (m2.clone(), f2.clone());
            async move {
                match mqtt.stream(&filter, QoS::AtMostOnce, 16).await {
                    Ok(s) => web::sse(s).into_response(),
                    Err(e) => web::ApiError::from(e).into_response(),
                }
            }
        }),
    );
    use axum::response::IntoResponse;
    let base = serve(app).await;
    let resp = reqwest::get(format!("{base}/events")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp;
    // The SSE handler subscribed before answering; publish and read the event.
    tokio::time::timeout(WAIT, async {
        while !mqtt.subscriptions().iter().any(|(f, _)| *f == filter) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    mqtt.publish(format!("{t}/x"), "21.5")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut text = String::new();
    tokio::time::timeout(WAIT, async {
        while !text.contains("21.5") {
            let chunk = body.chunk().await.unwrap().expect("stream ended");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("SSE event");
    assert!(text.contains("event: message"), "{text}");
    assert!(text.contains(&format!(r#""topic":"{t}/x""#)), "{text}");
    drop(body);

    // Two streams share one subscription; it goes when the last one is dropped.
    let other = format!("{t}-b/#");
    let s1 = mqtt.stream(&other, QoS::AtMostOnce, 4).await.unwrap();
    let mut s2 = mqtt.stream(&other, QoS::AtMostOnce, 4).await.unwrap();
    drop(s1);
    assert!(mqtt.subscriptions().iter().any(|(f, _)| *f == other));
    mqtt.publish(format!("{t}-b/1"), "x")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert!(tokio::time::timeout(WAIT, s2.next())
        .await
        .unwrap()
        .is_some());
    drop(s2);
    assert!(!mqtt.subscriptions().iter().any(|(f, _)| *f == other));
}

#[tokio::test]
async fn slow_stream_skips_instead_of_blocking() {
    let t = unique("slowstream");
    let (handler, mut rx) = collector();
    let mqtt = connected(
        Mqtt::builder(embedded_config(Protocol::V311)).on_topic(&format!("{t}/#"), handler),
    )
    .await;
    mqtt.subscribe(&format!("{t}/#"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let slow = mqtt
        .stream(&format!("{t}/#"), QoS::AtLeastOnce, 2)
        .await
        .unwrap();
    for i in 0..20 {
        mqtt.publish(format!("{t}/n"), i.to_string())
            .qos(QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    // The handler still gets every message although nobody reads the stream.
    for i in 0..20 {
        assert_eq!(
            next(&mut rx).await.payload_str(),
            Some(i.to_string().as_str())
        );
    }
    assert!(slow.dropped() >= 18, "dropped {}", slow.dropped());
    assert!(mqtt.stats().stream_dropped >= 18);
}
