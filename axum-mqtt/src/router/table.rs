//! The route table the dispatcher runs: a bound router with a trie over its filters.

use std::sync::Arc;

use super::dead_letter_topic::DeadLetterTopic;
use super::options::Retry;
use super::route::Route;
use super::routes::{BoundRoute, RejectionHandler, Router};
use crate::client::handle::Mqtt;
use crate::client::meters::{Meters, RouteMeters};
use crate::extract::MqttRequest;
use crate::message::Message;
use crate::topic::{FilterIndex, TopicPattern};

/// A router with its state bound, ready to dispatch. Cloned once per lane.
#[derive(Clone)]
pub(crate) struct RouteTable {
    routes: Vec<TableRoute>,
    pub fallback: Option<(Route, RouteMeters)>,
    pub on_rejection: Option<RejectionHandler>,
    /// Route ids by filter; catch-all routes are listed apart.
    index: Arc<FilterIndex>,
    catch_all: Arc<Vec<usize>>,
}

#[derive(Clone)]
struct TableRoute {
    pattern: Option<TopicPattern>,
    route: Route,
    ack_after: bool,
    retry: Retry,
    dead_letter: Option<DeadLetterTopic>,
    meters: RouteMeters,
}

impl RouteTable {
    pub fn new(router: Router, meters: &Meters) -> Self {
        let bound = router.bind();
        let routes: Vec<TableRoute> = bound
            .routes
            .into_iter()
            .map(
                |BoundRoute {
                     pattern,
                     route,
                     ack_after,
                     retry,
                     dead_letter,
                 }| TableRoute {
                    meters: meters.route(pattern.as_ref().map_or("(on_message)", |p| p.as_str())),
                    pattern,
                    route,
                    ack_after,
                    retry,
                    dead_letter,
                },
            )
            .collect();
        let mut index = FilterIndex::new();
        let mut catch_all = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            match &r.pattern {
                Some(p) => index.insert(p.filter(), i),
                None => catch_all.push(i),
            }
        }
        RouteTable {
            routes,
            fallback: bound.fallback.map(|f| (f, meters.route("(fallback)"))),
            on_rejection: bound.on_rejection,
            index: Arc::new(index),
            catch_all: Arc::new(catch_all),
        }
    }

    /// Patterns of the routes that acknowledge after handling.
    pub fn ack_after_patterns(&self) -> Vec<TopicPattern> {
        self.routes
            .iter()
            .filter(|r| r.ack_after)
            .filter_map(|r| r.pattern.clone())
            .collect()
    }

    /// The ids of the routes that run for `topic`, in registration order, into `out`: catch-alls
    /// and every route whose filter matches (one walk of the trie).
    pub fn matching(&self, topic: &str, out: &mut Vec<usize>) {
        out.clear();
        out.extend_from_slice(&self.catch_all);
        self.index.matching(topic, out);
    }

    /// Route `id` (from [`matching`](Self::matching)) ready to run on `msg`: its request with the
    /// captures, and what the dispatcher needs beside it; `None` for an unknown id.
    pub fn request(
        &mut self,
        id: usize,
        msg: &Message,
        client: Option<Mqtt>,
    ) -> Option<Matched<'_>> {
        let r = self.routes.get_mut(id)?;
        let (params, by_pattern) = match &r.pattern {
            Some(p) => (p.captures_of_match(msg.topic()), true),
            None => (Vec::new(), false),
        };
        Some(Matched {
            req: MqttRequest::with(msg.clone(), params, client),
            route: &mut r.route,
            meters: &r.meters,
            ack_after: r.ack_after,
            retry: r.retry,
            dead_letter: r.dead_letter.as_ref(),
            pattern: r.pattern.as_ref(),
            by_pattern,
            on_rejection: self.on_rejection.as_ref(),
        })
    }
}

/// One route about to run on one message.
pub(crate) struct Matched<'a> {
    pub req: MqttRequest,
    pub route: &'a mut Route,
    pub meters: &'a RouteMeters,
    /// The route acknowledges after handling.
    pub ack_after: bool,
    /// How often a failing handler runs.
    pub retry: Retry,
    /// Where a message goes when the handler failed for good.
    pub dead_letter: Option<&'a DeadLetterTopic>,
    /// The route's pattern (`None` for a catch-all).
    pub pattern: Option<&'a TopicPattern>,
    /// A filter route (not a catch-all): the message counts as routed, so no fallback.
    pub by_pattern: bool,
    pub on_rejection: Option<&'a RejectionHandler>,
}
