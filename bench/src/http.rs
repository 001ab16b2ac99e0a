//! HTTP side: the `serve-http` child (axum with the library's `PublishEndpoint`, or a no-op POST
//! for the HTTP ceiling) and a closed-loop load client (one HTTP/1.1 keep-alive connection per
//! concurrency slot, each sending its next request when the previous answer arrived).

use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use axum::routing::post;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::procinfo::percentile;

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// `publish` (axum_mqtt::web::PublishEndpoint), `outbox` (the same through a durable outbox in
    /// a temporary file), `naive` (axum `Json` + bare rumqttc, fire and forget: what a user writes
    /// without this crate) or `noop` (returns without publishing).
    #[arg(long)]
    pub mode: String,
    /// Broker port (publish mode).
    #[arg(long, default_value_t = 0)]
    pub mqtt_port: u16,
}

/// The `serve-http` subcommand: prints `{"event":"ready","port":N}`, serves until stdin closes.
pub async fn serve(args: ServeArgs) -> Result<(), String> {
    let (app, mqtt) = match args.mode.as_str() {
        "noop" => (
            axum::Router::new().route(
                "/publish",
                post(|_body: Bytes| async { axum::Json(serde_json::json!({"code": 0, "mid": 0})) }),
            ),
            None,
        ),
        mode @ ("publish" | "outbox") => {
            // Library defaults, as the app would run them; `outbox` adds a durable outbox in a
            // fresh temporary file.
            let mut cfg = axum_mqtt::MqttConfig::new("127.0.0.1", args.mqtt_port);
            cfg.client_id = format!("bench-http-{mode}-{}", std::process::id());
            if mode == "outbox" {
                let path = std::env::temp_dir().join(format!("{}.db", cfg.client_id));
                let _ = std::fs::remove_file(&path);
                cfg.outbox = Some(axum_mqtt::OutboxConfig::new(path));
            }
            let mqtt = axum_mqtt::Mqtt::start(cfg)
                .await
                .map_err(|e| e.to_string())?;
            let st = mqtt.wait_connected(Duration::from_secs(10)).await;
            if st.status != axum_mqtt::Status::Connected {
                return Err(format!("not connected: {:?}", st.last_error));
            }
            (
                axum_mqtt::web::PublishEndpoint::new().router(mqtt.clone()),
                Some(mqtt),
            )
        }
        "naive" => (naive(args.mqtt_port), None),
        other => return Err(format!("unknown mode {other:?}")),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    println!(
        "{}",
        serde_json::json!({"event": "ready", "port": port, "pid": std::process::id()})
    );
    let stop = async {
        let mut buf = String::new();
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
        use tokio::io::AsyncBufReadExt;
        while stdin
            .read_line(&mut buf)
            .await
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            buf.clear();
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(m) = mqtt {
        m.shutdown(Duration::from_secs(2)).await;
    }
    Ok(())
}

/// The reference for `POST /publish`: what a Rust user writes without this crate. An axum handler
/// taking `Json<{topic, msg, qos}>` and calling bare rumqttc `AsyncClient::publish` without waiting
/// for the broker (as Flask-MQTT does), with its own event-loop task.
fn naive(port: u16) -> axum::Router {
    #[derive(serde::Deserialize)]
    struct Req {
        topic: String,
        msg: String,
        #[serde(default)]
        qos: u8,
    }
    let mut opts = rumqttc::MqttOptions::new(
        format!("bench-naive-{}", std::process::id()),
        "127.0.0.1",
        port,
    );
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 1000);
    tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    axum::Router::new().route(
        "/publish",
        post(move |axum::Json(r): axum::Json<Req>| {
            let client = client.clone();
            async move {
                let qos = match r.qos {
                    1 => rumqttc::QoS::AtLeastOnce,
                    2 => rumqttc::QoS::ExactlyOnce,
                    _ => rumqttc::QoS::AtMostOnce,
                };
                match client.publish(r.topic, qos, false, r.msg).await {
                    Ok(()) => axum::Json(serde_json::json!({"code": 0})).into_response(),
                    Err(e) => (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(serde_json::json!({"code": 1, "error": e.to_string()})),
                    )
                        .into_response(),
                }
            }
        }),
    )
}

/// Results of one load run.
#[derive(Debug, Clone, Default)]
pub struct Load {
    pub ok: u64,
    pub failed: u64,
    pub secs: f64,
    pub p50_us: u32,
    pub p99_us: u32,
    pub first_error: Option<String>,
}

impl Load {
    pub fn rps(&self) -> f64 {
        if self.secs > 0.0 {
            self.ok as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// `concurrency` connections POSTing `body(seq)` to `path` for `secs` seconds.
pub async fn load(
    port: u16,
    path: &str,
    concurrency: usize,
    secs: f64,
    body: impl Fn(u64) -> Bytes + Send + Sync + Clone + 'static,
) -> Result<Load, String> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let body = body.clone();
        let path = path.to_string();
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let _ = stream.set_nodelay(true);
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(conn);
            let mut lat: Vec<u32> = Vec::with_capacity(1 << 16);
            let (mut ok, mut failed, mut first_error) = (0u64, 0u64, None);
            let mut seq = (w as u64) << 40;
            while Instant::now() < deadline {
                seq += 1;
                let req = Request::post(path.as_str())
                    .header(HOST, "127.0.0.1")
                    .header(CONTENT_TYPE, "application/json")
                    .body(Full::new(body(seq)))
                    .map_err(|e| e.to_string())?;
                let t = Instant::now();
                if sender.ready().await.is_err() {
                    failed += 1;
                    break;
                }
                let resp = match sender.send_request(req).await {
                    Ok(r) => r,
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                        break;
                    }
                };
                let status = resp.status();
                let bytes = resp
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                if status.is_success() {
                    ok += 1;
                } else {
                    failed += 1;
                    first_error.get_or_insert_with(|| {
                        format!("{status}: {}", String::from_utf8_lossy(&bytes))
                    });
                }
            }
            Ok::<_, String>((ok, failed, lat, first_error))
        }));
    }
    let mut out = Load::default();
    let mut lat = Vec::new();
    for t in tasks {
        let (ok, failed, l, e) = t.await.map_err(|e| e.to_string())??;
        out.ok += ok;
        out.failed += failed;
        lat.extend(l);
        if out.first_error.is_none() {
            out.first_error = e;
        }
    }
    out.secs = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    out.p50_us = percentile(&lat, 50.0);
    out.p99_us = percentile(&lat, 99.0);
    Ok(out)
}

/// One request on a fresh connection; returns status and body (for the Flask app's /stats).
pub async fn request(port: u16, method: &str, path: &str) -> Result<(u16, Bytes), String> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect {port}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, "127.0.0.1")
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}
