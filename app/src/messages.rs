//! Recent messages for `GET /api/messages`: a ring buffer bounded by count and by bytes.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use axum_mqtt::web::MessageJson;
use axum_mqtt::Message;
use serde::Serialize;

/// One received message as stored and served.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = StoredMessage)]
pub struct Stored {
    /// Increasing number, 1 for the first message since start.
    pub id: u64,
    /// When it arrived, milliseconds since the Unix epoch.
    pub time_ms: u64,
    #[serde(flatten)]
    pub message: MessageJson,
    #[serde(skip)]
    #[schema(ignore)]
    size: usize,
}

struct Ring {
    items: VecDeque<Stored>,
    bytes: usize,
    next_id: u64,
}

/// The ring buffer. Oldest messages go first when either bound is reached.
pub struct MessageLog {
    ring: Mutex<Ring>,
    capacity: usize,
    max_bytes: usize,
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl MessageLog {
    /// Keeps at most `capacity` messages and about `max_bytes` of topics and payloads.
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        MessageLog {
            ring: Mutex::new(Ring {
                items: VecDeque::with_capacity(capacity.min(1024)),
                bytes: 0,
                next_id: 1,
            }),
            capacity: capacity.max(1),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a message.
    pub fn push(&self, msg: &Message) {
        let message = MessageJson::from(msg);
        let size = msg.topic().len()
            + message.payload.as_ref().map_or(0, String::len)
            + message.payload_base64.as_ref().map_or(0, String::len);
        let mut ring = self.lock();
        let id = ring.next_id;
        ring.next_id += 1;
        ring.bytes += size;
        ring.items.push_back(Stored {
            id,
            time_ms: now_ms(),
            message,
            size,
        });
        while ring.items.len() > self.capacity
            || (ring.bytes > self.max_bytes && ring.items.len() > 1)
        {
            if let Some(old) = ring.items.pop_front() {
                ring.bytes -= old.size;
            }
        }
    }

    /// Up to `limit` messages, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Stored> {
        self.lock()
            .items
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect()
    }

    /// Messages held now.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Messages stored since start.
    pub fn total(&self) -> u64 {
        self.lock().next_id - 1
    }

    /// The count bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_within_both_bounds() {
        let log = MessageLog::new(3, 1 << 20);
        for i in 0..5 {
            log.push(&Message::new("t", format!("{i}")));
        }
        let r = log.recent(10);
        let payloads: Vec<_> = r
            .iter()
            .map(|s| s.message.payload.clone().unwrap())
            .collect();
        assert_eq!(payloads, vec!["4", "3", "2"]);
        assert_eq!(r[0].id, 5);
        assert_eq!(log.recent(1).len(), 1);
        assert_eq!(log.total(), 5);

        let log = MessageLog::new(100, 10);
        log.push(&Message::new("t", "12345"));
        log.push(&Message::new("t", "67890"));
        assert_eq!(log.len(), 1, "the byte bound evicts the oldest");
    }
}
