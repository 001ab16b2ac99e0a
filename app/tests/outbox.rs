//! `--outbox`: what `POST /publish` answered for survives the app being killed (SIGKILL) and the
//! broker being down, against Mosquitto with persistence; a full outbox is 503; a damaged file stops
//! the start naming it.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum_mqtt::{Mqtt, MqttConfig, QoS};
use axum_mqtt_testkit::{closed_port, Mosquitto, MosquittoOptions};
use common::*;
use serde_json::{json, Value};

/// The app on `broker_url` with an outbox at `path`, without the embedded broker.
fn spawn_app(broker_url: &str, path: &std::path::Path, extra_env: &[(&str, &str)]) -> App {
    let path = path.to_str().unwrap();
    let mut env = vec![
        ("MQTT_BROKER_URL", broker_url),
        ("MQTT_RECONNECT_MIN_MS", "50"),
        ("MQTT_RECONNECT_MAX_MS", "300"),
    ];
    env.extend_from_slice(extra_env);
    App::spawn(
        &["--no-broker", "--http", "127.0.0.1:0", "--outbox", path],
        &env,
        false,
    )
}

async fn post(http: &reqwest::Client, app: &App, topic: &str, msg: &str) -> (u16, Value) {
    let r = http
        .post(app.url("/publish"))
        .json(&json!({"topic": topic, "msg": msg, "qos": 1}))
        .send()
        .await
        .expect("POST /publish");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A client of Mosquitto collecting every payload it receives on `filter`, with counts.
struct Subscriber {
    _mqtt: Mqtt,
    rx: tokio::sync::mpsc::UnboundedReceiver<axum_mqtt::Message>,
    seen: HashMap<String, u32>,
}

impl Subscriber {
    async fn start(cfg: MqttConfig, filter: &str) -> Subscriber {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mqtt = Mqtt::builder(cfg)
            .on_message(move |m: axum_mqtt::Message| {
                let _ = tx.send(m);
                async {}
            })
            .start()
            .await
            .unwrap();
        assert_eq!(
            mqtt.wait_connected(WAIT).await.status,
            axum_mqtt::Status::Connected
        );
        mqtt.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        Subscriber {
            _mqtt: mqtt,
            rx,
            seen: HashMap::new(),
        }
    }

    /// Receives until every payload of `want` was seen at least once, or fails after `within`.
    async fn until_all(&mut self, want: &HashSet<String>, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while !want.iter().all(|w| self.seen.contains_key(w)) {
            let missing = want.iter().filter(|w| !self.seen.contains_key(*w)).count();
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(m)) => {
                    let p = String::from_utf8_lossy(m.payload()).into_owned();
                    *self.seen.entry(p).or_default() += 1;
                }
                _ => panic!(
                    "{missing} of {} answered messages never arrived",
                    want.len()
                ),
            }
        }
    }

    fn duplicates(&self) -> u32 {
        self.seen.values().map(|n| n - 1).sum()
    }
}

fn mosquitto_client(m: &Mosquitto) -> MqttConfig {
    let mut cfg = MqttConfig::new("127.0.0.1", m.port);
    cfg.reconnect_min = Duration::from_millis(20);
    cfg.reconnect_max = Duration::from_millis(300);
    cfg
}

/// Waits until `GET /publish/{id}` says `status`.
async fn wait_status(http: &reqwest::Client, app: &App, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = http
            .get(app.url(&format!("/publish/{id}")))
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if code == 200 && v["status"] == status {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never became {status}: {code} {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_publishes_survive_a_killed_app_while_the_broker_is_down() {
    let Some(mut broker) = Mosquitto::start(MosquittoOptions {
        persistence: true,
        ..Default::default()
    }) else {
        return;
    };
    let t = unique("outbox-kill");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let http = reqwest::Client::new();

    // A persistent subscriber session at the broker, offline while everything happens.
    let mut sub_cfg = mosquitto_client(&broker);
    sub_cfg.client_id = format!("{t}-sub");
    sub_cfg.clean_session = false;
    Subscriber::start(sub_cfg.clone(), &format!("{t}/#"))
        .await
        ._mqtt
        .shutdown(WAIT)
        .await;

    let mut app = spawn_app(&broker.url(), &path, &[]);
    app.wait_ready().await;
    broker.stop(true);
    app.wait_health(503).await;

    let mut ids = Vec::new();
    let mut want = HashSet::new();
    for i in 0..200 {
        let msg = format!("m{i}");
        let (status, body) = post(&http, &app, &format!("{t}/m"), &msg).await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(
            (body["code"].as_i64(), body["status"].as_str()),
            (Some(0), Some("queued"))
        );
        ids.push(body["id"].as_str().unwrap().to_string());
        want.insert(msg);
    }
    let s = scrape(&app).await;
    assert_eq!(sample(&s, "mqtt_outbox_messages", &[]), 200.0);
    assert_eq!(sample(&s, "mqtt_outbox_stored_total", &[]), 200.0);

    assert!(
        app.signal_and_wait("KILL", WAIT).is_some(),
        "the app did not die"
    );
    let mut app = spawn_app(&broker.url(), &path, &[]);
    app.wait_banner().await;
    // The new process knows every id the dead one answered with.
    wait_status(&http, &app, &ids[0], "queued").await;
    wait_status(&http, &app, &ids[199], "queued").await;

    broker.restart();
    app.wait_health(200).await;
    let acked = wait_status(&http, &app, &ids[199], "acked").await;
    assert!(acked["mid"].as_u64().is_some(), "{acked}");
    let mut sub = Subscriber::start(sub_cfg, &format!("{t}/#")).await;
    sub.until_all(&want, WAIT).await;
    eprintln!("all 200 delivered; duplicates: {}", sub.duplicates());
    let s = scrape(&app).await;
    assert_eq!(sample(&s, "mqtt_outbox_messages", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_publish_answered_before_a_kill_mid_stream_is_delivered() {
    let Some(broker) = Mosquitto::start(MosquittoOptions::default()) else {
        return;
    };
    let t = unique("outbox-stream");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let mut sub = Subscriber::start(mosquitto_client(&broker), &format!("{t}/#")).await;

    let mut app = spawn_app(&broker.url(), &path, &[]);
    app.wait_ready().await;
    let answered = Arc::new(Mutex::new(HashSet::new()));
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let url = app.url("/publish");
    let mut senders = Vec::new();
    for _ in 0..8 {
        let (answered, next, url, topic) = (
            answered.clone(),
            next.clone(),
            url.clone(),
            format!("{t}/s"),
        );
        senders.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = json!({"topic": topic, "msg": format!("s{n}"), "qos": 1});
                let Ok(r) = http.post(&url).json(&body).send().await else {
                    return; // the app is gone
                };
                let status = r.status().as_u16();
                if r.bytes().await.is_err() {
                    return;
                }
                assert!(status == 200 || status == 202, "answered {status}");
                answered.lock().unwrap().insert(format!("s{n}"));
            }
        }));
    }
    let deadline = Instant::now() + WAIT;
    while answered.lock().unwrap().len() < 300 {
        assert!(Instant::now() < deadline, "the stream is too slow");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        app.signal_and_wait("KILL", WAIT).is_some(),
        "the app did not die"
    );
    for s in senders {
        s.await.unwrap();
    }
    let want = answered.lock().unwrap().clone();

    let mut app = spawn_app(&broker.url(), &path, &[]);
    app.wait_ready().await;
    sub.until_all(&want, WAIT).await;
    eprintln!(
        "{} answered before the kill, all delivered; {} duplicates, {} sent but unanswered also delivered",
        want.len(),
        sub.duplicates(),
        sub.seen.keys().filter(|k| !want.contains(*k)).count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_answers_503_and_ids_can_be_asked_about() {
    let closed = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("mqtt://127.0.0.1:{}", closed.port);
    let mut app = spawn_app(
        &url,
        &dir.path().join("o.db"),
        &[("MQTT_OUTBOX_MAX_MESSAGES", "5")],
    );
    app.wait_banner().await;
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..5 {
        let (status, body) = post(&http, &app, "full/x", &i.to_string()).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    let (status, body) = post(&http, &app, "full/x", "5").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        (body["code"].as_i64(), body["kind"].as_str()),
        (Some(1), Some("outbox_full"))
    );
    assert!(
        body["error"].as_str().unwrap().contains("5 of 5 messages"),
        "{body}"
    );
    let s = scrape(&app).await;
    assert_eq!(sample(&s, "mqtt_outbox_messages", &[]), 5.0);
    assert_eq!(sample(&s, "mqtt_outbox_full_total", &[]), 1.0);

    let v = wait_status(&http, &app, &ids[4], "queued").await;
    assert_eq!(v, json!({"code": 0, "id": ids[4], "status": "queued"}));
    for bad in ["99999", "abc"] {
        let r = http
            .get(app.url(&format!("/publish/{bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["kind"], "unknown_id", "{v}");
    }

    // Without --outbox nothing changes, and there are no ids to ask about.
    let plain = App::start(&[], &[]).await;
    let r = http.get(plain.url("/publish/1")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["kind"], "no_outbox");
}

#[test]
fn a_damaged_outbox_file_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken-outbox.db");
    std::fs::write(&path, vec![0x17u8; 4096]).unwrap();
    let mut cmd = command();
    cmd.args(["--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0"]);
    cmd.args(["--broker-ws", "off", "--outbox"]).arg(&path);
    let (code, _, stderr) = run_to_end(cmd);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(code.is_some(), "the app did not exit: {stderr}");
    assert!(stderr.contains("broken-outbox.db"), "{stderr}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        vec![0x17u8; 4096],
        "left untouched"
    );
}
