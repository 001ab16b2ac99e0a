use serde::de::DeserializeOwned;

use super::from_message::FromMessage;
use super::rejection::Rejection;
use super::request::MqttRequest;

/// The route's named segments, deserialized like axum's `Path`.
///
/// For the route `sensors/{device}/{kind}`, take a struct, a tuple in segment order, or a map.
/// A single segment can be taken as a plain value.
///
/// ```
/// use axum_mqtt::extract::Params;
/// #[derive(serde::Deserialize)]
/// struct Sensor { device: String, kind: String }
///
/// async fn by_struct(Params(s): Params<Sensor>) {}
/// async fn by_tuple(Params((device, kind)): Params<(String, String)>) {}
/// async fn numbers(Params(id): Params<u32>) {} // route `devices/{id}`
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params<T>(pub T);

impl<S, T: DeserializeOwned> FromMessage<S> for Params<T> {
    fn from_message(req: &MqttRequest, _: &S) -> Result<Self, Rejection> {
        let params = req.params();
        let err = |e: String| Rejection::Params {
            topic: req.message().topic().to_string(),
            error: e,
        };
        // Try, in order: a map/struct, a sequence/tuple, a single value (all as strings that serde
        // may parse further through the untyped JSON value).
        let as_value = |s: &str| -> serde_json::Value {
            serde_json::from_str::<serde_json::Value>(s)
                .ok()
                .filter(|v| v.is_number() || v.is_boolean())
                .unwrap_or_else(|| serde_json::Value::String(s.to_string()))
        };
        let map: serde_json::Map<String, serde_json::Value> = params
            .iter()
            .map(|(k, v)| (k.to_string(), as_value(v)))
            .collect();
        let as_strings: serde_json::Map<String, serde_json::Value> = params
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
            .collect();
        if let Ok(v) = serde_json::from_value::<T>(serde_json::Value::Object(as_strings)) {
            return Ok(Params(v));
        }
        let map_err = match serde_json::from_value::<T>(serde_json::Value::Object(map)) {
            Ok(v) => return Ok(Params(v)),
            Err(e) => e.to_string(),
        };
        let seq: Vec<serde_json::Value> = params.iter().map(|(_, v)| as_value(v)).collect();
        if let Ok(v) = serde_json::from_value::<T>(serde_json::Value::Array(seq.clone())) {
            return Ok(Params(v));
        }
        if let [single] = seq.as_slice() {
            if let Ok(v) = serde_json::from_value::<T>(single.clone()) {
                return Ok(Params(v));
            }
            if let Ok(v) =
                serde_json::from_value::<T>(serde_json::Value::String(params[0].1.clone()))
            {
                return Ok(Params(v));
            }
        }
        Err(err(map_err))
    }
}
