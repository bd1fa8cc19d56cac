//! Stage 3b: delivery semantics: one consumer group per app-id, per-key order under load,
//! SUCCESS/RETRY/DROP/404/500, bounded retries then the dead-letter topic, a poison message
//! that stops blocking once dead-lettered, Kafka's endless retry without a dead-letter topic,
//! routing rules and declarative subscriptions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{FakeApp, Sidecar, subscription};
use devhost::{AppSpec, Devhost};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

async fn devhost(apps: &[(&str, &FakeApp)], resiliency: bool) -> Devhost {
    devhost_on(apps, resiliency, ":memory:").await
}

/// [`devhost`] on database `db` (a file, for tests that read consumer lag).
async fn devhost_on(apps: &[(&str, &FakeApp)], resiliency: bool, db: &str) -> Devhost {
    let mut b = Devhost::builder().resources_yaml(common::PUBSUB).database(db);
    if resiliency {
        b = b.resources_yaml(common::QUICK_RETRIES);
    }
    for (id, app) in apps {
        b = b.app(AppSpec::new(*id, app.port));
    }
    b.start().await.unwrap()
}

fn data_of(r: &common::Recorded) -> Value {
    r.json()["data"].clone()
}

#[tokio::test]
async fn every_subscribing_app_gets_every_message() {
    let one = FakeApp::start(Some(json!([subscription("t", "/one", None)]))).await;
    let two = FakeApp::start(Some(json!([subscription("t", "/two", None)]))).await;
    let none = FakeApp::start(None).await;
    let db = common::TempDb::new();
    let d = devhost_on(&[("one", &one), ("two", &two), ("none", &none)], false, &db.path).await;
    let s = Sidecar::new(d.sidecar_url("none"));
    for i in 0..10 {
        assert_eq!(s.publish("pubsub", "t", &json!({"i": i}), &[]).await, 204);
    }
    for (app, path) in [(&one, "/one"), (&two, "/two")] {
        let got = app.wait_posts(path, 10, WAIT).await;
        let mut seen: Vec<i64> = got.iter().map(|r| data_of(r)["i"].as_i64().unwrap()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
    }
    // Both groups at the end of the topic: none of its messages can come again.
    common::wait_caught_up(&db.path, "pubsub", &[("one", "t"), ("two", "t")], WAIT).await;
    assert_eq!(one.posts("/").len(), 10, "delivered once each");
    assert_eq!(two.posts("/").len(), 10, "delivered once each");
    let groups: Vec<String> = common::lags(&db.path, "pubsub").into_iter().map(|l| l.0).collect();
    assert_eq!(groups, ["one", "two"], "no consumer group for the app without a subscription");
    assert!(none.posts("/").is_empty(), "no subscription, no delivery");
    d.shutdown().await;
}

#[tokio::test]
async fn order_per_key_holds_under_load() {
    let app = FakeApp::start(Some(json!([subscription("t", "/in", None)]))).await;
    // Slow, jittery handler: a partition must still wait for each answer.
    app.respond(|r| {
        let i = r.json()["data"]["seq"].as_u64().unwrap_or(0);
        // Not a wait: the handler's own work, jittered, so that answers take varying time.
        std::thread::sleep(Duration::from_micros(200 * (i % 5)));
        (200, r#"{"status":"SUCCESS"}"#.to_owned())
    });
    let d = devhost(&[("app", &app)], false).await;
    let s = Sidecar::new(d.sidecar_url("app"));
    let mut publishers = Vec::new();
    for k in 0..8 {
        let s = s.clone();
        publishers.push(tokio::spawn(async move {
            for seq in 0..25 {
                let key = format!("key-{k}");
                assert_eq!(
                    s.publish("pubsub", "t", &json!({"key": key, "seq": seq}), &[("partitionKey", &key)]).await,
                    204
                );
            }
        }));
    }
    for p in publishers {
        p.await.unwrap();
    }
    let got = app.wait_posts("/in", 200, WAIT).await;
    for k in 0..8 {
        let key = format!("key-{k}");
        let seqs: Vec<u64> =
            got.iter().map(data_of).filter(|v| v["key"] == key.as_str()).map(|v| v["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (0..25).collect::<Vec<_>>(), "{key}");
    }
    d.shutdown().await;
}

#[tokio::test]
async fn success_forms_are_settled_once() {
    let app = FakeApp::start(Some(json!([subscription("t", "/in", None)]))).await;
    app.respond(|r| match data_of(r)["form"].as_str().unwrap_or_default() {
        "empty" => (200, String::new()),
        "text" => (200, "ok".to_owned()),
        "nostatus" => (200, r#"{"other":1}"#.to_owned()),
        "accepted" => (202, String::new()),
        _ => (200, r#"{"status":"SUCCESS"}"#.to_owned()),
    });
    let db = common::TempDb::new();
    let d = devhost_on(&[("app", &app)], true, &db.path).await;
    let s = Sidecar::new(d.sidecar_url("app"));
    for form in ["empty", "text", "nostatus", "accepted", "success"] {
        s.publish("pubsub", "t", &json!({"form": form}), &[("partitionKey", "one")]).await;
    }
    app.wait_posts("/in", 5, WAIT).await;
    // Every message settled and committed: none is retried after this.
    common::wait_caught_up(&db.path, "pubsub", &[("app", "t")], WAIT).await;
    assert_eq!(app.posts("/in").len(), 5, "no retries");
    d.shutdown().await;
}

#[tokio::test]
async fn retry_then_dead_letter_topic_and_drop_404_go_straight_there() {
    let app =
        FakeApp::start(Some(json!([subscription("t", "/in", Some("t-dlq")), subscription("t-dlq", "/dlq", None),])))
            .await;
    app.respond(|r| {
        if r.path == "/dlq" {
            return (200, String::new());
        }
        match data_of(r)["kind"].as_str().unwrap_or_default() {
            "retry" => (200, r#"{"status":"RETRY"}"#.to_owned()),
            "drop" => (200, r#"{"status":"DROP"}"#.to_owned()),
            "404" => (404, String::new()),
            "500" => (500, String::new()),
            "weird" => (200, r#"{"status":"MAYBE"}"#.to_owned()),
            _ => (200, String::new()),
        }
    });
    let d = devhost(&[("app", &app)], true).await;
    let s = Sidecar::new(d.sidecar_url("app"));
    for kind in ["retry", "drop", "404", "500", "weird"] {
        assert_eq!(s.publish("pubsub", "t", &json!({"kind": kind}), &[("partitionKey", kind)]).await, 204);
    }
    let letters = app.wait_posts("/dlq", 5, WAIT).await;
    let attempts = |kind: &str| app.posts("/in").iter().filter(|r| data_of(r)["kind"] == kind).count();
    // RETRY, 500 and an unknown status: 1 attempt + 3 retries, then the dead-letter topic.
    assert_eq!(attempts("retry"), 4);
    assert_eq!(attempts("500"), 4);
    assert_eq!(attempts("weird"), 4);
    // DROP and 404: no retry.
    assert_eq!(attempts("drop"), 1);
    assert_eq!(attempts("404"), 1);
    // The dead letter carries the original CloudEvent, unchanged.
    let original = app.posts("/in").into_iter().find(|r| data_of(r)["kind"] == "drop").unwrap();
    let letter = letters.iter().find(|r| data_of(r)["kind"] == "drop").unwrap();
    assert_eq!(letter.body, original.body);
    assert_eq!(letter.header("__topic"), Some("t-dlq"));
    assert_eq!(letter.json()["topic"], "t", "the original topic attribute is kept");
    d.shutdown().await;
}

#[tokio::test]
async fn a_dead_lettered_poison_message_unblocks_its_partition() {
    let app = FakeApp::start(Some(json!([subscription("t", "/in", Some("dlq"))]))).await;
    app.respond(|r| {
        if data_of(r)["poison"] == true { (200, r#"{"status":"RETRY"}"#.to_owned()) } else { (200, String::new()) }
    });
    let d = devhost(&[("app", &app)], true).await;
    let s = Sidecar::new(d.sidecar_url("app"));
    s.publish("pubsub", "t", &json!({"poison": true}), &[("partitionKey", "same")]).await;
    for i in 0..5 {
        s.publish("pubsub", "t", &json!({"i": i}), &[("partitionKey", "same")]).await;
    }
    let got = app.wait_posts("/in", 9, WAIT).await;
    let kinds: Vec<String> = got
        .iter()
        .map(|r| if data_of(r)["poison"] == true { "P".into() } else { data_of(r)["i"].to_string() })
        .collect();
    assert_eq!(
        kinds,
        ["P", "P", "P", "P", "0", "1", "2", "3", "4"],
        "the good messages wait, then all arrive in order"
    );
    d.shutdown().await;
}

#[tokio::test]
async fn without_dead_letter_topic_kafka_retries_forever_blocking_the_partition() {
    let app = FakeApp::start(Some(json!([subscription("t", "/in", None)]))).await;
    let failures = Arc::new(AtomicUsize::new(0));
    let f = failures.clone();
    // The first message fails 6 times (more than the 3 retries of the policy), then succeeds.
    app.respond(move |r| {
        if data_of(r)["first"] == true && f.fetch_add(1, Ordering::SeqCst) < 6 {
            (500, String::new())
        } else {
            (200, String::new())
        }
    });
    let d = devhost(&[("app", &app)], true).await;
    let s = Sidecar::new(d.sidecar_url("app"));
    s.publish("pubsub", "t", &json!({"first": true}), &[("partitionKey", "k")]).await;
    s.publish("pubsub", "t", &json!({"second": true}), &[("partitionKey", "k")]).await;
    let got = app.wait_posts("/in", 8, WAIT).await;
    let firsts = got.iter().take_while(|r| data_of(r)["first"] == true).count();
    assert_eq!(firsts, 7, "policy retries exhausted, then the component retry redelivers until success");
    assert_eq!(data_of(&got[7])["second"], true, "the second message waited behind the first");
    d.shutdown().await;
}

#[tokio::test]
async fn drop_without_dead_letter_topic_is_acknowledged() {
    let app = FakeApp::start(Some(json!([subscription("t", "/in", None)]))).await;
    app.respond(|r| {
        if data_of(r)["bad"] == true { (200, r#"{"status":"DROP"}"#.to_owned()) } else { (200, String::new()) }
    });
    let db = common::TempDb::new();
    let d = devhost_on(&[("app", &app)], true, &db.path).await;
    let s = Sidecar::new(d.sidecar_url("app"));
    s.publish("pubsub", "t", &json!({"bad": true}), &[("partitionKey", "k")]).await;
    s.publish("pubsub", "t", &json!({"ok": true}), &[("partitionKey", "k")]).await;
    let got = app.wait_posts("/in", 2, WAIT).await;
    assert_eq!(data_of(&got[1])["ok"], true);
    // Both settled and committed: the dropped one is not delivered again.
    common::wait_caught_up(&db.path, "pubsub", &[("app", "t")], WAIT).await;
    assert_eq!(app.posts("/in").len(), 2);
    d.shutdown().await;
}

#[tokio::test]
async fn routing_rules_default_route_and_cel_errors() {
    let subs = json!([
        {"pubsubname": "pubsub", "topic": "t", "deadLetterTopic": "t-dlq", "routes": {
            "rules": [
                {"match": "event.type == \"a.created\" && event.data.kind != \"x\"", "path": "/created"},
                {"match": "event.data.n == 2 || (event.type == \"a.deleted\")", "path": "/deleted"},
            ],
            "default": "/other"}},
        {"pubsubname": "pubsub", "topic": "nodefault", "routes": {"rules": [{"match": "event.type == \"keep\"", "path": "/keep"}]}},
        subscription("t-dlq", "/dlq", None),
    ]);
    let app = FakeApp::start(Some(subs)).await;
    let db = common::TempDb::new();
    let d = devhost_on(&[("app", &app)], false, &db.path).await;
    let s = Sidecar::new(d.sidecar_url("app"));
    let typed = |t: &'static str| [("cloudevent.type", t), ("partitionKey", "k")];
    s.publish("pubsub", "t", &json!({"kind": "y", "n": 1}), &typed("a.created")).await;
    s.publish("pubsub", "t", &json!({"kind": "x", "n": 2}), &typed("a.created")).await;
    s.publish("pubsub", "t", &json!({"kind": "x", "n": 3}), &typed("a.updated")).await;
    // `event.data.kind` is missing: a CEL evaluation error, so the dead-letter topic.
    s.publish("pubsub", "t", &json!({"n": 4}), &typed("a.created")).await;
    s.publish("pubsub", "nodefault", &json!({}), &[("cloudevent.type", "drop-me")]).await;
    s.publish("pubsub", "nodefault", &json!({}), &[("cloudevent.type", "keep")]).await;

    app.wait_posts("/dlq", 1, WAIT).await;
    app.wait_posts("/keep", 1, WAIT).await;
    app.wait_posts("/other", 1, WAIT).await;
    // Every message of every topic settled and committed: nothing more arrives anywhere.
    let settled = [("app", "t"), ("app", "nodefault"), ("app", "t-dlq")];
    common::wait_caught_up(&db.path, "pubsub", &settled, WAIT).await;
    let ns = |p: &str| -> Vec<i64> { app.posts(p).iter().map(|r| data_of(r)["n"].as_i64().unwrap_or(-1)).collect() };
    assert_eq!(ns("/created"), [1]);
    assert_eq!(ns("/deleted"), [2]);
    assert_eq!(ns("/other"), [3]);
    assert_eq!(ns("/dlq"), [4]);
    assert_eq!(app.posts("/keep").len(), 1, "no match and no default route: acknowledged, not delivered");
    d.shutdown().await;
}

#[tokio::test]
async fn declarative_subscriptions_honour_scopes() {
    let sub = r#"
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: s}
spec:
  pubsubname: pubsub
  topic: decl
  routes:
    rules:
      - {match: 'event.type == "special"', path: /special}
    default: /decl
scopes: [yes]
"#;
    let yes = FakeApp::start(None).await;
    let no = FakeApp::start(None).await;
    let d = Devhost::builder()
        .resources_yaml(common::PUBSUB)
        .resources_yaml(sub)
        .app(AppSpec::new("yes", yes.port))
        .app(AppSpec::new("no", no.port))
        .start()
        .await
        .unwrap();
    let s = Sidecar::new(d.sidecar_url("no"));
    s.publish("pubsub", "decl", &json!({"v": 1}), &[]).await;
    s.publish("pubsub", "decl", &json!({"v": 2}), &[("cloudevent.type", "special")]).await;
    yes.wait_posts("/decl", 1, WAIT).await;
    yes.wait_posts("/special", 1, WAIT).await;
    assert!(no.posts("/").is_empty());
    let meta = Sidecar::new(d.sidecar_url("yes")).get("/v1.0/metadata").await.json();
    assert_eq!(meta["subscriptions"][0]["type"], "DECLARATIVE");
    assert_eq!(meta["subscriptions"][0]["rules"][1]["path"], "/decl");
    d.shutdown().await;
}

#[tokio::test]
async fn two_app_ids_in_one_consumer_group_are_refused() {
    let shared_group = common::PUBSUB.replace("{appID}", "everyone");
    let one = FakeApp::start(Some(json!([subscription("t", "/in", None)]))).await;
    let two = FakeApp::start(Some(json!([subscription("t", "/in", None)]))).await;
    let err = Devhost::builder()
        .resources_yaml(shared_group)
        .app(AppSpec::new("one", one.port))
        .app(AppSpec::new("two", two.port))
        .start()
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("competing consumers"), "{err:#}");
}
