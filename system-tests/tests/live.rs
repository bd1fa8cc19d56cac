//! Live updates end to end on devhost: the real binaries, task-api's `GET /v1/events` fed
//! through `pubsub-live` (its own consumer group on the same topics as the functions'),
//! changes made through the REST API, and by other functions, reach their owner's stream, and
//! no one else's.

mod live_streams;

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use live_streams::{change_of, next_change, open, until_streaming};
use reqwest::StatusCode;
use serde_json::json;
use system_tests::host::Setup;
use todo_core::events::types;

/// How long a change may take to reach a stream here: the target is 200 ms (issue 19); the
/// deadline is for a loaded test machine.
const WITHIN: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_their_owners_stream_and_no_one_elses() -> anyhow::Result<()> {
    let setup = Setup::new(&[])?;
    let system = setup.start(false).await?;
    let result = run(&setup).await;
    system.stop().await;
    result
}

async fn run(setup: &Setup) -> anyhow::Result<()> {
    let (alice, bob) = (setup.api("alice")?, setup.api("bob")?);
    let mut alices = open(alice.base(), alice.token(), None).await?;
    let mut bobs = open(bob.base(), bob.token(), None).await?;
    until_streaming(&alice, &mut alices, Duration::from_secs(60)).await?;

    let sent = Instant::now();
    let task =
        alice.post("/v1/tasks", Some(&json!({"title": "Pay rent", "priority": "high"})), StatusCode::CREATED).await?;
    let id = task["id"].as_str().context("the task's id")?.to_owned();
    let (event, data) = change_of(&mut alices, &id, WITHIN).await?;
    let latency = sent.elapsed();
    ensure!(event.event.as_deref() == Some(types::TASK_CREATED), "{event:?}");
    ensure!(event.id.as_deref() == Some(&format!("task:{id}:v1")), "the CloudEvent id as the SSE id: {event:?}");
    ensure!(data["title"] == "Pay rent" && data["version"] == 1, "the task as data: {data}");
    println!("devhost: create -> alice's stream {latency:?}");

    alice.post(&format!("/v1/tasks/{id}/complete"), None, StatusCode::OK).await?;
    let (event, data) = next_change(&mut alices, WITHIN).await?;
    ensure!(event.event.as_deref() == Some(types::TASK_COMPLETED) && data["version"] == 2, "{event:?}");

    // Bob's stream carried none of alice's changes: his own change is the first thing on it.
    let his = bob.post("/v1/tasks", Some(&json!({"title": "bob's"})), StatusCode::CREATED).await?;
    let (_, data) = next_change(&mut bobs, WITHIN).await?;
    ensure!(data["id"] == his["id"] && data["owner"] == "bob", "bob's stream carried {data}");
    Ok(())
}
