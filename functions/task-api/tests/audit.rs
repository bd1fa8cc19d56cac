//! `GET /v1/tasks/{id}/audit`: the trail, sorted by version, the caller's only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::Method;
use chrono::Duration;
use common::{Harness, now, task};
use serde_json::json;
use todo_core::audit::AuditEntry;
use todo_core::events::TaskChange;
use todo_core::task::Task;
use uuid::Uuid;

fn record(h: &Harness, event_id: &str, change: TaskChange, task: &Task, minutes: i64) {
    let entry = AuditEntry::new(event_id, change, Some(now() + Duration::minutes(minutes)), task.clone(), now());
    h.stub.put_state("audit", &entry.key(), serde_json::to_value(&entry).unwrap());
}

#[tokio::test]
async fn the_trail_is_sorted_by_version_and_holds_only_this_task_of_this_caller() {
    let h = Harness::start().await;
    let t = task(1, "alice", "Pay rent");
    h.put_task(&t);
    let mut v2 = t.clone();
    v2.version = 2;
    let mut v3 = t.clone();
    v3.version = 3;
    // Recorded out of order, with event ids that sort against the version order.
    record(&h, "event-c", TaskChange::Completed, &v3, 3);
    record(&h, "event-z", TaskChange::Created, &t, 1);
    record(&h, "event-a", TaskChange::Updated, &v2, 2);
    // Noise: another task of alice's, and a record claiming this task for bob.
    record(&h, "event-x", TaskChange::Created, &task(2, "alice", "other"), 0);
    let mut forged = t.clone();
    forged.owner = "bob".into();
    record(&h, "event-b", TaskChange::Updated, &forged, 0);

    let answer = h.get(&format!("/v1/tasks/{}/audit", t.id)).user("alice").send().await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let items = answer.body["items"].as_array().unwrap();
    let versions: Vec<u64> = items.iter().map(|e| e["task_version"].as_u64().unwrap()).collect();
    assert_eq!(versions, vec![1, 2, 3]);
    let changes: Vec<&str> = items.iter().map(|e| e["change"].as_str().unwrap()).collect();
    assert_eq!(changes, vec!["created", "updated", "completed"]);
    assert!(items.iter().all(|e| e["owner"] == "alice" && e["task_id"] == t.id.to_string()));

    let queries = h.stub.requests_to(Method::POST, "/v1.0-alpha1/state/audit/query");
    assert_eq!(queries.len(), 1);
    assert_eq!(
        queries[0].body["filter"],
        json!({"AND": [{"EQ": {"task_id": t.id.to_string()}}, {"EQ": {"owner": "alice"}}]})
    );
}

#[tokio::test]
async fn an_empty_trail_is_an_empty_list_and_a_missing_task_is_404() {
    let h = Harness::start().await;
    let t = task(1, "alice", "new");
    h.put_task(&t);
    let answer = h.get(&format!("/v1/tasks/{}/audit", t.id)).user("alice").send().await;
    assert_eq!((answer.status, answer.body), (200, json!({"items": []})));
    let missing = h.get(&format!("/v1/tasks/{}/audit", Uuid::from_u128(9))).user("alice").send().await;
    assert_eq!(missing.status, 404);
    let garbage = h.get("/v1/tasks/nope/audit").user("alice").send().await;
    assert_eq!(garbage.status, 404);
}
