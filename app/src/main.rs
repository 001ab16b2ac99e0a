//! The axum-mqtt app: an embedded MQTT broker, an MQTT client, an HTTP API and a live page.
//!
//! `cargo run --release` and open the printed URL. `--help` lists every option.

mod addr;
mod allow;
mod api;
mod assets;
mod asyncapi;
mod cli;
mod guard;
mod host;
mod messages;
mod metrics;
mod openapi;
mod routes;
mod serve;
mod slots;
mod state;
mod streams;
mod ws;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum_mqtt::web::{self, PublishEndpoint};
use axum_mqtt::{Message, Mqtt, Transport};
use axum_mqtt_broker::{BrokerError, EmbeddedBroker};
use clap::Parser;
use tokio::sync::watch;

use crate::addr::url_authority;
use crate::allow::AllowList;
use crate::assets::Assets;
use crate::cli::{Cli, Settings};
use crate::host::AllowedHosts;
use crate::messages::MessageLog;
use crate::metrics::{Client, Metrics};
use crate::slots::Slots;
use crate::state::{AppState, Endpoints, Limits, Listener};

/// Bytes of topics and payloads kept for `GET /api/messages`.
const HISTORY_BYTES: usize = 16 * 1024 * 1024;

fn main() -> ExitCode {
    // The embedded broker (rmqtt) logs through `log`; tracing-subscriber bridges it, so
    // RUST_LOG=info,rmqtt=debug shows its records too. Its per-connection lines stay at warn.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rmqtt=warn,rmqtt_net=warn,rmqtt_retainer=warn,rmqtt_shared_subscription=warn".into()),
        )
        .init();
    let settings = match Cli::parse().into_settings() {
        Ok(s) => s,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(settings));
    // Everything that matters has finished; do not wait for idle worker threads.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn broker_error(e: BrokerError) -> String {
    match e {
        BrokerError::Bind { addr, what, source } => {
            let flag = match what {
                "WebSocket" => "--broker-ws / APP_BROKER_WS_ADDR",
                "TLS" => "--broker-tls / APP_BROKER_TLS_ADDR",
                _ => "--broker-listen / APP_BROKER_ADDR",
            };
            format!(
                "the embedded MQTT broker cannot listen on {addr} ({what}): {source}. \
                 Is another broker running there? Choose another address with {flag}, \
                 or use that broker with --no-broker and MQTT_BROKER_URL"
            )
        }
        other => other.to_string(),
    }
}

fn broker_url(cfg: &axum_mqtt::MqttConfig) -> String {
    let host = if cfg.broker_url.contains(':') {
        format!("[{}]", cfg.broker_url)
    } else {
        cfg.broker_url.clone()
    };
    match (cfg.transport, cfg.tls.enabled) {
        (Transport::Tcp, false) => format!("mqtt://{host}:{}", cfg.broker_port),
        (Transport::Tcp, true) => format!("mqtts://{host}:{}", cfg.broker_port),
        (Transport::Websockets, false) => format!("ws://{host}:{}{}", cfg.broker_port, cfg.ws_path),
        (Transport::Websockets, true) => format!("wss://{host}:{}{}", cfg.broker_port, cfg.ws_path),
    }
}

async fn run(mut s: Settings) -> Result<(), String> {
    // The web port first: a second copy of the app fails here before touching any broker.
    let listener = tokio::net::TcpListener::bind(s.http).await.map_err(|e| {
        format!(
            "cannot listen on {} for the web page and HTTP API: {e}. \
             Is another copy running? Choose another address with --http / APP_HTTP_ADDR",
            s.http
        )
    })?;
    let http_addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Before anything that measures: the MQTT client registers its metrics when it starts.
    let metrics = Arc::new(Metrics::install()?);

    let broker = match s.broker.clone() {
        Some(cfg) => Some(
            tokio::task::spawn_blocking(move || EmbeddedBroker::start(cfg))
                .await
                .map_err(|e| format!("embedded broker failed to start: {e}"))?
                .map_err(broker_error)?,
        ),
        None => None,
    };
    if let Some(b) = &broker {
        s.connect_to_embedded(b);
    }

    let log = Arc::new(MessageLog::new(s.history, HISTORY_BYTES));
    let mut routes = axum_mqtt::Router::new();
    for filter in &s.subscribe {
        let log = log.clone();
        routes = routes.route(filter, move |msg: Message| async move {
            println!(
                "Received message on topic: {} with payload: {}",
                msg.topic(),
                String::from_utf8_lossy(msg.payload())
            );
            log.push(&msg);
        });
    }
    let mqtt = Mqtt::builder(s.mqtt.clone())
        .router(routes)
        .on_connect(|_mqtt, ack| async move {
            if ack.is_success() {
                println!("Connected successfully");
            } else {
                println!("Bad connection. Code: {}", ack.code);
            }
        })
        .start()
        .await
        .map_err(|e| format!("cannot start the MQTT client: {e}"))?;

    let mut publish = PublishEndpoint::new().max_payload(s.max_payload);
    if !s.allow_publish.is_empty() {
        publish = publish
            .allow(&s.allow_publish)
            .map_err(|e| format!("--allow-publish: {e}"))?;
    }
    let max_ws_message = s.max_payload * 2 + 64 * 1024;
    let limits = Limits {
        max_payload: s.max_payload,
        max_ws_message,
        ws_queue: s.ws_queue,
        ws_queue_bytes: (8 * 1024 * 1024).max(2 * max_ws_message),
        ws_max_subscriptions: ws::MAX_SUBSCRIPTIONS,
        history: s.history,
        max_ws_clients: s.http_limits.max_ws_clients,
        max_sse_clients: s.http_limits.max_sse_clients,
        ws_ping_interval: s.http_limits.ws_ping_interval,
        ws_peer_timeout: s.http_limits.ws_peer_timeout,
    };
    let mut listeners = Vec::new();
    if let Some(b) = &broker {
        listeners.push(Listener {
            protocol: "MQTT 3.1.1 and 5",
            url: format!("mqtt://{}", url_authority(b.tcp_addr())),
        });
        if let Some(a) = b.ws_addr() {
            listeners.push(Listener {
                protocol: "MQTT over WebSocket",
                url: format!("ws://{}/mqtt", url_authority(a)),
            });
        }
        if let Some(a) = b.tls_addr() {
            listeners.push(Listener {
                protocol: "MQTT over TLS",
                url: format!("mqtts://{}", url_authority(a)),
            });
        }
    }
    let endpoints = Endpoints {
        broker: broker_url(&s.mqtt),
        embedded_broker: listeners,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = AppState {
        mqtt: mqtt.clone(),
        publish,
        allow_subscribe: AllowList::new(s.allow_subscribe.clone()),
        assets: Assets::new(s.assets_dir.clone()),
        token: s.token.as_deref().map(Arc::from),
        log,
        metrics,
        limits,
        endpoints: Arc::new(endpoints),
        subscriptions: Arc::new(s.subscribe.clone()),
        ws_slots: Slots::new(Client::WebSocket, s.http_limits.max_ws_clients),
        sse_slots: Slots::new(Client::Sse, s.http_limits.max_sse_clients),
        shutdown: stop_rx,
    };
    let stopping = state.stopping();
    let hosts = Arc::new(AllowedHosts::new(http_addr, &s.allowed_hosts));
    let app = routes::router(state.clone(), hosts.clone(), s.http_limits.request_timeout);
    let server_limits = serve::ServerLimits {
        header_read_timeout: s.http_limits.header_read_timeout,
        max_connections: s.http_limits.max_connections,
    };
    let mut server =
        tokio::spawn(async move { serve::serve(listener, app, server_limits, stopping).await });

    print_banner(&s, &state, http_addr, &mqtt, &hosts);

    let failed = tokio::select! {
        _ = web::shutdown_signal() => None,
        r = &mut server => Some(match r {
            Ok(Ok(())) => "the web server stopped".to_string(),
            Ok(Err(e)) => format!("the web server failed: {e}"),
            Err(e) => format!("the web server failed: {e}"),
        }),
    };
    println!("Shutting down...");
    // A second Ctrl-C does not wait.
    tokio::spawn(async {
        web::shutdown_signal().await;
        eprintln!("error: interrupted again, exiting now");
        std::process::exit(130);
    });
    let _ = stop_tx.send(true);
    if failed.is_none()
        && tokio::time::timeout(Duration::from_secs(5), &mut server)
            .await
            .is_err()
    {
        tracing::warn!("web connections did not close within 5 s");
        server.abort();
    }
    mqtt.shutdown(Duration::from_secs(3)).await;
    if let Some(b) = broker {
        // Stopping joins the broker's threads: off the async workers.
        let _ = tokio::task::spawn_blocking(move || b.stop()).await;
    }
    match failed {
        None => {
            println!("Stopped.");
            Ok(())
        }
        Some(e) => Err(e),
    }
}

fn print_banner(
    s: &Settings,
    st: &AppState,
    http: std::net::SocketAddr,
    mqtt: &Mqtt,
    hosts: &AllowedHosts,
) {
    let web = format!("http://{}", url_authority(http));
    let mut out = String::new();
    out.push_str(&format!(
        "axum-mqtt app {} is running\n",
        env!("CARGO_PKG_VERSION")
    ));
    out.push_str(&format!("  Web page:     {web}/\n"));
    out.push_str(&format!(
        "  HTTP API:     POST {web}/publish  (OpenAPI: {web}/openapi.json, metrics: {web}/metrics)\n"
    ));
    if st.endpoints.embedded_broker.is_empty() {
        out.push_str("  MQTT broker:  none embedded\n");
    } else {
        out.push_str("  Embedded MQTT broker (rmqtt):\n");
        for l in &st.endpoints.embedded_broker {
            out.push_str(&format!("    {:<27} {}\n", l.protocol, l.url));
        }
    }
    out.push_str(&format!(
        "  MQTT client:  {} as {}\n",
        st.endpoints.broker,
        mqtt.state().client_id
    ));
    if s.subscribe.is_empty() {
        out.push_str("  Subscribed:   nothing (--subscribe)\n");
    } else {
        out.push_str(&format!("  Subscribed:   {}\n", s.subscribe.join(", ")));
    }
    if let Some(dir) = &s.assets_dir {
        out.push_str(&format!(
            "  Page from:    {} (--assets-dir: an edit shows on the next reload)\n",
            dir.display()
        ));
    }
    // On a loopback address the accepted Hosts are the obvious ones; elsewhere, say which they are.
    if hosts.is_off() || hosts.has_names() || !http.ip().is_loopback() {
        let accepts = hosts.describe();
        tracing::info!(accepts = %accepts, "Host check (DNS rebinding)");
        out.push_str(&format!("  Accepts Host: {accepts}\n"));
        if !hosts.is_off() && !hosts.has_names() {
            out.push_str(
                "                (reached under a name? add it with --allowed-host NAME / APP_ALLOWED_HOSTS)\n",
            );
        }
    }
    if st.token.is_some() {
        out.push_str("  Token:        required (APP_TOKEN): the page asks for it\n");
    }
    let topic = s
        .subscribe
        .iter()
        .find(|f| axum_mqtt::topic::validate_topic(f).is_ok())
        .map(String::as_str)
        .unwrap_or("test/topic");
    let auth = if st.token.is_some() {
        " -H \"Authorization: Bearer $APP_TOKEN\""
    } else {
        ""
    };
    if let Some(first) = st.endpoints.embedded_broker.first() {
        let port = first.url.rsplit(':').next().unwrap_or("1883");
        out.push_str(&format!(
            "  Try:          mosquitto_pub -h 127.0.0.1 -p {port} -t '{topic}' -m hello\n"
        ));
    }
    out.push_str(&format!(
        "                curl -X POST {web}/publish -H 'Content-Type: application/json'{auth} -d '{{\"topic\":\"{topic}\",\"msg\":\"hello\"}}'\n"
    ));
    out.push_str("Press Ctrl-C to stop.");
    println!("{out}");
}
