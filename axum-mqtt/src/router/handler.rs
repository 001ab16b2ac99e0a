//! Async functions as handlers: every argument is an extractor, the result is `()` or a `Result`.

use std::future::Future;
use std::pin::Pin;

use tower::BoxError;

use super::Outcome;
use crate::extract::{FromMessage, MqttRequest};

type Boxed = Pin<Box<dyn Future<Output = Result<Outcome, BoxError>> + Send>>;

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
///
/// A function whose arguments are not all extractors, or that is not `async`, is not a handler:
///
/// ```compile_fail,E0277
/// use axum_mqtt::Router;
/// async fn takes_a_number(n: u32) {}
/// let router: Router = Router::new().route("numbers", takes_a_number);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a message handler",
    label = "not a handler for this router",
    note = "a handler is an `async fn` (or closure returning a future) whose arguments all implement \
            `FromMessage` (Topic, Text, Json<T>, Params<T>, State<T>, ...), at most 12 of them, \
            returning `()` or `Result<(), E>`",
    note = "`State<T>` needs the router's state to be `T`: `Router<T>` with `.with_state(..)`"
)]
pub trait Handler<T, S>: Clone + Send + Sync + Sized + 'static {
    /// The future [`call`](Self::call) returns.
    type Future: Future<Output = Result<Outcome, BoxError>> + Send + 'static;

    /// Runs the handler on one message: extracts its arguments (a failed extraction is
    /// [`Outcome::Rejected`]), then awaits it (its `Err` is the service error).
    fn call(self, req: MqttRequest, state: S) -> Self::Future;
}

impl<F, Fut, R, S> Handler<(), S> for F
where
    F: FnOnce() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoHandlerResult,
{
    type Future = Boxed;

    fn call(self, _req: MqttRequest, _state: S) -> Boxed {
        Box::pin(async move {
            self()
                .await
                .into_handler_result()
                .map(|()| Outcome::Handled)
        })
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
            type Future = Boxed;

            fn call(self, req: MqttRequest, state: S) -> Boxed {
                $(
                    let $ty = match $ty::from_message(&req, &state) {
                        Ok(v) => v,
                        Err(rejection) => {
                            return Box::pin(std::future::ready(Ok(Outcome::Rejected(rejection))))
                        }
                    };
                )+
                Box::pin(async move {
                    self($($ty,)+).await.into_handler_result().map(|()| Outcome::Handled)
                })
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
