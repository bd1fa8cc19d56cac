//! Tokens, health and metadata: `DAPR_API_TOKEN` enforced on every API but the health checks,
//! `APP_API_TOKEN` sent on every call to the app, `/v1.0/metadata`'s shape, and a clear 404 for
//! what devhost does not emulate.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::time::Duration;

use common::{FakeApp, Sidecar, subscription};
use devhost::{AppSpec, Devhost};
use serde_json::json;

#[tokio::test]
async fn the_api_token_is_required_except_on_health_checks() {
    let app = FakeApp::start(Some(json!([subscription("t", "/in", None)]))).await;
    let d = Devhost::builder()
        .resources_yaml(common::PUBSUB)
        .resources_yaml(common::state_store("s", ""))
        .app(AppSpec::new("a", app.port))
        .api_token(Some("secret"))
        .app_token(Some("app-secret"))
        .start()
        .await
        .unwrap();
    let anonymous = Sidecar::new(d.sidecar_url("a"));
    let wrong = Sidecar::new(d.sidecar_url("a")).with_token("nope");
    let good = Sidecar::new(d.sidecar_url("a")).with_token("secret");
    for path in ["/v1.0/healthz", "/v1.0/healthz/outbound"] {
        assert_eq!(anonymous.get(path).await.status, 204, "{path}");
    }
    for client in [&anonymous, &wrong] {
        for r in [
            client.get("/v1.0/metadata").await,
            client.get("/v1.0/state/s/k").await,
            client.post_json("/v1.0/publish/pubsub/t", &json!({})).await,
            client.get("/v1.0-alpha1/jobs/j").await,
        ] {
            // Go's http.Error, as daprd answers: plain text, no Dapr error body.
            assert_eq!(r.status, 401);
            assert_eq!(r.body, b"invalid api token\n");
        }
    }
    assert_eq!(good.get("/v1.0/state/s/k").await.status, 204);
    assert_eq!(good.publish("pubsub", "t", &json!({"x": 1}), &[]).await, 204);
    assert_eq!(good.post_json("/v1.0-alpha1/jobs/j", &json!({"dueTime": "0s", "data": {}})).await.status, 204);

    // The app token goes with subscription discovery, deliveries and job triggers.
    let delivery = app.wait_posts("/in", 1, Duration::from_secs(5)).await;
    assert_eq!(delivery[0].header("dapr-api-token"), Some("app-secret"));
    let trigger = app.wait_posts("/job/j", 1, Duration::from_secs(5)).await;
    assert_eq!(trigger[0].header("dapr-api-token"), Some("app-secret"));
    let discovery = app.all().into_iter().find(|r| r.path == "/dapr/subscribe").unwrap();
    assert_eq!(discovery.header("dapr-api-token"), Some("app-secret"));
    d.shutdown().await;
}

#[tokio::test]
async fn without_an_app_token_none_is_sent() {
    let app = FakeApp::start(Some(json!([subscription("t", "/in", None)]))).await;
    let d = Devhost::builder().resources_yaml(common::PUBSUB).app(AppSpec::new("a", app.port)).start().await.unwrap();
    Sidecar::new(d.sidecar_url("a")).publish("pubsub", "t", &json!({}), &[]).await;
    let got = app.wait_posts("/in", 1, Duration::from_secs(5)).await;
    assert!(got[0].header("dapr-api-token").is_none());
    d.shutdown().await;
}

#[tokio::test]
async fn metadata_describes_the_app_and_unknown_apis_are_named() {
    let app = FakeApp::start(Some(json!([subscription("t", "/in", Some("t-dlq"))]))).await;
    let hidden = format!("{}scopes: [someone-else]\n", common::state_store("hidden", ""));
    let d = Devhost::builder()
        .resources_yaml(common::PUBSUB)
        .resources_yaml(common::state_store("s", ""))
        .resources_yaml(hidden)
        .app(AppSpec::new("a", app.port))
        .start()
        .await
        .unwrap();
    let s = Sidecar::new(d.sidecar_url("a"));
    let meta = s.get("/v1.0/metadata").await;
    assert_eq!(meta.status, 200);
    let meta = meta.json();
    assert_eq!(meta["id"], "a");
    assert!(meta["runtimeVersion"].as_str().unwrap().starts_with("devhost-"));
    let components = meta["components"].as_array().unwrap();
    assert!(components.contains(&json!({"name": "s", "type": "state.postgresql", "version": "v1",
        "capabilities": ["ETAG", "TRANSACTIONAL", "TTL", "KEYS_LIKE", "QUERY_API", "ACTOR"]})));
    assert!(components.iter().any(|c| c["name"] == "pubsub" && c["type"] == "pubsub.kafka"));
    assert!(!components.iter().any(|c| c["name"] == "hidden"), "scoped to another app");
    let sub = &meta["subscriptions"][0];
    assert_eq!((sub["topic"].as_str(), sub["type"].as_str()), (Some("t"), Some("PROGRAMMATIC")));
    assert_eq!(sub["deadLetterTopic"], "t-dlq");
    assert_eq!(sub["rules"][0], json!({"path": "/in"}));

    let r = s.post_json("/v1.0/invoke/other/method/x", &json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (500, "ERR_DIRECT_INVOKE"));
    assert!(r.json()["message"].as_str().unwrap().starts_with("failed to invoke, id: other, err: "));
    let r = s.post_json("/v1.0-alpha1/crypto/x/encrypt", &json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "ERR_DEVHOST_NOT_EMULATED"));
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("cryptography API") && message.contains("/v1.0-alpha1/crypto/x/encrypt"), "{message}");
    d.shutdown().await;
}
