//! `flask_mqtt._core`: the part of the `flask_mqtt` package that is Rust. It runs axum-mqtt's
//! client (network, protocol, acks, reconnects, restored subscriptions) and hands its events to
//! the thin Python layer (`flask_mqtt/__init__.py`), which calls the Flask app's callbacks.
//!
//! The boundary, and why it looks like this:
//! - Rust never calls into Python. Events wait in [`inbox::Inbox`] queues; a Python thread (or
//!   greenlet) waits on the inbox's file descriptor with `select`, so under eventlet or gevent the
//!   wait is cooperative, and then takes a batch with the GIL held once.
//! - Each process has its own tokio runtime, made on first use ([`runtime`]): one inherited
//!   through `fork` (gunicorn `--preload`) has no threads and is never touched again.
#![deny(missing_docs)]

use pyo3::prelude::*;

mod client;
mod config;
mod inbox;
mod message;
mod runtime;

#[cfg(feature = "broker")]
mod broker;

/// The extension module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The library logs through `tracing`; `RUST_LOG=axum_mqtt=debug` shows it on stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    m.add_class::<config::Config>()?;
    m.add_class::<client::Client>()?;
    m.add_class::<message::MqttMessage>()?;
    m.add_class::<message::Properties>()?;
    #[cfg(feature = "broker")]
    m.add_class::<broker::EmbeddedBroker>()?;
    m.add_function(wrap_pyfunction!(config::config_keys, m)?)?;
    m.add_function(wrap_pyfunction!(message::topic_matches, m)?)?;
    m.add_function(wrap_pyfunction!(message::check_filter, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
