//! Tokens from an OIDC provider's key set (`JWT_JWKS_URL`), against a provider served by the
//! test on 127.0.0.1:0 whose keys (generated now, never committed), caching headers and
//! availability the test changes while task-api runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use common::{Answer, Harness, SECRET, now};
use dapr_fn::clock::Clock;
use dapr_fn::runtime::RuntimeConfig;
use serde_json::{Value, json};
use task_api::Config;
use task_api::config::JwksTiming;
use task_api::test_keys::{self, EcKey, RsaKey};

const ISSUER: &str = "https://id.example";
const AUDIENCE: &str = "todo-api";

/// What the fake provider serves, and how often it was asked.
#[derive(Default)]
struct Provider {
    keys: Vec<Value>,
    cache_control: Option<&'static str>,
    /// Answers 503 instead of the set.
    failing: bool,
    fetches: usize,
}

type Shared = Arc<Mutex<Provider>>;

async fn jwks(State(provider): State<Shared>) -> axum::response::Response {
    let mut provider = provider.lock().unwrap();
    provider.fetches += 1;
    if provider.failing {
        return (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance").into_response();
    }
    let body = json!({"keys": provider.keys}).to_string();
    match provider.cache_control {
        Some(value) => {
            ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, value)], body).into_response()
        }
        None => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
    }
}

/// Serves `provider` at `http://127.0.0.1:<port>/jwks`.
async fn serve(provider: Shared) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/jwks", axum::routing::get(jwks)).with_state(provider);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A loopback URL nothing listens on.
async fn nowhere() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// Immediate refetches, so that each step of a test sees the provider's current set.
fn eager() -> JwksTiming {
    JwksTiming { min_refetch: Duration::ZERO, min_max_age: Duration::ZERO, ..JwksTiming::default() }
}

async fn task_api(url: &str, timing: JwksTiming, secret: Option<&str>) -> Harness {
    let mut config = Config::with_secret(secret.unwrap_or_default());
    config.jwt_secret = secret.map(str::to_owned);
    config.jwt_jwks_url = Some(url.to_owned());
    config.jwt_issuer = Some(ISSUER.into());
    config.jwt_audience = Some(AUDIENCE.into());
    config.jwks_timing = timing;
    config.outbox.outbox_relay_enabled = false;
    let config = config.checked().unwrap();
    Harness::custom(config, RuntimeConfig::default(), |_| Clock::fixed(now())).await
}

fn claims(user: &str) -> Value {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    json!({"sub": user, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600})
}

async fn list(h: &Harness, token: &str) -> Answer {
    h.get("/v1/tasks").authorization(&format!("Bearer {token}")).send().await
}

fn error(answer: &Answer) -> &str {
    answer.body["error"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn rs256_and_es256_tokens_from_the_jwks_are_accepted() {
    let (rsa, ec) = (RsaKey::shared(), EcKey::generate());
    let provider: Shared = Arc::default();
    provider.lock().unwrap().keys = vec![rsa.jwk("rsa-1"), ec.jwk("ec-1")];
    let h = task_api(&serve(provider.clone()).await, JwksTiming::default(), None).await;

    let answer = list(&h, &rsa.token("rsa-1", &claims("alice"))).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let answer = list(&h, &ec.token("ec-1", &claims("bob"))).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let created = h
        .post("/v1/tasks")
        .authorization(&format!("Bearer {}", ec.token("ec-1", &claims("bob"))))
        .json(&json!({"title": "x"}))
        .send()
        .await;
    assert_eq!((created.status, created.body["owner"].as_str()), (201, Some("bob")), "sub is the owner");
    assert_eq!(provider.lock().unwrap().fetches, 1, "the set is cached");

    // The signature is checked: another key's signature under a known kid is refused.
    let other = EcKey::generate();
    let forged = list(&h, &other.token("ec-1", &claims("alice"))).await;
    assert_eq!((forged.status, error(&forged)), (401, "invalid token signature"));
    // So are iss and aud: the provider signs for other applications too.
    let mut foreign = claims("alice");
    foreign["aud"] = json!("billing");
    let foreign = list(&h, &rsa.token("rsa-1", &foreign)).await;
    assert_eq!((foreign.status, error(&foreign)), (401, "wrong token audience"));
    // And the lifetime cap.
    let mut long = claims("alice");
    long["exp"] = json!(long["iat"].as_u64().unwrap() + 2 * 86400);
    let long = list(&h, &rsa.token("rsa-1", &long)).await;
    assert_eq!(long.status, 401);
    assert!(error(&long).starts_with("token lifetime exceeds the 86400 s cap"), "{}", error(&long));
}

#[tokio::test]
async fn a_key_rotated_in_after_start_is_accepted_without_restart() {
    let rsa = RsaKey::shared();
    let provider: Shared = Arc::default();
    provider.lock().unwrap().keys = vec![rsa.jwk("rsa-1")];
    // A long max-age: only the unknown kid can explain a refetch.
    provider.lock().unwrap().cache_control = Some("max-age=3600");
    let timing = JwksTiming { min_refetch: Duration::ZERO, ..JwksTiming::default() };
    let h = task_api(&serve(provider.clone()).await, timing, None).await;
    assert_eq!(list(&h, &rsa.token("rsa-1", &claims("alice"))).await.status, 200);

    let rotated = EcKey::generate();
    let token = rotated.token("ec-2026-12", &claims("alice"));
    assert_eq!(list(&h, &token).await.status, 401, "not published yet");
    provider.lock().unwrap().keys.push(rotated.jwk("ec-2026-12"));
    let answer = list(&h, &token).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(provider.lock().unwrap().fetches, 3);
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_interval() {
    let rsa = RsaKey::shared();
    let provider: Shared = Arc::default();
    provider.lock().unwrap().keys = vec![rsa.jwk("rsa-1")];
    let timing = JwksTiming { min_refetch: Duration::from_secs(3600), ..JwksTiming::default() };
    let h = task_api(&serve(provider.clone()).await, timing, None).await;
    for i in 0..5 {
        let answer = list(&h, &rsa.token(&format!("made-up-{i}"), &claims("alice"))).await;
        assert_eq!((answer.status, error(&answer)), (401, "unknown signing key (kid)"));
    }
    assert_eq!(list(&h, &rsa.token("rsa-1", &claims("alice"))).await.status, 200);
    assert_eq!(provider.lock().unwrap().fetches, 1, "made-up kids do not hammer the provider");
}

#[tokio::test]
async fn a_key_removed_from_the_set_is_refused_after_refresh() {
    let (old, new) = (RsaKey::shared(), EcKey::generate());
    let provider: Shared = Arc::default();
    provider.lock().unwrap().keys = vec![old.jwk("old"), new.jwk("new")];
    // `no-store`: every request finds the set stale (eager() lets the minimum be zero).
    provider.lock().unwrap().cache_control = Some("no-store");
    let h = task_api(&serve(provider.clone()).await, eager(), None).await;
    let old_token = old.token("old", &claims("alice"));
    assert_eq!(list(&h, &old_token).await.status, 200);

    provider.lock().unwrap().keys = vec![new.jwk("new")];
    let refused = list(&h, &old_token).await;
    assert_eq!((refused.status, error(&refused)), (401, "unknown signing key (kid)"));
    assert_eq!(list(&h, &new.token("new", &claims("alice"))).await.status, 200);
}

#[tokio::test]
async fn provider_down_is_503_with_a_clear_message_not_401() {
    let rsa = RsaKey::shared();
    let h = task_api(&nowhere().await, eager(), None).await;
    let answer = list(&h, &rsa.token("rsa-1", &claims("alice"))).await;
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert_eq!(
        answer.body,
        json!({
            "error": "cannot check the token now: the identity provider's signing keys are unavailable; try again later",
            "field": "Authorization",
        })
    );
    assert_eq!(answer.header("retry-after"), Some("2"));
    assert!(answer.header("www-authenticate").is_none(), "not a credentials problem");
}

#[tokio::test]
async fn held_keys_keep_working_while_the_provider_is_down_and_unknown_kids_are_503() {
    let rsa = RsaKey::shared();
    let provider: Shared = Arc::default();
    provider.lock().unwrap().keys = vec![rsa.jwk("rsa-1")];
    provider.lock().unwrap().cache_control = Some("no-store");
    let h = task_api(&serve(provider.clone()).await, eager(), None).await;
    let token = rsa.token("rsa-1", &claims("alice"));
    assert_eq!(list(&h, &token).await.status, 200);

    provider.lock().unwrap().failing = true;
    let answer = list(&h, &token).await;
    assert_eq!(answer.status, 200, "the set fetched before serves within the grace period");
    let unknown = list(&h, &EcKey::generate().token("ec-new", &claims("alice"))).await;
    assert_eq!(unknown.status, 503, "the key may exist: the provider cannot say");
    assert!(provider.lock().unwrap().fetches >= 3, "it kept trying");

    provider.lock().unwrap().failing = false;
    assert_eq!(list(&h, &token).await.status, 200);
}

/// HS256 next to a JWKS: the development secret keeps working, and no token can make the
/// provider's public keys an HMAC secret.
#[tokio::test]
async fn algorithm_confusion_is_refused() {
    let rsa = RsaKey::shared();
    let provider: Shared = Arc::default();
    provider.lock().unwrap().keys = vec![rsa.jwk("rsa-1")];
    let h = task_api(&serve(provider.clone()).await, JwksTiming::default(), Some(SECRET)).await;

    let hmac_header = |kid: Option<&str>| {
        let mut header = json!({"alg": "HS256", "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        header
    };
    for secret in [&rsa.public_der, &rsa.n] {
        for kid in [Some("rsa-1"), None] {
            let forged = test_keys::jwt(&hmac_header(kid), &claims("alice"), |m| test_keys::hmac(secret, m));
            let answer = list(&h, &forged).await;
            assert_eq!(answer.status, 401, "{kid:?}: {:?}", answer.body);
        }
    }
    // The header claims ES256 for the RSA key: the key decides, RS256 only.
    let lying = test_keys::jwt(&json!({"alg": "ES256", "kid": "rsa-1"}), &claims("alice"), |m| rsa.sign(m));
    let answer = list(&h, &lying).await;
    assert_eq!((answer.status, error(&answer)), (401, "token algorithm does not match its key: RS256 only"));

    // The development secret still works beside the provider's keys.
    let dev = task_api::auth::sign(SECRET.as_bytes(), &claims("alice")).unwrap();
    assert_eq!(list(&h, &dev).await.status, 200);
    assert_eq!(list(&h, &rsa.token("rsa-1", &claims("alice"))).await.status, 200);
}
