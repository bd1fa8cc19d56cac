//! Request semantics of create and PATCH: RFC 7396 merge of nested objects, reminders that
//! would fire in the past, and an Idempotency-Key reused with another body.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Harness;
use serde_json::{Value, json};

async fn create(h: &Harness, body: Value) -> String {
    h.create("alice", body).await["id"].as_str().unwrap().to_owned()
}

async fn patch(h: &Harness, id: &str, body: Value) -> common::Answer {
    h.patch(&format!("/v1/tasks/{id}"))
        .user("alice")
        .content_type("application/merge-patch+json")
        .json(&body)
        .send()
        .await
}

#[tokio::test]
async fn recurrence_and_reminder_merge_recursively() {
    let h = Harness::start().await;
    let id = create(
        &h,
        json!({"title": "Sync", "due": "2026-11-23T09:00:00+01:00", "time_zone": "Europe/Berlin",
               "reminder": {"before_due_seconds": 600},
               "recurrence": {"rule": "FREQ=WEEKLY", "exdates": ["2026-11-30T09:00:00+01:00"]}}),
    )
    .await;

    // Only the rule: the mode and the skipped dates stay.
    let answer = patch(&h, &id, json!({"recurrence": {"rule": "FREQ=WEEKLY;COUNT=10"}})).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(
        answer.body["recurrence"],
        json!({"rule": "FREQ=WEEKLY;COUNT=10", "mode": "strict", "exdates": ["2026-11-30T09:00:00+01:00"]})
    );
    // Adding a skipped date means sending the whole list (an array is replaced whole).
    let both = json!(["2026-11-30T09:00:00+01:00", "2026-12-07T09:00:00+01:00"]);
    let answer = patch(&h, &id, json!({"recurrence": {"exdates": both}})).await;
    assert_eq!(answer.body["recurrence"]["exdates"], both);
    assert_eq!(answer.body["recurrence"]["rule"], "FREQ=WEEKLY;COUNT=10");
    // The lead of the reminder alone.
    let answer = patch(&h, &id, json!({"reminder": {"before_due_seconds": 900}})).await;
    assert_eq!(answer.body["reminder"], json!({"before_due_seconds": 900}));

    // Switching the kind of reminder: merged as RFC 7396 says, `at` next to `before_due_seconds`
    // is no reminder: 422 telling how; with the other member as null it switches.
    let answer = patch(&h, &id, json!({"reminder": {"at": "2026-11-23T07:30:00Z"}})).await;
    assert_eq!((answer.status, answer.field()), (422, Some("reminder")), "{:?}", answer.body);
    assert!(answer.body["error"].as_str().unwrap().contains("\"before_due_seconds\": null"), "{:?}", answer.body);
    let answer = patch(&h, &id, json!({"reminder": {"at": "2026-11-23T07:30:00Z", "before_due_seconds": null}})).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["reminder"], json!({"at": "2026-11-23T07:30:00Z"}));

    // The mode alone, once nothing is skipped (after_completion cannot skip: 422 naming exdates).
    let answer = patch(&h, &id, json!({"recurrence": {"mode": "after_completion"}})).await;
    assert_eq!((answer.status, answer.field()), (422, Some("recurrence.exdates")), "{:?}", answer.body);
    let answer = patch(&h, &id, json!({"recurrence": {"mode": "after_completion", "exdates": null}})).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["recurrence"], json!({"rule": "FREQ=WEEKLY;COUNT=10", "mode": "after_completion"}));

    // null removes.
    let answer = patch(&h, &id, json!({"recurrence": null, "reminder": null})).await;
    assert_eq!((&answer.body["recurrence"], &answer.body["reminder"]), (&Value::Null, &Value::Null));
}

#[tokio::test]
async fn a_mode_for_a_task_without_recurrence_is_422_and_writes_nothing() {
    let h = Harness::start().await;
    let id = create(&h, json!({"title": "Once", "due": "2026-12-01T09:00:00Z"})).await;
    let writes = h.task_transactions().len();
    let answer = patch(&h, &id, json!({"recurrence": {"mode": "after_completion"}})).await;
    assert_eq!((answer.status, answer.field()), (422, Some("recurrence.rule")), "{:?}", answer.body);
    let answer = patch(&h, &id, json!({"reminder": {"at": null}})).await;
    assert_eq!((answer.status, answer.field()), (422, Some("reminder")), "{:?}", answer.body);
    assert_eq!(h.task_transactions().len(), writes, "nothing written");
}

#[tokio::test]
async fn a_reminder_in_the_past_is_422_saying_so() {
    let h = Harness::start().await; // now is 2026-11-22T10:00:00Z
    let past = h
        .post("/v1/tasks")
        .user("alice")
        .json(&json!({"title": "x", "reminder": {"at": "2026-01-01T08:00:00Z"}}))
        .send()
        .await;
    assert_eq!((past.status, past.field()), (422, Some("reminder")), "{:?}", past.body);
    assert!(
        past.body["error"].as_str().unwrap().starts_with("fires at 2026-01-01T08:00:00Z, which is in the past"),
        "{:?}",
        past.body
    );
    // Relative to a due time that is close: the lead reaches into the past.
    let lead = h
        .post("/v1/tasks")
        .user("alice")
        .json(&json!({"title": "x", "due": "2026-11-22T10:30:00Z", "reminder": {"before_due_seconds": 3600}}))
        .send()
        .await;
    assert_eq!((lead.status, lead.field()), (422, Some("reminder")), "{:?}", lead.body);
    assert!(h.task_transactions().is_empty(), "nothing written");

    // Allowed: a due time in the past (overdue), a reminder after the due time.
    create(&h, json!({"title": "late", "due": "2026-01-01T09:00:00Z"})).await;
    let id = create(
        &h,
        json!({"title": "chase", "due": "2026-12-01T09:00:00Z", "reminder": {"at": "2026-12-02T09:00:00Z"}}),
    )
    .await;

    // A patch that sets a past reminder, or moves the due time so the reminder is past.
    let answer = patch(&h, &id, json!({"reminder": {"at": "2026-11-22T09:00:00Z"}})).await;
    assert_eq!((answer.status, answer.field()), (422, Some("reminder")), "{:?}", answer.body);
    let answer = patch(&h, &id, json!({"reminder": {"at": null, "before_due_seconds": 60}})).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let answer = patch(&h, &id, json!({"due": "2026-11-22T10:00:30Z"})).await;
    assert_eq!((answer.status, answer.field()), (422, Some("reminder")), "{:?}", answer.body);
}

#[tokio::test]
async fn an_idempotency_key_reused_with_another_body_is_422() {
    let h = Harness::start().await;
    let body = json!({"title": "Buy milk", "tags": ["errand"]});
    let post = |body: Value| {
        let h = &h;
        async move { h.post("/v1/tasks").user("alice").header("Idempotency-Key", "req-1").json(&body).send().await }
    };
    let first = post(body.clone()).await;
    assert_eq!(first.status, 201);
    let id = first.body["id"].as_str().unwrap().to_owned();

    // The task changes afterwards; the same request still gets it back (as it is now).
    assert_eq!(patch(&h, &id, json!({"title": "Buy oat milk"})).await.status, 200);
    let same = post(json!({"tags": ["errand"], "title": "Buy milk"})).await;
    assert_eq!(same.status, 200, "{:?}", same.body);
    assert_eq!((same.body["id"].as_str(), same.body["title"].as_str()), (Some(id.as_str()), Some("Buy oat milk")));

    // Another request under the same key, even one equal to the task's current fields.
    for other in [json!({"title": "Buy bread"}), json!({"title": "Buy oat milk", "tags": ["errand"]})] {
        let answer = post(other.clone()).await;
        assert_eq!((answer.status, answer.field()), (422, Some("Idempotency-Key")), "{other}: {:?}", answer.body);
        assert!(answer.body["error"].as_str().unwrap().contains("different request body"), "{:?}", answer.body);
    }
    assert_eq!(h.stub.all_state("tasks").keys().filter(|k| k.starts_with("task:")).count(), 1);
}

#[tokio::test]
async fn a_replay_is_answered_even_after_its_reminder_has_passed() {
    // The first request is accepted at 09:00 with a reminder at 09:30; the retry arrives at 10:00.
    let body = json!({"title": "x", "reminder": {"at": "2026-11-22T09:30:00Z"}});
    let early = Harness::custom(common::config(), Default::default(), |_| {
        dapr_fn::clock::Clock::fixed("2026-11-22T09:00:00Z".parse().unwrap())
    })
    .await;
    let first = early.post("/v1/tasks").user("alice").header("Idempotency-Key", "k").json(&body).send().await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let stored = early.stored(first.body["id"].as_str().unwrap().parse().unwrap()).unwrap();

    let h = Harness::start().await;
    h.put_task(&stored);
    let again = h.post("/v1/tasks").user("alice").header("Idempotency-Key", "k").json(&body).send().await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(again.body["id"], first.body["id"]);
    let fresh = h.post("/v1/tasks").user("alice").header("Idempotency-Key", "k2").json(&body).send().await;
    assert_eq!(fresh.status, 422, "{:?}", fresh.body);
}
