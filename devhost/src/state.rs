//! State stores with `state.postgresql` v1 semantics, on the `state` table (the Query API is
//! [`crate::query`]).
//!
//! Each component is its own keyspace (in Postgres each has its own `tableName`). Behaviour
//! mirrored from components-contrib `common/component/postgresql/v1/postgresql.go` and dapr/dapr
//! `pkg/api/http/http.go`:
//! - ETags are integers from one global counter (Postgres `xmin`); a non-integer ETag is invalid
//!   (400 on a single save/delete); an ETag on a missing key, or a stale one, is a mismatch (409
//!   on a single save/delete, 500 inside a transaction);
//! - `first-write` concurrency *without* an ETag is insert-if-absent: an existing (unexpired) key
//!   makes the write fail (500);
//! - `ttlInSeconds` sets an expiry; expired rows read as absent and are purged periodically;
//! - keys are stored as `<prefix>||<key>` per the component's `keyPrefix`
//!   (dapr/dapr `pkg/components/state/state_config.go`), and a key containing `||` is refused.

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::db::{DbInner, TaskFailed, now_ms};
use crate::pubsub::{self, NewMessage};
use crate::query::Written;
use crate::resources::KeyPrefix;

const SEPARATOR: &str = "||";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// components-contrib `state.NewETagError(state.ETagMismatch, ...)`.
    #[error("possible etag mismatch. error from state store: key {0:?}")]
    Mismatch(String),
    #[error("invalid etag value: {0:?} is not an integer ETag")]
    InvalidEtag(String),
    #[error("key {0:?} already exists (first-write concurrency without an ETag only inserts)")]
    Exists(String),
    #[error("outbox projection for key {0:?} has no matching upsert in the transaction")]
    Projection(String),
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Task(#[from] TaskFailed),
}

/// The stored key for `key` (dapr/dapr `GetModifiedStateKey`).
pub fn full_key(prefix: &KeyPrefix, component: &str, app_id: &str, key: &str) -> Result<String, String> {
    if key.contains(SEPARATOR) {
        return Err(format!("input key/keyPrefix '{key}' can't contain '{SEPARATOR}'"));
    }
    Ok(match prefix {
        KeyPrefix::AppId | KeyPrefix::Namespace => format!("{app_id}{SEPARATOR}{key}"),
        KeyPrefix::Name => format!("{component}{SEPARATOR}{key}"),
        KeyPrefix::Static(p) => format!("{p}{SEPARATOR}{key}"),
        KeyPrefix::None => key.to_owned(),
    })
}

/// The key without its prefix (dapr/dapr `GetOriginalStateKey`).
pub fn original_key(stored: &str) -> &str {
    stored.split_once(SEPARATOR).map_or(stored, |(_, rest)| rest)
}

/// One stored value.
#[derive(Debug, Clone)]
pub struct Row {
    /// The JSON text of the value.
    pub value: String,
    pub etag: i64,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub enum Op {
    Set { key: String, value: String, etag: Option<String>, first_write: bool, ttl_secs: Option<i64> },
    Delete { key: String, etag: Option<String> },
}

fn parse_etag(etag: &str) -> Result<i64, StateError> {
    etag.trim_matches('"')
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| StateError::InvalidEtag(etag.to_owned()))
}

pub fn get(conn: &Connection, store: &str, key: &str) -> rusqlite::Result<Option<Row>> {
    let now = now_ms();
    conn.prepare_cached("SELECT value, etag, expires_at FROM state WHERE store = ?1 AND key = ?2")?
        .query_row(params![store, key], |r| Ok(Row { value: r.get(0)?, etag: r.get(1)?, expires_at: r.get(2)? }))
        .optional()
        .map(|row| row.filter(|r| r.expires_at.is_none_or(|e| e > now)))
}

/// Applies `ops` and appends `messages` (the outbox) in one SQLite transaction: all or nothing.
/// Returns the topics to notify after the commit.
pub fn apply(
    inner: &mut DbInner,
    store: &str,
    ops: &[Op],
    messages: &[NewMessage],
    partitions: u32,
) -> Result<Vec<crate::pubsub::Touched>, StateError> {
    let DbInner { conn, cache } = inner;
    let saved_etag = cache.last_etag;
    let mut written = Vec::with_capacity(ops.len());
    let result = (|| {
        let tx = conn.savepoint()?;
        let now = now_ms();
        for op in ops {
            match op {
                Op::Set { key, value, etag, first_write, ttl_secs } => {
                    let existing = get(&tx, store, key)?;
                    match etag.as_deref().filter(|e| !e.is_empty()) {
                        Some(etag) => {
                            let wanted = parse_etag(etag)?;
                            if existing.as_ref().is_none_or(|row| row.etag != wanted) {
                                return Err(StateError::Mismatch(original_key(key).to_owned()));
                            }
                        }
                        None if *first_write && existing.is_some() => {
                            return Err(StateError::Exists(original_key(key).to_owned()));
                        }
                        None => {}
                    }
                    let expires = ttl_secs.filter(|t| *t > 0).map(|t| now + t * 1000);
                    let new_etag = cache.next_etag();
                    tx.prepare_cached(
                        "INSERT INTO state (store, key, value, etag, expires_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                         ON CONFLICT (store, key) DO UPDATE SET value = excluded.value, etag = excluded.etag, \
                         expires_at = excluded.expires_at, updated_at = excluded.updated_at",
                    )?
                    .execute(params![store, key, value, new_etag, expires, now])?;
                    written.push(Written::Set { key, value, etag: new_etag, expires_at: expires });
                }
                Op::Delete { key, etag } => {
                    if let Some(etag) = etag.as_deref().filter(|e| !e.is_empty()) {
                        let wanted = parse_etag(etag)?;
                        if get(&tx, store, key)?.is_none_or(|row| row.etag != wanted) {
                            return Err(StateError::Mismatch(original_key(key).to_owned()));
                        }
                    }
                    tx.prepare_cached("DELETE FROM state WHERE store = ?1 AND key = ?2")?
                        .execute(params![store, key])?;
                    written.push(Written::Delete { key });
                }
            }
        }
        let touched = pubsub::append(&tx, cache, messages, partitions)?;
        cache.save_etag(&tx)?;
        tx.commit()?;
        Ok(touched)
    })();
    match &result {
        // Only committed writes reach the Query API's mirror.
        Ok(_) => cache.mirrors.applied(store, &written),
        // Offsets handed out inside a rolled-back transaction are forgotten with it.
        Err(_) => {
            cache.last_etag = saved_etag;
            cache.next_offsets.clear();
            cache.partitions.clear();
        }
    }
    result
}

/// Deletes expired rows (Postgres v1 runs the same clean-up every `cleanupInterval`).
pub fn purge_expired(inner: &mut DbInner) -> rusqlite::Result<usize> {
    let now = now_ms();
    let purged = inner.conn.execute("DELETE FROM state WHERE expires_at IS NOT NULL AND expires_at <= ?1", [now])?;
    inner.cache.mirrors.purge(now);
    Ok(purged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_like_dapr() {
        assert_eq!(full_key(&KeyPrefix::AppId, "tasks", "app", "k").unwrap(), "app||k");
        assert_eq!(full_key(&KeyPrefix::Name, "tasks", "app", "k").unwrap(), "tasks||k");
        assert_eq!(full_key(&KeyPrefix::None, "tasks", "app", "k").unwrap(), "k");
        assert!(full_key(&KeyPrefix::None, "tasks", "app", "a||b").is_err());
        assert_eq!(original_key("tasks||task:1"), "task:1");
        assert_eq!(original_key("plain"), "plain");
    }
}
