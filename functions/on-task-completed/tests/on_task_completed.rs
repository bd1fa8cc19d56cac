//! on-task-completed's real router against the stub sidecar.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::Method;
use chrono::{DateTime, Utc};
use dapr_fn::clock::Clock;
use dapr_fn::runtime::RuntimeConfig;
use dapr_fn::testing::{StubSidecar, TestApp, cloudevent, unreachable_client};
use serde_json::{Value, json};
use todo_core::events::task_id_for_request;
use todo_core::task::{Recurrence, Reminder, Series, Task};
use todo_core::testing::sample_task;
use uuid::Uuid;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// A monthly task (three occurrences) due 1 Dec 09:00 Berlin time with a reminder the evening
/// before, completed an hour after it was due.
fn completed_monthly(rule: &str) -> Task {
    let mut task = sample_task(Uuid::from_u128(42), "alice");
    let due = DateTime::parse_from_rfc3339("2026-12-01T09:00:00+01:00").unwrap();
    task.due = Some(due);
    task.time_zone = chrono_tz::Europe::Berlin;
    task.reminder = Some(Reminder::At(DateTime::parse_from_rfc3339("2026-11-30T20:00:00+01:00").unwrap()));
    task.recurrence = Some(Recurrence { rule: rule.parse().unwrap(), mode: Default::default(), exdates: Vec::new() });
    task.series = Some(Series { id: task.id, index: 0, anchor: due, anchor_index: 0 });
    task.complete(t("2026-12-01T09:00:00Z"));
    task
}

fn completion(task: &Task) -> Value {
    cloudevent(
        &todo_core::events::task_event_id(task.id, task.version),
        "todo.task.completed",
        "task-events",
        serde_json::to_value(task).unwrap(),
    )
}

async fn app(dapr: dapr_fn::dapr::Dapr) -> TestApp {
    TestApp::start(on_task_completed::build(dapr), RuntimeConfig::default()).await
}

#[tokio::test]
async fn a_completed_recurring_task_asks_for_its_next_occurrence() {
    let stub = StubSidecar::start().await;
    let task = completed_monthly("FREQ=MONTHLY;COUNT=3");
    stub.put_state("tasks", &task.key(), serde_json::to_value(&task).unwrap());
    let app = app(stub.client(None)).await;
    assert_eq!(
        app.deliver(on_task_completed::ROUTE, &completion(&task), None).await,
        (200, json!({"status": "SUCCESS"}))
    );

    let published = stub.published("task-create");
    assert_eq!(published.len(), 1);
    let request = &published[0];
    let request_id = format!("occurrence:{}:1", task.id);
    let next_id = task_id_for_request("alice", &request_id);
    assert_eq!(request.path, "/v1.0/publish/pubsub/task-create");
    assert_eq!(request.query.get("metadata.cloudevent.id"), Some(&request_id));
    assert_eq!(request.query.get("metadata.cloudevent.type").map(String::as_str), Some("todo.task.create"));
    assert_eq!(request.query.get("metadata.partitionKey"), Some(&next_id.to_string()));
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = &request.body;
    assert_eq!(body["request_id"], json!(request_id));
    assert_eq!(body["owner"], "alice");
    assert_eq!(body["task"]["due"], "2027-01-01T09:00:00+01:00", "same wall-clock time, one month on");
    assert_eq!(body["task"]["reminder"], json!({"at": "2026-12-31T20:00:00+01:00"}), "the reminder keeps its distance");
    assert_eq!(body["task"]["time_zone"], "Europe/Berlin");
    assert_eq!(body["series"]["id"], json!(task.id));
    assert_eq!(body["series"]["index"], 1);
}

/// The monthly task of [`completed_monthly`], deleted instead of completed, at `at`.
fn deleted_open(rule: &str, at: &str) -> Task {
    let mut task = completed_monthly(rule);
    task.status = todo_core::task::Status::Open;
    task.completed_at = None;
    task.delete(t(at));
    task
}

fn deletion(task: &Task) -> Value {
    cloudevent(
        &todo_core::events::task_event_id(task.id, task.version),
        "todo.task.deleted",
        "task-events",
        serde_json::to_value(task).unwrap(),
    )
}

#[tokio::test]
async fn deleting_an_open_occurrence_skips_it_and_the_series_goes_on() {
    let stub = StubSidecar::start().await;
    // Deleted a week before it was due: the next one is January's.
    let task = deleted_open("FREQ=MONTHLY", "2026-11-24T10:00:00Z");
    stub.put_state("tasks", &task.key(), serde_json::to_value(&task).unwrap());
    let app = app(stub.client(None)).await;
    assert_eq!(app.deliver(on_task_completed::ROUTE, &deletion(&task), None).await.1, json!({"status": "SUCCESS"}));
    let published = stub.published("task-create");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].body["task"]["due"], "2027-01-01T09:00:00+01:00");
    assert_eq!(published[0].body["series"]["index"], 1);
    assert_eq!(published[0].query.get("metadata.cloudevent.id"), Some(&format!("occurrence:{}:1", task.id)));

    // Deleted long after it was due: the next one not already past.
    let stub = StubSidecar::start().await;
    let late = deleted_open("FREQ=MONTHLY", "2027-02-15T10:00:00Z");
    stub.put_state("tasks", &late.key(), serde_json::to_value(&late).unwrap());
    let app_late = self::app(stub.client(None)).await;
    app_late.deliver(on_task_completed::ROUTE, &deletion(&late), None).await;
    let published = stub.published("task-create");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].body["task"]["due"], "2027-03-01T09:00:00+01:00");
    assert_eq!(published[0].body["series"]["index"], 3);
}

#[tokio::test]
async fn deleting_a_completed_occurrence_or_ending_the_series_asks_for_nothing() {
    let stub = StubSidecar::start().await;
    let mut completed = completed_monthly("FREQ=MONTHLY");
    completed.delete(t("2026-12-20T10:00:00Z"));
    let mut ended = deleted_open("FREQ=MONTHLY", "2026-11-24T10:00:00Z");
    ended.id = Uuid::from_u128(43);
    ended.recurrence = None;
    for task in [&completed, &ended] {
        stub.put_state("tasks", &task.key(), serde_json::to_value(task).unwrap());
    }
    let app = app(stub.client(None)).await;
    for task in [&completed, &ended] {
        assert_eq!(app.deliver(on_task_completed::ROUTE, &deletion(task), None).await.1, json!({"status": "SUCCESS"}));
    }
    assert!(stub.published("task-create").is_empty(), "{:?}", stub.published("task-create"));
}

#[tokio::test]
async fn duplicate_completions_create_the_next_instance_once() {
    let stub = StubSidecar::start().await;
    let task = completed_monthly("FREQ=MONTHLY;COUNT=3");
    stub.put_state("tasks", &task.key(), serde_json::to_value(&task).unwrap());
    let recurrer = app(stub.client(None)).await;
    for _ in 0..2 {
        recurrer.deliver(on_task_completed::ROUTE, &completion(&task), None).await;
    }
    let published = stub.published("task-create");
    assert_eq!(published.len(), 2);
    assert_eq!(published[0].body, published[1].body, "both duplicates ask for the same occurrence");
    assert_eq!(published[0].query, published[1].query, "with the same CloudEvent id");

    // Play both requests into create-task on the same store: one new task.
    let creator =
        TestApp::start(create_task::build(stub.client(None), Clock::system()), RuntimeConfig::default()).await;
    for request in &published {
        let event = cloudevent(
            &request.query["metadata.cloudevent.id"],
            "todo.task.create",
            "task-create",
            request.body.clone(),
        );
        assert_eq!(creator.deliver(create_task::ROUTE, &event, None).await.1, json!({"status": "SUCCESS"}));
    }
    let tasks = stub.all_state("tasks");
    assert_eq!(tasks.len(), 2, "the completed task and exactly one next instance");
}

#[tokio::test]
async fn a_completion_ahead_of_the_store_is_retried() {
    let stub = StubSidecar::start().await;
    let task = completed_monthly("FREQ=MONTHLY");
    let app = app(stub.client(None)).await;
    assert_eq!(
        app.deliver(on_task_completed::ROUTE, &completion(&task), None).await.1,
        json!({"status": "RETRY"}),
        "not stored yet"
    );

    let mut older = task.clone();
    older.version = 1;
    stub.put_state("tasks", &task.key(), serde_json::to_value(&older).unwrap());
    assert_eq!(
        app.deliver(on_task_completed::ROUTE, &completion(&task), None).await.1,
        json!({"status": "RETRY"}),
        "store behind"
    );
    assert!(stub.published("task-create").is_empty());

    stub.put_state("tasks", &task.key(), serde_json::to_value(&task).unwrap());
    assert_eq!(app.deliver(on_task_completed::ROUTE, &completion(&task), None).await.1, json!({"status": "SUCCESS"}));
    assert_eq!(stub.published("task-create").len(), 1);
}

#[tokio::test]
async fn nothing_follows_a_one_off_task_or_the_last_occurrence() {
    let stub = StubSidecar::start().await;
    let app = app(stub.client(None)).await;

    let mut one_off = sample_task(Uuid::from_u128(1), "alice");
    one_off.complete(t("2026-12-01T09:00:00Z"));
    assert_eq!(
        app.deliver(on_task_completed::ROUTE, &completion(&one_off), None).await.1,
        json!({"status": "SUCCESS"})
    );

    let mut last = completed_monthly("FREQ=MONTHLY;COUNT=3");
    if let Some(series) = last.series.as_mut() {
        series.index = 2;
    }
    stub.put_state("tasks", &last.key(), serde_json::to_value(&last).unwrap());
    assert_eq!(app.deliver(on_task_completed::ROUTE, &completion(&last), None).await.1, json!({"status": "SUCCESS"}));
    assert!(stub.published("task-create").is_empty());
}

#[tokio::test]
async fn malformed_or_inconsistent_completions_are_dropped() {
    let stub = StubSidecar::start().await;
    let app = app(stub.client(None)).await;
    let garbage = cloudevent("e", "todo.task.completed", "task-events", json!({"id": "not-a-uuid"}));
    assert_eq!(app.deliver(on_task_completed::ROUTE, &garbage, None).await.1, json!({"status": "DROP"}));
    // A completion of a task the store has open, and a deletion of one it has not deleted.
    let mut open = completed_monthly("FREQ=MONTHLY");
    open.id = Uuid::from_u128(3);
    open.status = Default::default();
    open.completed_at = None;
    stub.put_state("tasks", &open.key(), serde_json::to_value(&open).unwrap());
    let mut claimed = open.clone();
    claimed.complete(t("2026-12-01T09:00:00Z"));
    claimed.version = open.version;
    assert_eq!(app.deliver(on_task_completed::ROUTE, &completion(&claimed), None).await.1, json!({"status": "DROP"}));
    assert_eq!(app.deliver(on_task_completed::ROUTE, &deletion(&open), None).await.1, json!({"status": "DROP"}));
    assert!(stub.requests_to(Method::POST, "/v1.0/publish").is_empty());
}

/// The request acts for the stored task's owner with the stored task's content: an event body
/// that differs from the store at its own version, or names another owner, asks for nothing.
#[tokio::test]
async fn the_next_occurrence_comes_from_the_store_not_from_the_event() {
    let stub = StubSidecar::start().await;
    let task = completed_monthly("FREQ=MONTHLY;COUNT=3");
    stub.put_state("tasks", &task.key(), serde_json::to_value(&task).unwrap());
    let app = app(stub.client(None)).await;

    let mut other_owner = task.clone();
    other_owner.owner = "mallory".into();
    let mut other_content = task.clone();
    other_content.title = "Transfer the savings".into();
    for forged in [&other_owner, &other_content] {
        assert_eq!(app.deliver(on_task_completed::ROUTE, &completion(forged), None).await.1, json!({"status": "DROP"}));
    }
    assert!(stub.published("task-create").is_empty(), "{:?}", stub.published("task-create"));

    // An older event of a task edited since: the stored (edited) task is the one repeated.
    let mut edited = task.clone();
    edited.title = "Pay the rent (edited)".into();
    edited.version += 1;
    stub.put_state("tasks", &edited.key(), serde_json::to_value(&edited).unwrap());
    assert_eq!(app.deliver(on_task_completed::ROUTE, &completion(&task), None).await.1, json!({"status": "SUCCESS"}));
    let published = stub.published("task-create");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].body["owner"], "alice");
    assert_eq!(published[0].body["task"]["title"], "Pay the rent (edited)");
}

#[tokio::test]
async fn an_unavailable_sidecar_is_retried() {
    let app = app(unreachable_client().await).await;
    let task = completed_monthly("FREQ=MONTHLY");
    assert_eq!(app.deliver(on_task_completed::ROUTE, &completion(&task), None).await.1, json!({"status": "RETRY"}));

    let stub = StubSidecar::start().await;
    stub.put_state("tasks", &task.key(), serde_json::to_value(&task).unwrap());
    stub.fail(Method::POST, "/v1.0/publish/", 500, 1);
    let app = self::app(stub.client(None)).await;
    assert_eq!(app.deliver(on_task_completed::ROUTE, &completion(&task), None).await.1, json!({"status": "RETRY"}));
}

#[tokio::test]
async fn dapr_routes_only_completions_and_deletions_here() {
    let function = on_task_completed::build(unreachable_client().await);
    let subscription = &function.subscriptions()[0];
    assert_eq!(subscription.topic(), "task-events");
    assert_eq!(
        subscription.rules(),
        vec![(r#"event.type == "todo.task.completed" || event.type == "todo.task.deleted""#, on_task_completed::ROUTE)]
    );
    assert_eq!(subscription.dead_letter(), Some("on-task-completed-dlq"));
}

#[tokio::test]
async fn deliveries_need_the_app_token() {
    let stub = StubSidecar::start().await;
    let config = RuntimeConfig { app_api_token: Some("tok".into()), ..RuntimeConfig::default() };
    let app = TestApp::start(on_task_completed::build(stub.client(None)), config).await;
    let task = completed_monthly("FREQ=MONTHLY");
    assert_eq!(app.deliver(on_task_completed::ROUTE, &completion(&task), None).await.0, 401);
    assert!(stub.requests().is_empty());
}

/// A completion the store has undone since (the task was reopened) asks for nothing and is not
/// a poison message: completing the task again asks, for the same next occurrence.
#[tokio::test]
async fn a_completion_reopened_since_waits_for_the_next_one() {
    let stub = StubSidecar::start().await;
    let task = completed_monthly("FREQ=MONTHLY;COUNT=3");
    let mut reopened = task.clone();
    assert!(reopened.reopen(t("2026-12-01T10:00:00Z")));
    stub.put_state("tasks", &reopened.key(), serde_json::to_value(&reopened).unwrap());
    let app = app(stub.client(None)).await;
    assert_eq!(app.deliver(on_task_completed::ROUTE, &completion(&task), None).await.1, json!({"status": "SUCCESS"}));
    assert!(stub.published("task-create").is_empty(), "{:?}", stub.published("task-create"));

    let mut again = reopened.clone();
    assert!(again.complete(t("2026-12-02T08:00:00Z")));
    stub.put_state("tasks", &again.key(), serde_json::to_value(&again).unwrap());
    assert_eq!(app.deliver(on_task_completed::ROUTE, &completion(&again), None).await.1, json!({"status": "SUCCESS"}));
    let published = stub.published("task-create");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].body["request_id"], json!(format!("occurrence:{}:1", task.id)), "the same next occurrence");
}
