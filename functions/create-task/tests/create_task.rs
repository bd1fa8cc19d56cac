//! create-task's real router against the stub sidecar.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::Method;
use chrono::{DateTime, Utc};
use dapr_fn::clock::Clock;
use dapr_fn::runtime::RuntimeConfig;
use dapr_fn::testing::{StubSidecar, TestApp, cloudevent, unreachable_client};
use serde_json::{Value, json};
use todo_core::events::{task_event_id, task_id_for_request};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z").unwrap().to_utc()
}

async fn app(dapr: dapr_fn::dapr::Dapr, token: Option<&str>) -> TestApp {
    let config = RuntimeConfig { app_api_token: token.map(str::to_owned), ..RuntimeConfig::default() };
    TestApp::start(create_task::build(dapr, Clock::fixed(now())), config).await
}

fn request(request_id: &str, task: Value) -> Value {
    cloudevent(
        request_id,
        "todo.task.create",
        "task-create",
        json!({"request_id": request_id, "owner": "alice", "task": task}),
    )
}

#[tokio::test]
async fn a_request_creates_the_task_with_its_event_in_one_transaction() {
    let stub = StubSidecar::start().await;
    let app = app(stub.client(None), None).await;
    let event =
        request("import-1", json!({"title": "Water plants", "tags": ["home"], "due": "2026-12-01T09:00:00+01:00"}));
    assert_eq!(app.deliver(create_task::ROUTE, &event, None).await, (200, json!({"status": "SUCCESS"})));

    let id = task_id_for_request("alice", "import-1");
    let transactions = stub.writes("tasks");
    assert_eq!(transactions.len(), 1);
    let ops = transactions[0].body["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 2, "the task and its outbox record");
    assert_eq!(ops[0]["operation"], "upsert");
    let request = &ops[0]["request"];
    assert_eq!(request["key"], json!(format!("task:{id}")));
    assert_eq!(request["options"], json!({"concurrency": "first-write"}), "insert-if-absent");
    assert!(request.get("metadata").is_none(), "no Dapr outbox metadata");
    let record = &ops[1]["request"];
    let event_id = task_event_id(id, 1);
    assert_eq!(record["key"], json!(format!("outbox:{event_id}")));
    assert_eq!(record["value"]["outbox_record"], "v1");
    assert_eq!(record["value"]["written_at"], "2026-11-22T10:00:00.000Z");
    assert_eq!(
        record["value"]["event"],
        json!({"id": event_id, "type": "todo.task.created", "subject": id.to_string(), "partition_key": id.to_string(),
               "pubsub": "pubsub", "topic": "task-events", "data": without_order_keys(&request["value"])}),
        "the complete event: the task as stored, without its order keys"
    );
    let stored = stub.state("tasks", &format!("task:{id}")).unwrap();
    assert_eq!(stored, request["value"]);
    assert_eq!(
        (stored["title"].as_str(), stored["owner"].as_str(), stored["version"].as_u64()),
        (Some("Water plants"), Some("alice"), Some(1))
    );
    assert_eq!(stored["created_at"], "2026-11-22T10:00:00Z");

    // Published right after the commit, then the record is gone.
    let published = stub.published("task-events");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].query.get("metadata.cloudevent.id"), Some(&event_id));
    assert_eq!(published[0].query.get("metadata.cloudevent.type").map(String::as_str), Some("todo.task.created"));
    assert_eq!(published[0].query.get("metadata.partitionKey"), Some(&id.to_string()));
    assert_eq!(published[0].body, without_order_keys(&stored));
    assert_eq!(stub.all_state("tasks").len(), 1, "only the task remains: {:?}", stub.all_state("tasks"));
}

#[tokio::test]
async fn a_repeated_request_creates_nothing_new() {
    let stub = StubSidecar::start().await;
    let app = app(stub.client(None), None).await;
    let event = request("import-2", json!({"title": "Once"}));
    assert_eq!(app.deliver(create_task::ROUTE, &event, None).await.1, json!({"status": "SUCCESS"}));
    let before = stub.all_state("tasks");
    stub.clear_requests();
    assert_eq!(app.deliver(create_task::ROUTE, &event, None).await.1, json!({"status": "SUCCESS"}));
    assert_eq!(stub.all_state("tasks"), before, "the duplicate changed nothing");
    assert_eq!(before.len(), 1);
    let id = task_id_for_request("alice", "import-2");
    let calls: Vec<(Method, String)> = stub.requests().into_iter().map(|r| (r.method, r.path)).collect();
    assert_eq!(
        calls,
        [(Method::GET, format!("/v1.0/state/tasks/task:{id}"))],
        "a read answers it: no write, no publish"
    );
}

#[tokio::test]
async fn the_same_request_id_from_two_owners_is_two_tasks() {
    let stub = StubSidecar::start().await;
    let app = app(stub.client(None), None).await;
    app.deliver(create_task::ROUTE, &request("r-1", json!({"title": "A"})), None).await;
    let mut other = request("r-1", json!({"title": "B"}));
    other["data"]["owner"] = json!("bob");
    app.deliver(create_task::ROUTE, &other, None).await;
    assert_eq!(stub.all_state("tasks").len(), 2);
}

#[tokio::test]
async fn invalid_requests_are_dropped_and_write_nothing() {
    let stub = StubSidecar::start().await;
    let app = app(stub.client(None), None).await;
    let cases = [
        request("r", json!({"title": ""})),
        request("r", json!({"title": "x", "priority": "someday"})),
        request("r", json!({"title": "x", "recurrence": {"rule": "FREQ=DAILY"}})),
        request("", json!({"title": "x"})),
        cloudevent("r", "todo.task.create", "task-create", json!({"request_id": "r", "task": {"title": "no owner"}})),
        cloudevent(
            "r",
            "todo.task.create",
            "task-create",
            json!({"request_id": "r", "owner": "", "task": {"title": "x"}}),
        ),
        cloudevent(
            "r",
            "todo.task.delete",
            "task-create",
            json!({"request_id": "r", "owner": "a", "task": {"title": "x"}}),
        ),
    ];
    for event in cases {
        assert_eq!(app.deliver(create_task::ROUTE, &event, None).await.1, json!({"status": "DROP"}), "{event}");
    }
    assert!(stub.writes("tasks").is_empty());
}

#[tokio::test]
async fn an_unavailable_sidecar_or_store_is_retried() {
    let down = app(unreachable_client().await, None).await;
    assert_eq!(
        down.deliver(create_task::ROUTE, &request("r", json!({"title": "x"})), None).await.1,
        json!({"status": "RETRY"})
    );

    let stub = StubSidecar::start().await;
    stub.fail(Method::POST, "/v1.0/state/tasks/transaction", 500, 1);
    let app = app(stub.client(None), None).await;
    assert_eq!(
        app.deliver(create_task::ROUTE, &request("r", json!({"title": "x"})), None).await.1,
        json!({"status": "RETRY"})
    );
    assert!(stub.all_state("tasks").is_empty());
    assert_eq!(
        app.deliver(create_task::ROUTE, &request("r", json!({"title": "x"})), None).await.1,
        json!({"status": "SUCCESS"})
    );
    assert_eq!(stub.all_state("tasks").len(), 1);
}

#[tokio::test]
async fn deliveries_need_the_app_token() {
    let stub = StubSidecar::start().await;
    let app = app(stub.client(None), Some("tok")).await;
    assert_eq!(app.deliver(create_task::ROUTE, &request("r", json!({"title": "x"})), Some("bad")).await.0, 401);
    assert!(stub.writes("tasks").is_empty());
    assert_eq!(app.http.get(format!("{}/healthz", app.url)).send().await.unwrap().status().as_u16(), 200);
}

#[tokio::test]
async fn subscribes_to_task_create() {
    let function = create_task::build(unreachable_client().await, Clock::system());
    let subscription = &function.subscriptions()[0];
    assert_eq!(subscription.topic(), "task-create");
    assert_eq!(subscription.dead_letter(), Some("create-task-dlq"));
}

/// A stored task without the order keys it is stored with (events never carry them).
fn without_order_keys(stored: &Value) -> Value {
    let mut task = stored.clone();
    assert!(task.as_object_mut().and_then(|o| o.remove("_order")).is_some(), "stored with order keys");
    task
}
