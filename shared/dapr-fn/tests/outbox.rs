//! The project's transactional outbox against the stub sidecar: what the transaction holds,
//! what is published after it and with which metadata, what is deleted, what a failure leaves
//! behind, and the relay that picks it up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::Method;
use chrono::{DateTime, Utc};
use dapr_fn::clock::Clock;
use dapr_fn::dapr::{SaveItem, TxOp};
use dapr_fn::outbox::{Outbox, OutboxConfig, OutboxEvent, OutboxRecord, RelayPass};
use dapr_fn::runtime::Stopping;
use dapr_fn::testing::StubSidecar;
use serde_json::json;

const STORE: &str = "tasks";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn event(id: &str) -> OutboxEvent {
    OutboxEvent {
        id: id.to_owned(),
        event_type: "example.changed".to_owned(),
        subject: "thing-1".to_owned(),
        partition_key: "thing-1".to_owned(),
        pubsub: "pubsub".to_owned(),
        topic: "things".to_owned(),
        data: json!({"id": "thing-1", "n": 2}),
    }
}

/// A clock tests move by hand.
fn settable(start: &str) -> (Clock, Arc<Mutex<DateTime<Utc>>>) {
    let now = Arc::new(Mutex::new(at(start)));
    let read = now.clone();
    (Clock::from_fn(move || *read.lock().unwrap()), now)
}

fn outbox(stub: &StubSidecar, clock: Clock) -> Outbox {
    Outbox::new(stub.client(None), STORE, OutboxConfig::default()).with_clock(clock)
}

fn change() -> TxOp {
    TxOp::Upsert(SaveItem::new("thing:thing-1", &json!({"id": "thing-1", "n": 2})).unwrap())
}

fn outbox_keys(stub: &StubSidecar) -> Vec<String> {
    stub.all_state(STORE).into_keys().filter(|k| k.starts_with("outbox:")).collect()
}

#[tokio::test]
async fn the_transaction_holds_the_change_and_one_complete_record_per_event() {
    let stub = StubSidecar::start().await;
    let outbox = outbox(&stub, Clock::fixed(at("2026-12-05T10:00:00Z")));
    outbox.commit(vec![change()], &[event("thing-1:v2")]).await.unwrap();

    let transactions = stub.writes(STORE);
    assert_eq!(transactions.len(), 1, "one transaction");
    assert_eq!(
        transactions[0].body,
        json!({"operations": [
            {"operation": "upsert", "request": {"key": "thing:thing-1", "value": {"id": "thing-1", "n": 2}}},
            {"operation": "upsert", "request": {"key": "outbox:thing-1:v2", "value": {
                "outbox_record": "v1",
                "written_at": "2026-12-05T10:00:00.000Z",
                "event": {"id": "thing-1:v2", "type": "example.changed", "subject": "thing-1",
                          "partition_key": "thing-1", "pubsub": "pubsub", "topic": "things",
                          "data": {"id": "thing-1", "n": 2}},
            }}},
        ]})
    );
}

#[tokio::test]
async fn after_the_commit_the_event_is_published_with_its_metadata_then_its_record_deleted() {
    let stub = StubSidecar::start().await;
    let outbox = outbox(&stub, Clock::system());
    let committed = outbox.commit(vec![change()], &[event("thing-1:v2")]).await.unwrap();
    assert_eq!((committed.published, committed.left_for_relay), (1, 0));
    stub.wait_until_swept(STORE).await;

    let calls: Vec<(Method, String)> = stub.all_requests().into_iter().map(|r| (r.method, r.path)).collect();
    assert_eq!(
        calls,
        [
            (Method::POST, "/v1.0/state/tasks/transaction".to_owned()),
            (Method::POST, "/v1.0/publish/pubsub/things".to_owned()),
            (Method::POST, "/v1.0/state/tasks/transaction".to_owned()),
        ],
        "commit, then publish, then a transaction that deletes the record"
    );
    assert_eq!(
        stub.transactions(STORE)[1].body,
        json!({"operations": [{"operation": "delete", "request": {"key": "outbox:thing-1:v2"}}]})
    );
    let published = &stub.published("things")[0];
    assert_eq!(published.query.get("metadata.cloudevent.id").map(String::as_str), Some("thing-1:v2"));
    assert_eq!(published.query.get("metadata.cloudevent.type").map(String::as_str), Some("example.changed"));
    assert_eq!(published.query.get("metadata.cloudevent.subject").map(String::as_str), Some("thing-1"));
    assert_eq!(published.query.get("metadata.partitionKey").map(String::as_str), Some("thing-1"));
    assert_eq!(published.header("content-type"), Some("application/json"));
    assert_eq!(published.body, json!({"id": "thing-1", "n": 2}), "the data itself, not the record");
    assert!(outbox_keys(&stub).is_empty(), "the record is gone");
    assert_eq!(stub.state(STORE, "thing:thing-1"), Some(json!({"id": "thing-1", "n": 2})), "the change stays");
}

#[tokio::test]
async fn a_failed_transaction_publishes_nothing() {
    let stub = StubSidecar::start().await;
    let outbox = outbox(&stub, Clock::system());
    stub.fail(Method::POST, "/v1.0/state/tasks/transaction", 500, 1);
    let error = outbox.commit(vec![change()], &[event("thing-1:v2")]).await.unwrap_err();
    assert!(matches!(error, dapr_fn::dapr::DaprError::TransactionFailed { .. }), "{error:?}");
    assert!(stub.requests_to(Method::POST, "/v1.0/publish/").is_empty(), "nothing published");
    assert!(stub.all_state(STORE).is_empty(), "nothing written");

    // An ETag conflict inside the transaction (the stub rolls back like the store): the same.
    stub.put_state(STORE, "thing:thing-1", json!({"id": "thing-1", "n": 1}));
    let guarded = TxOp::Upsert(SaveItem::new("thing:thing-1", &json!({"n": 2})).unwrap().if_match(Some("999".into())));
    assert!(outbox.commit(vec![guarded], &[event("thing-1:v2")]).await.is_err());
    assert!(stub.requests_to(Method::POST, "/v1.0/publish/").is_empty());
    assert!(outbox_keys(&stub).is_empty(), "no record of a change that did not happen");
}

#[tokio::test]
async fn a_failed_publish_leaves_the_record_for_the_relay_and_the_commit_stands() {
    let stub = StubSidecar::start().await;
    let outbox = outbox(&stub, Clock::system());
    stub.fail(Method::POST, "/v1.0/publish/", 500, 1);
    let committed = outbox.commit(vec![change()], &[event("thing-1:v2"), event("thing-1:v3")]).await.unwrap();
    assert_eq!((committed.published, committed.left_for_relay), (0, 2), "the later event keeps its place behind");
    assert_eq!(stub.requests_to(Method::POST, "/v1.0/publish/").len(), 1, "no publish after the failed one");
    assert!(stub.requests_to(Method::DELETE, "/v1.0/state/").is_empty());
    assert_eq!(outbox_keys(&stub), ["outbox:thing-1:v2", "outbox:thing-1:v3"]);
    assert!(stub.state(STORE, "thing:thing-1").is_some(), "the change committed");
}

#[tokio::test]
async fn the_relay_publishes_and_deletes_old_records_oldest_first_and_skips_young_ones() {
    let stub = StubSidecar::start().await;
    let (clock, now) = settable("2026-12-05T10:00:30Z");
    for (id, written) in
        [("b:v1", "2026-12-05T10:00:10Z"), ("a:v1", "2026-12-05T10:00:02Z"), ("c:v1", "2026-12-05T10:00:28Z")]
    {
        let record = OutboxRecord::new(event(id), at(written));
        stub.put_state(STORE, &record.key(), serde_json::to_value(&record).unwrap());
    }
    stub.put_state(STORE, "thing:thing-1", json!({"id": "thing-1", "owner": "alice"}));
    let outbox = outbox(&stub, clock);
    let (_signal, stopping) = Stopping::channel();

    let pass = outbox.relay_once(&stopping).await.unwrap();
    assert_eq!(pass, RelayPass { relayed: 2, young: 1, undecodable: 0 });
    let ids: Vec<String> = stub.published("things").iter().map(|r| r.query["metadata.cloudevent.id"].clone()).collect();
    assert_eq!(ids, ["a:v1", "b:v1"], "the two older than 5 s, oldest first");
    let query = &stub.requests_to(Method::POST, "/v1.0-alpha1/state/tasks/query")[0];
    assert_eq!(query.body["filter"], json!({"EQ": {"outbox_record": "v1"}}));
    assert_eq!(outbox_keys(&stub), ["outbox:c:v1"], "the young record stays with its writer");
    assert!(stub.state(STORE, "thing:thing-1").is_some(), "not a record: never touched");

    // Once it is old enough, the next pass relays it too.
    *now.lock().unwrap() = at("2026-12-05T10:00:40Z");
    assert_eq!(outbox.relay_once(&stopping).await.unwrap().relayed, 1);
    assert!(outbox_keys(&stub).is_empty());
    assert_eq!(outbox.relay_once(&stopping).await.unwrap(), RelayPass::default(), "nothing left");
}

#[tokio::test]
async fn published_records_are_deleted_many_per_transaction() {
    let stub = StubSidecar::start().await;
    let outbox = outbox(&stub, Clock::system());
    // Ten writers at once: their records reach the sweeper while its first delete is out.
    let mut commits = tokio::task::JoinSet::new();
    for n in 0..10 {
        let outbox = outbox.clone();
        commits.spawn(async move { outbox.commit(Vec::new(), &[event(&format!("t{n}:v1"))]).await.unwrap() });
    }
    while let Some(done) = commits.join_next().await {
        done.unwrap();
    }
    stub.wait_until_swept(STORE).await;
    let deletes: Vec<usize> = stub
        .transactions(STORE)
        .iter()
        .map(|t| t.body["operations"].as_array().unwrap())
        .filter(|ops| ops.iter().all(|op| op["operation"] == "delete"))
        .map(Vec::len)
        .collect();
    assert_eq!(deletes.iter().sum::<usize>(), 10, "every record deleted once: {deletes:?}");
    assert!(deletes.len() < 10, "some transactions deleted several records: {deletes:?}");
}

#[tokio::test]
async fn the_relay_stops_at_a_failed_publish_and_leaves_the_record() {
    let stub = StubSidecar::start().await;
    let record = OutboxRecord::new(event("a:v1"), at("2026-12-05T10:00:00Z"));
    stub.put_state(STORE, &record.key(), serde_json::to_value(&record).unwrap());
    let outbox = outbox(&stub, Clock::fixed(at("2026-12-05T10:01:00Z")));
    let (_signal, stopping) = Stopping::channel();
    stub.fail(Method::POST, "/v1.0/publish/", 500, 1);
    assert_eq!(outbox.relay_once(&stopping).await.unwrap().relayed, 0);
    assert_eq!(outbox_keys(&stub), ["outbox:a:v1"]);
    assert_eq!(outbox.relay_once(&stopping).await.unwrap().relayed, 1, "the next pass gets it out");
}

#[tokio::test]
async fn the_relay_loop_runs_every_interval_and_stops_when_told() {
    let stub = StubSidecar::start().await;
    let config = OutboxConfig { outbox_relay_interval_ms: 40, outbox_relay_min_age_ms: 0, ..OutboxConfig::default() };
    let outbox = Outbox::new(stub.client(None), STORE, config);
    let (signal, stopping) = Stopping::channel();
    let relay = tokio::spawn(outbox.run_relay(stopping));
    // Passes with nothing to do: the loop goes on, one pass per interval.
    let passes = || stub.requests_to(Method::POST, "/v1.0-alpha1/state/tasks/query").len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while passes() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "{} relay passes in 5 s at a 40 ms interval", passes());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let record = OutboxRecord::new(event("late:v1"), Utc::now());
    stub.put_state(STORE, &record.key(), serde_json::to_value(&record).unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !outbox_keys(&stub).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the relay never picked the record up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal.stop();
    tokio::time::timeout(Duration::from_secs(1), relay).await.expect("the relay stops promptly").unwrap();
}
