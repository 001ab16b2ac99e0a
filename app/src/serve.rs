//! The HTTP server: hyper's HTTP/1 connection under an accept loop that bounds how many
//! connections are open, with hyper's header-read timeout against clients that send their request
//! head slowly or not at all.
//!
//! `axum::serve` offers neither, so this replaces it. What it keeps: WebSocket upgrades, and a
//! graceful shutdown that stops accepting, lets requests in flight finish and closes idle
//! connections. Upgraded connections (WebSockets) leave hyper and their slot here once upgraded;
//! they are bounded by `--max-ws-clients` and end with the app on their own (code 1001).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// How long, at shutdown, a connection may take to finish what it is doing.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// What bounds the server.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Time to send a whole request head; also how long an idle keep-alive connection stays.
    pub header_read_timeout: Duration,
    /// Connections open at once; past that, new ones wait in the listen backlog.
    pub max_connections: usize,
}

/// Serves `app` on `listener` until `stop` resolves, then waits for open requests to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS) as u32;
    let slots = Arc::new(Semaphore::new(max as usize));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(stop);
    let mut full = false;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                full = false;
                slot
            }
            Err(_) => {
                if !full {
                    tracing::warn!(
                        max,
                        "{max} HTTP connections are open (--max-connections): new ones wait until one closes"
                    );
                    full = true;
                }
                tokio::select! {
                    _ = &mut stop => break,
                    s = slots.clone().acquire_owned() => match s {
                        Ok(s) => s,
                        Err(_) => break, // never closed
                    },
                }
            }
        };
        let (tcp, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::error!(error = %e, "cannot accept HTTP connections");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let conn = http
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(app.clone()))
            .with_upgrades();
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = async { closing.wait_for(|c| *c).await.is_ok() } => {
                    conn.as_mut().graceful_shutdown();
                    // Idle connections close at once and answers in flight finish; one still
                    // sending its request head would be waited for until the header-read
                    // timeout, so it gets a short grace and is then dropped.
                    match tokio::time::timeout(SHUTDOWN_GRACE, conn).await {
                        Ok(r) => r,
                        Err(_) => Ok(()),
                    }
                }
            };
            if let Err(e) = result {
                // Header-read timeouts, resets, bad request heads: the client's business.
                tracing::debug!(%peer, error = %e, "HTTP connection ended");
            }
        });
    }
    drop(listener);
    closing_tx.send_replace(true);
    // Each connection holds a slot until it has closed: all slots back means all are closed.
    let _all = slots.acquire_many(max).await;
    Ok(())
}

/// Accept errors about one connection (it went away before it was accepted), not the listener.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
