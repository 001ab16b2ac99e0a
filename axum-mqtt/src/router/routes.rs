//! [`Router`]: topic routes to handlers, fallbacks, merge/nest, layers and state.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tower::{BoxError, Layer, Service, ServiceExt};

use super::{Handler, Outcome, Route, RouteOptions};
use crate::error::{RouterError, RouterSetting};
use crate::extract::{MqttRequest, Rejection};
use crate::message::{Message, QoS};
use crate::topic::TopicPattern;

#[cfg(feature = "asyncapi")]
use super::doc::{JsonArgs, PayloadDoc, RouteDoc};
/// Without the `asyncapi` feature no payload is described.
#[cfg(not(feature = "asyncapi"))]
#[derive(Clone, Copy)]
struct PayloadDoc;
#[cfg(not(feature = "asyncapi"))]
impl PayloadDoc {
    const BYTES: PayloadDoc = PayloadDoc;
}

type MakeRoute<S> = Arc<dyn Fn(S) -> Route + Send + Sync>;

/// Called with every rejection (failed extraction) after it is logged and counted.
pub(crate) type RejectionHandler =
    Arc<dyn Fn(Rejection, Message) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

struct RouteDef<S> {
    /// `None`: a catch-all that sees every message and subscribes nothing.
    pattern: Option<TopicPattern>,
    opts: RouteOptions,
    /// The payload for [`Router::asyncapi`].
    payload: PayloadDoc,
    make: MakeRoute<S>,
}

impl<S> Clone for RouteDef<S> {
    fn clone(&self) -> Self {
        RouteDef {
            pattern: self.pattern.clone(),
            opts: self.opts.clone(),
            payload: self.payload,
            make: self.make.clone(),
        }
    }
}

/// Topic routes to handlers; see the [module docs](crate::router).
///
/// `S` is the state the handlers still need; [`Router::with_state`] provides it and turns the router
/// into a `Router<()>`, which is what the client takes.
pub struct Router<S = ()> {
    routes: Vec<RouteDef<S>>,
    fallback: Option<MakeRoute<S>>,
    shared_group: Option<String>,
    on_rejection: Option<RejectionHandler>,
    errors: Vec<RouterError>,
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
    /// [`RouterError::InvalidFilter`].
    pub fn route<H, T>(self, pattern: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.route_with(pattern, RouteOptions::default(), handler)
    }

    /// Like [`route`](Self::route), with options: QoS, acknowledgement mode, retries, dead-letter
    /// topic. An invalid [dead-letter template](RouteOptions::dead_letter) makes the client's
    /// `start` fail with [`RouterError::InvalidDeadLetter`].
    pub fn route_with<H, T>(mut self, pattern: &str, opts: RouteOptions, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add(pattern, opts, handler_route(handler));
        self
    }

    /// Adds a route, or the reason it cannot be added to the errors `start` reports.
    fn add(&mut self, pattern: &str, opts: RouteOptions, make: MakeRoute<S>) {
        if let Some(Err(e)) = &opts.dead_letter {
            self.errors.push(e.clone());
            return;
        }
        match TopicPattern::parse_pattern(pattern) {
            Ok(p) => self.routes.push(RouteDef {
                pattern: Some(p),
                opts,
                payload: PayloadDoc::BYTES,
                make,
            }),
            Err(reason) => self.errors.push(RouterError::InvalidFilter {
                filter: pattern.to_string(),
                reason,
            }),
        }
    }

    /// Like [`route_with`](Self::route_with), for a handler taking a [`Json<T>`](crate::extract::Json)
    /// argument, so that [`asyncapi`](Self::asyncapi) describes the payload with `T`'s JSON Schema
    /// (cargo feature `asyncapi`; `T` derives `schemars::JsonSchema`).
    ///
    /// `T` is read from the handler's own signature, so the document cannot name another type
    /// than the one the handler parses. Why a method of its own: `route` takes any handler, and
    /// telling at compile time whether one of its arguments is a `Json<T>` (and then requiring
    /// `T: JsonSchema`) would need specialization, which stable Rust lacks. A payload type declared
    /// beside the handler instead (say `RouteOptions::payload::<T>()`) could silently disagree with
    /// it. A handler without exactly one `Json<T>` argument does not compile here; add it with
    /// `route` (its payload is then documented as bytes).
    ///
    /// ```
    /// use axum_mqtt::{extract::{Json, Params}, router::RouteOptions, Router};
    ///
    /// #[derive(serde::Deserialize, schemars::JsonSchema)]
    /// struct Reading { celsius: f64 }
    ///
    /// async fn temperature(Params(device): Params<String>, Json(r): Json<Reading>) {}
    ///
    /// let router: Router =
    ///     Router::new().route_json("sensors/{device}/temperature", RouteOptions::new(), temperature);
    /// assert_eq!(router.subscriptions()[0].0, "sensors/+/temperature");
    /// ```
    ///
    /// ```compile_fail
    /// # use axum_mqtt::{extract::Text, router::RouteOptions, Router};
    /// async fn text(Text(t): Text) {}
    /// let router: Router = Router::new().route_json("logs", RouteOptions::new(), text);
    /// ```
    #[cfg(feature = "asyncapi")]
    pub fn route_json<H, X, T, I>(mut self, pattern: &str, opts: RouteOptions, handler: H) -> Self
    where
        H: Handler<X, S>,
        X: JsonArgs<T, I> + 'static,
        T: schemars::JsonSchema,
    {
        let before = self.routes.len();
        self = self.route_with(pattern, opts, handler);
        if self.routes.len() > before {
            if let Some(def) = self.routes.last_mut() {
                def.payload = PayloadDoc::json::<T>();
            }
        }
        self
    }

    /// The routes as the AsyncAPI document describes them ([`Router::asyncapi`], in
    /// `api_docs/asyncapi.rs`): the fallback and catch-alls subscribe nothing and are left out.
    #[cfg(feature = "asyncapi")]
    pub(crate) fn route_docs(&self) -> impl Iterator<Item = RouteDoc<'_>> {
        let group = self.shared_group.as_deref();
        self.routes.iter().filter_map(move |def| {
            let pattern = def.pattern.as_ref()?;
            Some(RouteDoc {
                pattern,
                qos: def.opts.qos,
                payload: def.payload,
                subscription: subscription_filter(pattern, group),
            })
        })
    }

    /// Routes to a tower service instead of a handler function. A service answering `()` counts
    /// every call it completes as handled.
    ///
    /// ```
    /// use axum_mqtt::{Router, extract::MqttRequest, router::RouteOptions};
    /// let svc = tower::service_fn(|req: MqttRequest| async move {
    ///     println!("{}", req.message().topic());
    ///     Ok::<_, std::io::Error>(())
    /// });
    /// let router: Router = Router::new().route_service("logs/#", RouteOptions::new(), svc);
    /// ```
    pub fn route_service<Svc>(mut self, pattern: &str, opts: RouteOptions, service: Svc) -> Self
    where
        Svc: Service<MqttRequest, Response = ()> + Clone + Send + Sync + 'static,
        Svc::Error: Into<BoxError>,
        Svc::Future: Send + 'static,
    {
        self.add(
            pattern,
            opts,
            Arc::new(move |_| Route::new(service.clone().map_response(|()| Outcome::Handled))),
        );
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
            payload: PayloadDoc::BYTES,
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
            self.errors.push(RouterError::InvalidFilter {
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

    /// Adds another router's routes (after this one's). Settings only one router may have (the
    /// fallback, the rejection handler, a shared group other than this one's) make the client's
    /// `start` fail with a [`RouterError`] when both have them, rather than one being dropped.
    ///
    /// ```
    /// use axum_mqtt::{Mqtt, MqttConfig, Router};
    /// let a: Router = Router::new().route("a", || async {}).fallback(|| async {});
    /// let b: Router = Router::new().route("b", || async {});
    /// assert_eq!(a.clone().merge(b).subscriptions().len(), 2);
    ///
    /// // Two fallbacks: the client refuses to start.
    /// let both = Router::new().fallback(|| async {}).merge(Router::new().fallback(|| async {}));
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let err = Mqtt::builder(MqttConfig::default()).router(both).start().await.unwrap_err();
    /// assert!(err.to_string().contains("fallback"));
    /// # });
    /// ```
    pub fn merge(mut self, other: Router<S>) -> Self {
        self.routes.extend(other.routes);
        self.errors.extend(other.errors);
        match (&self.fallback, other.fallback) {
            (Some(_), Some(_)) => self
                .errors
                .push(RouterError::MergedTwice(RouterSetting::Fallback)),
            (None, theirs) => self.fallback = theirs,
            (Some(_), None) => {}
        }
        match (&self.on_rejection, other.on_rejection) {
            (Some(_), Some(_)) => self
                .errors
                .push(RouterError::MergedTwice(RouterSetting::RejectionHandler)),
            (None, theirs) => self.on_rejection = theirs,
            (Some(_), None) => {}
        }
        match (&self.shared_group, other.shared_group) {
            (Some(ours), Some(theirs)) if *ours != theirs => {
                self.errors.push(RouterError::SharedGroups {
                    ours: ours.clone(),
                    theirs,
                })
            }
            (None, theirs) => self.shared_group = theirs,
            _ => {}
        }
        self
    }

    /// Adds another router's routes under a topic prefix: `nest("home/{room}", r)` turns r's `light`
    /// into `home/{room}/light`. Fallbacks, rejection handlers and shared groups are global: a
    /// nested router that has one makes the client's `start` fail with [`RouterError::Nested`].
    ///
    /// ```
    /// use axum_mqtt::Router;
    /// let room: Router = Router::new().route("light", || async {});
    /// let home: Router = Router::new().nest("home/{room}", room);
    /// assert_eq!(home.subscriptions()[0].0, "home/+/light");
    /// ```
    pub fn nest(mut self, prefix: &str, other: Router<S>) -> Self {
        let prefix = prefix.trim_end_matches('/');
        self.errors.extend(other.errors);
        let global = [
            (other.fallback.is_some(), RouterSetting::Fallback),
            (
                other.on_rejection.is_some(),
                RouterSetting::RejectionHandler,
            ),
            (other.shared_group.is_some(), RouterSetting::SharedGroup),
        ];
        for (_, setting) in global.into_iter().filter(|(has, _)| *has) {
            self.errors.push(RouterError::Nested {
                prefix: prefix.to_string(),
                setting,
            });
        }
        for mut def in other.routes {
            let Some(p) = def.pattern.take() else {
                self.errors.push(RouterError::Nested {
                    prefix: prefix.to_string(),
                    setting: RouterSetting::CatchAll,
                });
                continue;
            };
            let pattern = format!("{prefix}/{}", p.as_str());
            match TopicPattern::parse_pattern(&pattern) {
                Ok(p) => {
                    def.pattern = Some(p);
                    self.routes.push(def);
                }
                Err(reason) => self.errors.push(RouterError::InvalidFilter {
                    filter: pattern,
                    reason,
                }),
            }
        }
        self
    }

    /// Wraps every route added so far, and the fallback, in a tower layer (like axum's `layer`).
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<MqttRequest, Response = Outcome> + Clone + Send + Sync + 'static,
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
        L::Service: Service<MqttRequest, Response = Outcome> + Clone + Send + Sync + 'static,
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
                    payload: d.payload,
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
            let filter = subscription_filter(p, group);
            match out.iter_mut().find(|(f, _)| *f == filter) {
                Some((_, q)) => *q = (*q).max(def.opts.qos),
                None => out.push((filter, def.opts.qos)),
            }
        }
        out
    }

    pub(crate) fn take_errors(&mut self) -> Vec<RouterError> {
        std::mem::take(&mut self.errors)
    }

    pub(crate) fn shared_group(&self) -> Option<&str> {
        self.shared_group.as_deref()
    }
}

/// The filter a route subscribes with, the shared group applied.
fn subscription_filter(p: &TopicPattern, group: Option<&str>) -> String {
    if p.as_str().starts_with("$share/") {
        // Given by hand: its own group, with the pattern's parameters as wildcards.
        let (g, _) = crate::topic::split_share(p.as_str());
        return format!("$share/{}/{}", g.unwrap_or_default(), p.filter());
    }
    crate::topic::share_filter(p.filter(), group)
}

fn wrap<S, L>(make: MakeRoute<S>, layer: L) -> MakeRoute<S>
where
    S: 'static,
    L: Layer<Route> + Clone + Send + Sync + 'static,
    L::Service: Service<MqttRequest, Response = Outcome> + Clone + Send + Sync + 'static,
    <L::Service as Service<MqttRequest>>::Error: Into<BoxError>,
    <L::Service as Service<MqttRequest>>::Future: Send + 'static,
{
    Arc::new(move |s| Route::new(layer.layer(make(s))))
}

/// A route with its state bound: what the dispatcher runs.
pub(crate) struct BoundRoute {
    /// `None`: a catch-all.
    pub pattern: Option<TopicPattern>,
    pub route: Route,
    pub ack_after: bool,
    pub retry: super::options::Retry,
    pub dead_letter: Option<super::dead_letter_topic::DeadLetterTopic>,
}

/// A router with its state bound, taken apart for the dispatcher (see `table.rs`).
pub(crate) struct BoundRouter {
    pub routes: Vec<BoundRoute>,
    pub fallback: Option<Route>,
    pub on_rejection: Option<RejectionHandler>,
}

impl Router<()> {
    pub(crate) fn bind(self) -> BoundRouter {
        BoundRouter {
            routes: self
                .routes
                .into_iter()
                .map(|d| BoundRoute {
                    pattern: d.pattern,
                    route: (d.make)(()),
                    ack_after: d.opts.ack_after,
                    retry: d.opts.retry,
                    dead_letter: d.opts.dead_letter.and_then(Result::ok),
                })
                .collect(),
            fallback: self.fallback.map(|m| m(())),
            on_rejection: self.on_rejection,
        }
    }
}
