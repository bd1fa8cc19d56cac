//! audit-writer's real router against the stub sidecar.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::Method;
use chrono::{DateTime, Utc};
use dapr_fn::clock::Clock;
use dapr_fn::runtime::RuntimeConfig;
use dapr_fn::testing::{StubSidecar, TestApp, cloudevent, unreachable_client};
use serde_json::{Value, json};
use todo_core::events::task_event_id;
use todo_core::testing::sample_task;
use uuid::Uuid;

const NOW: &str = "2026-11-22T10:00:05Z";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(NOW).unwrap().to_utc()
}

async fn app(dapr: dapr_fn::dapr::Dapr, token: Option<&str>) -> TestApp {
    let config = RuntimeConfig { app_api_token: token.map(str::to_owned), ..RuntimeConfig::default() };
    TestApp::start(audit_writer::build(dapr, Clock::fixed(now())), config).await
}

fn created_event(id: &str) -> Value {
    let task = sample_task(Uuid::from_u128(7), "alice");
    cloudevent(id, "todo.task.created", "task-events", serde_json::to_value(task).unwrap())
}

#[tokio::test]
async fn an_event_becomes_one_audit_entry() {
    let stub = StubSidecar::start().await;
    let app = app(stub.client(None), None).await;
    let id = task_event_id(Uuid::from_u128(7), 1);
    let (status, body) = app.deliver(audit_writer::ROUTE, &created_event(&id), None).await;
    assert_eq!((status, body), (200, json!({"status": "SUCCESS"})));

    let key = format!("audit:{}:{id}", Uuid::from_u128(7));
    let saves = stub.requests_to(Method::POST, "/v1.0/state/audit");
    assert_eq!(saves.len(), 1);
    let item = &saves[0].body[0];
    assert_eq!(item["key"], json!(key));
    assert_eq!(item["options"], json!({"concurrency": "first-write"}), "insert-if-absent");
    assert!(item.get("etag").is_none());

    let entry = stub.state("audit", &key).unwrap();
    assert_eq!(entry["change"], "created");
    assert_eq!(entry["event_id"], json!(id));
    assert_eq!(entry["owner"], "alice");
    assert_eq!(entry["task_version"], 1);
    assert_eq!(entry["occurred_at"], "2026-11-22T10:00:00Z", "the event's time");
    assert_eq!(entry["recorded_at"], NOW);
    assert_eq!(entry["task"]["title"], "Pay rent");
}

#[tokio::test]
async fn a_redelivered_event_is_recognised_by_a_read_and_writes_nothing() {
    let stub = StubSidecar::start().await;
    let app = app(stub.client(None), None).await;
    let id = task_event_id(Uuid::from_u128(7), 1);
    let event = created_event(&id);
    assert_eq!(app.deliver(audit_writer::ROUTE, &event, None).await.1, json!({"status": "SUCCESS"}));
    let first = stub.all_state("audit");
    stub.clear_requests();
    assert_eq!(app.deliver(audit_writer::ROUTE, &event, None).await.1, json!({"status": "SUCCESS"}));
    assert_eq!(stub.all_state("audit"), first, "the duplicate left the trail as it was");
    assert_eq!(first.len(), 1);
    // No insert that fails by design: Dapr would retry it and count it toward the breaker.
    let calls: Vec<(Method, String)> = stub.requests().into_iter().map(|r| (r.method, r.path)).collect();
    assert_eq!(calls, [(Method::GET, format!("/v1.0/state/audit/audit:{}:{id}", Uuid::from_u128(7)))]);
}

#[tokio::test]
async fn two_racing_deliveries_record_the_event_once() {
    let stub = StubSidecar::start().await;
    let app = app(stub.client(None), None).await;
    let id = task_event_id(Uuid::from_u128(7), 1);
    let key = format!("audit:{}:{id}", Uuid::from_u128(7));
    // The other delivery writes the entry between this one's read and its insert.
    stub.put_state_before(Method::POST, "/v1.0/state/audit", "audit", &key, json!({"written": "by the other"}));
    assert_eq!(app.deliver(audit_writer::ROUTE, &created_event(&id), None).await.1, json!({"status": "SUCCESS"}));
    assert_eq!(stub.state("audit", &key), Some(json!({"written": "by the other"})), "the insert-if-absent decided");
}

#[tokio::test]
async fn each_distinct_event_is_recorded() {
    let stub = StubSidecar::start().await;
    let app = app(stub.client(None), None).await;
    let mut task = sample_task(Uuid::from_u128(7), "alice");
    app.deliver(audit_writer::ROUTE, &created_event(&task_event_id(task.id, 1)), None).await;
    task.complete(now());
    let completed = cloudevent(
        &task_event_id(task.id, 2),
        "todo.task.completed",
        "task-events",
        serde_json::to_value(&task).unwrap(),
    );
    // The completion may arrive first (reordering): both are recorded either way.
    app.deliver(audit_writer::ROUTE, &completed, None).await;
    let trail = stub.all_state("audit");
    assert_eq!(trail.len(), 2);
    assert!(trail.values().any(|e| e["change"] == "completed" && e["task_version"] == 2));
}

#[tokio::test]
async fn what_can_never_be_recorded_is_dropped() {
    let stub = StubSidecar::start().await;
    let app = app(stub.client(None), None).await;
    let not_a_task = cloudevent("e-1", "todo.task.created", "task-events", json!({"title": "no id"}));
    assert_eq!(app.deliver(audit_writer::ROUTE, &not_a_task, None).await.1, json!({"status": "DROP"}));
    let task = serde_json::to_value(sample_task(Uuid::from_u128(7), "alice")).unwrap();
    let wrong_type = cloudevent("e-2", "todo.task.exploded", "task-events", task);
    assert_eq!(app.deliver(audit_writer::ROUTE, &wrong_type, None).await.1, json!({"status": "DROP"}));
    assert!(stub.requests_to(Method::POST, "/v1.0/state").is_empty(), "nothing partial is written");
}

#[tokio::test]
async fn an_unavailable_sidecar_or_store_is_retried() {
    let app = app(unreachable_client().await, None).await;
    assert_eq!(app.deliver(audit_writer::ROUTE, &created_event("e"), None).await.1, json!({"status": "RETRY"}));

    let stub = StubSidecar::start().await;
    stub.fail(Method::POST, "/v1.0/state/audit", 500, 1);
    let app2 = self::app(stub.client(None), None).await;
    assert_eq!(app2.deliver(audit_writer::ROUTE, &created_event("e"), None).await.1, json!({"status": "RETRY"}));
    assert!(stub.all_state("audit").is_empty());
    assert_eq!(app2.deliver(audit_writer::ROUTE, &created_event("e"), None).await.1, json!({"status": "SUCCESS"}));
    assert_eq!(stub.all_state("audit").len(), 1);
}

#[tokio::test]
async fn deliveries_need_the_app_token_and_health_does_not() {
    let stub = StubSidecar::start().await;
    let app = app(stub.client(None), Some("app-token")).await;
    assert_eq!(app.deliver(audit_writer::ROUTE, &created_event("e"), None).await.0, 401);
    assert_eq!(app.deliver(audit_writer::ROUTE, &created_event("e"), Some("nope")).await.0, 401);
    assert!(stub.requests().is_empty());
    assert_eq!(app.http.get(format!("{}/healthz", app.url)).send().await.unwrap().status().as_u16(), 200);
    assert_eq!(
        app.deliver(audit_writer::ROUTE, &created_event("e"), Some("app-token")).await.1,
        json!({"status": "SUCCESS"})
    );
}

#[tokio::test]
async fn subscribes_to_every_task_event_with_a_dead_letter_topic() {
    let function = audit_writer::build(unreachable_client().await, Clock::system());
    let subscription = &function.subscriptions()[0];
    assert_eq!((subscription.pubsub(), subscription.topic()), ("pubsub", "task-events"));
    assert_eq!(subscription.dead_letter(), Some("audit-writer-dlq"));
    assert!(subscription.rules().is_empty());
    assert_eq!(subscription.default_path(), Some(audit_writer::ROUTE));
}
