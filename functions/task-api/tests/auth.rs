//! Bearer authentication at the door: every route but /openapi.json, every kind of bad token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::http::Method;
use common::{Harness, SECRET, now, task};
use dapr_fn::clock::Clock;
use dapr_fn::runtime::RuntimeConfig;
use serde_json::json;
use task_api::Config;
use task_api::auth::{Claims, mint, sign};

fn expired() -> String {
    let mut claims = Claims::new("alice", Duration::ZERO);
    claims.exp -= 3600;
    sign(SECRET.as_bytes(), &claims).unwrap()
}

#[tokio::test]
async fn bad_tokens_are_401_with_a_bearer_challenge_on_every_route() {
    let h = Harness::start().await;
    let t = task(1, "alice", "Pay rent");
    h.put_task(&t);
    let id = t.id;
    let wrong_signature = mint(b"some-other-secret-some-other-secret!", "alice", Duration::from_secs(3600)).unwrap();
    let routes = [
        (Method::POST, "/v1/tasks".to_owned()),
        (Method::GET, "/v1/tasks".to_owned()),
        (Method::GET, format!("/v1/tasks/{id}")),
        (Method::PATCH, format!("/v1/tasks/{id}")),
        (Method::DELETE, format!("/v1/tasks/{id}")),
        (Method::POST, format!("/v1/tasks/{id}/complete")),
        (Method::POST, format!("/v1/tasks/{id}/reopen")),
        (Method::GET, format!("/v1/tasks/{id}/audit")),
        (Method::GET, format!("/v1/tasks/{id}/reminder")),
    ];
    let credentials: [(Option<String>, &str); 6] = [
        (None, "missing bearer token"),
        (Some("Basic YWxpY2U6cGFzcw==".into()), "the Authorization header must use the Bearer scheme"),
        (Some("Bearer not-a-jwt".into()), "malformed token"),
        (Some(format!("Bearer {wrong_signature}")), "unknown signing key (kid)"),
        (Some(format!("Bearer {}", expired())), "token expired"),
        (Some("Bearer ".into()), "missing bearer token"),
    ];
    for (method, path) in &routes {
        for (authorization, reason) in &credentials {
            let mut call = h.call(method.clone(), path).json(&json!({"title": "x"}));
            if let Some(value) = authorization {
                call = call.authorization(value);
            }
            let answer = call.send().await;
            assert_eq!(answer.status, 401, "{method} {path} {authorization:?}");
            assert_eq!(answer.body, json!({"error": reason, "field": "Authorization"}), "{method} {path}");
            assert!(answer.header("www-authenticate").unwrap().starts_with("Bearer realm=\"task-api\""));
        }
    }
    assert!(h.state_requests().is_empty(), "nothing is read or written for an unauthenticated request");
}

#[tokio::test]
async fn the_token_is_checked_before_the_path_or_body() {
    let h = Harness::start().await;
    let answer = h.patch("/v1/tasks/not-a-uuid").raw_body(b"garbage", Some("text/plain")).send().await;
    assert_eq!(answer.status, 401);
}

#[tokio::test]
async fn issuer_and_audience_are_required_when_configured() {
    let mut config = common::config();
    config.jwt_issuer = Some("https://id.example".into());
    config.jwt_audience = Some("todo".into());
    let h = Harness::custom(config.clone(), RuntimeConfig::default(), |_| Clock::fixed(now())).await;

    let plain = h.get("/v1/tasks").user("alice").send().await;
    assert_eq!(plain.status, 401);
    let error = plain.body["error"].as_str().unwrap();
    assert!(["token lacks the iss claim", "token lacks the aud claim"].contains(&error), "{error}");

    let good = sign(SECRET.as_bytes(), &Claims::new("alice", Duration::from_secs(60)).for_config(&config)).unwrap();
    let ok = h.get("/v1/tasks").authorization(&format!("Bearer {good}")).send().await;
    assert_eq!(ok.status, 200);

    let mut foreign = Claims::new("alice", Duration::from_secs(60)).for_config(&config);
    foreign.aud = Some("billing".into());
    let foreign = sign(SECRET.as_bytes(), &foreign).unwrap();
    let refused = h.get("/v1/tasks").authorization(&format!("Bearer {foreign}")).send().await;
    assert_eq!((refused.status, refused.body["error"].as_str()), (401, Some("wrong token audience")));
}

#[tokio::test]
async fn hs256_rotation_accepts_the_previous_key_and_refuses_unknown_ones() {
    const PREVIOUS: &str = "the-previous-secret-0123456789abcdef";
    let mut config = common::config();
    config.jwt_secret_previous = Some(PREVIOUS.into());
    let h = Harness::custom(config, RuntimeConfig::default(), |_| Clock::fixed(now())).await;
    let bearer = |token: String| format!("Bearer {token}");
    for secret in [SECRET, PREVIOUS] {
        let token = mint(secret.as_bytes(), "alice", Duration::from_secs(600)).unwrap();
        let answer = h.get("/v1/tasks").authorization(&bearer(token)).send().await;
        assert_eq!(answer.status, 200, "{secret}: {:?}", answer.body);
    }
    let unknown = mint(b"a-key-nobody-configured-0123456789ab", "alice", Duration::from_secs(600)).unwrap();
    let answer = h.get("/v1/tasks").authorization(&bearer(unknown)).send().await;
    assert_eq!((answer.status, answer.body["error"].as_str()), (401, Some("unknown signing key (kid)")));
}

#[tokio::test]
async fn a_dev_token_round_trips_through_the_api() {
    let h = Harness::start().await;
    let token = task_api::dev_token::token(&Config::with_secret(SECRET), "dana", Duration::from_secs(3600)).unwrap();
    let created =
        h.post("/v1/tasks").authorization(&format!("Bearer {token}")).json(&json!({"title": "x"})).send().await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["owner"], "dana", "the token's sub is the owner");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_api_shape() {
    let h = Harness::start().await;
    let missing = h.get("/v2/tasks").user("alice").send().await;
    assert_eq!((missing.status, &missing.body), (404, &json!({"error": "no such route"})));
    let wrong = h.call(Method::PUT, "/v1/tasks").user("alice").send().await;
    assert_eq!((wrong.status, &wrong.body), (405, &json!({"error": "method not allowed"})));
    assert_eq!(wrong.header("allow"), Some("POST,GET,HEAD"));
    let health = h.get("/healthz").send().await;
    assert_eq!(health.status, 200, "the runtime's routes are untouched");
}

#[tokio::test]
async fn the_app_token_guards_the_dapr_channel_not_the_public_api() {
    let runtime = RuntimeConfig { app_api_token: Some("from-the-sidecar".into()), ..RuntimeConfig::default() };
    let h = Harness::custom(common::config(), runtime, |_| Clock::fixed(now())).await;
    let subscribe = h.get("/dapr/subscribe").send().await;
    assert_eq!(subscribe.status, 401, "Dapr-facing routes need dapr-api-token");
    let subscribe = h.get("/dapr/subscribe").header("dapr-api-token", "from-the-sidecar").send().await;
    assert_eq!(subscribe.status, 200);
    let pubsubs: Vec<&str> =
        subscribe.body.as_array().unwrap().iter().filter_map(|s| s["pubsubname"].as_str()).collect();
    assert_eq!(pubsubs, ["pubsub-live", "pubsub-live"], "task-api subscribes only for its live streams");
    // The live routes are Dapr-facing too.
    let (status, _) = h.app.deliver(task_api::live::feed::TASK_EVENTS_ROUTE, &json!({}), None).await;
    assert_eq!(status, 401, "a live route needs dapr-api-token");
    assert_eq!(h.get("/healthz").send().await.status, 200);
    // People and programs call the API with their JWT; they do not hold the sidecar's token.
    let created = h.post("/v1/tasks").user("alice").json(&json!({"title": "x"})).send().await;
    assert_eq!(created.status, 201);
}
