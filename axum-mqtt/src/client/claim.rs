//! The process-wide claim on a client id: two clients of one process with one id are refused.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::lock::lock;
use crate::config::MqttConfig;
use crate::error::ConfigError;

/// Client ids in use by running clients of this process, per broker: two clients with one id would
/// take each other's connection over in a loop (Flask-MQTT #64), so the second one is refused. A
/// client with a failover list claims its id on every broker of the list.
static CLIENT_IDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Released when the last handle is dropped or the connection task ends, whichever comes first.
pub(crate) struct ClientIdClaim(Vec<String>, AtomicBool);

impl ClientIdClaim {
    pub fn take(config: &MqttConfig, client_id: &str) -> Result<Self, ConfigError> {
        let keys: Vec<String> = config
            .brokers()
            .iter()
            .map(|b| format!("{b}/{client_id}"))
            .collect();
        let mut ids = lock(&CLIENT_IDS);
        if keys.iter().any(|k| ids.contains(k)) {
            return Err(config.error(
                "CLIENT_ID",
                client_id,
                "already used by another running client of this process for this broker; \
                     two clients with one id take each other's connection over",
            ));
        }
        ids.extend(keys.iter().cloned());
        Ok(ClientIdClaim(keys, AtomicBool::new(false)))
    }

    pub fn release(&self) {
        if !self.1.swap(true, Ordering::SeqCst) {
            lock(&CLIENT_IDS).retain(|k| !self.0.contains(k));
        }
    }
}

impl Drop for ClientIdClaim {
    fn drop(&mut self) {
        self.release();
    }
}
