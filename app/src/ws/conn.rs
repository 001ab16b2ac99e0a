//! The reading side of one connection: each text frame is parsed once, its `op` picked, and
//! answered now (subscribe, unsubscribe) or once the broker has it (publish).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use axum::http::StatusCode;
use axum_mqtt::web::{ApiError, PublishRequest};
use serde_json::{Map, Value};

use super::frame::{Ack, Frame, Op};
use super::outbox::{Outbox, Sub};
use crate::state::AppState;
use crate::streams::{check_filter, open_stream, parse_qos};

/// Subscriptions per connection.
pub const MAX_SUBSCRIPTIONS: usize = 64;
/// Messages a subscription's stream buffers before its forwarder takes them.
const STREAM_CAPACITY: usize = 64;

/// An answer that waits for the broker.
pub type Pending = Pin<Box<dyn Future<Output = Frame<'static>> + Send>>;

/// An `error` frame, counted.
pub fn error_frame(
    st: &AppState,
    e: &ApiError,
    op: Option<Op>,
    id: Option<Value>,
) -> Frame<'static> {
    st.metrics.ws_errors.increment(1);
    Frame::error(e, op, id)
}

/// One connection's subscriptions and what it needs to answer ops.
pub struct Conn {
    st: AppState,
    out: Outbox,
    subs: HashMap<String, Sub>,
}

impl Conn {
    pub fn new(st: AppState, out: Outbox) -> Self {
        Conn {
            st,
            out,
            subs: HashMap::new(),
        }
    }

    /// Handles one text frame; returns the answer now, or a publish to wait for.
    pub async fn handle(&mut self, text: &str) -> Result<Frame<'static>, Pending> {
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let e = ApiError::bad_request(
                    "invalid_json",
                    format!("the frame is not valid JSON: {e}"),
                );
                return Ok(error_frame(&self.st, &e, None, None));
            }
        };
        let Value::Object(mut obj) = value else {
            let e = ApiError::unprocessable(
                "invalid_body",
                r#"expected a JSON object like {"op": "subscribe", "filter": "sensors/#"}"#,
            );
            return Ok(error_frame(&self.st, &e, None, None));
        };
        let id = obj.remove("id");
        let name = match obj.remove("op") {
            Some(Value::String(name)) => name,
            None => {
                let e = ApiError::unprocessable(
                    "missing_field",
                    format!("missing `op`: one of {}", Op::list()),
                );
                return Ok(error_frame(&self.st, &e, None, id));
            }
            Some(other) => {
                let e = ApiError::unprocessable(
                    "invalid_op",
                    format!("`op` must be a string, got {other}"),
                );
                return Ok(error_frame(&self.st, &e, None, id));
            }
        };
        let Some(op) = Op::parse(&name) else {
            let e = ApiError::bad_request(
                "unknown_op",
                format!("unknown op {name:?}: expected one of {}", Op::list()),
            );
            return Ok(error_frame(&self.st, &e, None, id));
        };
        let result = match op {
            Op::Publish => return self.publish(id, obj),
            Op::Subscribe => self.subscribe(&obj).await,
            Op::Unsubscribe => self.unsubscribe(&obj),
            Op::UnsubscribeAll => Ok(self.unsubscribe_all()),
        };
        Ok(match result {
            Ok(ack) => Frame::ack(id, ack),
            Err(e) => error_frame(&self.st, &e, Some(op), id),
        })
    }

    /// Publishes through the same endpoint as `POST /publish`, so checks and errors are identical;
    /// the frame's object becomes the typed request without another parse.
    fn publish(
        &self,
        id: Option<Value>,
        mut obj: Map<String, Value>,
    ) -> Result<Frame<'static>, Pending> {
        // The Flask-MQTT Socket.IO example sends `message`.
        if let Some(m) = obj.remove("message") {
            obj.entry("msg").or_insert(m);
        }
        let st = self.st.clone();
        let req = match PublishRequest::from_object(obj) {
            Ok(req) => req,
            Err(e) => return Ok(error_frame(&st, &e, Some(Op::Publish), id)),
        };
        Err(Box::pin(async move {
            match st.publish.publish_request(&st.mqtt, req).await {
                Ok(published) => {
                    st.metrics.ws_publishes.increment(1);
                    Frame::ack(id, Ack::Publish { mid: published.mid })
                }
                Err(e) => {
                    if e.status == StatusCode::FORBIDDEN {
                        st.metrics.forbidden.increment(1);
                    }
                    error_frame(&st, &e, Some(Op::Publish), id)
                }
            }
        }))
    }

    fn filter_of(obj: &Map<String, Value>) -> Result<String, ApiError> {
        match obj.get("filter").or_else(|| obj.get("topic")) {
            Some(Value::String(f)) => Ok(f.clone()),
            None => Err(ApiError::unprocessable(
                "missing_field",
                "missing `filter` (an MQTT topic filter like sensors/#)",
            )),
            Some(other) => Err(ApiError::unprocessable(
                "invalid_filter",
                format!("`filter` must be a string, got {other}"),
            )),
        }
    }

    async fn subscribe(&mut self, obj: &Map<String, Value>) -> Result<Ack, ApiError> {
        let filter = Self::filter_of(obj)?;
        check_filter(&self.st, &filter)?;
        let qos = match obj.get("qos") {
            None | Some(Value::Null) => parse_qos(None)?,
            Some(Value::String(s)) => parse_qos(Some(s))?,
            Some(other) => parse_qos(Some(&other.to_string()))?,
        };
        if self.subs.contains_key(&filter) {
            return Ok(Ack::Subscribe {
                filter,
                qos,
                already: true,
            });
        }
        if self.subs.len() >= MAX_SUBSCRIPTIONS {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_subscriptions",
                format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection"),
            ));
        }
        let stream = open_stream(&self.st, &filter, qos, STREAM_CAPACITY).await?;
        self.subs.insert(filter.clone(), self.out.follow(stream));
        Ok(Ack::Subscribe {
            filter,
            qos,
            already: false,
        })
    }

    fn unsubscribe(&mut self, obj: &Map<String, Value>) -> Result<Ack, ApiError> {
        let filter = Self::filter_of(obj)?;
        match self.subs.remove(&filter) {
            Some(_) => Ok(Ack::Unsubscribe { filter }),
            None => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_subscribed",
                format!("this connection is not subscribed to {filter:?}"),
            )),
        }
    }

    fn unsubscribe_all(&mut self) -> Ack {
        let mut filters: Vec<String> = self.subs.drain().map(|(f, _)| f).collect();
        filters.sort();
        Ack::UnsubscribeAll { filters }
    }
}
