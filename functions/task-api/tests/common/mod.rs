//! Shared harness of the integration tests: the real router (through the runtime, as in
//! production) against the recording stub sidecar, tokens minted with the library's own
//! `auth::mint`, and seeding helpers.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, Method};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use dapr_fn::clock::Clock;
use dapr_fn::dapr::Dapr;
use dapr_fn::runtime::RuntimeConfig;
use dapr_fn::testing::{Recorded, StubSidecar, TestApp};
use serde_json::{Value, json};
use task_api::Config;
use todo_core::task::{Priority, Status, Task};
use uuid::Uuid;

pub const SECRET: &str = "integration-test-secret-0123456789abcdef";

/// The fixed "now" of the tests.
pub fn now() -> DateTime<Utc> {
    "2026-11-22T10:00:00Z".parse().unwrap()
}

/// The configuration of most tests: the outbox relay is off, so that its periodic queries do
/// not mix with the requests a test asserts on (tests/outbox.rs turns it on).
pub fn config() -> Config {
    let mut config = Config::with_secret(SECRET);
    config.outbox.outbox_relay_enabled = false;
    config
}

pub fn token(user: &str) -> String {
    task_api::auth::mint(SECRET.as_bytes(), user, Duration::from_secs(3600)).unwrap()
}

/// A stub sidecar and task-api served against it.
pub struct Harness {
    pub stub: Arc<StubSidecar>,
    pub app: TestApp,
}

/// An answer of task-api.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    /// The body as sent, for what JSON values do not keep (field order).
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `field` of an error answer.
    pub fn field(&self) -> Option<&str> {
        self.body.get("field").and_then(Value::as_str)
    }
}

/// A request under construction.
pub struct Call<'a> {
    harness: &'a Harness,
    method: Method,
    path: String,
    user: Option<String>,
    authorization: Option<String>,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    content_type: Option<String>,
}

impl<'a> Call<'a> {
    /// Sends a bearer token for `user`.
    pub fn user(mut self, user: &str) -> Self {
        self.user = Some(user.to_owned());
        self
    }

    /// A raw `Authorization` header instead of a good token.
    pub fn authorization(mut self, value: &str) -> Self {
        self.authorization = Some(value.to_owned());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A JSON body with `Content-Type: application/json`.
    pub fn json(mut self, body: &Value) -> Self {
        self.body = Some(serde_json::to_vec(body).unwrap());
        self.content_type.get_or_insert_with(|| "application/json".to_owned());
        self
    }

    pub fn raw_body(mut self, body: &[u8], content_type: Option<&str>) -> Self {
        self.body = Some(body.to_vec());
        self.content_type = content_type.map(str::to_owned);
        self
    }

    pub fn content_type(mut self, value: &str) -> Self {
        self.content_type = Some(value.to_owned());
        self
    }

    pub async fn send(self) -> Answer {
        let url = format!("{}{}", self.harness.app.url, self.path);
        let mut request = self.harness.app.http.request(self.method, url);
        if let Some(user) = &self.user {
            request = request.header("authorization", format!("Bearer {}", token(user)));
        }
        if let Some(value) = &self.authorization {
            request = request.header("authorization", value);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some(content_type) = &self.content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(body) = self.body {
            request = request.body(body);
        }
        let response = request.send().await.expect("task-api answered");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        Answer { status, headers, body, text: String::from_utf8_lossy(&bytes).into_owned() }
    }
}

impl Harness {
    /// Default configuration (outbox relay off, see [`config`]), the clock fixed at [`now`].
    pub async fn start() -> Self {
        Self::custom(config(), RuntimeConfig::default(), |_| Clock::fixed(now())).await
    }

    /// Full control: the configuration, the runtime configuration, and a clock that may act on
    /// the stub (to simulate a concurrent writer between a read and a write).
    pub async fn custom(config: Config, runtime: RuntimeConfig, clock: impl FnOnce(Arc<StubSidecar>) -> Clock) -> Self {
        let stub = Arc::new(StubSidecar::start().await);
        let clock = clock(stub.clone());
        let app = TestApp::start(task_api::build(stub.client(None), config, clock), runtime).await;
        Self { stub, app }
    }

    /// task-api against a given sidecar client (for example one that is down).
    pub async fn with_dapr(dapr: Dapr) -> Self {
        let stub = Arc::new(StubSidecar::start().await);
        let app = TestApp::start(task_api::build(dapr, config(), Clock::fixed(now())), RuntimeConfig::default()).await;
        Self { stub, app }
    }

    pub fn call(&self, method: Method, path: &str) -> Call<'_> {
        Call {
            harness: self,
            method,
            path: path.to_owned(),
            user: None,
            authorization: None,
            headers: Vec::new(),
            body: None,
            content_type: None,
        }
    }

    pub fn get(&self, path: &str) -> Call<'_> {
        self.call(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Call<'_> {
        self.call(Method::POST, path)
    }

    pub fn patch(&self, path: &str) -> Call<'_> {
        self.call(Method::PATCH, path)
    }

    pub fn delete(&self, path: &str) -> Call<'_> {
        self.call(Method::DELETE, path)
    }

    /// Creates a task through the API and returns it.
    pub async fn create(&self, user: &str, body: Value) -> Value {
        let answer = self.post("/v1/tasks").user(user).json(&body).send().await;
        assert_eq!(answer.status, 201, "{:?}", answer.body);
        answer.body
    }

    /// Transactions on the `tasks` store so far.
    pub fn task_transactions(&self) -> Vec<Recorded> {
        self.stub.writes("tasks")
    }

    /// Every request that reads or writes state (get, save, bulk, transaction, query).
    pub fn state_requests(&self) -> Vec<Recorded> {
        self.stub.requests().into_iter().filter(|r| r.path.contains("/state/")).collect()
    }

    /// Writes `task` into the `tasks` store as another writer would; returns its store ETag.
    pub fn put_task(&self, task: &Task) -> String {
        put_task(&self.stub, task)
    }

    /// The stored task `id`.
    pub fn stored(&self, id: Uuid) -> Option<Task> {
        self.stub.state("tasks", &format!("task:{id}")).map(|v| serde_json::from_value(v).unwrap())
    }
}

pub fn put_task(stub: &StubSidecar, task: &Task) -> String {
    // As TaskStore writes it: with its order keys.
    stub.put_state("tasks", &format!("task:{}", task.id), todo_store::TaskStore::item(task).unwrap().value)
}

/// A stored task for `owner`, created at `now() + n minutes`, with id `n`.
pub fn task(n: u128, owner: &str, title: &str) -> Task {
    let at = now() + chrono::Duration::minutes(n as i64);
    Task {
        id: Uuid::from_u128(n),
        owner: owner.to_owned(),
        title: title.to_owned(),
        description: String::new(),
        priority: Priority::Medium,
        tags: BTreeSet::new(),
        status: Status::Open,
        due: None,
        time_zone: Tz::UTC,
        reminder: None,
        recurrence: None,
        series: None,
        created_at: at,
        updated_at: at,
        completed_at: None,
        deleted_at: None,
        version: 1,
        request_digest: None,
    }
}

pub fn ids(body: &Value) -> Vec<u128> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| Uuid::parse_str(t["id"].as_str().unwrap()).unwrap().as_u128())
        .collect()
}

/// The task upsert of a recorded `tasks` transaction, which must be one change: the task,
/// then its outbox record.
pub fn upsert(transaction: &Recorded) -> &Value {
    let operations = transaction.body["operations"].as_array().unwrap();
    assert_eq!(operations.len(), 2, "the task and its outbox record per change: {operations:?}");
    assert_eq!(operations[0]["operation"], "upsert");
    assert!(operations[0]["request"]["key"].as_str().unwrap().starts_with("task:"), "{operations:?}");
    assert!(operations[0]["request"].get("metadata").is_none(), "no Dapr outbox metadata: {operations:?}");
    &operations[0]["request"]
}

/// The event of the outbox record of a recorded `tasks` transaction (see [`upsert`]).
pub fn event(transaction: &Recorded) -> &Value {
    let operations = transaction.body["operations"].as_array().unwrap();
    assert_eq!(operations.len(), 2, "the task and its outbox record per change: {operations:?}");
    let record = &operations[1]["request"];
    assert_eq!(operations[1]["operation"], "upsert");
    assert_eq!(record["key"], format!("outbox:{}", record["value"]["event"]["id"].as_str().unwrap()));
    assert_eq!(record["value"]["outbox_record"], "v1");
    &record["value"]["event"]
}

pub fn json_of(task: &Task) -> Value {
    json!(task)
}
