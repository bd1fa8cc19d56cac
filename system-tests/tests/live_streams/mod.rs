//! Live streams (task-api's `GET /v1/events`) as the system tests use them, on devhost
//! (`tests/live.rs`) and on the real platform (`tests/platform.rs`): open one on a given
//! replica, wait until changes flow, and read the change of a given task. A module of the tests
//! rather than of the library: it reads with `dapr_fn::testing`, which only test builds enable
//! (the library is built with the release binaries).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use dapr_fn::testing::sse::{EventStream, SseEvent};
use reqwest::StatusCode;
use serde_json::{Value, json};

use system_tests::api::Api;

/// Opens a stream on the task-api at `base` as the user of `token`.
pub async fn open(base: &str, token: &str, last_event_id: Option<&str>) -> anyhow::Result<EventStream> {
    // No overall timeout: a stream is meant to stay open.
    let http = reqwest::Client::builder().no_proxy().build()?;
    let url = format!("{}/v1/events", base.trim_end_matches('/'));
    EventStream::open(&http, &url, token, last_event_id).await?.map_err(|r| anyhow::anyhow!("GET {url} refused: {r:?}"))
}

/// The next change on `stream` (an event with an id) and its data, within `within`.
pub async fn next_change(stream: &mut EventStream, within: Duration) -> anyhow::Result<(SseEvent, Value)> {
    let event = stream.next(within).await?.context("the stream ended")?;
    ensure!(event.id.is_some(), "a change, got {event:?}");
    let data: Value = serde_json::from_str(&event.data).with_context(|| format!("data of {event:?}"))?;
    Ok((event, data))
}

/// The next change of task `id` on `stream`, skipping others' (duplicates and earlier changes
/// may come first), within `within` in all.
pub async fn change_of(stream: &mut EventStream, id: &str, within: Duration) -> anyhow::Result<(SseEvent, Value)> {
    let started = Instant::now();
    loop {
        let left = within.checked_sub(started.elapsed()).with_context(|| format!("no change of task {id} in time"))?;
        let (event, data) = next_change(stream, left).await?;
        if data["id"] == id || data["task_id"] == id {
            return Ok((event, data));
        }
    }
}

/// Creates tasks through `api` until one of them reaches `stream`: a replica's live group joins
/// at the newest offset once its sidecar has subscribed, so changes made before that are not
/// streamed. Within `within`.
pub async fn until_streaming(api: &Api, stream: &mut EventStream, within: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < within {
        api.post("/v1/tasks", Some(&json!({"title": "warm-up"})), StatusCode::CREATED).await?;
        match stream.next(Duration::from_secs(2)).await {
            Ok(Some(event)) if event.id.is_some() => return Ok(()),
            Ok(None) => bail!("the stream ended"),
            _ => {}
        }
    }
    bail!("no change reached the stream within {within:?}")
}
