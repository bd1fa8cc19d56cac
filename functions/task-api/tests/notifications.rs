//! `GET` / `PUT /v1/me/notifications` (the caller's reminder channels, `notify` store) and the
//! delivery records `GET /v1/tasks/{id}/reminder` shows once a reminder fired.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::Method;
use common::{Answer, Harness, config, now, task};
use dapr_fn::clock::Clock;
use dapr_fn::runtime::RuntimeConfig;
use serde_json::{Value, json};
use todo_core::task::Reminder;

const PATH: &str = "/v1/me/notifications";
/// `whsec_` and the base64 of 32 bytes.
const SECRET: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const OTHER_SECRET: &str = "whsec_YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY=";

async fn put(h: &Harness, user: &str, body: &Value) -> Answer {
    h.call(Method::PUT, PATH).user(user).json(body).send().await
}

fn stored(h: &Harness, user: &str) -> Option<Value> {
    h.stub.state("notify", &format!("channels:{user}"))
}

/// task-api with `NOTIFY_ALLOW_LOOPBACK_HTTP=true`.
async fn with_loopback() -> Harness {
    let mut config = config();
    config.notify_allow_loopback_http = true;
    Harness::custom(config, RuntimeConfig::default(), |_| Clock::fixed(now())).await
}

#[tokio::test]
async fn channels_round_trip_and_the_secret_is_never_returned() {
    let h = Harness::start().await;
    let unset = h.get(PATH).user("alice").send().await;
    assert_eq!(unset.status, 200);
    assert_eq!(unset.body, json!({"webhook": null, "email": null}), "nothing set yet is all off, not 404");

    let body = json!({
        "webhook": {"url": "https://hooks.example.com/todo", "secret": SECRET},
        "email": {"address": "alice@example.com"}
    });
    let answer = put(&h, "alice", &body).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let view = json!({
        "webhook": {"url": "https://hooks.example.com/todo", "secret_set": true},
        "email": {"address": "alice@example.com"}
    });
    assert_eq!(answer.body, view);
    assert!(!answer.text.contains("whsec_"), "the PUT answer carries no secret: {}", answer.text);

    let read = h.get(PATH).user("alice").send().await;
    assert_eq!((read.status, &read.body), (200, &view));
    assert!(!read.text.contains("whsec_"), "the GET answer carries no secret: {}", read.text);

    // Kept for the notifier, in the `notify` store under the user's key.
    let kept = stored(&h, "alice").unwrap();
    assert_eq!(kept["webhook"]["secret"], SECRET);
    assert_eq!(kept["email"]["address"], "alice@example.com");

    // Every channel left out: all off.
    let off = put(&h, "alice", &json!({})).await;
    assert_eq!((off.status, &off.body), (200, &json!({"webhook": null, "email": null})));
    assert_eq!(stored(&h, "alice").unwrap(), json!({}), "no address or secret is kept once off");
}

#[tokio::test]
async fn a_put_without_secret_keeps_the_one_set_and_needs_one_to_keep() {
    let h = Harness::start().await;
    let first = put(&h, "alice", &json!({"webhook": {"url": "https://hooks.example.com/a"}})).await;
    assert_eq!(first.status, 400, "{:?}", first.body);
    assert_eq!(first.field(), Some("webhook.secret"));
    assert!(first.body["error"].as_str().unwrap().starts_with("webhook.secret: is required"), "{:?}", first.body);
    assert_eq!(stored(&h, "alice"), None, "nothing written");

    assert_eq!(
        put(&h, "alice", &json!({"webhook": {"url": "https://hooks.example.com/a", "secret": SECRET}})).await.status,
        200
    );
    let moved = put(&h, "alice", &json!({"webhook": {"url": "https://hooks.example.com/b"}})).await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert_eq!(moved.body["webhook"], json!({"url": "https://hooks.example.com/b", "secret_set": true}));
    let kept = stored(&h, "alice").unwrap();
    assert_eq!(
        (kept["webhook"]["url"].as_str(), kept["webhook"]["secret"].as_str()),
        (Some("https://hooks.example.com/b"), Some(SECRET))
    );

    let rotated =
        put(&h, "alice", &json!({"webhook": {"url": "https://hooks.example.com/b", "secret": OTHER_SECRET}})).await;
    assert_eq!(rotated.status, 200);
    assert_eq!(stored(&h, "alice").unwrap()["webhook"]["secret"], OTHER_SECRET, "a new secret replaces the old");

    let bad = put(&h, "alice", &json!({"webhook": {"url": "https://hooks.example.com/b", "secret": "hunter2"}})).await;
    assert_eq!((bad.status, bad.field()), (400, Some("webhook.secret")));
    assert_eq!(stored(&h, "alice").unwrap()["webhook"]["secret"], OTHER_SECRET, "a refused PUT writes nothing");
}

#[tokio::test]
async fn plain_http_is_refused_unless_to_loopback_and_configured() {
    let h = Harness::start().await;
    for url in ["http://127.0.0.1:8099/hook", "http://localhost:8099/hook", "https://127.0.0.1/hook"] {
        let answer = put(&h, "alice", &json!({"webhook": {"url": url, "secret": SECRET}})).await;
        assert_eq!((answer.status, answer.field()), (400, Some("webhook.url")), "{url}: {:?}", answer.body);
        assert!(
            answer.body["error"].as_str().unwrap().contains("must not point at this host"),
            "{url}: {:?}",
            answer.body
        );
    }
    let public = put(&h, "alice", &json!({"webhook": {"url": "http://hooks.example.com/", "secret": SECRET}})).await;
    assert_eq!((public.status, public.field()), (400, Some("webhook.url")));
    assert_eq!(public.body["error"], "webhook.url: must use https");
    assert_eq!(stored(&h, "alice"), None);

    let dev = with_loopback().await;
    for url in ["http://127.0.0.1:8099/hook", "http://localhost:8099/hook", "http://[::1]:8099/hook"] {
        let answer = put(&dev, "alice", &json!({"webhook": {"url": url, "secret": SECRET}})).await;
        assert_eq!(answer.status, 200, "{url} with NOTIFY_ALLOW_LOOPBACK_HTTP: {:?}", answer.body);
        assert_eq!(answer.body["webhook"]["url"], url);
    }
    let public = put(&dev, "alice", &json!({"webhook": {"url": "http://hooks.example.com/", "secret": SECRET}})).await;
    assert_eq!((public.status, public.field()), (400, Some("webhook.url")), "loopback only, not plain http anywhere");
}

#[tokio::test]
async fn internal_literal_addresses_are_refused_naming_the_field() {
    let h = with_loopback().await;
    for (url, range) in [
        ("https://10.0.0.5/hook", "private"),
        ("https://192.168.1.1/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://[fd00::1]/hook", "unique local"),
        ("https://[::ffff:10.0.0.5]/hook", "private"),
        ("https://100.64.0.1/hook", "carrier-grade NAT"),
    ] {
        let answer = put(&h, "alice", &json!({"webhook": {"url": url, "secret": SECRET}})).await;
        assert_eq!((answer.status, answer.field()), (400, Some("webhook.url")), "{url}: {:?}", answer.body);
        let message = answer.body["error"].as_str().unwrap();
        assert!(message.starts_with("webhook.url: must reach the public internet"), "{url}: {message}");
        assert!(message.contains(range), "{url}: {message}");
    }
    let email = put(&h, "alice", &json!({"email": {"address": "alice@example.com, mallory@example.com"}})).await;
    assert_eq!((email.status, email.field()), (400, Some("email.address")), "{:?}", email.body);
    assert_eq!(stored(&h, "alice"), None, "nothing refused was written");
}

#[tokio::test]
async fn one_user_never_sees_or_changes_anothers_channels() {
    let h = Harness::start().await;
    let alice = json!({"webhook": {"url": "https://alice.example.com/", "secret": SECRET}, "email": {"address": "alice@example.com"}});
    assert_eq!(put(&h, "alice", &alice).await.status, 200);

    let bob = h.get(PATH).user("bob").send().await;
    assert_eq!((bob.status, &bob.body), (200, &json!({"webhook": null, "email": null})));
    // bob's PUT without a secret does not inherit alice's.
    let inherit = put(&h, "bob", &json!({"webhook": {"url": "https://bob.example.com/"}})).await;
    assert_eq!((inherit.status, inherit.field()), (400, Some("webhook.secret")));
    assert_eq!(put(&h, "bob", &json!({"email": {"address": "bob@example.com"}})).await.status, 200);

    assert_eq!(stored(&h, "alice").unwrap()["email"]["address"], "alice@example.com");
    assert_eq!(stored(&h, "bob").unwrap(), json!({"email": {"address": "bob@example.com"}}));
    let keys: Vec<String> = h.stub.all_state("notify").into_keys().collect();
    assert_eq!(keys, ["channels:alice", "channels:bob"]);
}

#[tokio::test]
async fn unauthenticated_requests_are_401_and_read_nothing() {
    let h = Harness::start().await;
    let get = h.get(PATH).send().await;
    assert_eq!((get.status, get.field()), (401, Some("Authorization")));
    assert_eq!(get.header("www-authenticate"), Some(r#"Bearer realm="task-api""#));
    let put = h.call(Method::PUT, PATH).authorization("Bearer not-a-token").json(&json!({})).send().await;
    assert_eq!(put.status, 401);
    assert!(h.state_requests().is_empty(), "no store access before authentication: {:?}", h.state_requests());
}

#[tokio::test]
async fn bad_requests_and_methods_answer_in_the_api_shape() {
    let h = Harness::start().await;
    let text = h.call(Method::PUT, PATH).user("alice").raw_body(b"{}", Some("text/plain")).send().await;
    assert_eq!((text.status, text.field()), (415, Some("Content-Type")));
    let unknown = put(&h, "alice", &json!({"sms": {"number": "+15550100"}})).await;
    assert_eq!(unknown.status, 400, "{:?}", unknown.body);
    assert!(unknown.body["error"].as_str().unwrap().contains("sms"), "{:?}", unknown.body);
    let delete = h.delete(PATH).user("alice").send().await;
    assert_eq!(delete.status, 405);
    assert_eq!(delete.body["error"], "method not allowed");
    assert_eq!(
        delete.header("allow").map(|a| a.contains("PUT") && a.contains("GET")),
        Some(true),
        "{:?}",
        delete.headers
    );
    let sub = h.get("/v1/me/notifications/webhook").user("alice").send().await;
    assert_eq!((sub.status, &sub.body["error"]), (404, &json!("no such route")));
}

#[tokio::test]
async fn a_repeated_put_writes_nothing() {
    let h = Harness::start().await;
    let body = json!({"email": {"address": "alice@example.com"}});
    assert_eq!(put(&h, "alice", &body).await.status, 200);
    h.stub.clear_requests();
    let again = put(&h, "alice", &body).await;
    assert_eq!(again.status, 200);
    let saves = h.stub.requests_to(Method::POST, "/v1.0/state/notify");
    assert!(!saves.iter().any(|r| r.path == "/v1.0/state/notify"), "an unchanged PUT saves nothing: {saves:?}");
}

/// A concurrent PUT lands between this one's read and write: the write is refused by the ETag,
/// and the body is applied again on what the other wrote, so the secret kept is the newest.
#[tokio::test]
async fn a_concurrent_change_is_not_lost() {
    let h = Harness::start().await;
    assert_eq!(
        put(&h, "alice", &json!({"webhook": {"url": "https://a.example.com/", "secret": SECRET}})).await.status,
        200
    );
    let other = json!({"webhook": {"url": "https://other.example.com/", "secret": OTHER_SECRET}});
    h.stub.put_state_before(Method::POST, "/v1.0/state/notify", "notify", "channels:alice", other);
    h.stub.clear_requests();
    let answer = put(&h, "alice", &json!({"webhook": {"url": "https://b.example.com/"}})).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let saves: Vec<_> = h
        .stub
        .requests_to(Method::POST, "/v1.0/state/notify")
        .into_iter()
        .filter(|r| r.path == "/v1.0/state/notify")
        .collect();
    assert_eq!(saves.len(), 2, "the first save lost the race, the second was made on a fresh read: {saves:?}");
    assert!(saves.iter().all(|s| s.body[0]["etag"].is_string()), "every save is ETag-guarded: {saves:?}");
    let kept = stored(&h, "alice").unwrap();
    assert_eq!(kept["webhook"]["url"], "https://b.example.com/");
    assert_eq!(kept["webhook"]["secret"], OTHER_SECRET, "the secret kept is the one stored when the PUT applied");
}

/// Two first PUTs: the loser's insert-if-absent fails, it reads the winner's and applies again.
#[tokio::test]
async fn a_concurrent_first_put_is_not_lost() {
    let h = Harness::start().await;
    let other = json!({"webhook": {"url": "https://other.example.com/", "secret": OTHER_SECRET}});
    h.stub.put_state_before(Method::POST, "/v1.0/state/notify", "notify", "channels:alice", other);
    let answer = put(&h, "alice", &json!({"email": {"address": "alice@example.com"}})).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let saves: Vec<_> = h
        .stub
        .requests_to(Method::POST, "/v1.0/state/notify")
        .into_iter()
        .filter(|r| r.path == "/v1.0/state/notify")
        .collect();
    assert_eq!(saves.len(), 2, "{saves:?}");
    assert_eq!(saves[0].body[0]["options"]["concurrency"], "first-write", "the first save inserts only if absent");
    assert!(saves[1].body[0]["etag"].is_string(), "the second is guarded by the ETag of the re-read");
    assert_eq!(stored(&h, "alice").unwrap(), json!({"email": {"address": "alice@example.com"}}));
}

#[tokio::test]
async fn a_store_outage_is_503() {
    let h = Harness::start().await;
    h.stub.fail(Method::GET, "/v1.0/state/notify", 500, 1);
    let answer = h.get(PATH).user("alice").send().await;
    assert_eq!(answer.status, 503);
    assert!(answer.header("retry-after").is_some());
}

/// A fired reminder shows the notifier's delivery records of its event, in channel order.
#[tokio::test]
async fn the_reminder_view_shows_the_deliveries_of_a_fired_reminder() {
    let h = Harness::start().await;
    let mut t = task(1, "alice", "Pay rent");
    t.reminder = Some(Reminder::At(chrono::DateTime::parse_from_rfc3339("2026-12-01T07:45:00Z").unwrap()));
    h.put_task(&t);
    let path = format!("/v1/tasks/{}/reminder", t.id);

    let pending = h.get(&path).user("alice").send().await;
    assert_eq!((pending.status, &pending.body["status"]), (200, &json!("pending")));
    assert_eq!(pending.body["deliveries"], json!([]), "always present");
    assert!(!h.stub.requests().iter().any(|r| r.path.contains("/state/deliveries")), "nothing fired, nothing read");

    h.stub.put_state(
        "state",
        &format!("reminder:{}", t.id),
        json!({
            "task_id": t.id, "status": "fired", "remind_at": "2026-12-01T07:45:00Z", "task_version": t.version,
            "updated_at": "2026-12-01T07:45:01Z", "fired_at": "2026-12-01T07:45:00.300Z", "late_by_ms": 300
        }),
    );
    let fired = h.get(&path).user("alice").send().await;
    assert_eq!(fired.body["deliveries"], json!([]), "fired, nothing recorded by the notifier yet");
    let bulk = h.stub.requests().into_iter().rfind(|r| r.path == "/v1.0/state/deliveries/bulk").expect("a bulk get");
    let event = format!("reminder:{}:{}", t.id, 1_796_111_100);
    assert_eq!(bulk.body["keys"], json!([format!("delivery:{event}:webhook"), format!("delivery:{event}:email")]));

    let record = |channel: &str, status: &str, extra: Value| {
        let mut value = json!({
            "event_id": event, "task_id": t.id, "channel": channel, "status": status, "attempts": 1,
            "attempted_at": "2026-12-01T07:45:01Z", "delivered_at": null, "next_attempt_at": null, "last_error": null
        });
        value.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        value
    };
    h.stub.put_state(
        "deliveries",
        &format!("delivery:{event}:email"),
        record("email", "delivered", json!({"delivered_at": "2026-12-01T07:45:02Z"})),
    );
    h.stub.put_state(
        "deliveries",
        &format!("delivery:{event}:webhook"),
        record(
            "webhook",
            "retrying",
            json!({"attempts": 2, "next_attempt_at": "2026-12-01T07:45:05Z", "last_error": "503 Service Unavailable"}),
        ),
    );
    let answer = h.get(&path).user("alice").send().await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body["deliveries"],
        json!([
            {"channel": "webhook", "status": "retrying", "attempts": 2, "delivered_at": null,
             "next_attempt_at": "2026-12-01T07:45:05Z", "last_error": "503 Service Unavailable"},
            {"channel": "email", "status": "delivered", "attempts": 1, "delivered_at": "2026-12-01T07:45:02Z",
             "next_attempt_at": null, "last_error": null}
        ])
    );
    assert_eq!(answer.body["status"], "fired");

    // Another user's task is 404 and reads no delivery record.
    h.stub.clear_requests();
    assert_eq!(h.get(&path).user("bob").send().await.status, 404);
    assert!(!h.stub.requests().iter().any(|r| r.path.contains("/state/deliveries")));
}
