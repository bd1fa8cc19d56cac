//! `GET /v1/tasks/{id}/reminder`: what fire-reminder recorded, or `pending`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Harness, task};
use serde_json::json;
use todo_core::task::Reminder;

#[tokio::test]
async fn pending_until_recorded_then_the_record() {
    let h = Harness::start().await;
    let mut t = task(1, "alice", "Pay rent");
    t.due = Some(chrono::DateTime::parse_from_rfc3339("2026-12-01T09:00:00+01:00").unwrap());
    t.reminder = Some(Reminder::BeforeDueSeconds(900));
    h.put_task(&t);
    let path = format!("/v1/tasks/{}/reminder", t.id);

    let answer = h.get(&path).user("alice").send().await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["status"], "pending");
    assert_eq!(answer.body["remind_at"], "2026-12-01T07:45:00Z");
    assert_eq!(h.stub.requests().last().unwrap().path, format!("/v1.0/state/state/reminder:{}", t.id));

    h.stub.put_state(
        "state",
        &format!("reminder:{}", t.id),
        json!({
            "task_id": t.id, "status": "fired", "remind_at": "2026-12-01T07:45:00Z", "task_version": t.version,
            "updated_at": "2026-12-01T07:45:01Z", "fired_at": "2026-12-01T07:45:00.300Z", "late_by_ms": 300
        }),
    );
    let answer = h.get(&path).user("alice").send().await;
    assert_eq!(
        answer.body,
        json!({"task_id": t.id, "status": "fired", "remind_at": "2026-12-01T07:45:00Z", "fired_at": "2026-12-01T07:45:00.300Z", "late_by_ms": 300, "deliveries": []})
    );
}

#[tokio::test]
async fn no_reminder_or_not_yours_is_404() {
    let h = Harness::start().await;
    let t = task(2, "alice", "No reminder");
    h.put_task(&t);
    let path = format!("/v1/tasks/{}/reminder", t.id);
    assert_eq!(h.get(&path).user("alice").send().await.status, 404);
    let mut with = task(3, "alice", "Mine");
    with.reminder = Some(Reminder::At(chrono::DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z").unwrap()));
    h.put_task(&with);
    h.stub.clear_requests();
    let answer = h.get(&format!("/v1/tasks/{}/reminder", with.id)).user("bob").send().await;
    assert_eq!(answer.status, 404);
    assert!(
        !h.stub.requests().iter().any(|r| r.path.contains("/state/state/")),
        "bob's request read no reminder record"
    );
}
