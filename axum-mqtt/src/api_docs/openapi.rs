//! OpenAPI schemas of the web pieces' bodies (feature `openapi`), for a `utoipa` document.
//!
//! [`PublishRequest`] and [`ApiError`] are read and written by hand-made serde code (a
//! request takes `msg` or `payload` or `payload_base64`, and any JSON value as text), so a derived
//! schema would describe their Rust fields, not their wire form. Their schemas are written here, by
//! hand, and a test holds them to the parser (`web/request.rs`): every key the parser reads is in the
//! schema, and the schema's examples parse.

use std::borrow::Cow;

use serde_json::json;
use utoipa::openapi::schema::{
    AllOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::message::QoS;
use crate::web::error::ApiError;
use crate::web::publish::PublishResponse;
use crate::web::request::PublishRequest;

/// The most characters a topic of at most 65 535 UTF-8 bytes can be sure to fit in when every
/// character takes 4 bytes. JSON Schema counts characters; the limit that holds is in bytes (checked
/// by the server, `invalid_topic`), so the schema says both.
const TOPIC_MAX_CHARS: usize = 65_535 / 4;

fn typed(t: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(t)
}

fn nullable(t: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::from_iter([t, Type::Null]))
}

/// Any JSON value but `null`: a text payload, or a value sent as its JSON text.
fn json_value(description: &str) -> Schema {
    let mut one = OneOfBuilder::new().description(Some(description));
    for t in [
        Type::String,
        Type::Number,
        Type::Boolean,
        Type::Object,
        Type::Array,
    ] {
        one = one.item(typed(t));
    }
    one.into()
}

/// `{"required": [name]}`: one branch of "exactly one of".
fn requires(name: &str) -> ObjectBuilder {
    ObjectBuilder::new().required(name)
}

impl PartialSchema for PublishRequest {
    fn schema() -> RefOr<Schema> {
        let topic = typed(Type::String)
            .min_length(Some(1))
            .max_length(Some(TOPIC_MAX_CHARS))
            .pattern(Some("^[^+#\\u0000]+$"))
            .description(Some(format!(
                "Topic to publish to: not empty, no wildcards (`+`, `#`), no NUL, at most 65535 bytes \
                 of UTF-8 (checked in bytes by the server; this schema bounds characters at \
                 {TOPIC_MAX_CHARS}, which fits whatever the characters)."
            )));
        let base64 = typed(Type::String)
            .pattern(Some(
                "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$",
            ))
            .description(Some("Binary payload, standard base64 with padding."));
        let qos = nullable(Type::Integer)
            .enum_values(Some([json!(0), json!(1), json!(2), json!(null)]))
            .default(Some(json!(0)))
            .description(Some(
                "QoS 0, 1 or 2; 1 and 2 wait for the broker's PUBACK / PUBCOMP.",
            ));
        let pair = ArrayBuilder::new()
            .items(typed(Type::String))
            .min_items(Some(2))
            .max_items(Some(2));
        let user_properties = OneOfBuilder::new()
            .item(ArrayBuilder::new().items(pair))
            .item(typed(Type::Object).additional_properties(Some(typed(Type::String))))
            .item(typed(Type::Null))
            .description(Some(
                "MQTT 5 user properties: [[\"key\", \"value\"], …] in order (duplicates allowed) or \
                 {\"key\": \"value\"}. Needs a client on MQTT 5 (422 `needs_mqtt5` otherwise).",
            ));
        let fields = typed(Type::Object)
            .required("topic")
            .property("topic", topic)
            .property("msg", json_value(
                "Text payload (the Flask tutorial's field). Non-string values are sent as their JSON text.",
            ))
            .property("payload", json_value("Alias of `msg`."))
            .property("payload_base64", base64)
            .property("qos", qos)
            .property(
                "retain",
                nullable(Type::Boolean).default(Some(json!(false))),
            )
            .property("user_properties", user_properties);
        let exactly_one = OneOfBuilder::new()
            .item(requires("msg"))
            .item(requires("payload"))
            .item(requires("payload_base64"));
        AllOfBuilder::new()
            .item(fields)
            .item(exactly_one)
            .description(Some(
                "Exactly one of `msg`, `payload`, `payload_base64`. Unknown keys are ignored.",
            ))
            .examples([json!({"topic": "/flask/mqtt", "msg": "hello"})])
            .into()
    }
}

impl ToSchema for PublishRequest {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("PublishRequest")
    }
}

impl PartialSchema for PublishResponse {
    fn schema() -> RefOr<Schema> {
        typed(Type::Object)
            .required("code")
            .required("mid")
            .property("code", typed(Type::Integer).enum_values(Some([0])))
            .property(
                "mid",
                typed(Type::Integer)
                    .minimum(Some(0))
                    .maximum(Some(65535))
                    .description(Some("The MQTT packet id (0 for QoS 0).")),
            )
            .into()
    }
}

impl ToSchema for PublishResponse {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("PublishResponse")
    }
}

impl PartialSchema for ApiError {
    fn schema() -> RefOr<Schema> {
        typed(Type::Object)
            .required("code")
            .required("kind")
            .required("error")
            .property("code", typed(Type::Integer).enum_values(Some([1])))
            .property(
                "kind",
                typed(Type::String).description(Some(
                    "A stable short name of the problem, e.g. `invalid_topic`, `topic_not_allowed`, \
                     `missing_token`.",
                )),
            )
            .property(
                "error",
                typed(Type::String).description(Some("What is wrong, for people.")),
            )
            .into()
    }
}

impl ToSchema for ApiError {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Error")
    }
}

impl PartialSchema for QoS {
    fn schema() -> RefOr<Schema> {
        typed(Type::Integer)
            .enum_values(Some([0, 1, 2]))
            .description(Some("MQTT QoS."))
            .into()
    }
}

impl ToSchema for QoS {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("QoS")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of<T: PartialSchema>() -> serde_json::Value {
        serde_json::to_value(T::schema()).unwrap()
    }

    #[test]
    fn every_key_the_parser_reads_is_documented_and_no_other() {
        let s = json_of::<PublishRequest>();
        let mut documented: Vec<&str> = s["allOf"][0]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        documented.sort_unstable();
        let mut read = crate::web::request::KEYS.to_vec();
        read.sort_unstable();
        assert_eq!(documented, read);
    }

    #[test]
    fn the_example_parses_and_the_topic_bound_fits_in_bytes() {
        let s = json_of::<PublishRequest>();
        let example = serde_json::to_vec(&s["examples"][0]).unwrap();
        let req = PublishRequest::from_json(&example).unwrap();
        assert_eq!(req.topic, "/flask/mqtt");
        let max = s["allOf"][0]["properties"]["topic"]["maxLength"]
            .as_u64()
            .unwrap() as usize;
        let widest = "😀".repeat(max);
        assert!(widest.len() <= 65_535);
        let body = serde_json::to_vec(&json!({"topic": widest, "msg": "x"})).unwrap();
        assert!(PublishRequest::from_json(&body).is_ok());
    }

    #[test]
    fn the_bodies_match_their_schemas() {
        let ok = serde_json::to_value(PublishResponse::new(7)).unwrap();
        let schema = json_of::<PublishResponse>();
        for k in schema["required"].as_array().unwrap() {
            assert!(ok.get(k.as_str().unwrap()).is_some(), "{k} in {ok}");
        }
        let err = ApiError::bad_request("invalid_json", "no");
        let body = crate::web::error::body(&err);
        let schema = json_of::<ApiError>();
        let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        let mut want: Vec<String> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        want.sort();
        assert_eq!(keys, want);
    }
}
