//! The live page's WebSocket protocol against the real app binary.

mod common;

use std::time::Duration;

use axum_mqtt::QoS;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_publish_and_receive_then_unsubscribe() {
    let app = App::start(&[], &[]).await;
    let mut ws = ws_connect(&app, "").await;
    let base = unique("ws");
    let filter = format!("{base}/+");
    let f = op(
        &mut ws,
        json!({"op": "subscribe", "id": "s1", "filter": filter, "qos": 1}),
    )
    .await;
    assert_eq!(
        f,
        json!({"type": "ack", "op": "subscribe", "id": "s1", "filter": filter, "qos": 1})
    );

    // From the page itself.
    let f = op(
        &mut ws,
        json!({"op": "publish", "id": 7, "topic": format!("{base}/a"), "payload": "21.5", "qos": 1}),
    )
    .await;
    assert_eq!(
        (f["type"].as_str(), f["id"].as_u64()),
        (Some("ack"), Some(7)),
        "{f}"
    );
    let m = next_of(&mut ws, "message").await;
    assert_eq!(m["filter"], filter);
    assert_eq!(m["topic"], format!("{base}/a"));
    assert_eq!(m["payload"], "21.5");
    assert!(m["time_ms"].as_u64().unwrap() > 0);

    // From another MQTT client, binary payload.
    let other = mqtt_client(&app).await;
    other
        .publish(format!("{base}/b"), vec![0u8, 0xff])
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    let m = next_of(&mut ws, "message").await;
    assert_eq!(m["payload_base64"], "AP8=", "{m}");
    assert!(m.get("payload").is_none());

    // The Flask-MQTT Socket.IO example's field name works too.
    let f = op(
        &mut ws,
        json!({"op": "publish", "topic": format!("{base}/c"), "message": "hi"}),
    )
    .await;
    assert_eq!(f["type"], "ack", "{f}");
    assert_eq!(next_of(&mut ws, "message").await["payload"], "hi");

    // Subscribing twice is harmless.
    let f = op(&mut ws, json!({"op": "subscribe", "filter": filter})).await;
    assert_eq!(f["already"], true, "{f}");

    let f = op(&mut ws, json!({"op": "unsubscribe", "filter": filter})).await;
    assert_eq!(f["type"], "ack", "{f}");
    let f = op(&mut ws, json!({"op": "unsubscribe", "filter": filter})).await;
    assert_eq!(
        (f["kind"].as_str(), f["status"].as_u64()),
        (Some("not_subscribed"), Some(404))
    );
    other
        .publish(format!("{base}/d"), "after")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    // Nothing arrives after the unsubscribe (bounded wait to prove absence).
    while let Some(f) = ws.backlog_pop() {
        assert_ne!(f["type"], "message", "{f}");
    }
    let quiet = tokio::time::timeout(Duration::from_millis(400), ws.raw.next()).await;
    if let Ok(Some(Ok(WsMessage::Text(t)))) = quiet {
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        assert_ne!(v["type"], "message", "{v}");
    }

    // unsubscribe_all lists what it removed.
    for f in ["x/1", "x/2"] {
        let a = op(
            &mut ws,
            json!({"op": "subscribe", "filter": format!("{base}/{f}")}),
        )
        .await;
        assert_eq!(a["type"], "ack");
    }
    let f = op(&mut ws, json!({"op": "unsubscribe_all"})).await;
    assert_eq!(
        f["filters"],
        json!([format!("{base}/x/1"), format!("{base}/x/2")])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tabs_have_their_own_subscriptions() {
    let app = App::start(&[], &[]).await;
    let base = unique("tabs");
    let mut a = ws_connect(&app, "").await;
    let mut b = ws_connect(&app, "").await;
    assert_eq!(
        op(
            &mut a,
            json!({"op": "subscribe", "filter": format!("{base}/a")})
        )
        .await["type"],
        "ack"
    );
    assert_eq!(
        op(
            &mut b,
            json!({"op": "subscribe", "filter": format!("{base}/b")})
        )
        .await["type"],
        "ack"
    );
    // Both follow the same filter too: one broker subscription, two streams.
    let shared = format!("{base}/shared");
    assert_eq!(
        op(&mut a, json!({"op": "subscribe", "filter": shared})).await["type"],
        "ack"
    );
    assert_eq!(
        op(&mut b, json!({"op": "subscribe", "filter": shared})).await["type"],
        "ack"
    );
    let mqtt = mqtt_client(&app).await;
    for t in ["a", "b", "shared"] {
        mqtt.publish(format!("{base}/{t}"), t)
            .qos(QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    let got_a: Vec<_> = vec![
        next_of(&mut a, "message").await,
        next_of(&mut a, "message").await,
    ];
    let got_b: Vec<_> = vec![
        next_of(&mut b, "message").await,
        next_of(&mut b, "message").await,
    ];
    let payloads = |v: &[Value]| {
        v.iter()
            .map(|m| m["payload"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    // Order holds per filter, not across filters (each has its own stream).
    let sorted = |v: &[Value]| {
        let mut p = payloads(v);
        p.sort();
        p
    };
    assert_eq!(sorted(&got_a), vec!["a", "shared"]);
    assert_eq!(sorted(&got_b), vec!["b", "shared"]);
    // A closing tab leaves the other's subscription in place.
    a.raw.close(None).await.unwrap();
    drop(a);
    mqtt.publish(shared.clone(), "again")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next_of(&mut b, "message").await["payload"], "again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_error_frames_and_the_connection_stays() {
    let app = App::start(&["--max-payload", "1024"], &[]).await;
    let mut ws = ws_connect(&app, "").await;
    let cases: Vec<(WsMessage, &str)> = vec![
        (WsMessage::Text("{oops".into()), "invalid_json"),
        (WsMessage::Text("[1,2]".into()), "invalid_body"),
        (
            WsMessage::Text(r#"{"filter": "a"}"#.into()),
            "missing_field",
        ),
        (WsMessage::Text(r#"{"op": 5}"#.into()), "invalid_op"),
        (WsMessage::Text(r#"{"op": "explode"}"#.into()), "unknown_op"),
        (
            WsMessage::Binary(vec![0xff, 0x00, 0xfe].into()),
            "binary_frame",
        ),
        (
            WsMessage::Text(r#"{"op": "subscribe"}"#.into()),
            "missing_field",
        ),
        (
            WsMessage::Text(r#"{"op": "subscribe", "filter": "a/#/b"}"#.into()),
            "invalid_filter",
        ),
        (
            WsMessage::Text(r#"{"op": "subscribe", "filter": ""}"#.into()),
            "invalid_filter",
        ),
        (
            WsMessage::Text(r#"{"op": "subscribe", "filter": "a", "qos": 3}"#.into()),
            "invalid_qos",
        ),
        (
            WsMessage::Text(r#"{"op": "publish", "topic": "a/+", "payload": "x"}"#.into()),
            "invalid_topic",
        ),
        (
            WsMessage::Text(r#"{"op": "publish", "topic": "", "payload": "x"}"#.into()),
            "invalid_topic",
        ),
        (
            WsMessage::Text(r#"{"op": "publish", "topic": "a"}"#.into()),
            "invalid_payload",
        ),
        (
            WsMessage::Text(r#"{"op": "publish", "topic": "a", "payload": "x", "qos": 3}"#.into()),
            "invalid_qos",
        ),
        (
            WsMessage::Text(
                json!({"op": "publish", "topic": "a", "payload": "x".repeat(1500)})
                    .to_string()
                    .into(),
            ),
            "payload_too_large",
        ),
    ];
    for (frame, kind) in cases {
        let shown = format!("{frame:?}");
        ws.raw.send(frame).await.unwrap();
        let f = next_of(&mut ws, "error").await;
        assert_eq!(f["kind"], kind, "{shown}: {f}");
        let status = f["status"].as_u64().unwrap();
        assert!((400..500).contains(&status), "{f}");
        assert!(!f["error"].as_str().unwrap().is_empty());
    }
    // Still serving on the same connection.
    let f = op(
        &mut ws,
        json!({"op": "publish", "topic": "t/ok", "payload": "fine"}),
    )
    .await;
    assert_eq!(f["type"], "ack", "{f}");

    // A message over the size limit gets an error frame and the connection stays.
    let big = json!({"op": "publish", "topic": "a", "payload": "x".repeat(300_000)}).to_string();
    ws.raw.send(WsMessage::Text(big.into())).await.unwrap();
    let f = next_of(&mut ws, "error").await;
    assert_eq!(
        (f["kind"].as_str(), f["status"].as_u64()),
        (Some("message_too_large"), Some(413)),
        "{f}"
    );
    let f = op(&mut ws, json!({"op": "subscribe", "filter": "t/after-big"})).await;
    assert_eq!(f["type"], "ack", "{f}");

    // Past the hard limit the app stops reading and closes that connection; it keeps serving others.
    let huge = "x".repeat(3 * 1024 * 1024);
    let _ = ws.raw.send(WsMessage::Text(huge.into())).await;
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(Ok(m)) = ws.raw.next().await {
            if let WsMessage::Close(_) = m {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection stayed open");
    let mut again = ws_connect(&app, "").await;
    let f = op(&mut again, json!({"op": "subscribe", "filter": "t/again"})).await;
    assert_eq!(f["type"], "ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_skips_messages_while_another_gets_everything() {
    let app = App::start(&["--ws-queue", "8"], &[]).await;
    let topic = unique("slow");
    let mut slow = ws_connect(&app, "").await;
    let mut fast = ws_connect(&app, "").await;
    assert_eq!(
        op(&mut slow, json!({"op": "subscribe", "filter": topic})).await["type"],
        "ack"
    );
    assert_eq!(
        op(&mut fast, json!({"op": "subscribe", "filter": topic})).await["type"],
        "ack"
    );

    // 400 × 64 KiB = 25 MiB: far more than socket buffers and the slow tab's queue hold.
    let mqtt = mqtt_client(&app).await;
    let payload = "7".repeat(64 * 1024);
    let total = 400;
    let mut received = 0;
    // Batches smaller than the queue, so the fast tab never has more than that waiting.
    let batch_size = 4;
    for batch in 0..(total / batch_size) {
        for i in 0..batch_size {
            let n = batch * batch_size + i;
            mqtt.publish(topic.clone(), format!("{n}:{payload}"))
                .qos(QoS::AtLeastOnce)
                .await
                .unwrap();
        }
        // The fast tab keeps up: every message, in order.
        while received < (batch + 1) * batch_size {
            let m = next_of(&mut fast, "message").await;
            let n: usize = m["payload"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(n, received, "the fast tab lost or reordered a message");
            received += 1;
        }
    }
    assert_eq!(received, total);

    // The slow tab now reads: it was told how many it missed, and got fewer messages.
    let mut got = 0;
    let mut dropped = 0;
    while let Ok(Some(Ok(WsMessage::Text(t)))) =
        tokio::time::timeout(Duration::from_millis(1500), slow.raw.next()).await
    {
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        match v["type"].as_str() {
            Some("message") => got += 1,
            Some("dropped") => dropped = v["total"].as_u64().unwrap(),
            _ => {}
        }
    }
    assert!(dropped > 0, "no dropped notice (got {got})");
    assert_eq!(
        got + dropped as usize,
        total,
        "every message is either delivered or counted"
    );
    let counted = sample(&scrape(&app).await, "app_ws_messages_dropped_total", &[]);
    assert!(counted >= dropped as f64, "{counted} < {dropped}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_frames_follow_the_mqtt_connection() {
    let app = App::start(&[], &[]).await;
    let (raw, _) = tokio_tungstenite::connect_async(app.ws_url(""))
        .await
        .unwrap();
    let mut ws = Ws::new(raw);
    let first = next_frame(&mut ws).await;
    assert_eq!(first["type"], "status");
    assert_eq!(first["status"], "connected");
    assert_eq!(first["connects"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_websockets_and_streams_and_exits_cleanly() {
    let mut app = App::start(&[], &[]).await;
    let mut ws = ws_connect(&app, "").await;
    let mut sse = reqwest::get(app.url("/events?filter=a/%23")).await.unwrap();
    assert_eq!(sse.status(), 200);
    let started = std::time::Instant::now();
    let status =
        tokio::task::block_in_place(|| app.signal_and_wait("TERM", Duration::from_secs(10)))
            .expect("the app did not exit after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The WebSocket was closed with "going away".
    let mut code = None;
    while let Ok(Some(Ok(m))) = tokio::time::timeout(WAIT, ws.raw.next()).await {
        if let WsMessage::Close(c) = m {
            code = c.map(|c| u16::from(c.code));
            break;
        }
    }
    assert_eq!(code, Some(1001));
    // The SSE stream ended.
    let end =
        tokio::time::timeout(WAIT, async { while let Ok(Some(_)) = sse.chunk().await {} }).await;
    assert!(end.is_ok());
    let out = app.stdout();
    assert!(out.iter().any(|l| l == "Stopped."), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_embedded_broker_the_client_speaks_mqtt5_and_frames_carry_properties() {
    let app = App::start(&[], &[]).await;
    let mut ws = ws_connect(&app, "").await;
    let (raw, _) = tokio_tungstenite::connect_async(app.ws_url(""))
        .await
        .unwrap();
    let mut fresh = Ws::new(raw);
    assert_eq!(next_frame(&mut fresh).await["protocol"], "5");

    let base = unique("props");
    let f = op(
        &mut ws,
        json!({"op": "subscribe", "filter": format!("{base}/#"), "qos": 1}),
    )
    .await;
    assert_eq!(f["type"], "ack", "{f}");
    let f = op(
        &mut ws,
        json!({"op": "publish", "topic": format!("{base}/a"), "payload": "x", "qos": 1,
               "user_properties": [["source", "page"], ["k", "v"]]}),
    )
    .await;
    assert_eq!(f["type"], "ack", "{f}");
    let m = next_of(&mut ws, "message").await;
    assert_eq!(m["qos"], 1, "{m}");
    assert_eq!(
        m["properties"]["user_properties"],
        json!([["source", "page"], ["k", "v"]]),
        "{m}"
    );

    // Published without properties, it has no user properties (the embedded broker adds its
    // default message expiry, and the frame says so: properties are shown as delivered).
    op(
        &mut ws,
        json!({"op": "publish", "topic": format!("{base}/b"), "payload": "y"}),
    )
    .await;
    let m = next_of(&mut ws, "message").await;
    assert!(m["properties"].get("user_properties").is_none(), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_properties_on_mqtt_3_1_1_are_refused_with_needs_mqtt5() {
    let app = App::start(&[], &[("MQTT_PROTOCOL", "3.1.1")]).await;
    let mut ws = ws_connect(&app, "").await;
    let f = op(
        &mut ws,
        json!({"op": "publish", "topic": "a/b", "payload": "x", "user_properties": {"k": "v"}}),
    )
    .await;
    assert_eq!(
        (f["type"].as_str(), f["kind"].as_str(), f["status"].as_u64()),
        (Some("error"), Some("needs_mqtt5"), Some(422)),
        "{f}"
    );
}
