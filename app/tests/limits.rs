//! Limits against slow and idle clients (issue 12, defect 3), on the real binary over real sockets:
//! the header-read timeout, the connection cap, the request timeout, the WebSocket and SSE client
//! caps, and the WebSocket dead-peer timeout. Short flags keep it quick; every wait has a deadline.
//! Run with `ulimit -n` well above 1000 (the slow-client test opens 500 sockets).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection (EOF or reset); panics after `limit`.
async fn until_closed(tcp: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read_all)
        .await
        .expect("the server did not close the connection in time");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_half_sent_heads_do_not_stop_healthz_and_are_closed_after_the_timeout() {
    let app = App::start(
        &["--header-read-timeout", "2s", "--max-connections", "1000"],
        &[],
    )
    .await;
    let half = format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUser-Agent: slow",
        app.http_port
    );
    let mut slow = Vec::new();
    for _ in 0..500 {
        let mut tcp = TcpStream::connect(("127.0.0.1", app.http_port))
            .await
            .expect("connect (is ulimit -n above 1000?)");
        tcp.write_all(half.as_bytes()).await.expect("write");
        slow.push(tcp);
    }
    let sent = Instant::now();

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let t = Instant::now();
    let r = client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("/healthz answers within 1 s while 500 clients dawdle");
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "the check ran after the timeout"
    );

    for tcp in &mut slow {
        until_closed(tcp, Duration::from_secs(2) + WAIT).await;
    }
    let closed_after = sent.elapsed();
    assert!(
        closed_after >= Duration::from_millis(1900),
        "closed before the header-read timeout: {closed_after:?}"
    );
    // And the app still serves.
    assert_eq!(
        client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_new_connections_wait_until_a_slot_frees() {
    let app = App::start(
        &["--max-connections", "4", "--header-read-timeout", "1s"],
        &[],
    )
    .await;
    // Let the readiness probe's connection go before filling every slot.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(
            TcpStream::connect(("127.0.0.1", app.http_port))
                .await
                .unwrap(),
        );
    }
    let t = Instant::now();
    let host = format!("127.0.0.1:{}", app.http_port);
    let (status, v) = raw_http(app.http_port, "GET", "/api/info", &[("Host", &host)], "").await;
    assert_eq!(status, 200, "{v}");
    // Served once the silent ones were closed by the header-read timeout, not before.
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "a fifth connection was served at once: {:?}",
        t.elapsed()
    );
    for tcp in &mut idle {
        until_closed(tcp, WAIT).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_body_never_comes_gets_408() {
    let app = App::start(&["--request-timeout", "500ms"], &[]).await;
    let mut tcp = TcpStream::connect(("127.0.0.1", app.http_port))
        .await
        .unwrap();
    let head = format!(
        "POST /publish HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"topic\":",
        app.http_port
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let t = Instant::now();
    let answer = String::from_utf8_lossy(&until_closed(&mut tcp, WAIT).await).into_owned();
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"kind\":\"request_timeout\""), "{answer}");
    assert!(answer.contains("--request-timeout"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_over_the_cap_gets_503_json_and_a_freed_slot_is_reused() {
    let app = App::start(&["--max-ws-clients", "3"], &[]).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(ws_connect(&app, "").await);
    }
    let Err(err) = tokio_tungstenite::connect_async(app.ws_url("")).await else {
        panic!("the fourth WebSocket was accepted");
    };
    let tokio_tungstenite::tungstenite::Error::Http(resp) = err else {
        panic!("expected an HTTP refusal, got {err:?}");
    };
    assert_eq!(resp.status(), 503);
    let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
    assert_eq!(body["kind"], "too_many_clients", "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("--max-ws-clients"),
        "{body}"
    );

    // Close one; its slot comes back once the app has seen the close.
    let mut gone = open.pop().unwrap();
    gone.raw.close(None).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio_tungstenite::connect_async(app.ws_url("")).await {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "no slot came back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sse_client_over_the_cap_gets_503_json() {
    let app = App::start(&["--max-sse-clients", "2"], &[]).await;
    let client = reqwest::Client::new();
    let mut open = Vec::new();
    for _ in 0..2 {
        let r = client
            .get(app.url("/events?filter=limits/%23"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        open.push(r);
    }
    let r = client
        .get(app.url("/events?filter=limits/%23"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["kind"], "too_many_clients", "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("--max-sse-clients"),
        "{body}"
    );
}

/// Server frames are unmasked: (opcode, payload length, header length) of the frame at `b`.
fn frame_at(b: &[u8]) -> Option<(u8, usize, usize)> {
    let (op, len7) = (*b.first()? & 0x0f, *b.get(1)? & 0x7f);
    match len7 {
        126 => Some((op, u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize, 4)),
        127 => {
            let n: [u8; 8] = b.get(2..10)?.try_into().ok()?;
            Some((op, u64::from_be_bytes(n) as usize, 10))
        }
        n => Some((op, n as usize, 2)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_peer_that_never_answers_pings_is_closed_after_the_peer_timeout() {
    let app = App::start(
        &["--ws-ping-interval", "200ms", "--ws-peer-timeout", "1s"],
        &[],
    )
    .await;
    // The upgrade by hand; after it the client reads but never writes a byte (so no pong).
    let mut tcp = TcpStream::connect(("127.0.0.1", app.http_port))
        .await
        .unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        app.http_port
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let t = Instant::now();
    let bytes = until_closed(&mut tcp, WAIT).await;
    let lived = t.elapsed();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    let head_end = text.find("\r\n\r\n").unwrap() + 4;
    let mut at = head_end;
    let mut ops = Vec::new();
    while let Some((op, len, hdr)) = frame_at(&bytes[at..]) {
        ops.push(op);
        at += hdr + len;
    }
    assert!(ops.contains(&0x9), "no ping was sent: opcodes {ops:?}");
    assert!(
        lived >= Duration::from_millis(900),
        "closed before the peer timeout: {lived:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_peer_that_answers_pings_stays() {
    let app = App::start(
        &["--ws-ping-interval", "200ms", "--ws-peer-timeout", "1s"],
        &[],
    )
    .await;
    let mut ws = ws_connect(&app, "").await;
    // Reading lets tungstenite answer the pings; read past three peer timeouts.
    let until = Instant::now() + Duration::from_secs(3);
    let mut pings = 0;
    while let Ok(m) =
        tokio::time::timeout_at(until.into(), futures_util::StreamExt::next(&mut ws.raw)).await
    {
        match m.expect("open").expect("no error") {
            tokio_tungstenite::tungstenite::Message::Ping(_) => pings += 1,
            tokio_tungstenite::tungstenite::Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
    assert!(pings >= 5, "{pings} pings in 3 s");
    let ack = op(
        &mut ws,
        json!({"op": "subscribe", "id": 1, "filter": "limits/alive"}),
    )
    .await;
    assert_eq!(ack["type"], "ack", "{ack}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_dawdling_clients_still_stops_promptly() {
    let mut app = App::start(&["--header-read-timeout", "30s"], &[]).await;
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut tcp = TcpStream::connect(("127.0.0.1", app.http_port))
            .await
            .unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .unwrap();
        slow.push(tcp);
    }
    let mut ws = ws_connect(&app, "").await;
    let sse = reqwest::get(app.url("/events?filter=limits/%23"))
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let t = Instant::now();
    let status = app
        .signal_and_wait("TERM", Duration::from_secs(8))
        .expect("the app stops");
    assert!(status.success(), "{status:?}");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "took {:?}",
        t.elapsed()
    );
    assert!(!app.stderr().contains("did not close"), "{}", app.stderr());
    // The WebSocket got its 1001.
    let code = loop {
        match futures_util::StreamExt::next(&mut ws.raw).await {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(c))) => {
                break c.map(|c| u16::from(c.code))
            }
            Some(Ok(_)) => continue,
            _ => break None,
        }
    };
    assert_eq!(code, Some(1001));
}
