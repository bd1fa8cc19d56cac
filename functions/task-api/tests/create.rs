//! `POST /v1/tasks`: the outbox transaction and the publish after it, idempotency (a replay is
//! answered from a read and writes nothing), and bad input that writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::Method;
use common::{Harness, now};
use dapr_fn::clock::Clock;
use dapr_fn::runtime::RuntimeConfig;
use dapr_fn::testing::unreachable_client;
use serde_json::{Value, json};
use todo_core::events::{task_event_id, task_id_for_request};
use todo_core::order::OrderKeys;
use todo_core::task::Task;
use uuid::Uuid;

#[tokio::test]
async fn create_answers_201_commits_the_task_with_its_outbox_record_then_publishes() {
    let h = Harness::start().await;
    let answer = h
        .post("/v1/tasks")
        .user("alice")
        .json(&json!({"title": "  Pay rent ", "priority": "high", "tags": ["home", "money"], "due": "2026-12-01T09:00:00+01:00"}))
        .send()
        .await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    let task = answer.body;
    let id = task["id"].as_str().unwrap();
    assert_eq!(Uuid::parse_str(id).unwrap().get_version_num(), 4, "random id without an Idempotency-Key");
    assert_eq!(answer.headers["location"], format!("/v1/tasks/{id}"));
    assert_eq!(answer.headers["etag"], "\"1\"");
    assert_eq!(task["title"], "Pay rent");
    assert_eq!(task["owner"], "alice");
    assert_eq!((task["status"].as_str(), task["version"].as_u64()), (Some("open"), Some(1)));
    assert_eq!(task["created_at"], json!(now()));

    let event_id = task_event_id(Uuid::parse_str(id).unwrap(), 1);
    let transactions = h.stub.writes("tasks");
    assert_eq!(transactions.len(), 1);
    assert_eq!(transactions[0].path, "/v1.0/state/tasks/transaction");
    // Stored: the task as answered, plus its order keys for the store-side list.
    let decoded: Task = serde_json::from_value(task.clone()).unwrap();
    let mut stored = task.clone();
    stored["_order"] = json!(OrderKeys::of(&decoded));
    assert_eq!(
        transactions[0].body,
        json!({"operations": [
            {"operation": "upsert", "request": {
                "key": format!("task:{id}"),
                "value": stored,
                "options": {"concurrency": "first-write"},
            }},
            {"operation": "upsert", "request": {
                "key": format!("outbox:{event_id}"),
                "value": {
                    "outbox_record": "v1",
                    "written_at": "2026-11-22T10:00:00.000Z",
                    "event": {"id": event_id, "type": "todo.task.created", "subject": id, "partition_key": id,
                              "pubsub": "pubsub", "topic": "task-events", "data": task},
                },
            }},
        ]})
    );
    // A random id cannot be taken: no read before the insert.
    assert!(h.stub.requests_to(Method::GET, "/v1.0/state/").is_empty());
    let published = h.stub.published("task-events");
    assert_eq!(published.len(), 1, "published right after the commit");
    assert_eq!(published[0].query.get("metadata.cloudevent.id"), Some(&event_id));
    assert_eq!(published[0].query.get("metadata.cloudevent.type").map(String::as_str), Some("todo.task.created"));
    assert_eq!(published[0].query.get("metadata.cloudevent.subject").map(String::as_str), Some(id));
    assert_eq!(published[0].query.get("metadata.partitionKey").map(String::as_str), Some(id));
    assert_eq!(published[0].body, task);
    h.stub.wait_until_swept("tasks").await;
    let sweeps: Vec<_> = h.stub.transactions("tasks").into_iter().filter(|t| t.is_outbox_sweep()).collect();
    assert_eq!(sweeps.len(), 1, "the record deleted once, after the publish");
    assert_eq!(sweeps[0].body["operations"][0]["request"]["key"], format!("outbox:{event_id}"));
    assert_eq!(
        h.stub.all_state("tasks").into_iter().collect::<Vec<_>>(),
        [(format!("task:{id}"), stored)],
        "only the task"
    );
}

#[tokio::test]
async fn an_idempotency_key_replay_answers_200_with_the_same_task_and_writes_nothing() {
    let h = Harness::start().await;
    let body = json!({"title": "Buy milk"});
    let first = h.post("/v1/tasks").user("alice").header("Idempotency-Key", "req-1").json(&body).send().await;
    assert_eq!(first.status, 201);
    let id = first.body["id"].as_str().unwrap().to_owned();
    assert_eq!(id, task_id_for_request("alice", "req-1").to_string(), "id derived from (owner, key)");
    assert_eq!(h.stub.published("task-events").len(), 1);
    h.stub.clear_requests();

    let again = h.post("/v1/tasks").user("alice").header("Idempotency-Key", "req-1").json(&body).send().await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body, "the existing task, unchanged");
    assert_eq!(again.headers["location"], format!("/v1/tasks/{id}"));
    assert_eq!(h.stub.all_state("tasks").len(), 1, "one stored task");
    let calls: Vec<(Method, String)> = h.stub.requests().into_iter().map(|r| (r.method, r.path)).collect();
    assert_eq!(calls, [(Method::GET, format!("/v1.0/state/tasks/task:{id}"))], "one read: no write, no publish");
}

#[tokio::test]
async fn a_failed_publish_still_answers_201_and_leaves_the_event_for_the_relay() {
    let h = Harness::start().await;
    h.stub.fail(Method::POST, "/v1.0/publish/", 500, 1);
    let created = h.post("/v1/tasks").user("alice").json(&json!({"title": "x"})).send().await;
    assert_eq!(created.status, 201, "the change committed: {:?}", created.body);
    let id = Uuid::parse_str(created.body["id"].as_str().unwrap()).unwrap();
    let record = h.stub.state("tasks", &format!("outbox:{}", task_event_id(id, 1))).expect("the record waits");
    assert_eq!(record["event"]["data"], created.body);
    assert!(h.stub.requests_to(Method::DELETE, "/v1.0/state/").is_empty());
}

#[tokio::test]
async fn idempotency_keys_are_per_user() {
    let h = Harness::start().await;
    let alice =
        h.post("/v1/tasks").user("alice").header("Idempotency-Key", "k").json(&json!({"title": "a"})).send().await;
    let bob = h.post("/v1/tasks").user("bob").header("Idempotency-Key", "k").json(&json!({"title": "b"})).send().await;
    assert_eq!((alice.status, bob.status), (201, 201));
    assert_ne!(alice.body["id"], bob.body["id"]);
    assert_eq!(bob.body["owner"], "bob");
}

#[tokio::test]
async fn a_key_whose_task_was_deleted_is_a_conflict() {
    let h = Harness::start().await;
    let created =
        h.post("/v1/tasks").user("alice").header("Idempotency-Key", "k").json(&json!({"title": "a"})).send().await;
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(h.delete(&format!("/v1/tasks/{id}")).user("alice").send().await.status, 204);
    let again =
        h.post("/v1/tasks").user("alice").header("Idempotency-Key", "k").json(&json!({"title": "a"})).send().await;
    assert_eq!((again.status, again.field()), (409, Some("Idempotency-Key")));
}

#[tokio::test]
async fn validation_errors_name_the_field_and_touch_no_state() {
    let h = Harness::start().await;
    let cases = [
        (json!({}), "title"),
        (json!({"title": ""}), "title"),
        (json!({"title": "x".repeat(201)}), "title"),
        (json!({"title": "x", "priority": "whenever"}), "priority"),
        (json!({"title": "x", "due": "tomorrow"}), "due"),
        (json!({"title": "x", "time_zone": "Mars/Olympus"}), "time_zone"),
        (json!({"title": "x", "tags": ["has space"]}), "tags"),
        (json!({"title": "x", "reminder": {"before_due_seconds": 60}}), "reminder.before_due_seconds"),
        (json!({"title": "x", "recurrence": {"rule": "FREQ=DAILY"}}), "due"),
        (json!({"title": "x", "owner": "mallory"}), "owner"),
        (json!({"title": "x", "id": Uuid::nil()}), "id"),
        (json!(["not", "an", "object"]), "body"),
    ];
    for (body, field) in cases {
        let answer = h.post("/v1/tasks").user("alice").json(&body).send().await;
        assert_eq!(answer.status, 400, "{body}");
        assert_eq!(answer.field(), Some(field), "{body}: {:?}", answer.body);
        assert!(answer.body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let not_json = h.post("/v1/tasks").user("alice").raw_body(b"{nope", Some("application/json")).send().await;
    assert_eq!((not_json.status, not_json.field()), (400, Some("body")));
    let truncated = h.post("/v1/tasks").user("alice").raw_body(b"{\"title\": ", Some("application/json")).send().await;
    assert_eq!((truncated.status, truncated.field()), (400, Some("title")), "the value that is cut off");
    let bad_key = h
        .post("/v1/tasks")
        .user("alice")
        .header("Idempotency-Key", "has space")
        .json(&json!({"title": "x"}))
        .send()
        .await;
    assert_eq!((bad_key.status, bad_key.field()), (400, Some("Idempotency-Key")));
    assert!(h.state_requests().is_empty(), "bad input never reaches the store: {:?}", h.state_requests());
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let h = Harness::start().await;
    for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
        let answer = h.post("/v1/tasks").user("alice").raw_body(br#"{"title": "x"}"#, content_type).send().await;
        assert_eq!(answer.status, 415, "{content_type:?}");
        assert_eq!(answer.field(), Some("Content-Type"));
    }
    assert!(h.state_requests().is_empty());
}

#[tokio::test]
async fn an_oversized_body_is_413_in_the_api_shape() {
    let runtime = RuntimeConfig { max_body_bytes: 1024, ..RuntimeConfig::default() };
    let h = Harness::custom(common::config(), runtime, |_| Clock::fixed(now())).await;
    let big = json!({"title": "x", "description": "d".repeat(4096)});
    let answer = h.post("/v1/tasks").user("alice").json(&big).send().await;
    assert_eq!(answer.status, 413);
    assert_eq!(answer.body, json!({"error": "request body too large"}));
    assert!(h.state_requests().is_empty());
}

#[tokio::test]
async fn a_store_failure_is_503_with_retry_after() {
    let h = Harness::start().await;
    h.stub.fail(Method::POST, "/v1.0/state/tasks/transaction", 500, 1);
    let answer = h.post("/v1/tasks").user("alice").json(&json!({"title": "x"})).send().await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.header("retry-after"), Some("2"));
    assert!(!answer.body.to_string().contains("injected"), "no sidecar detail leaks: {}", answer.body);
    assert!(h.stub.all_state("tasks").is_empty());
}

#[tokio::test]
async fn a_sidecar_that_is_down_is_503() {
    let h = Harness::with_dapr(unreachable_client().await).await;
    let answer = h.post("/v1/tasks").user("alice").json(&json!({"title": "x"})).send().await;
    assert_eq!(answer.status, 503);
    assert!(answer.header("retry-after").is_some());
    let listed = h.get("/v1/tasks").user("alice").send().await;
    assert_eq!(listed.status, 503);
    assert_eq!(listed.body["error"], Value::from("the task store is temporarily unavailable"));
}
