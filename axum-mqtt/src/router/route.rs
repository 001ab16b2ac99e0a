//! [`Route`]: one route's handler as a type-erased tower service, and the [`Outcome`] it reports.

use std::fmt;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Service, ServiceExt};

use crate::extract::{MqttRequest, Rejection};

/// What a route did with a message: the response type of every route's tower service.
///
/// A rejection travels as a response, not as an error, so layers pass it through untouched and
/// the client tells it from a handler's own `Err` without downcasting.
///
/// ```
/// use axum_mqtt::router::Outcome;
/// use axum_mqtt::extract::Rejection;
/// assert!(Outcome::Handled.is_handled());
/// assert!(!Outcome::Rejected(Rejection::NoClient).is_handled());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The handler ran and succeeded.
    Handled,
    /// An extractor refused the message; the handler did not run.
    Rejected(Rejection),
}

impl Outcome {
    /// True when the handler ran and succeeded.
    pub fn is_handled(&self) -> bool {
        matches!(self, Outcome::Handled)
    }
}

/// A route's handler (after layers) as a cloneable tower service: what [`Router::layer`]
/// wraps.
///
/// [`Router::layer`]: crate::Router::layer
///
/// ```
/// use axum_mqtt::{Message, extract::MqttRequest, router::{Outcome, Route}};
/// use tower::{Service, ServiceExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut route = Route::new(tower::service_fn(|_req: MqttRequest| async {
///     Ok::<_, std::convert::Infallible>(Outcome::Handled)
/// }));
/// let out = route.ready().await?.call(MqttRequest::new(Message::new("a", ""))).await?;
/// assert_eq!(out, Outcome::Handled);
/// # Ok::<(), tower::BoxError>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Route(BoxCloneSyncService<MqttRequest, Outcome, BoxError>);

impl Route {
    /// Erases a service's type.
    pub fn new<Svc>(svc: Svc) -> Self
    where
        Svc: Service<MqttRequest, Response = Outcome> + Clone + Send + Sync + 'static,
        Svc::Error: Into<BoxError>,
        Svc::Future: Send + 'static,
    {
        Route(BoxCloneSyncService::new(svc.map_err(Into::into)))
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route").finish_non_exhaustive()
    }
}

impl Service<MqttRequest> for Route {
    type Response = Outcome;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Outcome, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: MqttRequest) -> Self::Future {
        self.0.call(req)
    }
}
