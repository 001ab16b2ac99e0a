//! The protocol-event callbacks registered on the builder (`on_connect`, `on_publish`, …): a worker
//! task of their own runs them, one event at a time, so a slow callback never holds up the
//! connection task.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use futures_util::FutureExt;
use tokio::sync::mpsc;

use super::events::{Connack, Disconnected, Event, Published, Subscribed, Unsubscribed};
use super::handle::Mqtt;
use super::shared::{Inner, Shared};

type BoxFut = Pin<Box<dyn Future<Output = ()> + Send>>;
pub(crate) type Callback<E> = Arc<dyn Fn(Mqtt, E) -> BoxFut + Send + Sync>;

/// Flask-MQTT's callbacks, several per event.
#[derive(Default)]
pub(crate) struct Callbacks {
    pub connect: Vec<Callback<Connack>>,
    pub disconnect: Vec<Callback<Disconnected>>,
    pub publish: Vec<Callback<Published>>,
    pub subscribe: Vec<Callback<Subscribed>>,
    pub unsubscribe: Vec<Callback<Unsubscribed>>,
}

/// The connection task's side of the callbacks.
pub(crate) struct Events {
    tx: mpsc::Sender<Event>,
    wants_publish_events: bool,
    shared: Arc<Shared>,
}

impl Events {
    /// Queues a callback event without waiting; drops (and counts) it when callbacks fall behind.
    pub fn send(&self, e: Event) {
        if matches!(e, Event::Publish(_)) && !self.wants_publish_events {
            return;
        }
        if self.tx.try_send(e).is_err() {
            self.shared.counters.events_dropped();
            tracing::warn!("callback queue full: event dropped");
        }
    }
}

/// Starts the callback worker.
pub(crate) fn spawn(shared: Arc<Shared>, client: Weak<Inner>, callbacks: Callbacks) -> Events {
    let (tx, rx) = mpsc::channel(1024);
    let wants_publish_events = !callbacks.publish.is_empty();
    tokio::spawn(worker(rx, callbacks, client));
    Events {
        tx,
        wants_publish_events,
        shared,
    }
}

async fn worker(mut rx: mpsc::Receiver<Event>, cb: Callbacks, client: Weak<Inner>) {
    while let Some(e) = rx.recv().await {
        let Some(mqtt) = client.upgrade().map(Mqtt::from_inner) else {
            continue;
        };
        let futs: Vec<BoxFut> = match e {
            Event::Connect(x) => cb
                .connect
                .iter()
                .map(|f| f(mqtt.clone(), x.clone()))
                .collect(),
            Event::Disconnect(x) => cb
                .disconnect
                .iter()
                .map(|f| f(mqtt.clone(), x.clone()))
                .collect(),
            Event::Publish(x) => cb
                .publish
                .iter()
                .map(|f| f(mqtt.clone(), x.clone()))
                .collect(),
            Event::Subscribe(x) => cb
                .subscribe
                .iter()
                .map(|f| f(mqtt.clone(), x.clone()))
                .collect(),
            Event::Unsubscribe(x) => cb
                .unsubscribe
                .iter()
                .map(|f| f(mqtt.clone(), x.clone()))
                .collect(),
        };
        drop(mqtt);
        for f in futs {
            if AssertUnwindSafe(f).catch_unwind().await.is_err() {
                tracing::error!("callback panicked");
            }
        }
    }
}
