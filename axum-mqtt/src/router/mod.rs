//! Routing messages to handlers by topic, the way axum routes requests by path.
//!
//! ```
//! use axum_mqtt::{Router, extract::{Params, Json, Topic}};
//!
//! #[derive(serde::Deserialize)]
//! struct Reading { celsius: f64 }
//!
//! async fn temperature(Params(device): Params<String>, Json(r): Json<Reading>) {
//!     println!("{device}: {} °C", r.celsius);
//! }
//! async fn logs(Topic(t): Topic) {}
//! async fn anything_else() {}
//!
//! let router: Router = Router::new()
//!     .route("sensors/{device}/temperature", temperature) // subscribes sensors/+/temperature
//!     .route("logs/{*rest}", logs)                        // subscribes logs/#
//!     .fallback(anything_else);
//! assert_eq!(router.subscriptions().len(), 2);
//! ```
//!
//! **Which handlers run.** Every route whose pattern matches the message's topic runs, in the order
//! the routes were added (as paho runs every matching `message_callback_add`). The fallback runs only
//! when no route matched. Catch-all handlers ([`MqttBuilder::on_message`](crate::MqttBuilder::on_message))
//! run for every message. A broker may deliver one message once per overlapping subscription; MQTT
//! offers no way to tell such copies apart, so avoid overlapping routes when that matters.
//!
//! **Subscriptions.** Each route subscribes to its filter with its QoS (default 1) on every connect
//! and reconnect; users never write the subscribe-in-`on_connect` dance. With
//! [`Router::shared`] (or `MQTT_SHARED_GROUP`) the subscriptions become `$share/<group>/<filter>` so
//! several app instances split the messages, while matching still uses the real topic.

mod handler;
mod trace;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tower::util::BoxCloneSyncService;
use tower::{BoxError, Layer, Service, ServiceExt};

pub use handler::{Handler, HandlerFuture, IntoHandlerResult};
pub use trace::{Trace, TraceLayer};

use crate::extract::Rejection;
use crate::message::{Message, QoS};
use crate::topic::{Captures, TopicPattern};
use crate::{Error, Mqtt};

/// One message on its way through layers to a handler: the message, the route's named segments and
/// the client (to publish replies). This is the request type of every route's tower `Service`.
#[derive(Debug, Clone)]
pub struct MqttRequest {
    message: Message,
    params: Captures,
    client: Option<Mqtt>,
}

impl MqttRequest {
    /// A request for a message, with no named segments and no client (for testing handlers).
    ///
    /// ```
    /// use axum_mqtt::{Message, router::MqttRequest};
    /// let req = MqttRequest::new(Message::new("a/b", "x"));
    /// assert_eq!(req.message().topic(), "a/b");
    /// ```
    pub fn new(message: Message) -> Self {
        MqttRequest {
            message,
            params: Vec::new(),
            client: None,
        }
    }

    /// A request with named segments, as the router builds it (for testing extractors like `Params`).
    ///
    /// ```
    /// use axum_mqtt::{Message, router::MqttRequest, extract::{FromMessage, Params}};
    /// let req = MqttRequest::with_params(Message::new("devices/7", ""), vec![("id".into(), "7".into())]);
    /// let Params(id) = Params::<u32>::from_message(&req, &()).unwrap();
    /// assert_eq!(id, 7);
    /// ```
    pub fn with_params(message: Message, params: Vec<(Arc<str>, String)>) -> Self {
        Self::with(message, params, None)
    }

    pub(crate) fn with(message: Message, params: Captures, client: Option<Mqtt>) -> Self {
        MqttRequest {
            message,
            params,
            client,
        }
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Named segments captured by the route, in pattern order.
    pub fn params(&self) -> &[(Arc<str>, String)] {
        &self.params
    }

    /// One named segment.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The client that received the message.
    pub fn client(&self) -> Option<&Mqtt> {
        self.client.as_ref()
    }
}

/// A route's handler as a tower service (after layers).
pub type Route = BoxCloneSyncService<MqttRequest, (), BoxError>;

type MakeRoute<S> = Arc<dyn Fn(S) -> Route + Send + Sync>;

/// Called with every rejection (failed extraction) after it is logged and counted.
pub(crate) type RejectionHandler =
    Arc<dyn Fn(Rejection, Message) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Per-route settings for [`Router::route_with`].
///
/// ```
/// use axum_mqtt::{QoS, router::RouteOptions};
/// let opts = RouteOptions::new().qos(QoS::ExactlyOnce).ack_after_handling();
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RouteOptions {
    qos: QoS,
    ack_after: bool,
}

impl Default for RouteOptions {
    fn default() -> Self {
        RouteOptions {
            qos: QoS::AtLeastOnce,
            ack_after: false,
        }
    }
}

impl RouteOptions {
    /// QoS 1, acknowledged on receipt.
    pub fn new() -> Self {
        Self::default()
    }

    /// The subscription's QoS.
    pub fn qos(mut self, qos: QoS) -> Self {
        self.qos = qos;
        self
    }

    /// Acknowledge QoS 1/2 messages only after the handler succeeded (see the crate docs on
    /// acknowledgement after handling).
    pub fn ack_after_handling(mut self) -> Self {
        self.ack_after = true;
        self
    }
}

struct RouteDef<S> {
    /// `None`: a catch-all that sees every message and subscribes nothing.
    pattern: Option<TopicPattern>,
    opts: RouteOptions,
    make: MakeRoute<S>,
}

impl<S> Clone for RouteDef<S> {
    fn clone(&self) -> Self {
        RouteDef {
            pattern: self.pattern.clone(),
            opts: self.opts,
            make: self.make.clone(),
        }
    }
}

/// Topic routes to handlers; see the [module docs](self).
///
/// `S` is the state the handlers still need; [`Router::with_state`] provides it and turns the router
/// into a `Router<()>`, which is what the client takes.
pub struct Router<S = ()> {
    routes: Vec<RouteDef<S>>,
    fallback: Option<MakeRoute<S>>,
    shared_group: Option<String>,
    on_rejection: Option<RejectionHandler>,
    errors: Vec<Error>,
}

impl<S> Clone for Router<S> {
    fn clone(&self) -> Self {
        Router {
            routes: self.routes.clone(),
            fallback: self.fallback.clone(),
            shared_group: self.shared_group.clone(),
            on_rejection: self.on_rejection.clone(),
            errors: self.errors.clone(),
        }
    }
}

impl<S> Default for Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<S> std::fmt::Debug for Router<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field(
                "routes",
                &self
                    .routes
                    .iter()
                    .map(|r| r.pattern.as_ref().map(|p| p.as_str().to_string()))
                    .collect::<Vec<_>>(),
            )
            .field("fallback", &self.fallback.is_some())
            .field("shared_group", &self.shared_group)
            .finish()
    }
}

fn handler_route<H, T, S>(handler: H) -> MakeRoute<S>
where
    H: Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    Arc::new(move |state: S| {
        let handler = handler.clone();
        Route::new(tower::service_fn(move |req: MqttRequest| {
            handler.clone().call(req, state.clone())
        }))
    })
}

impl<S> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    /// An empty router.
    pub fn new() -> Self {
        Router {
            routes: Vec::new(),
            fallback: None,
            shared_group: None,
            on_rejection: None,
            errors: Vec::new(),
        }
    }

    /// Routes messages whose topic matches `pattern` to `handler`, subscribing with QoS 1.
    ///
    /// `pattern` is an MQTT filter whose wildcards may be named: `{name}` (one level, `+`) and a
    /// trailing `{*name}` (the rest, `#`). An invalid pattern makes the client's `start` fail with
    /// [`Error::InvalidFilter`].
    pub fn route<H, T>(self, pattern: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.route_with(pattern, RouteOptions::default(), handler)
    }

    /// Like [`route`](Self::route), with a QoS and acknowledgement mode.
    pub fn route_with<H, T>(mut self, pattern: &str, opts: RouteOptions, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        match TopicPattern::parse(pattern) {
            Ok(p) => self.routes.push(RouteDef {
                pattern: Some(p),
                opts,
                make: handler_route(handler),
            }),
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// Routes to a tower service instead of a handler function.
    pub fn route_service<Svc>(mut self, pattern: &str, opts: RouteOptions, service: Svc) -> Self
    where
        Svc: Service<MqttRequest, Response = ()> + Clone + Send + Sync + 'static,
        Svc::Error: Into<BoxError>,
        Svc::Future: Send + 'static,
    {
        match TopicPattern::parse(pattern) {
            Ok(p) => self.routes.push(RouteDef {
                pattern: Some(p),
                opts,
                make: Arc::new(move |_| Route::new(service.clone().map_err(Into::into))),
            }),
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// A handler for every message (subscribes nothing): Flask-MQTT's `on_message`.
    pub(crate) fn catch_all<H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.routes.push(RouteDef {
            pattern: None,
            opts: RouteOptions::default(),
            make: handler_route(handler),
        });
        self
    }

    /// The handler for messages no route matched (e.g. from `subscribe` calls or a `#` wildcard).
    pub fn fallback<H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.fallback = Some(handler_route(handler));
        self
    }

    /// Subscribes every route as `$share/<group>/<filter>`, so app instances in the same group split
    /// the messages between them (MQTT 5 shared subscriptions; Mosquitto also allows them on 3.1.1).
    pub fn shared(mut self, group: &str) -> Self {
        if group.is_empty() || group.contains(['/', '+', '#']) {
            self.errors.push(Error::InvalidFilter {
                filter: format!("$share/{group}/"),
                reason: "a shared group name must be non-empty without `/`, `+` or `#`",
            });
        } else {
            self.shared_group = Some(group.to_string());
        }
        self
    }

    /// Called with every rejected message (after the rejection is logged and counted).
    ///
    /// ```
    /// use axum_mqtt::Router;
    /// let router: Router = Router::new().on_rejection(|rejection, message| async move {
    ///     eprintln!("dropped a message on {}: {rejection}", message.topic());
    /// });
    /// ```
    pub fn on_rejection<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Rejection, Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_rejection = Some(Arc::new(move |r, m| Box::pin(f(r, m))));
        self
    }

    /// Adds another router's routes (after this one's). This router's fallback wins if both have one.
    pub fn merge(mut self, other: Router<S>) -> Self {
        self.routes.extend(other.routes);
        self.errors.extend(other.errors);
        if self.fallback.is_none() {
            self.fallback = other.fallback;
        }
        if self.on_rejection.is_none() {
            self.on_rejection = other.on_rejection;
        }
        if self.shared_group.is_none() {
            self.shared_group = other.shared_group;
        }
        self
    }

    /// Adds another router's routes under a topic prefix: `nest("home/{room}", r)` turns r's `light`
    /// into `home/{room}/light`. The nested router's fallback is dropped (fallbacks are global).
    pub fn nest(mut self, prefix: &str, other: Router<S>) -> Self {
        let prefix = prefix.trim_end_matches('/');
        self.errors.extend(other.errors);
        for mut def in other.routes {
            if let Some(p) = def.pattern.take() {
                match TopicPattern::parse(&format!("{prefix}/{}", p.as_str())) {
                    Ok(p) => {
                        def.pattern = Some(p);
                        self.routes.push(def);
                    }
                    Err(e) => self.errors.push(e),
                }
            }
        }
        self
    }

    /// Wraps every route added so far, and the fallback, in a tower layer (like axum's `layer`).
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<MqttRequest, Response = ()> + Clone + Send + Sync + 'static,
        <L::Service as Service<MqttRequest>>::Error: Into<BoxError>,
        <L::Service as Service<MqttRequest>>::Future: Send + 'static,
    {
        self = self.route_layer(layer.clone());
        if let Some(make) = self.fallback.take() {
            self.fallback = Some(wrap(make, layer));
        }
        self
    }

    /// Wraps every route added so far (not the fallback) in a tower layer.
    pub fn route_layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<MqttRequest, Response = ()> + Clone + Send + Sync + 'static,
        <L::Service as Service<MqttRequest>>::Error: Into<BoxError>,
        <L::Service as Service<MqttRequest>>::Future: Send + 'static,
    {
        for def in &mut self.routes {
            def.make = wrap(def.make.clone(), layer.clone());
        }
        self
    }

    /// Gives the handlers their state; the result needs no more state.
    pub fn with_state<S2>(self, state: S) -> Router<S2> {
        let bind = |make: MakeRoute<S>| -> MakeRoute<S2> {
            let state = state.clone();
            Arc::new(move |_| make(state.clone()))
        };
        Router {
            routes: self
                .routes
                .into_iter()
                .map(|d| RouteDef {
                    pattern: d.pattern,
                    opts: d.opts,
                    make: bind(d.make),
                })
                .collect(),
            fallback: self.fallback.map(bind),
            shared_group: self.shared_group,
            on_rejection: self.on_rejection,
            errors: self.errors,
        }
    }

    /// The subscriptions this router makes: `(filter, qos)`, with the shared group applied.
    pub fn subscriptions(&self) -> Vec<(String, QoS)> {
        self.subscriptions_with_group(self.shared_group.as_deref())
    }

    pub(crate) fn subscriptions_with_group(&self, group: Option<&str>) -> Vec<(String, QoS)> {
        let mut out: Vec<(String, QoS)> = Vec::new();
        for def in &self.routes {
            let Some(p) = &def.pattern else { continue };
            let filter = match (group, p.as_str().starts_with('$')) {
                // `$share/…` given by hand and `$SYS/…` topics are subscribed as written.
                (Some(g), false) => format!("$share/{g}/{}", p.filter()),
                _ if p.as_str().starts_with("$share/") => {
                    let (g, _) = crate::topic::split_share(p.as_str());
                    format!("$share/{}/{}", g.unwrap_or_default(), p.filter())
                }
                _ => p.filter().to_string(),
            };
            match out.iter_mut().find(|(f, _)| *f == filter) {
                Some((_, q)) => *q = (*q).max(def.opts.qos),
                None => out.push((filter, def.opts.qos)),
            }
        }
        out
    }

    pub(crate) fn take_errors(&mut self) -> Vec<Error> {
        std::mem::take(&mut self.errors)
    }

    pub(crate) fn shared_group(&self) -> Option<&str> {
        self.shared_group.as_deref()
    }
}

fn wrap<S, L>(make: MakeRoute<S>, layer: L) -> MakeRoute<S>
where
    S: 'static,
    L: Layer<Route> + Clone + Send + Sync + 'static,
    L::Service: Service<MqttRequest, Response = ()> + Clone + Send + Sync + 'static,
    <L::Service as Service<MqttRequest>>::Error: Into<BoxError>,
    <L::Service as Service<MqttRequest>>::Future: Send + 'static,
{
    Arc::new(move |s| Route::new(layer.layer(make(s)).map_err(Into::into)))
}

/// A compiled route.
#[derive(Clone)]
pub(crate) struct TableRoute {
    pub pattern: Option<TopicPattern>,
    pub route: Route,
    pub ack_after: bool,
}

/// A router with its state bound, ready to dispatch.
#[derive(Clone)]
pub(crate) struct RouteTable {
    pub routes: Vec<TableRoute>,
    pub fallback: Option<Route>,
    pub on_rejection: Option<RejectionHandler>,
    /// Routes by filter; catch-all routes are listed apart in `catch_all`.
    pub index: Arc<crate::topic::FilterIndex>,
    pub catch_all: Arc<Vec<usize>>,
}

impl Router<()> {
    pub(crate) fn into_table(self) -> RouteTable {
        let routes: Vec<TableRoute> = self
            .routes
            .into_iter()
            .map(|d| TableRoute {
                pattern: d.pattern,
                route: (d.make)(()),
                ack_after: d.opts.ack_after,
            })
            .collect();
        let mut index = crate::topic::FilterIndex::new();
        let mut catch_all = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            match &r.pattern {
                Some(p) => index.insert(p.filter(), i),
                None => catch_all.push(i),
            }
        }
        RouteTable {
            routes,
            fallback: self.fallback.map(|m| m(())),
            on_rejection: self.on_rejection,
            index: Arc::new(index),
            catch_all: Arc::new(catch_all),
        }
    }
}
