//! Extractors on arbitrary payloads: `<topic>\n<payload bytes>`. Nothing panics, and the
//! rejections say what the bytes are.
#![no_main]

use std::collections::HashMap;

use axum_mqtt::extract::{FromMessage, Json, Params, Payload, Rejection, Text, Topic};
use axum_mqtt::extract::MqttRequest;
use axum_mqtt::Message;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
struct Reading {
    celsius: f64,
    tags: Option<Vec<String>>,
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let topic = String::from_utf8_lossy(&data[..split]).into_owned();
    let payload = data.get(split + 1..).unwrap_or_default().to_vec();
    let req = MqttRequest::new(Message::new(topic.as_str(), payload.clone()));

    match (Text::from_message(&req, &()), std::str::from_utf8(&payload)) {
        (Ok(Text(t)), Ok(s)) => assert_eq!(t, s),
        (Err(Rejection::InvalidUtf8 { valid_up_to, .. }), Err(e)) => {
            assert_eq!(valid_up_to, e.valid_up_to())
        }
        (got, want) => panic!("Text gave {got:?} for {want:?}"),
    }
    let value = Json::<serde_json::Value>::from_message(&req, &());
    let expected = serde_json::from_slice::<serde_json::Value>(&payload);
    assert_eq!(value.is_ok(), expected.is_ok(), "{value:?}");
    if let Err(r) = Json::<Reading>::from_message(&req, &()) {
        assert!(
            matches!(r.kind(), "invalid_utf8" | "json_syntax" | "json_data"),
            "{r:?}"
        );
    }
    assert_eq!(
        Payload::from_message(&req, &()).map(|p| p.0.len()),
        Ok(payload.len())
    );
    assert_eq!(
        Topic::from_message(&req, &()).map(|t| t.0),
        Ok(topic.clone())
    );
    let _ = Params::<HashMap<String, String>>::from_message(&req, &());
    let _ = Params::<(String, u32)>::from_message(&req, &());
    let _ = <Option<Json<Reading>>>::from_message(&req, &());
});
