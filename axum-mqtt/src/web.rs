//! axum integration: the client as `State`, a ready `POST /publish` handler, a health handler.
