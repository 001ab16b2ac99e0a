//! `Client`: one axum-mqtt client, driven from Python. Requests (`publish`, `subscribe`, ...)
//! return a paho-style `(rc, mid)` at once and run on this process's runtime; their outcome comes
//! back as a control event. Messages come back through per-lane inboxes (a topic always uses the
//! same lane, so its order is kept, and a slow callback holds up only its lane).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum_mqtt::topic::{share_filter, split_share, validate_filter, validate_topic, FilterIndex};
use axum_mqtt::{Error, Message, Mqtt, MqttConfig, Protocol, QoS, StartError, Status};
use bytes::Bytes;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::inbox::{Inbox, Sender};
use crate::message::{self, properties_from_py, MqttMessage};
use crate::runtime;

/// paho's `MQTT_ERR_*` values the binding returns.
mod rc {
    pub const SUCCESS: i32 = 0;
    pub const NO_CONN: i32 = 4;
    pub const CONN_LOST: i32 = 7;
    pub const UNKNOWN: i32 = 13;
    pub const QUEUE_SIZE: i32 = 15;
    /// paho's granted QoS for a refused subscription.
    pub const SUB_FAILURE: i32 = 128;
}

/// An outcome the Python dispatcher turns into callbacks.
enum Control {
    Connect {
        code: u8,
        session_present: bool,
    },
    Disconnect {
        reason: Option<String>,
    },
    /// `settled`: the caller was told at once (a QoS 0 publish queued right away); this event is
    /// only for `on_publish`.
    Published {
        mid: u16,
        rc: i32,
        error: Option<String>,
        settled: bool,
    },
    Subscribed {
        mid: u16,
        granted: Vec<i32>,
    },
    Unsubscribed {
        mid: u16,
        rc: i32,
        error: Option<String>,
    },
}

/// A message on its way to a lane, with the `on_topic` filters it matched.
struct Incoming {
    msg: Message,
    handlers: Vec<usize>,
}

/// The `on_topic` filters, matched in Rust so a message arrives with its handlers named.
#[derive(Default)]
struct Filters {
    filters: Vec<Option<String>>,
    index: FilterIndex,
}

impl Filters {
    fn rebuild(&mut self) {
        let mut index = FilterIndex::new();
        for (id, f) in self.filters.iter().enumerate() {
            if let Some(f) = f {
                index.insert(split_share(f).1, id);
            }
        }
        self.index = index;
    }
}

/// A started client in the process that started it.
struct Running {
    mqtt: Mqtt,
    rt: Handle,
    control_tx: Sender<Control>,
    control: Inbox<Control>,
    lanes: Vec<Inbox<Incoming>>,
    /// Requests in flight; a publish finding none left returns `MQTT_ERR_QUEUE_SIZE`.
    permits: Arc<Semaphore>,
}

/// One MQTT client (see the module docs).
#[pyclass(module = "flask_mqtt._core")]
pub struct Client {
    config: MqttConfig,
    filters: Arc<RwLock<Filters>>,
    next_mid: AtomicU16,
    /// The pid `running` belongs to.
    pid: u32,
    running: Option<Running>,
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.pid != runtime::pid() {
            // Inherited through fork: its runtime's threads are not in this process, and freeing
            // its parts could wait on them.
            std::mem::forget(self.running.take());
        }
    }
}

fn qos(q: u8) -> PyResult<QoS> {
    match q {
        0 => Ok(QoS::AtMostOnce),
        1 => Ok(QoS::AtLeastOnce),
        2 => Ok(QoS::ExactlyOnce),
        _ => Err(PyValueError::new_err("Invalid QoS level.")),
    }
}

fn lane_of(topic: &str, lanes: usize) -> usize {
    let mut h = DefaultHasher::new();
    topic.hash(&mut h);
    (h.finish() % lanes.max(1) as u64) as usize
}

/// A configuration or router mistake is the app's `ValueError` (as a bad `app.config` value is);
/// a file that cannot be used (TLS, outbox) is a `RuntimeError`.
fn start_error(e: StartError) -> PyErr {
    match e {
        StartError::Config(_) | StartError::Router(_) => PyValueError::new_err(e.to_string()),
        other => PyRuntimeError::new_err(other.to_string()),
    }
}

fn publish_rc(e: &Error) -> i32 {
    match e {
        Error::Closed => rc::NO_CONN,
        _ => rc::UNKNOWN,
    }
}

impl Client {
    fn running(&self) -> Option<&Running> {
        self.running.as_ref().filter(|_| self.pid == runtime::pid())
    }

    fn mid(&self) -> u16 {
        loop {
            let m = self.next_mid.fetch_add(1, Ordering::Relaxed);
            if m != 0 {
                return m;
            }
        }
    }

    /// The filter as sent: `SHARED_GROUP` applied as routes get it.
    fn shared(&self, filter: &str) -> String {
        share_filter(filter, self.config.shared_group.as_deref())
    }
}

#[pymethods]
impl Client {
    /// A client for `config`; nothing runs until [`start`](Self::start).
    #[new]
    fn new(config: &Config) -> Self {
        Client {
            config: config.inner.clone(),
            filters: Arc::default(),
            next_mid: AtomicU16::new(1),
            pid: 0,
            running: None,
        }
    }

    /// Starts the connection task in this process (again after a fork: the inherited one is
    /// left alone). Returns at once; the connection is made in the background.
    fn start(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.running().is_some() {
            return Ok(());
        }
        if self.pid != runtime::pid() {
            std::mem::forget(self.running.take());
        }
        let rt = runtime::handle()?;
        let io = |e: std::io::Error| PyRuntimeError::new_err(format!("cannot make an inbox: {e}"));
        let (control_tx, control) = Inbox::unbounded().map_err(io)?;
        let lanes_n = self.config.handler_concurrency.max(1);
        let mut lane_tx = Vec::with_capacity(lanes_n);
        let mut lanes = Vec::with_capacity(lanes_n);
        for _ in 0..lanes_n {
            let (tx, rx) = Inbox::bounded(self.config.handler_queue).map_err(io)?;
            lane_tx.push(tx);
            lanes.push(rx);
        }
        let lane_tx = Arc::new(lane_tx);
        let filters = self.filters.clone();
        let on_message = move |msg: Message| {
            let lane_tx = lane_tx.clone();
            let filters = filters.clone();
            async move {
                let mut handlers = Vec::new();
                filters
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .index
                    .matching(msg.topic(), &mut handlers);
                handlers.sort_unstable();
                let lane = lane_of(msg.topic(), lane_tx.len());
                // Waits while the lane is full: reading from the broker pauses (backpressure).
                lane_tx[lane].send(Incoming { msg, handlers }).await;
            }
        };
        let (c, d) = (control_tx.clone(), control_tx.clone());
        let builder = Mqtt::builder(self.config.clone())
            .on_message(on_message)
            .on_connect(move |_, ack| {
                c.send_now(Control::Connect {
                    code: ack.code,
                    session_present: ack.session_present,
                });
                async {}
            })
            .on_disconnect(move |_, ev| {
                d.send_now(Control::Disconnect { reason: ev.reason });
                async {}
            });
        let mqtt = py
            .detach(|| rt.block_on(builder.start()))
            .map_err(start_error)?;
        self.running = Some(Running {
            mqtt,
            rt,
            control_tx,
            control,
            lanes,
            permits: Arc::new(Semaphore::new(self.config.max_pending.max(1))),
        });
        self.pid = runtime::pid();
        Ok(())
    }

    /// Waits up to `timeout` seconds for the broker to accept the connection (GIL released).
    fn wait_connected(&self, py: Python<'_>, timeout: f64) -> bool {
        let Some(r) = self.running() else {
            return false;
        };
        let (mqtt, rt) = (r.mqtt.clone(), r.rt.clone());
        let d = Duration::from_secs_f64(timeout.max(0.0));
        py.detach(|| rt.block_on(mqtt.wait_connected(d)).status == Status::Connected)
    }

    /// True while connected and acknowledged by the broker.
    fn is_connected(&self) -> bool {
        self.running()
            .is_some_and(|r| r.mqtt.state().status == Status::Connected)
    }

    /// The client id in use (a `CLIENT_ID` template filled in), or the configured one before start.
    fn client_id(&self) -> String {
        match self.running() {
            Some(r) => r.mqtt.state().client_id,
            None => self.config.client_id.clone(),
        }
    }

    /// `(status, last_error, connects)`.
    fn state(&self) -> (String, Option<String>, u64) {
        match self.running() {
            Some(r) => {
                let s = r.mqtt.state();
                (
                    format!("{:?}", s.status).to_lowercase(),
                    s.last_error,
                    s.connects,
                )
            }
            None => ("stopped".into(), None, 0),
        }
    }

    /// Registers an `on_topic` filter; its id comes with every message it matches.
    fn add_filter(&self, filter: &str) -> PyResult<usize> {
        validate_filter(filter).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let mut f = self.filters.write().unwrap_or_else(|p| p.into_inner());
        f.filters.push(Some(filter.to_string()));
        let id = f.filters.len() - 1;
        f.index.insert(split_share(filter).1, id);
        Ok(id)
    }

    /// Forgets every `on_topic` filter (ids start again at 0).
    fn clear_filters(&self) {
        *self.filters.write().unwrap_or_else(|p| p.into_inner()) = Filters::default();
    }

    /// Forgets an `on_topic` filter.
    fn remove_filter(&self, id: usize) {
        let mut f = self.filters.write().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = f.filters.get_mut(id) {
            *slot = None;
            f.rebuild();
        }
    }

    /// Publishes; returns `(rc, mid, done)` at once. `done`: a QoS 0 publish queued right away
    /// (nothing more will come back unless `report`). Otherwise the broker's ack (or the failure)
    /// comes back as a `("publish", mid, rc, error)` control event.
    #[pyo3(signature = (topic, payload, qos_level = 0, retain = false, properties = None, report = true))]
    fn publish(
        &self,
        topic: String,
        payload: &[u8],
        qos_level: u8,
        retain: bool,
        properties: Option<&Bound<'_, PyAny>>,
        report: bool,
    ) -> PyResult<(i32, u16, bool)> {
        let q = qos(qos_level)?;
        validate_topic(&topic).map_err(|e| PyValueError::new_err(e.to_string()))?;
        if payload.len() + topic.len() + 9 > self.config.max_packet_size {
            return Err(PyValueError::new_err(format!(
                "Payload too large: {} bytes, MAX_PACKET_SIZE is {}.",
                payload.len(),
                self.config.max_packet_size
            )));
        }
        let props = match properties {
            Some(p) if !p.is_none() => {
                if self.config.protocol != Protocol::V5 {
                    return Err(PyValueError::new_err(
                        "MQTT 5 properties need PROTOCOL_VERSION=5",
                    ));
                }
                Some(properties_from_py(p)?)
            }
            _ => None,
        };
        let mid = self.mid();
        let Some(r) = self.running() else {
            return Ok((rc::NO_CONN, mid, false));
        };
        let payload = Bytes::copy_from_slice(payload);
        let durable = self.config.outbox.is_some() && q != QoS::AtMostOnce;
        if q == QoS::AtMostOnce {
            // The common case needs no task: queued now, written by the connection task.
            let mut now = r
                .mqtt
                .publish(topic.clone(), payload.clone())
                .retain(retain);
            if let Some(props) = &props {
                now = now.properties(props.clone());
            }
            if let Some(res) = now.try_send_now() {
                let (code, error) = match res {
                    Ok(_) => (rc::SUCCESS, None),
                    Err(e) => (publish_rc(&e), Some(e.to_string())),
                };
                if report && code == rc::SUCCESS {
                    // For `on_publish` only: the caller already knows it is done.
                    r.control_tx.send_now(Control::Published {
                        mid,
                        rc: code,
                        error: None,
                        settled: true,
                    });
                } else if let Some(e) = error {
                    tracing::warn!(error = %e, "publish refused");
                }
                return Ok((code, mid, code == rc::SUCCESS));
            }
        }
        let Ok(permit) = r.permits.clone().try_acquire_owned() else {
            return Ok((rc::QUEUE_SIZE, mid, false));
        };
        let (mqtt, tx) = (r.mqtt.clone(), r.control_tx.clone());
        r.rt.spawn(async move {
            let mut p = mqtt.publish(topic, payload).qos(q).retain(retain);
            if let Some(props) = props {
                p = p.properties(props);
            }
            let res = if durable {
                p.durable().await.map(|_| ())
            } else {
                p.send().await.map(|_| ())
            };
            drop(permit);
            let (rc, error) = match res {
                Ok(()) => (rc::SUCCESS, None),
                Err(e) => (publish_rc(&e), Some(e.to_string())),
            };
            tx.send_now(Control::Published {
                mid,
                rc,
                error,
                settled: false,
            });
        });
        Ok((rc::SUCCESS, mid, false))
    }

    /// Subscribes `[(filter, qos), ...]` (each kept and restored on every reconnect); returns the
    /// mid at once. The SUBACK comes back as `("subscribe", mid, [granted, ...])`.
    fn subscribe(&self, filters: Vec<(String, u8)>) -> PyResult<(i32, u16)> {
        let mut wanted = Vec::with_capacity(filters.len());
        for (f, q) in filters {
            validate_filter(&f).map_err(|e| PyValueError::new_err(e.to_string()))?;
            wanted.push((self.shared(&f), qos(q)?));
        }
        let mid = self.mid();
        let Some(r) = self.running() else {
            return Ok((rc::NO_CONN, mid));
        };
        let (mqtt, tx) = (r.mqtt.clone(), r.control_tx.clone());
        r.rt.spawn(async move {
            let acks = wanted.iter().map(|(f, q)| mqtt.subscribe(f, *q));
            let granted = futures_util::future::join_all(acks)
                .await
                .into_iter()
                .map(|res| match res {
                    Ok(q) => q as i32,
                    Err(e) => {
                        tracing::warn!(error = %e, "subscribe failed");
                        rc::SUB_FAILURE
                    }
                })
                .collect();
            tx.send_now(Control::Subscribed { mid, granted });
        });
        Ok((rc::SUCCESS, mid))
    }

    /// Unsubscribes filters made with `subscribe`; returns the mid at once.
    fn unsubscribe(&self, filters: Vec<String>) -> PyResult<(i32, u16)> {
        let mut gone = Vec::with_capacity(filters.len());
        for f in filters {
            validate_filter(&f).map_err(|e| PyValueError::new_err(e.to_string()))?;
            gone.push(self.shared(&f));
        }
        let mid = self.mid();
        let Some(r) = self.running() else {
            return Ok((rc::NO_CONN, mid));
        };
        let (mqtt, tx) = (r.mqtt.clone(), r.control_tx.clone());
        r.rt.spawn(async move {
            let mut result = Ok(());
            for f in &gone {
                if let Err(e) = mqtt.unsubscribe(f).await {
                    result = Err(e);
                }
            }
            let (rc, error) = match result {
                Ok(()) => (rc::SUCCESS, None),
                Err(e) => (publish_rc(&e), Some(e.to_string())),
            };
            tx.send_now(Control::Unsubscribed { mid, rc, error });
        });
        Ok((rc::SUCCESS, mid))
    }

    /// Waits up to `timeout` seconds for in-flight publishes to be acked, sends DISCONNECT and
    /// stops (GIL released). Idempotent.
    fn shutdown(&self, py: Python<'_>, timeout: f64) {
        if let Some(r) = self.running() {
            let (mqtt, rt, permits) = (r.mqtt.clone(), r.rt.clone(), r.permits.clone());
            let all = u32::try_from(self.config.max_pending.max(1)).unwrap_or(u32::MAX);
            let d = Duration::from_secs_f64(timeout.max(0.0));
            py.detach(|| {
                rt.block_on(async {
                    // Our publishes are tasks that may not have reached the client's book yet:
                    // wait for them all (each holds a permit) before the client's own wait.
                    let started = tokio::time::Instant::now();
                    let _ = tokio::time::timeout(d, permits.acquire_many(all)).await;
                    mqtt.shutdown(d.saturating_sub(started.elapsed())).await;
                })
            });
            r.control.wake();
            r.lanes.iter().for_each(Inbox::wake);
        }
    }

    /// The descriptor that is readable when control events wait.
    fn control_fileno(&self) -> PyResult<i32> {
        self.running()
            .map(|r| r.control.fileno())
            .ok_or_else(|| PyRuntimeError::new_err("the client is not started"))
    }

    /// Takes up to `max` control events as tuples:
    /// `("connect", rc, session_present)`, `("disconnect", rc, reason)`,
    /// `("publish", mid, rc, error, settled)`, `("subscribe", mid, [granted, ...])`,
    /// `("unsubscribe", mid, rc, error)`.
    fn take_control<'py>(&self, py: Python<'py>, max: usize) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let Some(r) = self.running() else {
            return Ok(Vec::new());
        };
        r.control
            .take(max)
            .into_iter()
            .map(|ev| match ev {
                Control::Connect {
                    code,
                    session_present,
                } => ("connect", code as i32, session_present).into_pyobject(py),
                Control::Disconnect { reason } => {
                    let code = if reason.is_some() {
                        rc::CONN_LOST
                    } else {
                        rc::SUCCESS
                    };
                    ("disconnect", code, reason).into_pyobject(py)
                }
                Control::Published {
                    mid,
                    rc,
                    error,
                    settled,
                } => ("publish", mid, rc, error, settled).into_pyobject(py),
                Control::Subscribed { mid, granted } => {
                    ("subscribe", mid, granted).into_pyobject(py)
                }
                Control::Unsubscribed { mid, rc, error } => {
                    ("unsubscribe", mid, rc, error).into_pyobject(py)
                }
            })
            .collect()
    }

    /// The number of message lanes.
    fn lanes(&self) -> usize {
        self.running().map_or(0, |r| r.lanes.len())
    }

    /// The descriptor that is readable when lane `lane` has messages.
    fn lane_fileno(&self, lane: usize) -> PyResult<i32> {
        self.running()
            .and_then(|r| r.lanes.get(lane))
            .map(Inbox::fileno)
            .ok_or_else(|| PyRuntimeError::new_err("no such lane (is the client started?)"))
    }

    /// Takes up to `max` messages of lane `lane`, each with the ids of the `on_topic` filters it
    /// matched: `[(message, (id, ...)), ...]`.
    fn take_messages(
        &self,
        py: Python<'_>,
        lane: usize,
        max: usize,
    ) -> PyResult<Vec<(MqttMessage, Vec<usize>)>> {
        let Some(inbox) = self.running().and_then(|r| r.lanes.get(lane)) else {
            return Ok(Vec::new());
        };
        let now = message::now();
        inbox
            .take(max)
            .into_iter()
            .map(|m| Ok((MqttMessage::from_message(py, &m.msg, now)?, m.handlers)))
            .collect()
    }
}
