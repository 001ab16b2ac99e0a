//! The Host check against DNS rebinding (issue 12, defect 2), on the real binary: a request naming a
//! host the app is not is refused on every route but `/healthz` and publishes nothing; the app's own
//! names and `--allowed-host` names are served; on a non-loopback address the banner says what it
//! accepts.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn json_headers<'a>(host: &'a str, origin: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("Host", host),
        ("Origin", origin),
        ("Content-Type", "application/json"),
    ]
}

/// Waits until `/api/messages` holds a message with `payload`, and returns every payload kept.
async fn history_until(app: &App, payload: &str) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let r: Value = reqwest::get(app.url("/api/messages?limit=1000"))
            .await
            .expect("GET /api/messages")
            .json()
            .await
            .expect("JSON");
        let payloads: Vec<String> = r["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter_map(|m| m["payload"].as_str().map(String::from))
            .collect();
        if payloads.iter().any(|p| p == payload) {
            return payloads;
        }
        assert!(
            Instant::now() < deadline,
            "{payload:?} never reached the history: {r}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rebinding_curl_from_the_issue_is_refused_and_publishes_nothing() {
    let app = App::start(&[], &[]).await;
    let port = app.http_port;
    let host = format!("rebind.example:{port}");
    let origin = format!("http://rebind.example:{port}");
    let refused = unique("refused");
    let body = json!({"topic": "/flask/mqtt", "msg": refused}).to_string();
    let (status, v) = raw_http(
        port,
        "POST",
        "/publish",
        &json_headers(&host, &origin),
        &body,
    )
    .await;
    assert_eq!(status, 421, "{v}");
    assert_eq!(v["kind"], "host_not_allowed", "{v}");
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(msg.contains(&host), "names the refused Host: {msg}");
    assert!(
        msg.contains("--allowed-host rebind.example"),
        "says how to allow it: {msg}"
    );

    // The same request under the app's own name publishes; the app's subscription to /flask/mqtt
    // keeps what arrives in order, so once this one is in the history the refused one would be too.
    let accepted = unique("accepted");
    let own = format!("127.0.0.1:{port}");
    let body = json!({"topic": "/flask/mqtt", "msg": accepted}).to_string();
    let (status, v) = raw_http(
        port,
        "POST",
        "/publish",
        &json_headers(&own, &format!("http://{own}")),
        &body,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let kept = history_until(&app, &accepted).await;
    assert!(
        !kept.contains(&refused),
        "the refused publish got through: {kept:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_healthz_refuses_a_foreign_host() {
    let app = App::start(&[], &[]).await;
    let port = app.http_port;
    let host = format!("rebind.example:{port}");
    for path in [
        "/",
        "/assets/app.js",
        "/api/info",
        "/api/messages",
        "/events?filter=a/%23",
        "/ws",
        "/metrics",
        "/openapi.json",
        "/asyncapi.json",
        "/no-such-route",
    ] {
        let (status, v) = raw_http(port, "GET", path, &[("Host", &host)], "").await;
        assert_eq!(
            (status, v["kind"].as_str()),
            (421, Some("host_not_allowed")),
            "{path}: {v}"
        );
    }
    // A load balancer's probe names the backend however it likes.
    let (status, v) = raw_http(port, "GET", "/healthz", &[("Host", &host)], "").await;
    assert_eq!(status, 200, "{v}");
    // No Host at all (HTTP/1.0 style).
    let (status, v) = raw_http(port, "GET", "/api/info", &[], "").await;
    assert_eq!(
        (status, v["kind"].as_str()),
        (400, Some("missing_host")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_own_names_are_served() {
    let app = App::start(&[], &[]).await;
    let port = app.http_port;
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let (status, v) = raw_http(port, "GET", "/api/info", &[("Host", &host)], "").await;
        assert_eq!(status, 200, "{host}: {v}");
        let origin = format!("http://{host}");
        let body = json!({"topic": "hosts/own", "msg": "hi"}).to_string();
        let (status, v) = raw_http(
            port,
            "POST",
            "/publish",
            &json_headers(&host, &origin),
            &body,
        )
        .await;
        assert_eq!(status, 200, "{host}: {v}");
    }
    // localhost on another port is another server.
    let other = format!("localhost:{}", port.wrapping_add(1));
    let (status, _) = raw_http(port, "GET", "/api/info", &[("Host", &other)], "").await;
    assert_eq!(status, 421);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_host_names_are_served_from_the_flag_and_the_variable() {
    let app = App::start(&["--allowed-host", "app.example,proxy.example:8080"], &[]).await;
    let port = app.http_port;
    for (host, want) in [
        ("app.example".to_string(), 200),
        (format!("app.example:{port}"), 200),
        ("proxy.example:8080".to_string(), 200),
        ("proxy.example".to_string(), 421),
        (format!("rebind.example:{port}"), 421),
    ] {
        let (status, v) = raw_http(port, "GET", "/api/info", &[("Host", &host)], "").await;
        assert_eq!(status, want, "{host}: {v}");
    }
    let banner = app.stdout().join("\n");
    assert!(
        banner.contains("Accepts Host:") && banner.contains("app.example"),
        "{banner}"
    );
    drop(app);

    let app = App::start(&[], &[("APP_ALLOWED_HOSTS", "env.example")]).await;
    let (status, v) = raw_http(
        app.http_port,
        "GET",
        "/api/info",
        &[("Host", "env.example")],
        "",
    )
    .await;
    assert_eq!(status, 200, "{v}");
    drop(app);

    let app = App::start(&["--allowed-host", "*"], &[]).await;
    let (status, v) = raw_http(
        app.http_port,
        "GET",
        "/api/info",
        &[("Host", "anything.example")],
        "",
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let banner = app.stdout().join("\n");
    assert!(banner.contains("check is off"), "{banner}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_every_interface_the_banner_says_what_it_accepts() {
    let mut app = App::spawn(
        &[
            "--http",
            "0.0.0.0:0",
            "--broker-listen",
            "127.0.0.1:0",
            "--broker-ws",
            "off",
        ],
        &[],
        false,
    );
    app.wait_ready().await;
    let banner = app.stdout().join("\n");
    let port = app.http_port;
    assert!(
        banner.contains(&format!("Accepts Host: localhost:{port}"))
            && banner.contains(&format!("any IP address with port {port}"))
            && banner.contains("--allowed-host"),
        "{banner}"
    );
    // An IP address cannot be rebound: any of this machine's is fine, a name is not.
    let (status, _) = raw_http(
        port,
        "GET",
        "/api/info",
        &[("Host", &format!("10.1.2.3:{port}"))],
        "",
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = raw_http(
        port,
        "GET",
        "/api/info",
        &[("Host", &format!("myhost.lan:{port}"))],
        "",
    )
    .await;
    assert_eq!(status, 421);
}

#[test]
fn a_bad_allowed_host_exits_2_naming_the_option() {
    let mut cmd = command();
    cmd.args(["--allowed-host", "http://app.example/"]);
    let (code, _, err) = run_to_end(cmd);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--allowed-host"), "{err}");
}
