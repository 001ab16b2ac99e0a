use super::from_message::FromMessage;
use super::rejection::Rejection;
use super::request::MqttRequest;

/// Shared application state, given to the router with [`Router::with_state`](crate::Router::with_state).
///
/// As in axum, `State<T>` works for any `T` that can be cloned out of the router's state
/// (`FromRef`), so one app state can hold a database pool, the MQTT handle and more.
///
/// ```
/// use axum_mqtt::{extract::State, Router};
/// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
///
/// async fn count(State(n): State<Arc<AtomicU64>>) {
///     n.fetch_add(1, Ordering::Relaxed);
/// }
/// let router: Router = Router::new().route("metrics/#", count).with_state(Arc::new(AtomicU64::new(0)));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct State<S>(pub S);

impl<OuterState, InnerState> FromMessage<OuterState> for State<InnerState>
where
    InnerState: axum::extract::FromRef<OuterState>,
{
    fn from_message(_: &MqttRequest, state: &OuterState) -> Result<Self, Rejection> {
        Ok(State(InnerState::from_ref(state)))
    }
}
