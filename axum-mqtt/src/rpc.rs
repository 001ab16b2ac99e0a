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

use std::time::Duration;

use bytes::Bytes;

use crate::extract::{FromMessage, Rejection};
use crate::router::MqttRequest;
use crate::{Error, Message, Mqtt, Properties, Protocol, QoS};

impl Mqtt {
    /// Publishes a request (QoS 1) with a fresh response topic and correlation data, and waits up to
    /// `timeout` for the reply. Needs MQTT 5 ([`Error::PropertiesNeedV5`] otherwise).
    pub async fn request(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Message, Error> {
        if self.protocol() != Protocol::V5 {
            return Err(Error::PropertiesNeedV5);
        }
        let id = format!("{:016x}", fastrand::u64(..));
        let reply_topic = format!(
            "_reply/{}/{id}",
            self.state().client_id.replace(['+', '#', '/'], "_")
        );
        let wait = async {
            // Subscribed before the request goes out, so a fast reply cannot be missed.
            let mut replies = self.stream(&reply_topic, QoS::AtLeastOnce, 4).await?;
            let props = Properties {
                response_topic: Some(reply_topic.clone()),
                correlation_data: Some(Bytes::from(id.clone())),
                ..Default::default()
            };
            self.publish(topic, payload)
                .qos(QoS::AtLeastOnce)
                .properties(props)
                .await?;
            while let Some(m) = replies.recv().await {
                let matches = m
                    .properties()
                    .and_then(|p| p.correlation_data.as_ref())
                    .is_none_or(|c| c.as_ref() == id.as_bytes());
                if matches {
                    return Ok(m);
                }
            }
            Err(Error::Closed)
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }
}

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
