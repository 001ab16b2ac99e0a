//! Built without the `tls` feature: no TLS client configuration can exist, and asking for TLS is a
//! configuration error (`MqttConfig::validate` says so first, naming the key).

use std::sync::Arc;

use crate::config::MqttConfig;
use crate::error::ConfigError;

/// Uninhabited: without the `tls` feature there is never a TLS configuration.
pub(crate) enum ClientConfig {}

/// `None`, or an error when the configuration asks for TLS.
pub(crate) fn client_config(cfg: &MqttConfig) -> Result<Option<Arc<ClientConfig>>, ConfigError> {
    if cfg.tls.enabled {
        return Err(cfg.error("TLS_ENABLED", "true", crate::config::NO_TLS));
    }
    Ok(None)
}
