//! State stores with `state.postgresql` v1 semantics, on the `state` table.
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

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension as _, params};
use serde_json::Value;

use crate::db::{DbInner, TaskFailed, now_ms};
use crate::pubsub::{self, NewMessage};
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
) -> Result<Vec<(String, String)>, StateError> {
    let DbInner { conn, cache } = inner;
    let saved_etag = cache.last_etag;
    let result = (|| {
        let tx = conn.transaction()?;
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
                }
            }
        }
        let touched = pubsub::append(&tx, cache, messages, partitions)?;
        cache.save_etag(&tx)?;
        tx.commit()?;
        Ok(touched)
    })();
    if result.is_err() {
        // Offsets handed out inside a rolled-back transaction are forgotten with it.
        cache.last_etag = saved_etag;
        cache.next_offsets.clear();
        cache.partitions.clear();
    }
    result
}

/// Every unexpired row of a store whose value is JSON, parsed, for the Query API. Values are
/// parsed once per ETag and kept in [`crate::db::Cache::parsed`]: every write gives a row a
/// new ETag, so a cached value is current exactly when its ETag is.
pub fn query_rows(inner: &mut DbInner, store: &str) -> rusqlite::Result<Vec<QueryHit>> {
    let DbInner { conn, cache } = inner;
    let now = now_ms();
    let mut keys_stmt = conn
        .prepare_cached("SELECT key, etag FROM state WHERE store = ?1 AND (expires_at IS NULL OR expires_at > ?2)")?;
    let keys = keys_stmt
        .query_map(params![store, now], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut value_stmt = conn.prepare_cached("SELECT value FROM state WHERE store = ?1 AND key = ?2")?;
    // Updated in place: an unchanged row costs a lookup, not a copy of its key.
    let parsed = cache.parsed.entry(store.to_owned()).or_default();
    let mut rows = Vec::with_capacity(keys.len());
    for (key, etag) in keys {
        let value = match parsed.get(&key) {
            Some((cached_etag, value)) if *cached_etag == etag => value.clone(),
            _ => {
                let text: String = value_stmt.query_row(params![store, key], |r| r.get(0))?;
                // Not JSON (a raw string or bytes): never matched by a query, as in v1.
                let Ok(value) = serde_json::from_str::<Value>(&text) else { continue };
                let value = Arc::new(value);
                parsed.insert(key.clone(), (etag, value.clone()));
                value
            }
        };
        rows.push((key, value, etag));
    }
    // Rows deleted or expired since the last query.
    if parsed.len() > rows.len() {
        let live: HashSet<&str> = rows.iter().map(|(key, _, _)| key.as_str()).collect();
        parsed.retain(|key, _| live.contains(key.as_str()));
    }
    Ok(rows)
}

/// Deletes expired rows (Postgres v1 runs the same clean-up every `cleanupInterval`).
pub fn purge_expired(conn: &Connection) -> rusqlite::Result<usize> {
    conn.execute("DELETE FROM state WHERE expires_at IS NOT NULL AND expires_at <= ?1", [now_ms()])
}

// ---------------------------------------------------------------------------------------------
// Query API (components-contrib `state/query` + `common/component/postgresql/v1/postgresql_query.go`)
// ---------------------------------------------------------------------------------------------

/// A parsed `POST /v1.0-alpha1/state/{store}/query` body.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub filter: Option<Filter>,
    /// (dotted path, descending)
    pub sort: Vec<(String, bool)>,
    pub limit: usize,
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare { op: CompareOp, path: String, value: Value },
    In { path: String, values: Vec<Value> },
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// Parses the query body. `Err` is a malformed request (400).
pub fn parse_query(body: &Value) -> Result<Query, String> {
    let Value::Object(map) = body else { return Err("the query must be a JSON object".to_owned()) };
    for key in map.keys() {
        if !matches!(key.as_str(), "filter" | "sort" | "page") {
            return Err(format!("unknown query field {key:?} (filter, sort, page)"));
        }
    }
    let filter = match map.get("filter") {
        None | Some(Value::Null) => None,
        Some(Value::Object(f)) if f.is_empty() => None,
        Some(f) => Some(parse_filter(f)?),
    };
    let mut sort = Vec::new();
    if let Some(items) = map.get("sort").filter(|v| !v.is_null()) {
        let Value::Array(items) = items else { return Err("`sort` must be a list".to_owned()) };
        for item in items {
            let key = item.get("key").and_then(Value::as_str).ok_or("every sort entry needs a `key`")?;
            let desc = match item.get("order").and_then(Value::as_str) {
                None | Some("ASC") | Some("") => false,
                Some("DESC") => true,
                Some(other) => return Err(format!("sort order {other:?} must be ASC or DESC")),
            };
            sort.push((key.to_owned(), desc));
        }
    }
    let (mut limit, mut offset) = (0, 0);
    if let Some(page) = map.get("page").filter(|v| !v.is_null()) {
        if let Some(l) = page.get("limit") {
            limit = l.as_u64().ok_or("page.limit must be a non-negative integer")? as usize;
        }
        if let Some(t) = page.get("token").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            offset = t.parse().map_err(|_| format!("page.token {t:?} is not a token this store issued"))?;
        }
    }
    Ok(Query { filter, sort, limit, offset })
}

fn parse_filter(value: &Value) -> Result<Filter, String> {
    let Value::Object(map) = value else { return Err("a filter must be an object".to_owned()) };
    if map.len() != 1 {
        return Err("a filter must have exactly one operator (EQ, NEQ, GT, GTE, LT, LTE, IN, AND, OR)".to_owned());
    }
    let Some((op, arg)) = map.iter().next() else { return Err("empty filter".to_owned()) };
    let single = |arg: &Value| -> Result<(String, Value), String> {
        match arg {
            Value::Object(m) if m.len() == 1 => {
                m.iter().next().map(|(k, v)| (k.clone(), v.clone())).ok_or_else(|| format!("{op} needs one field"))
            }
            _ => Err(format!("{op} takes an object with exactly one field")),
        }
    };
    let compare = |cmp: CompareOp| -> Result<Filter, String> {
        let (path, value) = single(arg)?;
        Ok(Filter::Compare { op: cmp, path, value })
    };
    match op.as_str() {
        "EQ" => compare(CompareOp::Eq),
        "NEQ" => compare(CompareOp::Neq),
        "GT" => compare(CompareOp::Gt),
        "GTE" => compare(CompareOp::Gte),
        "LT" => compare(CompareOp::Lt),
        "LTE" => compare(CompareOp::Lte),
        "IN" => {
            let (path, values) = single(arg)?;
            let Value::Array(values) = values else { return Err("IN takes a list of values".to_owned()) };
            if values.is_empty() {
                return Err(format!("empty IN operator for key {path:?}"));
            }
            Ok(Filter::In { path, values })
        }
        "AND" | "OR" => {
            let Value::Array(items) = arg else { return Err(format!("{op} takes a list of filters")) };
            if items.is_empty() {
                return Err(format!("{op} needs at least one filter"));
            }
            let filters = items.iter().map(parse_filter).collect::<Result<Vec<_>, _>>()?;
            Ok(if op == "AND" { Filter::And(filters) } else { Filter::Or(filters) })
        }
        other => Err(format!("unsupported filter operator {other:?}")),
    }
}

/// Checks what Postgres v1 refuses when building the SQL (ordering operators on strings).
/// `Err` is a query failure (500).
pub fn check_query(query: &Query) -> Result<(), String> {
    fn walk(f: &Filter) -> Result<(), String> {
        match f {
            Filter::Compare { op, value: Value::String(s), .. } if !matches!(op, CompareOp::Eq | CompareOp::Neq) => {
                Err(format!("unsupported type of value {s}; string type not permitted"))
            }
            Filter::And(items) | Filter::Or(items) => items.iter().try_for_each(walk),
            _ => Ok(()),
        }
    }
    query.filter.as_ref().map_or(Ok(()), walk)
}

/// Postgres `value->'a'->>'b'`: the text of the value at a dotted path, `None` for SQL NULL.
fn text_at(value: &Value, path: &str) -> Option<String> {
    let mut v = value;
    for part in path.split('.') {
        v = v.as_object()?.get(part)?;
    }
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Go's `fmt.Sprintf("%v", x)` of a JSON-decoded value: how v1 binds filter parameters.
fn go_format(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{}", f as i64),
            Some(f) => format!("{f}"),
            None => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// SQL three-valued logic collapsed to "row selected or not".
fn matches(filter: &Filter, value: &Value) -> bool {
    match filter {
        Filter::Compare { op, path, value: wanted } => {
            let Some(actual) = text_at(value, path) else { return false };
            let wanted = go_format(wanted);
            let ord = actual.as_str().cmp(wanted.as_str());
            match op {
                CompareOp::Eq => ord == Ordering::Equal,
                CompareOp::Neq => ord != Ordering::Equal,
                CompareOp::Gt => ord == Ordering::Greater,
                CompareOp::Gte => ord != Ordering::Less,
                CompareOp::Lt => ord == Ordering::Less,
                CompareOp::Lte => ord != Ordering::Greater,
            }
        }
        Filter::In { path, values } => {
            let Some(actual) = text_at(value, path) else { return false };
            values.iter().any(|v| go_format(v) == actual)
        }
        Filter::And(items) => items.iter().all(|f| matches(f, value)),
        Filter::Or(items) => items.iter().any(|f| matches(f, value)),
    }
}

/// One result: stored key, value, ETag.
pub type QueryHit = (String, Arc<Value>, i64);

/// Runs a query over the rows of a store. Comparisons and sorting are on the *text* of the
/// value at each path, as `state.postgresql` v1 does (`->>` yields text, parameters are bound
/// as text): `"10" < "9"`, and numbers compare as strings. Postgres puts NULLs last in ASC order
/// and first in DESC order; rows that tie are ordered by key so that pages are stable. The
/// continuation token is the offset of the next page, returned whenever a limit is set (also
/// on the last page: the next call then has no results), exactly like v1.
pub fn run_query(rows: Vec<QueryHit>, query: &Query) -> (Vec<QueryHit>, Option<String>) {
    // The sort keys of each hit, computed once rather than at every comparison.
    let mut hits: Vec<(Vec<Option<String>>, QueryHit)> = rows
        .into_iter()
        .filter(|(_, v, _)| query.filter.as_ref().is_none_or(|f| matches(f, v)))
        .map(|hit| (query.sort.iter().map(|(path, _)| text_at(&hit.1, path)).collect(), hit))
        .collect();
    hits.sort_by(|(keys_a, a), (keys_b, b)| {
        for ((x, y), (_, desc)) in keys_a.iter().zip(keys_b).zip(&query.sort) {
            let ord = match (x, y) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(x), Some(y)) => x.cmp(y),
            };
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        a.0.cmp(&b.0)
    });
    let hits = hits.into_iter().map(|(_, hit)| hit);
    let page: Vec<QueryHit> =
        hits.skip(query.offset).take(if query.limit > 0 { query.limit } else { usize::MAX }).collect();
    let token = (query.limit > 0).then(|| (query.offset + page.len()).to_string());
    (page, token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_prefixed_like_dapr() {
        assert_eq!(full_key(&KeyPrefix::AppId, "tasks", "app", "k").unwrap(), "app||k");
        assert_eq!(full_key(&KeyPrefix::Name, "tasks", "app", "k").unwrap(), "tasks||k");
        assert_eq!(full_key(&KeyPrefix::None, "tasks", "app", "k").unwrap(), "k");
        assert!(full_key(&KeyPrefix::None, "tasks", "app", "a||b").is_err());
        assert_eq!(original_key("tasks||task:1"), "task:1");
        assert_eq!(original_key("plain"), "plain");
    }

    #[test]
    fn filters_compare_text_like_postgres_v1() {
        let v = json!({"n": 10, "s": "open", "b": true, "o": {"x": "y"}});
        let q = |f: Value| matches(&parse_filter(&f).unwrap(), &v);
        assert!(q(json!({"EQ": {"n": 10}})));
        assert!(q(json!({"EQ": {"n": "10"}})));
        assert!(q(json!({"EQ": {"b": true}})));
        assert!(q(json!({"EQ": {"o.x": "y"}})));
        assert!(!q(json!({"EQ": {"missing": "y"}})));
        assert!(!q(json!({"NEQ": {"missing": "y"}})));
        assert!(q(json!({"IN": {"s": ["closed", "open"]}})));
        assert!(q(json!({"AND": [{"EQ": {"s": "open"}}, {"OR": [{"EQ": {"n": 1}}, {"EQ": {"n": 10}}]}]})));
        // Text comparison: "10" < "9".
        assert!(q(json!({"LT": {"n": 9}})));
    }
}
