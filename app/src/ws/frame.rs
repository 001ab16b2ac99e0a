//! The WebSocket protocol's words: the [`Op`]s a page sends and the [`Frame`]s it gets back, each
//! spelled once (app/README.md, "The WebSocket protocol", and `app/assets/protocol.js` on the page).

use axum::http::StatusCode;
use axum_mqtt::web::{ApiError, MessageJson};
use axum_mqtt::{ConnectionState, Protocol, QoS, Status};
use serde::Serialize;
use serde_json::Value;

/// What a page asks for (the `op` of a request frame, echoed in its answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Publish,
    Subscribe,
    Unsubscribe,
    UnsubscribeAll,
}

impl Op {
    /// Every op, in the order error messages list them.
    pub const ALL: [Op; 4] = [
        Op::Publish,
        Op::Subscribe,
        Op::Unsubscribe,
        Op::UnsubscribeAll,
    ];

    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Op::Publish => "publish",
            Op::Subscribe => "subscribe",
            Op::Unsubscribe => "unsubscribe",
            Op::UnsubscribeAll => "unsubscribe_all",
        }
    }

    /// The op of that name.
    pub fn parse(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }

    /// `publish, subscribe, unsubscribe, unsubscribe_all`, for error messages.
    pub fn list() -> String {
        Op::ALL.map(Op::name).join(", ")
    }
}

/// What an `ack` frame says, per op.
#[derive(Debug, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Ack {
    /// The broker has the message.
    Publish { mid: u16 },
    /// The broker granted the subscription (`already`: this connection had it).
    Subscribe {
        filter: String,
        qos: QoS,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        already: bool,
    },
    /// The subscription is gone.
    Unsubscribe { filter: String },
    /// These subscriptions are gone (sorted).
    UnsubscribeAll { filters: Vec<String> },
}

/// A frame to the page (its `type` says which).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame<'a> {
    /// The MQTT connection's state and the protocol the app's client speaks: the first frame, then
    /// one on every change.
    Status {
        status: Status,
        protocol: Protocol,
        last_error: Option<String>,
        connects: u64,
        attempts: u32,
        client_id: String,
    },
    /// A message on one of this connection's subscriptions (`filter`).
    Message {
        filter: &'a str,
        time_ms: u64,
        #[serde(flatten)]
        message: MessageJson,
    },
    /// An op succeeded.
    Ack {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
        #[serde(flatten)]
        ack: Ack,
    },
    /// An op failed or a frame was bad; `status` is the HTTP status the same problem gets.
    Error {
        status: u16,
        kind: &'static str,
        error: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        op: Option<Op>,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
    },
    /// This connection skipped `count` messages since the last notice (`total` in all).
    Dropped { count: u64, total: u64 },
}

impl Frame<'_> {
    /// A `status` frame.
    pub fn status(s: &ConnectionState, protocol: Protocol) -> Frame<'static> {
        Frame::Status {
            status: s.status,
            protocol,
            last_error: s.last_error.clone(),
            connects: s.connects,
            attempts: s.attempts,
            client_id: s.client_id.clone(),
        }
    }

    /// An `ack` frame answering request `id`.
    pub fn ack(id: Option<Value>, ack: Ack) -> Frame<'static> {
        Frame::Ack { id, ack }
    }

    /// An `error` frame for `e`, answering `op` / `id` when known.
    pub fn error(e: &ApiError, op: Option<Op>, id: Option<Value>) -> Frame<'static> {
        Frame::Error {
            status: e.status.as_u16(),
            kind: e.kind,
            error: e.message.clone(),
            op,
            id,
        }
    }

    /// The frame as the JSON text sent to the page.
    pub fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            // Only a bug gets here: every field serializes.
            tracing::error!(error = %e, "a WebSocket frame did not serialize");
            let fallback = ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the app could not write this frame",
            );
            format!(
                r#"{{"type":"error","status":500,"kind":"{}","error":"{}"}}"#,
                fallback.kind, fallback.message
            )
        })
    }
}

/// What the reader hands the writer, in order.
#[derive(Debug)]
pub enum Control {
    /// Send this frame.
    Send(Frame<'static>),
    /// Close the connection with this code (after a frame the stream cannot be read past).
    Close(u16),
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum_mqtt::Message;
    use serde_json::json;

    fn json_of(f: &Frame) -> Value {
        serde_json::from_str(&f.text()).unwrap()
    }

    #[test]
    fn acks_carry_the_op_and_its_fields() {
        let f = Frame::ack(Some(json!(7)), Ack::Publish { mid: 3 });
        assert_eq!(
            json_of(&f),
            json!({"type": "ack", "op": "publish", "id": 7, "mid": 3})
        );
        let f = Frame::ack(
            None,
            Ack::Subscribe {
                filter: "a/#".into(),
                qos: QoS::AtLeastOnce,
                already: false,
            },
        );
        assert_eq!(
            json_of(&f),
            json!({"type": "ack", "op": "subscribe", "filter": "a/#", "qos": 1})
        );
        let f = Frame::ack(
            Some(json!("x")),
            Ack::Subscribe {
                filter: "a".into(),
                qos: QoS::AtMostOnce,
                already: true,
            },
        );
        assert_eq!(json_of(&f)["already"], true);
        let f = Frame::ack(
            None,
            Ack::UnsubscribeAll {
                filters: vec!["a".into()],
            },
        );
        assert_eq!(
            json_of(&f),
            json!({"type": "ack", "op": "unsubscribe_all", "filters": ["a"]})
        );
    }

    #[test]
    fn errors_messages_and_notices() {
        let e = ApiError::unprocessable("invalid_qos", "qos must be 0, 1 or 2");
        let f = Frame::error(&e, Some(Op::Subscribe), Some(json!(1)));
        assert_eq!(
            json_of(&f),
            json!({"type": "error", "status": 422, "kind": "invalid_qos", "error": "qos must be 0, 1 or 2", "op": "subscribe", "id": 1})
        );
        assert_eq!(json_of(&Frame::error(&e, None, None)).get("op"), None);
        let m = Message::new("a/b", "21.5");
        let f = Frame::Message {
            filter: "a/#",
            time_ms: 5,
            message: MessageJson::from(&m),
        };
        assert_eq!(
            json_of(&f),
            json!({"type": "message", "filter": "a/#", "time_ms": 5, "topic": "a/b", "payload": "21.5", "qos": 0, "retain": false})
        );
        assert_eq!(
            json_of(&Frame::Dropped { count: 2, total: 9 }),
            json!({"type": "dropped", "count": 2, "total": 9})
        );
    }

    #[test]
    fn messages_carry_qos_as_delivered_and_mqtt5_properties() {
        let m = Message::new("a/b", "x")
            .with_qos(QoS::AtLeastOnce)
            .with_properties(axum_mqtt::Properties {
                content_type: Some("text/plain".into()),
                response_topic: Some("r".into()),
                correlation_data: Some("c1".into()),
                user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
                message_expiry_interval: Some(60),
                payload_format_indicator: Some(1),
            });
        // Names the field: linking an axum-mqtt without it fails to compile, not this assert.
        assert!(MessageJson::from(&m).properties.is_some());
        let f = Frame::Message {
            filter: "a/#",
            time_ms: 5,
            message: MessageJson::from(&m),
        };
        assert_eq!(
            json_of(&f)["properties"],
            json!({"content_type": "text/plain", "response_topic": "r", "correlation_data": "c1",
                   "user_properties": [["k", "v"], ["k", "w"]], "message_expiry_interval": 60,
                   "payload_format_indicator": 1})
        );
        assert_eq!(json_of(&f)["qos"], 1);
    }

    #[test]
    fn op_names_round_trip() {
        for op in Op::ALL {
            assert_eq!(Op::parse(op.name()), Some(op));
            assert_eq!(serde_json::to_value(op).unwrap(), json!(op.name()));
        }
        assert_eq!(
            Op::list(),
            "publish, subscribe, unsubscribe, unsubscribe_all"
        );
        assert_eq!(Op::parse("explode"), None);
    }
}
