//! `app.config` → [`MqttConfig`], through the library's own key table (`MqttConfig::from_pairs`),
//! so the Python package reads exactly the keys, defaults and errors the Rust library documents.

use axum_mqtt::{MqttConfig, Protocol, Transport};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// A parsed configuration. Its getters are Flask-MQTT's attributes (`username`, `broker_port`, ...).
#[pyclass(module = "flask_mqtt._core", frozen)]
pub struct Config {
    pub(crate) inner: MqttConfig,
}

#[pymethods]
impl Config {
    /// Reads `<prefix>_<KEY>` pairs; a bad value raises `ValueError` naming the key and the value.
    #[new]
    fn new(prefix: &str, pairs: Vec<(String, String)>) -> PyResult<Self> {
        let inner = MqttConfig::from_pairs(prefix, pairs)
            .and_then(|c| c.validate().map(|()| c))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(Config { inner })
    }

    /// `CLIENT_ID` as configured (a template is filled in when the client starts).
    #[getter]
    fn client_id(&self) -> &str {
        &self.inner.client_id
    }
    /// The broker's host name.
    #[getter]
    fn broker_url(&self) -> &str {
        &self.inner.broker_url
    }
    /// The broker's port.
    #[getter]
    fn broker_port(&self) -> u16 {
        self.inner.broker_port
    }
    /// User name, if any.
    #[getter]
    fn username(&self) -> Option<&str> {
        self.inner.username.as_deref()
    }
    /// Password, if any.
    #[getter]
    fn password(&self) -> Option<&str> {
        self.inner.password.as_deref()
    }
    /// Keepalive in seconds.
    #[getter]
    fn keepalive(&self) -> u64 {
        self.inner.keepalive.as_secs()
    }
    /// Clean session (clean start on MQTT 5).
    #[getter]
    fn clean_session(&self) -> bool {
        self.inner.clean_session
    }
    /// TLS on.
    #[getter]
    fn tls_enabled(&self) -> bool {
        self.inner.tls.enabled
    }
    /// TLS verification off.
    #[getter]
    fn tls_insecure(&self) -> bool {
        self.inner.tls.insecure
    }
    /// CA bundle path.
    #[getter]
    fn tls_ca_certs(&self) -> Option<String> {
        self.inner
            .tls
            .ca_certs
            .as_ref()
            .map(|p| p.display().to_string())
    }
    /// Client certificate path.
    #[getter]
    fn tls_certfile(&self) -> Option<String> {
        self.inner
            .tls
            .certfile
            .as_ref()
            .map(|p| p.display().to_string())
    }
    /// Client key path.
    #[getter]
    fn tls_keyfile(&self) -> Option<String> {
        self.inner
            .tls
            .keyfile
            .as_ref()
            .map(|p| p.display().to_string())
    }
    /// Seconds to wait for a connection.
    #[getter]
    fn connection_timeout(&self) -> u64 {
        self.inner.connect_timeout.as_secs()
    }
    /// `"tcp"` or `"websockets"`.
    #[getter]
    fn transport(&self) -> &'static str {
        match self.inner.transport {
            Transport::Websockets => "websockets",
            _ => "tcp",
        }
    }
    /// paho's protocol number: 4 (3.1.1) or 5.
    #[getter]
    fn protocol_version(&self) -> u8 {
        match self.inner.protocol {
            Protocol::V5 => 5,
            _ => 4,
        }
    }
    /// The will's topic, if a will is set.
    #[getter]
    fn last_will_topic(&self) -> Option<&str> {
        self.inner.last_will.as_ref().map(|w| w.topic.as_str())
    }
    /// The will's payload as text (`None` when there is no will).
    #[getter]
    fn last_will_message(&self) -> Option<String> {
        self.inner.last_will.as_ref().map(|w| w.message.clone())
    }
    /// The will's QoS.
    #[getter]
    fn last_will_qos(&self) -> u8 {
        self.inner.last_will.as_ref().map_or(0, |w| w.qos as u8)
    }
    /// The will's retain flag.
    #[getter]
    fn last_will_retain(&self) -> bool {
        self.inner.last_will.as_ref().is_some_and(|w| w.retain)
    }
    /// `SHARED_GROUP`, if set.
    #[getter]
    fn shared_group(&self) -> Option<&str> {
        self.inner.shared_group.as_deref()
    }
    /// `HANDLER_CONCURRENCY`: the number of callback lanes.
    #[getter]
    fn handler_concurrency(&self) -> usize {
        self.inner.handler_concurrency
    }
    /// True when `OUTBOX_PATH` is set (QoS 1/2 publishes go through the durable outbox).
    #[getter]
    fn outbox(&self) -> bool {
        self.inner.outbox.is_some()
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// Every key the library reads, without the prefix.
#[pyfunction]
pub fn config_keys() -> Vec<&'static str> {
    MqttConfig::keys().collect()
}
