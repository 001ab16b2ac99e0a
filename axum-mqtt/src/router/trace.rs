//! A tower layer that opens a tracing span per message (like tower-http's `TraceLayer` per request)
//! and logs how each handler call ended and how long it took.

use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::future::BoxFuture;
use tower::{BoxError, Layer, Service};
use tracing::Instrument;

use super::Outcome;
use crate::extract::MqttRequest;

/// Wraps routes in a `mqtt_message` span with the topic and QoS; logs the outcome at DEBUG
/// (errors at WARN are already logged by the client).
///
/// ```
/// use axum_mqtt::{Router, router::TraceLayer};
/// let router: Router = Router::new()
///     .route("sensors/#", || async {})
///     .layer(TraceLayer::new());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl TraceLayer {
    /// The layer.
    pub fn new() -> Self {
        TraceLayer
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;
    fn layer(&self, inner: S) -> Trace<S> {
        Trace { inner }
    }
}

/// The service made by [`TraceLayer`].
#[derive(Debug, Clone)]
pub struct Trace<S> {
    inner: S,
}

impl<S> Service<MqttRequest> for Trace<S>
where
    S: Service<MqttRequest, Response = Outcome>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = Outcome;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Outcome, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: MqttRequest) -> Self::Future {
        let m = req.message();
        let span = tracing::info_span!(
            "mqtt_message",
            topic = m.topic(),
            qos = m.qos() as u8,
            bytes = m.payload().len()
        );
        let fut = self.inner.call(req);
        Box::pin(
            async move {
                let start = Instant::now();
                let res = fut.await.map_err(Into::into);
                let micros = start.elapsed().as_micros() as u64;
                match &res {
                    Ok(Outcome::Handled) => tracing::debug!(micros, "handled"),
                    Ok(Outcome::Rejected(r)) => {
                        tracing::debug!(micros, kind = r.kind(), "rejected")
                    }
                    Err(e) => tracing::debug!(micros, error = %e, "failed"),
                }
                res
            }
            .instrument(span),
        )
    }
}
