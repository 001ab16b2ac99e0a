//! Broker faults, against Mosquitto children: nothing the client reported as published is lost.
//!
//! * 20 restarts with SIGTERM during a steady QoS 1 stream between two persistent sessions
//!   (`clean_session=false`, fixed client ids, Mosquitto persistence on): every publish that
//!   returned `Ok` reaches the subscriber; publishes made while the broker is down complete after
//!   the reconnect; subscriptions stay; memory stays flat.
//! * The same with SIGKILL. Mosquitto can then lose what it acknowledged but had not yet written to
//!   its persistence file: it sends PUBACK while handling the PUBLISH and saves the database later in
//!   its main loop (every `autosave_interval` seconds by default, 30 minutes out of the box). The
//!   test saves after every change (`autosave_on_changes true`, `autosave_interval 1`), which leaves
//!   a window of one loop turn, and asserts that any lost message was acknowledged right at a kill
//!   (none was, in practice). With a save once a second instead, a kill every ~0.45 s lost about a
//!   quarter of the acknowledged messages (1060 of 4323 in one run) and every session: the broker
//!   came back without the subscriber's session, and the client restored its subscriptions itself.
//! * A broker that refuses the credentials: a clear state and error, and reconnects that back off.
//! * A broker that stops answering (SIGSTOP): keepalive notices, and the client recovers on SIGCONT;
//!   publishes waiting for its ack give up each at its own deadline.
//! * A peer that closes the connection in the middle of a packet (or sends garbage): the client
//!   reports it, reconnects with backoff, never panics, and works once a real broker answers.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum_mqtt::{Connack, Disconnected, Message, Mqtt, MqttConfig, Protocol, QoS, Status};
use axum_mqtt_testkit::{unique, Mosquitto, MosquittoOptions};
use common::apps::{app_binary, app_line};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

/// Resident memory of this test process in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A config for a persistent session on `port` with the fast reconnects these tests need.
fn persistent(port: u16, protocol: Protocol, name: &str) -> MqttConfig {
    let mut cfg = mosquitto_config(port, protocol);
    cfg.client_id = unique_id(name);
    cfg.clean_session = false;
    cfg.reconnect_min = std::time::Duration::from_millis(20);
    cfg.reconnect_max = std::time::Duration::from_millis(200);
    cfg
}

/// What became of each publish, by message id.
#[derive(Default)]
struct Ledger {
    /// `publish(..).await` returned `Ok`, at this instant.
    acked: HashMap<u64, Instant>,
    /// `publish(..).await` failed, with this error.
    failed: Vec<(u64, String)>,
    /// Publishes started while the broker was down.
    made_down: Vec<u64>,
    /// Publishes started.
    started: u64,
}

/// Ids the subscriber's handler saw, with how many times.
type Seen = Arc<Mutex<HashMap<u64, u32>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Restarts Mosquitto `rounds` times (SIGTERM when `graceful`, else SIGKILL) under a steady QoS 1
/// stream from a persistent publisher to a persistent subscriber, and checks what arrived.
async fn restarts(protocol: Protocol, graceful: bool, rounds: u64) {
    init_tracing();
    // Persistence is configured here rather than with `MosquittoOptions::persistence`, to put the
    // file on a RAM disk when there is one: saving after every change (see the module docs) writes
    // the whole database each time, which a disk cannot do at the stream's rate. For a process
    // crash a RAM disk is no different from a disk (written pages outlive the process either way;
    // power loss is another matter).
    let store = tempfile::Builder::new()
        .prefix("axum-mqtt-faults-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("tempdir");
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o777));
    }
    let mut extra = format!(
        "persistence true\npersistence_location {}/\nautosave_interval 1\n",
        store.path().display()
    );
    if !graceful {
        extra.push_str("autosave_on_changes true\n");
    }
    let Some(mut m) = Mosquitto::start(MosquittoOptions {
        extra,
        ..Default::default()
    }) else {
        return;
    };
    let t = unique(if graceful { "sigterm" } else { "sigkill" });
    let route = format!("{t}/a/+");
    let explicit = format!("{t}/b/#");

    // The subscriber: one filter from a route, one from `subscribe`; every message counted by id.
    let seen: Seen = Arc::default();
    let count = {
        let seen = seen.clone();
        move |m: Message| {
            if let Some(id) = m.payload_str().and_then(|s| s.parse::<u64>().ok()) {
                *lock(&seen).entry(id).or_default() += 1;
            }
            std::future::ready(())
        }
    };
    let (conn_cb, mut sub_connacks) = event_collector::<Connack>();
    let sub = connected(
        Mqtt::builder(persistent(m.port, protocol, "fault-sub"))
            .on_topic(&route, |_: Message| std::future::ready(()))
            .on_message(count)
            .on_connect(conn_cb),
    )
    .await;
    assert!(!next(&mut sub_connacks).await.session_present);
    // Both filters confirmed by the broker before the stream starts (the route's SUBSCRIBE too:
    // `subscribe` on the same filter waits behind it).
    sub.subscribe(&route, QoS::AtLeastOnce).await.unwrap();
    sub.subscribe(&explicit, QoS::AtLeastOnce).await.unwrap();
    let mut subscriptions = sub.subscriptions();
    subscriptions.sort();

    let publisher = connected(Mqtt::builder(persistent(m.port, protocol, "fault-pub"))).await;

    // A steady stream: one QoS 1 publish every 2 ms, alternating between the two filters, each in
    // its own task so that publishes keep being made while the broker is down.
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let down = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (ledger, down, stop, publisher) = (
            ledger.clone(),
            down.clone(),
            stop.clone(),
            publisher.clone(),
        );
        let topics = [format!("{t}/a/x"), format!("{t}/b/y/z")];
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(2));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut tasks = JoinSet::new();
            let mut id = 0u64;
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                while tasks.try_join_next().is_some() {}
                if tasks.len() >= 2000 {
                    tasks.join_next().await; // bounded, even if the broker stayed away
                }
                id += 1;
                {
                    let mut l = lock(&ledger);
                    l.started = id;
                    if down.load(Ordering::SeqCst) {
                        l.made_down.push(id);
                    }
                }
                let (c, l) = (publisher.clone(), ledger.clone());
                let topic = topics[(id % 2) as usize].clone();
                tasks.spawn(async move {
                    let res = c.publish(topic, id.to_string()).qos(QoS::AtLeastOnce).await;
                    let mut l = lock(&l);
                    match res {
                        Ok(_) => {
                            l.acked.insert(id, Instant::now());
                        }
                        Err(e) => l.failed.push((id, e.to_string())),
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
            id
        })
    };

    let mut pub_state = publisher.watch_state();
    let mut sub_state = sub.watch_state();
    let mut kills: Vec<Instant> = Vec::new();
    let mut rss = Vec::new();
    let started = Instant::now();
    for round in 0..rounds {
        // The stream runs against a live broker for a while.
        let before = lock(&ledger).acked.len();
        let deadline = Instant::now() + WAIT;
        while lock(&ledger).acked.len() < before + 150 {
            assert!(Instant::now() < deadline, "round {round}: no publish acked");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        rss.push(rss_kib());

        down.store(true, Ordering::SeqCst);
        kills.push(Instant::now());
        tokio::task::block_in_place(|| m.stop(graceful));
        wait_state(&mut pub_state, "publisher sees the broker gone", |s| {
            s.status == Status::Reconnecting
        })
        .await;
        wait_state(&mut sub_state, "subscriber sees the broker gone", |s| {
            s.status == Status::Reconnecting
        })
        .await;
        // Publishes keep being made while the broker is away.
        let made = lock(&ledger).made_down.len();
        let deadline = Instant::now() + WAIT;
        while lock(&ledger).made_down.len() < made + 20 {
            assert!(Instant::now() < deadline, "the producer stalled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::task::block_in_place(|| m.restart());
        down.store(false, Ordering::SeqCst);
        let n = round + 2;
        wait_state(&mut pub_state, "publisher back", |s| {
            s.status == Status::Connected && s.connects == n
        })
        .await;
        wait_state(&mut sub_state, "subscriber back", |s| {
            s.status == Status::Connected && s.connects == n
        })
        .await;
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let Ok(total) = tokio::time::timeout(Duration::from_secs(30), producer).await else {
        let l = lock(&ledger);
        let open: Vec<u64> = (1..=l.started)
            .filter(|id| !l.acked.contains_key(id) && !l.failed.iter().any(|(f, _)| f == id))
            .take(20)
            .collect();
        panic!(
            "publishes never completed after the last reconnect, e.g. {open:?}; publisher {:?}, {:?}",
            publisher.state(),
            publisher.stats()
        );
    };
    let total = total.expect("producer task");

    // Wait for the subscriber to get every acknowledged message (or, after kills, for it to stop
    // receiving anything new).
    let missing = || {
        let l = lock(&ledger);
        let s = lock(&seen);
        let mut v: Vec<u64> = l
            .acked
            .keys()
            .filter(|id| !s.contains_key(id))
            .copied()
            .collect();
        v.sort_unstable();
        v
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = (usize::MAX, Instant::now());
    loop {
        let gone = missing().len();
        if gone == 0 || Instant::now() > deadline {
            break;
        }
        if gone != last.0 {
            last = (gone, Instant::now());
        } else if !graceful && last.1.elapsed() > Duration::from_secs(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rss.push(rss_kib());

    let lost = missing();
    // Snapshots, so no lock is held while the clients shut down below.
    let l = std::mem::take(&mut *lock(&ledger));
    let s = lock(&seen).clone();
    let duplicates: u32 = s.values().map(|c| c - 1).sum();
    let dup_ids = s.values().filter(|c| **c > 1).count();
    let made_down_acked = l
        .made_down
        .iter()
        .filter(|id| l.acked.contains_key(id))
        .count();
    let unacked_but_delivered = s.keys().filter(|id| !l.acked.contains_key(id)).count();
    let connacks: Vec<Connack> = std::iter::from_fn(|| sub_connacks.try_recv().ok()).collect();
    let resumed = connacks.iter().filter(|c| c.session_present).count();
    eprintln!(
        "{} x{rounds} ({protocol:?}) in {elapsed:.1?}: {total} publishes, {} acked, {} failed, \
         {} made while down ({made_down_acked} of them acked), {} lost, {duplicates} duplicate \
         deliveries of {dup_ids} ids, {unacked_but_delivered} delivered without an ack; subscriber \
         resumed its session on {resumed} of {} reconnects; RSS KiB per round {rss:?}",
        if graceful { "SIGTERM" } else { "SIGKILL" },
        l.acked.len(),
        l.failed.len(),
        l.made_down.len(),
        lost.len(),
        connacks.len(),
    );

    // QoS 1 publishes caught by a restart are re-sent: none fails, none is reported done and lost.
    assert!(
        l.failed.is_empty(),
        "QoS 1 publishes failed: {:?}",
        &l.failed[..l.failed.len().min(10)]
    );
    assert_eq!(
        l.acked.len() as u64,
        total,
        "every publish completed after the last reconnect"
    );
    assert!(
        l.made_down.len() as u64 >= 20 * rounds,
        "publishes were made while the broker was down"
    );
    assert_eq!(
        made_down_acked,
        l.made_down.len(),
        "made while down, acked after"
    );
    if graceful {
        // SIGTERM: Mosquitto saves its database on the way out; nothing acknowledged is lost.
        assert!(
            lost.is_empty(),
            "{} acknowledged publishes never delivered, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(10)]
        );
        assert_eq!(
            resumed,
            connacks.len(),
            "the persistent session survives a graceful restart: {connacks:?}"
        );
    } else {
        // SIGKILL: only what Mosquitto acknowledged right before a kill and had not saved yet.
        let window = Duration::from_millis(100);
        let outside: Vec<u64> = lost
            .iter()
            .copied()
            .filter(|id| {
                let at = l.acked[id];
                !kills.iter().any(|k| {
                    let (a, b) = (*k - window, *k + window);
                    at >= a && at <= b
                })
            })
            .collect();
        assert!(
            outside.is_empty(),
            "lost publishes acknowledged away from any kill: {:?}",
            &outside[..outside.len().min(10)]
        );
        assert!(
            lost.len() as u64 <= 5 * rounds,
            "too many lost for a save after every change: {}",
            lost.len()
        );
    }
    let mut now = sub.subscriptions();
    now.sort();
    assert_eq!(now, subscriptions, "subscriptions kept across restarts");
    assert_eq!(sub.stats().handler_panics, 0);
    // Memory flat: after a few rounds of warm-up, the whole test process (other tests run beside
    // this one) grows by less than 8 MiB over the remaining restarts; about 1 MiB is usual.
    let warm = rss[rss.len().min(4)];
    let end = *rss.last().unwrap_or(&0);
    assert!(
        end <= warm + 8 * 1024,
        "RSS grew from {warm} KiB to {end} KiB across restarts: {rss:?}"
    );
    publisher.shutdown(WAIT).await;
    sub.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_restarts_lose_nothing_acked_v311() {
    restarts(Protocol::V311, true, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_restarts_lose_nothing_acked_v5() {
    restarts(Protocol::V5, true, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_restarts_lose_only_unsaved_v311() {
    restarts(Protocol::V311, false, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_restarts_lose_only_unsaved_v5() {
    restarts(Protocol::V5, false, 20).await;
}

/// A Mosquitto that requires a user name and password.
fn with_password_file() -> Option<(Mosquitto, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("passwd");
    let ok = std::process::Command::new("mosquitto_passwd")
        .arg("-b")
        .arg("-c")
        .arg(&file)
        .arg("app")
        .arg("right")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !axum_mqtt_testkit::mosquitto_required(),
            "mosquitto_passwd is missing"
        );
        return None;
    }
    // Mosquitto started as root reads the file as the `mosquitto` user.
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755));
    let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644));
    let m = Mosquitto::start(MosquittoOptions {
        extra: format!("allow_anonymous false\npassword_file {}\n", file.display()),
        ..Default::default()
    })?;
    Some((m, dir))
}

/// Refused credentials: the state says so, `on_connect` gets the code, publishes never report done,
/// and attempts back off to `RECONNECT_MAX_MS` instead of hammering the broker.
async fn auth_refused(protocol: Protocol, codes: &[u8]) {
    init_tracing();
    let Some((m, _dir)) = with_password_file() else {
        return;
    };
    let mut cfg = mosquitto_config(m.port, protocol);
    cfg.username = Some("app".into());
    cfg.password = Some("wrong".into());
    cfg.reconnect_min = std::time::Duration::from_millis(50);
    cfg.reconnect_max = std::time::Duration::from_millis(400);
    let (conn_cb, mut connacks) = event_collector::<Connack>();
    let started = Instant::now();
    let client = Mqtt::builder(cfg.clone())
        .on_connect(conn_cb)
        .start()
        .await
        .unwrap();
    let refused = next(&mut connacks).await;
    assert!(
        codes.contains(&refused.code) && !refused.is_success(),
        "{refused:?}"
    );
    let mut state = client.watch_state();
    let s = wait_state(&mut state, "the refusal in the state", |s| {
        s.status == Status::Reconnecting && s.last_error.is_some()
    })
    .await;
    let err = s.last_error.unwrap_or_default();
    assert!(
        err.contains("refused") && err.contains(&format!("code {}", refused.code)),
        "{err}"
    );

    // A QoS 1 publish cannot be acknowledged by a broker that will not let us in.
    let res = client
        .publish(unique("auth"), "x")
        .qos(QoS::AtLeastOnce)
        .timeout(Duration::from_millis(300))
        .await;
    assert!(matches!(res, Err(axum_mqtt::Error::Timeout(_))), "{res:?}");

    // Count attempts for 2.5 s from the start: 50, 100, 200, 400, 400, … ms apart (±20 %).
    let mut times = vec![started];
    let mut last = state.borrow().attempts;
    let end = started + Duration::from_millis(2500);
    while let Ok(Ok(())) = tokio::time::timeout_at(end.into(), state.changed()).await {
        let s = state.borrow_and_update().clone();
        assert_ne!(s.status, Status::Connected, "{s:?}");
        if s.attempts != last {
            last = s.attempts;
            times.push(Instant::now());
        }
    }
    let attempts = last;
    assert!(
        (4..=12).contains(&attempts),
        "{attempts} attempts in 2.5 s (a tight loop would make hundreds)"
    );
    let gaps: Vec<u128> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    let tail = gaps.last().copied().unwrap_or(0);
    assert!(tail >= 250, "attempts back off to ~400 ms: gaps {gaps:?}");
    // Every refusal reaches on_connect.
    let later: Vec<Connack> = std::iter::from_fn(|| connacks.try_recv().ok()).collect();
    assert!(later.iter().all(|c| c.code == refused.code), "{later:?}");

    // The right password works against the same broker.
    cfg.password = Some("right".into());
    let good = connected(Mqtt::builder(cfg)).await;
    good.publish(unique("auth"), "ok")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    good.shutdown(WAIT).await;
    client.shutdown(WAIT).await;
    assert_eq!(client.state().status, Status::Stopped);
}

#[tokio::test]
async fn auth_refused_backs_off_v311() {
    // 4: bad user name or password, 5: not authorized (Mosquitto answers 5).
    auth_refused(Protocol::V311, &[4, 5]).await;
}

#[tokio::test]
async fn auth_refused_backs_off_v5() {
    // 0x86: bad user name or password, 0x87: not authorized.
    auth_refused(Protocol::V5, &[0x86, 0x87]).await;
}

/// What the stall tests start from: a Mosquitto child, a client with `keepalive` routing
/// `{topic}/+` into `rx` and subscribed to it at QoS 1 (the builder passed through `more` first).
struct Stall {
    m: Mosquitto,
    t: String,
    client: Mqtt,
    rx: tokio::sync::mpsc::UnboundedReceiver<Message>,
}

async fn stall_setup(
    name: &str,
    keepalive: Duration,
    more: impl FnOnce(axum_mqtt::MqttBuilder) -> axum_mqtt::MqttBuilder,
) -> Option<Stall> {
    let m = Mosquitto::start(MosquittoOptions::default())?;
    let t = unique(name);
    let (h, rx) = collector();
    let mut cfg = mosquitto_config(m.port, Protocol::V311);
    cfg.keepalive = keepalive;
    let client = connected(more(Mqtt::builder(cfg).on_topic(&format!("{t}/+"), h))).await;
    client
        .subscribe(&format!("{t}/+"), QoS::AtLeastOnce)
        .await
        .unwrap();
    Some(Stall { m, t, client, rx })
}

/// A broker that stops answering (SIGSTOP: the sockets stay open, nothing is read or written):
/// keepalive notices within about 2 × keepalive, and the client recovers on SIGCONT, with a QoS 1
/// publish made during the stall delivered.
#[tokio::test]
async fn stalled_broker_is_detected_by_keepalive() {
    init_tracing();
    let (disc_cb, mut disconnects) = event_collector::<Disconnected>();
    let more = |b: axum_mqtt::MqttBuilder| b.on_disconnect(disc_cb);
    let Some(Stall {
        m,
        t,
        client,
        mut rx,
    }) = stall_setup("stall", Duration::from_secs(1), more).await
    else {
        return;
    };
    let mut state = client.watch_state();

    m.signal("STOP");
    let paused = Instant::now();
    let s = wait_state(&mut state, "keepalive to notice", |s| {
        s.status != Status::Connected
    })
    .await;
    let noticed = paused.elapsed();
    m.signal("CONT"); // before any assertion, so a failure never leaves a stopped process behind
    eprintln!("a 1 s keepalive noticed the stalled broker after {noticed:?}");
    assert!(
        noticed <= Duration::from_millis(3500),
        "a 1 s keepalive noticed the stall only after {noticed:?}"
    );
    assert_eq!(s.status, Status::Reconnecting, "{s:?}");
    let lost = next(&mut disconnects).await;
    assert!(lost.reason.is_some(), "{lost:?}");

    let up = wait_state(&mut state, "reconnected after SIGCONT", |s| {
        s.status == Status::Connected && s.connects == 2
    })
    .await;
    assert_eq!(up.last_error, None);
    client
        .publish(format!("{t}/after"), "a")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await.payload_str(), Some("a"));
    client.shutdown(WAIT).await;
}

/// The same stall, this time with a publish made while the broker is paused: it completes after
/// SIGCONT (it is never reported done while the broker cannot have it).
#[tokio::test]
async fn publish_during_stall_completes_after_resume() {
    init_tracing();
    let Some(Stall {
        m,
        t,
        client,
        mut rx,
    }) = stall_setup("stallpub", Duration::from_secs(1), |b| b).await
    else {
        return;
    };
    m.signal("STOP");
    let pending = {
        let c = client.clone();
        let topic = format!("{t}/during");
        tokio::spawn(async move { c.publish(topic, "d").qos(QoS::AtLeastOnce).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let early = pending.is_finished();
    m.signal("CONT");
    assert!(
        !early,
        "a publish was reported done while the broker was paused"
    );
    let ack = tokio::time::timeout(Duration::from_secs(15), pending)
        .await
        .expect("publish made during the stall never completed")
        .unwrap();
    assert!(ack.is_ok(), "{ack:?}");
    assert_eq!(next(&mut rx).await.payload_str(), Some("d"));
    client.shutdown(WAIT).await;
}

/// Publish timeouts on a connection that stays up but gets no acknowledgement (SIGSTOP): each
/// publish gives up at its own deadline, never before it, including one with a shorter timeout
/// made after a longer one; on SIGCONT the late PUBACKs of the abandoned publishes are matched to
/// them, not to the next caller, which gets its own ack.
#[tokio::test]
async fn each_publish_times_out_at_its_own_deadline_on_a_stalled_broker() {
    init_tracing();
    // A 60 s keepalive: the stall must not end the connection.
    let Some(Stall {
        m,
        t,
        client,
        mut rx,
    }) = stall_setup("deadline", Duration::from_secs(60), |b| b).await
    else {
        return;
    };

    m.signal("STOP");
    let started = Instant::now();
    let mut calls = JoinSet::new();
    // The 3 s one first: the 300 ms one after it must not wait for its deadline.
    for (i, ms) in [3000u64, 300, 900].into_iter().enumerate() {
        let c = client.clone();
        let topic = format!("{t}/{i}");
        calls.spawn(async move {
            let res = c
                .publish(topic, "late")
                .qos(QoS::AtLeastOnce)
                .timeout(Duration::from_millis(ms))
                .await;
            (ms, res, started.elapsed())
        });
    }
    let mut seen = Vec::new();
    while let Some(done) = calls.join_next().await {
        seen.push(done.unwrap());
    }
    m.signal("CONT"); // before any assertion: a failure must not leave a stopped broker behind
    let took: Vec<(u64, Duration)> = seen.iter().map(|(ms, _, took)| (*ms, *took)).collect();
    eprintln!("timeouts fired after {took:?}");
    for (ms, res, took) in &seen {
        let wanted = Duration::from_millis(*ms);
        assert!(
            matches!(res, Err(axum_mqtt::Error::Timeout(d)) if *d == wanted),
            "the {ms} ms publish: {res:?}"
        );
        assert!(
            *took >= wanted,
            "the {ms} ms publish gave up early, after {took:?}"
        );
        assert!(
            *took < wanted + Duration::from_millis(700),
            "the {ms} ms publish gave up only after {took:?}"
        );
    }
    let order: Vec<u64> = seen.iter().map(|(ms, _, _)| *ms).collect();
    assert_eq!(order, [300, 900, 3000], "{took:?}");

    // The broker has the three (their acks arrive now, for nobody); the next caller gets its own.
    client
        .publish(format!("{t}/after"), "a")
        .qos(QoS::AtLeastOnce)
        .timeout(WAIT)
        .await
        .expect("a publish after the stall is acknowledged");
    // Four topics, so any order: the three abandoned ones reached the broker too.
    let mut payloads = Vec::new();
    while payloads.len() < 4 {
        payloads.push(
            next(&mut rx)
                .await
                .payload_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    payloads.sort();
    assert_eq!(payloads, ["a", "late", "late", "late"]);
    client.shutdown(WAIT).await;
}

/// What the fake broker does with a connection.
#[derive(Clone, Copy, Debug)]
enum Misbehave {
    /// CONNACK, then the first half of a PUBLISH, then close.
    HalfPublish,
    /// CONNACK, then bytes that are no MQTT packet (a remaining length longer than 4 bytes).
    Garbage,
}

/// A fake broker: its first `bad` connections get a valid CONNACK and then `how`; later ones are
/// forwarded to `real` (a real broker). Returns its port and the accept times.
async fn fake_broker(how: Misbehave, bad: usize, real: u16) -> (u16, Arc<Mutex<Vec<Instant>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepts = Arc::new(Mutex::new(Vec::new()));
    let seen = accepts.clone();
    let n = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            lock(&seen).push(Instant::now());
            if n.fetch_add(1, Ordering::SeqCst) >= bad {
                tokio::spawn(async move {
                    if let Ok(mut b) = tokio::net::TcpStream::connect(("127.0.0.1", real)).await {
                        let _ = tokio::io::copy_bidirectional(&mut sock, &mut b).await;
                    }
                });
                continue;
            }
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                // The CONNECT (small enough to come in one read on loopback).
                if sock.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                let _ = sock.write_all(&[0x20, 0x02, 0x00, 0x00]).await; // CONNACK accepted
                let publish: Vec<u8> = {
                    let (topic, payload) = (b"a/b", b"hello, world");
                    let mut p = vec![0x30, (2 + topic.len() + payload.len()) as u8, 0, 3];
                    p.extend_from_slice(topic);
                    p.extend_from_slice(payload);
                    p
                };
                let bytes: &[u8] = match how {
                    Misbehave::HalfPublish => &publish[..publish.len() / 2],
                    Misbehave::Garbage => &[0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                };
                let _ = sock.write_all(bytes).await;
                let _ = sock.flush().await;
                // Dropping the socket closes it mid-packet.
            });
        }
    });
    (port, accepts)
}

async fn broken_peer(how: Misbehave) {
    init_tracing();
    let Some(m) = Mosquitto::start(MosquittoOptions::default()) else {
        return;
    };
    let bad = 5;
    let (port, accepts) = fake_broker(how, bad, m.port).await;
    let t = unique("midpacket");
    let (h, mut rx) = collector();
    let (disc_cb, mut disconnects) = event_collector::<Disconnected>();
    let (conn_cb, mut connacks) = event_collector::<Connack>();
    let mut cfg = mosquitto_config(port, Protocol::V311);
    cfg.reconnect_min = std::time::Duration::from_millis(40);
    cfg.reconnect_max = std::time::Duration::from_millis(320);
    let client = Mqtt::builder(cfg)
        .on_topic(&format!("{t}/+"), h)
        .on_disconnect(disc_cb)
        .on_connect(conn_cb)
        .start()
        .await
        .unwrap();
    // Each broken connection is reported (CONNACK accepted, then lost with a reason).
    for i in 0..bad {
        let c = next(&mut connacks).await;
        assert!(c.is_success(), "{i}: {c:?}");
        let d = next(&mut disconnects).await;
        let reason = d.reason.unwrap_or_default();
        assert!(!reason.is_empty(), "{i}: the loss has a reason");
    }
    // Then the real broker answers through the same address: the client is connected, the route is
    // subscribed, and messages flow.
    let mut state = client.watch_state();
    let s = wait_state(&mut state, "connected to the real broker", |s| {
        s.status == Status::Connected && s.connects == bad as u64 + 1
    })
    .await;
    assert_eq!(s.last_error, None);
    client
        .subscribe(&format!("{t}/+"), QoS::AtLeastOnce)
        .await
        .unwrap();
    client
        .publish(format!("{t}/ok"), "fine")
        .qos(QoS::AtLeastOnce)
        .await
        .unwrap();
    let msg = next(&mut rx).await;
    assert_eq!(msg.payload_str(), Some("fine"));
    // Nothing of the broken PUBLISH ever reached a handler.
    nothing(&mut rx, Duration::from_millis(100)).await;
    let stats = client.stats();
    assert_eq!((stats.handler_panics, stats.received), (0, 1), "{stats:?}");

    // Reconnects backed off: the connections were not made in a tight loop.
    let times = lock(&accepts).clone();
    let gaps: Vec<u128> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    assert!(
        gaps.iter().all(|g| *g >= 30),
        "each reconnect waits at least RECONNECT_MIN_MS (40 ms -20 %): {gaps:?}"
    );
    eprintln!("{how:?}: reconnect gaps {gaps:?} ms");
    client.shutdown(WAIT).await;
}

#[tokio::test]
async fn broker_closing_mid_packet() {
    broken_peer(Misbehave::HalfPublish).await;
}

#[tokio::test]
async fn broker_sending_garbage() {
    broken_peer(Misbehave::Garbage).await;
}

// ---------------------------------------------------------------------------------------------
// Scale-out: several app processes share one subscription through the broker.

/// Starts `apps` app processes in one shared group, publishes `n` QoS 1 messages (ids as payloads)
/// and returns how many times each id was handled, per instance, and the time from the first
/// publish to the last message handled.
async fn scale_out(apps: usize, n: u64) -> Option<(Vec<HashMap<u64, u32>>, Duration)> {
    init_tracing();
    let Some(bin) = app_binary() else {
        assert!(
            !axum_mqtt_testkit::mosquitto_required(),
            "the app binary is missing next to the test binary: cargo build -p axum-mqtt-app"
        );
        eprintln!("axum-mqtt-app not built: skipping");
        return None;
    };
    let m = Mosquitto::start(MosquittoOptions::default())?;
    let t = unique("scale");
    let (tx, rx) = std::sync::mpsc::channel();
    let rx = Arc::new(Mutex::new(rx));
    let running: Vec<apps::App> = (0..apps)
        .map(|i| apps::App::start(&bin, i, &m.url(), &format!("{t}/#"), tx.clone()))
        .collect();
    drop(tx);
    let fail = |what: &str| -> ! {
        let logs: Vec<String> = running.iter().map(apps::App::stderr).collect();
        panic!("{what}; app logs: {logs:#?}; broker log: {}", m.log())
    };

    let mut cfg = mosquitto_config(m.port, Protocol::V311);
    cfg.max_inflight = 1000;
    cfg.max_pending = 5000;
    let publisher = connected(Mqtt::builder(cfg)).await;

    // Every instance connected and subscribed: probes go round robin until each one got one.
    let mut connected_apps = 0;
    while connected_apps < apps {
        match app_line(&rx, WAIT).await {
            Some((_, apps::Line::Connected)) => connected_apps += 1,
            Some(_) => {}
            None => fail("an app did not connect"),
        }
    }
    let mut probed = vec![false; apps];
    let deadline = Instant::now() + WAIT;
    while probed.iter().any(|p| !p) {
        if Instant::now() > deadline {
            fail("an app never received a probe");
        }
        publisher
            .publish(format!("{t}/probe"), "probe")
            .qos(QoS::AtLeastOnce)
            .await
            .unwrap();
        if let Some((i, l)) = app_line(&rx, Duration::from_millis(200)).await {
            if l == apps::Line::Payload("probe".into()) {
                probed[i] = true;
            }
        }
    }
    while app_line(&rx, Duration::from_millis(200)).await.is_some() {} // late probes

    // The load: n QoS 1 publishes, up to 1000 in flight, spread over 16 topics.
    let started = Instant::now();
    let sender = apps::spawn_id_load(&publisher, &t, 0..n);
    let mut counts: Vec<HashMap<u64, u32>> = vec![HashMap::new(); apps];
    let mut handled = 0u64;
    while handled < n {
        match app_line(&rx, Duration::from_secs(30)).await {
            Some((i, apps::Line::Payload(payload))) => {
                if let Ok(id) = payload.parse::<u64>() {
                    *counts[i].entry(id).or_default() += 1;
                    handled += 1;
                }
            }
            Some(_) => {}
            None => fail(&format!("only {handled} of {n} messages handled")),
        }
    }
    let elapsed = started.elapsed();
    sender.await.expect("publisher task");
    // Nothing more arrives (no duplicates in flight).
    if let Some((i, l)) = app_line(&rx, Duration::from_millis(300)).await {
        fail(&format!("app {i} got more than {n} messages: {l:?}"));
    }
    publisher.shutdown(WAIT).await;
    Some((counts, elapsed))
}

/// Three app processes (`--no-broker`, `MQTT_BROKER_URL`, `MQTT_SHARED_GROUP`) against one
/// Mosquitto: 100k QoS 1 messages are split among them and each is handled exactly once in total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_three_apps_handle_each_message_once() {
    let n = 100_000;
    let Some((counts, elapsed)) = scale_out(3, n).await else {
        return;
    };
    let shares: Vec<usize> = counts.iter().map(HashMap::len).collect();
    eprintln!(
        "3 apps: {n} QoS 1 messages in {elapsed:.2?} ({:.0} msg/s), split {shares:?}",
        n as f64 / elapsed.as_secs_f64()
    );
    let mut total: HashMap<u64, u32> = HashMap::new();
    for c in &counts {
        for (id, k) in c {
            *total.entry(*id).or_default() += k;
        }
    }
    let missing = (0..n).filter(|id| !total.contains_key(id)).count();
    let twice: Vec<_> = total.iter().filter(|(_, k)| **k > 1).take(10).collect();
    assert_eq!(missing, 0, "messages never handled");
    assert!(
        twice.is_empty(),
        "messages handled more than once: {twice:?}"
    );
    assert_eq!(total.len() as u64, n);
    for (i, s) in shares.iter().enumerate() {
        assert!(
            *s as u64 >= n / 10,
            "app {i} handled only {s} of {n}: the load is not shared {shares:?}"
        );
    }
}

/// Throughput with 1 and with 3 app processes (run by hand, in release, see docs/scale-out.md):
/// `cargo build --release -p axum-mqtt-app && cargo test --release -p axum-mqtt --test faults
/// scale_out_throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand in release"]
async fn scale_out_throughput() {
    let n = 100_000;
    for apps in [1, 3, 1, 3] {
        let Some((counts, elapsed)) = scale_out(apps, n).await else {
            return;
        };
        let handled: usize = counts.iter().map(HashMap::len).sum();
        assert_eq!(handled as u64, n);
        eprintln!(
            "{apps} app(s): {n} QoS 1 messages in {elapsed:.2?} = {:.0} msg/s",
            n as f64 / elapsed.as_secs_f64()
        );
    }
}
