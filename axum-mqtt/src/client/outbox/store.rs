//! The outbox file: one SQLite table, blocking calls (the async side runs them on the blocking pool).
//!
//! SQLite (through rusqlite, bundled) rather than redb: a single file any `sqlite3` shell can
//! inspect, WAL commits that survive a killed process, and `PRAGMA quick_check` to refuse a damaged
//! file instead of reading garbage. Rows are never rewritten in place except to mark them done.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension};

use crate::client::core::packet::OutPublish;
use crate::error::{OutboxCause, OutboxError};
use crate::message::{Properties, QoS};
use crate::Error;

/// `PRAGMA application_id` of an outbox file ("axmq"): another SQLite database is refused.
const APPLICATION_ID: i32 = 0x6178_6d71;
/// `PRAGMA user_version`: the layout below.
const LAYOUT: i32 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    properties TEXT,
    -- what the row counts against OUTBOX_MAX_BYTES (topic + payload)
    bytes INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    -- 0 queued, 1 acknowledged, 2 failed (refused by the broker)
    state INTEGER NOT NULL DEFAULT 0,
    mid INTEGER,
    done_ms INTEGER,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS outbox_queued ON outbox(id) WHERE state = 0;
";

/// A stored message waiting for the broker.
pub(crate) struct Row {
    pub id: u64,
    pub msg: OutPublish,
}

/// What the file says about one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RowState {
    Queued,
    Acked { mid: u16 },
    Failed { reason: String },
}

/// Totals of the queued rows, kept in memory so the limits cost no query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Depth {
    pub messages: u64,
    pub bytes: u64,
}

pub(crate) struct Store {
    conn: Connection,
    path: PathBuf,
    pub depth: Depth,
}

/// Bytes a row counts against `OUTBOX_MAX_BYTES`: what it stores.
pub(crate) fn row_bytes(msg: &OutPublish) -> u64 {
    (msg.topic.len() + msg.payload.len()) as u64
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (or creates) the outbox at `path` and checks it. A damaged, truncated or foreign file is
    /// an error naming the file; nothing is dropped or rewritten to make it open.
    pub fn open(path: &Path) -> Result<Store, OutboxError> {
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.len() == 0 {
                return Err(OutboxError {
                    path: path.to_path_buf(),
                    cause: OutboxCause::Empty,
                });
            }
        }
        let err = |e| sqlite(path, e);
        let conn = Connection::open(path).map_err(err)?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
            depth: Depth::default(),
        };
        store.check_and_init().map_err(err)?;
        let mut store = store;
        store.depth = store.count().map_err(err)?;
        Ok(store)
    }

    fn check_and_init(&self) -> Result<(), rusqlite::Error> {
        let c = &self.conn;
        // WAL + FULL: a commit is on disk before `insert` returns, even if the process is killed
        // (or the machine loses power) right after.
        c.pragma_update(None, "journal_mode", "WAL")?;
        c.pragma_update(None, "synchronous", "FULL")?;
        let check: String = c.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(damaged(format!("quick_check: {check}")));
        }
        let app: i32 = c.query_row("PRAGMA application_id", [], |r| r.get(0))?;
        let tables: i64 = c.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        if app == 0 && tables == 0 {
            c.execute_batch(SCHEMA)?;
            c.pragma_update(None, "application_id", APPLICATION_ID)?;
            c.pragma_update(None, "user_version", LAYOUT)?;
            return Ok(());
        }
        if app != APPLICATION_ID {
            return Err(damaged(
                "an SQLite database, but not an axum-mqtt outbox".into(),
            ));
        }
        let layout: i32 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if layout != LAYOUT {
            return Err(damaged(format!(
                "outbox layout {layout}; this version reads layout {LAYOUT}"
            )));
        }
        Ok(())
    }

    fn count(&self) -> Result<Depth, rusqlite::Error> {
        self.conn.query_row(
            "SELECT count(*), coalesce(sum(bytes), 0) FROM outbox WHERE state = 0",
            [],
            |r| {
                Ok(Depth {
                    messages: r.get::<_, i64>(0)? as u64,
                    bytes: r.get::<_, i64>(1)? as u64,
                })
            },
        )
    }

    fn fail(&self, e: rusqlite::Error) -> Error {
        sqlite(&self.path, e).into()
    }

    /// Stores a message; it is on disk when this returns.
    #[cfg(test)]
    pub fn insert(&mut self, msg: &OutPublish) -> Result<u64, Error> {
        Ok(self.insert_all(std::slice::from_ref(msg))?[0])
    }

    /// Stores messages in one transaction (one fsync for all); they are on disk when this returns.
    pub fn insert_all(&mut self, msgs: &[OutPublish]) -> Result<Vec<u64>, Error> {
        let path = self.path.clone();
        let fail = |e| Error::from(sqlite(&path, e));
        let now = now_ms();
        let tx = self.conn.transaction().map_err(fail)?;
        let mut ids = Vec::with_capacity(msgs.len());
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO outbox (topic, payload, qos, retain, properties, bytes, created_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
                )
                .map_err(fail)?;
            for msg in msgs {
                let props = msg.properties.as_ref().map(props_to_json);
                let id: i64 = stmt
                    .query_row(
                        params![
                            msg.topic,
                            &msg.payload[..],
                            msg.qos as u8,
                            msg.retain,
                            props,
                            row_bytes(msg) as i64,
                            now
                        ],
                        |r| r.get(0),
                    )
                    .map_err(fail)?;
                ids.push(id as u64);
            }
        }
        tx.commit().map_err(fail)?;
        for msg in msgs {
            self.depth.messages += 1;
            self.depth.bytes += row_bytes(msg);
        }
        Ok(ids)
    }

    /// Up to `n` queued rows after `after`, oldest first.
    pub fn next(&self, after: u64, n: usize) -> Result<Vec<Row>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, topic, payload, qos, retain, properties FROM outbox
                 WHERE state = 0 AND id > ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(|e| self.fail(e))?;
        let rows = stmt
            .query_map(params![after as i64, n as i64], |r| {
                let qos: u8 = r.get(3)?;
                let props: Option<String> = r.get(5)?;
                Ok(Row {
                    id: r.get::<_, i64>(0)? as u64,
                    msg: OutPublish {
                        topic: r.get(1)?,
                        payload: Bytes::from(r.get::<_, Vec<u8>>(2)?),
                        qos: match qos {
                            2 => QoS::ExactlyOnce,
                            _ => QoS::AtLeastOnce,
                        },
                        retain: r.get(4)?,
                        properties: props.as_deref().and_then(props_from_json),
                    },
                })
            })
            .map_err(|e| self.fail(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.fail(e))
    }

    /// Marks rows done in one transaction (acknowledged, or refused by the broker); their payload
    /// is dropped, the id and its state are kept for [`status`](Self::status).
    pub fn finish(&mut self, done: &[(u64, RowState)]) -> Result<(), Error> {
        let now = now_ms();
        let path = self.path.clone();
        let fail = |e| Error::from(sqlite(&path, e));
        let tx = self.conn.transaction().map_err(fail)?;
        let mut freed = Depth::default();
        {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE outbox SET state = ?2, mid = ?3, reason = ?4, done_ms = ?5, payload = x''
                     WHERE id = ?1 AND state = 0
                     RETURNING bytes",
                )
                .map_err(fail)?;
            for (id, state) in done {
                let (code, mid, reason) = match state {
                    RowState::Queued => continue,
                    RowState::Acked { mid } => (1, Some(*mid), None),
                    RowState::Failed { reason } => (2, None, Some(reason.as_str())),
                };
                let bytes: Option<i64> = stmt
                    .query_row(params![*id as i64, code, mid, reason, now], |r| r.get(0))
                    .optional()
                    .map_err(fail)?;
                if let Some(b) = bytes {
                    freed.messages += 1;
                    freed.bytes += b as u64;
                }
            }
        }
        tx.commit().map_err(fail)?;
        self.depth.messages -= freed.messages.min(self.depth.messages);
        self.depth.bytes -= freed.bytes.min(self.depth.bytes);
        Ok(())
    }

    /// Keeps the newest `keep` finished rows, so `status` can answer for a bounded while.
    pub fn prune(&self, keep: usize) -> Result<usize, Error> {
        self.conn
            .execute(
                "DELETE FROM outbox WHERE state <> 0 AND id < coalesce(
                    (SELECT id FROM outbox WHERE state <> 0 ORDER BY id DESC LIMIT 1 OFFSET ?1), 0)",
                params![keep as i64],
            )
            .map_err(|e| self.fail(e))
    }

    /// The state of one id; `None` when it was never stored here or was pruned.
    pub fn status(&self, id: u64) -> Result<Option<RowState>, Error> {
        self.conn
            .query_row(
                "SELECT state, mid, reason FROM outbox WHERE id = ?1",
                params![id as i64],
                |r| {
                    let state: i64 = r.get(0)?;
                    Ok(match state {
                        0 => RowState::Queued,
                        1 => RowState::Acked {
                            mid: r.get::<_, Option<u16>>(1)?.unwrap_or(0),
                        },
                        _ => RowState::Failed {
                            reason: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                        },
                    })
                },
            )
            .optional()
            .map_err(|e| self.fail(e))
    }

    /// When the oldest queued message was stored (ms since the epoch).
    pub fn oldest_ms(&self) -> Result<Option<i64>, Error> {
        self.conn
            .query_row(
                "SELECT created_ms FROM outbox WHERE state = 0 ORDER BY id LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.fail(e))
    }
}

/// The file's error for a failed SQLite call.
fn sqlite(path: &Path, e: rusqlite::Error) -> OutboxError {
    OutboxError {
        path: path.to_path_buf(),
        cause: OutboxCause::Sqlite(std::sync::Arc::new(e)),
    }
}

fn damaged(reason: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        Some(reason),
    )
}

/// Properties as stored: JSON, the correlation data in base64.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredProps {
    content_type: Option<String>,
    response_topic: Option<String>,
    correlation_data: Option<String>,
    user_properties: Vec<(String, String)>,
    message_expiry_interval: Option<u32>,
    payload_format_indicator: Option<u8>,
}

fn props_to_json(p: &Properties) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let stored = StoredProps {
        content_type: p.content_type.clone(),
        response_topic: p.response_topic.clone(),
        correlation_data: p.correlation_data.as_ref().map(|c| b64.encode(c)),
        user_properties: p.user_properties.clone(),
        message_expiry_interval: p.message_expiry_interval,
        payload_format_indicator: p.payload_format_indicator,
    };
    serde_json::to_string(&stored).unwrap_or_default()
}

fn props_from_json(s: &str) -> Option<Properties> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let p: StoredProps = serde_json::from_str(s).ok()?;
    Some(Properties {
        content_type: p.content_type,
        response_topic: p.response_topic,
        correlation_data: p
            .correlation_data
            .and_then(|c| b64.decode(c).ok())
            .map(Bytes::from),
        user_properties: p.user_properties,
        message_expiry_interval: p.message_expiry_interval,
        payload_format_indicator: p.payload_format_indicator,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(topic: &str, payload: &str) -> OutPublish {
        OutPublish {
            topic: topic.into(),
            payload: Bytes::from(payload.to_string()),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: None,
        }
    }

    #[test]
    fn rows_survive_reopening_in_order_and_leave_once_done() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        let mut s = Store::open(&path).unwrap();
        let a = s.insert(&msg("t/a", "1")).unwrap();
        let b = s.insert(&msg("t/b", "22")).unwrap();
        let mut with_props = msg("t/c", "333");
        with_props.qos = QoS::ExactlyOnce;
        with_props.properties = Some(Properties {
            correlation_data: Some(Bytes::from_static(b"\x00\xff")),
            user_properties: vec![("k".into(), "v".into())],
            ..Default::default()
        });
        let c = s.insert(&with_props).unwrap();
        assert!(a < b && b < c);
        assert_eq!(
            s.depth,
            Depth {
                messages: 3,
                bytes: 3 + 1 + 3 + 2 + 3 + 3
            }
        );
        drop(s);

        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.depth.messages, 3);
        let rows = s.next(0, 10).unwrap();
        assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [a, b, c]);
        assert_eq!(rows[2].msg.qos, QoS::ExactlyOnce);
        assert_eq!(rows[2].msg.properties, with_props.properties);
        assert_eq!(s.next(a, 1).unwrap()[0].id, b);

        s.finish(&[
            (a, RowState::Acked { mid: 7 }),
            (
                b,
                RowState::Failed {
                    reason: "not authorized".into(),
                },
            ),
        ])
        .unwrap();
        assert_eq!(
            s.depth,
            Depth {
                messages: 1,
                bytes: 6
            }
        );
        assert_eq!(s.status(a).unwrap(), Some(RowState::Acked { mid: 7 }));
        assert!(matches!(
            s.status(b).unwrap(),
            Some(RowState::Failed { .. })
        ));
        assert_eq!(s.status(c).unwrap(), Some(RowState::Queued));
        assert_eq!(s.status(999).unwrap(), None);
        assert_eq!(s.next(0, 10).unwrap().len(), 1);
        assert!(s.oldest_ms().unwrap().is_some());

        // Ids are never reused, even after the newest row was finished and pruned.
        s.finish(&[(c, RowState::Acked { mid: 8 })]).unwrap();
        assert_eq!(
            s.prune(0).unwrap(),
            2,
            "all finished rows but the newest go"
        );
        let d = s.insert(&msg("t/d", "4")).unwrap();
        assert!(d > c);
    }

    #[test]
    fn a_damaged_truncated_or_foreign_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        {
            let mut s = Store::open(&path).unwrap();
            for i in 0..2000 {
                s.insert(&msg("t", &format!("{i:0>200}"))).unwrap();
            }
            // Checkpoint the WAL into the main file, so damaging the file damages the rows.
            s.conn
                .pragma_update(None, "journal_mode", "DELETE")
                .unwrap();
        }
        let full = std::fs::read(&path).unwrap();

        std::fs::write(&path, &full[..full.len() / 2]).unwrap();
        let e = Store::open(&path).err().expect("truncated file opened");
        assert!(e.to_string().contains("outbox.db"), "{e}");

        let mut garbled = full.clone();
        for b in &mut garbled[8192..16384] {
            *b = 0x5a;
        }
        std::fs::write(&path, &garbled).unwrap();
        let e = Store::open(&path).err().expect("garbled file opened");
        assert!(e.to_string().contains("outbox.db"), "{e}");

        std::fs::write(&path, b"").unwrap();
        let e = Store::open(&path).err().expect("empty file opened");
        assert!(e.to_string().contains("empty"), "{e}");

        std::fs::write(
            &path,
            b"not a database at all, just some text that is long enough",
        )
        .unwrap();
        assert!(Store::open(&path).is_err());

        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE x (a)")
            .unwrap();
        let e = Store::open(&other).err().expect("foreign database opened");
        assert!(e.to_string().contains("not an axum-mqtt outbox"), "{e}");
    }
}
