//! The one SQLite file that holds everything devhost persists: state, the pub/sub log with its
//! consumer offsets, and scheduled jobs.
//!
//! Durability contract: every API call that changes something commits before it is answered.
//! The database runs in WAL mode with `synchronous=NORMAL`: a committed transaction survives
//! the devhost process being killed (`kill -9`) at any moment; only an operating-system crash
//! or power loss can lose the last transactions, which is acceptable for a development host.
//! `:memory:` gives a private in-memory database for tests.
//!
//! One connection, owned by one thread that runs the calls sent to it: SQLite serialises
//! writers anyway, and a single connection keeps the in-memory database shared. Calls are
//! short (one transaction each) and never wait on anything but SQLite.
//!
//! Group commit: calls that queued up while the thread was busy run together in one SQLite
//! transaction, each in a savepoint of its own (a call that fails rolls back only itself), and
//! are answered once that transaction has committed, so "committed before answered" holds for
//! each. Under load this turns hundreds of commits (WAL appends, lock calls, thread hand-offs)
//! into a few; alone, a call is a group of one. If the group's commit fails, every call of the
//! group gets the error and the in-memory counters are reloaded from the file.
//!
//! Reads that need nothing but the file (a state get, a batch of messages to deliver, a job)
//! go to reader threads with connections of their own instead ([`Db::read`]): WAL lets them
//! run beside the writer, and since a write is answered only after it committed, a read that
//! follows it sees it.
//!
//! Kept off those threads, because `make bench` showed them on the path of every message: WAL
//! checkpoints (the only `fsync`s under `synchronous=NORMAL`) run on a second connection in a
//! thread of their own instead of inside whichever commit crossed the threshold, and reads hit
//! a page cache sized for a development database, through a memory map, instead of a `pread`
//! per page past SQLite's default 2 MiB.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension as _};

pub(crate) const SCHEMA: &str = r"
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
-- The pub/sub log. `pubsub` is the cluster of the component used (crate::pubsub; before
-- clusters it was the component name, see pubsub::adopt_clusters).
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
-- The cluster each pub/sub component name was last started with (devhost peek, devhost lag).
CREATE TABLE IF NOT EXISTS pubsub_clusters (
    component TEXT PRIMARY KEY,
    cluster TEXT NOT NULL
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

/// The connection's page cache, in KiB (it grows to this as pages are read). The state table
/// takes inserts at random keys (task ids), so once it outgrows the cache every insert faults a
/// page in: a minute of `make bench` (300 MB of database) outgrew 64 MiB.
const CACHE_KIB: i64 = 256 * 1024;
/// How much of the database file is read through a memory map (address space, not memory).
const MMAP_BYTES: i64 = 1024 * 1024 * 1024;
/// Reader threads (and connections) of a database file.
const READERS: usize = 2;
/// Each reader's page cache, in KiB.
const READER_CACHE_KIB: i64 = 16 * 1024;
/// The most calls committed together.
const GROUP_MAX: usize = 128;
/// How often the checkpointer copies committed WAL frames into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// WAL frames (pages) past which the checkpointer makes the WAL start over (about 32 MiB).
const WAL_RESTART_FRAMES: i64 = 8192;

/// A blocking database task panicked or was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("database task failed: {0}")]
pub struct TaskFailed(pub String);

/// Counters kept in memory next to the connection (the connection is their only writer).
#[derive(Debug, Default)]
pub struct Cache {
    /// Last ETag handed out; persisted in `meta` by every transaction that uses one.
    pub last_etag: Option<i64>,
    /// Next offset per (cluster, topic, partition).
    pub next_offsets: HashMap<(String, String, u32), i64>,
    /// Partition count per (cluster, topic), fixed when the topic is first used.
    pub partitions: HashMap<(String, String), u32>,
    /// The Query API's in-memory copy of the stores it has queried, kept current by every write.
    pub mirrors: crate::query::Mirrors,
}

#[derive(Debug)]
pub struct DbInner {
    pub conn: Connection,
    pub cache: Cache,
}

/// A call queued for the database thread. Running it returns what answers the caller, given
/// the outcome of the transaction the call was committed in.
type Call = Box<dyn FnOnce(&mut DbInner) -> Answer + Send>;
type Answer = Box<dyn FnOnce(Result<(), &TaskFailed>) + Send>;
/// A read queued for the reader threads.
type Read = Box<dyn FnOnce(&Connection) + Send>;

/// A cheap-to-clone handle on the database.
#[derive(Debug, Clone)]
pub struct Db {
    calls: mpsc::Sender<Call>,
    /// `None` for `:memory:`, which no other connection can see: reads go to the writer.
    reads: Option<mpsc::Sender<Read>>,
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
        conn.pragma_update(None, "cache_size", -CACHE_KIB).context("sizing the page cache")?;
        conn.execute_batch(SCHEMA).with_context(|| format!("creating the schema in {path}"))?;
        let last_etag: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE name = 'etag'", [], |r| r.get(0))
            .optional()
            .context("reading the ETag counter")?;
        if path != ":memory:" {
            conn.pragma_update(None, "mmap_size", MMAP_BYTES).context("mapping the database file")?;
            // The checkpointer does it instead.
            conn.pragma_update(None, "wal_autocheckpoint", 0).context("turning off automatic checkpoints")?;
        }
        let cache = Cache { last_etag, ..Cache::default() };
        let (calls, queue) = mpsc::channel::<Call>();
        let open = Arc::new(());
        let mut reads = None;
        if path != ":memory:" {
            spawn_checkpointer(path, Arc::downgrade(&open))?;
            reads = Some(spawn_readers(path)?);
        }
        let inner = DbInner { conn, cache };
        std::thread::Builder::new()
            .name("devhost-db".into())
            .spawn(move || {
                let _open = open;
                serve(inner, &queue);
            })
            .context("starting the database thread")?;
        Ok(Self { calls, reads, path: path.to_owned() })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Runs `f` with the connection on the database thread, and answers once what it wrote
    /// is committed. `f` opens its own transaction with [`Connection::savepoint`] (not
    /// `transaction()`), so that it can run inside a group's transaction.
    pub async fn call<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&mut DbInner) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<TaskFailed> + Send + 'static,
    {
        self.call_then(f, |_| {}).await
    }

    /// As [`Db::call`], and once what `f` wrote is committed, runs `committed` with its result
    /// on the database thread, whether or not anyone still waits for the answer. That is where
    /// whatever must follow a commit belongs (waking the consumers of appended messages): a
    /// request handler is dropped when its client gives up, but a call it queued still commits.
    pub async fn call_then<R, E, F, C>(&self, f: F, committed: C) -> Result<R, E>
    where
        F: FnOnce(&mut DbInner) -> Result<R, E> + Send + 'static,
        C: FnOnce(&R) + Send + 'static,
        R: Send + 'static,
        E: From<TaskFailed> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let call: Call = Box::new(move |inner| {
            let result = f(inner);
            Box::new(move |outcome: Result<(), &TaskFailed>| {
                let result = match outcome {
                    Ok(()) => result,
                    Err(failed) => Err(E::from(TaskFailed(failed.0.clone()))),
                };
                if let Ok(value) = &result {
                    committed(value);
                }
                let _ = answer.send(result);
            })
        });
        self.calls.send(call).map_err(|_| E::from(TaskFailed("the database thread has stopped".into())))?;
        answered.await.map_err(|_| E::from(TaskFailed("the database call panicked".into())))?
    }

    /// Runs `f`, which only reads, on a reader connection: it sees every write answered before
    /// it was called.
    pub async fn read<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&Connection) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<TaskFailed> + Send + 'static,
    {
        let Some(reads) = &self.reads else { return self.call(move |inner| f(&inner.conn)).await };
        let (answer, answered) = tokio::sync::oneshot::channel();
        let read: Read = Box::new(move |conn| {
            let _ = answer.send(f(conn));
        });
        reads.send(read).map_err(|_| E::from(TaskFailed("the reader threads have stopped".into())))?;
        answered.await.map_err(|_| E::from(TaskFailed("the database read panicked".into())))?
    }
}

/// [`READERS`] threads, each with its own connection to `path`, taking reads from one queue
/// until every [`Db`] handle is gone.
fn spawn_readers(path: &str) -> anyhow::Result<mpsc::Sender<Read>> {
    let (reads, queue) = mpsc::channel::<Read>();
    let queue = Arc::new(Mutex::new(queue));
    for n in 0..READERS {
        let conn = Connection::open(path).with_context(|| format!("opening {path} for reading"))?;
        conn.busy_timeout(Duration::from_secs(5)).context("setting busy timeout")?;
        conn.pragma_update(None, "cache_size", -READER_CACHE_KIB).context("sizing the page cache")?;
        conn.pragma_update(None, "mmap_size", MMAP_BYTES).context("mapping the database file")?;
        let queue = queue.clone();
        std::thread::Builder::new()
            .name(format!("devhost-read-{n}"))
            .spawn(move || {
                loop {
                    // The lock is held only to take the next read, not while running it.
                    let next = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                    let Ok(read) = next else { return };
                    // A panicking read drops its answer: its caller hears of it.
                    let _ = catch_unwind(AssertUnwindSafe(|| read(&conn)));
                }
            })
            .context("starting a reader thread")?;
    }
    Ok(reads)
}

/// The database thread: runs calls until every [`Db`] handle is gone, committing the calls
/// that queued up meanwhile as one group.
fn serve(mut inner: DbInner, queue: &mpsc::Receiver<Call>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_MAX
            && let Ok(next) = queue.try_recv()
        {
            group.push(next);
        }
        // IMMEDIATE: a call waits (up to the busy timeout) for a write lock another process
        // holds, as a Postgres write waits for its locks, instead of failing at once when its
        // first write finds the lock taken.
        if inner.conn.execute_batch("BEGIN IMMEDIATE").is_err() {
            // The write lock is not to be had: each call runs by itself, so reads still answer
            // and writes fail with SQLite's error.
            for call in group {
                if let Some(answer) = run(&mut inner, call) {
                    answer(Ok(()));
                }
            }
            continue;
        }
        let answers: Vec<Answer> = group.into_iter().filter_map(|call| run(&mut inner, call)).collect();
        match inner.conn.execute_batch("COMMIT") {
            Ok(()) => answers.into_iter().for_each(|answer| answer(Ok(()))),
            Err(error) => {
                let _ = inner.conn.execute_batch("ROLLBACK");
                inner.cache.forget(&inner.conn);
                let failed = TaskFailed(format!("committing the transaction failed: {error}"));
                answers.into_iter().for_each(|answer| answer(Err(&failed)));
            }
        }
    }
}

/// Runs one call; `None` if it panicked (its caller then hears that from the dropped channel,
/// and a savepoint it held was rolled back while unwinding).
fn run(inner: &mut DbInner, call: Call) -> Option<Answer> {
    catch_unwind(AssertUnwindSafe(|| call(inner))).ok()
}

impl Cache {
    /// The next ETag: a global, strictly increasing integer, like Postgres' `xmin` that
    /// `state.postgresql` v1 uses (components-contrib `postgresql/v1/postgresql.go`).
    pub fn next_etag(&mut self) -> i64 {
        let next = self.last_etag.unwrap_or(0) + 1;
        self.last_etag = Some(next);
        next
    }

    /// Drops what was cached from a transaction that did not commit: counters are read from
    /// the file again when next needed.
    fn forget(&mut self, conn: &Connection) {
        self.last_etag = conn.query_row("SELECT value FROM meta WHERE name = 'etag'", [], |r| r.get(0)).ok();
        self.next_offsets.clear();
        self.partitions.clear();
        self.mirrors = crate::query::Mirrors::default();
    }

    /// Persists the ETag counter inside the caller's transaction.
    pub fn save_etag(&self, conn: &Connection) -> rusqlite::Result<()> {
        if let Some(last) = self.last_etag {
            conn.prepare_cached(
                "INSERT INTO meta (name, value) VALUES ('etag', ?1) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            )?
            .execute([last])?;
        }
        Ok(())
    }
}

/// Checkpoints the WAL of `path` every [`CHECKPOINT_EVERY`] on a connection of its own, for as
/// long as the database is open. `PASSIVE` neither waits for nor blocks readers and writers: it
/// copies what no reader still needs. But a writer starts the WAL over only when no reader is
/// using it, and under load some delivery loop always is: `make bench` saw the WAL grow to
/// 3 GB in 50 s and every read and write slow down with it. So once the WAL passes
/// [`WAL_RESTART_FRAMES`], `TRUNCATE` waits for the readers of the moment to finish (new
/// writers wait meanwhile, for the few frames `PASSIVE` left) and empties it.
fn spawn_checkpointer(path: &str, open: Weak<()>) -> anyhow::Result<()> {
    let conn = Connection::open(path).with_context(|| format!("opening {path} for the checkpointer"))?;
    conn.busy_timeout(Duration::from_secs(5)).context("setting busy timeout")?;
    let checkpoint = move |mode: &str| -> rusqlite::Result<i64> {
        // (busy, frames in the WAL, frames copied into the database file)
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get::<_, i64>(1))
    };
    std::thread::Builder::new()
        .name("devhost-checkpoint".into())
        .spawn(move || {
            while open.strong_count() > 0 {
                std::thread::sleep(CHECKPOINT_EVERY);
                let result = match checkpoint("PASSIVE") {
                    Ok(frames) if frames >= WAL_RESTART_FRAMES => checkpoint("TRUNCATE"),
                    other => other,
                };
                if let Err(error) = result {
                    tracing::warn!(%error, "WAL checkpoint failed; trying again");
                }
            }
        })
        .context("starting the checkpointer thread")?;
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{self, Op, StateError};

    fn set(key: String, etag: Option<&str>) -> Op {
        Op::Set { key, value: "1".into(), etag: etag.map(str::to_owned), first_write: false, ttl_secs: None }
    }

    /// Many concurrent calls (so that they queue up and commit as groups): each failing one
    /// leaves nothing behind, each succeeding one is all there, whatever group it shared.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn calls_committed_together_still_commit_or_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devhost.sqlite");
        let db = Db::open(path.to_str().unwrap()).unwrap();
        let calls = (0..400).map(|n| {
            let db = db.clone();
            tokio::spawn(async move {
                // Every third call is a transaction whose second operation has a stale ETag.
                let ops = if n % 3 == 0 {
                    vec![set(format!("bad-{n}"), None), set(format!("good-{}", n - 1), Some("999999"))]
                } else {
                    vec![set(format!("good-{n}"), None), set(format!("also-{n}"), None)]
                };
                db.call(move |inner| state::apply(inner, "s", &ops, &[], 1)).await.map(|_| ())
            })
        });
        let results: Vec<Result<(), StateError>> = join_all(calls).await;
        let failed = results.iter().filter(|r| matches!(r, Err(StateError::Mismatch(_)))).count();
        assert_eq!(failed, 134, "every stale transaction, and only those, failed");

        // Read back through another connection: only what was answered as committed is there.
        let conn = Connection::open(&path).unwrap();
        let keys: Vec<String> = column(&conn, "SELECT key FROM state WHERE store = 's' ORDER BY key");
        assert_eq!(keys.len(), 2 * (400 - 134), "{keys:?}");
        assert!(keys.iter().all(|k| !k.starts_with("bad-")), "a failed transaction left {keys:?}");
        let etags: std::collections::HashSet<i64> = column(&conn, "SELECT etag FROM state WHERE store = 's'");
        assert_eq!(etags.len(), keys.len(), "every write has its own ETag");
    }

    fn column<T: rusqlite::types::FromSql, C: FromIterator<T>>(conn: &Connection, sql: &str) -> C {
        conn.prepare(sql).unwrap().query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    }

    async fn join_all<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
        let mut out = Vec::new();
        for handle in handles.collect::<Vec<_>>() {
            out.push(handle.await.unwrap());
        }
        out
    }

    /// A read on a reader connection sees every write answered before it, each time; with
    /// `:memory:` (no other connection can see it) reads go to the writer and see the same.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_sees_every_write_answered_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = Db::open(dir.path().join("devhost.sqlite").to_str().unwrap()).unwrap();
        for db in [file, Db::open(":memory:").unwrap()] {
            for n in 0..200 {
                let ops = vec![Op::Set {
                    key: "k".into(),
                    value: n.to_string(),
                    etag: None,
                    first_write: false,
                    ttl_secs: None,
                }];
                db.call(move |inner| state::apply(inner, "s", &ops, &[], 1)).await.unwrap();
                let row = db.read(|conn| -> Result<_, StateError> { Ok(state::get(conn, "s", "k")?) }).await.unwrap();
                assert_eq!(row.map(|r| r.value), Some(n.to_string()), "{}", db.path());
            }
        }
    }

    /// A panicking call is reported to its caller and does not take the database thread down.
    #[tokio::test]
    async fn a_panicking_call_is_an_error_and_the_next_call_works() {
        let db = Db::open(":memory:").unwrap();
        let panicked: Result<(), TaskFailed> = db.call(|_| panic!("boom")).await;
        assert!(panicked.is_err());
        let ops = vec![set("k".into(), None)];
        db.call(move |inner| state::apply(inner, "s", &ops, &[], 1)).await.unwrap();
        let row = db.call(|inner| -> Result<_, StateError> { Ok(state::get(&inner.conn, "s", "k")?) }).await.unwrap();
        assert_eq!(row.map(|r| r.value), Some("1".to_owned()));
    }
}
