//! What a router records about its routes for its API document ([`crate::asyncapi`], cargo
//! feature `asyncapi`): the payload of each route and the route as the document sees it.

use schemars::generate::SchemaGenerator;
use schemars::{JsonSchema, Schema};

use crate::extract::Json;
use crate::message::QoS;
use crate::topic::TopicPattern;

/// How a route's payload is described: `None` is bytes.
#[derive(Clone, Copy)]
pub(crate) struct PayloadDoc(Option<fn(&mut SchemaGenerator) -> Schema>);

impl PayloadDoc {
    /// Bytes.
    pub(crate) const BYTES: PayloadDoc = PayloadDoc(None);

    /// A `Json<T>` payload.
    pub(crate) fn json<T: JsonSchema>() -> Self {
        PayloadDoc(Some(schema_of::<T>))
    }

    /// The payload's JSON Schema, its named types added to `generator`; `None` for bytes.
    pub(crate) fn schema(&self, generator: &mut SchemaGenerator) -> Option<Schema> {
        self.0.map(|schema| schema(generator))
    }
}

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// A handler's argument list (the `T` of `router::Handler<T, S>`) that contains
/// exactly one [`Json<P>`] argument: how [`Router::route_json`](crate::Router::route_json) learns
/// the payload type `P` from the handler itself. `I` is the argument's position ([`At`]); both are
/// inferred, you never name this trait.
///
/// ```
/// use axum_mqtt::{asyncapi::JsonArgs, extract::{Json, Topic}};
/// fn payload_of<X: JsonArgs<P, I>, P, I>() {}
/// payload_of::<(Topic, Json<u32>), u32, _>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`route_json` needs a handler with exactly one `Json<T>` argument",
    label = "no single `Json<T>` argument in this handler",
    note = "add the route with `route` or `route_with` instead: its payload is then described as bytes"
)]
pub trait JsonArgs<P, I> {}

/// The position of the [`Json<P>`] argument in a handler's argument list, for [`JsonArgs`].
///
/// ```
/// use axum_mqtt::{asyncapi::{At, JsonArgs}, extract::{Json, Topic}};
/// fn at<X: JsonArgs<P, At<N>>, P, const N: usize>() -> usize { N }
/// assert_eq!(at::<(Topic, Json<u32>), u32, _>(), 1);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct At<const N: usize>;

macro_rules! json_args {
    (@walk [$($before:ident)*] [] [$($n:tt)*]) => {};
    (@walk [$($before:ident)*] [$cur:ident $($after:ident)*] [$n:tt $($ns:tt)*]) => {
        impl<P, $($before,)* $($after,)*> JsonArgs<P, At<$n>> for ($($before,)* Json<P>, $($after,)*) {}
        json_args!(@walk [$($before)* $cur] [$($after)*] [$($ns)*]);
    };
    ($($ty:ident)+) => {
        json_args!(@walk [] [$($ty)+] [0 1 2 3 4 5 6 7 8 9 10 11]);
    };
}

json_args!(A1);
json_args!(A1 A2);
json_args!(A1 A2 A3);
json_args!(A1 A2 A3 A4);
json_args!(A1 A2 A3 A4 A5);
json_args!(A1 A2 A3 A4 A5 A6);
json_args!(A1 A2 A3 A4 A5 A6 A7);
json_args!(A1 A2 A3 A4 A5 A6 A7 A8);
json_args!(A1 A2 A3 A4 A5 A6 A7 A8 A9);
json_args!(A1 A2 A3 A4 A5 A6 A7 A8 A9 A10);
json_args!(A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11);
json_args!(A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11 A12);

/// One route as the document sees it.
pub(crate) struct RouteDoc<'a> {
    pub pattern: &'a TopicPattern,
    pub qos: QoS,
    pub payload: PayloadDoc,
    /// The filter as subscribed (shared group applied).
    pub subscription: String,
}
