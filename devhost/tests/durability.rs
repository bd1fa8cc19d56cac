//! Restarts with the same database file keep state, unsettled messages and offsets: settled
//! messages are not delivered again, unsettled ones are (at-least-once). And
//! `--duplicate-delivery` delivers every message twice.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{FakeApp, Sidecar, subscription};
use devhost::{AppSpec, Devhost};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);

async fn start(app: &FakeApp, db: &str, duplicate: bool) -> Devhost {
    Devhost::builder()
        .resources_yaml(common::PUBSUB)
        .resources_yaml(common::state_store("s", ""))
        .app(AppSpec::new("a", app.port))
        .database(db)
        .duplicate_delivery(duplicate)
        .start()
        .await
        .unwrap()
}

/// An app subscribed to `t` that answers RETRY until the flag is set, then SUCCESS.
async fn gated_app() -> (FakeApp, Arc<AtomicBool>) {
    let app = FakeApp::start(Some(json!([subscription("t", "/in", None)]))).await;
    let accept = Arc::new(AtomicBool::new(false));
    let gate = accept.clone();
    app.respond(move |_| {
        let status = if gate.load(Ordering::SeqCst) { "SUCCESS" } else { "RETRY" };
        (200, json!({ "status": status }).to_string())
    });
    (app, accept)
}

/// SQLite's write lock on a database, taken from another connection (as another process would).
struct WriteLock {
    release: std::sync::mpsc::Sender<()>,
    holder: tokio::task::JoinHandle<()>,
}

/// Takes SQLite's write lock on `db` and returns once it holds it, until [`WriteLock::release`].
fn hold_write_lock(db: &str) -> WriteLock {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let holder = tokio::task::spawn_blocking(move || {
        let _ = released.recv();
        conn.execute_batch("ROLLBACK").unwrap();
    });
    WriteLock { release, holder }
}

impl WriteLock {
    /// Releases the lock; returns once it is released.
    async fn release(self) {
        self.release.send(()).unwrap();
        self.holder.await.unwrap();
    }
}

/// What devhost logs at `warn` and above in this test binary, from the first call on.
fn warnings() -> String {
    static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    struct Sink;
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            LOG.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(|| Sink)
            .try_init()
            .unwrap();
    });
    String::from_utf8_lossy(&LOG.lock().unwrap()).into_owned()
}

#[tokio::test]
async fn a_restart_keeps_state_and_redelivers_only_unsettled_messages() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dh.sqlite").display().to_string();
    let app = FakeApp::start(Some(json!([subscription("t", "/in", None)]))).await;
    let stuck = Arc::new(AtomicBool::new(true));
    let s2 = stuck.clone();
    // "stuck" messages fail (no dead-letter topic: Kafka retries them forever) until released.
    app.respond(move |r| {
        if r.json()["data"]["stuck"] == true && s2.load(Ordering::SeqCst) {
            (500, String::new())
        } else {
            (200, String::new())
        }
    });

    let d = start(&app, &db, false).await;
    let s = Sidecar::new(d.sidecar_url("a"));
    for i in 0..5 {
        assert_eq!(s.publish("pubsub", "t", &json!({"i": i}), &[("partitionKey", "settled")]).await, 204);
    }
    assert_eq!(s.publish("pubsub", "t", &json!({"stuck": true}), &[("partitionKey", "blocked")]).await, 204);
    assert_eq!(s.post_json("/v1.0/state/s", &json!([{"key": "k", "value": {"kept": true}}])).await.status, 204);
    app.wait_posts("/in", 7, WAIT).await; // 5 settled + at least 2 attempts of the stuck one
    let etag = s.get("/v1.0/state/s/k").await.header("etag").unwrap().to_owned();
    d.shutdown().await;

    stuck.store(false, Ordering::SeqCst);
    let before = app.posts("/in").len();
    let d = start(&app, &db, false).await;
    let s = Sidecar::new(d.sidecar_url("a"));
    let got = app.wait_posts("/in", before + 1, WAIT).await;
    assert_eq!(got[before].json()["data"]["stuck"], true, "the unsettled message is delivered again");
    // Every message settled and committed: nothing more can be delivered again.
    common::wait_caught_up(&db, "pubsub", &[("a", "t")], WAIT).await;
    let after: Vec<_> = app.posts("/in").into_iter().skip(before).collect();
    assert_eq!(after.len(), 1, "settled messages are not redelivered");
    let state = s.get("/v1.0/state/s/k").await;
    assert_eq!(state.json(), json!({"kept": true}));
    assert_eq!(state.header("etag"), Some(etag.as_str()));
    // ETags keep increasing across restarts.
    s.post_json("/v1.0/state/s", &json!([{"key": "k", "value": 2}])).await;
    let new_etag: u64 = s.get("/v1.0/state/s/k").await.header("etag").unwrap().parse().unwrap();
    assert!(new_etag > etag.parse().unwrap());
    // New messages continue after the old offsets.
    s.publish("pubsub", "t", &json!({"i": 99}), &[("partitionKey", "settled")]).await;
    let last = app.wait_posts("/in", before + 2, WAIT).await;
    assert_eq!(last[before + 1].header("__offset"), Some("5"));
    d.shutdown().await;
}

#[tokio::test]
async fn new_consumer_groups_start_at_the_oldest_message_or_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dh.sqlite").display().to_string();
    let newest = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: late}\nspec:\n  type: pubsub.kafka\n  version: v1\n  metadata:\n    - {name: initialOffset, value: newest}\n";
    let publisher = FakeApp::start(None).await;
    let d = Devhost::builder()
        .resources_yaml(common::PUBSUB)
        .resources_yaml(newest)
        .app(AppSpec::new("p", publisher.port))
        .database(&db)
        .start()
        .await
        .unwrap();
    let s = Sidecar::new(d.sidecar_url("p"));
    // History on both components before either consumer group exists.
    s.publish("pubsub", "t", &json!({"early": true}), &[]).await;
    s.publish("late", "t", &json!({"early": true}), &[]).await;
    d.shutdown().await;

    let oldest_app = FakeApp::start(Some(json!([subscription("t", "/in", None)]))).await;
    let newest_app =
        FakeApp::start(Some(json!([{"pubsubname": "late", "topic": "t", "routes": {"default": "/in"}}]))).await;
    let d = Devhost::builder()
        .resources_yaml(common::PUBSUB)
        .resources_yaml(newest)
        .app(AppSpec::new("p", publisher.port))
        .app(AppSpec::new("old", oldest_app.port))
        .app(AppSpec::new("new", newest_app.port))
        .database(&db)
        .start()
        .await
        .unwrap();
    let s = Sidecar::new(d.sidecar_url("p"));
    assert_eq!(
        oldest_app.wait_posts("/in", 1, WAIT).await[0].json()["data"]["early"],
        true,
        "initialOffset oldest replays"
    );
    s.publish("late", "t", &json!({"late": true}), &[]).await;
    let got = newest_app.wait_posts("/in", 1, WAIT).await;
    assert_eq!(got[0].json()["data"]["late"], true);
    // The group is at the end of the topic: the history it skipped cannot come any more.
    common::wait_caught_up(&db, "late", &[("new", "t")], WAIT).await;
    assert_eq!(newest_app.posts("/in").len(), 1, "initialOffset newest skips history");
    d.shutdown().await;
}

#[tokio::test]
async fn duplicate_delivery_delivers_every_message_twice() {
    let app = FakeApp::start(Some(json!([subscription("t", "/in", None)]))).await;
    let db = common::TempDb::new();
    let d = start(&app, &db.path, true).await;
    let s = Sidecar::new(d.sidecar_url("a"));
    for i in 0..3 {
        s.publish("pubsub", "t", &json!({"i": i}), &[("partitionKey", "k")]).await;
    }
    let got = app.wait_posts("/in", 6, WAIT).await;
    let ids: Vec<String> = got.iter().map(|r| r.json()["id"].as_str().unwrap().to_owned()).collect();
    for pair in ids.chunks(2) {
        assert_eq!(pair[0], pair[1], "the same event twice");
    }
    assert_eq!(got[0].header("__offset"), got[1].header("__offset"));
    // Every message settled and committed: none comes a third time.
    common::wait_caught_up(&db.path, "pubsub", &[("a", "t")], WAIT).await;
    assert_eq!(app.posts("/in").len(), 6);
    d.shutdown().await;
}

#[tokio::test]
async fn peek_reads_a_topic_without_consuming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("peek.sqlite").display().to_string();
    let app = FakeApp::start(Some(json!([]))).await;
    let d = Devhost::builder()
        .resources_yaml(common::PUBSUB)
        .database(&db)
        .app(AppSpec::new("p", app.port))
        .start()
        .await
        .unwrap();
    let s = Sidecar::new(d.sidecar_url("p"));
    for n in 0..3 {
        assert_eq!(s.publish("pubsub", "dead", &json!({"n": n}), &[("partitionKey", "k")]).await, 204);
    }
    let seen = devhost::peek::messages(&db, "pubsub", "dead").unwrap();
    assert_eq!(seen.iter().map(|m| m.body["data"]["n"].as_i64().unwrap()).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert!(seen.iter().all(|m| m.key.as_deref() == Some("k")));
    assert!(devhost::peek::messages(&db, "pubsub", "other").unwrap().is_empty());
    d.shutdown().await;
}

#[tokio::test]
async fn lag_and_state_can_be_read_while_devhost_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lag.sqlite").display().to_string();
    let (app, accept) = gated_app().await;
    let d = start(&app, &db, false).await;
    let s = Sidecar::new(d.sidecar_url("a"));
    for n in 0..3 {
        assert_eq!(s.publish("pubsub", "t", &json!({"n": n}), &[("partitionKey", "k")]).await, 204);
    }
    let save = json!([{"key": "audit:1", "value": {"n": 1}}, {"key": "other", "value": 2}]);
    assert_eq!(s.post_json("/v1.0/state/s", &save).await.status, 204);

    let lag = || devhost::peek::lag(&db, "pubsub").unwrap();
    common::eventually(WAIT, "the group to start consuming", || lag().iter().any(|l| l.group == "a")).await;
    assert_eq!(lag().iter().map(|l| (l.group.as_str(), l.topic.as_str(), l.lag)).collect::<Vec<_>>(), [("a", "t", 3)]);
    let entries = devhost::peek::state(&db, "s", "audit:").unwrap();
    assert_eq!(entries, [("audit:1".to_owned(), json!({"n": 1}))]);

    accept.store(true, Ordering::SeqCst);
    common::eventually(WAIT, "the lag to drain", || lag().iter().all(|l| l.lag == 0)).await;
    d.shutdown().await;
}

/// A consumer offset whose commit fails (the store refuses writes for longer than the busy
/// timeout) is committed again once the store is back, although nothing new arrives on the
/// partition: the lag reaches zero and stays there, as a Kafka consumer's periodic commit of
/// marked offsets would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offset_commit_that_failed_is_retried_on_a_quiet_partition() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("outage.sqlite").display().to_string();
    let (app, accept) = gated_app().await;
    let d = start(&app, &db, false).await;
    let s = Sidecar::new(d.sidecar_url("a"));
    assert_eq!(s.publish("pubsub", "t", &json!({"n": 1}), &[("partitionKey", "k")]).await, 204);
    app.wait_posts("/in", 1, WAIT).await;

    // Another process takes SQLite's write lock; the message is then answered SUCCESS, and
    // devhost's commit of its offset fails after the 5 s busy timeout.
    let failed = "committing the consumer offset failed";
    let failures_before = warnings().matches(failed).count();
    let lock = hold_write_lock(&db);
    let attempts = app.posts("/in").len();
    accept.store(true, Ordering::SeqCst);
    app.wait_posts("/in", attempts + 1, WAIT).await;
    common::wait_for(Duration::from_secs(15), "devhost's commit of the offset to fail on the lock", || {
        let log = warnings();
        if log.matches(failed).count() > failures_before { Ok(()) } else { Err(format!("warnings: {log}")) }
    })
    .await;
    // A publish that waits for the lock and commits as it is released.
    let publisher = s.clone();
    let late =
        tokio::spawn(async move { publisher.publish("pubsub", "t", &json!({"n": 2}), &[("partitionKey", "k")]).await });
    // Time is the fact: the publish must reach the lock and wait for it (BEGIN IMMEDIATE, up to
    // the busy timeout) before it is released, and nothing shows a write waiting for a lock.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    lock.release().await;
    assert_eq!(late.await.unwrap(), 204);
    let got = app.wait_posts("/in", attempts + 2, WAIT).await;
    assert_eq!(got.last().unwrap().json()["data"]["n"], 2);

    let lag = || devhost::peek::lag(&db, "pubsub").unwrap();
    common::eventually(WAIT, "the lag to drain without new messages", || lag().iter().all(|l| l.lag == 0)).await;
    // The lag is zero: every offset is committed, so nothing can be delivered again. The last
    // delivery is the only one of n = 2, and no n = 1 came after it.
    let delivered: Vec<_> = app.posts("/in").iter().map(|r| r.json()["data"]["n"].clone()).collect();
    assert_eq!(
        (delivered.iter().filter(|n| **n == 2).count(), delivered.last()),
        (1, Some(&json!(2))),
        "a settled message is not delivered again: {delivered:?}"
    );
    d.shutdown().await;
}

/// A publish whose client gives up while the store is locked still commits once the lock is
/// released (the write was already queued), and its consumers hear of it then, although the
/// request handler that queued it is gone: nothing else would wake an idle partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_caller_gave_up_still_wakes_its_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gave-up.sqlite").display().to_string();
    let app = FakeApp::start(Some(json!([subscription("t", "/in", None)]))).await;
    let d = start(&app, &db, false).await;
    let lock = hold_write_lock(&db);
    let impatient = reqwest::Client::builder().no_proxy().timeout(Duration::from_millis(500)).build().unwrap();
    let url = format!("{}/v1.0/publish/pubsub/t", d.sidecar_url("a"));
    let body = serde_json::to_vec(&json!({"n": 1})).unwrap();
    let gave_up = impatient.post(url).header("content-type", "application/json").body(body).send().await;
    match gave_up {
        Err(e) => assert!(e.is_timeout(), "{e}"),
        Ok(r) => panic!("the publish waits for the lock, but answered {} {:?}", r.status(), r.text().await),
    }
    // The client gave up while its write waited for the lock: the lock can go now.
    lock.release().await;

    let got = app.wait_posts("/in", 1, WAIT).await;
    assert_eq!(got[0].json()["data"]["n"], 1);
    assert_eq!(devhost::peek::messages(&db, "pubsub", "t").unwrap().len(), 1, "committed once");
    d.shutdown().await;
}
