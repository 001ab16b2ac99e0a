//! What both the message handler (`handler.rs`) and the session entries (`shared.rs`) call.
//!
//! axum-mqtt layout: upstream keeps these two functions in the crate root (`lib.rs`, here the
//! module's `mod.rs`), so the root and those two files imported each other in a circle.

use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::net::MqttError;
use rmqtt::{
    grpc::{GrpcClients, Message, MessageReply, MessageType},
    types::{From, OfflineSession, Publish, Reason, To},
    Result,
};

#[inline]
pub(crate) async fn kick(
    grpc_clients: GrpcClients,
    msg_type: MessageType,
    msg: Message,
) -> Result<OfflineSession> {
    // axum-mqtt patch: the node that had the session is the answer, not the first reply. The
    // first reply used to win, and a node without the session answers `Kick(NotExist)` at once:
    // when that came first, the node that had the session removed it (subscriptions and queued
    // messages) and the new connection started empty. Now the replies are read until one brings
    // the session; after the first `NotExist`, the others get `NOT_EXIST_GRACE` to answer, so a
    // node that died without its circuit breaker open yet (its request waits the full 15 s
    // timeout) delays a connect by that much at most. No node with the session, every reply in
    // or the grace over: no session, as before.
    const NOT_EXIST_GRACE: Duration = Duration::from_secs(1);
    use futures::stream::{FuturesUnordered, StreamExt};
    let mut replies: FuturesUnordered<_> = grpc_clients
        .iter()
        .map(|(_, (_, client))| {
            rmqtt::grpc::MessageSender::new(
                client.clone(),
                msg_type,
                msg.clone(),
                Some(Duration::from_secs(15)),
            )
            .send()
        })
        .collect();
    let mut deadline = None;
    let mut last_err = None;
    loop {
        let next = match deadline {
            None => replies.next().await,
            Some(d) => match tokio::time::timeout_at(d, replies.next()).await {
                Ok(next) => next,
                Err(_) => {
                    log::debug!("kick: no node had the session within the grace after a NotExist");
                    return Ok(OfflineSession::NotExist);
                }
            },
        };
        match next {
            None => break,
            Some(Ok(reply)) => {
                log::debug!("reply: {reply:?}");
                match reply {
                    MessageReply::Kick(OfflineSession::NotExist) => {
                        deadline.get_or_insert_with(|| tokio::time::Instant::now() + NOT_EXIST_GRACE);
                    }
                    MessageReply::Kick(kicked) => return Ok(kicked),
                    _ => last_err = Some(MqttError::None.into()),
                }
            }
            Some(Err(e)) => last_err = Some(e),
        }
    }
    match (deadline, last_err) {
        // At least one node answered that it has no session; the others failed.
        (Some(_), _) => Ok(OfflineSession::NotExist),
        (None, Some(e)) => Err(e),
        (None, None) => Err(MqttError::None.into()),
    }
}

pub(crate) async fn hook_message_dropped(scx: &ServerContext, droppeds: Vec<(To, From, Publish, Reason)>) {
    for (to, from, publish, reason) in droppeds {
        //hook, message_dropped
        scx.extends.hook_mgr().message_dropped(Some(to), from, publish, reason).await;
    }
}
