//! Hook handler for processing cluster broadcast gRPC messages.
//!
//! Dispatches incoming inter-node messages (forwards, kick, health checks,
//! subscription queries, etc.) to the appropriate local handlers.

use super::message::{BroadcastGrpcMessage, BroadcastGrpcMessageReply};
use async_trait::async_trait;
use rmqtt::context::ServerContext;
use rmqtt::router::Router;
use rmqtt::shared::Shared;
use rmqtt::types::Id;
use rmqtt::{
    grpc::{Message, MessageReply},
    hook::{Handler, HookResult, Parameter, ReturnType},
    types::{ForwardedRecipients, From, OfflineSession, Publish, SubRelationsMap},
};

use super::{calls::hook_message_dropped, router::ClusterRouter, shared::ClusterShared};

pub(crate) struct HookHandler {
    scx: ServerContext,
    shared: ClusterShared,
    router: ClusterRouter,
}

impl HookHandler {
    pub(crate) fn new(scx: ServerContext, shared: ClusterShared, router: ClusterRouter) -> Self {
        Self { scx, shared, router }
    }
}

#[async_trait]
impl Handler for HookHandler {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::GrpcMessageReceived(typ, msg) => {
                log::debug!("GrpcMessageReceived, type: {typ}, msg: {msg:?}");
                if self.shared.message_type != *typ {
                    return (true, acc);
                }
                match msg {
                    Message::Forwards(from, publish) => {
                        let (shared_subs, recipients) =
                            forwards(&self.scx, from.clone(), publish.clone()).await;
                        let new_acc =
                            HookResult::GrpcMessageReply(Ok(MessageReply::Forwards(shared_subs, recipients)));
                        return (false, Some(new_acc));
                    }
                    Message::ForwardsTo(from, publish, sub_rels, msg_id) => {
                        // axum-mqtt patch: through the moves (`ClusterShared::deliver`).
                        if let Err((_, droppeds)) = self
                            .shared
                            .deliver(from.clone(), publish, sub_rels.clone(), *msg_id, false)
                            .await
                        {
                            hook_message_dropped(&self.scx, droppeds).await;
                        }
                        return (false, acc);
                    }
                    Message::ForwardsToAck(msg_id, node_id, subscribers) => {
                        log::debug!(
                            "ForwardsToAck received: msg_id={:?}, node_id={}, subscribers={:?}",
                            msg_id,
                            node_id,
                            subscribers
                        );
                        if let Err(e) = self
                            .scx
                            .extends
                            .message_mgr()
                            .await
                            .mark_forwarded(*msg_id, subscribers.clone())
                            .await
                        {
                            log::warn!(
                                "mark_forwarded error, {e}, msg_id: {msg_id}, from node: {node_id}, \
                                 subscribers: {subscribers:?}"
                            );
                        }
                        return (false, acc);
                    }
                    Message::Kick(id, clean_start, clear_subscriptions, is_admin) => {
                        let entry = self.shared.inner().entry(id.clone());
                        log::debug!("{id:?}");
                        let new_acc = match entry.try_lock().await {
                            Ok(mut entry) => {
                                // axum-mqtt patch: a session handed over to another node is
                                // followed by what still comes for it (`moves.rs`, move out):
                                // from before the kick, with its subscriptions as they are now.
                                let moving_out = match entry.session().filter(|_| !*clean_start && !*is_admin) {
                                    Some(s) => {
                                        let subs = match s.subscriptions().await {
                                            Ok(subs) => subs
                                                .read()
                                                .await
                                                .iter()
                                                .map(|(tf, opts)| (tf.clone(), opts.clone()))
                                                .collect(),
                                            Err(_) => Vec::new(),
                                        };
                                        self.shared.moves.start_out(&id.client_id, id.node_id, subs).await;
                                        true
                                    }
                                    None => false,
                                };
                                match entry.kick(*clean_start, *clear_subscriptions, *is_admin).await {
                                    Ok(o) => {
                                        log::debug!("{id:?} offline info: {o:?}");
                                        if moving_out {
                                            let handed = match &o {
                                                OfflineSession::Exist(Some(info)) => Some(info),
                                                _ => None,
                                            };
                                            self.shared.moves.kicked_out(&id.client_id, handed);
                                        }
                                        HookResult::GrpcMessageReply(Ok(MessageReply::Kick(o)))
                                    }
                                    Err(e) => {
                                        if moving_out {
                                            self.shared.moves.kicked_out(&id.client_id, None);
                                        }
                                        HookResult::GrpcMessageReply(Err(e))
                                    }
                                }
                            }
                            Err(e) => {
                                log::warn!("{id:?}, try_lock error, {e}");
                                HookResult::GrpcMessageReply(Err(e))
                            }
                        };
                        return (false, Some(new_acc));
                    }
                    Message::NumberOfClients => {
                        let new_acc = HookResult::GrpcMessageReply(Ok(MessageReply::NumberOfClients(
                            //self.shared.inner().clients().await,
                            self.scx.stats.connections.count() as usize,
                        )));
                        return (false, Some(new_acc));
                    }
                    Message::NumberOfSessions => {
                        let new_acc = HookResult::GrpcMessageReply(Ok(MessageReply::NumberOfSessions(
                            //self.shared.inner().sessions().await,
                            self.scx.stats.sessions.count() as usize,
                        )));
                        return (false, Some(new_acc));
                    }
                    Message::GetRetains(topic_filter) => {
                        let retains = self.scx.extends.retain().await.get(topic_filter).await;
                        let new_acc = match retains {
                            Err(e) => HookResult::GrpcMessageReply(Err(e)),
                            Ok(retains) => {
                                HookResult::GrpcMessageReply(Ok(MessageReply::GetRetains(retains)))
                            }
                        };
                        return (false, Some(new_acc));
                    }
                    Message::GetAllRetains { offset, limit } => {
                        let retain_mgr = self.scx.extends.retain().await;
                        let (items, has_more) =
                            retain_mgr.get_all_paginated(*offset, *limit).await.unwrap_or_default();
                        let total_hint = retain_mgr.count().await.max(0) as usize;
                        let new_acc = HookResult::GrpcMessageReply(Ok(MessageReply::GetAllRetainsChunk {
                            items,
                            has_more,
                            total_hint,
                        }));
                        return (false, Some(new_acc));
                    }
                    Message::SetRetain(topic, retain, expiry_interval) => {
                        let retain_mgr = self.scx.extends.retain().await;
                        if let Err(e) = retain_mgr.set(topic, retain.clone(), *expiry_interval).await {
                            log::warn!("Failed to apply remote retain: {e}");
                        }
                        let new_acc = HookResult::GrpcMessageReply(Ok(MessageReply::SetRetain(true)));
                        return (false, Some(new_acc));
                    }
                    Message::SetRetainTopicAdd(topic, expiry_interval) => {
                        let retain_mgr = self.scx.extends.retain().await;
                        if let Err(e) = retain_mgr.sync_retain_topic(topic, *expiry_interval, true).await {
                            log::warn!("Failed to sync retain topic (add): {e}");
                        }
                        let new_acc = HookResult::GrpcMessageReply(Ok(MessageReply::SetRetain(true)));
                        return (false, Some(new_acc));
                    }
                    Message::SetRetainTopicRemove(topic) => {
                        let retain_mgr = self.scx.extends.retain().await;
                        if let Err(e) = retain_mgr.sync_retain_topic(topic, None, false).await {
                            log::warn!("Failed to sync retain topic (remove): {e}");
                        }
                        let new_acc = HookResult::GrpcMessageReply(Ok(MessageReply::SetRetain(true)));
                        return (false, Some(new_acc));
                    }
                    Message::Online(clientid) => {
                        let new_acc = HookResult::GrpcMessageReply(Ok(MessageReply::Online(
                            self.scx.extends.router().await.is_online(self.scx.node.id(), clientid).await,
                        )));
                        return (false, Some(new_acc));
                    }
                    Message::SubscriptionsSearch(q) => {
                        let new_acc = HookResult::GrpcMessageReply(Ok(MessageReply::SubscriptionsSearch(
                            self.shared.inner().query_subscriptions(q).await,
                        )));
                        return (false, Some(new_acc));
                    }
                    Message::SubscriptionsGet(clientid) => {
                        let id = Id::from(self.scx.node.id(), clientid.clone());
                        let entry = self.shared.inner().entry(id);
                        let new_acc = HookResult::GrpcMessageReply(Ok(MessageReply::SubscriptionsGet(
                            entry.subscriptions().await,
                        )));
                        return (false, Some(new_acc));
                    }
                    Message::RoutesGet(limit) => {
                        let new_acc = HookResult::GrpcMessageReply(Ok(MessageReply::RoutesGet(
                            self.router._inner().gets(*limit).await,
                        )));
                        return (false, Some(new_acc));
                    }
                    Message::RoutesGetBy(topic) => {
                        let routes = match self.router._inner()._get_routes(topic).await {
                            Ok(routes) => Ok(MessageReply::RoutesGetBy(routes)),
                            Err(e) => Err(e),
                        };
                        let new_acc = HookResult::GrpcMessageReply(routes);
                        return (false, Some(new_acc));
                    }
                    Message::SessionStatus(clientid) => {
                        let status = self.shared.inner().session_status(clientid).await;
                        let new_acc = HookResult::GrpcMessageReply(Ok(MessageReply::SessionStatus(status)));
                        return (false, Some(new_acc));
                    }
                    Message::MessageGet(client_id, topic_filter, group) => {
                        let msgs = self
                            .scx
                            .extends
                            .message_mgr()
                            .await
                            .get(client_id, topic_filter, group.as_ref())
                            .await;
                        let new_acc = match msgs {
                            Err(e) => HookResult::GrpcMessageReply(Err(e)),
                            Ok(msgs) => HookResult::GrpcMessageReply(Ok(MessageReply::MessageGet(msgs))),
                        };
                        return (false, Some(new_acc));
                    }
                    Message::Data(data) => {
                        let new_acc = match BroadcastGrpcMessage::decode(data) {
                            Err(e) => {
                                log::error!("Message::decode, error: {e}");
                                HookResult::GrpcMessageReply(Ok(MessageReply::Error(e.to_string())))
                            }
                            Ok(BroadcastGrpcMessage::GetNodeHealthStatus) => {
                                match self.shared.health_status().await {
                                    Ok(status) => {
                                        match BroadcastGrpcMessageReply::GetNodeHealthStatus(status).encode()
                                        {
                                            Ok(ress) => {
                                                HookResult::GrpcMessageReply(Ok(MessageReply::Data(ress)))
                                            }
                                            Err(e) => HookResult::GrpcMessageReply(Ok(MessageReply::Error(
                                                e.to_string(),
                                            ))),
                                        }
                                    }
                                    Err(e) => {
                                        HookResult::GrpcMessageReply(Ok(MessageReply::Error(e.to_string())))
                                    }
                                }
                            }
                        };
                        return (false, Some(new_acc));
                    }
                }
            }
            _ => {
                log::error!("unimplemented, {param:?}")
            }
        }
        (true, acc)
    }
}

async fn forwards(
    scx: &ServerContext,
    from: From,
    publish: Publish,
) -> (SubRelationsMap, ForwardedRecipients) {
    match scx.extends.shared().await.forwards_and_get_shareds(from, publish).await {
        Err((recipients, droppeds)) => {
            hook_message_dropped(scx, droppeds).await;
            (SubRelationsMap::default(), recipients)
        }
        Ok(relations_map) => relations_map,
    }
}
