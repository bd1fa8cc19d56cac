//! Reading a topic's log without consuming it: what is in a dead-letter topic, what was
//! published to `reminders`. Opens the database read-only, so it works while devhost runs
//! (SQLite WAL lets readers in beside the writer).

use anyhow::Context as _;
use rusqlite::{Connection, OpenFlags, params};
use serde::Serialize;
use serde_json::Value;

/// One message of a topic: where it sits in the log and its body (the CloudEvent, parsed when
/// it is JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Peeked {
    pub partition: u32,
    pub offset: i64,
    pub key: Option<String>,
    pub published_at_ms: i64,
    pub body: Value,
}

/// Every message of `pubsub`/`topic` in the database at `db`, by partition then offset.
pub fn messages(db: &str, pubsub: &str, topic: &str) -> anyhow::Result<Vec<Peeked>> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("opening {db} read-only"))?;
    let mut stmt = conn
        .prepare(
            "SELECT partition, offset, key, published_at, body FROM messages \
             WHERE pubsub = ?1 AND topic = ?2 ORDER BY partition, offset",
        )
        .context("reading the message log (is this a devhost database?)")?;
    let rows = stmt.query_map(params![pubsub, topic], |r| {
        let body: Vec<u8> = r.get(4)?;
        Ok(Peeked {
            partition: r.get(0)?,
            offset: r.get(1)?,
            key: r.get(2)?,
            published_at_ms: r.get(3)?,
            body: serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into())),
        })
    })?;
    rows.collect::<Result<Vec<_>, _>>().context("reading messages")
}
