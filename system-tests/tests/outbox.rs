//! The project's transactional outbox end to end, through devhost and the real binaries:
//!
//! - a record a writer left behind (it committed, then died before publishing) is published by
//!   task-api's relay within a few seconds, once, with its own event id, and audit-writer
//!   records it exactly once;
//! - an `Idempotency-Key` replay of a create is answered from a read: nothing new is written
//!   or published.

use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::Utc;
use dapr_fn::dapr::{SaveItem, TxOp};
use dapr_fn::outbox::{OutboxConfig, OutboxRecord, PASSES_METRIC, RELAYED_METRIC};
use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::api::{Api, client, eventually, json_body};
use system_tests::host::Setup;
use todo_core::events::{TaskChange, components, task_event_id, task_id_for_request, topics};
use todo_core::validate::{NewTask, new_task};
use todo_store::TaskStore;

const USER: &str = "alice";

/// Generous: these tests share two cores with every other test of the workspace.
const SETTLE: Duration = Duration::from_secs(60);

/// `task-events` messages whose CloudEvent id is `id`.
fn published_with_id(setup: &Setup, id: &str) -> anyhow::Result<Vec<devhost::peek::Peeked>> {
    Ok(setup.peek(topics::TASK_EVENTS)?.into_iter().filter(|m| m.body["id"] == id).collect())
}

/// Waits until task-api's outbox relay has run `passes` more passes than when called.
async fn relay_passes(setup: &Setup, passes: u32) -> anyhow::Result<()> {
    let before = setup.counter("task-api", PASSES_METRIC).await?;
    eventually(&format!("{passes} more outbox relay passes of task-api (after {before})"), SETTLE, || async {
        Ok((setup.counter("task-api", PASSES_METRIC).await? >= before + f64::from(passes)).then_some(()))
    })
    .await
}

/// The event ids in the audit trail of `task_id`.
async fn audited_ids(api: &Api, task_id: &str) -> anyhow::Result<Vec<String>> {
    api.audit_field(task_id, "event_id").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_a_crashed_writer_left_behind_is_relayed_once_and_audited_once() -> anyhow::Result<()> {
    let setup = Setup::new(&[])?;
    let system = setup.start(false).await?;
    let api = setup.api(USER)?;
    let http = client()?;
    let result = async {
        // What create-task's transaction commits for a request, written straight through its
        // sidecar: the task and its outbox record. Its own publish never happens (the writer
        // "died" right after the commit).
        let id = task_id_for_request(USER, "left-behind");
        let input: NewTask = serde_json::from_value(json!({"title": "Left behind", "tags": ["outbox"]}))?;
        let task = new_task(id, USER, input, None, Utc::now())?;
        let event = TaskStore::event(&task, TaskChange::Created)?;
        let event_id = task_event_id(id, 1);
        assert_eq!(event.id, event_id);
        let written_at = Utc::now();
        let record = OutboxRecord::new(event, written_at);
        let operations =
            [TxOp::Upsert(TaskStore::item(&task)?.if_absent()), TxOp::Upsert(SaveItem::new(record.key(), &record)?)];
        let sidecar = setup.sidecar("create-task")?;
        let committed = json_body(
            http.post(format!("{sidecar}/v1.0/state/{}/transaction", components::TASKS_STORE)),
            &json!({ "operations": operations }),
        )
        .send()
        .await?;
        if committed.status() != StatusCode::NO_CONTENT {
            bail!("the transaction answered {}: {}", committed.status(), committed.text().await.unwrap_or_default());
        }
        assert!(published_with_id(&setup, &event_id)?.is_empty(), "nobody published it yet");

        // task-api's relay publishes it once it is OUTBOX_RELAY_MIN_AGE_MS old (default 5 s),
        // within a pass (default every 2 s, jittered by up to a quarter).
        let relayed = eventually("the relay to publish the record", SETTLE, || async {
            Ok(published_with_id(&setup, &event_id)?.into_iter().next())
        })
        .await?;
        let waited_ms = relayed.published_at_ms - written_at.timestamp_millis();
        let defaults = OutboxConfig::default();
        let min_age = i64::try_from(defaults.outbox_relay_min_age_ms)?;
        let latest = min_age + i64::try_from(defaults.outbox_relay_interval_ms * 2)? + 3_000;
        assert!(waited_ms >= min_age, "relayed {waited_ms} ms after it was written: before its writer's time was up");
        assert!(waited_ms <= latest, "relayed {waited_ms} ms after it was written: later than {latest} ms");
        assert_eq!(relayed.key.as_deref(), Some(id.to_string().as_str()), "partition key = task id");
        assert_eq!(relayed.body["type"], "todo.task.created");
        assert_eq!(relayed.body["subject"], id.to_string());
        assert_eq!(relayed.body["data"], serde_json::to_value(&task)?);

        // The record is gone, the task is the one committed, and the audit trail has it once.
        eventually("the relayed record to be deleted", SETTLE, || async {
            let r =
                http.get(format!("{sidecar}/v1.0/state/{}/{}", components::TASKS_STORE, record.key())).send().await?;
            Ok((r.status() == StatusCode::NO_CONTENT).then_some(()))
        })
        .await?;
        let audited = eventually("audit-writer to record the event", SETTLE, || async {
            let ids = audited_ids(&api, &id.to_string()).await?;
            Ok((!ids.is_empty()).then_some(ids))
        })
        .await?;
        assert_eq!(audited, std::slice::from_ref(&event_id));

        assert_eq!(setup.counter("task-api", RELAYED_METRIC).await?, 1.0, "task-api counts what its relay published");

        // Three relay passes later: still one publish and one audit entry.
        relay_passes(&setup, 3).await?;
        setup.settle(SETTLE).await?;
        assert_eq!(published_with_id(&setup, &event_id)?.len(), 1, "published exactly once");
        assert_eq!(audited_ids(&api, &id.to_string()).await?, [event_id], "audited exactly once");
        let stored = api.get(&format!("/v1/tasks/{id}")).await?;
        assert_eq!((stored["title"].as_str(), stored["version"].as_u64()), (Some("Left behind"), Some(1)));
        anyhow::Ok(())
    }
    .await;
    system.stop().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_replay_writes_nothing_and_publishes_nothing() -> anyhow::Result<()> {
    let setup = Setup::new(&[])?;
    let system = setup.start(false).await?;
    let api = setup.api(USER)?;
    let http = client()?;
    let result = async {
        let create = || {
            let request = http
                .post(format!("{}/v1/tasks", api.base()))
                .bearer_auth(api.token())
                .header("idempotency-key", "replayed-key");
            json_body(request, &json!({"title": "Replayed", "tags": ["replay"]})).send()
        };
        let first = create().await?;
        assert_eq!(first.status(), StatusCode::CREATED);
        let first: Value = serde_json::from_slice(&first.bytes().await?)?;
        let id = first["id"].as_str().context("id")?.to_owned();
        let event_id = task_event_id(id.parse()?, 1);
        eventually("the creation to be audited", SETTLE, || async {
            Ok((audited_ids(&api, &id).await? == [event_id.clone()]).then_some(()))
        })
        .await?;
        setup.settle(SETTLE).await?;
        let sidecar = setup.sidecar("task-api")?;
        let task_url = format!("{sidecar}/v1.0/state/{}/task:{id}", components::TASKS_STORE);
        let etag = |r: &reqwest::Response| r.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let before = http.get(&task_url).send().await?;
        let etag_before = etag(&before);
        let stored_before: Value = serde_json::from_slice(&before.bytes().await?)?;
        let messages_before = setup.peek(topics::TASK_EVENTS)?.len();

        let again = create().await?;
        assert_eq!(again.status(), StatusCode::OK, "a replay");
        let again: Value = serde_json::from_slice(&again.bytes().await?)?;
        assert_eq!(again, first, "the task as created");

        // Past any relay pass that could publish a stray record.
        relay_passes(&setup, 2).await?;
        setup.settle(SETTLE).await?;
        assert_eq!(setup.peek(topics::TASK_EVENTS)?.len(), messages_before, "nothing published");
        let after = http.get(&task_url).send().await?;
        assert_eq!(etag(&after), etag_before, "the task was not written");
        assert_eq!(serde_json::from_slice::<Value>(&after.bytes().await?)?, stored_before);
        let record = http
            .get(format!("{sidecar}/v1.0/state/{}/{}", components::TASKS_STORE, OutboxRecord::key_of(&event_id)))
            .send()
            .await?;
        assert_eq!(record.status(), StatusCode::NO_CONTENT, "no outbox record");
        assert_eq!(audited_ids(&api, &id).await?, [event_id], "one audit entry");
        anyhow::Ok(())
    }
    .await;
    system.stop().await;
    result
}
