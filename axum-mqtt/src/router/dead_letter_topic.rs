//! A route's dead-letter topic ([`RouteOptions::dead_letter`](super::RouteOptions::dead_letter)):
//! the template, checked once when the route is added.

use std::sync::Arc;

use crate::error::RouterError;
use crate::topic::topic_problem;

/// What the template's `{topic}` is replaced with.
const PLACEHOLDER: &str = "{topic}";

/// A dead-letter topic template that passed the checks; `{topic}` stands for the original topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeadLetterTopic(Arc<str>);

impl DeadLetterTopic {
    /// Checks a template: once `{topic}` is replaced it must be a topic to publish to (not empty,
    /// no wildcard, no NUL), with no braces but `{topic}`, and not `{topic}` alone.
    pub fn parse(template: &str) -> Result<Self, RouterError> {
        let bad = |reason| RouterError::InvalidDeadLetter {
            template: template.to_string(),
            reason,
        };
        if template.replace(PLACEHOLDER, "").contains(['{', '}']) {
            return Err(bad("only `{topic}` may be written in braces"));
        }
        if template == PLACEHOLDER {
            return Err(bad(
                "`{topic}` alone sends the dead letter back to the topic that failed; add a prefix such as `dlq/{topic}`",
            ));
        }
        topic_problem(&template.replace(PLACEHOLDER, "t")).map_err(bad)?;
        Ok(DeadLetterTopic(template.into()))
    }

    /// The dead-letter topic of a message published to `topic`.
    pub fn topic_for(&self, topic: &str) -> String {
        self.0.replace(PLACEHOLDER, topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(template: &str) -> String {
        match DeadLetterTopic::parse(template) {
            Err(RouterError::InvalidDeadLetter {
                template: t,
                reason,
            }) => {
                assert_eq!(t, template);
                reason.to_string()
            }
            other => panic!("{template:?}: {other:?}"),
        }
    }

    #[test]
    fn the_topic_is_put_in_every_placeholder() {
        let t = DeadLetterTopic::parse("dlq/{topic}").unwrap();
        assert_eq!(t.topic_for("orders/42"), "dlq/orders/42");
        let t = DeadLetterTopic::parse("{topic}/dead/{topic}").unwrap();
        assert_eq!(t.topic_for("a/b"), "a/b/dead/a/b");
        // A fixed topic is allowed: the original topic travels with the dead letter.
        assert_eq!(
            DeadLetterTopic::parse("dead-letters")
                .unwrap()
                .topic_for("a"),
            "dead-letters"
        );
    }

    #[test]
    fn templates_that_cannot_give_a_topic_are_refused() {
        assert!(reason("").contains("empty"));
        assert!(reason("dlq/+/{topic}").contains("wildcard"));
        assert!(reason("dlq/{topic}/#").contains("wildcard"));
        assert!(reason("dlq/\0/{topic}").contains("NUL"));
        assert!(reason("dlq/{route}").contains("braces"));
        assert!(reason("dlq/{topic").contains("braces"));
        assert!(reason("{topic}").contains("back to the topic"));
    }
}
