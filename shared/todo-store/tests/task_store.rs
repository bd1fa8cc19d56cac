//! The tasks store on the stub sidecar: a create's read-first path for ids that can repeat, a
//! lost insert race, and task events through the outbox (their ids, type, topic and body).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::http::Method;
use chrono::{DateTime, Utc};
use dapr_fn::clock::Clock;
use dapr_fn::outbox::OutboxConfig;
use dapr_fn::runtime::Stopping;
use dapr_fn::testing::StubSidecar;
use serde_json::json;
use todo_core::events::{TaskChange, task_event_id};
use todo_core::testing::sample_task;
use todo_store::{Created, IdOrigin, TaskStore};
use uuid::Uuid;

const STORE: &str = "tasks";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// A clock tests move by hand.
fn settable(start: &str) -> (Clock, Arc<Mutex<DateTime<Utc>>>) {
    let now = Arc::new(Mutex::new(at(start)));
    let read = now.clone();
    (Clock::from_fn(move || *read.lock().unwrap()), now)
}

fn outbox_keys(stub: &StubSidecar) -> Vec<String> {
    stub.all_state(STORE).into_keys().filter(|k| k.starts_with("outbox:")).collect()
}

#[tokio::test]
async fn a_republished_event_keeps_its_id() {
    let stub = StubSidecar::start().await;
    let (clock, now) = settable("2026-12-05T10:00:00Z");
    let store = TaskStore::with_outbox(stub.client(None), OutboxConfig::default(), clock);
    let task = sample_task(Uuid::from_u128(7), "alice");
    // The writer's own publish fails: the event waits in the outbox.
    stub.fail(Method::POST, "/v1.0/publish/", 500, 1);
    assert_eq!(store.create(&task, IdOrigin::Random).await.unwrap(), Created::Inserted);
    let written_id = stub.published("task-events")[0].query["metadata.cloudevent.id"].clone();
    assert_eq!(written_id, task_event_id(task.id, 1), "derived from task id and version");

    *now.lock().unwrap() = at("2026-12-05T10:00:06Z");
    let (_signal, stopping) = Stopping::channel();
    assert_eq!(store.outbox().relay_once(&stopping).await.unwrap().relayed, 1);
    let published = stub.published("task-events");
    assert_eq!(published.len(), 2);
    assert_eq!(published[1].query["metadata.cloudevent.id"], written_id, "the relay republishes the same id");
    assert_eq!(published[1].query["metadata.cloudevent.type"], "todo.task.created");
    assert_eq!(published[1].query["metadata.partitionKey"], task.id.to_string());
    assert_eq!(published[1].body, serde_json::to_value(&task).unwrap());
}

#[tokio::test]
async fn a_create_with_a_derived_id_that_exists_reads_and_writes_nothing() {
    let stub = StubSidecar::start().await;
    let store = TaskStore::new(stub.client(None));
    let task = sample_task(Uuid::from_u128(9), "alice");
    assert_eq!(store.create(&task, IdOrigin::Derived).await.unwrap(), Created::Inserted);
    stub.wait_until_swept(STORE).await;
    stub.clear_requests();

    let mut replay = task.clone();
    replay.title = "a different body".into();
    match store.create(&replay, IdOrigin::Derived).await.unwrap() {
        Created::Existing(existing) => assert_eq!(existing.value, task, "the stored task, unchanged"),
        other => panic!("expected the existing task, got {other:?}"),
    }
    let calls: Vec<(Method, String)> = stub.requests().into_iter().map(|r| (r.method, r.path)).collect();
    assert_eq!(calls, [(Method::GET, format!("/v1.0/state/tasks/task:{}", task.id))], "one read, no write");
}

#[tokio::test]
async fn a_create_that_loses_a_race_finds_the_winner_and_publishes_nothing() {
    let stub = StubSidecar::start().await;
    let store = TaskStore::new(stub.client(None));
    let task = sample_task(Uuid::from_u128(10), "alice");
    // Another replica inserts the task between this create's read and its transaction.
    let mut stored = serde_json::to_value(&task).unwrap();
    stored["title"] = json!("the winner");
    stub.put_state_before(Method::POST, "/v1.0/state/tasks/transaction", STORE, &task.key(), stored.clone());
    match store.create(&task, IdOrigin::Derived).await.unwrap() {
        Created::Existing(existing) => assert_eq!(existing.value.title, "the winner"),
        other => panic!("expected the winner's task, got {other:?}"),
    }
    assert_eq!(stub.transactions(STORE).len(), 1, "the insert-if-absent was sent and failed");
    assert!(stub.published("task-events").is_empty(), "the losing create published nothing");
    assert!(outbox_keys(&stub).is_empty());
}

#[tokio::test]
async fn task_events_carry_the_task_and_the_change() {
    let task = sample_task(Uuid::from_u128(11), "alice");
    let event = TaskStore::event(&task, TaskChange::Completed).unwrap();
    assert_eq!(event.id, task_event_id(task.id, task.version));
    assert_eq!(
        (event.event_type.as_str(), event.topic.as_str(), event.pubsub.as_str()),
        ("todo.task.completed", "task-events", "pubsub")
    );
    assert_eq!((event.subject.clone(), event.partition_key.clone()), (task.id.to_string(), task.id.to_string()));
    assert_eq!(event.data, serde_json::to_value(&task).unwrap());
}
