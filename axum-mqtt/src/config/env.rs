//! `MQTT_*` keys from the process environment.

use super::{ConfigError, MqttConfig};

impl MqttConfig {
    /// Reads `MQTT_*` from the process environment.
    ///
    /// ```no_run
    /// let cfg = axum_mqtt::MqttConfig::from_env()?;
    /// # Ok::<(), axum_mqtt::ConfigError>(())
    /// ```
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_prefix("MQTT")
    }

    /// Reads `<PREFIX>_*` from the process environment (e.g. `MQTT2` for a second broker).
    ///
    /// ```no_run
    /// let second = axum_mqtt::MqttConfig::from_env_prefix("MQTT2")?;
    /// # Ok::<(), axum_mqtt::ConfigError>(())
    /// ```
    pub fn from_env_prefix(prefix: &str) -> Result<Self, ConfigError> {
        Self::from_pairs(prefix, std::env::vars())
    }
}
