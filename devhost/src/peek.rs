//! Reading the database without changing it: a topic's log (what is in a dead-letter topic,
//! what was published to `reminders`), each consumer group's lag, and state entries. Opens the
//! database read-only, so it works while devhost runs (SQLite WAL lets readers in beside the
//! writer).
//!
//! Topics are named by a pub/sub component, and read on the cluster it was last started with
//! (what any component on that cluster publishes and every group consuming it, as Kafka's
//! tools see a topic).

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

fn open(db: &str) -> anyhow::Result<Connection> {
    Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("opening {db} read-only"))
}

/// Every message of `topic` on the cluster of pub/sub component `pubsub` in the database at
/// `db`, by partition then offset.
pub fn messages(db: &str, pubsub: &str, topic: &str) -> anyhow::Result<Vec<Peeked>> {
    let conn = open(db)?;
    let cluster = cluster(&conn, pubsub)?;
    let mut stmt = conn
        .prepare(
            "SELECT partition, offset, key, published_at, body FROM messages \
             WHERE pubsub = ?1 AND topic = ?2 ORDER BY partition, offset",
        )
        .context("reading the message log (is this a devhost database?)")?;
    let rows = stmt.query_map(params![cluster, topic], |r| {
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

/// How far one consumer group is behind on one topic: messages published and not yet
/// delivered and answered, summed over partitions (Kafka's consumer lag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lag {
    pub group: String,
    pub topic: String,
    pub lag: i64,
}

/// The lag of every consumer group that has started consuming from the cluster of pub/sub
/// component `pubsub` (through it or any other component on that cluster), by group and
/// topic. A group is listed for as long as its offsets are stored, that is forever (Kafka
/// drops the offsets of a group without members after `offsets.retention.minutes`): a group
/// that is new on every start (`{uuid}`) leaves one behind per start, with the lag it had.
pub fn lag(db: &str, pubsub: &str) -> anyhow::Result<Vec<Lag>> {
    let conn = open(db)?;
    let cluster = cluster(&conn, pubsub)?;
    let mut stmt = conn
        .prepare(
            // The end of each partition by a primary-key seek per consumer position: cheap enough
            // to poll every second. (A GROUP BY over `messages` would read every stored body.)
            "SELECT o.grp, o.topic, SUM(COALESCE((SELECT MAX(m.offset) FROM messages m \
             WHERE m.pubsub = o.pubsub AND m.topic = o.topic AND m.partition = o.partition) + 1, 0) - o.next_offset) \
             FROM offsets o WHERE o.pubsub = ?1 GROUP BY o.grp, o.topic ORDER BY o.grp, o.topic",
        )
        .context("reading consumer offsets (is this a devhost database?)")?;
    let rows = stmt.query_map(params![cluster], |r| Ok(Lag { group: r.get(0)?, topic: r.get(1)?, lag: r.get(2)? }))?;
    rows.collect::<Result<Vec<_>, _>>().context("reading consumer offsets")
}

fn cluster(conn: &Connection, pubsub: &str) -> anyhow::Result<String> {
    crate::pubsub::cluster_of_component(conn, pubsub).context("reading pub/sub clusters (is this a devhost database?)")
}

/// The entries of state store `store` whose key (without the store's prefix) starts with
/// `prefix`, as `(key, JSON value)`.
pub fn state(db: &str, store: &str, prefix: &str) -> anyhow::Result<Vec<(String, Value)>> {
    let conn = open(db)?;
    let mut stmt = conn
        .prepare("SELECT key, value FROM state WHERE store = ?1 ORDER BY key")
        .context("reading state (is this a devhost database?)")?;
    let rows = stmt.query_map(params![store], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut entries = Vec::new();
    for row in rows {
        let (stored, value) = row.context("reading state")?;
        let key = crate::state::original_key(&stored);
        if key.starts_with(prefix) {
            let value = serde_json::from_str(&value).unwrap_or(Value::String(value));
            entries.push((key.to_owned(), value));
        }
    }
    Ok(entries)
}
