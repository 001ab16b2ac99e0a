use serde::de::DeserializeOwned;

use super::from_message::{FromMessage, OptionalFromMessage};
use super::rejection::Rejection;
use super::request::MqttRequest;

/// The payload deserialized from JSON.
///
/// Bad JSON is [`Rejection::JsonSyntax`]; JSON of the wrong shape is [`Rejection::JsonData`].
///
/// ```
/// use axum_mqtt::extract::Json;
/// #[derive(serde::Deserialize)]
/// struct Reading { celsius: f64 }
/// async fn handler(Json(r): Json<Reading>) {
///     println!("{}", r.celsius);
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Json<T>(pub T);

impl<S, T: DeserializeOwned> FromMessage<S> for Json<T> {
    fn from_message(req: &MqttRequest, _: &S) -> Result<Self, Rejection> {
        let m = req.message();
        let topic = || m.topic().to_string();
        serde_json::from_slice(m.payload()).map(Json).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data => Rejection::JsonData {
                    topic: topic(),
                    error: e.to_string(),
                },
                _ => match std::str::from_utf8(m.payload()) {
                    Err(u) => Rejection::InvalidUtf8 {
                        topic: topic(),
                        valid_up_to: u.valid_up_to(),
                    },
                    Ok(_) => Rejection::JsonSyntax {
                        topic: topic(),
                        error: e.to_string(),
                    },
                },
            }
        })
    }
}

/// An empty payload is absent; anything else must be valid JSON of the right shape.
impl<S, T: DeserializeOwned> OptionalFromMessage<S> for Json<T> {
    fn from_message(req: &MqttRequest, state: &S) -> Result<Option<Self>, Rejection> {
        if req.message().payload().is_empty() {
            return Ok(None);
        }
        <Self as FromMessage<S>>::from_message(req, state).map(Some)
    }
}
