//! Stage 3a: `POST /v1.0/publish/{pubsub}/{topic}`: the CloudEvent it produces (seen by a
//! subscriber), content types, `rawPayload`, `cloudevent.*` overrides, `partitionKey`, trace
//! context, and the 400/403/404 answers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::time::Duration;

use common::{FakeApp, Sidecar, subscription};
use devhost::{AppSpec, Devhost};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(5);

async fn start(app: &FakeApp, extra: &[&str]) -> (Devhost, Sidecar) {
    let mut b = Devhost::builder().resources_yaml(common::PUBSUB).app(AppSpec::new("pub", app.port));
    for r in extra {
        b = b.resources_yaml(*r);
    }
    let d = b.start().await.unwrap();
    let s = Sidecar::new(d.sidecar_url("pub"));
    (d, s)
}

#[tokio::test]
async fn json_bodies_become_cloudevent_data() {
    let app = FakeApp::start(Some(json!([subscription("t", "/in", None)]))).await;
    let (d, s) = start(&app, &[]).await;
    assert_eq!(s.publish("pubsub", "t", &json!({"a": 1}), &[]).await, 204);
    let got = app.wait_posts("/in", 1, WAIT).await;
    let ce = got[0].json();
    assert_eq!(ce["data"], json!({"a": 1}));
    assert_eq!(ce["datacontenttype"], "application/json");
    assert_eq!(ce["source"], "pub");
    assert_eq!(ce["type"], "com.dapr.event.sent");
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["topic"], "t");
    assert_eq!(ce["pubsubname"], "pubsub");
    assert!(uuid::Uuid::parse_str(ce["id"].as_str().unwrap()).is_ok());
    assert!(chrono::DateTime::parse_from_rfc3339(ce["time"].as_str().unwrap()).is_ok());
    // No trace context from the caller and no tracing of its own: empty, as on daprd; the
    // delivery carries the all-zero traceparent.
    assert_eq!((ce["traceparent"].as_str(), ce["traceid"].as_str()), (Some(""), Some("")));
    assert_eq!(got[0].header("content-type"), Some("application/cloudevents+json"));
    assert_eq!(got[0].header("traceparent"), Some("00-00000000000000000000000000000000-0000000000000000-00"));
    d.shutdown().await;
}

#[tokio::test]
async fn content_types_raw_payload_and_overrides() {
    let app = FakeApp::start(Some(json!([subscription("t", "/in", None)]))).await;
    let (d, s) = start(&app, &[]).await;
    // No Content-Type: text/plain, data is the body as a string.
    let r = s.send(http::Method::POST, "/v1.0/publish/pubsub/t", &[], Some(br#"{"a":1}"#.to_vec())).await;
    assert_eq!(r.status, 204);
    // A CloudEvent of our own: kept, routing fields added.
    let own = json!({"specversion": "1.0", "id": "mine", "source": "elsewhere", "type": "my.type", "custom": "x", "data": {"b": 2}});
    let r = s
        .send(
            http::Method::POST,
            "/v1.0/publish/pubsub/t",
            &[("content-type", "application/cloudevents+json")],
            Some(serde_json::to_vec(&own).unwrap()),
        )
        .await;
    assert_eq!(r.status, 204);
    // Raw payload: the bytes as they are.
    let raw = br#"{"raw":true}"#.to_vec();
    let r = s
        .send(
            http::Method::POST,
            "/v1.0/publish/pubsub/t?metadata.rawPayload=true",
            &[("content-type", "application/json")],
            Some(raw.clone()),
        )
        .await;
    assert_eq!(r.status, 204);
    // cloudevent.* overrides.
    let meta = [
        ("cloudevent.id", "id-1"),
        ("cloudevent.type", "todo.x"),
        ("cloudevent.subject", "subj"),
        ("ttlInSeconds", "60"),
    ];
    assert_eq!(s.publish("pubsub", "t", &json!({"c": 3}), &meta).await, 204);

    let got = app.wait_posts("/in", 4, WAIT).await;
    // One partition key-less message each: order across partitions is not guaranteed.
    let find = |pred: &dyn Fn(&Value) -> bool| got.iter().map(|r| r.json()).find(|v| pred(v)).unwrap();
    let text = find(&|v| v["datacontenttype"] == "text/plain");
    assert_eq!(text["data"], json!(r#"{"a":1}"#));
    let mine = find(&|v| v["id"] == "mine");
    assert_eq!(
        (mine["source"].as_str(), mine["type"].as_str(), mine["custom"].as_str()),
        (Some("elsewhere"), Some("my.type"), Some("x"))
    );
    assert_eq!((mine["topic"].as_str(), mine["pubsubname"].as_str()), (Some("t"), Some("pubsub")));
    assert!(got.iter().any(|r| r.body == raw), "the raw payload arrives byte for byte");
    let over = find(&|v| v["id"] == "id-1");
    assert_eq!((over["type"].as_str(), over["subject"].as_str()), (Some("todo.x"), Some("subj")));
    let expiration = chrono::DateTime::parse_from_rfc3339(over["expiration"].as_str().unwrap()).unwrap();
    assert!(expiration > chrono::Utc::now() + chrono::Duration::seconds(30));
    d.shutdown().await;
}

#[tokio::test]
async fn traceparent_is_passed_through() {
    let app = FakeApp::start(Some(json!([subscription("t", "/in", None)]))).await;
    let (d, s) = start(&app, &[]).await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = s
        .send(
            http::Method::POST,
            "/v1.0/publish/pubsub/t",
            &[("content-type", "application/json"), ("traceparent", parent)],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(r.status, 204);
    let ce = app.wait_posts("/in", 1, WAIT).await[0].json();
    // daprd without a tracing configuration starts no span: the caller's context, unchanged.
    assert_eq!(ce["traceparent"], parent);
    assert_eq!(ce["traceid"], parent);
    d.shutdown().await;
}

#[tokio::test]
async fn partition_key_keeps_order_and_sets_kafka_headers() {
    let app = FakeApp::start(Some(json!([subscription("t", "/in", None)]))).await;
    let (d, s) = start(&app, &[]).await;
    for i in 0..30 {
        let key = format!("k{}", i % 3);
        assert_eq!(s.publish("pubsub", "t", &json!({"i": i, "key": key}), &[("partitionKey", &key)]).await, 204);
    }
    let got = app.wait_posts("/in", 30, WAIT).await;
    for k in 0..3 {
        let key = format!("k{k}");
        let mine: Vec<&common::Recorded> = got.iter().filter(|r| r.header("__key") == Some(key.as_str())).collect();
        let order: Vec<i64> = mine.iter().map(|r| r.json()["data"]["i"].as_i64().unwrap()).collect();
        let expected: Vec<i64> = (0..30).filter(|i| i % 3 == k).collect();
        assert_eq!(order, expected, "key {key} in publish order");
        let partitions: std::collections::HashSet<_> =
            mine.iter().map(|r| r.header("__partition").unwrap().to_owned()).collect();
        assert_eq!(partitions.len(), 1, "one key, one partition");
        let offsets: Vec<i64> = mine.iter().map(|r| r.header("__offset").unwrap().parse().unwrap()).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "offsets increase: {offsets:?}");
        assert_eq!(mine[0].header("__topic"), Some("t"));
        // Publish metadata travels as Kafka record headers, delivered as HTTP headers.
        assert_eq!(mine[0].header("partitionKey"), Some(key.as_str()));
    }
    // An explicit partition (Dapr 1.18 `partitionNumber`); one that does not exist fails.
    assert_eq!(s.publish("pubsub", "t", &json!({"explicit": true}), &[("partitionNumber", "2")]).await, 204);
    let got = app.wait_posts("/in", 31, WAIT).await;
    let explicit = got.iter().find(|r| r.json()["data"]["explicit"] == true).unwrap();
    assert_eq!(explicit.header("__partition"), Some("2"));
    assert_eq!(s.publish("pubsub", "t", &json!({}), &[("partitionNumber", "4")]).await, 500);
    assert_eq!(s.publish("pubsub", "t", &json!({}), &[("partitionNumber", "two")]).await, 400);
    d.shutdown().await;
}

#[tokio::test]
async fn errors_not_found_forbidden_bad_metadata() {
    let app = FakeApp::start(None).await;
    let scoped = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: scoped}\nspec:\n  type: pubsub.kafka\n  version: v1\n  metadata:\n    - {name: publishingScopes, value: \"pub=allowed\"}\n";
    let elsewhere = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: theirs}\nspec: {type: pubsub.kafka, version: v1}\nscopes: [other-app]\n";
    let (d, s) = start(&app, &[scoped, elsewhere]).await;
    let r = s.post_json("/v1.0/publish/nope/t", &json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "ERR_PUBSUB_NOT_FOUND"));
    let r = s.post_json("/v1.0/publish/theirs/t", &json!({})).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "ERR_PUBSUB_NOT_FOUND"),
        "a component scoped to another app is not loaded"
    );
    let r = s.post_json("/v1.0/publish/pubsub", &json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "ERR_TOPIC_NAME_EMPTY"));
    let r = s.post_json("/v1.0/publish/scoped/denied", &json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (403, "ERR_PUBSUB_FORBIDDEN"));
    assert_eq!(s.publish("scoped", "allowed", &json!({}), &[]).await, 204);
    let r = s.post_json("/v1.0/publish/pubsub/t?metadata.rawPayload=maybe", &json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "ERR_PUBSUB_REQUEST_METADATA"));
    let r = s
        .send(
            http::Method::POST,
            "/v1.0/publish/pubsub/t",
            &[("content-type", "application/cloudevents+json")],
            Some(b"[1]".to_vec()),
        )
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (500, "ERR_PUBSUB_CLOUD_EVENTS_SER"));
    d.shutdown().await;
}

#[tokio::test]
async fn raw_payload_subscribers_get_a_synthesized_envelope() {
    let raw_sub = json!([{"pubsubname": "pubsub", "topic": "t", "routes": {"default": "/raw"}, "metadata": {"rawPayload": "true"}}]);
    let app = FakeApp::start(Some(raw_sub)).await;
    let (d, s) = start(&app, &[]).await;
    assert_eq!(s.publish("pubsub", "t", &json!({"a": 1}), &[]).await, 204);
    let got = app.wait_posts("/raw", 1, WAIT).await;
    let ce = got[0].json();
    assert_eq!(ce["datacontenttype"], "application/octet-stream");
    assert_eq!(ce["topic"], "t");
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.decode(ce["data_base64"].as_str().unwrap()).unwrap();
    let published: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(published["data"], json!({"a": 1}), "the stored message (a CloudEvent) as raw bytes");
    d.shutdown().await;
}
