use bytes::Bytes;

use super::from_message::FromMessage;
use super::rejection::Rejection;
use super::request::MqttRequest;

/// The raw payload bytes (no copy).
///
/// ```
/// use axum_mqtt::extract::Payload;
/// async fn handler(Payload(bytes): Payload) {
///     println!("{} bytes", bytes.len());
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(pub Bytes);

impl<S> FromMessage<S> for Payload {
    fn from_message(req: &MqttRequest, _: &S) -> Result<Self, Rejection> {
        Ok(Payload(req.message().payload().clone()))
    }
}

/// The payload as UTF-8 text; a payload that is not UTF-8 is rejected.
///
/// ```
/// use axum_mqtt::extract::Text;
/// async fn handler(Text(text): Text) {
///     println!("{text}");
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl<S> FromMessage<S> for Text {
    fn from_message(req: &MqttRequest, _: &S) -> Result<Self, Rejection> {
        utf8(req).map(|s| Text(s.to_string()))
    }
}

pub(super) fn utf8(req: &MqttRequest) -> Result<&str, Rejection> {
    let m = req.message();
    std::str::from_utf8(m.payload()).map_err(|e| Rejection::InvalidUtf8 {
        topic: m.topic().to_string(),
        valid_up_to: e.valid_up_to(),
    })
}
