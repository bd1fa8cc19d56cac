//! The pub/sub log: an emulated Kafka with topics split into a fixed number of partitions,
//! offsets per partition, and durable consumer-group offsets, all in SQLite.
//!
//! Kafka semantics kept (components-contrib `common/component/kafka/producer.go`,
//! `partitioner.go`, `consumer.go`):
//! - a message with a key (`metadata.partitionKey`) always lands on the same partition (here:
//!   FNV-1a of the key modulo the partition count, stable across restarts), so messages of one
//!   key are delivered in order; a message without a key lands on a random partition;
//! - a topic's partition count is fixed when it is first used (stored in the database; a later
//!   `--partitions` only applies to new topics);
//! - offsets of committed consumer groups survive restarts; a new group starts at the oldest
//!   message or at the end of the log (`initialOffset`).
//!
//! Messages are kept forever (Kafka's retention is not emulated): a development database is
//! small, and replaying history with a new consumer group is a feature.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension as _, params};
use tokio::sync::watch;

use crate::db::{Cache, now_ms};
use crate::resources::InitialOffset;

/// A message to append to a topic.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub pubsub: String,
    pub topic: String,
    /// The Kafka key: `metadata.partitionKey`.
    pub key: Option<String>,
    /// An explicit partition: `metadata.partitionNumber` (Dapr 1.18, components-contrib #4298).
    pub partition: Option<u32>,
    /// Kafka record headers: the publish request's metadata (delivered as HTTP headers).
    pub headers: BTreeMap<String, String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// A message read back from a partition.
#[derive(Debug, Clone)]
pub struct Stored {
    pub partition: u32,
    pub offset: i64,
    pub key: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub published_at: i64,
}

/// FNV-1a, 32 bit: a stable hash so a key keeps its partition across restarts.
pub fn partition_for(key: &str, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in key.as_bytes() {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}

/// The partition count of a topic, creating the topic with `default` partitions if new.
pub fn partitions(
    conn: &Connection,
    cache: &mut Cache,
    pubsub: &str,
    topic: &str,
    default: u32,
) -> rusqlite::Result<u32> {
    let id = (pubsub.to_owned(), topic.to_owned());
    if let Some(n) = cache.partitions.get(&id) {
        return Ok(*n);
    }
    let stored: Option<u32> = conn
        .query_row("SELECT partitions FROM topics WHERE pubsub = ?1 AND topic = ?2", params![pubsub, topic], |r| {
            r.get(0)
        })
        .optional()?;
    let n = match stored {
        Some(n) => {
            if n != default {
                tracing::debug!(pubsub, topic, stored = n, configured = default, "topic keeps its partition count");
            }
            n
        }
        None => {
            conn.execute(
                "INSERT INTO topics (pubsub, topic, partitions) VALUES (?1, ?2, ?3)",
                params![pubsub, topic, default],
            )?;
            default
        }
    };
    cache.partitions.insert(id, n);
    Ok(n)
}

fn next_offset(
    conn: &Connection,
    cache: &mut Cache,
    pubsub: &str,
    topic: &str,
    partition: u32,
) -> rusqlite::Result<i64> {
    let id = (pubsub.to_owned(), topic.to_owned(), partition);
    if let Some(next) = cache.next_offsets.get(&id) {
        return Ok(*next);
    }
    let next: i64 = conn.query_row(
        "SELECT COALESCE(MAX(offset) + 1, 0) FROM messages WHERE pubsub = ?1 AND topic = ?2 AND partition = ?3",
        params![pubsub, topic, partition],
        |r| r.get(0),
    )?;
    cache.next_offsets.insert(id, next);
    Ok(next)
}

/// Appends messages inside the caller's transaction. Returns the (pubsub, topic) pairs to
/// notify once the transaction has committed.
pub fn append(
    conn: &Connection,
    cache: &mut Cache,
    messages: &[NewMessage],
    default_partitions: u32,
) -> rusqlite::Result<Vec<Touched>> {
    let now = now_ms();
    let mut touched = Vec::new();
    let mut insert = conn.prepare_cached(
        "INSERT INTO messages (pubsub, topic, partition, offset, key, headers, content_type, body, published_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for m in messages {
        let n = partitions(conn, cache, &m.pubsub, &m.topic, default_partitions)?;
        let partition = match (&m.partition, &m.key) {
            (Some(p), _) if *p < n => *p,
            (Some(p), _) => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    format!("partition {p} does not exist: topic {} has {n} partitions", m.topic).into(),
                ));
            }
            (None, Some(key)) => partition_for(key, n),
            // Sarama's hash partitioner picks a random partition for a message without a key.
            (None, None) => (uuid::Uuid::new_v4().as_u128() % u128::from(n.max(1))) as u32,
        };
        let offset = next_offset(conn, cache, &m.pubsub, &m.topic, partition)?;
        let headers = serde_json::to_string(&m.headers).unwrap_or_else(|_| "{}".to_owned());
        insert.execute(params![m.pubsub, m.topic, partition, offset, m.key, headers, m.content_type, m.body, now])?;
        cache.next_offsets.insert((m.pubsub.clone(), m.topic.clone(), partition), offset + 1);
        let id = (m.pubsub.clone(), m.topic.clone(), partition);
        if !touched.contains(&id) {
            touched.push(id);
        }
    }
    Ok(touched)
}

/// Up to `limit` messages of one partition from `from` on.
pub fn fetch(
    conn: &Connection,
    pubsub: &str,
    topic: &str,
    partition: u32,
    from: i64,
    limit: u32,
) -> rusqlite::Result<Vec<Stored>> {
    let mut stmt = conn.prepare_cached(
        "SELECT offset, key, headers, content_type, body, published_at FROM messages \
         WHERE pubsub = ?1 AND topic = ?2 AND partition = ?3 AND offset >= ?4 ORDER BY offset LIMIT ?5",
    )?;
    let rows = stmt.query_map(params![pubsub, topic, partition, from, limit], |r| {
        let headers: String = r.get(2)?;
        Ok(Stored {
            partition,
            offset: r.get(0)?,
            key: r.get(1)?,
            headers: serde_json::from_str(&headers).unwrap_or_default(),
            content_type: r.get(3)?,
            body: r.get(4)?,
            published_at: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// The offset a consumer group resumes from on a partition, starting a new group at the
/// oldest message or at the end of the log. A new group's start is committed at once, so a
/// restart before its first message does not move it.
pub fn resume_offset(
    conn: &Connection,
    cache: &mut Cache,
    group: &str,
    pubsub: &str,
    topic: &str,
    partition: u32,
    initial: InitialOffset,
) -> rusqlite::Result<i64> {
    let committed: Option<i64> = conn
        .query_row(
            "SELECT next_offset FROM offsets WHERE grp = ?1 AND pubsub = ?2 AND topic = ?3 AND partition = ?4",
            params![group, pubsub, topic, partition],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(offset) = committed {
        return Ok(offset);
    }
    let start = match initial {
        InitialOffset::Oldest => 0,
        InitialOffset::Newest => next_offset(conn, cache, pubsub, topic, partition)?,
    };
    commit(conn, group, pubsub, topic, partition, start)?;
    Ok(start)
}

/// Commits a consumer group's position: everything before `next` is settled.
pub fn commit(
    conn: &Connection,
    group: &str,
    pubsub: &str,
    topic: &str,
    partition: u32,
    next: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO offsets (grp, pubsub, topic, partition, next_offset) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (grp, pubsub, topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
    )?
    .execute(params![group, pubsub, topic, partition, next])?;
    Ok(())
}

/// A partition an append wrote to: pub/sub, topic, partition.
pub type Touched = (String, String, u32);

/// Wakes the delivery loops of a partition when something was appended to it.
///
/// Per partition, not per topic: a loop woken for another partition's message would only
/// read nothing on a reader thread. Per topic, every event woke every partition loop of every
/// consumer group (18 reads for one `task-events` message), which cost devhost more CPU than
/// the writes themselves.
#[derive(Debug, Default)]
pub struct Notifier {
    partitions: Mutex<HashMap<Touched, watch::Sender<u64>>>,
}

impl Notifier {
    pub fn subscribe(&self, pubsub: &str, topic: &str, partition: u32) -> watch::Receiver<u64> {
        let mut partitions = self.partitions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        partitions
            .entry((pubsub.to_owned(), topic.to_owned(), partition))
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    pub fn notify(&self, touched: &[Touched]) {
        let partitions = self.partitions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for id in touched {
            if let Some(sender) = partitions.get(id) {
                sender.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_partition() {
        assert_eq!(partition_for("task-1", 4), partition_for("task-1", 4));
        let spread: std::collections::HashSet<u32> = (0..100).map(|i| partition_for(&format!("k{i}"), 4)).collect();
        assert_eq!(spread.len(), 4);
    }
}
