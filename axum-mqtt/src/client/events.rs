//! What Flask-MQTT's callbacks receive, as plain types: connection state and protocol events.

use serde::Serialize;

use crate::error::ReasonCode;
use crate::message::QoS;

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Status {
    /// Connecting for the first time.
    Connecting,
    /// Connected and acknowledged by the broker.
    Connected,
    /// Lost or refused; retrying with backoff.
    Reconnecting,
    /// Shut down; no more connections will be made.
    Stopped,
}

/// A snapshot of the connection, as reported by [`Mqtt::state`](crate::Mqtt::state) and `/healthz`.
///
/// ```
/// # async fn demo(mqtt: axum_mqtt::Mqtt) {
/// let state = mqtt.state();
/// if state.status != axum_mqtt::Status::Connected {
///     eprintln!("broker unreachable: {:?}", state.last_error);
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct ConnectionState {
    /// Current status.
    pub status: Status,
    /// Why the last connection attempt failed or the last connection dropped.
    pub last_error: Option<String>,
    /// Successful connections so far (1 after the first connect).
    pub connects: u64,
    /// Failed attempts since the last successful connect.
    pub attempts: u32,
    /// The client id in use (a `CLIENT_ID` template filled in).
    pub client_id: String,
    /// The broker, as `host:port`: the one connected to; while reconnecting, the one the last
    /// error came from. With a failover list ([`MqttConfig::failover`](crate::MqttConfig::failover))
    /// this says which node the client is on.
    ///
    /// ```
    /// # async fn demo(mqtt: axum_mqtt::Mqtt) {
    /// tracing::info!(broker = %mqtt.state().broker, "MQTT broker in use");
    /// # }
    /// ```
    pub broker: String,
}

/// A CONNACK: the broker answered a connection attempt (Flask-MQTT's `on_connect(rc)`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Connack {
    /// 0 on success, else the refusal code (MQTT 3.1.1: 1-5; MQTT 5: reason code ≥ 0x80).
    pub code: u8,
    /// True when the broker kept the session (persistent sessions).
    pub session_present: bool,
    /// True for every connect after the first one.
    pub reconnect: bool,
}

impl Connack {
    /// True when the broker accepted the connection.
    pub fn is_success(&self) -> bool {
        self.code == 0
    }
}

/// The connection was lost or closed (Flask-MQTT's `on_disconnect`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Disconnected {
    /// Why; `None` for a shutdown we asked for.
    pub reason: Option<String>,
}

/// The broker acknowledged one of our publishes (Flask-MQTT's `on_publish(mid)`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// Packet id (`mid`); 0 for QoS 0, which is "acknowledged" once written.
    pub mid: u16,
    /// QoS of the publish.
    pub qos: QoS,
}

/// The broker answered a SUBSCRIBE (Flask-MQTT's `on_subscribe(mid, granted_qos)`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Subscribed {
    /// Packet id.
    pub mid: u16,
    /// Each filter with the granted QoS or the broker's refusal.
    pub results: Vec<(String, Result<QoS, ReasonCode>)>,
}

/// The broker acknowledged an UNSUBSCRIBE (Flask-MQTT's `on_unsubscribe(mid)`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unsubscribed {
    /// Packet id.
    pub mid: u16,
    /// The filters removed.
    pub filters: Vec<String>,
}

/// One protocol event, delivered to the callbacks registered on [`MqttBuilder`](crate::MqttBuilder).
#[derive(Debug, Clone)]
pub(crate) enum Event {
    Connect(Connack),
    Disconnect(Disconnected),
    Publish(Published),
    Subscribe(Subscribed),
    Unsubscribe(Unsubscribed),
}
