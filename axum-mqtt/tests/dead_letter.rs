//! `RouteOptions::dead_letter`: a message whose handler failed for good (every retry, or a
//! rejection) is published to the dead-letter topic with its payload, topic, error and attempts
//! (MQTT 5 user properties; a JSON envelope on 3.1.1), the route goes on serving, and with
//! ack-after-handling the original is acknowledged after the dead letter was, so it never comes
//! back. A flood of poison messages with the smallest backlog does not deadlock the client, and an
//! invalid template is an error at start.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum_mqtt::extract::{Json, State, Text};
use axum_mqtt::router::RouteOptions;
use axum_mqtt::{
    Message, MessageStream, Mqtt, MqttConfig, Protocol, QoS, Router, RouterError, StartError,
};
use axum_mqtt_testkit::{embedded, unique, Mosquitto};
use base64::Engine as _;
use common::*;
use tokio::sync::mpsc;

/// What the handlers ran on, and how often each payload failed so far.
#[derive(Clone)]
struct Ctx {
    runs: mpsc::UnboundedSender<String>,
    failures: Arc<Mutex<HashMap<String, u32>>>,
}

impl Ctx {
    fn new() -> (Ctx, mpsc::UnboundedReceiver<String>) {
        let (runs, rx) = mpsc::unbounded_channel();
        let failures = Arc::new(Mutex::new(HashMap::new()));
        (Ctx { runs, failures }, rx)
    }

    /// Records a run of `body`: `bad…` always fails, `fail<n>:…` fails its first n runs, anything
    /// else works.
    fn run(&self, body: &str) -> Result<(), String> {
        let _ = self.runs.send(body.to_string());
        let times = if body.starts_with("bad") {
            u32::MAX
        } else {
            body.strip_prefix("fail")
                .and_then(|r| r.split(':').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let mut f = self.failures.lock().unwrap();
        let n = f.entry(body.to_string()).or_default();
        if *n < times {
            *n += 1;
            Err(format!("cannot handle {body}"))
        } else {
            Ok(())
        }
    }
}

async fn job(Text(body): Text, State(ctx): State<Ctx>) -> Result<(), String> {
    ctx.run(&body)
}

#[derive(serde::Deserialize)]
struct Reading {
    #[allow(dead_code)]
    celsius: f64,
}

/// The next message of a stream, or a failed test after [`WAIT`].
async fn letter(s: &mut MessageStream) -> Message {
    tokio::time::timeout(WAIT, s.recv())
        .await
        .expect("timed out waiting for a dead letter")
        .expect("stream ended")
}

/// What a dead letter says: (original topic, error, attempts, payload), from the user properties
/// on MQTT 5 and from the JSON envelope on 3.1.1.
fn read(protocol: Protocol, m: &Message) -> (String, String, u32, Vec<u8>) {
    match protocol {
        Protocol::V5 => {
            let props = m.properties().expect("MQTT 5 properties");
            let get = |k: &str| {
                props
                    .user_properties
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| panic!("no {k} in {props:?}"))
            };
            (
                get("x-original-topic"),
                get("x-error"),
                get("x-attempts").parse().unwrap(),
                m.payload().to_vec(),
            )
        }
        Protocol::V311 => {
            let v: serde_json::Value =
                serde_json::from_slice(m.payload()).expect("a JSON envelope");
            let payload = base64::engine::general_purpose::STANDARD
                .decode(v["payload_base64"].as_str().unwrap())
                .unwrap();
            (
                v["topic"].as_str().unwrap().to_string(),
                v["error"].as_str().unwrap().to_string(),
                v["attempts"].as_u64().unwrap() as u32,
                payload,
            )
        }
    }
}

/// 20 poison messages between good ones on one topic, and a payload that is not JSON: every poison
/// message reaches the dead-letter topic, in order, with what it needs; the good ones are handled.
async fn poison_messages_are_dead_lettered(
    config: impl Fn(Protocol) -> MqttConfig,
    protocol: Protocol,
) {
    let t = unique("dlq");
    let (ctx, mut runs) = Ctx::new();
    let opts = RouteOptions::new()
        .retry(2, Duration::from_millis(1))
        .ack_after_handling()
        .dead_letter(&format!("{t}/dlq/{{topic}}"));
    let router = Router::new()
        .route_with(&format!("{t}/jobs/{{id}}"), opts.clone(), job)
        .route_with(
            &format!("{t}/readings"),
            opts,
            |Json(_): Json<Reading>| async {},
        )
        .with_state(ctx);
    let worker = connected(Mqtt::builder(config(protocol)).router(router)).await;
    worker
        .subscribe(&format!("{t}/jobs/+"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let watcher = connected(Mqtt::builder(config(protocol))).await;
    let mut dead = watcher
        .stream(&format!("{t}/dlq/#"), QoS::AtLeastOnce, 256)
        .await
        .unwrap();

    let topic = format!("{t}/jobs/1");
    for i in 0..20 {
        for body in [format!("bad-{i}"), format!("good-{i}")] {
            worker
                .publish(topic.clone(), body)
                .qos(QoS::AtLeastOnce)
                .await
                .unwrap();
        }
    }
    worker
        .publish(format!("{t}/readings"), "not json")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();

    let mut seen = Vec::new();
    for _ in 0..60 {
        seen.push(next(&mut runs).await);
    }
    let want: Vec<String> = (0..20)
        .flat_map(|i| [format!("bad-{i}"), format!("bad-{i}"), format!("good-{i}")])
        .collect();
    assert_eq!(
        seen, want,
        "two runs of each poison message, and the route goes on"
    );

    // The rejection is handled in its own lane, so its dead letter may come at any point.
    let mut letters = Vec::new();
    for _ in 0..21 {
        letters.push(letter(&mut dead).await);
    }
    let (jobs, rejected): (Vec<Message>, Vec<Message>) = letters
        .into_iter()
        .partition(|m| m.topic() == format!("{t}/dlq/{topic}"));
    assert_eq!(jobs.len(), 20);
    for (i, m) in jobs.iter().enumerate() {
        assert_eq!(m.qos(), QoS::AtLeastOnce);
        let (original, error, attempts, payload) = read(protocol, m);
        assert_eq!(original, topic);
        assert_eq!(error, format!("cannot handle bad-{i}"));
        assert_eq!(attempts, 2);
        assert_eq!(
            payload,
            format!("bad-{i}").as_bytes(),
            "in order, with the payload"
        );
    }
    let [m] = &rejected[..] else {
        panic!("one dead letter besides the jobs: {rejected:?}")
    };
    let (original, error, attempts, payload) = read(protocol, m);
    assert_eq!(m.topic(), format!("{t}/dlq/{t}/readings"));
    assert_eq!(original, format!("{t}/readings"));
    assert!(error.starts_with("rejected: "), "{error}");
    assert_eq!(
        (attempts, payload),
        (1, b"not json".to_vec()),
        "a rejection is not retried"
    );

    let s = wait_stats(&worker, |s| s.dead_lettered >= 21).await;
    assert_eq!(
        (
            s.dead_lettered,
            s.dead_letter_failures,
            s.handled,
            s.handler_errors,
            s.rejected
        ),
        (21, 0, 20, 40, 1)
    );
    assert_eq!(s.handler_retries, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_with_user_properties_v5() {
    poison_messages_are_dead_lettered(embedded_config, Protocol::V5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_in_a_json_envelope_v311() {
    poison_messages_are_dead_lettered(embedded_config, Protocol::V311).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_through_mosquitto_v5() {
    let Some(broker) = Mosquitto::start(Default::default()) else {
        return;
    };
    let port = broker.port;
    poison_messages_are_dead_lettered(move |p| mosquitto_config(port, p), Protocol::V5).await;
}

/// With a persistent session, the poison messages are acknowledged once dead-lettered: after a
/// reconnect the broker redelivers none of them.
async fn dead_lettered_messages_do_not_come_back(protocol: Protocol) {
    let t = unique("dlq-session");
    let topic = format!("{t}/jobs");
    let (ctx, mut runs) = Ctx::new();
    let router = Router::new()
        .route_with(
            &topic,
            RouteOptions::new()
                .qos(QoS::AtLeastOnce)
                .retry(2, Duration::from_millis(1))
                .ack_after_handling()
                .dead_letter(&format!("{t}/dlq/{{topic}}")),
            job,
        )
        .with_state(ctx);
    let proxy = Proxy::start(embedded().tcp_addr().port()).await;
    let mut cfg = embedded_config(protocol);
    cfg.broker_port = proxy.port;
    cfg.client_id = unique_id("dlq-worker");
    cfg.clean_session = false;
    let worker = connected(Mqtt::builder(cfg).router(router)).await;
    worker.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    let publisher = connected(Mqtt::builder(embedded_config(protocol))).await;

    let n = 20;
    for i in 0..n {
        publisher
            .publish(topic.clone(), format!("bad-{i}"))
            .qos(QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    for _ in 0..2 * n {
        assert!(next(&mut runs).await.starts_with("bad-"));
    }
    // Counted once the original's acknowledgement is queued.
    let s = wait_stats(&worker, |s| s.dead_lettered >= n).await;
    assert_eq!((s.dead_lettered, s.dead_letter_failures), (n, 0));

    no_redelivery_after_cut(&worker, &proxy, &publisher, &topic, "after", &mut runs).await;
    assert_eq!(worker.stats().dead_lettered, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_lettered_messages_are_acknowledged_and_not_redelivered_v311() {
    dead_lettered_messages_do_not_come_back(Protocol::V311).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_lettered_messages_are_acknowledged_and_not_redelivered_v5() {
    dead_lettered_messages_do_not_come_back(Protocol::V5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_works_on_a_retry_is_not_dead_lettered() {
    let t = unique("dlq-retry");
    let topic = format!("{t}/jobs");
    let (ctx, mut runs) = Ctx::new();
    let router = Router::new()
        .route_with(
            &topic,
            RouteOptions::new()
                .retry(3, Duration::from_millis(1))
                .ack_after_handling()
                .dead_letter(&format!("{t}/dlq/{{topic}}")),
            job,
        )
        .with_state(ctx);
    let worker = connected(Mqtt::builder(embedded_config(Protocol::V5)).router(router)).await;
    worker.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    let mut dead = worker
        .stream(&format!("{t}/dlq/#"), QoS::AtLeastOnce, 16)
        .await
        .unwrap();

    for body in ["fail2:a", "bad-barrier"] {
        worker
            .publish(topic.clone(), body)
            .qos(QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next(&mut runs).await);
    }
    assert_eq!(seen, ["fail2:a"; 3], "three runs, the last one works");
    // The poison message after it is dead-lettered in the same lane; had the first one been, its
    // dead letter would have come first.
    let m = letter(&mut dead).await;
    assert_eq!(m.payload().as_ref(), b"bad-barrier");
    let s = wait_stats(&worker, |s| s.dead_lettered >= 1).await;
    assert_eq!(
        (s.handled, s.handler_errors, s.dead_lettered),
        (1, 2 + 3, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_template_is_an_error_at_start() {
    for (template, says) in [
        ("dlq/+/{topic}", "wildcard"),
        ("dlq/{topic}/#", "wildcard"),
        ("", "empty"),
        ("dlq/{route}", "braces"),
        ("{topic}", "back to the topic"),
    ] {
        let router: Router = Router::new().route_with(
            "orders/{id}",
            RouteOptions::new().dead_letter(template),
            || async {},
        );
        let err = Mqtt::builder(embedded_config(Protocol::V5))
            .router(router)
            .start()
            .await
            .unwrap_err();
        match &err {
            StartError::Router(RouterError::InvalidDeadLetter { template: t, .. }) => {
                assert_eq!(t, template)
            }
            other => panic!("{template:?}: {other:?}"),
        }
        assert!(err.to_string().contains(says), "{template:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_topic_the_route_matches_is_not_published_to() {
    let t = unique("dlq-loop");
    let (ctx, mut runs) = Ctx::new();
    // `{t}/{*rest}` matches `{t}/dlq/…`: the dead letter would come back to the same handler.
    let router = Router::new()
        .route_with(
            &format!("{t}/{{*rest}}"),
            RouteOptions::new().dead_letter(&format!("{t}/dlq/{{topic}}")),
            job,
        )
        .with_state(ctx);
    let worker = connected(Mqtt::builder(embedded_config(Protocol::V311)).router(router)).await;
    worker
        .subscribe(&format!("{t}/#"), QoS::AtLeastOnce)
        .await
        .unwrap();
    for body in ["bad-1", "good-1"] {
        worker
            .publish(format!("{t}/jobs"), body)
            .qos(QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    assert_eq!(
        [next(&mut runs).await, next(&mut runs).await],
        ["bad-1", "good-1"]
    );
    let s = wait_stats(&worker, |s| s.handled >= 1).await;
    assert_eq!((s.dead_lettered, s.dead_letter_failures), (0, 1));
}

/// The smallest backlog (one lane of one message, so one dead letter in flight) under a flood of
/// poison messages: the lane must not wait for a PUBACK the connection task cannot read while it
/// waits for the lane. Every message is dead-lettered or counted as failed, and the client goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_poison_messages_does_not_deadlock_the_client() {
    let t = unique("dlq-flood");
    let topic = format!("{t}/jobs");
    let (ctx, mut runs) = Ctx::new();
    let router = Router::new()
        .route_with(
            &topic,
            RouteOptions::new().dead_letter(&format!("{t}/dlq/{{topic}}")),
            job,
        )
        .with_state(ctx);
    let mut cfg = embedded_config(Protocol::V311);
    cfg.handler_concurrency = 1;
    cfg.handler_queue = 1;
    let worker = connected(Mqtt::builder(cfg).router(router)).await;
    worker.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    let publisher = connected(Mqtt::builder(embedded_config(Protocol::V311))).await;

    let n = 300u64;
    let sends = (0..n).map(|i| {
        publisher
            .publish(topic.clone(), format!("bad-{i}"))
            .qos(QoS::AtLeastOnce)
            .send()
    });
    for r in futures_util::future::join_all(sends).await {
        r.unwrap();
    }
    publisher
        .publish(topic.clone(), "good")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut last = String::new();
    for _ in 0..=n {
        last = next(&mut runs).await;
    }
    assert_eq!(last, "good", "the lane got past every poison message");
    let s = wait_stats(&worker, |s| s.dead_lettered + s.dead_letter_failures >= n).await;
    assert_eq!(s.dead_lettered + s.dead_letter_failures, n);
    assert!(s.dead_lettered >= 1, "{s:?}");
}
