//! rmqtt's inter-node gRPC server, served on a listener bound here.
//!
//! Hand-written glue, with a reason: rmqtt's own `Node::start_grpc_server` binds by address, so the
//! port must be chosen (and free) before start — no port 0, several clusters per machine race —
//! and its `SO_REUSEPORT` variant skips `TCP_NODELAY` on accepted sockets, which was measured to
//! cost a Nagle stall per hop (a 3-node shared group: 147 msg/s with it, 4 500 msg/s without). The
//! pieces are rmqtt's and handy-grpc's own (`DataTransferServer`, `Message::decode`, the hook
//! `grpc_message_received`); what is ours is only the accept loop, with `TCP_NODELAY` set.

use std::time::Duration;

use futures_util::StreamExt;
use rmqtt::context::ServerContext;
use rust_box::handy_grpc::server::{DataTransferService, Message as GrpcMessage};
use rust_box::handy_grpc::transferpb::data_transfer_server::DataTransferServer;
use rust_box::handy_grpc::Priority;
use rust_box::mpsc::priority_channel;

/// Largest gRPC message either way, as rmqtt's own server.
const MAX_MESSAGE: usize = 4 << 20;
/// How long a message split in chunks may take to arrive in full (handy-grpc's default).
const RECV_CHUNKS_TIMEOUT: Duration = Duration::from_secs(30);
/// Chunk size of what the server streams back (handy-grpc's default).
const CHUNK_SIZE: usize = 1 << 20;
/// Messages from peers waiting to be handled; handy-grpc's sender waits when it is full.
const QUEUE: usize = 100_000;

/// Serves the cluster's gRPC on `listener` until the runtime ends.
pub(crate) async fn serve(scx: ServerContext, listener: tokio::net::TcpListener) {
    let (tx, mut rx) = priority_channel::<Priority, GrpcMessage>(QUEUE);
    let handle = async move {
        // Bounded concurrency, as rmqtt's own server (same executor settings).
        let exec = scx.get_exec(("GRPC_SERVER_EXEC", 5_000, 50_000));
        while let Some((_, (data, reply_tx))) = rx.next().await {
            let scx = scx.clone();
            let job = async move {
                let reply = on_message(&scx, &data).await;
                if let Some(reply_tx) = reply_tx {
                    // The peer gave up waiting: nothing to do.
                    let _ = reply_tx.send(reply);
                }
            };
            if exec.spawn(job).await.is_err() {
                tracing::warn!("cluster gRPC: a message from a peer was refused (executor full)");
            }
        }
    };
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok::<_, std::io::Error>(conn)
    });
    let service = DataTransferServer::new(DataTransferService::new(
        tx,
        RECV_CHUNKS_TIMEOUT,
        CHUNK_SIZE,
    ))
    .max_decoding_message_size(MAX_MESSAGE)
    .max_encoding_message_size(MAX_MESSAGE);
    let server = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming(incoming);
    let (_, served) = futures_util::future::join(handle, server).await;
    if let Err(e) = served {
        tracing::error!(error = %e, "cluster gRPC server stopped");
    }
}

/// One message from a peer, handed to the cluster plugin through rmqtt's hook.
async fn on_message(scx: &ServerContext, data: &[u8]) -> rmqtt::Result<Vec<u8>> {
    let (typ, msg) = rmqtt::grpc::Message::decode(data)?;
    let reply = scx
        .extends
        .hook_mgr()
        .grpc_message_received(typ, msg)
        .await?;
    reply.encode()
}
