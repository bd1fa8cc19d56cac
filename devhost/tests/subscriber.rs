//! The subscriber side for any Dapr app: readiness without `/healthz` and with app health checks,
//! bulk subscriptions, full CEL routing, case-sensitive statuses, and a programmatic rule that
//! does not compile (daprd's answer checked against a real daprd in
//! `system-tests/tests/conformance/subscribe.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::time::Duration;

use common::{FakeApp, Sidecar, subscription};
use devhost::runfile::HealthCheck;
use devhost::{AppSpec, Devhost};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

async fn devhost(app: &FakeApp, health_check: Option<HealthCheck>) -> Devhost {
    let mut spec = AppSpec::new("app", app.port);
    spec.health_check = health_check;
    Devhost::builder()
        .resources_yaml(common::PUBSUB)
        .resources_yaml(common::QUICK_RETRIES)
        .app(spec)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_app_without_healthz_is_subscribed_and_never_probed() {
    let app = FakeApp::start(Some(json!([subscription("t", "/in", None)]))).await;
    app.set_healthz(None);
    let d = tokio::time::timeout(WAIT, devhost(&app, None)).await.expect("attached without /healthz");
    let s = Sidecar::new(d.sidecar_url("app"));
    assert_eq!(s.publish("pubsub", "t", &json!({"n": 1}), &[]).await, 204);
    app.wait_posts("/in", 1, WAIT).await;
    assert_eq!(app.health_probes(), 0, "no health checks unless enabled");
    d.shutdown().await;
}

#[tokio::test]
async fn with_health_checks_deliveries_wait_while_the_app_is_unhealthy() {
    let app = FakeApp::start(Some(json!([subscription("t", "/in", None)]))).await;
    let check = HealthCheck {
        path: "/healthz".into(),
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(50),
        threshold: 2,
    };
    let d = devhost(&app, Some(check)).await;
    assert!(app.health_probes() >= 1, "probed before it was subscribed");
    let s = Sidecar::new(d.sidecar_url("app"));
    assert_eq!(s.publish("pubsub", "t", &json!({"n": 1}), &[]).await, 204);
    app.wait_posts("/in", 1, WAIT).await;
    app.set_healthz(Some(false));
    // Two failed probes in a row (threshold 2) make it unhealthy.
    let probes = app.health_probes();
    common::eventually(WAIT, "two more probes", || app.health_probes() >= probes + 3).await;
    assert_eq!(s.publish("pubsub", "t", &json!({"n": 2}), &[]).await, 204);
    // No fact shows a delivery loop holding a message, so the window is devhost's own
    // progress: 5 more probes (500 ms at 100 ms), each finding the app still unhealthy.
    let probes = app.health_probes();
    common::eventually(WAIT, "five more probes of the unhealthy app", || app.health_probes() >= probes + 5).await;
    assert_eq!(app.posts("/in").len(), 1, "nothing delivered while unhealthy");
    app.set_healthz(Some(true));
    let got = app.wait_posts("/in", 2, WAIT).await;
    assert_eq!(got[1].json()["data"]["n"], 2);
    d.shutdown().await;
}

#[tokio::test]
async fn routing_rules_are_full_cel_and_a_bad_programmatic_rule_subscribes_nothing() {
    let rules = json!([{
        "pubsubname": "pubsub", "topic": "t",
        "routes": {"rules": [
            {"match": "event.data.n > 5", "path": "/big"},
            {"match": "has(event.data.tag) && event.data.tag.startsWith('x')", "path": "/tagged"}
        ], "default": "/plain"}
    }]);
    let app = FakeApp::start(Some(rules)).await;
    let d = devhost(&app, None).await;
    let s = Sidecar::new(d.sidecar_url("app"));
    for data in [json!({"n": 7}), json!({"n": 1, "tag": "xy"}), json!({"n": 1})] {
        assert_eq!(s.publish("pubsub", "t", &data, &[]).await, 204);
    }
    app.wait_posts("/big", 1, WAIT).await;
    app.wait_posts("/tagged", 1, WAIT).await;
    app.wait_posts("/plain", 1, WAIT).await;
    d.shutdown().await;

    // daprd's GetSubscriptionsHTTP fails on it: logged, and the app gets no subscription at all.
    let bad = json!([
        subscription("t", "/in", None),
        {"pubsubname": "pubsub", "topic": "u", "routes": {"rules": [{"match": "event.type.frob()", "path": "/x"}]}}
    ]);
    let app = FakeApp::start(Some(bad)).await;
    let d = devhost(&app, None).await;
    let s = Sidecar::new(d.sidecar_url("app"));
    let metadata = s.get("/v1.0/metadata").await.json();
    // No subscription at all: daprd's metadata then leaves the list out (protojson omits it).
    assert_eq!(metadata.get("subscriptions"), None, "{metadata}");
    assert_eq!(s.publish("pubsub", "t", &json!({"n": 1}), &[]).await, 204);
    // The metadata lists the subscriptions devhost started delivery loops for: none, so
    // nothing can be delivered.
    assert!(app.posts("/in").is_empty(), "nothing is subscribed");
    d.shutdown().await;
}

#[tokio::test]
async fn statuses_are_case_sensitive() {
    let app =
        FakeApp::start(Some(json!([subscription("t", "/in", Some("dead")), subscription("dead", "/dead", None)])))
            .await;
    app.respond(|r| {
        if r.path == "/in" && r.json()["data"]["kind"] == "lower" {
            (200, r#"{"status":"drop"}"#.to_owned())
        } else {
            (200, r#"{"status":"SUCCESS"}"#.to_owned())
        }
    });
    let d = devhost(&app, None).await;
    let s = Sidecar::new(d.sidecar_url("app"));
    assert_eq!(s.publish("pubsub", "t", &json!({"kind": "lower"}), &[]).await, 204);
    // Unknown status: retried (1 + 3 retries), then dead-lettered, where DROP would be one delivery.
    app.wait_posts("/dead", 1, WAIT).await;
    assert_eq!(app.posts("/in").len(), 4);
    d.shutdown().await;
}

/// `(entryId, CloudEvent data.kind)` of a bulk request.
fn entries(r: &common::Recorded) -> Vec<(String, String)> {
    r.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (e["entryId"].as_str().unwrap().to_owned(), e["event"]["data"]["kind"].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

#[tokio::test]
async fn bulk_subscriptions_deliver_batches_and_settle_each_entry() {
    let bulk = json!([
        {"pubsubname": "pubsub", "topic": "t", "routes": {"default": "/bulk"}, "deadLetterTopic": "dead",
         "bulkSubscribe": {"enabled": true, "maxMessagesCount": 4, "maxAwaitDurationMs": 60000}},
        subscription("dead", "/dead", None)
    ]);
    let app = FakeApp::start(Some(bulk)).await;
    app.respond(|r| {
        if r.path != "/bulk" {
            return (200, r#"{"status":"SUCCESS"}"#.to_owned());
        }
        let statuses: Vec<Value> = r.json()["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| {
                let status = match e["event"]["data"]["kind"].as_str().unwrap() {
                    "missing" => return None,
                    "drop" => "DROP",
                    "lower" => "drop",
                    _ => "SUCCESS",
                };
                Some(json!({"entryId": e["entryId"], "status": status}))
            })
            .collect();
        (200, json!({"statuses": statuses}).to_string())
    });
    let d = devhost(&app, None).await;
    let s = Sidecar::new(d.sidecar_url("app"));
    for kind in ["ok", "drop", "missing", "lower"] {
        assert_eq!(s.publish("pubsub", "t", &json!({"kind": kind}), &[("partitionKey", "k")]).await, 204);
    }
    let first = app.wait_posts("/bulk", 1, WAIT).await.remove(0);
    let body = first.json();
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("pubsubname"), Some("pubsub"));
    assert_eq!((body["type"].as_str(), body["topic"].as_str()), (Some("com.dapr.event.sent.bulk"), Some("t")));
    assert_eq!(body["metadata"], json!({"pubsubName": "pubsub"}));
    assert_eq!(body["entries"][0]["contentType"], "application/cloudevents+json");
    assert_eq!(body["entries"][0]["metadata"]["__key"], "k");
    let kinds = |v: Vec<(&str, &str)>| v.into_iter().map(|(a, b)| (a.to_owned(), b.to_owned())).collect::<Vec<_>>();
    assert_eq!(entries(&first), kinds(vec![("0", "ok"), ("1", "drop"), ("2", "missing"), ("3", "lower")]));
    // DROP at once, the failed ones after the policy's 3 retries, each retry with only them.
    let dead = app.wait_posts("/dead", 3, WAIT).await;
    let bulk = app.posts("/bulk");
    assert_eq!(bulk.len(), 4);
    assert_eq!(entries(&bulk[3]), kinds(vec![("2", "missing"), ("3", "lower")]));
    let mut dead: Vec<String> = dead.iter().map(|r| r.json()["data"]["kind"].as_str().unwrap().to_owned()).collect();
    dead.sort();
    assert_eq!(dead, ["drop", "lower", "missing"]);
    d.shutdown().await;
}

#[tokio::test]
async fn a_partial_bulk_batch_is_flushed_after_max_await() {
    let bulk = json!([{"pubsubname": "pubsub", "topic": "t", "routes": {"default": "/bulk"},
                      "bulkSubscribe": {"enabled": true, "maxMessagesCount": 10, "maxAwaitDurationMs": 300}}]);
    let app = FakeApp::start(Some(bulk)).await;
    app.respond(|r| {
        let statuses: Vec<Value> = r.json()["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| json!({"entryId": e["entryId"], "status": "SUCCESS"}))
            .collect();
        (200, json!({"statuses": statuses}).to_string())
    });
    let d = devhost(&app, None).await;
    let s = Sidecar::new(d.sidecar_url("app"));
    let sent = std::time::Instant::now();
    for kind in ["a", "b"] {
        assert_eq!(s.publish("pubsub", "t", &json!({"kind": kind}), &[("partitionKey", "k")]).await, 204);
    }
    let got = app.wait_posts("/bulk", 1, WAIT).await;
    assert!(sent.elapsed() >= Duration::from_millis(250), "flushed after {:?}", sent.elapsed());
    assert_eq!(entries(&got[0]).len(), 2);
    d.shutdown().await;
}
