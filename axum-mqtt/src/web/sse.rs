//! Messages for browsers: [`MessageJson`] and [`sse`] (Server-Sent Events).

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use base64::Engine as _;
use futures_util::{Stream, StreamExt};
use serde::Serialize;

use crate::{Message, QoS};

/// A message as JSON for browsers: text payloads as `payload`, others as `payload_base64`.
///
/// ```
/// use axum_mqtt::{Message, web::MessageJson};
/// let j = MessageJson::from(&Message::new("a", vec![0xff, 0x00]));
/// assert!(j.payload.is_none());
/// assert_eq!(j.payload_base64.as_deref(), Some("/wA="));
/// ```
#[derive(Debug, Clone, Serialize, PartialEq)]
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
