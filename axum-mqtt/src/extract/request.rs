//! [`MqttRequest`]: what extractors read, and the request type of every route's tower service.

use std::sync::Arc;

use crate::client::handle::Mqtt;
use crate::message::Message;
use crate::topic::Captures;

/// One message on its way through layers to a handler: the message, the route's named segments and
/// the client (to publish replies). This is the request type of every route's tower `Service`.
#[derive(Debug, Clone)]
pub struct MqttRequest {
    message: Message,
    params: Captures,
    client: Option<Mqtt>,
}

impl MqttRequest {
    /// A request for a message, with no named segments and no client (for testing handlers).
    ///
    /// ```
    /// use axum_mqtt::{Message, extract::MqttRequest};
    /// let req = MqttRequest::new(Message::new("a/b", "x"));
    /// assert_eq!(req.message().topic(), "a/b");
    /// ```
    pub fn new(message: Message) -> Self {
        MqttRequest {
            message,
            params: Vec::new(),
            client: None,
        }
    }

    /// A request with named segments, as the router builds it (for testing extractors like `Params`).
    ///
    /// ```
    /// use axum_mqtt::{Message, extract::MqttRequest, extract::{FromMessage, Params}};
    /// let req = MqttRequest::with_params(Message::new("devices/7", ""), vec![("id".into(), "7".into())]);
    /// let Params(id) = Params::<u32>::from_message(&req, &()).unwrap();
    /// assert_eq!(id, 7);
    /// ```
    pub fn with_params(message: Message, params: Vec<(Arc<str>, String)>) -> Self {
        Self::with(message, params, None)
    }

    pub(crate) fn with(message: Message, params: Captures, client: Option<Mqtt>) -> Self {
        MqttRequest {
            message,
            params,
            client,
        }
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Named segments captured by the route, in pattern order.
    pub fn params(&self) -> &[(Arc<str>, String)] {
        &self.params
    }

    /// One named segment.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The client that received the message.
    pub fn client(&self) -> Option<&Mqtt> {
        self.client.as_ref()
    }
}
