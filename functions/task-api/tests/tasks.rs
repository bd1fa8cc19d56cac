//! Reading and changing one task: ownership, merge patch, If-Match, complete, delete, and
//! concurrent writers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::Method;
use chrono::Duration;
use common::{Harness, event, now, put_task, task, upsert};
use dapr_fn::clock::Clock;
use dapr_fn::runtime::RuntimeConfig;
use serde_json::json;
use todo_core::audit::AuditEntry;
use todo_core::events::{TaskChange, task_event_id};
use todo_core::order::OrderKeys;
use todo_core::task::{Priority, Status, Task};
use uuid::Uuid;

fn path(task: &Task) -> String {
    format!("/v1/tasks/{}", task.id)
}

#[tokio::test]
async fn get_returns_the_callers_task_with_its_version_as_etag() {
    let h = Harness::start().await;
    let mut t = task(1, "alice", "Pay rent");
    t.version = 7;
    h.put_task(&t);
    let answer = h.get(&path(&t)).user("alice").send().await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("etag"), Some("\"7\""));
    assert_eq!(serde_json::from_value::<Task>(answer.body).unwrap(), t);
}

#[tokio::test]
async fn if_none_match_with_the_current_version_is_304_without_a_body() {
    let h = Harness::start().await;
    let mut t = task(1, "alice", "Pay rent");
    t.version = 7;
    h.put_task(&t);
    for tag in ["\"7\"", "W/\"7\"", "\"6\", \"7\"", "*"] {
        let answer = h.get(&path(&t)).user("alice").header("If-None-Match", tag).send().await;
        assert_eq!((answer.status, answer.text.as_str()), (304, ""), "{tag}");
        assert_eq!(answer.header("etag"), Some("\"7\""), "{tag}");
    }
    // A stale copy gets the task; another user's task stays 404 whatever the header says.
    let stale = h.get(&path(&t)).user("alice").header("If-None-Match", "\"6\"").send().await;
    assert_eq!((stale.status, stale.body["version"].as_u64()), (200, Some(7)));
    assert_eq!(h.get(&path(&t)).user("bob").header("If-None-Match", "*").send().await.status, 404);
    let malformed = h.get(&path(&t)).user("alice").header("If-None-Match", "7").send().await;
    assert_eq!((malformed.status, malformed.body["field"].as_str()), (400, Some("If-None-Match")));
}

#[tokio::test]
async fn missing_deleted_and_non_uuid_ids_are_404() {
    let h = Harness::start().await;
    let mut gone = task(1, "alice", "gone");
    gone.deleted_at = Some(now());
    h.put_task(&gone);
    for target in [format!("/v1/tasks/{}", Uuid::from_u128(99)), path(&gone), "/v1/tasks/not-a-uuid".to_owned()] {
        let answer = h.get(&target).user("alice").send().await;
        assert_eq!(answer.status, 404, "{target}");
        assert_eq!(answer.body, json!({"error": "task not found"}));
    }
}

#[tokio::test]
async fn another_users_task_is_404_everywhere_and_never_written() {
    let h = Harness::start().await;
    let t = task(1, "alice", "private");
    h.put_task(&t);
    let p = path(&t);
    let answers = [
        h.get(&p).user("bob").send().await,
        h.patch(&p).user("bob").json(&json!({"title": "mine now"})).send().await,
        h.post(&format!("{p}/complete")).user("bob").send().await,
        h.delete(&p).user("bob").send().await,
        h.get(&format!("{p}/audit")).user("bob").send().await,
    ];
    for answer in answers {
        assert_eq!(answer.status, 404, "{:?}", answer.body);
        assert_eq!(answer.body, json!({"error": "task not found"}), "indistinguishable from a missing task");
    }
    assert!(h.task_transactions().is_empty());
    assert!(h.stub.requests_to(Method::POST, "/v1.0-alpha1/state/audit/query").is_empty(), "no audit read either");
    assert_eq!(h.stored(t.id), Some(t));
}

#[tokio::test]
async fn patch_applies_a_merge_patch_and_emits_updated_guarded_by_the_etag() {
    let h = Harness::start().await;
    let mut t = task(1, "alice", "Pay rent");
    t.description = "by the 1st".into();
    let etag = h.put_task(&t);
    for content_type in ["application/merge-patch+json", "application/json"] {
        let priority = if content_type == "application/json" { "urgent" } else { "high" };
        let answer = h
            .patch(&path(&t))
            .user("alice")
            .json(&json!({"priority": priority, "description": null, "tags": ["home"]}))
            .content_type(content_type)
            .send()
            .await;
        assert_eq!(answer.status, 200, "{content_type}: {:?}", answer.body);
    }
    let stored = h.stored(t.id).unwrap();
    assert_eq!((stored.priority, stored.description.as_str(), stored.version), (Priority::Urgent, "", 3));
    assert!(stored.tags.contains("home"));
    assert_eq!(stored.updated_at, now());

    let transactions = h.task_transactions();
    assert_eq!(transactions.len(), 2);
    let first = upsert(&transactions[0]);
    assert_eq!(first["key"], format!("task:{}", t.id));
    assert_eq!(first["etag"], etag, "guarded by the ETag it was read with");
    assert_eq!(first["options"], json!({"concurrency": "first-write"}));
    assert_eq!(first["value"]["version"], 2);
    let announced = event(&transactions[0]);
    assert_eq!(
        (announced["type"].as_str(), announced["id"].as_str()),
        (Some("todo.task.updated"), Some(task_event_id(t.id, 2).as_str()))
    );
    assert_eq!((announced["subject"].clone(), announced["partition_key"].clone()), (json!(t.id), json!(t.id)));
    let mut written = first["value"].clone();
    let order = written.as_object_mut().unwrap().remove("_order").expect("stored with its order keys");
    let written_task: Task = serde_json::from_value(written.clone()).unwrap();
    assert_eq!(order, json!(OrderKeys::of(&written_task)));
    assert_eq!(announced["data"], written, "the event carries the task as written, without its order keys");
}

#[tokio::test]
async fn a_patch_that_changes_nothing_is_200_without_a_write() {
    let h = Harness::start().await;
    let mut t = task(1, "alice", "Pay rent");
    t.priority = Priority::High;
    h.put_task(&t);
    for patch in [json!({}), json!({"priority": "high", "title": "  Pay rent "})] {
        let answer = h.patch(&path(&t)).user("alice").json(&patch).send().await;
        assert_eq!(answer.status, 200, "{patch}");
        assert_eq!(answer.header("etag"), Some("\"1\""));
        assert_eq!(answer.body["version"], 1);
    }
    assert!(h.task_transactions().is_empty());
}

#[tokio::test]
async fn an_invalid_patch_is_400_or_422_naming_the_field_and_writes_nothing() {
    let h = Harness::start().await;
    let t = task(1, "alice", "Pay rent");
    h.put_task(&t);
    // 400: not a merge patch of a task. 422: a well-formed patch whose merged result is invalid.
    let cases = [
        (json!({"title": ""}), 422, "title"),
        (json!({"title": null}), 400, "title"),
        (json!({"priority": null}), 400, "priority"),
        (json!({"status": "completed"}), 400, "status"),
        (json!({"priority": "whenever"}), 400, "priority"),
        (json!({"recurrence": {"rule": "FREQ=WEEKLY"}}), 422, "due"),
        (json!({"reminder": {"before_due_seconds": 60}}), 422, "reminder.before_due_seconds"),
    ];
    for (patch, status, field) in cases {
        let answer = h.patch(&path(&t)).user("alice").json(&patch).send().await;
        assert_eq!((answer.status, answer.field()), (status, Some(field)), "{patch}: {:?}", answer.body);
    }
    let wrong_type = h.patch(&path(&t)).user("alice").raw_body(b"{}", Some("text/plain")).send().await;
    assert_eq!(wrong_type.status, 415);
    assert!(h.task_transactions().is_empty());
    assert_eq!(h.stored(t.id), Some(t));
}

#[tokio::test]
async fn if_match_with_a_stale_version_is_412_and_writes_nothing() {
    let h = Harness::start().await;
    let mut t = task(1, "alice", "Pay rent");
    t.version = 3;
    h.put_task(&t);
    let p = path(&t);
    let answers = [
        h.patch(&p).user("alice").header("If-Match", "\"2\"").json(&json!({"title": "new"})).send().await,
        h.post(&format!("{p}/complete")).user("alice").header("If-Match", "\"2\"").send().await,
        h.delete(&p).user("alice").header("If-Match", "\"2\"").send().await,
        h.delete(&p).user("alice").header("If-Match", "W/\"3\"").send().await,
    ];
    for answer in answers {
        assert_eq!(answer.status, 412, "{:?}", answer.body);
        assert_eq!(answer.field(), Some("If-Match"));
    }
    let malformed = h.delete(&p).user("alice").header("If-Match", "3").send().await;
    assert_eq!((malformed.status, malformed.field()), (400, Some("If-Match")));
    assert!(h.task_transactions().is_empty());
    assert_eq!(h.stored(t.id), Some(t));
}

#[tokio::test]
async fn if_match_with_the_current_version_succeeds() {
    let h = Harness::start().await;
    let t = task(1, "alice", "Pay rent");
    h.put_task(&t);
    let answer = h
        .patch(&path(&t))
        .user("alice")
        .header("If-Match", "\"1\"")
        .json(&json!({"title": "Pay rent now"}))
        .send()
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("etag"), Some("\"2\""));
    let completed = h.post(&format!("{}/complete", path(&t))).user("alice").header("If-Match", "*").send().await;
    assert_eq!((completed.status, completed.body["version"].as_u64()), (200, Some(3)));
}

#[tokio::test]
async fn completing_twice_writes_one_completion() {
    let h = Harness::start().await;
    let t = task(1, "alice", "Pay rent");
    h.put_task(&t);
    let first = h.post(&format!("{}/complete", path(&t))).user("alice").send().await;
    assert_eq!(first.status, 200);
    assert_eq!((first.body["status"].as_str(), first.body["completed_at"].clone()), (Some("completed"), json!(now())));
    let second = h.post(&format!("{}/complete", path(&t))).user("alice").json(&json!({"ignored": true})).send().await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body, first.body, "the completed task, unchanged");

    let transactions = h.task_transactions();
    assert_eq!(transactions.len(), 1, "one todo.task.completed only");
    assert_eq!(event(&transactions[0])["type"], "todo.task.completed");
    assert_eq!(h.stored(t.id).unwrap().status, Status::Completed);
}

#[tokio::test]
async fn reopening_undoes_a_completion_once() {
    let h = Harness::start().await;
    let t = task(1, "alice", "Pay rent");
    h.put_task(&t);
    let open = h.post(&format!("{}/reopen", path(&t))).user("alice").send().await;
    assert_eq!((open.status, open.body["version"].as_u64()), (200, Some(1)), "an open task: nothing to reopen");
    assert!(h.task_transactions().is_empty());
    assert_eq!(h.post(&format!("{}/reopen", path(&t))).user("bob").send().await.status, 404, "not bob's");

    assert_eq!(h.post(&format!("{}/complete", path(&t))).user("alice").send().await.status, 200);
    let reopened = h.post(&format!("{}/reopen", path(&t))).user("alice").header("If-Match", "\"2\"").send().await;
    assert_eq!(reopened.status, 200);
    assert_eq!(
        (reopened.body["status"].as_str(), reopened.body["completed_at"].clone(), reopened.body["version"].as_u64()),
        (Some("open"), serde_json::Value::Null, Some(3))
    );
    let again = h.post(&format!("{}/reopen", path(&t))).user("alice").send().await;
    assert_eq!(again.body, reopened.body, "reopening twice changes nothing the second time");

    let transactions = h.task_transactions();
    assert_eq!(transactions.len(), 2, "one completion, one reopening");
    assert_eq!(event(&transactions[1])["type"], "todo.task.reopened");
    assert_eq!(h.stored(t.id).unwrap().status, Status::Open);
}

#[tokio::test]
async fn delete_writes_a_tombstone_then_the_task_is_gone_but_its_trail_is_not() {
    let h = Harness::start().await;
    let t = task(1, "alice", "Pay rent");
    h.put_task(&t);
    let entry = AuditEntry::new(
        "task:00000000-0000-0000-0000-000000000001:v1",
        TaskChange::Created,
        Some(now()),
        t.clone(),
        now(),
    );
    h.stub.put_state("audit", &entry.key(), serde_json::to_value(&entry).unwrap());

    let deleted = h.delete(&path(&t)).user("alice").send().await;
    assert_eq!((deleted.status, &deleted.body), (204, &serde_json::Value::Null));
    let transactions = h.task_transactions();
    assert_eq!(transactions.len(), 1);
    let written = upsert(&transactions[0]);
    assert_eq!(event(&transactions[0])["type"], "todo.task.deleted");
    assert_eq!(written["value"]["deleted_at"], json!(now()));
    assert_eq!(written["value"]["version"], 2);
    assert!(h.stored(t.id).unwrap().is_deleted(), "a tombstone, not a removal");

    assert_eq!(h.get(&path(&t)).user("alice").send().await.status, 404);
    assert_eq!(h.delete(&path(&t)).user("alice").send().await.status, 404, "a second delete");
    assert_eq!(h.patch(&path(&t)).user("alice").json(&json!({"title": "x"})).send().await.status, 404);
    let trail = h.get(&format!("{}/audit", path(&t))).user("alice").send().await;
    assert_eq!(trail.status, 200);
    assert_eq!(trail.body["items"][0]["event_id"], "task:00000000-0000-0000-0000-000000000001:v1");
    assert_eq!(h.task_transactions().len(), 1);
}

/// A clock that, when read between the handler's read and its write, lets "another writer"
/// change the task (a new version under a new store ETag) — `times` times.
#[tokio::test]
async fn deleting_with_series_end_drops_the_recurrence_so_nothing_follows() {
    let h = Harness::start().await;
    let recurring = |n: u128| {
        let mut t = task(n, "alice", "Standup");
        let due = chrono::DateTime::parse_from_rfc3339("2026-12-01T09:00:00+01:00").unwrap();
        t.due = Some(due);
        t.recurrence = Some(serde_json::from_value(json!({"rule": "FREQ=DAILY"})).unwrap());
        t.series = Some(todo_core::task::Series { id: t.id, index: 0, anchor: due, anchor_index: 0 });
        t
    };
    let (skip, end) = (recurring(1), recurring(2));
    h.put_task(&skip);
    h.put_task(&end);

    // Bad values and unknown parameters are refused before anything is read or written.
    for (query, field) in [("series=never", "series"), ("scope=all", "scope")] {
        let answer = h.delete(&format!("{}?{query}", path(&end))).user("alice").send().await;
        assert_eq!((answer.status, answer.field()), (400, Some(field)), "{query}");
    }
    assert!(h.task_transactions().is_empty());

    // A plain delete skips the occurrence: the tombstone keeps its recurrence.
    assert_eq!(h.delete(&path(&skip)).user("alice").send().await.status, 204);
    assert_eq!(upsert(&h.task_transactions()[0])["value"]["recurrence"]["rule"], "FREQ=DAILY");
    // series=end: the tombstone has none, so on-task-completed asks for no next occurrence.
    assert_eq!(h.delete(&format!("{}?series=end", path(&end))).user("alice").send().await.status, 204);
    let written = upsert(&h.task_transactions()[1]).clone();
    assert_eq!(event(&h.task_transactions()[1])["type"], "todo.task.deleted");
    assert_eq!(written["value"]["recurrence"], serde_json::Value::Null);
    assert!(h.stored(end.id).unwrap().is_deleted());
}

fn meddling_clock(stub: Arc<dapr_fn::testing::StubSidecar>, original: Task, times: u64) -> Clock {
    let calls = AtomicU64::new(0);
    Clock::from_fn(move || {
        let call = calls.fetch_add(1, Ordering::SeqCst);
        if call < times {
            let mut other = original.clone();
            other.description = format!("edited elsewhere {call}");
            other.version = original.version + call + 1;
            other.updated_at = now() - Duration::seconds(1);
            put_task(&stub, &other);
        }
        now()
    })
}

#[tokio::test]
async fn a_concurrent_change_is_retried_and_both_changes_land() {
    let t = task(1, "alice", "Pay rent");
    let seeded = t.clone();
    let h = Harness::custom(common::config(), RuntimeConfig::default(), move |stub| {
        put_task(&stub, &seeded);
        meddling_clock(stub, seeded, 1)
    })
    .await;
    let answer = h.patch(&path(&t)).user("alice").json(&json!({"priority": "urgent"})).send().await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let stored = h.stored(t.id).unwrap();
    assert_eq!(stored.priority, Priority::Urgent, "our change");
    assert_eq!(stored.description, "edited elsewhere 0", "theirs, not overwritten");
    assert_eq!(stored.version, 3);
    assert_eq!(answer.body, serde_json::to_value(&stored).unwrap());
    let transactions = h.task_transactions();
    assert_eq!(transactions.len(), 2, "the conflicting write, then the retry");
    assert_ne!(upsert(&transactions[0])["etag"], upsert(&transactions[1])["etag"], "the retry uses the fresh ETag");
}

#[tokio::test]
async fn a_concurrent_change_under_if_match_is_412() {
    let t = task(1, "alice", "Pay rent");
    let seeded = t.clone();
    let h = Harness::custom(common::config(), RuntimeConfig::default(), move |stub| {
        put_task(&stub, &seeded);
        meddling_clock(stub, seeded, 1)
    })
    .await;
    let answer =
        h.patch(&path(&t)).user("alice").header("If-Match", "\"1\"").json(&json!({"priority": "urgent"})).send().await;
    assert_eq!(answer.status, 412, "{:?}", answer.body);
    assert_eq!(h.task_transactions().len(), 1, "no write after the conflict");
    assert_eq!(h.stored(t.id).unwrap().priority, Priority::Medium);
}

#[tokio::test]
async fn a_task_that_keeps_changing_is_409_after_a_few_attempts() {
    let t = task(1, "alice", "Pay rent");
    let seeded = t.clone();
    let h = Harness::custom(common::config(), RuntimeConfig::default(), move |stub| {
        put_task(&stub, &seeded);
        meddling_clock(stub, seeded, u64::MAX)
    })
    .await;
    let answer = h.post(&format!("{}/complete", path(&t))).user("alice").send().await;
    assert_eq!(answer.status, 409, "{:?}", answer.body);
    assert_eq!(h.task_transactions().len(), task_api::access::MAX_ATTEMPTS);
    assert_eq!(h.stored(t.id).unwrap().status, Status::Open, "every attempt lost");
}

#[tokio::test]
async fn a_failed_transaction_that_is_not_a_conflict_is_503() {
    let h = Harness::start().await;
    let t = task(1, "alice", "Pay rent");
    h.put_task(&t);
    h.stub.fail(Method::POST, "/v1.0/state/tasks/transaction", 500, 1);
    let answer = h.post(&format!("{}/complete", path(&t))).user("alice").send().await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.header("retry-after"), Some("2"));
    assert_eq!(h.task_transactions().len(), 1, "not retried as if it were a conflict");
    assert_eq!(h.stored(t.id), Some(t));
}
