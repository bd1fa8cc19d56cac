//! Stage 5: the Jobs API and the scheduler: status codes and body shapes, the wrapped `data`
//! on GET, the 500 for a missing job, triggers with the raw data, 2xx/404 done, failure
//! policies, ownership per app-id, recurring jobs, and a job that came due while devhost was
//! down.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::time::{Duration, Instant};

use common::{FakeApp, Sidecar};
use devhost::{AppSpec, Devhost};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);

async fn start(apps: &[(&str, &FakeApp)], db: &str) -> Devhost {
    let mut b = Devhost::builder().database(db);
    for (id, app) in apps {
        b = b.app(AppSpec::new(*id, app.port));
    }
    b.start().await.unwrap()
}

/// Waits until GET of job `name` answers 500 `DAPR_SCHEDULER_GET_JOB`: the job is gone, and
/// devhost removes it only after its last trigger and that trigger's last retry, so no trigger
/// of it can come any more.
async fn wait_consumed(s: &Sidecar, name: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = s.get(&format!("/v1.0-alpha1/jobs/{name}")).await;
        let code = serde_json::from_slice::<serde_json::Value>(&r.body).ok().map(|b| b["errorCode"].clone());
        if r.status == 500 && code == Some(json!("DAPR_SCHEDULER_GET_JOB")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "job {name} was never consumed: GET still answers {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn schedule_get_overwrite_and_delete() {
    let app = FakeApp::start(None).await;
    let d = start(&[("a", &app)], ":memory:").await;
    let s = Sidecar::new(d.sidecar_url("a"));
    let job = json!({"dueTime": "2099-01-01T09:00:00+02:00", "data": {"taskId": "t-1"}, "unknownField": 1});
    assert_eq!(s.post_json("/v1.0-alpha1/jobs/reminder-1", &job).await.status, 204);
    let got = s.get("/v1.0-alpha1/jobs/reminder-1").await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.json(),
        json!({
            "name": "reminder-1",
            "dueTime": "2099-01-01T09:00:00+02:00",
            "data": {"@type": "type.googleapis.com/google.protobuf.Value", "value": {"taskId": "t-1"}},
            "failurePolicy": {"constant": {"interval": "1s", "maxRetries": 3}},
        })
    );
    // Same name without overwrite: 409 (Dapr 1.16+); with overwrite: replaced.
    let again = s.post_json("/v1.0-alpha1/jobs/reminder-1", &job).await;
    assert_eq!(again.status, 409);
    let replace = json!({"due_time": "2099-02-01T00:00:00Z", "data": 7, "overwrite": true,
        "failure_policy": {"constant": {"interval": "0.5s", "max_retries": 12}}});
    assert_eq!(s.post_json("/v1.0/jobs/reminder-1", &replace).await.status, 204);
    let got = s.get("/v1.0/jobs/reminder-1").await.json();
    assert_eq!(got["data"]["value"], 7);
    assert_eq!(got["failurePolicy"], json!({"constant": {"interval": "0.5s", "maxRetries": 12}}));

    assert_eq!(s.delete("/v1.0-alpha1/jobs/reminder-1", None).await.status, 204);
    let missing = s.get("/v1.0-alpha1/jobs/reminder-1").await;
    assert_eq!((missing.status, missing.error_code().as_str()), (500, "DAPR_SCHEDULER_GET_JOB"));
    assert!(missing.json()["message"].as_str().unwrap().contains("not found"));
    d.shutdown().await;
}

#[tokio::test]
async fn bad_requests_are_400_and_what_the_scheduler_refuses_500() {
    let app = FakeApp::start(None).await;
    let d = start(&[("a", &app)], ":memory:").await;
    let s = Sidecar::new(d.sidecar_url("a"));
    let cases = [
        json!({"name": "x", "dueTime": "1s"}),
        json!({"data": 1}),
        json!({"dueTime": "1s", "failurePolicy": {"constant": {"interval": "200ms"}}}),
        json!({"dueTime": "1s", "repeats": -1}),
    ];
    for body in cases {
        let r = s.post_json("/v1.0-alpha1/jobs/j", &body).await;
        assert_eq!(r.status, 400, "{body} → {}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(s.send(http::Method::POST, "/v1.0-alpha1/jobs/j", &[], Some(b"not json".to_vec())).await.status, 400);
    // The Scheduler's own validation errors come back as 500s (as on daprd 1.18).
    for body in [json!({"dueTime": "tomorrow"}), json!({"schedule": "@sometimes"})] {
        let r = s.post_json("/v1.0-alpha1/jobs/j", &body).await;
        assert_eq!((r.status, r.error_code().as_str()), (500, "DAPR_SCHEDULER_SCHEDULE_JOB"), "{body}");
    }
    assert_eq!(s.post_json("/v1.0-alpha1/jobs/bad%2Fname", &json!({"dueTime": "1s"})).await.status, 500);
    d.shutdown().await;
}

#[tokio::test]
async fn due_jobs_call_the_app_with_the_raw_data_and_are_removed() {
    let app = FakeApp::start(None).await;
    app.respond(|r| if r.path == "/job/skip" { (404, String::new()) } else { (200, String::new()) });
    let d = start(&[("a", &app)], ":memory:").await;
    let s = Sidecar::new(d.sidecar_url("a"));
    assert_eq!(
        s.post_json("/v1.0-alpha1/jobs/now", &json!({"dueTime": "0s", "data": {"taskId": "t-9"}})).await.status,
        204
    );
    assert_eq!(s.post_json("/v1.0-alpha1/jobs/skip", &json!({"dueTime": "0s", "data": "x"})).await.status, 204);
    let calls = app.wait_posts("/job/now", 1, WAIT).await;
    assert_eq!(calls[0].json(), json!({"taskId": "t-9"}));
    assert_eq!(calls[0].header("content-type"), Some("application/json"));
    app.wait_posts("/job/skip", 1, WAIT).await;
    wait_consumed(&s, "now").await;
    wait_consumed(&s, "skip").await;
    assert_eq!(app.posts("/job/").len(), 2, "2xx and 404 are not retried");
    d.shutdown().await;
}

#[tokio::test]
async fn failures_are_retried_under_the_failure_policy() {
    let app = FakeApp::start(None).await;
    app.respond(|_| (500, String::new()));
    let d = start(&[("a", &app)], ":memory:").await;
    let s = Sidecar::new(d.sidecar_url("a"));
    let constant =
        json!({"dueTime": "0s", "data": {}, "failurePolicy": {"constant": {"interval": "0.05s", "maxRetries": 2}}});
    s.post_json("/v1.0-alpha1/jobs/retried", &constant).await;
    s.post_json("/v1.0-alpha1/jobs/dropped", &json!({"dueTime": "0s", "data": {}, "failurePolicy": {"drop": {}}}))
        .await;
    let calls = app.wait_posts("/job/retried", 3, WAIT).await;
    let gap = calls[1].at.duration_since(calls[0].at);
    assert!(gap >= Duration::from_millis(45), "retried after the interval, got {gap:?}");
    app.wait_posts("/job/dropped", 1, WAIT).await;
    wait_consumed(&s, "retried").await;
    wait_consumed(&s, "dropped").await;
    assert_eq!(app.posts("/job/retried").len(), 3, "1 attempt + 2 retries");
    assert_eq!(app.posts("/job/dropped").len(), 1, "drop: no retry");
    d.shutdown().await;
}

#[tokio::test]
async fn jobs_belong_to_the_app_that_scheduled_them() {
    let (a, b) = (FakeApp::start(None).await, FakeApp::start(None).await);
    let d = start(&[("a", &a), ("b", &b)], ":memory:").await;
    let (sa, sb) = (Sidecar::new(d.sidecar_url("a")), Sidecar::new(d.sidecar_url("b")));
    sa.post_json("/v1.0-alpha1/jobs/mine", &json!({"dueTime": "2099-01-01T00:00:00Z", "data": {}})).await;
    assert_eq!(sb.get("/v1.0-alpha1/jobs/mine").await.status, 500);
    assert_eq!(sb.delete("/v1.0-alpha1/jobs/mine", None).await.status, 204);
    assert_eq!(sa.get("/v1.0-alpha1/jobs/mine").await.status, 200, "b's delete did not touch a's job");
    // Same name in both apps: each app gets only its own trigger.
    sa.post_json("/v1.0-alpha1/jobs/same", &json!({"dueTime": "0s", "data": "for a"})).await;
    sb.post_json("/v1.0-alpha1/jobs/same", &json!({"dueTime": "0s", "data": "for b"})).await;
    assert_eq!(a.wait_posts("/job/same", 1, WAIT).await[0].json(), json!("for a"));
    assert_eq!(b.wait_posts("/job/same", 1, WAIT).await[0].json(), json!("for b"));
    d.shutdown().await;
}

#[tokio::test]
async fn recurring_jobs_honour_repeats() {
    let app = FakeApp::start(None).await;
    let d = start(&[("a", &app)], ":memory:").await;
    let s = Sidecar::new(d.sidecar_url("a"));
    s.post_json("/v1.0-alpha1/jobs/tick", &json!({"schedule": "@every 50ms", "repeats": 3, "data": {"n": 1}})).await;
    app.wait_posts("/job/tick", 3, WAIT).await;
    wait_consumed(&s, "tick").await;
    assert_eq!(app.posts("/job/tick").len(), 3);
    d.shutdown().await;
}

#[tokio::test]
async fn a_job_due_while_devhost_was_down_fires_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("devhost.sqlite").display().to_string();
    let app = FakeApp::start(None).await;
    let d = start(&[("a", &app)], &db).await;
    let s = Sidecar::new(d.sidecar_url("a"));
    assert_eq!(s.post_json("/v1.0-alpha1/jobs/late", &json!({"dueTime": "300ms", "data": "late"})).await.status, 204);
    d.shutdown().await;
    // Time is the fact: the job must come due (300 ms after it was scheduled) while devhost is down.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(app.posts("/job/").is_empty(), "nothing fired while down");

    let d = start(&[("a", &app)], &db).await;
    let calls = app.wait_posts("/job/late", 1, WAIT).await;
    assert_eq!(calls[0].json(), json!("late"));
    d.shutdown().await;
}

/// daprd 1.18 stores a job scheduled without `data` with an empty protobuf Any that it cannot
/// turn into JSON: `GET` answers 500 `ERR_INTERNAL` and every trigger fails before reaching the
/// app (retried under the failure policy, then dropped). `data: null` is a value and works.
#[tokio::test]
async fn a_job_without_data_is_never_delivered() {
    let app = FakeApp::start(None).await;
    let d = start(&[("a", &app)], ":memory:").await;
    let s = Sidecar::new(d.sidecar_url("a"));
    let policy = json!({"constant": {"interval": "0.05s", "maxRetries": 2}});
    s.post_json("/v1.0-alpha1/jobs/bare", &json!({"dueTime": "1h"})).await;
    let got = s.get("/v1.0-alpha1/jobs/bare").await;
    assert_eq!((got.status, got.error_code().as_str()), (500, "ERR_INTERNAL"));
    s.post_json("/v1.0-alpha1/jobs/bare", &json!({"dueTime": "0s", "overwrite": true, "failurePolicy": policy})).await;
    s.post_json("/v1.0-alpha1/jobs/null", &json!({"dueTime": "0s", "data": null})).await;
    assert_eq!(app.wait_posts("/job/null", 1, WAIT).await[0].body, b"null");
    // The tick is consumed after the retries (until then GET answers ERR_INTERNAL).
    wait_consumed(&s, "bare").await;
    assert!(app.posts("/job/bare").is_empty(), "never reaches the app");
    d.shutdown().await;
}
