use super::from_message::FromMessage;
use super::rejection::Rejection;
use super::request::MqttRequest;

/// The concrete topic of the message.
///
/// ```
/// use axum_mqtt::extract::Topic;
/// async fn handler(Topic(topic): Topic) {
///     println!("got a message on {topic}");
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic(pub String);

impl<S> FromMessage<S> for Topic {
    fn from_message(req: &MqttRequest, _: &S) -> Result<Self, Rejection> {
        Ok(Topic(req.message().topic().to_string()))
    }
}
