//! Stage 4: Dapr's transactional outbox: state and event commit together, event id `outbox-*`,
//! operation metadata copied into the event, projections, deletes and failed transactions
//! publish nothing, and Dapr's timing: 1 s per message, one message at a time per internal
//! partition.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::time::{Duration, Instant};

use common::{FakeApp, Sidecar, subscription};
use devhost::outbox::STATE_SCAN_DELAY;
use devhost::{AppSpec, Devhost};
use serde_json::{Value, json};

/// Generous: every event waits 1 s in the relay, and tests share two cores.
const WAIT: Duration = Duration::from_secs(20);

/// What every test of the relay observes: the writer's sidecar, both apps, and the database.
type Setup = (Devhost, Sidecar, FakeApp, FakeApp, common::TempDb);

async fn setup() -> Setup {
    setup_with(4).await
}

async fn setup_with(partitions: u32) -> Setup {
    let store = common::state_store(
        "tasks",
        "    - {name: outboxPublishPubsub, value: pubsub}\n    - {name: outboxPublishTopic, value: task-events}\n    - {name: outboxDiscardWhenMissingState, value: \"true\"}\n",
    );
    let writer = FakeApp::start(None).await;
    let reader = FakeApp::start(Some(json!([subscription("task-events", "/events", None)]))).await;
    let db = common::TempDb::new();
    let d = Devhost::builder()
        .resources_yaml(common::PUBSUB)
        .resources_yaml(store)
        .app(AppSpec::new("writer", writer.port))
        .app(AppSpec::new("reader", reader.port))
        .partitions(partitions)
        .database(&db.path)
        .start()
        .await
        .unwrap();
    let s = Sidecar::new(d.sidecar_url("writer"));
    (d, s, writer, reader, db)
}

/// The writer's relay has moved everything of its internal topic to `task-events` (it commits
/// its offset in the transaction that publishes), and the reader has answered all of that: no
/// event of what was committed so far can still come.
async fn wait_relayed_and_delivered(db: &str) {
    let groups = [("writer", "writertask-eventsoutbox"), ("reader", "task-events")];
    common::wait_caught_up(db, "pubsub", &groups, WAIT).await;
}

async fn tx(s: &Sidecar, ops: Value) -> common::Resp {
    s.post_json("/v1.0/state/tasks/transaction", &json!({"operations": ops})).await
}

/// Commits one more event and waits for it, and for everything committed before it to be relayed
/// and delivered; returns the events but markers.
async fn settle(s: &Sidecar, reader: &FakeApp, db: &str, n: usize) -> Vec<common::Recorded> {
    let marker = json!([{"operation": "upsert", "request": {"key": format!("marker-{n}"), "value": {"marker": n},
        "metadata": {"contentType": "application/json", "type": "marker"}}}]);
    assert_eq!(tx(s, marker).await.status, 204);
    reader.wait_posts("/events", n + 1, WAIT).await;
    wait_relayed_and_delivered(db).await;
    reader.posts("/events").into_iter().filter(|r| r.json()["type"] != "marker").collect()
}

#[tokio::test]
async fn an_upsert_publishes_one_event_with_its_metadata() {
    let (d, s, _w, reader, _db) = setup().await;
    let r = tx(
        &s,
        json!([{"operation": "upsert", "request": {"key": "task:1", "value": {"id": "1", "title": "milk"},
            "metadata": {"type": "todo.task.created", "subject": "1", "contentType": "application/json", "id": "ignored", "custom": "c"}}}]),
    )
    .await;
    assert_eq!(r.status, 204);
    let got = reader.wait_posts("/events", 1, WAIT).await;
    let ce = got[0].json();
    assert!(ce["id"].as_str().unwrap().starts_with("outbox-"), "{}", ce["id"]);
    assert_eq!(ce["source"], "writer");
    assert_eq!(ce["type"], "todo.task.created");
    assert_eq!(ce["subject"], "1");
    assert_eq!(ce["custom"], "c");
    assert_eq!(ce["contentType"], "application/json", "metadata is copied verbatim");
    assert_eq!(ce["datacontenttype"], "application/json");
    assert_eq!(ce["data"], json!({"id": "1", "title": "milk"}));
    assert_eq!((ce["topic"].as_str(), ce["pubsubname"].as_str()), (Some("task-events"), Some("pubsub")));
    assert!(got[0].header("__key").is_none(), "the outbox publishes without a partition key");
    assert_eq!(s.get("/v1.0/state/tasks/task:1").await.json(), json!({"id": "1", "title": "milk"}));
    d.shutdown().await;
}

#[tokio::test]
async fn a_projection_replaces_the_published_data_and_is_not_stored() {
    let (d, s, _w, reader, db) = setup().await;
    let r = tx(
        &s,
        json!([
            {"operation": "upsert", "request": {"key": "task:2", "value": {"secret": "x", "title": "t"},
                "metadata": {"type": "todo.task.updated", "contentType": "application/json"}}},
            {"operation": "upsert", "request": {"key": "task:2", "value": {"title": "t"},
                "metadata": {"outbox.projection": "true", "contentType": "application/json"}}},
        ]),
    )
    .await;
    assert_eq!(r.status, 204);
    let ce = reader.wait_posts("/events", 1, WAIT).await[0].json();
    assert_eq!(ce["data"], json!({"title": "t"}));
    assert_eq!(ce["type"], "todo.task.updated");
    assert_eq!(s.get("/v1.0/state/tasks/task:2").await.json(), json!({"secret": "x", "title": "t"}));
    let events = settle(&s, &reader, &db.path, 1).await;
    assert_eq!(events.len(), 1, "one upsert, one event");

    let orphan = tx(
        &s,
        json!([
            {"operation": "upsert", "request": {"key": "task:3", "value": 1, "metadata": {"contentType": "application/json"}}},
            {"operation": "upsert", "request": {"key": "task:other", "value": 2, "metadata": {"outbox.projection": "true"}}},
        ]),
    )
    .await;
    assert_eq!((orphan.status, orphan.error_code().as_str()), (500, "ERR_STATE_TRANSACTION"));
    assert_eq!(s.get("/v1.0/state/tasks/task:3").await.status, 204, "nothing stored");
    d.shutdown().await;
}

#[tokio::test]
async fn deletes_failed_transactions_and_plain_saves_publish_nothing() {
    let (d, s, _w, reader, db) = setup().await;
    s.post_json("/v1.0/state/tasks", &json!([{"key": "task:4", "value": {"v": 1}}])).await;
    assert_eq!(tx(&s, json!([{"operation": "delete", "request": {"key": "task:4"}}])).await.status, 204);
    let failed = tx(
        &s,
        json!([
            {"operation": "upsert", "request": {"key": "task:5", "value": 1, "metadata": {"contentType": "application/json"}}},
            {"operation": "upsert", "request": {"key": "task:6", "value": 1, "etag": "123456789"}},
        ]),
    )
    .await;
    assert_eq!(failed.status, 500);
    assert_eq!(s.get("/v1.0/state/tasks/task:5").await.status, 204);
    let events = settle(&s, &reader, &db.path, 0).await;
    assert!(
        events.is_empty(),
        "unexpected events: {:?}",
        events.iter().map(common::Recorded::json).collect::<Vec<_>>()
    );
    d.shutdown().await;
}

#[tokio::test]
async fn without_a_json_content_type_the_value_is_published_as_text() {
    let (d, s, _w, reader, _db) = setup().await;
    assert_eq!(tx(&s, json!([{"operation": "upsert", "request": {"key": "k", "value": {"a": 1}}}])).await.status, 204);
    let ce = reader.wait_posts("/events", 1, WAIT).await[0].json();
    assert_eq!(ce["datacontenttype"], "text/plain");
    assert_eq!(ce["data"], json!(r#"{"a":1}"#));
    d.shutdown().await;
}

#[tokio::test]
async fn every_event_waits_a_second_and_an_internal_partition_relays_one_at_a_time() {
    // One partition: the three events of one transaction queue behind each other, as on one
    // partition of Dapr's internal topic.
    let (d, s, _w, reader, _db) = setup_with(1).await;
    let upsert = |n: u32| {
        json!({"operation": "upsert", "request": {"key": format!("k{n}"), "value": {"n": n},
            "metadata": {"contentType": "application/json"}}})
    };
    let committed = Instant::now();
    assert_eq!(tx(&s, json!([upsert(1), upsert(2), upsert(3)])).await.status, 204);
    assert_eq!(s.get("/v1.0/state/tasks/k3").await.json(), json!({"n": 3}), "the state is there at once");
    let got = reader.wait_posts("/events", 3, WAIT).await;
    let after: Vec<Duration> = got.iter().map(|r| r.at.duration_since(committed)).collect();
    for (i, waited) in after.iter().enumerate() {
        let at_least = STATE_SCAN_DELAY * u32::try_from(i + 1).unwrap();
        assert!(
            *waited >= at_least,
            "event {} arrived {waited:?} after the commit, before {at_least:?}: {after:?}",
            i + 1
        );
    }
    let values: Vec<Value> = got.iter().map(|r| r.json()["data"]["n"].clone()).collect();
    assert_eq!(values, [json!(1), json!(2), json!(3)], "in order");
    d.shutdown().await;
}

#[tokio::test]
async fn the_relay_resumes_after_a_restart_without_losing_or_doubling() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("devhost.sqlite").display().to_string();
    let store = common::state_store(
        "tasks",
        "    - {name: outboxPublishPubsub, value: pubsub}\n    - {name: outboxPublishTopic, value: task-events}\n",
    );
    let start = |writer: u16, reader: u16| {
        Devhost::builder()
            .resources_yaml(common::PUBSUB)
            .resources_yaml(store.clone())
            .app(AppSpec::new("writer", writer))
            .app(AppSpec::new("reader", reader))
            .partitions(1)
            .database(db.clone())
            .start()
    };
    let writer = FakeApp::start(None).await;
    let reader = FakeApp::start(Some(json!([subscription("task-events", "/events", None)]))).await;
    let d = start(writer.port, reader.port).await.unwrap();
    let s = Sidecar::new(d.sidecar_url("writer"));
    let ops: Vec<Value> = (0..4)
        .map(|n| {
            json!({"operation": "upsert", "request": {"key": format!("r{n}"), "value": {"n": n},
            "metadata": {"contentType": "application/json"}}})
        })
        .collect();
    assert_eq!(tx(&s, Value::Array(ops)).await.status, 204);
    // Stopped while the relay holds the next event (it waits 1 s per message): once the first
    // has been answered by the reader and committed by its group, with events left to relay.
    common::wait_for(WAIT, "the first event to be delivered and committed while the relay has more", || {
        let got = reader.posts("/events").len();
        let lags = common::lags(&db, "pubsub");
        let answered = lags.iter().any(|l| (l.0.as_str(), l.1.as_str(), l.2) == ("reader", "task-events", 0));
        let more = lags.iter().any(|l| l.0 == "writer" && l.1 == "writertask-eventsoutbox" && l.2 > 0);
        if got >= 1 && answered && more { Ok(()) } else { Err(format!("{got} events delivered, lags {lags:?}")) }
    })
    .await;
    d.shutdown().await;
    let before = reader.posts("/events").len();
    assert!(before < 4, "the restart must interrupt the relay; {before} of 4 arrived");

    let d = start(writer.port, reader.port).await.unwrap();
    let got = reader.wait_posts("/events", 4, WAIT).await;
    wait_relayed_and_delivered(&db).await;
    let ns: Vec<Value> = reader.posts("/events").iter().map(|r| r.json()["data"]["n"].clone()).collect();
    assert_eq!(
        ns,
        [json!(0), json!(1), json!(2), json!(3)],
        "each event once, in order ({} before the restart)",
        got.len()
    );
    d.shutdown().await;
}
