//! Test support (feature `testing`): a recording stub of the Dapr sidecar and a harness that
//! serves a function's real router on loopback.
//!
//! The stub answers with Dapr's real status codes and body shapes for the API subset the
//! functions use, keeps state in memory with integer ETags (like `state.postgresql` v1's `xmin`)
//! and first-write insert-if-absent, and records every request so a test can assert the exact
//! path, query metadata, headers and body a handler sent. Failures are injected per route.
//! It is a test double, not an emulator: devhost is the faithful stand-in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub mod sse;

use crate::dapr::{Dapr, DaprConfig};
use crate::runtime::{Function, RuntimeConfig};

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The HTTP method; with `path`, what [`StubSidecar::requests_to`] and `fail` match on.
    pub method: Method,
    /// The path with each segment percent-decoded (`/v1.0/state/tasks/task:1`), no query.
    pub path: String,
    /// Decoded query parameters (`metadata.partitionKey`, ...).
    pub query: BTreeMap<String, String>,
    /// Every header as sent (`dapr-api-token`, `traceparent`, `content-type`, `if-match`, ...).
    pub headers: HeaderMap,
    /// The JSON body, or `Null` when there was none.
    pub body: Value,
}

impl Recorded {
    /// One header's value; `None` when absent or not ASCII text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A state transaction that only deletes outbox records: the sweeper's.
    pub fn is_outbox_sweep(&self) -> bool {
        self.path.ends_with("/transaction")
            && self.body["operations"].as_array().is_some_and(|ops| {
                !ops.is_empty()
                    && ops.iter().all(|op| {
                        op["operation"] == "delete"
                            && op["request"]["key"].as_str().is_some_and(|k| k.starts_with(crate::outbox::KEY_PREFIX))
                    })
            })
    }
}

#[derive(Debug, Clone)]
struct Failure {
    method: Method,
    path_prefix: String,
    status: StatusCode,
    body: Value,
    remaining: usize,
}

/// State to write when a matching request arrives: a concurrent writer, deterministically.
#[derive(Debug, Clone)]
struct Interleave {
    method: Method,
    path_prefix: String,
    store: String,
    key: String,
    value: Value,
}

#[derive(Debug, Default)]
struct Inner {
    requests: Vec<Recorded>,
    interleaves: Vec<Interleave>,
    stores: HashMap<String, BTreeMap<String, (Value, u64)>>,
    jobs: BTreeMap<String, Value>,
    next_etag: u64,
    failures: Vec<Failure>,
    token: Option<String>,
}

impl Inner {
    fn etag(&mut self) -> u64 {
        self.next_etag += 1;
        self.next_etag
    }
}

/// The stub sidecar. Dropping it stops the server.
#[derive(Debug)]
pub struct StubSidecar {
    url: String,
    inner: Arc<Mutex<Inner>>,
    _server: tokio::task::JoinHandle<()>,
}

impl Drop for StubSidecar {
    fn drop(&mut self) {
        self._server.abort();
    }
}

impl StubSidecar {
    /// Starts a stub that requires no API token.
    pub async fn start() -> Self {
        Self::start_with_token(None).await
    }

    /// Starts a stub that answers 401 to calls without `dapr-api-token: <token>` (health
    /// endpoints excepted, as in Dapr).
    pub async fn start_with_token(token: Option<&str>) -> Self {
        let inner = Arc::new(Mutex::new(Inner { token: token.map(str::to_owned), ..Inner::default() }));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind stub sidecar");
        let url = format!("http://{}", listener.local_addr().expect("stub address"));
        let router = Router::new().fallback(handle).with_state(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { url, inner, _server: server }
    }

    /// The stub's base URL (`http://127.0.0.1:<port>`): the `DAPR_HTTP_ENDPOINT` of a client
    /// made by hand; [`Self::client`] makes one.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A client of this stub, sending `token` if given.
    pub fn client(&self, token: Option<&str>) -> Dapr {
        client_for(&self.url, token)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("stub state")
    }

    /// Every request so far, health checks and the outbox sweeper's deletes excluded: those run
    /// in the background, after the work that queued them, and would land at random in
    /// whatever a test looks at. [`Self::all_requests`] and [`Self::transactions`] have them.
    pub fn requests(&self) -> Vec<Recorded> {
        self.all_requests().into_iter().filter(|r| !r.is_outbox_sweep()).collect()
    }

    /// Every request so far, health checks excluded.
    pub fn all_requests(&self) -> Vec<Recorded> {
        self.lock().requests.iter().filter(|r| !r.path.starts_with("/v1.0/healthz")).cloned().collect()
    }

    /// Requests with this method whose path starts with `prefix`, sweeps included.
    pub fn requests_to(&self, method: Method, prefix: &str) -> Vec<Recorded> {
        self.all_requests().into_iter().filter(|r| r.method == method && r.path.starts_with(prefix)).collect()
    }

    /// Publishes to `topic` (any pub/sub component).
    pub fn published(&self, topic: &str) -> Vec<Recorded> {
        self.requests_to(Method::POST, "/v1.0/publish/")
            .into_iter()
            .filter(|r| r.path.rsplit('/').next() == Some(topic))
            .collect()
    }

    /// Transactions sent to `store`.
    pub fn transactions(&self, store: &str) -> Vec<Recorded> {
        self.requests_to(Method::POST, &format!("/v1.0/state/{store}/transaction"))
    }

    /// Waits until `store` holds no outbox record (the sweeper deletes them in the background),
    /// panicking after 5 s with the keys still there.
    pub async fn wait_until_swept(&self, store: &str) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let left: Vec<String> =
                self.all_state(store).into_keys().filter(|k| k.starts_with(crate::outbox::KEY_PREFIX)).collect();
            if left.is_empty() {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "outbox records never swept from {store}: {left:?}");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Transactions on `store` other than the outbox sweeper's deletes of published records,
    /// which run in the background and may land before or after whatever a test looks at.
    pub fn writes(&self, store: &str) -> Vec<Recorded> {
        self.transactions(store).into_iter().filter(|r| !r.is_outbox_sweep()).collect()
    }

    /// Forgets the requests recorded so far, not the state, jobs or injected failures: for a
    /// test that looks only at what one step sends.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Seeds a key; returns its ETag.
    pub fn put_state(&self, store: &str, key: &str, value: Value) -> String {
        let mut inner = self.lock();
        let etag = inner.etag();
        inner.stores.entry(store.to_owned()).or_default().insert(key.to_owned(), (value, etag));
        etag.to_string()
    }

    /// The value stored under `key` in `store` (without its ETag), `None` if absent. Keys are as
    /// the app wrote them: the stub adds no `<app-id>||` prefix.
    pub fn state(&self, store: &str, key: &str) -> Option<Value> {
        self.lock().stores.get(store).and_then(|s| s.get(key)).map(|(v, _)| v.clone())
    }

    /// All keys of `store` with their values.
    pub fn all_state(&self, store: &str) -> BTreeMap<String, Value> {
        self.lock()
            .stores
            .get(store)
            .map(|s| s.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// When the next request with `method` to a path starting with `prefix` arrives, first
    /// write `value` to `store/key`, as another replica would have in the meantime.
    pub fn put_state_before(&self, method: Method, prefix: &str, store: &str, key: &str, value: Value) {
        self.lock().interleaves.push(Interleave {
            method,
            path_prefix: prefix.to_owned(),
            store: store.to_owned(),
            key: key.to_owned(),
            value,
        });
    }

    /// Scheduled jobs by name, as scheduled (the request body).
    pub fn jobs(&self) -> BTreeMap<String, Value> {
        self.lock().jobs.clone()
    }

    /// The next `times` requests with `method` to a path starting with `prefix` get `status`
    /// and a Dapr error body.
    pub fn fail(&self, method: Method, prefix: &str, status: u16, times: usize) {
        let status = StatusCode::from_u16(status).expect("status");
        let body = json!({"errorCode": "ERR_INJECTED", "message": format!("injected failure {status}")});
        self.lock().failures.push(Failure { method, path_prefix: prefix.to_owned(), status, body, remaining: times });
    }
}

/// A Dapr client for `url` with short timeouts, so "sidecar down" tests fail fast.
pub fn client_for(url: &str, token: Option<&str>) -> Dapr {
    let config = DaprConfig {
        dapr_http_endpoint: Some(url.to_owned()),
        dapr_api_token: token.map(str::to_owned),
        dapr_startup_timeout_ms: 300,
        dapr_request_timeout_ms: 5_000,
        ..DaprConfig::default()
    };
    Dapr::new(&config).expect("client config")
}

/// A Dapr client for a sidecar that is not running.
pub async fn unreachable_client() -> Dapr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    drop(listener);
    client_for(&url, None)
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes: Bytes = to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
    let body: Value =
        if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
    let query: BTreeMap<String, String> =
        parts.uri.query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let segments: Vec<String> = parts.uri.path().trim_start_matches('/').split('/').map(percent_decode).collect();
    let path = format!("/{}", segments.join("/"));
    let method = parts.method.clone();
    let mut inner = inner.lock().expect("stub state");
    inner.requests.push(Recorded {
        method: method.clone(),
        path: path.clone(),
        query,
        headers: parts.headers.clone(),
        body: body.clone(),
    });

    if !path.starts_with("/v1.0/healthz")
        && let Some(token) = &inner.token
        && parts.headers.get(crate::dapr::API_TOKEN_HEADER).and_then(|v| v.to_str().ok()) != Some(token.as_str())
    {
        return error(StatusCode::UNAUTHORIZED, "ERR_UNAUTHORIZED", "invalid api token");
    }
    if let Some(index) = inner.interleaves.iter().position(|i| i.method == method && path.starts_with(&i.path_prefix)) {
        let interleave = inner.interleaves.remove(index);
        let etag = inner.etag();
        inner.stores.entry(interleave.store).or_default().insert(interleave.key, (interleave.value, etag));
    }
    if let Some(failure) =
        inner.failures.iter_mut().find(|f| f.remaining > 0 && f.method == method && path.starts_with(&f.path_prefix))
    {
        failure.remaining -= 1;
        return (failure.status, axum::Json(failure.body.clone())).into_response();
    }

    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["v1.0", "healthz", ..]) => StatusCode::NO_CONTENT.into_response(),
        ("POST", ["v1.0", "publish", _pubsub, _topic]) => StatusCode::NO_CONTENT.into_response(),
        // An output binding that did its work and returned nothing (`bindings.smtp`).
        ("POST", ["v1.0", "bindings", _name]) => StatusCode::NO_CONTENT.into_response(),
        ("GET", ["v1.0", "state", store, key]) => get_state(&inner, store, key),
        ("POST", ["v1.0", "state", store]) => save(&mut inner, store, &body),
        ("DELETE", ["v1.0", "state", store, key]) => {
            let etag = parts.headers.get("if-match").and_then(|v| v.to_str().ok()).map(str::to_owned);
            match delete(&mut inner, store, key, etag.as_deref()) {
                Ok(()) => StatusCode::NO_CONTENT.into_response(),
                Err(status) => error(status, "ERR_STATE_DELETE", "etag mismatch"),
            }
        }
        ("POST" | "PUT", ["v1.0", "state", store, "bulk"]) => bulk(&inner, store, &body),
        ("POST" | "PUT", ["v1.0", "state", store, "transaction"]) => transaction(&mut inner, store, &body),
        ("POST" | "PUT", ["v1.0-alpha1", "state", store, "query"]) => run_query(&inner, store, &body),
        ("POST", [_, "jobs", name]) => {
            let overwrite = body.get("overwrite").and_then(Value::as_bool).unwrap_or(false);
            if inner.jobs.contains_key(*name) && !overwrite {
                return error(StatusCode::CONFLICT, "ERR_SCHEDULE_JOB", "job already exists");
            }
            inner.jobs.insert((*name).to_owned(), body);
            StatusCode::NO_CONTENT.into_response()
        }
        ("GET", [_, "jobs", name]) => match inner.jobs.get(*name) {
            Some(job) => {
                let mut shown = job.clone();
                if let Some(obj) = shown.as_object_mut() {
                    let data = obj.remove("data").unwrap_or(Value::Null);
                    obj.insert("name".into(), json!(name));
                    obj.insert(
                        "data".into(),
                        json!({"@type": "type.googleapis.com/google.protobuf.Value", "value": data}),
                    );
                    obj.remove("overwrite");
                }
                axum::Json(shown).into_response()
            }
            None => error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_GET_JOB", "job not found"),
        },
        ("DELETE", [_, "jobs", name]) => {
            inner.jobs.remove(*name);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "ERR_NOT_FOUND", "no such endpoint in the stub"),
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({"errorCode": code, "message": message}))).into_response()
}

fn percent_decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

fn get_state(inner: &Inner, store: &str, key: &str) -> Response {
    match inner.stores.get(store).and_then(|s| s.get(key)) {
        Some((value, etag)) => ([(http::header::ETAG, etag.to_string())], axum::Json(value.clone())).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// Applies one upsert with Dapr/postgres-v1 semantics. `Err` is the status a single save answers.
fn upsert(inner: &mut Inner, store: &str, item: &Value) -> Result<(), StatusCode> {
    let key = item.get("key").and_then(Value::as_str).ok_or(StatusCode::BAD_REQUEST)?.to_owned();
    let value = item.get("value").cloned().unwrap_or(Value::Null);
    let etag = item.get("etag").and_then(Value::as_str);
    let first_write = item.pointer("/options/concurrency").and_then(Value::as_str) == Some("first-write");
    let current = inner.stores.get(store).and_then(|s| s.get(&key)).map(|(_, e)| *e);
    match (etag, current) {
        (Some(etag), _) if etag.parse::<u64>().is_err() => return Err(StatusCode::BAD_REQUEST),
        (Some(etag), Some(current)) if etag.parse::<u64>().ok() != Some(current) => return Err(StatusCode::CONFLICT),
        (Some(_), None) => return Err(StatusCode::CONFLICT),
        (None, Some(_)) if first_write => return Err(StatusCode::INTERNAL_SERVER_ERROR),
        _ => {}
    }
    let new_etag = inner.etag();
    inner.stores.entry(store.to_owned()).or_default().insert(key, (value, new_etag));
    Ok(())
}

fn delete(inner: &mut Inner, store: &str, key: &str, etag: Option<&str>) -> Result<(), StatusCode> {
    let current = inner.stores.get(store).and_then(|s| s.get(key)).map(|(_, e)| *e);
    if let Some(etag) = etag
        && (current.is_none() || etag.parse::<u64>().ok() != current)
    {
        return Err(StatusCode::CONFLICT);
    }
    if let Some(s) = inner.stores.get_mut(store) {
        s.remove(key);
    }
    Ok(())
}

fn save(inner: &mut Inner, store: &str, body: &Value) -> Response {
    let Some(items) = body.as_array() else {
        return error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST", "expected an array");
    };
    for item in items {
        match upsert(inner, store, item) {
            Ok(()) => {}
            Err(StatusCode::CONFLICT) => {
                return error(StatusCode::CONFLICT, "ERR_STATE_SAVE", "possible etag mismatch");
            }
            Err(status) => return error(status, "ERR_STATE_SAVE", "failed saving state"),
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

fn bulk(inner: &Inner, store: &str, body: &Value) -> Response {
    let keys = body.get("keys").and_then(Value::as_array).cloned().unwrap_or_default();
    let items: Vec<Value> = keys
        .iter()
        .filter_map(Value::as_str)
        .map(|key| match inner.stores.get(store).and_then(|s| s.get(key)) {
            Some((value, etag)) => json!({"key": key, "data": value, "etag": etag.to_string()}),
            None => json!({"key": key}),
        })
        .collect();
    axum::Json(items).into_response()
}

/// All or nothing; every failure is a 500, as in Dapr.
fn transaction(inner: &mut Inner, store: &str, body: &Value) -> Response {
    let snapshot = (inner.stores.get(store).cloned(), inner.next_etag);
    let ops = body.get("operations").and_then(Value::as_array).cloned().unwrap_or_default();
    for op in &ops {
        let request = op.get("request").cloned().unwrap_or(Value::Null);
        let result = match op.get("operation").and_then(Value::as_str) {
            Some("upsert") => upsert(inner, store, &request),
            Some("delete") => {
                let key = request.get("key").and_then(Value::as_str).unwrap_or_default().to_owned();
                let etag = request.get("etag").and_then(Value::as_str).map(str::to_owned);
                delete(inner, store, &key, etag.as_deref())
            }
            _ => return error(StatusCode::BAD_REQUEST, "ERR_NOT_SUPPORTED_STATE_OPERATION", "unknown operation"),
        };
        if result.is_err() {
            match snapshot.0 {
                Some(previous) => {
                    inner.stores.insert(store.to_owned(), previous);
                }
                None => {
                    inner.stores.remove(store);
                }
            }
            inner.next_etag = snapshot.1;
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERR_STATE_TRANSACTION",
                "error while executing state transaction",
            );
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// The Query API as `state.postgresql` v1 answers it (the crate `query-model`, the
/// model devhost answers from), paged by offset tokens like v1.
fn run_query(inner: &Inner, store: &str, body: &Value) -> Response {
    use query_model::{check_query, parse_query, select};
    let query = match parse_query(body) {
        Ok(query) => query,
        Err(detail) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERR_STATE_QUERY",
                &format!("failed to parse JSON query body: {detail}"),
            );
        }
    };
    if let Err(detail) = check_query(&query) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_STATE_QUERY", &detail);
    }
    let empty = BTreeMap::new();
    let rows = inner.stores.get(store).unwrap_or(&empty);
    let hits = select(rows.iter().map(|(key, (value, _))| (key, value)), &query);
    let page: Vec<Value> = hits
        .iter()
        .skip(query.offset)
        .take(if query.limit > 0 { query.limit } else { usize::MAX })
        .map(|(key, value)| {
            let etag = rows.get(*key).map(|(_, etag)| *etag).unwrap_or_default();
            json!({"key": key, "data": value, "etag": etag.to_string()})
        })
        .collect();
    if page.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let mut response = json!({"results": page});
    if query.limit > 0 {
        response["token"] = json!((query.offset + page.len()).to_string());
    }
    axum::Json(response).into_response()
}

/// A function's router served on loopback, with its background tasks running (as
/// [`crate::runtime::serve`] runs them); dropping it stops both.
#[derive(Debug)]
pub struct TestApp {
    /// The app's base URL (`http://127.0.0.1:<port>`), for routes the helpers do not cover.
    pub url: String,
    /// A client with a 30 s timeout, for calling [`Self::url`] directly.
    pub http: reqwest::Client,
    _server: tokio::task::JoinHandle<()>,
    stop: crate::runtime::StopSignal,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.stop();
        for task in &self.background {
            task.abort();
        }
        self._server.abort();
    }
}

impl TestApp {
    /// Serves [`Function::into_router`] under `config` on a free loopback port and starts the
    /// background tasks. `config.app_api_token` decides whether Dapr-facing calls need a token;
    /// nothing listens on `config.metrics_port`.
    pub async fn start(mut function: Function, config: RuntimeConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind app");
        let url = format!("http://{}", listener.local_addr().expect("app address"));
        let (stop, stopping) = crate::runtime::Stopping::channel();
        let background = function.take_background().into_iter().map(|task| task.spawn(stopping.clone())).collect();
        let router = function.into_router(&config);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        Self { url, http, _server: server, stop, background }
    }

    /// Signals the background tasks to stop and waits for them (at most `timeout`); `false` if
    /// one did not stop in time.
    pub async fn stop_background(&mut self, timeout: Duration) -> bool {
        self.stop.stop();
        let mut all = true;
        for mut task in self.background.drain(..) {
            if tokio::time::timeout(timeout, &mut task).await.is_err() {
                task.abort();
                all = false;
            }
        }
        all
    }

    /// Delivers `event` to `path` as Dapr does (`application/cloudevents+json`), with `token`
    /// as `dapr-api-token` if given. Returns the HTTP status and the JSON answer.
    pub async fn deliver(&self, path: &str, event: &Value, token: Option<&str>) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/cloudevents+json")
            .body(serde_json::to_vec(event).expect("event JSON"));
        if let Some(token) = token {
            request = request.header(crate::dapr::API_TOKEN_HEADER, token);
        }
        let response = request.send().await.expect("deliver");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
        (status, body)
    }

    /// Calls `POST /job/{name}` with `data` as the raw body, as the Scheduler does.
    pub async fn trigger_job(&self, name: &str, data: &Value, token: Option<&str>) -> u16 {
        let mut request = self
            .http
            .post(format!("{}/job/{name}", self.url))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(data).expect("job data JSON"));
        if let Some(token) = token {
            request = request.header(crate::dapr::API_TOKEN_HEADER, token);
        }
        request.send().await.expect("job callback").status().as_u16()
    }
}

/// A CloudEvent as daprd delivers one published to `topic` of the component `pubsub`.
pub fn cloudevent(id: &str, event_type: &str, topic: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "test",
        "type": event_type,
        "datacontenttype": "application/json",
        "data": data,
        "topic": topic,
        "pubsubname": "pubsub",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "tracestate": "",
        "time": "2026-11-22T10:00:00Z",
    })
}
