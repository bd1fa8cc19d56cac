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
//!
//! The log is a cluster's, not a component's: topics, partition counts, messages, consumer
//! offsets and wake-ups are keyed by the cluster of the pub/sub component used
//! ([`crate::resources::PubSubComponent::cluster`]), so two Kafka components on the same brokers
//! reach the same topics, as two daprd clients of one Kafka cluster do. The tables' `pubsub`
//! column holds that cluster (it held the component name before clusters: see
//! [`adopt_clusters`]); `pubsub_clusters` records which cluster each component name was last
//! started with, for `devhost peek` and `devhost lag`, which are given a component name.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension as _, params};
use tokio::sync::watch;

use crate::db::{Cache, now_ms};
use crate::resources::InitialOffset;

/// A message to append to a topic.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The cluster of the pub/sub component it is published through.
    pub cluster: String,
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

/// The partition count of a topic of `cluster`, creating the topic with `default` partitions
/// if new.
pub fn partitions(
    conn: &Connection,
    cache: &mut Cache,
    cluster: &str,
    topic: &str,
    default: u32,
) -> rusqlite::Result<u32> {
    let id = (cluster.to_owned(), topic.to_owned());
    if let Some(n) = cache.partitions.get(&id) {
        return Ok(*n);
    }
    let stored: Option<u32> = conn
        .query_row("SELECT partitions FROM topics WHERE pubsub = ?1 AND topic = ?2", params![cluster, topic], |r| {
            r.get(0)
        })
        .optional()?;
    let n = match stored {
        Some(n) => {
            if n != default {
                tracing::debug!(cluster, topic, stored = n, configured = default, "topic keeps its partition count");
            }
            n
        }
        None => {
            conn.execute(
                "INSERT INTO topics (pubsub, topic, partitions) VALUES (?1, ?2, ?3)",
                params![cluster, topic, default],
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
    cluster: &str,
    topic: &str,
    partition: u32,
) -> rusqlite::Result<i64> {
    let id = (cluster.to_owned(), topic.to_owned(), partition);
    if let Some(next) = cache.next_offsets.get(&id) {
        return Ok(*next);
    }
    let next: i64 = conn.query_row(
        "SELECT COALESCE(MAX(offset) + 1, 0) FROM messages WHERE pubsub = ?1 AND topic = ?2 AND partition = ?3",
        params![cluster, topic, partition],
        |r| r.get(0),
    )?;
    cache.next_offsets.insert(id, next);
    Ok(next)
}

/// Appends messages inside the caller's transaction. Returns the partitions to notify once the
/// transaction has committed.
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
        let n = partitions(conn, cache, &m.cluster, &m.topic, default_partitions)?;
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
        let offset = next_offset(conn, cache, &m.cluster, &m.topic, partition)?;
        let headers = serde_json::to_string(&m.headers).unwrap_or_else(|_| "{}".to_owned());
        insert.execute(params![m.cluster, m.topic, partition, offset, m.key, headers, m.content_type, m.body, now])?;
        cache.next_offsets.insert((m.cluster.clone(), m.topic.clone(), partition), offset + 1);
        let id = (m.cluster.clone(), m.topic.clone(), partition);
        if !touched.contains(&id) {
            touched.push(id);
        }
    }
    Ok(touched)
}

/// Up to `limit` messages of one partition of a topic of `cluster` from `from` on.
pub fn fetch(
    conn: &Connection,
    cluster: &str,
    topic: &str,
    partition: u32,
    from: i64,
    limit: u32,
) -> rusqlite::Result<Vec<Stored>> {
    let mut stmt = conn.prepare_cached(
        "SELECT offset, key, headers, content_type, body, published_at FROM messages \
         WHERE pubsub = ?1 AND topic = ?2 AND partition = ?3 AND offset >= ?4 ORDER BY offset LIMIT ?5",
    )?;
    let rows = stmt.query_map(params![cluster, topic, partition, from, limit], |r| {
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

/// The offset a consumer group resumes from on a partition of a topic of `cluster` (Kafka
/// offsets are per group, topic and partition: whichever component a group consumes through),
/// starting a new group at the oldest message or at the end of the log. A new group's start is
/// committed at once, so a restart before its first message does not move it.
pub fn resume_offset(
    conn: &Connection,
    cache: &mut Cache,
    group: &str,
    cluster: &str,
    topic: &str,
    partition: u32,
    initial: InitialOffset,
) -> rusqlite::Result<i64> {
    let committed: Option<i64> = conn
        .query_row(
            "SELECT next_offset FROM offsets WHERE grp = ?1 AND pubsub = ?2 AND topic = ?3 AND partition = ?4",
            params![group, cluster, topic, partition],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(offset) = committed {
        return Ok(offset);
    }
    let start = match initial {
        InitialOffset::Oldest => 0,
        InitialOffset::Newest => next_offset(conn, cache, cluster, topic, partition)?,
    };
    commit(conn, group, cluster, topic, partition, start)?;
    Ok(start)
}

/// Commits a consumer group's position: everything before `next` is settled.
pub fn commit(
    conn: &Connection,
    group: &str,
    cluster: &str,
    topic: &str,
    partition: u32,
    next: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO offsets (grp, pubsub, topic, partition, next_offset) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (grp, pubsub, topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
    )?
    .execute(params![group, cluster, topic, partition, next])?;
    Ok(())
}

/// What [`adopt_clusters`] did with the topics a devhost before clusters kept under component
/// names: (component, topic) pairs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Adopted {
    /// Moved to the component's cluster.
    pub moved: Vec<(String, String)>,
    /// Left under the component name, unread: the cluster already had the topic.
    pub kept: Vec<(String, String)>,
}

/// Records the cluster of each pub/sub component (`(name, cluster)`) in `pubsub_clusters`, and
/// moves what a devhost before clusters stored under a component's name (its topics, messages
/// and consumer offsets, keyed by the name) to the component's cluster, inside the caller's
/// transaction: messages keep their partitions and offsets, and consumer groups their
/// positions, so nothing is delivered again or skipped.
///
/// Run at every start, before anything reads the log. Idempotent: what was moved is no longer
/// under the name, and a component without brokers is its own cluster, under its name already.
/// A topic its cluster already has (an older devhost kept two components on one cluster apart,
/// both with that topic) cannot be merged, offsets and all: it stays under the name, where
/// nothing reads it, and is reported in [`Adopted::kept`].
pub fn adopt_clusters(
    conn: &Connection,
    cache: &mut Cache,
    components: &[(String, String)],
) -> rusqlite::Result<Adopted> {
    let mut adopted = Adopted::default();
    for (name, cluster) in components {
        conn.prepare_cached(
            "INSERT INTO pubsub_clusters (component, cluster) VALUES (?1, ?2) \
             ON CONFLICT (component) DO UPDATE SET cluster = excluded.cluster",
        )?
        .execute(params![name, cluster])?;
        if name == cluster {
            continue;
        }
        let topics = conn
            .prepare_cached(
                "SELECT topic FROM topics WHERE pubsub = ?1 UNION SELECT topic FROM messages WHERE pubsub = ?1 \
                 UNION SELECT topic FROM offsets WHERE pubsub = ?1 ORDER BY 1",
            )?
            .query_map([name], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for topic in topics {
            let taken: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM topics WHERE pubsub = ?1 AND topic = ?2) \
                 OR EXISTS (SELECT 1 FROM messages WHERE pubsub = ?1 AND topic = ?2) \
                 OR EXISTS (SELECT 1 FROM offsets WHERE pubsub = ?1 AND topic = ?2)",
                params![cluster, topic],
                |r| r.get(0),
            )?;
            if taken {
                adopted.kept.push((name.clone(), topic));
                continue;
            }
            for table in ["topics", "messages", "offsets"] {
                conn.execute(
                    &format!("UPDATE {table} SET pubsub = ?1 WHERE pubsub = ?2 AND topic = ?3"),
                    params![cluster, name, topic],
                )?;
            }
            adopted.moved.push((name.clone(), topic));
        }
    }
    if !adopted.moved.is_empty() {
        cache.partitions.clear();
        cache.next_offsets.clear();
    }
    Ok(adopted)
}

/// The cluster whose topics pub/sub component `name` reaches, as the last devhost start
/// recorded it; the name itself in a database without that record (one written before
/// clusters, or a component never started with it).
pub fn cluster_of_component(conn: &Connection, name: &str) -> rusqlite::Result<String> {
    let recorded: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pubsub_clusters')",
        [],
        |r| r.get(0),
    )?;
    if !recorded {
        return Ok(name.to_owned());
    }
    let cluster: Option<String> =
        conn.query_row("SELECT cluster FROM pubsub_clusters WHERE component = ?1", [name], |r| r.get(0)).optional()?;
    Ok(cluster.unwrap_or_else(|| name.to_owned()))
}

/// A partition an append wrote to: cluster, topic, partition.
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
    /// Wake-ups of a partition of a topic of `cluster`: appends through any component on it.
    pub fn subscribe(&self, cluster: &str, topic: &str, partition: u32) -> watch::Receiver<u64> {
        let mut partitions = self.partitions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        partitions
            .entry((cluster.to_owned(), topic.to_owned(), partition))
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

    /// A database as a devhost before clusters left it: `pubsub` and `live` are on one cluster
    /// now, and both have a topic `t` (which cannot be merged); `live` also has `u`.
    fn database_before_clusters() -> rusqlite::Result<Connection> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(crate::db::SCHEMA)?;
        conn.execute_batch("DROP TABLE pubsub_clusters")?;
        for (pubsub, topic, group, next) in [("pubsub", "t", "a", 2), ("live", "t", "b", 1), ("live", "u", "b", 1)] {
            conn.execute("INSERT INTO topics VALUES (?1, ?2, 2)", params![pubsub, topic])?;
            for offset in 0..2 {
                conn.execute(
                    "INSERT INTO messages VALUES (?1, ?2, 1, ?3, 'k', '{}', NULL, ?4, 0)",
                    params![pubsub, topic, offset, format!("{pubsub}/{topic}/{offset}").into_bytes()],
                )?;
            }
            conn.execute("INSERT INTO offsets VALUES (?1, ?2, ?3, 1, ?4)", params![group, pubsub, topic, next])?;
        }
        Ok(conn)
    }

    fn rows(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn a_log_kept_by_component_name_moves_to_the_cluster_once() {
        let conn = database_before_clusters().unwrap();
        // Before any start, peek finds a component's topics under its name.
        assert_eq!(cluster_of_component(&conn, "pubsub").unwrap(), "pubsub");
        conn.execute_batch(crate::db::SCHEMA).unwrap();
        let mut cache = Cache::default();
        let components = [
            ("pubsub".to_owned(), "kafka:localhost:9092".to_owned()),
            ("live".to_owned(), "kafka:localhost:9092".to_owned()),
            ("solo".to_owned(), "solo".to_owned()),
        ];
        let adopted = adopt_clusters(&conn, &mut cache, &components).unwrap();
        let pair = |c: &str, t: &str| (c.to_owned(), t.to_owned());
        assert_eq!(adopted.moved, [pair("pubsub", "t"), pair("live", "u")]);
        assert_eq!(adopted.kept, [pair("live", "t")], "the cluster already had t");

        let cluster = "kafka:localhost:9092";
        // Messages keep their partitions and offsets, groups their positions.
        assert_eq!(
            fetch(&conn, cluster, "t", 1, 0, 10).unwrap().iter().map(|m| m.body.clone()).collect::<Vec<_>>(),
            [b"pubsub/t/0".to_vec(), b"pubsub/t/1".to_vec()]
        );
        assert_eq!(fetch(&conn, cluster, "u", 1, 1, 10).unwrap()[0].body, b"live/u/1");
        assert_eq!(resume_offset(&conn, &mut cache, "a", cluster, "t", 1, InitialOffset::Oldest).unwrap(), 2);
        assert_eq!(resume_offset(&conn, &mut cache, "b", cluster, "u", 1, InitialOffset::Oldest).unwrap(), 1);
        assert_eq!(partitions(&conn, &mut cache, cluster, "u", 4).unwrap(), 2, "u keeps its partition count");
        assert_eq!(rows(&conn, "SELECT DISTINCT pubsub FROM messages WHERE pubsub = 'pubsub'"), Vec::<String>::new());
        assert_eq!(cluster_of_component(&conn, "live").unwrap(), cluster);
        assert_eq!(cluster_of_component(&conn, "solo").unwrap(), "solo");
        assert_eq!(cluster_of_component(&conn, "unknown").unwrap(), "unknown");

        // Idempotent: a second start moves nothing and changes nothing.
        let before = rows(&conn, "SELECT pubsub || '/' || topic || '/' || offset FROM messages ORDER BY 1");
        let again = adopt_clusters(&conn, &mut cache, &components).unwrap();
        assert!(again.moved.is_empty(), "{again:?}");
        assert_eq!(again.kept, [pair("live", "t")]);
        assert_eq!(rows(&conn, "SELECT pubsub || '/' || topic || '/' || offset FROM messages ORDER BY 1"), before);
        assert_eq!(
            rows(&conn, "SELECT grp || '@' || pubsub || '/' || topic || ':' || next_offset FROM offsets ORDER BY 1"),
            ["a@kafka:localhost:9092/t:2", "b@kafka:localhost:9092/u:1", "b@live/t:1"]
        );
    }

    #[test]
    fn keys_keep_their_partition() {
        assert_eq!(partition_for("task-1", 4), partition_for("task-1", 4));
        let spread: std::collections::HashSet<u32> = (0..100).map(|i| partition_for(&format!("k{i}"), 4)).collect();
        assert_eq!(spread.len(), 4);
    }
}
