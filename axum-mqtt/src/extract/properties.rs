//! MQTT 5 properties as extractors. On MQTT 3.1.1 they are always missing (use `Option<…>`).

use bytes::Bytes;

use super::from_message::{FromMessage, OptionalFromMessage};
use super::rejection::Rejection;
use super::request::MqttRequest;

fn missing(req: &MqttRequest, property: &'static str) -> Rejection {
    Rejection::MissingProperty {
        topic: req.message().topic().to_string(),
        property,
    }
}

/// The MQTT 5 user properties (empty when there are none).
///
/// ```
/// use axum_mqtt::extract::UserProperties;
/// async fn handler(UserProperties(props): UserProperties) {
///     for (k, v) in props { println!("{k}={v}"); }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserProperties(pub Vec<(String, String)>);

impl<S> FromMessage<S> for UserProperties {
    fn from_message(req: &MqttRequest, _: &S) -> Result<Self, Rejection> {
        Ok(UserProperties(
            req.message()
                .properties()
                .map(|p| p.user_properties.clone())
                .unwrap_or_default(),
        ))
    }
}

/// The MQTT 5 content type; rejected when absent (take `Option<ContentType>` when it may be).
///
/// ```
/// use axum_mqtt::extract::ContentType;
/// async fn handler(ct: Option<ContentType>) {}
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType(pub String);

/// The MQTT 5 response topic (request/response); rejected when absent.
///
/// ```
/// use axum_mqtt::extract::ResponseTopic;
/// async fn handler(ResponseTopic(reply_to): ResponseTopic) {}
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseTopic(pub String);

/// The MQTT 5 correlation data; rejected when absent.
///
/// ```
/// use axum_mqtt::extract::CorrelationData;
/// async fn handler(CorrelationData(id): CorrelationData) {}
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationData(pub Bytes);

/// A property extractor: `Option<T>` is `None` when the property is absent, `T` rejects it.
macro_rules! property {
    ($ty:ident, $field:ident, $name:literal) => {
        impl<S> OptionalFromMessage<S> for $ty {
            fn from_message(req: &MqttRequest, _: &S) -> Result<Option<Self>, Rejection> {
                Ok(req
                    .message()
                    .properties()
                    .and_then(|p| p.$field.clone())
                    .map($ty))
            }
        }

        impl<S> FromMessage<S> for $ty {
            fn from_message(req: &MqttRequest, state: &S) -> Result<Self, Rejection> {
                <Self as OptionalFromMessage<S>>::from_message(req, state)?
                    .ok_or_else(|| missing(req, $name))
            }
        }
    };
}

property!(ContentType, content_type, "content type");
property!(ResponseTopic, response_topic, "response topic");
property!(CorrelationData, correlation_data, "correlation data");
