//! The Query API (`POST /v1.0-alpha1/state/{store}/query`) with `state.postgresql` v1 semantics
//! ([`query_model`], the model the functions' test stub answers from too),
//! answered from an in-memory mirror of each queried store.
//!
//! Why a mirror: v1 runs one SQL statement per page and Postgres answers it from its buffer
//! cache. devhost used to re-read, re-filter and re-sort the whole store for every page, so a
//! list over 10,000 tasks read in 500-row pages cost ~24 ms a page (`make bench`). Now:
//! - [`Mirrors`] holds each queried store's rows with their values parsed once. Writes through
//!   [`crate::state::apply`] update it after they commit (a rolled-back transaction never
//!   reaches it), and SQLite's `PRAGMA data_version`, which changes exactly when *another*
//!   connection commits, makes it reload after anyone else wrote the file.
//! - The filtered, sorted result of the last few query shapes (filter + sort) is kept per store
//!   until the store changes or one of its rows reaches its TTL, so following continuation
//!   tokens costs one slice per page, not one sort per page.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use rusqlite::{Connection, params};
use serde_json::Value;

pub use query_model::{Filter, Query, check_query, parse_query};
use query_model::{compare, matches, text_at};

use crate::db::{DbInner, now_ms};

/// Query shapes whose sorted results are kept per store: enough for a few users paging at once.
const SHAPES_KEPT: usize = 8;

/// One result: stored key, value, ETag. Cheap to clone.
pub type QueryHit = (Arc<str>, Arc<Value>, i64);

/// The in-memory mirrors of the stores queried so far, owned by [`crate::db::Cache`].
#[derive(Debug, Default)]
pub struct Mirrors {
    stores: HashMap<String, Mirror>,
    /// SQLite's `data_version` when the mirrors were last known to match the file.
    data_version: Option<i64>,
}

/// One store's rows, as committed.
#[derive(Debug, Default)]
struct Mirror {
    rows: HashMap<Arc<str>, Stored>,
    /// Bumped by every change to `rows`: a kept result is current exactly when its generation is.
    generation: u64,
    /// The most recently used query shapes first.
    sorted: VecDeque<Sorted>,
}

#[derive(Debug)]
struct Stored {
    etag: i64,
    expires_at: Option<i64>,
    /// `None` when the value is not JSON (a raw string or bytes): v1 never matches those.
    value: Option<Arc<Value>>,
}

/// The filtered, sorted rows of one query shape, before paging.
#[derive(Debug)]
struct Sorted {
    filter: Option<Filter>,
    sort: Vec<(String, bool)>,
    generation: u64,
    /// The first TTL expiry among the store's rows: the result is stale from then on.
    valid_until: i64,
    hits: Arc<[QueryHit]>,
}

/// A committed change to one row, as [`crate::state::apply`] reports it.
#[derive(Debug)]
pub enum Written<'a> {
    Set { key: &'a str, value: &'a str, etag: i64, expires_at: Option<i64> },
    Delete { key: &'a str },
}

impl Stored {
    fn new(value: &str, etag: i64, expires_at: Option<i64>) -> Self {
        let value = serde_json::from_str::<Value>(value).ok().map(Arc::new);
        Self { etag, expires_at, value }
    }
}

impl Mirrors {
    /// Records committed writes to `store`. A store not mirrored yet is left alone: it is
    /// loaded in full by its first query.
    pub fn applied(&mut self, store: &str, writes: &[Written<'_>]) {
        let Some(mirror) = self.stores.get_mut(store) else { return };
        if writes.is_empty() {
            return;
        }
        for write in writes {
            match *write {
                Written::Set { key, value, etag, expires_at } => {
                    mirror.rows.insert(Arc::from(key), Stored::new(value, etag, expires_at));
                }
                Written::Delete { key } => {
                    mirror.rows.remove(key);
                }
            }
        }
        mirror.generation += 1;
        mirror.sorted.clear();
    }

    /// Forgets rows whose TTL has passed (they were already invisible to queries).
    pub fn purge(&mut self, now: i64) {
        for mirror in self.stores.values_mut() {
            mirror.rows.retain(|_, row| row.expires_at.is_none_or(|e| e > now));
        }
    }
}

/// Answers `query` over `store`: one page and v1's continuation token.
pub fn run(inner: &mut DbInner, store: &str, query: &Query) -> rusqlite::Result<(Vec<QueryHit>, Option<String>)> {
    let DbInner { conn, cache } = inner;
    let mirrors = &mut cache.mirrors;
    let version: i64 = conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
    if mirrors.data_version != Some(version) {
        // Another connection committed: any mirror may be stale.
        mirrors.stores.clear();
        mirrors.data_version = Some(version);
    }
    let mirror = match mirrors.stores.entry(store.to_owned()) {
        Entry::Occupied(entry) => entry.into_mut(),
        Entry::Vacant(entry) => entry.insert(load(conn, store)?),
    };
    let hits = mirror.sorted(query, now_ms());
    Ok(page(&hits, query))
}

fn load(conn: &Connection, store: &str) -> rusqlite::Result<Mirror> {
    let mut stmt = conn.prepare("SELECT key, value, etag, expires_at FROM state WHERE store = ?1")?;
    let rows = stmt
        .query_map(params![store], |r| {
            let key: String = r.get(0)?;
            let value: String = r.get(1)?;
            Ok((Arc::from(key), Stored::new(&value, r.get(2)?, r.get(3)?)))
        })?
        .collect::<rusqlite::Result<HashMap<_, _>>>()?;
    Ok(Mirror { rows, ..Mirror::default() })
}

/// A selected row with its sort keys, borrowed from the mirror while sorting.
type Candidate<'m> = (Vec<Option<Cow<'m, str>>>, &'m Arc<str>, &'m Arc<Value>, i64);

impl Mirror {
    /// The rows `query` selects, in its order, from the kept results when still current.
    fn sorted(&mut self, query: &Query, now: i64) -> Arc<[QueryHit]> {
        let kept = self.sorted.iter().position(|s| {
            s.generation == self.generation && now < s.valid_until && s.filter == query.filter && s.sort == query.sort
        });
        if let Some(at) = kept
            && let Some(sorted) = self.sorted.remove(at)
        {
            let hits = sorted.hits.clone();
            self.sorted.push_front(sorted);
            return hits;
        }
        let mut valid_until = i64::MAX;
        let mut hits: Vec<Candidate<'_>> = Vec::new();
        for (key, row) in &self.rows {
            if let Some(expires) = row.expires_at {
                if expires <= now {
                    continue;
                }
                valid_until = valid_until.min(expires);
            }
            let Some(value) = &row.value else { continue };
            if query.filter.as_ref().is_none_or(|f| matches(f, value)) {
                let sort_keys = query.sort.iter().map(|(path, _)| text_at(value, path)).collect();
                hits.push((sort_keys, key, value, row.etag));
            }
        }
        hits.sort_unstable_by(|(keys_a, key_a, ..), (keys_b, key_b, ..)| {
            compare(keys_a, keys_b, &query.sort).then_with(|| key_a.cmp(key_b))
        });
        let hits: Arc<[QueryHit]> =
            hits.into_iter().map(|(_, key, value, etag)| (key.clone(), value.clone(), etag)).collect();
        self.sorted.push_front(Sorted {
            filter: query.filter.clone(),
            sort: query.sort.clone(),
            generation: self.generation,
            valid_until,
            hits: hits.clone(),
        });
        self.sorted.truncate(SHAPES_KEPT);
        hits
    }
}

/// Cuts one page out of the selected rows. Comparisons and sorting are on the *text* of the
/// value at each path, as `state.postgresql` v1 does (`->>` yields text, parameters are bound
/// as text): `"10" < "9"`, and numbers compare as strings. Rows that tie are ordered by key so
/// that pages are stable. The continuation token is the offset of the next page, returned
/// whenever a limit is set (also on the last page: the next call then has no results), exactly
/// like v1.
fn page(hits: &[QueryHit], query: &Query) -> (Vec<QueryHit>, Option<String>) {
    let rest = hits.get(query.offset..).unwrap_or_default();
    let page = &rest[..if query.limit > 0 { query.limit.min(rest.len()) } else { rest.len() }];
    let token = (query.limit > 0).then(|| (query.offset + page.len()).to_string());
    (page.to_vec(), token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn db() -> (tempfile::TempDir, crate::db::Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::open(dir.path().join("devhost.sqlite").to_str().unwrap()).unwrap();
        (dir, db)
    }

    fn set(key: &str, value: Value, ttl_secs: Option<i64>) -> crate::state::Op {
        crate::state::Op::Set { key: key.into(), value: value.to_string(), etag: None, first_write: false, ttl_secs }
    }

    fn keys(inner: &mut DbInner, q: Value) -> Vec<String> {
        let query = parse_query(&q).unwrap();
        run(inner, "s", &query).unwrap().0.iter().map(|(k, _, _)| k.to_string()).collect()
    }

    async fn with<R: Send + 'static>(db: &crate::db::Db, f: impl FnOnce(&mut DbInner) -> R + Send + 'static) -> R {
        db.call(move |inner| Ok::<_, crate::db::TaskFailed>(f(inner))).await.unwrap()
    }

    #[tokio::test]
    async fn kept_results_follow_every_committed_write_and_no_rolled_back_one() {
        let (_dir, db) = db();
        let by_rank = json!({"filter": {"EQ": {"owner": "a"}}, "sort": [{"key": "rank"}], "page": {"limit": 2}});
        let q = by_rank.clone();
        let first = with(&db, move |inner| {
            let ops = [
                set("k1", json!({"owner": "a", "rank": "2"}), None),
                set("k2", json!({"owner": "a", "rank": "1"}), None),
            ];
            crate::state::apply(inner, "s", &ops, &[], 1).unwrap();
            keys(inner, q)
        })
        .await;
        assert_eq!(first, ["k2", "k1"]);

        let q = by_rank.clone();
        let after = with(&db, move |inner| {
            // A write between pages is seen by the next page, as a new SQL statement would see it.
            crate::state::apply(inner, "s", &[set("k3", json!({"owner": "a", "rank": "0"}), None)], &[], 1).unwrap();
            crate::state::apply(inner, "s", &[crate::state::Op::Delete { key: "k2".into(), etag: None }], &[], 1)
                .unwrap();
            // A transaction that fails half-way changes nothing, in SQLite or in the mirror.
            let failing = [
                set("k4", json!({"owner": "a", "rank": "00"}), None),
                crate::state::Op::Delete { key: "k1".into(), etag: Some("999999".into()) },
            ];
            assert!(crate::state::apply(inner, "s", &failing, &[], 1).is_err());
            keys(inner, q)
        })
        .await;
        assert_eq!(after, ["k3", "k1"]);
    }

    #[tokio::test]
    async fn a_write_by_another_connection_is_seen() {
        let (dir, db) = db();
        let q = json!({"filter": {"EQ": {"owner": "a"}}});
        let before = with(&db, {
            let q = q.clone();
            move |inner| {
                crate::state::apply(inner, "s", &[set("k1", json!({"owner": "a"}), None)], &[], 1).unwrap();
                keys(inner, q)
            }
        })
        .await;
        assert_eq!(before, ["k1"]);
        // `devhost` is the only writer in normal use; a second process on the same file is not.
        let other = Connection::open(dir.path().join("devhost.sqlite")).unwrap();
        other
            .execute(
                "INSERT INTO state (store, key, value, etag, updated_at) VALUES ('s', 'k0', '{\"owner\":\"a\"}', 99, 0)",
                [],
            )
            .unwrap();
        assert_eq!(with(&db, move |inner| keys(inner, q)).await, ["k0", "k1"]);
    }

    #[tokio::test]
    async fn a_row_past_its_ttl_leaves_kept_results() {
        let (_dir, db) = db();
        let q = json!({"sort": [{"key": "n"}]});
        let (before, after) = with(&db, move |inner| {
            let ops = [set("short", json!({"n": "1"}), Some(1)), set("long", json!({"n": "2"}), None)];
            crate::state::apply(inner, "s", &ops, &[], 1).unwrap();
            let before = keys(inner, q.clone());
            std::thread::sleep(std::time::Duration::from_millis(1100));
            (before, keys(inner, q))
        })
        .await;
        assert_eq!(before, ["short", "long"]);
        assert_eq!(after, ["long"]);
    }

    #[test]
    fn pages_slice_the_sorted_rows_and_always_carry_a_token_with_a_limit() {
        let hit = |k: &str| (Arc::from(k), Arc::new(json!(k)), 1);
        let hits = [hit("a"), hit("b"), hit("c")];
        let q = |limit, offset| Query { filter: None, sort: vec![], limit, offset, refused: None };
        let keys = |(page, token): (Vec<QueryHit>, Option<String>)| {
            (page.iter().map(|(k, _, _)| k.to_string()).collect::<Vec<_>>(), token)
        };
        assert_eq!(keys(page(&hits, &q(2, 0))), (vec!["a".into(), "b".into()], Some("2".into())));
        assert_eq!(keys(page(&hits, &q(2, 2))), (vec!["c".into()], Some("3".into())));
        assert_eq!(keys(page(&hits, &q(2, 3))), (vec![], Some("3".into())));
        assert_eq!(keys(page(&hits, &q(0, 7))), (vec![], None));
        assert_eq!(keys(page(&hits, &q(0, 1))), (vec!["b".into(), "c".into()], None));
    }
}
