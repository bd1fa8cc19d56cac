//! notifier's real router against the stub sidecar and a real webhook receiver on loopback:
//! reminders in; signed webhooks, binding calls, delivery records, retry jobs and dead letters
//! out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use dapr_fn::clock::Clock;
use dapr_fn::runtime::RuntimeConfig;
use dapr_fn::testing::{StubSidecar, TestApp, cloudevent};
use notifier::{Config, RetryJob};
use serde_json::{Value, json};
use todo_core::delivery::{Channel, delivery_key, retry_job_name};
use todo_core::events::{ReminderDue, reminder_event_id};
use todo_core::notification::{channels_key, signature, webhook_secret};
use uuid::Uuid;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const REMIND_AT: &str = "2026-12-01T07:45:00Z";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn reminder() -> ReminderDue {
    ReminderDue {
        task_id: Uuid::from_u128(0xabc),
        owner: "alice".into(),
        title: "Pay <rent>".into(),
        due: Some(DateTime::parse_from_rfc3339("2026-12-01T09:00:00+01:00").unwrap()),
        remind_at: t(REMIND_AT),
        fired_at: t("2026-12-01T07:45:00.300Z"),
        late_by_ms: 300,
        task_version: 2,
    }
}

fn event_id() -> String {
    reminder_event_id(reminder().task_id, t(REMIND_AT))
}

fn event() -> Value {
    cloudevent(&event_id(), "todo.reminder.due", "reminders", serde_json::to_value(reminder()).unwrap())
}

/// One request a receiver got: its headers and body.
type Request = (HeaderMap, Vec<u8>);

/// A webhook receiver that answers the statuses it is given in turn (the last one forever) and
/// records each request.
#[derive(Clone, Default)]
struct Receiver {
    statuses: Arc<Mutex<Vec<u16>>>,
    received: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    async fn start(statuses: &[u16]) -> (Self, String) {
        let receiver = Receiver { statuses: Arc::new(Mutex::new(statuses.to_vec())), ..Default::default() };
        let router = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (receiver, url)
    }

    fn received(&self) -> Vec<Request> {
        self.received.lock().unwrap().clone()
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    receiver.received.lock().unwrap().push((headers, body.to_vec()));
    let mut statuses = receiver.statuses.lock().unwrap();
    let status = if statuses.len() > 1 { statuses.remove(0) } else { statuses[0] };
    StatusCode::from_u16(status).unwrap()
}

fn config() -> Config {
    Config {
        notify_allow_loopback_http: true,
        notifier_task_link_base: "https://todo.example/".into(),
        notifier_max_attempts: 3,
        ..Config::default()
    }
}

async fn app(stub: &StubSidecar, now: &str) -> TestApp {
    let function = notifier::build(stub.client(None), config(), Clock::fixed(t(now))).unwrap();
    TestApp::start(function, RuntimeConfig::default()).await
}

fn set_channels(stub: &StubSidecar, webhook: Option<&str>, email: Option<&str>) {
    let mut channels = json!({});
    if let Some(url) = webhook {
        channels["webhook"] = json!({"url": url, "secret": SECRET});
    }
    if let Some(address) = email {
        channels["email"] = json!({"address": address});
    }
    stub.put_state("notify", &channels_key("alice"), channels);
}

fn record(stub: &StubSidecar, channel: Channel) -> Value {
    stub.state("deliveries", &delivery_key(&event_id(), channel)).expect("a delivery record")
}

#[tokio::test]
async fn a_reminder_reaches_the_webhook_signed_and_a_duplicate_sends_nothing() {
    let stub = StubSidecar::start().await;
    let (receiver, url) = Receiver::start(&[204]).await;
    set_channels(&stub, Some(&url), None);
    let app = app(&stub, "2026-12-01T07:45:00.500Z").await;

    assert_eq!(app.deliver(notifier::ROUTE, &event(), None).await, (200, json!({"status": "SUCCESS"})));
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let (headers, body) = &received[0];
    let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("webhook-id"), event_id(), "receivers dedupe on the reminder's event id");
    let timestamp: i64 = header("webhook-timestamp").parse().unwrap();
    assert_eq!(timestamp, t("2026-12-01T07:45:00.500Z").timestamp());
    let key = webhook_secret(SECRET).unwrap();
    assert_eq!(header("webhook-signature"), signature(&key, &event_id(), timestamp, body));
    let expected = base64::engine::general_purpose::STANDARD.decode(&header("webhook-signature")[3..]).unwrap();
    assert_eq!(expected.len(), 32, "HMAC-SHA256");
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        body,
        json!({
            "type": "todo.reminder.due",
            "timestamp": "2026-12-01T07:45:00.300Z",
            "data": {
                "task_id": reminder().task_id,
                "title": "Pay <rent>",
                "due": "2026-12-01T09:00:00+01:00",
                "remind_at": REMIND_AT,
                "url": format!("https://todo.example/v1/tasks/{}", reminder().task_id),
            }
        })
    );
    let delivered = record(&stub, Channel::Webhook);
    assert_eq!((delivered["status"].as_str(), delivered["attempts"].as_u64()), (Some("delivered"), Some(1)));
    assert_eq!(delivered["delivered_at"], "2026-12-01T07:45:00.500Z");

    assert_eq!(app.deliver(notifier::ROUTE, &event(), None).await.1, json!({"status": "SUCCESS"}));
    assert_eq!(receiver.received().len(), 1, "a redelivered reminder is not sent again");
    assert!(stub.requests_to(Method::POST, "/v1.0-alpha1/jobs").is_empty());
}

#[tokio::test]
async fn email_goes_through_the_binding_with_recipient_subject_and_escaped_html() {
    let stub = StubSidecar::start().await;
    set_channels(&stub, None, Some("alice@example.com"));
    let app = app(&stub, "2026-12-01T07:45:01Z").await;
    assert_eq!(app.deliver(notifier::ROUTE, &event(), None).await.1, json!({"status": "SUCCESS"}));
    let calls = stub.requests_to(Method::POST, "/v1.0/bindings/email");
    assert_eq!(calls.len(), 1);
    let call = &calls[0].body;
    assert_eq!(call["operation"], "create");
    assert_eq!(call["metadata"], json!({"emailTo": "alice@example.com", "subject": "Reminder: Pay <rent>"}));
    let html = call["data"].as_str().unwrap();
    assert!(html.contains("Pay &lt;rent&gt;"), "{html}");
    assert!(html.contains(&format!("https://todo.example/v1/tasks/{}", reminder().task_id)), "{html}");
    assert_eq!(record(&stub, Channel::Email)["status"], "delivered");
    app.deliver(notifier::ROUTE, &event(), None).await;
    assert_eq!(stub.requests_to(Method::POST, "/v1.0/bindings/email").len(), 1, "sent once");
}

#[tokio::test]
async fn a_failing_receiver_is_retried_by_a_job_and_delivered_once_it_is_back() {
    let stub = StubSidecar::start().await;
    let (receiver, url) = Receiver::start(&[503, 200]).await;
    set_channels(&stub, Some(&url), Some("alice@example.com"));
    let app = app(&stub, "2026-12-01T07:45:01Z").await;

    // The broker's event is acknowledged: the retry is the job's, the partition moves on.
    assert_eq!(app.deliver(notifier::ROUTE, &event(), None).await.1, json!({"status": "SUCCESS"}));
    assert_eq!(record(&stub, Channel::Email)["status"], "delivered", "the mail is not held back by the webhook");
    let retrying = record(&stub, Channel::Webhook);
    assert_eq!(retrying["status"], "retrying");
    assert_eq!(retrying["last_error"], "the receiver answered 503 Service Unavailable");
    let name = retry_job_name(&event_id(), Channel::Webhook, 2);
    let job = stub.jobs().get(&name).cloned().expect("a retry job");
    assert_eq!(job["dueTime"], retrying["next_attempt_at"]);
    let due = t(job["dueTime"].as_str().unwrap());
    assert!(due >= t("2026-12-01T07:45:01.500Z") && due <= t("2026-12-01T07:45:02Z"), "first backoff: {due}");

    // A redelivery of the event meanwhile leaves the attempt to the job.
    app.deliver(notifier::ROUTE, &event(), None).await;
    assert_eq!(receiver.received().len(), 1);

    assert_eq!(app.trigger_job(&name, &job["data"], None).await, 200);
    assert_eq!(receiver.received().len(), 2);
    let delivered = record(&stub, Channel::Webhook);
    assert_eq!((delivered["status"].as_str(), delivered["attempts"].as_u64()), (Some("delivered"), Some(2)));
    assert_eq!(receiver.received()[1].0["webhook-id"], event_id().as_str(), "the same id on every attempt");

    // The Scheduler delivers at least once: the same job again sends nothing.
    assert_eq!(app.trigger_job(&name, &job["data"], None).await, 200);
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn gone_is_final_failed_and_dead_lettered_without_a_retry() {
    let stub = StubSidecar::start().await;
    let (receiver, url) = Receiver::start(&[410]).await;
    set_channels(&stub, Some(&url), None);
    let app = app(&stub, "2026-12-01T07:45:01Z").await;
    assert_eq!(app.deliver(notifier::ROUTE, &event(), None).await.1, json!({"status": "SUCCESS"}));
    let failed = record(&stub, Channel::Webhook);
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["last_error"], "the receiver answered 410 Gone");
    assert!(stub.jobs().is_empty(), "no retry after a 4xx");
    let dead = stub.published("notifier-dlq");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, serde_json::to_value(reminder()).unwrap());
    assert_eq!(dead[0].query.get("metadata.cloudevent.id"), Some(&event_id()));
    app.deliver(notifier::ROUTE, &event(), None).await;
    assert_eq!(receiver.received().len(), 1, "failed is final");
}

#[tokio::test]
async fn the_budget_spent_is_failed_and_dead_lettered() {
    let stub = StubSidecar::start().await;
    let (receiver, url) = Receiver::start(&[500]).await;
    set_channels(&stub, Some(&url), None);
    let app = app(&stub, "2026-12-01T07:45:01Z").await;
    app.deliver(notifier::ROUTE, &event(), None).await;
    for attempt in 2..=3 {
        let name = retry_job_name(&event_id(), Channel::Webhook, attempt);
        let data = json!(RetryJob { event_id: event_id(), channel: Channel::Webhook, attempt, reminder: reminder() });
        assert_eq!(app.trigger_job(&name, &data, None).await, 200);
    }
    assert_eq!(receiver.received().len(), 3, "NOTIFIER_MAX_ATTEMPTS");
    let failed = record(&stub, Channel::Webhook);
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["last_error"], "gave up after 3 attempts: the receiver answered 500 Internal Server Error");
    assert_eq!(stub.published("notifier-dlq").len(), 1);
    assert!(!stub.jobs().contains_key(&retry_job_name(&event_id(), Channel::Webhook, 4)));
}

#[tokio::test]
async fn a_delivery_claimed_elsewhere_moments_ago_is_not_doubled() {
    let stub = StubSidecar::start().await;
    let (receiver, url) = Receiver::start(&[200]).await;
    set_channels(&stub, Some(&url), None);
    stub.put_state(
        "deliveries",
        &delivery_key(&event_id(), Channel::Webhook),
        json!({
            "event_id": event_id(), "task_id": reminder().task_id, "channel": "webhook", "status": "sending",
            "attempts": 1, "attempted_at": "2026-12-01T07:45:00.600Z", "delivered_at": null,
            "next_attempt_at": null, "last_error": null
        }),
    );
    let app = app(&stub, "2026-12-01T07:45:01Z").await;
    // Not doubled, and not RETRY (which would hold the partition): a job takes over when the
    // claim goes stale, in case its holder died.
    assert_eq!(app.deliver(notifier::ROUTE, &event(), None).await.1["status"], "SUCCESS");
    assert!(receiver.received().is_empty());
    let name = retry_job_name(&event_id(), Channel::Webhook, 2);
    let job = stub.jobs().get(&name).cloned().expect("a takeover job");
    assert_eq!(job["dueTime"], "2026-12-01T07:46:00.600Z", "when the 60 s lease of the claim ends");
    // The job called while the claim is still live fails, for its failure policy to call again.
    assert_eq!(app.trigger_job(&name, &job["data"], None).await, 500);
    assert!(receiver.received().is_empty());

    // A claim older than the lease is a dead handler's: the job takes it over, attempt 2.
    let later = self::app(&stub, "2026-12-01T07:50:00Z").await;
    assert_eq!(later.trigger_job(&name, &job["data"], None).await, 200);
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(record(&stub, Channel::Webhook)["attempts"], 2);
    assert_eq!(record(&stub, Channel::Webhook)["status"], "delivered");
}

#[tokio::test]
async fn people_without_channels_and_foreign_events_send_nothing() {
    let stub = StubSidecar::start().await;
    let app = app(&stub, "2026-12-01T07:45:01Z").await;
    assert_eq!(app.deliver(notifier::ROUTE, &event(), None).await.1, json!({"status": "SUCCESS"}));
    assert!(stub.all_state("deliveries").is_empty());
    let mut foreign = event();
    foreign["type"] = json!("todo.task.created");
    assert_eq!(app.deliver(notifier::ROUTE, &foreign, None).await.1["status"], "DROP");
    assert!(stub.requests_to(Method::POST, "/v1.0/bindings").is_empty());
}

#[tokio::test]
async fn subscribes_to_reminders_with_its_dead_letter_topic_and_owns_its_jobs() {
    let stub = StubSidecar::start().await;
    let function = notifier::build(stub.client(None), config(), Clock::system()).unwrap();
    assert_eq!(function.app_id(), "notifier");
    assert_eq!(function.job_prefixes(), vec!["notify-"]);
    let app = TestApp::start(function, RuntimeConfig::default()).await;
    let subscriptions: Value = reqwest::get(format!("{}/dapr/subscribe", app.url)).await.unwrap().json().await.unwrap();
    assert_eq!(subscriptions[0]["topic"], "reminders");
    assert_eq!(subscriptions[0]["deadLetterTopic"], "notifier-dlq");
    assert_eq!(subscriptions[0]["routes"]["default"], notifier::ROUTE);
}

#[test]
fn a_configuration_that_cannot_work_is_refused() {
    let zero = Config { notifier_max_attempts: 0, ..Config::default() };
    assert!(zero.retry_policy().unwrap_err().to_string().contains("NOTIFIER_MAX_ATTEMPTS"));
    let inverted = Config { notifier_first_backoff_ms: 10_000, notifier_max_backoff_ms: 1_000, ..Config::default() };
    assert!(inverted.retry_policy().unwrap_err().to_string().contains("NOTIFIER_FIRST_BACKOFF_MS"));
    assert!(Config::default().retry_policy().unwrap().lease >= std::time::Duration::from_secs(20));
}
