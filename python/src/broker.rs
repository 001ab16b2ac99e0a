//! `EmbeddedBroker`: the project's embedded MQTT broker (rmqtt, MQTT 3.1.1 and 5 on one port),
//! in-process, for `flask_mqtt.testing`: Flask users test their handlers with nothing installed.

use std::net::SocketAddr;

use axum_mqtt_broker::{BrokerConfig, EmbeddedBroker as Broker};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// A running broker on loopback; port 0 picks a free port (read it back from `port`).
#[pyclass(module = "flask_mqtt._core")]
pub struct EmbeddedBroker {
    broker: Option<Broker>,
    port: u16,
    ws_port: Option<u16>,
}

#[pymethods]
impl EmbeddedBroker {
    /// Starts a broker on `host:port` (and a WebSocket listener when `ws_port` is given).
    #[new]
    #[pyo3(signature = (host = "127.0.0.1", port = 0, ws_port = None))]
    fn new(py: Python<'_>, host: &str, port: u16, ws_port: Option<u16>) -> PyResult<Self> {
        let addr = |p: u16| -> PyResult<SocketAddr> {
            format!("{host}:{p}")
                .parse()
                .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("{host}: {e}")))
        };
        let mut config = BrokerConfig::new(addr(port)?);
        if let Some(p) = ws_port {
            config = config.with_ws(addr(p)?);
        }
        let broker = py
            .detach(|| Broker::start(config))
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        Ok(EmbeddedBroker {
            port: broker.tcp_addr().port(),
            ws_port: broker.ws_addr().map(|a| a.port()),
            broker: Some(broker),
        })
    }

    /// The MQTT (TCP) port.
    #[getter]
    fn port(&self) -> u16 {
        self.port
    }

    /// The MQTT over WebSocket port, if one was asked for.
    #[getter]
    fn ws_port(&self) -> Option<u16> {
        self.ws_port
    }

    /// Connections open now.
    #[getter]
    fn connections(&self) -> usize {
        self.broker.as_ref().map_or(0, |b| b.stats().connections)
    }

    /// Closes the listeners and every connection; the port is free when this returns.
    fn stop(&mut self, py: Python<'_>) {
        if let Some(b) = self.broker.take() {
            py.detach(|| b.stop());
        }
    }
}
