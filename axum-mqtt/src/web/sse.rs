//! Messages for browsers: [`MessageJson`] and [`sse`] (Server-Sent Events).

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use base64::Engine as _;
use futures_util::{Stream, StreamExt};
use serde::Serialize;

use crate::{Message, Properties, QoS};

/// A message as JSON for browsers: text payloads as `payload`, others as `payload_base64`, and the
/// MQTT 5 `properties` when it has any.
///
/// ```
/// use axum_mqtt::{Message, web::MessageJson};
/// let j = MessageJson::from(&Message::new("a", vec![0xff, 0x00]));
/// assert!(j.payload.is_none());
/// assert_eq!(j.payload_base64.as_deref(), Some("/wA="));
/// assert!(j.properties.is_none());
/// ```
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageJson {
    /// Topic.
    pub topic: String,
    /// UTF-8 payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// Non-UTF-8 payload, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    /// QoS.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// MQTT 5 properties; absent on MQTT 3.1.1 and when the message has none (boxed: most
    /// messages have none, and this keeps the common case small).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub properties: Option<Box<PropertiesJson>>,
}

/// MQTT 5 publish properties as JSON: only the ones set; user properties as `[key, value]` pairs
/// in order (duplicates allowed); correlation data as text when it is UTF-8, else base64.
///
/// ```
/// use axum_mqtt::{Message, Properties, web::MessageJson};
/// let m = Message::new("a", "hi").with_properties(Properties {
///     user_properties: vec![("k".into(), "v".into())],
///     correlation_data: Some(vec![0xff].into()),
///     ..Default::default()
/// });
/// let json = serde_json::to_value(MessageJson::from(&m)).unwrap();
/// assert_eq!(json["properties"], serde_json::json!({"user_properties": [["k", "v"]], "correlation_data_base64": "/w=="}));
/// ```
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct PropertiesJson {
    /// MIME type of the payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Where a reply should be published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_topic: Option<String>,
    /// Correlation data, when it is UTF-8 text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_data: Option<String>,
    /// Correlation data in base64, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_data_base64: Option<String>,
    /// Application key/value pairs, as `[key, value]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub user_properties: Vec<(String, String)>,
    /// Seconds the message still has to live, as delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_expiry_interval: Option<u32>,
    /// 1 when the publisher says the payload is UTF-8 text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_format_indicator: Option<u8>,
}

impl From<&Properties> for PropertiesJson {
    fn from(p: &Properties) -> Self {
        let (correlation_data, correlation_data_base64) = match &p.correlation_data {
            None => (None, None),
            Some(d) => match std::str::from_utf8(d) {
                Ok(s) => (Some(s.to_string()), None),
                Err(_) => (
                    None,
                    Some(base64::engine::general_purpose::STANDARD.encode(d)),
                ),
            },
        };
        PropertiesJson {
            content_type: p.content_type.clone(),
            response_topic: p.response_topic.clone(),
            correlation_data,
            correlation_data_base64,
            user_properties: p.user_properties.clone(),
            message_expiry_interval: p.message_expiry_interval,
            payload_format_indicator: p.payload_format_indicator,
        }
    }
}

impl From<&Message> for MessageJson {
    fn from(m: &Message) -> Self {
        let (payload, payload_base64) = match m.payload_str() {
            Some(s) => (Some(s.to_string()), None),
            None => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(m.payload())),
            ),
        };
        MessageJson {
            topic: m.topic().to_string(),
            payload,
            payload_base64,
            qos: m.qos(),
            retain: m.retain(),
            properties: m
                .properties()
                .filter(|p| !p.is_empty())
                .map(|p| Box::new(PropertiesJson::from(p))),
        }
    }
}

/// Turns messages (a [`MessageStream`](crate::MessageStream), or any stream of them, e.g. one ended
/// by a shutdown signal with `StreamExt::take_until`) into Server-Sent Events (`event: message`,
/// JSON data), with keep-alives.
///
/// ```no_run
/// use axum::{extract::State, response::{IntoResponse, Response}, routing::get, Router};
/// use axum_mqtt::{web, Mqtt, QoS};
///
/// async fn events(State(mqtt): State<Mqtt>) -> Response {
///     match mqtt.stream("sensors/#", QoS::AtMostOnce, 256).await {
///         Ok(stream) => web::sse(stream).into_response(),
///         Err(e) => web::ApiError::from(e).into_response(),
///     }
/// }
/// let app: Router<Mqtt> = Router::new().route("/events", get(events));
/// ```
pub fn sse<S>(stream: S) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    S: Stream<Item = Message> + Send + 'static,
{
    let events = stream.map(|m| {
        let data = serde_json::to_string(&MessageJson::from(&m)).unwrap_or_default();
        Ok(Event::default().event("message").data(data))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
