//! `GET /v1/events`: a user's changes as Server-Sent Events, delivered through the live
//! subscriptions; isolation, resuming, caps, token expiry and shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Harness, config, token};
use dapr_fn::clock::Clock;
use dapr_fn::runtime::RuntimeConfig;
use dapr_fn::testing::cloudevent;
use dapr_fn::testing::sse::{EventStream, SseEvent};
use serde_json::{Value, json};
use task_api::live::feed::{REMINDERS_ROUTE, TASK_EVENTS_ROUTE};
use todo_core::events::{topics, types};
use uuid::Uuid;

/// How long a test waits for an event that should come (a fact, not a pause).
const DEADLINE: Duration = Duration::from_secs(10);

/// An open `GET /v1/events` answer.
struct Stream(EventStream);

impl Stream {
    /// The next event; `None` when the stream ended.
    async fn next(&mut self) -> Option<SseEvent> {
        self.0.next(DEADLINE).await.expect("an event (or the end of the stream) within the deadline")
    }

    /// The next event's id, failing on anything else.
    async fn next_id(&mut self) -> String {
        let event = self.next().await.expect("the stream goes on");
        match event.id {
            Some(id) => id,
            None => panic!("an event with an id, got {event:?}"),
        }
    }
}

async fn open(h: &Harness, bearer: &str, last_event_id: Option<&str>) -> Result<Stream, (u16, Value)> {
    let url = format!("{}/v1/events", h.app.url);
    match EventStream::open(&h.app.http, &url, bearer, last_event_id).await.unwrap() {
        Ok(stream) => Ok(Stream(stream)),
        Err(refused) => Err((refused.status, refused.body)),
    }
}

/// A task change of `owner` as the outbox publishes it (the task as data).
fn task_event(owner: &str, n: u128, version: u64) -> Value {
    let mut task = todo_core::testing::sample_task(Uuid::from_u128(n), owner);
    task.version = version;
    let id = todo_core::events::task_event_id(task.id, version);
    cloudevent(&id, types::TASK_UPDATED, topics::TASK_EVENTS, serde_json::to_value(&task).unwrap())
}

async fn deliver(h: &Harness, route: &str, event: &Value) {
    let (status, body) = h.app.deliver(route, event, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("SUCCESS")), "{event}");
}

#[tokio::test]
async fn a_stream_carries_the_callers_changes_once_and_nobody_elses() {
    let h = Harness::start().await;
    let mut alice = open(&h, &token("alice"), None).await.unwrap();
    deliver(&h, TASK_EVENTS_ROUTE, &task_event("bob", 1, 1)).await;
    let first = task_event("alice", 2, 1);
    deliver(&h, TASK_EVENTS_ROUTE, &first).await;
    deliver(&h, TASK_EVENTS_ROUTE, &first).await; // redelivered (at-least-once)
    let reminder = cloudevent(
        "reminder:x:1",
        types::REMINDER_DUE,
        topics::REMINDERS,
        json!({"task_id": Uuid::from_u128(2), "owner": "alice", "title": "Pay rent"}),
    );
    deliver(&h, REMINDERS_ROUTE, &reminder).await;
    let event = alice.next().await.unwrap();
    assert_eq!(event.id.as_deref(), Some(first["id"].as_str().unwrap()));
    assert_eq!(event.event.as_deref(), Some(types::TASK_UPDATED));
    let data: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!((data["owner"].as_str(), data["version"].as_u64()), (Some("alice"), Some(1)), "the task as data");
    let event = alice.next().await.unwrap();
    assert_eq!(
        (event.id.as_deref(), event.event.as_deref()),
        (Some("reminder:x:1"), Some(types::REMINDER_DUE)),
        "the duplicate and bob's change never came between"
    );
    // An event without an owner is acknowledged and goes nowhere.
    deliver(&h, TASK_EVENTS_ROUTE, &cloudevent("x", types::TASK_UPDATED, topics::TASK_EVENTS, json!({}))).await;
    deliver(&h, TASK_EVENTS_ROUTE, &task_event("alice", 3, 1)).await;
    assert_eq!(alice.next_id().await, todo_core::events::task_event_id(Uuid::from_u128(3), 1));
}

#[tokio::test]
async fn last_event_id_resumes_and_an_unknown_one_asks_for_a_resync() {
    let h = Harness::start().await;
    let events: Vec<Value> = (1..=3).map(|n| task_event("alice", n, 1)).collect();
    for event in &events {
        deliver(&h, TASK_EVENTS_ROUTE, event).await;
    }
    let id = |n: usize| events[n]["id"].as_str().unwrap().to_owned();
    // Within the reorder margin, the changes before the named one come again (clients ignore
    // versions they have), then the ones after it.
    let mut resumed = open(&h, &token("alice"), Some(&id(1))).await.unwrap();
    assert_eq!(resumed.next_id().await, id(0));
    assert_eq!(resumed.next_id().await, id(2));
    deliver(&h, TASK_EVENTS_ROUTE, &task_event("alice", 4, 1)).await;
    assert_eq!(resumed.next_id().await, todo_core::events::task_event_id(Uuid::from_u128(4), 1), "then live");

    let mut lost = open(&h, &token("alice"), Some("task:gone:v1")).await.unwrap();
    let event = lost.next().await.unwrap();
    assert_eq!((event.event.as_deref(), event.id), (Some("resync"), None));
    assert!(event.data.contains("list your tasks again"), "{}", event.data);
}

#[tokio::test]
async fn streams_are_capped_per_user_with_a_clear_error() {
    let mut config = config();
    config.live_streams_per_user = 1;
    let h = Harness::custom(config, RuntimeConfig::default(), |_| Clock::fixed(common::now())).await;
    let _first = open(&h, &token("alice"), None).await.unwrap();
    let Err((status, body)) = open(&h, &token("alice"), None).await else { panic!("a second stream") };
    assert_eq!(status, 429);
    assert!(body["error"].as_str().unwrap().contains("at most 1 per user"), "{body}");
    assert!(open(&h, &token("bob"), None).await.is_ok(), "another user is not affected");
    let Err((status, _)) = open(&h, "not-a-token", None).await else { panic!("no auth") };
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_stream_ends_when_its_token_expires() {
    let h = Harness::start().await;
    let short = task_api::auth::mint(common::SECRET.as_bytes(), "alice", Duration::from_secs(2)).unwrap();
    let mut stream = open(&h, &short, None).await.unwrap();
    let event = stream.next().await.unwrap();
    assert_eq!(event.event.as_deref(), Some("expired"), "{event:?}");
    assert_eq!(stream.next().await, None, "and the stream ends");
}

#[tokio::test]
async fn shutdown_ends_every_stream() {
    let mut h = Harness::start().await;
    let mut stream = open(&h, &token("alice"), None).await.unwrap();
    assert!(h.app.stop_background(Duration::from_secs(5)).await, "the background tasks stop");
    assert_eq!(stream.next().await, None, "the stream ends: the client reconnects elsewhere");
    let Err((status, body)) = open(&h, &token("alice"), None).await else { panic!("a stream while closing") };
    assert_eq!(status, 503, "{body}");
}

#[tokio::test]
async fn the_live_page_and_its_script_are_served_locked_down() {
    let h = Harness::start().await;
    let page = h.app.http.get(format!("{}/live", h.app.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
    assert!(page.text().await.unwrap().contains(r#"<script src="/live.js""#), "the page loads its script");
    let script = h.app.http.get(format!("{}/live.js", h.app.url)).send().await.unwrap();
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");
    let js = script.text().await.unwrap();
    assert!(js.contains(r#"fetch("/v1/events""#) && js.contains("Last-Event-ID"), "it reads the stream and resumes");
}
