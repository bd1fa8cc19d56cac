//! Test support: fake apps that record what devhost sends them, a small sidecar client, and
//! polling helpers. Each test binary uses part of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// One request a fake app received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

type Responder = Arc<dyn Fn(&Recorded) -> (u16, String) + Send + Sync>;

struct Inner {
    received: Vec<Recorded>,
    subscribe: Option<Value>,
    responder: Responder,
    /// `/healthz`: `Some(true)` 200, `Some(false)` 503, `None` no such route (404).
    healthz: Option<bool>,
    health_probes: usize,
}

/// A fake app on 127.0.0.1: answers `/healthz`, `/dapr/subscribe` (the given JSON, or 404),
/// and everything else with its responder (default 200 `{"status":"SUCCESS"}`).
pub struct FakeApp {
    pub port: u16,
    inner: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers.clone(),
        body: body.to_vec(),
        at: Instant::now(),
    };
    if recorded.path == "/healthz" {
        let mut inner = inner.lock().unwrap();
        inner.health_probes += 1;
        return match inner.healthz {
            Some(true) => StatusCode::OK,
            Some(false) => StatusCode::SERVICE_UNAVAILABLE,
            None => StatusCode::NOT_FOUND,
        }
        .into_response();
    }
    let (responder, subscribe) = {
        let mut inner = inner.lock().unwrap();
        inner.received.push(recorded.clone());
        (inner.responder.clone(), inner.subscribe.clone())
    };
    if recorded.path == "/dapr/subscribe" {
        return match subscribe {
            Some(s) => axum::Json(s).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    let (status, body) = responder(&recorded);
    (StatusCode::from_u16(status).unwrap(), [(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

impl FakeApp {
    pub async fn start(subscribe: Option<Value>) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            received: Vec::new(),
            subscribe,
            responder: Arc::new(|_| (200, r#"{"status":"SUCCESS"}"#.to_owned())),
            healthz: Some(true),
            health_probes: 0,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let router = Router::new().fallback(handle).with_state(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { port, inner, server }
    }

    /// Replaces how the app answers deliveries and job triggers.
    pub fn respond(&self, f: impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static) {
        self.inner.lock().unwrap().responder = Arc::new(f);
    }

    /// How `/healthz` answers from now on (`None`: 404, as an app without the route).
    pub fn set_healthz(&self, healthz: Option<bool>) {
        self.inner.lock().unwrap().healthz = healthz;
    }

    /// How many times `/healthz` was called.
    pub fn health_probes(&self) -> usize {
        self.inner.lock().unwrap().health_probes
    }

    /// Everything received but health checks.
    pub fn all(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().received.clone()
    }

    /// POSTs whose path starts with `prefix` (deliveries or job triggers).
    pub fn posts(&self, prefix: &str) -> Vec<Recorded> {
        self.all().into_iter().filter(|r| r.method == Method::POST && r.path.starts_with(prefix)).collect()
    }

    /// Waits until at least `n` POSTs to `prefix` arrived.
    pub async fn wait_posts(&self, prefix: &str, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.posts(prefix);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} POSTs to {prefix}, got {}: {:#?}",
                got.len(),
                summary(&got)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn summary(got: &[Recorded]) -> Vec<String> {
    got.iter().map(|r| format!("{} {}", r.path, String::from_utf8_lossy(&r.body))).collect()
}

/// Polls `f` until it returns true.
pub async fn eventually(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `probe` until it returns `Ok`; past `timeout`, fails saying what never happened
/// (`what`) and what `probe` saw last (its `Err`).
pub async fn wait_for<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(seen) => assert!(Instant::now() < deadline, "timed out waiting for {what}; last seen: {seen}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A database file in a temporary directory (removed on drop), for tests that read it with
/// `devhost::peek` while devhost runs.
pub struct TempDb {
    _dir: tempfile::TempDir,
    pub path: String,
}

impl TempDb {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devhost.sqlite").display().to_string();
        Self { _dir: dir, path }
    }
}

impl Default for TempDb {
    fn default() -> Self {
        Self::new()
    }
}

/// `(group, topic, lag)` of every consumer group on the cluster of pub/sub component `pubsub`.
pub fn lags(db: &str, pubsub: &str) -> Vec<(String, String, i64)> {
    devhost::peek::lag(db, pubsub).unwrap().into_iter().map(|l| (l.group, l.topic, l.lag)).collect()
}

/// Waits until each `(group, topic)` of `groups` has committed every message of its topic on the
/// cluster of `pubsub` (lag 0): all published so far was delivered and answered, and nothing of
/// it can come again (a delivery loop only goes back to an uncommitted offset, after a restart).
pub async fn wait_caught_up(db: &str, pubsub: &str, groups: &[(&str, &str)], timeout: Duration) {
    let what = format!("consumer groups (group, topic) {groups:?} on {pubsub} to commit the end of their topics");
    wait_for(timeout, &what, || {
        let lags = lags(db, pubsub);
        let caught_up =
            groups.iter().all(|(g, t)| lags.iter().any(|l| (l.0.as_str(), l.1.as_str(), l.2) == (*g, *t, 0)));
        if caught_up { Ok(()) } else { Err(format!("lags {lags:?}")) }
    })
    .await;
}

/// An answer from the sidecar.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn error_code(&self) -> String {
        self.json()["errorCode"].as_str().unwrap_or_default().to_owned()
    }
}

/// A client of one app's sidecar.
#[derive(Debug, Clone)]
pub struct Sidecar {
    pub base: String,
    http: reqwest::Client,
    pub token: Option<String>,
}

impl Sidecar {
    pub fn new(base: String) -> Self {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Self { base, http, token: None }
    }

    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Resp {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            request = request.header("dapr-api-token", t);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(b) = body {
            request = request.body(b);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap().to_vec();
        Resp { status, headers, body }
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::POST, path, &[("content-type", "application/json")], Some(serde_json::to_vec(body).unwrap()))
            .await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, &[], None).await
    }

    pub async fn delete(&self, path: &str, if_match: Option<&str>) -> Resp {
        let headers: Vec<(&str, &str)> = if_match.map(|e| ("if-match", e)).into_iter().collect();
        self.send(Method::DELETE, path, &headers, None).await
    }

    /// Publishes a JSON body with metadata query parameters; returns the status.
    pub async fn publish(&self, pubsub: &str, topic: &str, body: &Value, metadata: &[(&str, &str)]) -> u16 {
        let query: Vec<String> = metadata.iter().map(|(k, v)| format!("metadata.{k}={}", urlencode(v))).collect();
        let q = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
        self.post_json(&format!("/v1.0/publish/{pubsub}/{topic}{q}"), body).await.status
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Resiliency: constant 20 ms, 3 retries, for deliveries from `pubsub` (quick dead letters).
pub const QUICK_RETRIES: &str = r#"
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: quick}
spec:
  policies:
    retries:
      quick: {policy: constant, duration: 20ms, maxRetries: 3}
  targets:
    components:
      pubsub:
        inbound: {retry: quick}
"#;

/// The pub/sub component most tests use: `pubsub`, oldest offsets, fast component retry.
pub const PUBSUB: &str = r#"
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: pubsub}
spec:
  type: pubsub.kafka
  version: v1
  metadata:
    - {name: brokers, value: "localhost:9092"}
    - {name: consumerGroup, value: "{appID}"}
    - {name: initialOffset, value: oldest}
    - {name: backOffDuration, value: 50ms}
"#;

/// A state store `name` with `keyPrefix: name`.
pub fn state_store(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: {name}}}\nspec:\n  type: state.postgresql\n  version: v1\n  metadata:\n    - {{name: connectionString, value: unused}}\n    - {{name: keyPrefix, value: name}}\n{extra}"
    )
}

/// A v2 subscription entry for `/dapr/subscribe`.
pub fn subscription(topic: &str, route: &str, dlq: Option<&str>) -> Value {
    let mut v = serde_json::json!({"pubsubname": "pubsub", "topic": topic, "routes": {"default": route}});
    if let Some(d) = dlq {
        v["deadLetterTopic"] = Value::String(d.to_owned());
    }
    v
}

pub fn parse_body(r: &Recorded) -> BTreeMap<String, Value> {
    serde_json::from_slice(&r.body).unwrap()
}
