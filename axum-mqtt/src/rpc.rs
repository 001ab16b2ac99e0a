//! Request/response over MQTT 5: `Mqtt::request` sends a message with a response topic and
//! correlation data and waits for the reply; the [`Responder`] extractor answers one.
//!
//! ```no_run
//! use axum_mqtt::{rpc::Responder, extract::Text, Mqtt, Router};
//!
//! // Server side: a route that answers requests.
//! async fn echo(Text(body): Text, responder: Responder) -> Result<(), axum_mqtt::Error> {
//!     responder.reply(format!("echo: {body}")).await
//! }
//! let routes: Router = Router::new().route("service/echo", echo);
//!
//! // Client side:
//! # async fn demo(mqtt: Mqtt) -> Result<(), axum_mqtt::Error> {
//! let reply = mqtt.request("service/echo", "hi", std::time::Duration::from_secs(5)).await?;
//! assert_eq!(reply.payload_str(), Some("echo: hi"));
//! # Ok(()) }
//! ```

use bytes::Bytes;

use crate::extract::{FromMessage, MqttRequest, OptionalFromMessage, Rejection};
use crate::{Error, Mqtt, Properties, QoS};

/// Answers an MQTT 5 request: publishes to its response topic with its correlation data.
/// Rejected ([`Rejection::MissingProperty`]) when the message has no response topic.
pub struct Responder {
    mqtt: Mqtt,
    topic: String,
    correlation: Option<Bytes>,
}

impl Responder {
    /// The topic the reply goes to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Publishes the reply (QoS 1) and waits for the broker's ack.
    pub async fn reply(self, payload: impl Into<Bytes>) -> Result<(), Error> {
        let props = Properties {
            correlation_data: self.correlation,
            ..Default::default()
        };
        self.mqtt
            .publish(self.topic, payload)
            .qos(QoS::AtLeastOnce)
            .properties(props)
            .await
            .map(|_| ())
    }
}

impl<S> FromMessage<S> for Responder {
    fn from_message(req: &MqttRequest, _: &S) -> Result<Self, Rejection> {
        let props = req.message().properties();
        let topic = props
            .and_then(|p| p.response_topic.clone())
            .ok_or_else(|| Rejection::MissingProperty {
                topic: req.message().topic().to_string(),
                property: "response topic",
            })?;
        Ok(Responder {
            mqtt: req.client().cloned().ok_or(Rejection::NoClient)?,
            topic,
            correlation: props.and_then(|p| p.correlation_data.clone()),
        })
    }
}

/// `Option<Responder>`: `None` for a message that asks for no reply (no response topic).
impl<S> OptionalFromMessage<S> for Responder {
    fn from_message(req: &MqttRequest, state: &S) -> Result<Option<Self>, Rejection> {
        let asks = req
            .message()
            .properties()
            .is_some_and(|p| p.response_topic.is_some());
        if !asks {
            return Ok(None);
        }
        <Self as FromMessage<S>>::from_message(req, state).map(Some)
    }
}
