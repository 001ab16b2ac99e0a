//! The typed [`PublishRequest`] of `POST /publish`, read from JSON in one pass.
//!
//! The checks run in a fixed order, so each bad body gets the same answer from HTTP and from any
//! other transport (the app's WebSocket): the body's syntax (400 `invalid_json`/`invalid_utf8`),
//! its shape (422 `invalid_body`, `invalid_payload` for the payload fields), `qos` (422
//! `invalid_qos`), the base64 payload (422 `invalid_payload`), then the endpoint's rules: the
//! payload size, user properties included (413), the topic (422 `invalid_topic`), the user
//! properties' strings (422 `invalid_user_property`) and the allow-list (403).

use std::fmt;

use base64::Engine as _;
use bytes::Bytes;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::ApiError;
use crate::QoS;

/// A publish request, read and checked: a topic, the payload bytes, QoS and retain.
///
/// Read it from the JSON body of `POST /publish` with [`PublishRequest::from_json`] (or from a
/// JSON object already parsed, e.g. a WebSocket frame, with [`PublishRequest::from_object`]):
/// `{"topic": "a/b", "msg": "hello"}`, with exactly one of `msg` / `payload` (text; other JSON
/// values are sent as their JSON text) or `payload_base64` (binary), and optional `qos` (0, 1 or 2;
/// default 0), `retain` (default false) and `user_properties` (MQTT 5: `[["key", "value"], …]` in
/// order, or `{"key": "value", …}`). Errors carry the status and `kind` the HTTP endpoint
/// answers with. It also implements [`Deserialize`] with the same rules, for `axum::Json`.
///
/// Whether the topic is valid and allowed is the endpoint's decision
/// ([`PublishEndpoint::publish_request`](super::PublishEndpoint::publish_request)), not the request's.
///
/// ```
/// use axum_mqtt::{web::PublishRequest, QoS};
/// let req = PublishRequest::from_json(br#"{"topic": "a/b", "msg": "hi", "qos": 1}"#)?;
/// assert_eq!((req.topic.as_str(), &req.payload[..], req.qos), ("a/b", &b"hi"[..], QoS::AtLeastOnce));
///
/// let e = PublishRequest::from_json(br#"{"topic": "a/b"}"#).unwrap_err();
/// assert_eq!((e.status.as_u16(), e.kind), (422, "invalid_payload"));
/// # Ok::<(), axum_mqtt::web::ApiError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishRequest {
    /// Topic to publish to (checked by the endpoint).
    pub topic: String,
    /// The payload.
    pub payload: Bytes,
    /// QoS (default 0).
    pub qos: QoS,
    /// Retain flag (default false).
    pub retain: bool,
    /// MQTT 5 user properties, in order (default none; publishing them needs MQTT 5).
    pub user_properties: Vec<(String, String)>,
}

impl PublishRequest {
    /// A request at QoS 0 without retain.
    ///
    /// ```
    /// use axum_mqtt::{web::PublishRequest, QoS};
    /// let req = PublishRequest::new("a/b", "hi").with_qos(QoS::AtLeastOnce).with_retain(true);
    /// assert!(req.retain);
    /// ```
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        PublishRequest {
            topic: topic.into(),
            payload: payload.into(),
            qos: QoS::AtMostOnce,
            retain: false,
            user_properties: Vec::new(),
        }
    }

    /// Sets the QoS.
    ///
    /// ```
    /// # use axum_mqtt::{web::PublishRequest, QoS};
    /// assert_eq!(PublishRequest::new("a", "").with_qos(QoS::ExactlyOnce).qos, QoS::ExactlyOnce);
    /// ```
    pub fn with_qos(mut self, qos: QoS) -> Self {
        self.qos = qos;
        self
    }

    /// Sets the retain flag.
    ///
    /// ```
    /// # use axum_mqtt::web::PublishRequest;
    /// assert!(PublishRequest::new("a", "").with_retain(true).retain);
    /// ```
    pub fn with_retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }

    /// Adds an MQTT 5 user property (after those already there).
    ///
    /// ```
    /// # use axum_mqtt::web::PublishRequest;
    /// let req = PublishRequest::new("a", "").with_user_property("source", "web");
    /// assert_eq!(req.user_properties, [("source".to_string(), "web".to_string())]);
    /// ```
    pub fn with_user_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.user_properties.push((key.into(), value.into()));
        self
    }

    /// Reads a JSON body in one pass: 400 `invalid_json` / `invalid_utf8` when it is not JSON,
    /// 422 `invalid_body` when it is not an object of the right shape, 422 `invalid_payload` /
    /// `invalid_qos` for those fields.
    ///
    /// ```
    /// use axum_mqtt::web::PublishRequest;
    /// let req = PublishRequest::from_json(br#"{"topic": "t", "payload_base64": "AAEC"}"#)?;
    /// assert_eq!(&req.payload[..], &[0, 1, 2]);
    /// assert_eq!(PublishRequest::from_json(b"{oops").unwrap_err().kind, "invalid_json");
    /// assert_eq!(PublishRequest::from_json(b"[1]").unwrap_err().kind, "invalid_body");
    /// # Ok::<(), axum_mqtt::web::ApiError>(())
    /// ```
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        match serde_json::from_slice::<Fields>(body) {
            Ok(fields) => fields.check(),
            Err(e) => Err(unreadable(body, &e)),
        }
    }

    /// Reads a JSON object that is already parsed, with the rules of [`from_json`](Self::from_json);
    /// other keys are ignored.
    ///
    /// ```
    /// use axum_mqtt::web::PublishRequest;
    /// let serde_json::Value::Object(frame) = serde_json::json!({"op": "publish", "topic": "t", "msg": 21.5})
    ///     else { unreachable!() };
    /// assert_eq!(&PublishRequest::from_object(frame)?.payload[..], b"21.5");
    /// # Ok::<(), axum_mqtt::web::ApiError>(())
    /// ```
    pub fn from_object(object: Map<String, Value>) -> Result<Self, ApiError> {
        let mut fields = Fields::default();
        for (key, value) in object {
            if let Some(slot) = fields.slot(Key::of(&key)) {
                *slot = Some(value);
            }
        }
        fields.check()
    }
}

impl<'de> Deserialize<'de> for PublishRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Fields::deserialize(d)?
            .check()
            .map_err(|e| de::Error::custom(e.message))
    }
}

/// The body's syntax failed, or it was not an object: which answer.
fn unreadable(body: &[u8], e: &serde_json::Error) -> ApiError {
    // Only the object visitor raises data errors; a body that is JSON at all is just not an object.
    let not_json = !e.is_data() || serde_json::from_slice::<IgnoredAny>(body).is_err();
    if not_json && std::str::from_utf8(body).is_err() {
        ApiError::bad_request("invalid_utf8", "the body is not UTF-8 text")
    } else if not_json {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    } else {
        ApiError::unprocessable(
            "invalid_body",
            "expected a JSON object like {\"topic\": \"a/b\", \"msg\": \"hello\"}",
        )
    }
}

/// The body's known fields as given (an explicit `null` is kept: it is not an absent field).
#[derive(Debug, Default)]
struct Fields {
    topic: Option<Value>,
    msg: Option<Value>,
    payload: Option<Value>,
    payload_base64: Option<Value>,
    qos: Option<Value>,
    retain: Option<Value>,
    user_properties: Option<Value>,
}

/// Every key a request body may hold (the OpenAPI schema lists the same, a test checks).
#[cfg_attr(not(all(test, feature = "openapi")), allow(dead_code))]
pub(crate) const KEYS: [&str; 7] = [
    "topic",
    "msg",
    "payload",
    "payload_base64",
    "qos",
    "retain",
    "user_properties",
];

#[derive(Clone, Copy)]
enum Key {
    Topic,
    Msg,
    Payload,
    PayloadBase64,
    Qos,
    Retain,
    UserProperties,
    Other,
}

impl Key {
    fn of(name: &str) -> Key {
        match name {
            "topic" => Key::Topic,
            "msg" => Key::Msg,
            "payload" => Key::Payload,
            "payload_base64" => Key::PayloadBase64,
            "qos" => Key::Qos,
            "retain" => Key::Retain,
            "user_properties" => Key::UserProperties,
            _ => Key::Other,
        }
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key::of(v))
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Fields::default();
                while let Some(key) = map.next_key::<Key>()? {
                    // A repeated key: the last one counts, as in a parsed JSON object.
                    match fields.slot(key) {
                        Some(slot) => *slot = Some(map.next_value()?),
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(fields)
            }
        }
        d.deserialize_map(FieldsVisitor)
    }
}

/// Which field the payload comes from, as given.
enum Source {
    Text(&'static str, Value),
    Base64(Value),
}

/// The payload field once its type is checked.
enum Payload {
    Text(Value),
    Base64(String),
}

impl Fields {
    fn slot(&mut self, key: Key) -> Option<&mut Option<Value>> {
        match key {
            Key::Topic => Some(&mut self.topic),
            Key::Msg => Some(&mut self.msg),
            Key::Payload => Some(&mut self.payload),
            Key::PayloadBase64 => Some(&mut self.payload_base64),
            Key::Qos => Some(&mut self.qos),
            Key::Retain => Some(&mut self.retain),
            Key::UserProperties => Some(&mut self.user_properties),
            Key::Other => None,
        }
    }

    /// The one place the request's rules are checked, in the order the module docs give.
    fn check(self) -> Result<PublishRequest, ApiError> {
        let invalid_payload = |m: String| ApiError::unprocessable("invalid_payload", m);
        let source = match (self.msg, self.payload, self.payload_base64) {
            (None, None, None) => {
                return Err(invalid_payload(
                    "missing `msg` (or `payload` / `payload_base64`)".into(),
                ))
            }
            (Some(v), None, None) => Source::Text("msg", v),
            (None, Some(v), None) => Source::Text("payload", v),
            (None, None, Some(v)) => Source::Base64(v),
            _ => {
                return Err(invalid_payload(
                    "give only one of `msg`, `payload`, `payload_base64`".into(),
                ))
            }
        };
        let (name, value) = match &source {
            Source::Text(name, v) => (*name, v),
            Source::Base64(v) => ("payload_base64", v),
        };
        if value.is_null() {
            return Err(invalid_payload(format!(
                "`{name}` must not be null (send \"\" for an empty payload)"
            )));
        }
        // Field types, reported in the order of the field names like serde's own messages.
        let shape = |e: serde_json::Error| ApiError::unprocessable("invalid_body", e.to_string());
        let payload = match source {
            Source::Text(_, v) => Payload::Text(v),
            Source::Base64(v) => Payload::Base64(String::deserialize(v).map_err(shape)?),
        };
        let retain = match self.retain {
            None => false,
            Some(v) => Option::<bool>::deserialize(v)
                .map_err(shape)?
                .unwrap_or(false),
        };
        let topic = match self.topic {
            Some(v) => String::deserialize(v).map_err(shape)?,
            None => {
                return Err(ApiError::unprocessable(
                    "invalid_body",
                    "missing field `topic`",
                ))
            }
        };
        let user_properties = match self.user_properties {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => user_properties(v)?,
        };
        let qos = match self.qos {
            None | Some(Value::Null) => QoS::AtMostOnce,
            Some(v) => v
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .and_then(|n| QoS::try_from(n).ok())
                .ok_or_else(|| {
                    ApiError::unprocessable(
                        "invalid_qos",
                        format!("qos must be 0, 1 or 2, got {v}"),
                    )
                })?,
        };
        let payload = match payload {
            // Moved, not copied: the text becomes the payload.
            Payload::Text(Value::String(s)) => Bytes::from(s),
            Payload::Text(other) => Bytes::from(other.to_string()),
            Payload::Base64(b) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map(Bytes::from)
                .map_err(|e| invalid_payload(format!("payload_base64 is not valid base64: {e}")))?,
        };
        Ok(PublishRequest {
            topic,
            payload,
            qos,
            retain,
            user_properties,
        })
    }
}

/// `user_properties` as given: `[["key", "value"], …]` or `{"key": "value", …}` (422 `invalid_body`
/// otherwise).
fn user_properties(v: Value) -> Result<Vec<(String, String)>, ApiError> {
    let bad = || {
        ApiError::unprocessable(
            "invalid_body",
            "user_properties must be [[\"key\", \"value\"], …] or {\"key\": \"value\", …} with string keys and values",
        )
    };
    match v {
        Value::Object(o) => o
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(v) => Ok((k, v)),
                _ => Err(bad()),
            })
            .collect(),
        Value::Array(pairs) => pairs
            .into_iter()
            .map(|pair| <(String, String)>::deserialize(pair).map_err(|_| bad()))
            .collect(),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kind(body: &str) -> (u16, &'static str) {
        let e = PublishRequest::from_json(body.as_bytes()).unwrap_err();
        (e.status.as_u16(), e.kind)
    }

    #[test]
    fn reads_the_tutorial_body_and_its_extensions() {
        let r =
            PublishRequest::from_json(br#"{"topic": "a", "msg": "hello", "extra": [1]}"#).unwrap();
        assert_eq!(r, PublishRequest::new("a", "hello"));
        let r = PublishRequest::from_json(
            br#"{"topic": "a", "payload": {"b": 1}, "qos": 2, "retain": true}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            PublishRequest::new("a", r#"{"b":1}"#)
                .with_qos(QoS::ExactlyOnce)
                .with_retain(true)
        );
        let r = PublishRequest::from_json(
            br#"{"topic": "a", "msg": "x", "qos": null, "retain": null}"#,
        )
        .unwrap();
        assert_eq!((r.qos, r.retain), (QoS::AtMostOnce, false));
        // A repeated key: the last counts.
        let r = PublishRequest::from_json(br#"{"topic": "a", "topic": "b", "msg": ""}"#).unwrap();
        assert_eq!(r.topic, "b");
    }

    #[test]
    fn each_bad_body_gets_its_kind_in_a_fixed_order() {
        for (body, want) in [
            ("{oops", (400, "invalid_json")),
            ("[1, 2", (400, "invalid_json")),
            ("", (400, "invalid_json")),
            ("[1, 2]", (422, "invalid_body")),
            ("\"text\"", (422, "invalid_body")),
            (r#"{"topic": 5}"#, (422, "invalid_payload")),
            (r#"{"topic": "a", "msg": null}"#, (422, "invalid_payload")),
            (
                r#"{"topic": "a", "msg": "x", "payload": null}"#,
                (422, "invalid_payload"),
            ),
            (r#"{"msg": "x"}"#, (422, "invalid_body")),
            (r#"{"topic": 5, "msg": "x"}"#, (422, "invalid_body")),
            (
                r#"{"topic": "a", "msg": "x", "retain": "yes", "qos": 3}"#,
                (422, "invalid_body"),
            ),
            (
                r#"{"topic": "a", "payload_base64": 5, "qos": 3}"#,
                (422, "invalid_body"),
            ),
            (
                r#"{"topic": "a", "msg": "x", "qos": "1"}"#,
                (422, "invalid_qos"),
            ),
            (
                r#"{"topic": "a", "msg": "x", "qos": 1.5}"#,
                (422, "invalid_qos"),
            ),
            (
                r#"{"topic": "a", "payload_base64": "***", "qos": 3}"#,
                (422, "invalid_qos"),
            ),
            (
                r#"{"topic": "a", "payload_base64": "***"}"#,
                (422, "invalid_payload"),
            ),
        ] {
            assert_eq!(kind(body), want, "{body}");
        }
        let e = PublishRequest::from_json(b"\xff\xfe").unwrap_err();
        assert_eq!(e.kind, "invalid_utf8");
        let e = PublishRequest::from_json(br#"{"topic": 5, "msg": "x"}"#).unwrap_err();
        assert_eq!(e.message, "invalid type: integer `5`, expected a string");
    }

    #[test]
    fn a_parsed_object_follows_the_same_rules() {
        let Value::Object(o) = json!({"topic": "a", "payload": "x", "qos": 3}) else {
            unreachable!()
        };
        assert_eq!(
            PublishRequest::from_object(o).unwrap_err().kind,
            "invalid_qos"
        );
        let r: PublishRequest = serde_json::from_str(r#"{"topic": "a", "msg": "x"}"#).unwrap();
        assert_eq!(r.payload, Bytes::from("x"));
        assert!(serde_json::from_str::<PublishRequest>(r#"{"topic": "a"}"#).is_err());
    }

    #[test]
    fn user_properties_as_pairs_or_an_object() {
        let r = PublishRequest::from_json(
            br#"{"topic": "a", "msg": "x", "user_properties": [["k", "v"], ["k", "w"]]}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            PublishRequest::new("a", "x")
                .with_user_property("k", "v")
                .with_user_property("k", "w")
        );
        let r = PublishRequest::from_json(
            br#"{"topic": "a", "msg": "x", "user_properties": {"source": "web"}}"#,
        )
        .unwrap();
        assert_eq!(r.user_properties, [("source".into(), "web".into())]);
        let r =
            PublishRequest::from_json(br#"{"topic": "a", "msg": "x", "user_properties": null}"#)
                .unwrap();
        assert!(r.user_properties.is_empty());
        for bad in [
            r#"{"topic": "a", "msg": "x", "user_properties": "k=v"}"#,
            r#"{"topic": "a", "msg": "x", "user_properties": [["k"]]}"#,
            r#"{"topic": "a", "msg": "x", "user_properties": [["k", 1]]}"#,
            r#"{"topic": "a", "msg": "x", "user_properties": {"k": 1}}"#,
        ] {
            assert_eq!(kind(bad), (422, "invalid_body"), "{bad}");
        }
    }
}
