//! The sidecar client against the stub sidecar: exact requests out, Dapr's statuses in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::Method;
use dapr_fn::dapr::{DaprError, FailurePolicy, Inserted, Job, Publish, Query, SaveItem, SortOrder, TxOp};
use dapr_fn::testing::{StubSidecar, unreachable_client};
use dapr_fn::trace::TraceContext;
use serde_json::{Value, json};

#[tokio::test]
async fn publish_sends_metadata_content_type_token_and_trace() {
    let stub = StubSidecar::start_with_token(Some("s3cret")).await;
    let dapr = stub.client(Some("s3cret"));
    let trace = TraceContext::continue_from(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), None);
    let options = Publish::new("todo.reminder.due").id("reminder:t-1:5").partition_key("t-1").subject("t-1");
    trace.clone().scope(dapr.publish("pubsub", "reminders", &json!({"a": 1}), &options)).await.unwrap();

    let sent = stub.published("reminders");
    assert_eq!(sent.len(), 1);
    let request = &sent[0];
    assert_eq!(request.path, "/v1.0/publish/pubsub/reminders");
    assert_eq!(request.query.get("metadata.partitionKey").map(String::as_str), Some("t-1"));
    assert_eq!(request.query.get("metadata.cloudevent.id").map(String::as_str), Some("reminder:t-1:5"));
    assert_eq!(request.query.get("metadata.cloudevent.type").map(String::as_str), Some("todo.reminder.due"));
    assert_eq!(request.query.get("metadata.cloudevent.subject").map(String::as_str), Some("t-1"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("dapr-api-token"), Some("s3cret"));
    assert_eq!(request.header("traceparent"), Some(trace.traceparent().as_str()));
    assert_eq!(request.body, json!({"a": 1}));
}

#[tokio::test]
async fn wrong_token_is_an_error_not_a_success() {
    let stub = StubSidecar::start_with_token(Some("right")).await;
    let err = stub.client(Some("wrong")).publish("pubsub", "t", &json!({}), &Publish::default()).await.unwrap_err();
    assert!(matches!(err, DaprError::Status { status: 401, .. }), "{err:?}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn a_missing_key_is_none_and_a_present_one_carries_its_etag() {
    let stub = StubSidecar::start().await;
    let dapr = stub.client(None);
    assert_eq!(dapr.get_state::<Value>("tasks", "task:nope").await.unwrap(), None);
    let etag = stub.put_state("tasks", "task:1", json!({"title": "x"}));
    let got = dapr.get_state::<Value>("tasks", "task:1").await.unwrap().unwrap();
    assert_eq!(got.value, json!({"title": "x"}));
    assert_eq!(got.etag, Some(etag));
}

#[tokio::test]
async fn a_stale_etag_on_save_is_a_conflict() {
    let stub = StubSidecar::start().await;
    let dapr = stub.client(None);
    let etag = stub.put_state("state", "k", json!(1));
    dapr.save_state("state", &[SaveItem::new("k", &2).unwrap().if_match(Some(etag.clone()))]).await.unwrap();
    let err = dapr.save_state("state", &[SaveItem::new("k", &3).unwrap().if_match(Some(etag))]).await.unwrap_err();
    assert!(matches!(err, DaprError::EtagMismatch { .. }), "{err:?}");
    assert!(err.is_conflict());
    assert_eq!(stub.state("state", "k"), Some(json!(2)));
    let saves = stub.requests_to(Method::POST, "/v1.0/state/state");
    assert_eq!(
        saves[0].body,
        json!([{"key": "k", "value": 2, "etag": saves[0].body[0]["etag"], "options": {"concurrency": "first-write"}}])
    );
}

#[tokio::test]
async fn insert_if_absent_tells_duplicates_apart() {
    let stub = StubSidecar::start().await;
    let dapr = stub.client(None);
    assert_eq!(dapr.insert_state("state", "audit:1:e", &json!({"n": 1})).await.unwrap(), Inserted::Inserted);
    assert_eq!(dapr.insert_state("state", "audit:1:e", &json!({"n": 2})).await.unwrap(), Inserted::AlreadyExists);
    assert_eq!(stub.state("state", "audit:1:e"), Some(json!({"n": 1})));
}

#[tokio::test]
async fn insert_if_absent_reports_a_store_failure() {
    let stub = StubSidecar::start().await;
    stub.fail(Method::POST, "/v1.0/state/state", 500, 1);
    let err = stub.client(None).insert_state("state", "k", &1).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(stub.state("state", "k"), None);
}

#[tokio::test]
async fn transactions_are_atomic_and_report_500() {
    let stub = StubSidecar::start().await;
    let dapr = stub.client(None);
    stub.put_state("tasks", "task:1", json!({"v": 1}));
    let ops = [
        TxOp::Upsert(SaveItem::new("task:2", &json!({"v": 2})).unwrap()),
        TxOp::Upsert(SaveItem::new("task:1", &json!({"v": 9})).unwrap().if_absent()),
    ];
    let err = dapr.transact("tasks", &ops).await.unwrap_err();
    assert!(matches!(err, DaprError::TransactionFailed { .. }), "{err:?}");
    assert_eq!(stub.state("tasks", "task:2"), None, "nothing of a failed transaction is written");
    assert_eq!(stub.state("tasks", "task:1"), Some(json!({"v": 1})));

    let ops = [
        TxOp::Upsert(SaveItem::new("task:2", &json!({"v": 2})).unwrap()),
        TxOp::Delete { key: "task:1".into(), etag: None },
    ];
    dapr.transact("tasks", &ops).await.unwrap();
    assert_eq!(stub.state("tasks", "task:1"), None);
    assert_eq!(
        stub.transactions("tasks").last().unwrap().body["operations"][1],
        json!({"operation": "delete", "request": {"key": "task:1"}})
    );
}

#[tokio::test]
async fn delete_sends_if_match_and_reports_conflicts() {
    let stub = StubSidecar::start().await;
    let dapr = stub.client(None);
    let etag = stub.put_state("state", "k", json!(1));
    let err = dapr.delete_state("state", "k", Some("999")).await.unwrap_err();
    assert!(matches!(err, DaprError::EtagMismatch { .. }));
    dapr.delete_state("state", "k", Some(&etag)).await.unwrap();
    assert_eq!(stub.state("state", "k"), None);
    let deletes = stub.requests_to(Method::DELETE, "/v1.0/state/state/k");
    assert_eq!(deletes[1].header("if-match"), Some(etag.as_str()));
}

#[tokio::test]
async fn bulk_get_reads_the_data_field() {
    let stub = StubSidecar::start().await;
    stub.put_state("tasks", "a", json!({"n": 1}));
    let items = stub.client(None).get_bulk_state::<Value>("tasks", &["a".into(), "b".into()]).await.unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].value, Some(json!({"n": 1})));
    assert!(items[0].etag.is_some());
    assert_eq!((items[1].key.as_str(), &items[1].value), ("b", &None));
}

#[tokio::test]
async fn query_pages_and_treats_an_empty_answer_as_no_results() {
    let stub = StubSidecar::start().await;
    let dapr = stub.client(None);
    let empty = dapr.query_state::<Value>("tasks", &Query::new().filter(json!({"EQ": {"owner": "x"}}))).await.unwrap();
    assert!(empty.results.is_empty() && empty.token.is_none());

    for i in 0..5 {
        stub.put_state("tasks", &format!("task:{i}"), json!({"owner": "alice", "n": i}));
    }
    stub.put_state("tasks", "task:other", json!({"owner": "bob", "n": 99}));
    let query = Query::new().filter(json!({"EQ": {"owner": "alice"}})).sort("n", SortOrder::Desc).limit(3);
    let first = dapr.query_state::<Value>("tasks", &query).await.unwrap();
    assert_eq!(first.results.iter().map(|r| r.value["n"].as_i64().unwrap()).collect::<Vec<_>>(), vec![4, 3, 2]);
    let second = dapr.query_state::<Value>("tasks", &query.token(first.token)).await.unwrap();
    assert_eq!(second.results.iter().map(|r| r.value["n"].as_i64().unwrap()).collect::<Vec<_>>(), vec![1, 0]);
    // v1 hands out a token with every page of a limited query, the last one included.
    assert_eq!(second.token.as_deref(), Some("5"));
    assert!(stub.requests_to(Method::POST, "/v1.0-alpha1/state/tasks/query").len() >= 3);
}

#[tokio::test]
async fn jobs_schedule_get_delete() {
    let stub = StubSidecar::start().await;
    let dapr = stub.client(None);
    let due = chrono::DateTime::parse_from_rfc3339("2026-12-01T08:45:00+01:00").unwrap();
    let mut job = Job::once_at(due, json!({"task_id": "t"}));
    job.overwrite = false;
    dapr.schedule_job("reminder-t", &job).await.unwrap();
    let err = dapr.schedule_job("reminder-t", &job).await.unwrap_err();
    assert!(matches!(err, DaprError::JobExists { .. }), "{err:?}");
    let job = job.failure_policy(FailurePolicy::Drop);
    dapr.schedule_job("reminder-t", &Job { overwrite: true, ..job }).await.unwrap();

    let got = dapr.get_job("reminder-t").await.unwrap().unwrap();
    assert_eq!(got.data, json!({"task_id": "t"}), "data is unwrapped from the protobuf Any");
    assert_eq!(got.due_time.as_deref(), Some("2026-12-01T08:45:00+01:00"));
    assert_eq!(dapr.get_job("reminder-none").await.unwrap(), None, "Dapr's 500 for a missing job is None");

    dapr.delete_job("reminder-t").await.unwrap();
    assert!(stub.jobs().is_empty());
    let posts = stub.requests_to(Method::POST, "/v1.0-alpha1/jobs/reminder-t");
    assert_eq!(posts.last().unwrap().body["failurePolicy"], json!({"drop": {}}));
    assert!(posts.iter().all(|p| p.body.get("name").is_none()), "the name belongs in the URL only");
}

#[tokio::test]
async fn readiness_is_checked_before_the_first_call_and_remembered() {
    let stub = StubSidecar::start().await;
    let dapr = stub.client(None);
    dapr.get_state::<Value>("state", "k").await.unwrap();
    // Once the components were reported loaded, later calls do not wait on health again.
    stub.fail(Method::GET, "/v1.0/healthz/outbound", 500, 100);
    dapr.get_state::<Value>("state", "k").await.unwrap();
    assert_eq!(stub.requests_to(Method::GET, "/v1.0/state/state/k").len(), 2);
}

#[tokio::test]
async fn a_sidecar_that_is_down_is_a_transient_error() {
    let dapr = unreachable_client().await;
    let err = dapr.get_state::<Value>("state", "k").await.unwrap_err();
    assert!(matches!(err, DaprError::NotReady(_)), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn a_sidecar_whose_components_are_not_loaded_is_not_ready() {
    let stub = StubSidecar::start().await;
    stub.fail(Method::GET, "/v1.0/healthz/outbound", 500, 1000);
    let err = stub.client(None).publish("pubsub", "t", &json!({}), &Publish::default()).await.unwrap_err();
    assert!(matches!(err, DaprError::NotReady(_)), "{err:?}");
    assert!(stub.published("t").is_empty());
}

#[tokio::test]
async fn the_stub_refuses_filters_dapr_refuses() {
    let stub = StubSidecar::start().await;
    let dapr = stub.client(None);
    for filter in [
        json!({"AND": [{"EQ": {"owner": "a"}}]}),
        json!({"EQ": {"a": 1, "b": 2}}),
        json!({"GT": {"a": "text"}}),
        json!({"LIKE": {"a": "x%"}}),
    ] {
        let err = dapr.query_state::<Value>("tasks", &Query::new().filter(filter.clone())).await.unwrap_err();
        assert!(matches!(err, DaprError::Status { status: 500, .. }), "{filter}: {err:?}");
    }
}
