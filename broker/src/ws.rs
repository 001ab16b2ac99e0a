//! MQTT over WebSocket: our own WebSocket listener that relays each connection to the broker's TCP
//! listener.
//!
//! Why not rmqtt's `ws` listener: rmqtt-net 0.4 hands a WebSocket message's bytes to the MQTT
//! decoder as one read, so an empty message reads as 0 bytes, i.e. end of stream, and the
//! connection is dropped without a word. MQTT.js writes an empty buffer for an empty payload or an
//! empty (aliased) topic, so its QoS 1 publishes of those never got their PUBACK (found by
//! `tests/interop.rs`). The relay skips empty and control messages, keeps one WebSocket message
//! per read as MQTT over WebSocket requires nothing more, and answers the `mqtt` sub-protocol that
//! MQTT.js and browsers ask for. Backpressure is the TCP connection's: nothing is buffered beyond
//! one message in each direction.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// What one relay needs to know.
#[derive(Clone, Copy)]
pub(crate) struct Relay {
    /// The broker's TCP listener, as reachable from this process.
    pub broker: SocketAddr,
    pub max_packet_size: usize,
    pub handshake_timeout: Duration,
}

/// Accepts WebSocket connections until the runtime is dropped.
pub(crate) async fn serve(listener: TcpListener, relay: Relay, max_connections: usize) {
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "WebSocket listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max_connections, "WebSocket connection refused: too many connections");
            continue; // dropping the stream closes it
        };
        tokio::spawn(async move {
            if let Err(e) = relay_one(stream, relay).await {
                tracing::debug!(%peer, error = %e, "WebSocket connection ended");
            }
            drop(slot);
        });
    }
}

// The handshake callback's error type is tungstenite's `ErrorResponse`, not ours to shrink.
#[allow(clippy::result_large_err)]
async fn relay_one(stream: TcpStream, relay: Relay) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(relay.max_packet_size);
    config.max_frame_size = Some(relay.max_packet_size);
    let choose_mqtt = |req: &Request, mut resp: Response| {
        let offered = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .find(|p| p.eq_ignore_ascii_case("mqtt") || p.eq_ignore_ascii_case("mqttv3.1"));
        if let Some(p) = offered.and_then(|p| HeaderValue::from_str(p).ok()) {
            resp.headers_mut().insert("sec-websocket-protocol", p);
        }
        Ok(resp)
    };
    let ws = tokio::time::timeout(
        relay.handshake_timeout,
        tokio_tungstenite::accept_hdr_async_with_config(stream, choose_mqtt, Some(config)),
    )
    .await
    .map_err(|_| "WebSocket handshake timed out".to_string())?
    .map_err(|e| format!("WebSocket handshake: {e}"))?;
    let broker = TcpStream::connect(relay.broker)
        .await
        .map_err(|e| format!("cannot reach the broker's TCP listener: {e}"))?;
    let _ = broker.set_nodelay(true);
    let (mut from_broker, mut to_broker) = broker.into_split();
    let (mut to_client, mut from_client) = ws.split();

    let upstream = async {
        while let Some(msg) = from_client.next().await {
            match msg.map_err(|e| e.to_string())? {
                Message::Binary(b) if !b.is_empty() => {
                    to_broker.write_all(&b).await.map_err(|e| e.to_string())?
                }
                Message::Close(_) => break,
                // Empty, text, ping (answered by tungstenite) and pong messages carry no MQTT.
                _ => {}
            }
        }
        let _ = to_broker.shutdown().await;
        Ok::<(), String>(())
    };
    let downstream = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = from_broker
                .read(&mut buf)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            to_client
                .send(Message::Binary(buf[..n].to_vec().into()))
                .await
                .map_err(|e| e.to_string())?;
        }
        let _ = to_client.close().await;
        Ok::<(), String>(())
    };
    // Either side ending ends both: the other half is dropped, which closes its socket.
    tokio::select! {
        r = upstream => r,
        r = downstream => r,
    }
}
