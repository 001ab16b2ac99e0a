//! Async functions as handlers: every argument is an extractor, the result is `()` or a `Result`.

use std::future::Future;
use std::pin::Pin;

use tower::BoxError;

use super::MqttRequest;
use crate::extract::FromMessage;

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// What a handler may return: `()` or `Result<(), E>`; an `Err` is logged and counted (and, with
/// ack-after-handling routes, leaves the message unacknowledged).
pub trait IntoHandlerResult {
    /// Converts to the router's result.
    fn into_handler_result(self) -> Result<(), BoxError>;
}

impl IntoHandlerResult for () {
    fn into_handler_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError>> IntoHandlerResult for Result<(), E> {
    fn into_handler_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}

/// An async function usable as a message handler. Implemented for `async fn`s and closures taking
/// up to 12 [extractors](crate::extract); you do not implement it yourself.
///
/// ```
/// use axum_mqtt::{Router, extract::{Topic, Text}};
///
/// async fn log(Topic(t): Topic, Text(body): Text) -> Result<(), std::io::Error> {
///     println!("{t}: {body}");
///     Ok(())
/// }
/// let router: Router = Router::new().route("logs/#", log);
/// ```
pub trait Handler<T, S>: Clone + Send + Sync + Sized + 'static {
    /// Runs the handler on one message.
    fn call(self, req: MqttRequest, state: S) -> HandlerFuture;
}

impl<F, Fut, R, S> Handler<(), S> for F
where
    F: FnOnce() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoHandlerResult,
{
    fn call(self, _req: MqttRequest, _state: S) -> HandlerFuture {
        Box::pin(async move { self().await.into_handler_result() })
    }
}

macro_rules! impl_handler {
    ($($ty:ident),+) => {
        #[allow(non_snake_case)]
        impl<F, Fut, R, S, $($ty,)+> Handler<($($ty,)+), S> for F
        where
            F: FnOnce($($ty,)+) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: IntoHandlerResult,
            S: Send + Sync + 'static,
            $($ty: FromMessage<S> + Send + 'static,)+
        {
            fn call(self, req: MqttRequest, state: S) -> HandlerFuture {
                $(
                    let $ty = match $ty::from_message(&req, &state) {
                        Ok(v) => v,
                        Err(rejection) => return Box::pin(async move { Err(rejection.into()) }),
                    };
                )+
                Box::pin(async move { self($($ty,)+).await.into_handler_result() })
            }
        }
    };
}

impl_handler!(T1);
impl_handler!(T1, T2);
impl_handler!(T1, T2, T3);
impl_handler!(T1, T2, T3, T4);
impl_handler!(T1, T2, T3, T4, T5);
impl_handler!(T1, T2, T3, T4, T5, T6);
impl_handler!(T1, T2, T3, T4, T5, T6, T7);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12);
