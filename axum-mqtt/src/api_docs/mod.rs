//! The API documents, generated from the code they describe: the router's
//! [AsyncAPI](https://www.asyncapi.com/) document (`asyncapi.rs`, cargo feature `asyncapi`) and
//! the OpenAPI schemas of the HTTP endpoints in [`web`](crate::web) (`openapi.rs`, cargo feature
//! `openapi`). They sit on top: they read the router and the web types, nothing below imports them.

#[cfg(feature = "asyncapi")]
pub mod asyncapi;
#[cfg(feature = "openapi")]
mod openapi;
