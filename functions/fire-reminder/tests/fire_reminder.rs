//! fire-reminder's real router against the stub sidecar: task events in, jobs out; job
//! callbacks in, `todo.reminder.due` out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::http::Method;
use chrono::{DateTime, Duration, Utc};
use dapr_fn::clock::Clock;
use dapr_fn::runtime::RuntimeConfig;
use dapr_fn::testing::{StubSidecar, TestApp, cloudevent, unreachable_client};
use fire_reminder::Config;
use serde_json::{Value, json};
use todo_core::task::{Reminder, Task};
use todo_core::testing::sample_task;
use uuid::Uuid;

const DUE: &str = "2026-12-01T09:00:00+01:00";
/// 15 minutes before DUE, in UTC.
const REMIND_AT: &str = "2026-12-01T07:45:00Z";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn task_id() -> Uuid {
    Uuid::from_u128(0xabc)
}

fn job_name() -> String {
    format!("reminder-{}", task_id())
}

fn with_reminder(version: u64, due: &str, before_secs: u32) -> Task {
    let mut task = sample_task(task_id(), "alice");
    task.due = Some(DateTime::parse_from_rfc3339(due).unwrap());
    task.reminder = Some(Reminder::BeforeDueSeconds(before_secs));
    task.version = version;
    task
}

fn event(event_type: &str, task: &Task) -> Value {
    cloudevent(
        &todo_core::events::task_event_id(task.id, task.version),
        event_type,
        "task-events",
        serde_json::to_value(task).unwrap(),
    )
}

/// A clock the test can move.
#[derive(Clone)]
struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    fn at(s: &str) -> Self {
        Self(Arc::new(Mutex::new(t(s))))
    }
    fn set(&self, s: &str) {
        *self.0.lock().unwrap() = t(s);
    }
    fn clock(&self) -> Clock {
        let inner = self.0.clone();
        Clock::from_fn(move || *inner.lock().unwrap())
    }
}

async fn app(dapr: dapr_fn::dapr::Dapr, clock: &TestClock, token: Option<&str>) -> TestApp {
    let config = RuntimeConfig { app_api_token: token.map(str::to_owned), ..RuntimeConfig::default() };
    TestApp::start(fire_reminder::build(dapr, Config::default(), clock.clock()), config).await
}

fn record(stub: &StubSidecar) -> Value {
    stub.state("state", &format!("reminder:{}", task_id())).expect("reminder record")
}

#[tokio::test]
async fn a_new_reminder_schedules_a_job_through_its_own_sidecar() {
    let stub = StubSidecar::start().await;
    let clock = TestClock::at("2026-11-22T10:00:00Z");
    let app = app(stub.client(None), &clock, None).await;
    let task = with_reminder(1, DUE, 900);
    assert_eq!(
        app.deliver(fire_reminder::ROUTE, &event("todo.task.created", &task), None).await,
        (200, json!({"status": "SUCCESS"}))
    );

    let posts = stub.requests_to(Method::POST, &format!("/v1.0-alpha1/jobs/{}", job_name()));
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].body,
        json!({
            "dueTime": REMIND_AT,
            "data": {"task_id": task_id(), "remind_at": REMIND_AT, "task_version": 1},
            "overwrite": true,
            "failurePolicy": {"constant": {"interval": "5s", "maxRetries": 12}}
        })
    );
    let record = record(&stub);
    assert_eq!(
        (record["status"].as_str(), record["remind_at"].as_str(), record["task_version"].as_u64()),
        (Some("scheduled"), Some(REMIND_AT), Some(1))
    );
}

#[tokio::test]
async fn a_duplicate_event_leaves_one_identical_job() {
    let stub = StubSidecar::start().await;
    let clock = TestClock::at("2026-11-22T10:00:00Z");
    let app = app(stub.client(None), &clock, None).await;
    let task = with_reminder(1, DUE, 900);
    app.deliver(fire_reminder::ROUTE, &event("todo.task.created", &task), None).await;
    let (jobs, record) = (stub.jobs(), self::record(&stub));
    assert_eq!(
        app.deliver(fire_reminder::ROUTE, &event("todo.task.created", &task), None).await.1,
        json!({"status": "SUCCESS"})
    );
    assert_eq!(stub.jobs(), jobs);
    assert_eq!(self::record(&stub), record);
}

#[tokio::test]
async fn moving_the_due_time_reschedules_and_older_events_are_ignored() {
    let stub = StubSidecar::start().await;
    let clock = TestClock::at("2026-11-22T10:00:00Z");
    let app = app(stub.client(None), &clock, None).await;
    app.deliver(fire_reminder::ROUTE, &event("todo.task.created", &with_reminder(1, DUE, 900)), None).await;
    let moved = with_reminder(3, "2026-12-02T09:00:00+01:00", 900);
    app.deliver(fire_reminder::ROUTE, &event("todo.task.updated", &moved), None).await;
    assert_eq!(stub.jobs()[&job_name()]["dueTime"], "2026-12-02T07:45:00Z");

    // Version 2 arrives late (reordered): it must not move the reminder back.
    stub.clear_requests();
    let late = with_reminder(2, DUE, 60);
    assert_eq!(
        app.deliver(fire_reminder::ROUTE, &event("todo.task.updated", &late), None).await.1,
        json!({"status": "SUCCESS"})
    );
    assert!(stub.requests_to(Method::POST, "/v1.0-alpha1/jobs").is_empty());
    assert_eq!(stub.jobs()[&job_name()]["dueTime"], "2026-12-02T07:45:00Z");
    assert_eq!(record(&stub)["task_version"], 3);
}

/// A task created without a reminder costs no state or job call; if a later version adds
/// one, it is scheduled, and if that version was handled first, the creation changes nothing.
#[tokio::test]
async fn a_task_created_without_a_reminder_costs_nothing_and_a_later_one_is_scheduled() {
    let stub = StubSidecar::start().await;
    let clock = TestClock::at("2026-11-22T10:00:00Z");
    let app = app(stub.client(None), &clock, None).await;
    let mut plain = with_reminder(1, DUE, 900);
    plain.reminder = None;
    let created = event("todo.task.created", &plain);
    assert_eq!(app.deliver(fire_reminder::ROUTE, &created, None).await, (200, json!({"status": "SUCCESS"})));
    assert!(stub.requests().is_empty(), "{:?}", stub.requests());
    assert!(stub.state("state", &format!("reminder:{}", task_id())).is_none());

    app.deliver(fire_reminder::ROUTE, &event("todo.task.updated", &with_reminder(2, DUE, 900)), None).await;
    assert_eq!(stub.jobs().len(), 1);
    assert_eq!(record(&stub)["status"], "scheduled");
    // The creation again (redelivered, or late): the reminder stays.
    stub.clear_requests();
    app.deliver(fire_reminder::ROUTE, &created, None).await;
    assert!(stub.requests().is_empty());
    assert_eq!((stub.jobs().len(), record(&stub)["task_version"].as_u64()), (1, Some(2)));
}

#[tokio::test]
async fn an_unrelated_edit_does_not_touch_the_job() {
    let stub = StubSidecar::start().await;
    let clock = TestClock::at("2026-11-22T10:00:00Z");
    let app = app(stub.client(None), &clock, None).await;
    app.deliver(fire_reminder::ROUTE, &event("todo.task.created", &with_reminder(1, DUE, 900)), None).await;
    stub.clear_requests();
    let mut retitled = with_reminder(2, DUE, 900);
    retitled.title = "Pay the rent".into();
    app.deliver(fire_reminder::ROUTE, &event("todo.task.updated", &retitled), None).await;
    assert!(stub.requests_to(Method::POST, "/v1.0-alpha1/jobs").is_empty());
    assert_eq!(record(&stub)["task_version"], 2);
}

#[tokio::test]
async fn completion_and_deletion_cancel_the_job() {
    for (event_type, change) in [("todo.task.completed", "complete"), ("todo.task.deleted", "delete")] {
        let stub = StubSidecar::start().await;
        let clock = TestClock::at("2026-11-22T10:00:00Z");
        let app = app(stub.client(None), &clock, None).await;
        app.deliver(fire_reminder::ROUTE, &event("todo.task.created", &with_reminder(1, DUE, 900)), None).await;
        let mut task = with_reminder(1, DUE, 900);
        if change == "complete" {
            task.complete(t("2026-11-23T00:00:00Z"));
        } else {
            task.delete(t("2026-11-23T00:00:00Z"));
        }
        assert_eq!(
            app.deliver(fire_reminder::ROUTE, &event(event_type, &task), None).await.1,
            json!({"status": "SUCCESS"})
        );
        assert!(stub.jobs().is_empty(), "{event_type}");
        assert_eq!(stub.requests_to(Method::DELETE, &format!("/v1.0-alpha1/jobs/{}", job_name())).len(), 1);
        assert_eq!(record(&stub)["status"], "cancelled");
    }
}

/// Seeds the task and its scheduled reminder as the event flow would have left them.
async fn scheduled(stub: &StubSidecar, app: &TestApp, task: &Task) {
    stub.put_state("tasks", &task.key(), serde_json::to_value(task).unwrap());
    app.deliver(fire_reminder::ROUTE, &event("todo.task.created", task), None).await;
    stub.clear_requests();
}

fn job_data(version: u64) -> Value {
    json!({"task_id": task_id(), "remind_at": REMIND_AT, "task_version": version})
}

#[tokio::test]
async fn a_current_job_publishes_the_reminder_then_records_it() {
    let stub = StubSidecar::start().await;
    let clock = TestClock::at("2026-11-22T10:00:00Z");
    let app = app(stub.client(None), &clock, None).await;
    scheduled(&stub, &app, &with_reminder(1, DUE, 900)).await;

    clock.set("2026-12-01T07:45:00.250Z");
    assert_eq!(app.trigger_job(&job_name(), &job_data(1), None).await, 200);
    let published = stub.published("reminders");
    assert_eq!(published.len(), 1);
    let request = &published[0];
    assert_eq!(request.query.get("metadata.cloudevent.type").map(String::as_str), Some("todo.reminder.due"));
    let expected_id = format!("reminder:{}:{}", task_id(), t(REMIND_AT).timestamp());
    assert_eq!(request.query.get("metadata.cloudevent.id"), Some(&expected_id));
    assert_eq!(request.query.get("metadata.partitionKey"), Some(&task_id().to_string()));
    assert_eq!(
        request.body,
        json!({
            "task_id": task_id(), "owner": "alice", "title": "Pay rent", "due": DUE,
            "remind_at": REMIND_AT, "fired_at": "2026-12-01T07:45:00.250Z", "late_by_ms": 250, "task_version": 1
        })
    );
    let record = record(&stub);
    assert_eq!((record["status"].as_str(), record["late_by_ms"].as_u64()), (Some("fired"), Some(250)));

    // The Scheduler delivers at least once: a second trigger publishes nothing.
    assert_eq!(app.trigger_job(&job_name(), &job_data(1), None).await, 200);
    assert_eq!(stub.published("reminders").len(), 1);
}

#[tokio::test]
async fn a_stale_job_publishes_nothing() {
    let stub = StubSidecar::start().await;
    let clock = TestClock::at("2026-12-01T07:45:01Z");
    let app = app(stub.client(None), &clock, None).await;
    // The reminder was moved to 10 minutes before due after this job was scheduled.
    let moved = with_reminder(2, DUE, 600);
    stub.put_state("tasks", &moved.key(), serde_json::to_value(&moved).unwrap());
    assert_eq!(app.trigger_job(&job_name(), &job_data(1), None).await, 200);
    // And a job for a task that is gone.
    let other = format!("reminder-{}", Uuid::from_u128(5));
    let data = json!({"task_id": Uuid::from_u128(5), "remind_at": REMIND_AT, "task_version": 1});
    assert_eq!(app.trigger_job(&other, &data, None).await, 200);
    assert!(stub.published("reminders").is_empty());
}

#[tokio::test]
async fn a_failed_publish_is_retried_by_the_job_and_fires_once() {
    let stub = StubSidecar::start().await;
    let clock = TestClock::at("2026-11-22T10:00:00Z");
    let app = app(stub.client(None), &clock, None).await;
    scheduled(&stub, &app, &with_reminder(1, DUE, 900)).await;
    clock.set("2026-12-01T07:45:01Z");
    stub.fail(Method::POST, "/v1.0/publish/", 500, 1);
    assert_eq!(
        app.trigger_job(&job_name(), &job_data(1), None).await,
        500,
        "not acknowledged: the failure policy retries"
    );
    assert_eq!(record(&stub)["status"], "scheduled");
    assert_eq!(app.trigger_job(&job_name(), &job_data(1), None).await, 200);
    assert_eq!(stub.published("reminders").len(), 2, "the failed attempt and the successful one");
    assert_eq!(record(&stub)["status"], "fired");
}

#[tokio::test]
async fn a_reminder_due_while_down_fires_late_and_one_past_the_horizon_is_missed() {
    let stub = StubSidecar::start().await;
    let clock = TestClock::at("2026-11-22T10:00:00Z");
    let app = app(stub.client(None), &clock, None).await;
    scheduled(&stub, &app, &with_reminder(1, DUE, 900)).await;
    clock.set("2026-12-01T09:45:00Z");
    assert_eq!(app.trigger_job(&job_name(), &job_data(1), None).await, 200);
    assert_eq!(stub.published("reminders")[0].body["late_by_ms"], 2 * 3600 * 1000);

    let stub = StubSidecar::start().await;
    let app = self::app(stub.client(None), &clock, None).await;
    clock.set("2026-11-22T10:00:00Z");
    scheduled(&stub, &app, &with_reminder(1, DUE, 900)).await;
    clock.set(&(t(REMIND_AT) + Duration::hours(25)).to_rfc3339());
    assert_eq!(app.trigger_job(&job_name(), &job_data(1), None).await, 200);
    assert!(stub.published("reminders").is_empty());
    assert_eq!(record(&stub)["status"], "missed");
}

#[tokio::test]
async fn bad_job_callbacks_are_not_retried() {
    let stub = StubSidecar::start().await;
    let clock = TestClock::at("2026-12-01T07:45:00Z");
    let app = app(stub.client(None), &clock, None).await;
    assert_eq!(app.trigger_job(&job_name(), &json!({"nope": 1}), None).await, 404);
    let other = format!("reminder-{}", Uuid::from_u128(9));
    assert_eq!(app.trigger_job(&other, &job_data(1), None).await, 404, "name and data disagree");
    assert!(stub.requests().is_empty());
}

#[tokio::test]
async fn an_unavailable_sidecar_is_retried() {
    let clock = TestClock::at("2026-12-01T07:45:00Z");
    let app = app(unreachable_client().await, &clock, None).await;
    let task = with_reminder(1, DUE, 900);
    assert_eq!(
        app.deliver(fire_reminder::ROUTE, &event("todo.task.created", &task), None).await.1,
        json!({"status": "RETRY"})
    );
    assert_eq!(app.trigger_job(&job_name(), &job_data(1), None).await, 500);

    let stub = StubSidecar::start().await;
    stub.fail(Method::POST, "/v1.0-alpha1/jobs/", 500, 1);
    let app = self::app(stub.client(None), &TestClock::at("2026-11-22T10:00:00Z"), None).await;
    assert_eq!(
        app.deliver(fire_reminder::ROUTE, &event("todo.task.created", &task), None).await.1,
        json!({"status": "RETRY"})
    );
    // The record was claimed before the job call failed; the retry re-applies it.
    assert_eq!(
        app.deliver(fire_reminder::ROUTE, &event("todo.task.created", &task), None).await.1,
        json!({"status": "SUCCESS"})
    );
    assert_eq!(stub.jobs()[&job_name()]["dueTime"], REMIND_AT);
}

#[tokio::test]
async fn malformed_events_are_dropped() {
    let stub = StubSidecar::start().await;
    let app = app(stub.client(None), &TestClock::at("2026-11-22T10:00:00Z"), None).await;
    let garbage = cloudevent("e", "todo.task.created", "task-events", json!([1, 2, 3]));
    assert_eq!(app.deliver(fire_reminder::ROUTE, &garbage, None).await.1, json!({"status": "DROP"}));
    let wrong_type = event("todo.task.teleported", &with_reminder(1, DUE, 900));
    assert_eq!(app.deliver(fire_reminder::ROUTE, &wrong_type, None).await.1, json!({"status": "DROP"}));
    assert!(stub.requests().is_empty());
}

#[tokio::test]
async fn callbacks_need_the_app_token() {
    let stub = StubSidecar::start().await;
    let app = app(stub.client(None), &TestClock::at("2026-12-01T07:45:00Z"), Some("tok")).await;
    assert_eq!(app.trigger_job(&job_name(), &job_data(1), None).await, 401);
    assert_eq!(app.trigger_job(&job_name(), &job_data(1), Some("wrong")).await, 401);
    assert_eq!(
        app.deliver(fire_reminder::ROUTE, &event("todo.task.created", &with_reminder(1, DUE, 900)), None).await.0,
        401
    );
    assert!(stub.requests().is_empty());
}

#[tokio::test]
async fn declares_its_subscription_and_job_prefix() {
    let function = fire_reminder::build(unreachable_client().await, Config::default(), Clock::system());
    let subscription = &function.subscriptions()[0];
    assert_eq!((subscription.topic(), subscription.dead_letter()), ("task-events", Some("fire-reminder-dlq")));
    assert_eq!(function.job_prefixes(), vec!["reminder-"]);
}

#[tokio::test]
async fn a_newer_claim_made_meanwhile_wins_over_an_older_job_change() {
    let stub = StubSidecar::start().await;
    let app = app(stub.client(None), &TestClock::at("2026-11-22T10:00:00Z"), None).await;
    app.deliver(fire_reminder::ROUTE, &event("todo.task.created", &with_reminder(1, DUE, 900)), None).await;

    // While this replica handles version 2, another replica claims version 3 (reminder on
    // 3 Dec) and schedules it; this replica's job call for version 2 lands after it.
    let v3_record = json!({
        "task_id": task_id(), "status": "scheduled", "remind_at": "2026-12-03T07:45:00Z",
        "task_version": 3, "updated_at": "2026-11-22T10:00:00Z"
    });
    stub.put_state_before(Method::POST, "/v1.0-alpha1/jobs/", "state", &format!("reminder:{}", task_id()), v3_record);
    let v2 = with_reminder(2, "2026-12-02T09:00:00+01:00", 900);
    assert_eq!(
        app.deliver(fire_reminder::ROUTE, &event("todo.task.updated", &v2), None).await.1,
        json!({"status": "SUCCESS"})
    );

    let job = &stub.jobs()[&job_name()];
    assert_eq!(job["dueTime"], "2026-12-03T07:45:00Z", "the newest claim is what stays scheduled");
    assert_eq!(job["data"]["task_version"], 3);
}
