//! Stage 4: the transactional outbox: state and event commit together, event id `outbox-*`,
//! operation metadata copied into the event, projections, deletes and failed transactions
//! publish nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::time::Duration;

use common::{FakeApp, Sidecar, subscription};
use devhost::{AppSpec, Devhost};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(5);

async fn setup() -> (Devhost, Sidecar, FakeApp, FakeApp) {
    let store = common::state_store(
        "tasks",
        "    - {name: outboxPublishPubsub, value: pubsub}\n    - {name: outboxPublishTopic, value: task-events}\n    - {name: outboxDiscardWhenMissingState, value: \"true\"}\n",
    );
    let writer = FakeApp::start(None).await;
    let reader = FakeApp::start(Some(json!([subscription("task-events", "/events", None)]))).await;
    let d = Devhost::builder()
        .resources_yaml(common::PUBSUB)
        .resources_yaml(store)
        .app(AppSpec::new("writer", writer.port))
        .app(AppSpec::new("reader", reader.port))
        .start()
        .await
        .unwrap();
    let s = Sidecar::new(d.sidecar_url("writer"));
    (d, s, writer, reader)
}

async fn tx(s: &Sidecar, ops: Value) -> common::Resp {
    s.post_json("/v1.0/state/tasks/transaction", &json!({"operations": ops})).await
}

/// Commits one more event and waits for it, so anything published before has arrived too.
async fn settle(s: &Sidecar, reader: &FakeApp, n: usize) -> Vec<common::Recorded> {
    let marker = json!([{"operation": "upsert", "request": {"key": format!("marker-{n}"), "value": {"marker": n},
        "metadata": {"contentType": "application/json", "type": "marker"}}}]);
    assert_eq!(tx(s, marker).await.status, 204);
    reader.wait_posts("/events", n + 1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    reader.posts("/events").into_iter().filter(|r| r.json()["type"] != "marker").collect()
}

#[tokio::test]
async fn an_upsert_publishes_one_event_with_its_metadata() {
    let (d, s, _w, reader) = setup().await;
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
    let (d, s, _w, reader) = setup().await;
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
    let events = settle(&s, &reader, 1).await;
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
    let (d, s, _w, reader) = setup().await;
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
    let events = settle(&s, &reader, 0).await;
    assert!(
        events.is_empty(),
        "unexpected events: {:?}",
        events.iter().map(common::Recorded::json).collect::<Vec<_>>()
    );
    d.shutdown().await;
}

#[tokio::test]
async fn without_a_json_content_type_the_value_is_published_as_text() {
    let (d, s, _w, reader) = setup().await;
    assert_eq!(tx(&s, json!([{"operation": "upsert", "request": {"key": "k", "value": {"a": 1}}}])).await.status, 204);
    let ce = reader.wait_posts("/events", 1, WAIT).await[0].json();
    assert_eq!(ce["datacontenttype"], "text/plain");
    assert_eq!(ce["data"], json!(r#"{"a":1}"#));
    d.shutdown().await;
}
