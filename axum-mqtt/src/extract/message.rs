use super::from_message::FromMessage;
use super::rejection::Rejection;
use super::request::MqttRequest;

/// The retain flag: true when the broker delivered a stored (retained) message.
///
/// ```
/// use axum_mqtt::extract::Retain;
/// async fn handler(Retain(retained): Retain) {
///     if retained { println!("stored value"); }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retain(pub bool);

impl<S> FromMessage<S> for Retain {
    fn from_message(req: &MqttRequest, _: &S) -> Result<Self, Rejection> {
        Ok(Retain(req.message().retain()))
    }
}
