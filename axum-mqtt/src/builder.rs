//! [`MqttBuilder`]: handlers and callbacks registered before the first connect, and the start-up
//! wiring of the client's tasks: the layer above both the client and the router, which joins them
//! (the connection task hands messages to the router's lanes through
//! [`MessageSink`](crate::client::connection::MessageSink)).

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::client::ack_after::AckAfter;
use crate::client::callbacks::{self, Callbacks};
use crate::client::claim::ClientIdClaim;
use crate::client::events::{
    Connack, ConnectionState, Disconnected, Published, Status, Subscribed, Unsubscribed,
};
use crate::client::handle::Mqtt;
use crate::client::link::Link;
use crate::client::registry::{Holder, Registry};
use crate::client::requests::Requests;
use crate::client::shared::{Inner, Shared};
use crate::client::slot::Streams;
use crate::client::stats::Counters;
use crate::client::{connection, deadlines, tls};
use crate::config::{BrokerAddr, MqttConfig};
use crate::error::StartError;
use crate::router::dispatch;
use crate::router::routes::Router;
use crate::router::table::RouteTable;
use crate::router::Handler;

/// Registers handlers and callbacks, then starts the client.
///
/// Several handlers per event may be registered; all run, in registration order (Flask-MQTT keeps
/// only the last). Everything registered here is in place before the first connect.
///
/// ```no_run
/// use axum_mqtt::{Mqtt, MqttConfig, Router, extract::Text};
///
/// # async fn demo() -> Result<(), axum_mqtt::Error> {
/// let mqtt = Mqtt::builder(MqttConfig::from_env()?)
///     .on_connect(|_mqtt, ack| async move {
///         if ack.is_success() { println!("Connected successfully") }
///         else { println!("Bad connection. Code: {}", ack.code) }
///     })
///     .on_topic("home/+/temperature", |Text(t): Text| async move { println!("{t}") })
///     .router(Router::new().route("alarms/{zone}", |Text(t): Text| async move { eprintln!("{t}") }))
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
pub struct MqttBuilder {
    config: MqttConfig,
    router: Router,
    callbacks: Callbacks,
}

impl Mqtt {
    /// Starts a client with no handlers: `Mqtt::builder(config).start()`.
    pub async fn start(config: MqttConfig) -> Result<Mqtt, StartError> {
        Mqtt::builder(config).start().await
    }

    /// A builder to register handlers before the first connect, so none misses it.
    pub fn builder(config: MqttConfig) -> MqttBuilder {
        MqttBuilder {
            config,
            router: Router::new(),
            callbacks: Callbacks::default(),
        }
    }
}

impl MqttBuilder {
    /// Adds a router's routes (merged with routes added before).
    pub fn router(mut self, router: Router) -> Self {
        self.router = self.router.merge(router);
        self
    }

    /// A handler for one filter (Flask-MQTT's `on_topic`); the filter is subscribed with QoS 1 on every
    /// connect. Takes the same extractors as router handlers.
    pub fn on_topic<H, T>(mut self, filter: &str, handler: H) -> Self
    where
        H: Handler<T, ()>,
        T: 'static,
    {
        self.router = self.router.route(filter, handler);
        self
    }

    /// A handler for every received message (Flask-MQTT's `on_message`); subscribes nothing.
    pub fn on_message<H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, ()>,
        T: 'static,
    {
        self.router = self.router.catch_all(handler);
        self
    }

    /// Called on every CONNACK, accepted or refused.
    pub fn on_connect<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Mqtt, Connack) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.callbacks
            .connect
            .push(Arc::new(move |m, e| Box::pin(f(m, e))));
        self
    }

    /// Called when a connection is lost or closed.
    pub fn on_disconnect<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Mqtt, Disconnected) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.callbacks
            .disconnect
            .push(Arc::new(move |m, e| Box::pin(f(m, e))));
        self
    }

    /// Called when the broker acknowledges one of our publishes.
    pub fn on_publish<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Mqtt, Published) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.callbacks
            .publish
            .push(Arc::new(move |m, e| Box::pin(f(m, e))));
        self
    }

    /// Called on every SUBACK.
    pub fn on_subscribe<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Mqtt, Subscribed) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.callbacks
            .subscribe
            .push(Arc::new(move |m, e| Box::pin(f(m, e))));
        self
    }

    /// Called on every UNSUBACK.
    pub fn on_unsubscribe<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Mqtt, Unsubscribed) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.callbacks
            .unsubscribe
            .push(Arc::new(move |m, e| Box::pin(f(m, e))));
        self
    }

    /// Validates everything and starts the connection task. Returns at once (the first connect
    /// happens in the background; see [`Mqtt::wait_connected`]). Must be called inside a tokio runtime.
    pub async fn start(self) -> Result<Mqtt, StartError> {
        let MqttBuilder {
            config,
            mut router,
            callbacks,
        } = self;
        config.validate()?;
        if let Some(e) = router.take_errors().into_iter().next() {
            return Err(e.into());
        }
        let tls = tls::client_config(&config)?;
        let client_id = config.effective_client_id()?;
        let claim = Arc::new(ClientIdClaim::take(&config, &client_id)?);
        let group = router
            .shared_group()
            .map(str::to_string)
            .or_else(|| config.shared_group.clone());
        let subscriptions = router.subscriptions_with_group(group.as_deref());
        let counters = Counters::new(&client_id);
        let table = RouteTable::new(router, &counters.meters);
        let ack_after = table.ack_after_patterns();
        // Room for every permitted request, an ack per message the lanes can hold, and a DISCONNECT.
        let capacity = config.max_pending + config.handler_concurrency * config.handler_queue + 8;
        let (sender, link) = Link::new(&config, &client_id, capacity, tls, !ack_after.is_empty())?;
        let mut registry = Registry::default();
        for (f, q) in &subscriptions {
            registry.add(f, Holder::Route, *q);
        }
        #[cfg(feature = "outbox")]
        let outbox = match &config.outbox {
            Some(o) => Some(crate::client::outbox::Outbox::open(
                o,
                counters.meters.outbox(),
            )?),
            None => None,
        };
        let (state, _) = watch::channel(ConnectionState {
            status: Status::Connecting,
            last_error: None,
            connects: 0,
            attempts: 0,
            client_id: client_id.clone(),
            broker: BrokerAddr::new(config.broker_url.clone(), config.broker_port).to_string(),
        });
        let requests = Arc::new(Requests::new(&config, sender.clone(), state.subscribe()));
        let shared = Arc::new(Shared {
            config,
            requests: requests.clone(),
            ack_after: AckAfter::new(ack_after, sender),
            registry: Mutex::new(registry),
            state,
            streams: Streams::default(),
            counters,
            #[cfg(feature = "outbox")]
            outbox: outbox.clone(),
        });
        let inner = Arc::new(Inner {
            shared: shared.clone(),
            claim: claim.clone(),
        });
        let weak = Arc::downgrade(&inner);
        let events = callbacks::spawn(shared.clone(), weak.clone(), callbacks);
        let dispatcher = dispatch::spawn(shared.clone(), weak, table);
        tokio::spawn(deadlines::watch(&requests));
        #[cfg(feature = "outbox")]
        if let Some(outbox) = outbox {
            let window = usize::from(shared.config.max_inflight);
            tokio::spawn(crate::client::outbox::run_sender(outbox, requests, window));
        }
        tokio::spawn(async move {
            connection::run(shared, link, events, dispatcher).await;
            claim.release();
        });
        tracing::info!(client_id = %client_id, "MQTT client started");
        Ok(Mqtt::from_inner(inner))
    }
}
