//! Caps on long-lived clients (`--max-ws-clients`, `--max-sse-clients`): a client takes a slot
//! before it is served and gives it back however it ends; without a free slot it gets a 503.

use std::sync::Arc;

use axum::http::StatusCode;
use axum_mqtt::web::ApiError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::{Client, ClientGuard, Metrics};

/// The slots of one kind of client.
#[derive(Debug, Clone)]
pub struct Slots {
    free: Arc<Semaphore>,
    max: usize,
    kind: Client,
}

/// A client's slot; also counts it in `/metrics` while held.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    _counted: ClientGuard,
}

impl Slots {
    pub fn new(kind: Client, max: usize) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Slots {
            free: Arc::new(Semaphore::new(max)),
            max,
            kind,
        }
    }

    /// A slot, or 503 `too_many_clients` naming the flag that moves the cap.
    pub fn take(&self, metrics: &Arc<Metrics>) -> Result<Slot, ApiError> {
        match self.free.clone().try_acquire_owned() {
            Ok(permit) => Ok(Slot {
                _permit: permit,
                _counted: ClientGuard::new(metrics.clone(), self.kind),
            }),
            Err(_) => {
                let (what, flag) = match self.kind {
                    Client::WebSocket => ("WebSocket", "--max-ws-clients"),
                    Client::Sse => ("Server-Sent Events", "--max-sse-clients"),
                };
                tracing::warn!(max = self.max, "refused a {what} client: {flag} reached");
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too_many_clients",
                    format!(
                        "at most {} {what} clients at once ({flag}); try again when one has closed",
                        self.max
                    ),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_come_back() {
        let m = Arc::new(Metrics::local());
        let s = Slots::new(Client::WebSocket, 2);
        let a = s.take(&m).unwrap();
        let _b = s.take(&m).unwrap();
        let e = s.take(&m).err().unwrap();
        assert_eq!((e.status.as_u16(), e.kind), (503, "too_many_clients"));
        assert!(e.message.contains("--max-ws-clients"), "{}", e.message);
        assert_eq!(m.sample("app_ws_clients"), Some(2.0));
        drop(a);
        assert_eq!(m.sample("app_ws_clients"), Some(1.0));
        assert!(s.take(&m).is_ok());
    }
}
