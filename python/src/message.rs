//! What callbacks receive: paho's `MQTTMessage` and its MQTT 5 `Properties`, with the same
//! attribute names, so handlers written for Flask-MQTT read them unchanged.

use std::time::{SystemTime, UNIX_EPOCH};

use axum_mqtt::Message;
use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

/// A received message (paho's `MQTTMessage`).
#[pyclass(module = "flask_mqtt._core", name = "MQTTMessage")]
pub struct MqttMessage {
    /// The topic it was published to.
    #[pyo3(get, set)]
    topic: Py<PyString>,
    /// The payload, as bytes.
    #[pyo3(get, set)]
    payload: Py<PyBytes>,
    /// The QoS it was delivered with.
    #[pyo3(get, set)]
    qos: u8,
    /// True for a retained message (sent because of a new subscription).
    #[pyo3(get, set)]
    retain: bool,
    /// The packet id (0 at QoS 0).
    #[pyo3(get, set)]
    mid: u16,
    /// True for a redelivery.
    #[pyo3(get, set)]
    dup: bool,
    /// When it was handed to Python, in seconds since the epoch.
    #[pyo3(get, set)]
    timestamp: f64,
    /// MQTT 5 properties (`None` on MQTT 3.1.1).
    #[pyo3(get, set)]
    properties: Option<Py<Properties>>,
}

impl MqttMessage {
    /// Python objects for a message taken from an inbox (the GIL is held).
    pub fn from_message(py: Python<'_>, msg: &Message, now: f64) -> PyResult<Self> {
        let properties = match msg.properties() {
            Some(p) => Some(Py::new(py, Properties::from_library(py, p))?),
            None => None,
        };
        Ok(MqttMessage {
            topic: PyString::new(py, msg.topic()).unbind(),
            payload: PyBytes::new(py, msg.payload()).unbind(),
            qos: msg.qos() as u8,
            retain: msg.retain(),
            mid: msg.pkid(),
            dup: msg.dup(),
            timestamp: now,
            properties,
        })
    }
}

/// Seconds since the epoch, once per batch.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[pymethods]
impl MqttMessage {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "MQTTMessage(topic={:?}, payload={} bytes, qos={}, retain={}, mid={})",
            self.topic.bind(py).to_string(),
            self.payload.bind(py).as_bytes().len(),
            self.qos,
            self.retain,
            self.mid
        )
    }
}

/// MQTT 5 publish properties, with paho's attribute names (`Properties(PacketTypes.PUBLISH)`).
#[pyclass(module = "flask_mqtt._core")]
#[allow(non_snake_case)] // paho's names, so user code reads the same
#[derive(Default)]
pub struct Properties {
    /// MIME type of the payload.
    #[pyo3(get, set)]
    ContentType: Option<String>,
    /// Where a reply should go.
    #[pyo3(get, set)]
    ResponseTopic: Option<String>,
    /// Ties a reply to its request.
    #[pyo3(get, set)]
    CorrelationData: Option<Py<PyBytes>>,
    /// `[(name, value), ...]` in order.
    #[pyo3(get, set)]
    UserProperty: Vec<(String, String)>,
    /// Seconds after which the broker may drop the message.
    #[pyo3(get, set)]
    MessageExpiryInterval: Option<u32>,
    /// 1 when the payload is UTF-8 text.
    #[pyo3(get, set)]
    PayloadFormatIndicator: Option<u8>,
}

impl Properties {
    fn from_library(py: Python<'_>, p: &axum_mqtt::Properties) -> Self {
        Properties {
            ContentType: p.content_type.clone(),
            ResponseTopic: p.response_topic.clone(),
            CorrelationData: p
                .correlation_data
                .as_ref()
                .map(|d| PyBytes::new(py, d).unbind()),
            UserProperty: p.user_properties.clone(),
            MessageExpiryInterval: p.message_expiry_interval,
            PayloadFormatIndicator: p.payload_format_indicator,
        }
    }
}

/// The library's properties from any object with paho's attribute names (ours, or paho's own).
pub fn properties_from_py(obj: &Bound<'_, PyAny>) -> PyResult<axum_mqtt::Properties> {
    fn attr<'py, T: FromPyObjectOwned<'py>>(
        obj: &Bound<'py, PyAny>,
        name: &str,
    ) -> PyResult<Option<T>> {
        match obj.getattr(name) {
            Ok(v) if v.is_none() => Ok(None),
            Ok(v) => v.extract().map(Some).map_err(Into::into),
            Err(_) => Ok(None),
        }
    }
    let correlation: Option<Vec<u8>> = attr(obj, "CorrelationData")?;
    Ok(axum_mqtt::Properties {
        content_type: attr(obj, "ContentType")?,
        response_topic: attr(obj, "ResponseTopic")?,
        correlation_data: correlation.map(Bytes::from),
        user_properties: attr(obj, "UserProperty")?.unwrap_or_default(),
        message_expiry_interval: attr(obj, "MessageExpiryInterval")?,
        payload_format_indicator: attr(obj, "PayloadFormatIndicator")?,
    })
}

#[pymethods]
impl Properties {
    /// `packet_type` is accepted for paho's signature and ignored (publish properties only).
    #[new]
    #[pyo3(signature = (packet_type = None))]
    fn new(packet_type: Option<&Bound<'_, PyAny>>) -> Self {
        let _ = packet_type;
        Properties::default()
    }

    /// True when no property is set (paho's `isEmpty`).
    #[allow(non_snake_case)]
    fn isEmpty(&self) -> bool {
        self.ContentType.is_none()
            && self.ResponseTopic.is_none()
            && self.CorrelationData.is_none()
            && self.UserProperty.is_empty()
            && self.MessageExpiryInterval.is_none()
            && self.PayloadFormatIndicator.is_none()
    }

    fn __repr__(&self) -> String {
        format!(
            "Properties(ContentType={:?}, ResponseTopic={:?}, UserProperty={:?}, MessageExpiryInterval={:?}, PayloadFormatIndicator={:?})",
            self.ContentType, self.ResponseTopic, self.UserProperty, self.MessageExpiryInterval, self.PayloadFormatIndicator
        )
    }
}

/// paho's `topic_matches_sub(sub, topic)`, by the library's matcher (`$share/` stripped, `$`
/// topics not matched by leading wildcards).
#[pyfunction]
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    axum_mqtt::topic::matches(filter, topic)
}

/// Raises `ValueError` unless `filter` is a valid topic filter.
#[pyfunction]
pub fn check_filter(filter: &str) -> PyResult<()> {
    axum_mqtt::topic::validate_filter(filter)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
}
