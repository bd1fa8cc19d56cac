//! task-api runs the outbox relay of the `tasks` store as a background task: what a writer
//! (any writer: create-task too, which scales to zero) left behind is published and deleted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::http::Method;
use common::{Harness, now};
use dapr_fn::clock::Clock;
use dapr_fn::outbox::{OutboxEvent, OutboxRecord};
use dapr_fn::runtime::RuntimeConfig;
use dapr_fn::testing::unreachable_client;
use serde_json::json;
use todo_core::events::task_event_id;
use uuid::Uuid;

fn left_behind(id: Uuid, written: chrono::DateTime<chrono::Utc>) -> OutboxRecord {
    let event = OutboxEvent {
        id: task_event_id(id, 1),
        event_type: "todo.task.created".into(),
        subject: id.to_string(),
        partition_key: id.to_string(),
        pubsub: "pubsub".into(),
        topic: "task-events".into(),
        data: json!({"id": id, "title": "left behind"}),
    };
    OutboxRecord::new(event, written)
}

#[tokio::test]
async fn the_relay_publishes_what_a_writer_left_behind_and_leaves_young_records() {
    let mut config = common::config();
    config.outbox.outbox_relay_enabled = true;
    config.outbox.outbox_relay_interval_ms = 50;
    config.outbox.outbox_relay_min_age_ms = 5_000;
    let h = Harness::custom(config, RuntimeConfig::default(), |_| Clock::fixed(now())).await;
    let (old, young) = (Uuid::from_u128(1), Uuid::from_u128(2));
    for record in [left_behind(old, now() - chrono::Duration::seconds(30)), left_behind(young, now())] {
        h.stub.put_state("tasks", &record.key(), serde_json::to_value(&record).unwrap());
    }

    let old_key = format!("outbox:{}", task_event_id(old, 1));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h.stub.state("tasks", &old_key).is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the relay did not pick the record up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let published = h.stub.published("task-events");
    assert_eq!(published.len(), 1, "the old record only");
    assert_eq!(published[0].query["metadata.cloudevent.id"], task_event_id(old, 1));
    assert_eq!(published[0].query["metadata.partitionKey"], old.to_string());
    assert_eq!(published[0].body, json!({"id": old, "title": "left behind"}));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(h.stub.state("tasks", &format!("outbox:{}", task_event_id(young, 1))).is_some(), "young: its writer's");
    assert_eq!(h.stub.published("task-events").len(), 1, "and it stays unpublished");
    assert!(h.stub.requests_to(Method::POST, "/v1.0-alpha1/state/tasks/query").len() >= 2, "it keeps polling");
}

#[tokio::test]
async fn the_relay_is_a_background_task_unless_turned_off() {
    let dapr = unreachable_client().await;
    let on = task_api::build(dapr.clone(), task_api::Config::with_secret(common::SECRET), Clock::system());
    assert_eq!(on.background_names(), [task_api::LIVE_CLOSER, task_api::OUTBOX_RELAY]);
    let off = task_api::build(dapr, common::config(), Clock::system());
    assert_eq!(off.background_names(), [task_api::LIVE_CLOSER], "the relay is off");
}
