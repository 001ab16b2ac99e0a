//! [`PublishEndpoint`]: the rules of `POST /publish` (payload size, topic, allow-list) applied to a
//! [`PublishRequest`], and the publish that waits for the broker's acknowledgement.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;

use super::{ApiError, PublishRequest};
use crate::topic::TopicPattern;
use crate::{Error, Mqtt, Published};

/// The answer to an acknowledged publish: `{"code": 0, "mid": N}`.
///
/// ```
/// let ok = axum_mqtt::web::PublishResponse::new(7);
/// assert_eq!(serde_json::to_value(&ok).unwrap(), serde_json::json!({"code": 0, "mid": 7}));
/// assert_eq!(ok.mid(), 7);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublishResponse {
    code: u8,
    mid: u16,
}

impl PublishResponse {
    /// The answer for packet id `mid` (0 for QoS 0).
    ///
    /// ```
    /// assert_eq!(axum_mqtt::web::PublishResponse::new(0).mid(), 0);
    /// ```
    pub fn new(mid: u16) -> Self {
        PublishResponse { code: 0, mid }
    }

    /// The MQTT packet id of the acknowledged publish (0 for QoS 0).
    ///
    /// ```
    /// assert_eq!(axum_mqtt::web::PublishResponse::new(3).mid(), 3);
    /// ```
    pub fn mid(&self) -> u16 {
        self.mid
    }
}

/// The answer to a publish the outbox stored but the broker has not acknowledged yet:
/// `202 {"code": 0, "id": "7", "status": "queued"}`.
///
/// ```
/// let q = axum_mqtt::web::QueuedResponse::new("7".parse().unwrap());
/// assert_eq!(serde_json::to_value(&q).unwrap(), serde_json::json!({"code": 0, "id": "7", "status": "queued"}));
/// ```
#[cfg(feature = "outbox")]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueuedResponse {
    /// Always 0: the message is safe.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 0))]
    code: u8,
    /// The outbox id; ask `GET /publish/{id}` about it.
    #[cfg_attr(feature = "openapi", schema(example = "42"))]
    id: String,
    /// Always `queued`.
    #[cfg_attr(feature = "openapi", schema(example = "queued"))]
    status: &'static str,
}

#[cfg(feature = "outbox")]
impl QueuedResponse {
    /// The answer for outbox id `id`.
    ///
    /// ```
    /// let q = axum_mqtt::web::QueuedResponse::new("3".parse().unwrap());
    /// assert_eq!(q.id(), "3");
    /// ```
    pub fn new(id: crate::OutboxId) -> Self {
        QueuedResponse {
            code: 0,
            id: id.to_string(),
            status: "queued",
        }
    }

    /// The outbox id, as `GET /publish/{id}` takes it.
    ///
    /// ```
    /// assert_eq!(axum_mqtt::web::QueuedResponse::new("9".parse().unwrap()).id(), "9");
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The answer of `GET /publish/{id}`: `{"code": 0, "id": "7", "status": "queued" | "acked" |
/// "failed"}`, with `mid` when acked and `reason` when failed.
///
/// ```
/// use axum_mqtt::{web::OutboxStatusResponse, OutboxStatus};
/// let r = OutboxStatusResponse::new("7".parse().unwrap(), OutboxStatus::Acked { mid: 3 });
/// assert_eq!(
///     serde_json::to_value(&r).unwrap(),
///     serde_json::json!({"code": 0, "id": "7", "status": "acked", "mid": 3}),
/// );
/// ```
#[cfg(feature = "outbox")]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutboxStatusResponse {
    /// Always 0.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 0))]
    code: u8,
    /// The outbox id asked about.
    id: String,
    /// `queued`, `acked` or `failed`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(queued|acked|failed)$"))]
    status: &'static str,
    /// The packet id the broker acknowledged (`acked` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    mid: Option<u16>,
    /// Why the broker refused it (`failed` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[cfg(feature = "outbox")]
impl OutboxStatusResponse {
    /// The answer for `id` in state `status`.
    ///
    /// ```
    /// use axum_mqtt::{web::OutboxStatusResponse, OutboxStatus};
    /// let r = OutboxStatusResponse::new("1".parse().unwrap(), OutboxStatus::Queued);
    /// assert_eq!(r.status(), "queued");
    /// ```
    pub fn new(id: crate::OutboxId, status: crate::OutboxStatus) -> Self {
        let (name, mid, reason) = match status {
            crate::OutboxStatus::Acked { mid } => ("acked", Some(mid), None),
            crate::OutboxStatus::Failed { reason } => ("failed", None, Some(reason)),
            crate::OutboxStatus::Queued => ("queued", None, None),
        };
        OutboxStatusResponse {
            code: 0,
            id: id.to_string(),
            status: name,
            mid,
            reason,
        }
    }

    /// `queued`, `acked` or `failed`.
    ///
    /// ```
    /// use axum_mqtt::{web::OutboxStatusResponse, OutboxStatus};
    /// let r = OutboxStatusResponse::new("1".parse().unwrap(), OutboxStatus::Acked { mid: 1 });
    /// assert_eq!(r.status(), "acked");
    /// ```
    pub fn status(&self) -> &str {
        self.status
    }
}

/// `POST /publish` with settings: an allow-list of topics, the ack timeout, the largest payload.
///
/// ```
/// use axum_mqtt::web::PublishEndpoint;
/// let endpoint = PublishEndpoint::new().allow(["sensors/#", "lights/+"])?.timeout(std::time::Duration::from_secs(3));
/// assert!(endpoint.allows("sensors/a/b"));
/// assert!(!endpoint.allows("admin/reboot"));
/// # Ok::<(), axum_mqtt::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PublishEndpoint {
    allow: Option<Arc<Vec<TopicPattern>>>,
    timeout: Duration,
    max_payload: usize,
}

impl Default for PublishEndpoint {
    fn default() -> Self {
        PublishEndpoint {
            allow: None,
            timeout: Duration::from_secs(10),
            max_payload: 256 * 1024,
        }
    }
}

impl PublishEndpoint {
    /// Any topic, 10 s ack timeout, 256 KiB payloads.
    ///
    /// ```
    /// let endpoint = axum_mqtt::web::PublishEndpoint::new();
    /// assert!(endpoint.allows("any/topic") && endpoint.allow_list().is_none());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Only topics matching one of these MQTT filters may be published to (403 otherwise).
    ///
    /// ```
    /// let endpoint = axum_mqtt::web::PublishEndpoint::new().allow(["lights/+/set"])?;
    /// assert!(endpoint.allows("lights/kitchen/set"));
    /// assert!(axum_mqtt::web::PublishEndpoint::new().allow(["a/#/b"]).is_err());
    /// # Ok::<(), axum_mqtt::Error>(())
    /// ```
    pub fn allow<I, T>(mut self, filters: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let patterns = filters
            .into_iter()
            .map(|f| {
                crate::topic::validate_filter(f.as_ref())?;
                TopicPattern::parse(f.as_ref())
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.allow = Some(Arc::new(patterns));
        Ok(self)
    }

    /// How long to wait for the broker's acknowledgement (504 after that).
    ///
    /// ```
    /// let endpoint = axum_mqtt::web::PublishEndpoint::new().timeout(std::time::Duration::from_secs(2));
    /// # let _ = endpoint;
    /// ```
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Largest payload accepted (413 above).
    ///
    /// ```
    /// use axum_mqtt::web::{PublishEndpoint, PublishRequest};
    /// let endpoint = PublishEndpoint::new().max_payload(4);
    /// let e = endpoint.check(&PublishRequest::new("a", "hello")).unwrap_err();
    /// assert_eq!(e.kind, "payload_too_large");
    /// ```
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// True when the allow-list (if any) permits `topic`.
    ///
    /// ```
    /// let endpoint = axum_mqtt::web::PublishEndpoint::new().allow(["a/#"])?;
    /// assert!(endpoint.allows("a/b") && !endpoint.allows("b"));
    /// # Ok::<(), axum_mqtt::Error>(())
    /// ```
    pub fn allows(&self, topic: &str) -> bool {
        self.allow
            .as_ref()
            .is_none_or(|a| a.iter().any(|p| p.matches(topic).is_some()))
    }

    /// The allow-list's filters, as given to [`allow`](Self::allow); `None` when any topic may be
    /// published to.
    ///
    /// ```
    /// let endpoint = axum_mqtt::web::PublishEndpoint::new().allow(["a/#", "b/+"])?;
    /// assert_eq!(endpoint.allow_list(), Some(vec!["a/#", "b/+"]));
    /// # Ok::<(), axum_mqtt::Error>(())
    /// ```
    pub fn allow_list(&self) -> Option<Vec<&str>> {
        self.allow
            .as_ref()
            .map(|a| a.iter().map(TopicPattern::as_str).collect())
    }

    /// An axum router with `POST /publish` bound to this endpoint and client.
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) {
    /// let app: axum::Router = axum_mqtt::web::PublishEndpoint::new().router(mqtt);
    /// # }
    /// ```
    pub fn router<S: Clone + Send + Sync + 'static>(self, mqtt: Mqtt) -> axum::Router<S> {
        axum::Router::new().route(
            "/publish",
            axum::routing::post(move |body: Bytes| {
                let ep = self.clone();
                let mqtt = mqtt.clone();
                async move { ep.handle(&mqtt, &body).await }
            }),
        )
    }

    /// Handles one request body: reads, checks, publishes, waits for the ack; answers
    /// `{"code": 0, "mid": N}` or the [`ApiError`].
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) {
    /// let endpoint = axum_mqtt::web::PublishEndpoint::new();
    /// let response = endpoint.handle(&mqtt, br#"{"topic": "a/b", "msg": "hi"}"#).await;
    /// assert!(response.status().is_success());
    /// # }
    /// ```
    pub async fn handle(&self, mqtt: &Mqtt, body: &[u8]) -> Response {
        let req = match PublishRequest::from_json(body) {
            Ok(req) => req,
            Err(e) => return e.into_response(),
        };
        #[cfg(feature = "outbox")]
        if req.qos != crate::QoS::AtMostOnce && mqtt.outbox().is_some() {
            return match self.publish_durable(mqtt, req).await {
                Ok(crate::Delivery::Acked(ack)) => {
                    Json(PublishResponse::new(ack.mid)).into_response()
                }
                Ok(crate::Delivery::Queued { id }) => {
                    (StatusCode::ACCEPTED, Json(QueuedResponse::new(id))).into_response()
                }
                Err(e) => e.into_response(),
            };
        }
        match self.publish_request(mqtt, req).await {
            Ok(ack) => Json(PublishResponse::new(ack.mid)).into_response(),
            Err(e) => e.into_response(),
        }
    }

    /// Like [`publish_request`](Self::publish_request), through the client's outbox
    /// ([`Publish::durable`](crate::Publish::durable)): stored before anything is sent, answered
    /// [`Delivery::Acked`](crate::Delivery) within the endpoint's timeout, else `Queued`. A full
    /// outbox is 503 `outbox_full`; no outbox is 404 `no_outbox`; QoS 0 is 422 `durable_needs_qos`.
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) -> Result<(), axum_mqtt::web::ApiError> {
    /// use axum_mqtt::{web::{PublishEndpoint, PublishRequest}, Delivery, QoS};
    /// let req = PublishRequest::new("orders/1", "paid").with_qos(QoS::AtLeastOnce);
    /// match PublishEndpoint::new().publish_durable(&mqtt, req).await? {
    ///     Delivery::Acked(ack) => println!("acknowledged as {}", ack.mid),
    ///     Delivery::Queued { id } => println!("stored as {id}"),
    /// }
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "outbox")]
    pub async fn publish_durable(
        &self,
        mqtt: &Mqtt,
        req: PublishRequest,
    ) -> Result<crate::Delivery, ApiError> {
        self.check(&req)?;
        Ok(self.prepare(mqtt, req).durable().await?)
    }

    /// `GET /publish/{id}`: what became of a message the outbox answered `202` for. 200
    /// `{"code": 0, "id": "7", "status": "queued"}` (or `"acked"` with its `mid`, or `"failed"` with
    /// the broker's `reason`); 404 `unknown_id` for an id this outbox does not know (never stored,
    /// or finished and forgotten: the newest 10 000 finished ids are kept); 404 `no_outbox`.
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) {
    /// let response = axum_mqtt::web::PublishEndpoint::new().status(&mqtt, "7").await;
    /// println!("{}", response.status());
    /// # }
    /// ```
    #[cfg(feature = "outbox")]
    pub async fn status(&self, mqtt: &Mqtt, id: &str) -> Response {
        let Some(outbox) = mqtt.outbox() else {
            return ApiError::from(Error::NoOutbox).into_response();
        };
        let Ok(parsed) = id.parse::<crate::OutboxId>() else {
            return ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_id",
                format!("{id:?} is not an outbox id (ids are whole numbers)"),
            )
            .into_response();
        };
        match outbox.status(parsed).await {
            Ok(Some(status)) => Json(OutboxStatusResponse::new(parsed, status)).into_response(),
            Ok(None) => ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_id",
                format!("the outbox has no message {id} (never stored here, or finished long ago)"),
            )
            .into_response(),
            Err(e) => ApiError::from(e).into_response(),
        }
    }

    /// Reads a JSON body with [`PublishRequest::from_json`] and publishes it with
    /// [`publish_request`](Self::publish_request).
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) {
    /// let endpoint = axum_mqtt::web::PublishEndpoint::new();
    /// match endpoint.publish(&mqtt, br#"{"topic": "a/b", "msg": "hi", "qos": 1}"#).await {
    ///     Ok(ack) => println!("acknowledged as {}", ack.mid),
    ///     Err(e) => println!("{}: {}", e.kind, e.message),
    /// }
    /// # }
    /// ```
    pub async fn publish(&self, mqtt: &Mqtt, body: &[u8]) -> Result<Published, ApiError> {
        self.publish_request(mqtt, PublishRequest::from_json(body)?)
            .await
    }

    /// The typed entry point, for every transport (HTTP, a WebSocket op, a queue): applies
    /// [`check`](Self::check), publishes, and waits for the broker's acknowledgement (QoS 1:
    /// PUBACK, QoS 2: PUBCOMP). QoS 0 has no acknowledgement: it is answered as soon as a connected
    /// client has queued it (`MAX_PENDING` bounds that queue); while the client is not connected, or
    /// the queue is full, it waits for the write, up to the timeout (504 `timeout`).
    ///
    /// ```no_run
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) -> Result<(), axum_mqtt::web::ApiError> {
    /// use axum_mqtt::{web::{PublishEndpoint, PublishRequest}, QoS};
    /// let endpoint = PublishEndpoint::new().allow(["sensors/#"]).expect("a valid filter");
    /// let req = PublishRequest::new("sensors/kitchen/t", "21.5").with_qos(QoS::AtLeastOnce);
    /// let ack = endpoint.publish_request(&mqtt, req).await?;
    /// println!("acknowledged as {}", ack.mid);
    /// # Ok(()) }
    /// ```
    pub async fn publish_request(
        &self,
        mqtt: &Mqtt,
        req: PublishRequest,
    ) -> Result<Published, ApiError> {
        self.check(&req)?;
        // `send`, not `.await` (`IntoFuture`): the future lives in the handler's, not in a box.
        Ok(self.prepare(mqtt, req).when_queued().send().await?)
    }

    fn prepare<'a>(&self, mqtt: &'a Mqtt, req: PublishRequest) -> crate::Publish<'a> {
        let publish = mqtt
            .publish(req.topic, req.payload)
            .qos(req.qos)
            .retain(req.retain)
            .timeout(self.timeout);
        if req.user_properties.is_empty() {
            return publish;
        }
        // On MQTT 3.1.1 this fails as 422 `needs_mqtt5`.
        publish.properties(crate::Properties {
            user_properties: req.user_properties,
            ..Default::default()
        })
    }

    /// The endpoint's rules for a request: the payload size, user properties included (413
    /// `payload_too_large`), a valid topic without wildcards (422 `invalid_topic`), user
    /// properties MQTT can carry (422 `invalid_user_property`: no NUL, at most 65535 bytes each),
    /// the allow-list (403 `topic_not_allowed`).
    ///
    /// ```
    /// use axum_mqtt::web::{PublishEndpoint, PublishRequest};
    /// let endpoint = PublishEndpoint::new().allow(["a/#"])?;
    /// assert!(endpoint.check(&PublishRequest::new("a/b", "x")).is_ok());
    /// assert_eq!(endpoint.check(&PublishRequest::new("a/+", "x")).unwrap_err().kind, "invalid_topic");
    /// assert_eq!(endpoint.check(&PublishRequest::new("b", "x")).unwrap_err().status.as_u16(), 403);
    /// # Ok::<(), axum_mqtt::Error>(())
    /// ```
    pub fn check(&self, req: &PublishRequest) -> Result<(), ApiError> {
        let props: usize = req
            .user_properties
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum();
        if req.payload.len() + props > self.max_payload {
            let what = if props > 0 {
                "payload and user properties"
            } else {
                "payload"
            };
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "{what} of {} bytes exceeds {} bytes",
                    req.payload.len() + props,
                    self.max_payload
                ),
            ));
        }
        crate::topic::validate_topic(&req.topic)?;
        for s in req.user_properties.iter().flat_map(|(k, v)| [k, v]) {
            let why = if s.contains('\0') {
                "must not contain NUL"
            } else if s.len() > 65535 {
                "must be at most 65535 bytes"
            } else {
                continue;
            };
            return Err(ApiError::unprocessable(
                "invalid_user_property",
                format!("a user property key or value {why}"),
            ));
        }
        if !self.allows(&req.topic) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "topic_not_allowed",
                format!("publishing to {:?} is not allowed here", req.topic),
            ));
        }
        Ok(())
    }
}

/// `POST /publish` with the default [`PublishEndpoint`], for `State<Mqtt>` routers.
///
/// ```no_run
/// # async fn demo(mqtt: axum_mqtt::Mqtt) {
/// use axum::routing::post;
/// let app = axum::Router::new().route("/publish", post(axum_mqtt::web::publish)).with_state(mqtt);
/// # let _: axum::Router = app;
/// # }
/// ```
pub async fn publish(State(mqtt): State<Mqtt>, body: Bytes) -> Response {
    PublishEndpoint::default().handle(&mqtt, &body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_checks_size_then_topic_then_allow_list() {
        let ep = PublishEndpoint::new()
            .max_payload(3)
            .allow(["a/#"])
            .unwrap();
        let k = |r: PublishRequest| ep.check(&r).map_err(|e| e.kind);
        assert_eq!(
            k(PublishRequest::new("b/+", "long")),
            Err("payload_too_large")
        );
        assert_eq!(k(PublishRequest::new("b/+", "ok")), Err("invalid_topic"));
        assert_eq!(k(PublishRequest::new("b", "ok")), Err("topic_not_allowed"));
        assert_eq!(k(PublishRequest::new("a/b", "ok")), Ok(()));
        // User properties count toward the size limit, and must be MQTT strings.
        let props = |key, v| PublishRequest::new("a/b", "").with_user_property(key, v);
        assert_eq!(k(props("k", "v")), Ok(()));
        assert_eq!(k(props("k", "long")), Err("payload_too_large"));
        assert_eq!(k(props("\0", "")), Err("invalid_user_property"));
        assert_eq!(k(props("", "\0")), Err("invalid_user_property"));
        let big = PublishEndpoint::new().max_payload(1 << 20);
        let long = PublishRequest::new("a", "").with_user_property("k", "x".repeat(65536));
        assert_eq!(big.check(&long).unwrap_err().kind, "invalid_user_property");
    }
}
