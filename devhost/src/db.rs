//! The one SQLite file that holds everything devhost persists: state, the pub/sub log with its
//! consumer offsets, and scheduled jobs.
//!
//! Durability contract: every API call that changes something commits before it is answered.
//! The database runs in WAL mode with `synchronous=NORMAL`: a committed transaction survives
//! the devhost process being killed (`kill -9`) at any moment; only an operating-system crash
//! or power loss can lose the last transactions, which is acceptable for a development host.
//! `:memory:` gives a private in-memory database for tests.
//!
//! One connection, behind a mutex, used from blocking tasks: SQLite serialises writers anyway,
//! and a single connection keeps the in-memory database shared. Calls are short (one
//! transaction each) so the mutex is never held across an await.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension as _};

const SCHEMA: &str = r"
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
    store TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    etag INTEGER NOT NULL,
    expires_at INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (store, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS topics (
    pubsub TEXT NOT NULL,
    topic TEXT NOT NULL,
    partitions INTEGER NOT NULL,
    PRIMARY KEY (pubsub, topic)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    pubsub TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    key TEXT,
    headers TEXT NOT NULL,
    content_type TEXT,
    body BLOB NOT NULL,
    published_at INTEGER NOT NULL,
    PRIMARY KEY (pubsub, topic, partition, offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsets (
    grp TEXT NOT NULL,
    pubsub TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (grp, pubsub, topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
    app_id TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    next_due INTEGER,
    triggered INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (app_id, name)
) WITHOUT ROWID;
";

/// A blocking database task panicked or was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("database task failed: {0}")]
pub struct TaskFailed(pub String);

/// Counters kept in memory next to the connection (the connection is their only writer).
#[derive(Debug, Default)]
pub struct Cache {
    /// Last ETag handed out; persisted in `meta` by every transaction that uses one.
    pub last_etag: Option<i64>,
    /// Next offset per (pubsub, topic, partition).
    pub next_offsets: HashMap<(String, String, u32), i64>,
    /// Partition count per (pubsub, topic), fixed when the topic is first used.
    pub partitions: HashMap<(String, String), u32>,
    /// The Query API's in-memory copy of the stores it has queried, kept current by every write.
    pub mirrors: crate::query::Mirrors,
}

#[derive(Debug)]
pub struct DbInner {
    pub conn: Connection,
    pub cache: Cache,
}

/// A cheap-to-clone handle on the database.
#[derive(Debug, Clone)]
pub struct Db {
    inner: Arc<Mutex<DbInner>>,
    path: String,
}

impl Db {
    /// Opens (creating if needed) the database at `path`, or a private in-memory one for
    /// `:memory:`.
    pub fn open(path: &str) -> anyhow::Result<Self> {
        if path != ":memory:"
            && let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
        }
        let conn = Connection::open(path).with_context(|| format!("opening SQLite database {path}"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).context("setting busy timeout")?;
        if path != ":memory:" {
            let mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .context("switching the database to WAL mode")?;
            if !mode.eq_ignore_ascii_case("wal") {
                anyhow::bail!("{path}: SQLite refused WAL mode (got {mode}); is it on a network file system?");
            }
        }
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF;").context("setting pragmas")?;
        conn.execute_batch(SCHEMA).with_context(|| format!("creating the schema in {path}"))?;
        let last_etag: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE name = 'etag'", [], |r| r.get(0))
            .optional()
            .context("reading the ETag counter")?;
        let cache = Cache { last_etag, ..Cache::default() };
        Ok(Self { inner: Arc::new(Mutex::new(DbInner { conn, cache })), path: path.to_owned() })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Runs `f` with the connection on a blocking thread.
    pub async fn call<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&mut DbInner) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<TaskFailed> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(|e| E::from(TaskFailed(e.to_string())))?
    }
}

impl Cache {
    /// The next ETag: a global, strictly increasing integer, like Postgres' `xmin` that
    /// `state.postgresql` v1 uses (components-contrib `postgresql/v1/postgresql.go`).
    pub fn next_etag(&mut self) -> i64 {
        let next = self.last_etag.unwrap_or(0) + 1;
        self.last_etag = Some(next);
        next
    }

    /// Persists the ETag counter inside the caller's transaction.
    pub fn save_etag(&self, conn: &Connection) -> rusqlite::Result<()> {
        if let Some(last) = self.last_etag {
            conn.execute(
                "INSERT INTO meta (name, value) VALUES ('etag', ?1) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                [last],
            )?;
        }
        Ok(())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
