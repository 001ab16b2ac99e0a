//! Refuses publishes whose topic has more levels than the broker allows.
//!
//! rmqtt walks topics level by level recursively: a 10,000-level topic overflowed the stack of its
//! worker thread and aborted the whole process (found by `tests/hostile.rs`). rmqtt's own
//! `max_topic_levels` applies to subscriptions only, so publishes get the same limit here, through
//! rmqtt's ACL hook (the place its own ACL plugin uses), before anything routes them.

use async_trait::async_trait;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType, Type};
use rmqtt::types::PublishAclResult;

struct TopicDepth {
    max_levels: usize,
}

#[async_trait]
impl Handler for TopicDepth {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        if let Parameter::MessagePublishCheckAcl(session, publish) = param {
            // Levels = separators + 1; counting bytes never recurses, whatever the length.
            let levels = publish.topic.bytes().filter(|b| *b == b'/').count() + 1;
            if levels > self.max_levels {
                tracing::warn!(
                    client = %session.id.client_id,
                    levels,
                    max = self.max_levels,
                    "publish refused: too many topic levels"
                );
                let reason = format!(
                    "topic has {levels} levels, at most {} allowed",
                    self.max_levels
                );
                return (
                    false,
                    Some(HookResult::PublishAclResult(PublishAclResult::rejected(
                        false,
                        Some(reason.into()),
                    ))),
                );
            }
        }
        (true, acc)
    }
}

/// Installs the guard; it lives as long as the broker's context.
pub(crate) async fn install(scx: &ServerContext, max_levels: usize) {
    let register = scx.extends.hook_mgr().register();
    register
        .add(
            Type::MessagePublishCheckAcl,
            Box::new(TopicDepth { max_levels }),
        )
        .await;
    register.start().await;
}
