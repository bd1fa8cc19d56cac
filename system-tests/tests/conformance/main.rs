//! Differential conformance: every sidecar call the functions make (`shared/dapr-fn/src/dapr/`) is made
//! against devhost and against a real daprd 1.18 (with the Scheduler, Kafka and PostgreSQL of
//! [`Platform`]) in the same test, and the answers are compared: status, Dapr `errorCode` and
//! body shape, with values that legitimately differ (ETags, times, trace ids, generated ids,
//! message texts) normalised. daprd is the reference: a divergence is either fixed in devhost or
//! listed in devhost's documented differences (`devhost/src/lib.rs`) and in [`Documented`] here,
//! which asserts both sides' exact answers so the difference cannot drift silently.
//!
//! The app is this test process itself: a small axum server per backend that records every call
//! the sidecar makes (subscription discovery, deliveries, job callbacks) and answers as each
//! message or job asks (`SUCCESS`, `RETRY`, `DROP`, 404, 500, ...). Its run file has no
//! `command`, so neither devhost nor the platform starts a process for it. It runs as app-id
//! `task-api`, one of the app-ids `dapr-components/local` scopes every component to (both
//! backends load those resources, with the pub/sub scopes of this test: [`PUBLISHING_SCOPES`]),
//! on topics that exist on the platform's broker (auto-creation is off there): `task-create`
//! with the dead-letter topic `create-task-dlq`, and `reminders` without one. `task-events` is
//! outside its publishing scope: publishing there is refused by both.
//!
//! Both sidecars run with `DAPR_API_TOKEN` and `APP_API_TOKEN`: the state test checks which
//! paths answer without the API token, the others that the app token comes with subscription
//! discovery, every delivery and every job callback.
//!
//! One test per area, each starting devhost and one platform and running the area against both
//! at once:
//! - state: get/save/delete with ETags and first-write, bulk get, transactions, the Query API
//!   (EQ, IN, AND, sort, pages), the error answers, and the API token;
//! - publish and subscriptions: publish metadata and errors, the CloudEvent and the delivery
//!   request, routing, SUCCESS/empty/DROP/404/RETRY/500/unknown status, dead letters, the
//!   blocked partition without a dead-letter topic, trace context;
//! - jobs: schedule/get/delete and their errors, the callback request, failure policies;
//! - subscribe (and subscribe-bad-rule): an app without `/healthz` subscribed and called back, a
//!   bulk subscription (request, per-entry statuses, retries, dead letters), routing rules in full
//!   CEL, case-sensitive statuses, a programmatic rule that does not compile;
//! - bindings: `bindings.smtp` and `bindings.http` output bindings, each backend's components
//!   pointing at its own SMTP sink ([`SmtpSink`]) and HTTP receiver: what the notifier sends,
//!   recipients, CC/BCC, priority and the component's defaults, data that is not a string,
//!   the error answers (no such binding, a scoped one, unsupported or missing operation, an
//!   SMTP server not listening, a receiver answering 500 or 404), and what the sink and the
//!   receiver got (envelope, headers, decoded body; method, path, headers, body).
//!
//! Run with `--test-threads=1`: a platform takes most of two cores. Each platform's logs stay in
//! `$TMPDIR/todo-platform-tests/conformance-<area>/logs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use system_tests::host::free_port;
use system_tests::platform::{Options, Platform};
use system_tests::smtp::{Mail, SmtpSink};
use system_tests::workspace_root;

mod bindings;
mod invoke;
mod jobs;
mod metadata;
mod pubsub;
mod secrets;
mod state;
mod subscribe;

/// Scoped into every component of `dapr-components/local` (see the module doc).
const APP_ID: &str = "task-api";
const API_TOKEN: &str = "conformance-dapr-api-token";
const APP_TOKEN: &str = "conformance-app-api-token";
/// Subscribed with a dead-letter topic, and a routing rule.
const TOPIC_DLQ: &str = "task-create";
const DEAD_LETTERS: &str = "create-task-dlq";
/// Subscribed without a dead-letter topic.
const TOPIC_PLAIN: &str = "reminders";
const ROUTED_TYPE: &str = "conformance.routed";
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TRACESTATE: &str = "congo=t61rcWkgMzE";
/// The `traceparent` daprd delivers for an event that carries none.
const ZERO_TRACEPARENT: &str = "00-00000000000000000000000000000000-0000000000000000-00";

// ------------------------------------------------------------------------------------------
// The app: records what the sidecar sends, answers as told
// ------------------------------------------------------------------------------------------

/// One call the sidecar made to the app.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    /// The raw query string ("" without one).
    query: String,
    headers: BTreeMap<String, String>,
    body: Value,
    at: Instant,
}

#[derive(Debug, Default)]
struct Recorder {
    calls: Mutex<Vec<Call>>,
}

impl Recorder {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Calls to `path` exactly, or under it when it ends with '/'.
    fn to(&self, path: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| if path.ends_with('/') { c.path.starts_with(path) } else { c.path == path })
            .collect()
    }

    /// Deliveries of the event with CloudEvent `id`.
    fn deliveries(&self, id: &str) -> Vec<Call> {
        self.to("/events/").into_iter().filter(|c| c.body["id"] == id).collect()
    }
}

/// The programmatic subscriptions (`GET /dapr/subscribe`, v2 format).
fn subscriptions() -> Value {
    json!([
        {
            "pubsubname": "pubsub",
            "topic": TOPIC_DLQ,
            "routes": {
                "rules": [{"match": format!("event.type == \"{ROUTED_TYPE}\""), "path": "/events/routed"}],
                "default": "/events/with-dlq"
            },
            "deadLetterTopic": DEAD_LETTERS
        },
        {"pubsubname": "pubsub", "topic": TOPIC_PLAIN, "routes": {"default": "/events/plain"}}
    ])
}

/// Headers every HTTP client or server adds, not the sidecar's choice.
const TRANSPORT_HEADERS: &[&str] = &["host", "content-length", "user-agent", "accept-encoding", "accept", "connection"];

/// How the test app behaves beyond recording: what `GET /dapr/subscribe` answers and whether it
/// serves `/healthz` (an SDK's `DaprServer` does not). The default is every area's app but
/// `subscribe`'s.
#[derive(Debug, Clone)]
struct AppBehaviour {
    subscriptions: Value,
    healthz: bool,
}

impl Default for AppBehaviour {
    fn default() -> Self {
        Self { subscriptions: subscriptions(), healthz: true }
    }
}

async fn app_handler(
    State((recorder, behaviour)): State<(Arc<Recorder>, Arc<AppBehaviour>)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if path == "/healthz" && behaviour.healthz {
        return StatusCode::OK.into_response();
    }
    let headers: BTreeMap<String, String> = headers
        .iter()
        .filter(|(name, _)| !TRANSPORT_HEADERS.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let parsed = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    let query = uri.query().unwrap_or_default().to_owned();
    let call = Call {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        headers,
        body: parsed.clone(),
        at: Instant::now(),
    };
    let earlier = {
        let mut calls = recorder.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let same =
            |c: &&Call| c.path == call.path && (!path.starts_with("/events/") || c.body["id"] == call.body["id"]);
        let earlier = calls.iter().filter(same).count();
        calls.push(call);
        earlier
    };
    let status = |s: &str| axum::Json(json!({ "status": s })).into_response();
    if path == "/dapr/subscribe" {
        return axum::Json(behaviour.subscriptions.clone()).into_response();
    }
    if path.starts_with("/bulk/") {
        return subscribe::bulk_answer(&recorder, &parsed);
    }
    if path.starts_with("/events/") {
        let answer = parsed["data"]["answer"].as_str().unwrap_or("success").to_owned();
        return match answer.as_str() {
            "empty" => StatusCode::OK.into_response(),
            "drop" => status("DROP"),
            "retry" => status("RETRY"),
            "unknown" => status("MAYBE"),
            "404" => StatusCode::NOT_FOUND.into_response(),
            "500" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            "retry-once" if earlier == 0 => status("RETRY"),
            "retry-9" if earlier < 9 => status("RETRY"),
            // Not DROP to daprd (statuses are case-sensitive): an unknown status, retried.
            "drop-lowercase-once" if earlier == 0 => status("drop"),
            _ => status("SUCCESS"),
        };
    }
    if path.starts_with("/job/") {
        return match parsed["answer"].as_str().unwrap_or("ok") {
            "500" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            "404" => StatusCode::NOT_FOUND.into_response(),
            "500-once" if earlier == 0 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            _ => StatusCode::OK.into_response(),
        };
    }
    if path.starts_with("/invoked/") {
        return invoke::invoked_answer(&method, &path, &query);
    }
    StatusCode::NOT_FOUND.into_response()
}

#[derive(Debug)]
struct TestApp {
    port: u16,
    recorder: Arc<Recorder>,
    server: tokio::task::JoinHandle<()>,
}

impl TestApp {
    async fn start_as(behaviour: AppBehaviour) -> anyhow::Result<Self> {
        let port = free_port()?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let recorder = Arc::new(Recorder::default());
        let router = axum::Router::new().fallback(app_handler).with_state((recorder.clone(), Arc::new(behaviour)));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self { port, recorder, server })
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

// ------------------------------------------------------------------------------------------
// The two backends
// ------------------------------------------------------------------------------------------

/// The run file of the one external app: no `command`, fixed ports, the repository's resources
/// with the pub/sub scopes of [`PUBLISHING_SCOPES`] and [`SUBSCRIPTION_SCOPES`] in place of the
/// functions' own (which grant `task-api` only `task-events`).
fn write_run_file(dir: &Path, app_port: u16, sidecar_port: u16, fixtures: &Fixtures) -> anyhow::Result<PathBuf> {
    let resources = dir.join("resources");
    std::fs::create_dir_all(&resources)?;
    let source = workspace_root().join("dapr-components/local");
    for entry in std::fs::read_dir(&source).with_context(|| format!("reading {}", source.display()))? {
        let path = entry?.path();
        let name = path.file_name().context("a resource file name")?;
        let mut text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        if name == "pubsub.yaml" {
            text = with_scopes(&text)?;
        }
        std::fs::write(resources.join(name), text)?;
    }
    for (name, text) in &fixtures.resources {
        std::fs::write(resources.join(name), text)?;
    }
    let text = format!(
        "version: 1\ncommon:\n  resourcesPath: {resources}\napps:\n  - appID: {APP_ID}\n    appDirPath: {dir}\n    \
         appPort: {app_port}\n    daprHTTPPort: {sidecar_port}\n",
        resources = resources.display(),
        dir = dir.display(),
    );
    let path = dir.join("dapr.yaml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// What the conformance app may publish: its two subscribed topics, the dead-letter topic, and
/// the topic no broker has (to compare that error). Not `task-events`: the forbidden publish.
const PUBLISHING_SCOPES: &str = "task-api=task-create,create-task-dlq,reminders,conformance-no-such-topic";
const SUBSCRIPTION_SCOPES: &str = "task-api=task-create,reminders";
/// Exists on the platform's broker, outside [`PUBLISHING_SCOPES`].
const FORBIDDEN_TOPIC: &str = "task-events";

/// `pubsub.yaml` with the values of `publishingScopes` and `subscriptionScopes` replaced.
fn with_scopes(component: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut replace = None;
    let mut replaced = 0;
    for line in component.lines() {
        if let Some(value) = replace.take() {
            let indent = &line[..line.len() - line.trim_start().len()];
            anyhow::ensure!(line.trim_start().starts_with("value:"), "a scope name without a value: {line}");
            out.push_str(&format!("{indent}value: \"{value}\"\n"));
            replaced += 1;
            continue;
        }
        replace = match line.trim() {
            "- name: publishingScopes" => Some(PUBLISHING_SCOPES),
            "- name: subscriptionScopes" => Some(SUBSCRIPTION_SCOPES),
            _ => None,
        };
        out.push_str(line);
        out.push('\n');
    }
    anyhow::ensure!(replaced == 2, "dapr-components/local/pubsub.yaml sets {replaced} of the two scopes");
    Ok(out)
}

#[derive(Debug)]
enum Runtime {
    Devhost { system: devhost::system::System, database: String },
    Daprd { platform: Box<Platform> },
}

/// What an area adds to both backends' resources, and the servers those resources point at
/// (each backend its own).
#[derive(Debug, Default)]
struct Fixtures {
    /// (file name, YAML) added to the resources directory.
    resources: Vec<(String, String)>,
    sink: Option<SmtpSink>,
    /// A sink that requires `AUTH` as [`MAIL_USER`].
    auth_sink: Option<SmtpSink>,
    receiver: Option<TestApp>,
    /// How the app behaves (its subscriptions, `/healthz`).
    app: AppBehaviour,
}

impl Fixtures {
    async fn for_area(area: &str) -> anyhow::Result<Self> {
        match area {
            "bindings" => bindings::binding_fixtures().await,
            "subscribe" => Ok(subscribe::fixtures()),
            "subscribe-bad-rule" => Ok(subscribe::bad_rule_fixtures()),
            "secrets" => secrets::secret_fixtures().await,
            _ => Ok(Self::default()),
        }
    }
}

#[derive(Debug)]
struct Backend {
    name: &'static str,
    sidecar: String,
    http: reqwest::Client,
    app: TestApp,
    fixtures: Fixtures,
    runtime: Option<Runtime>,
    _dir: tempfile::TempDir,
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    // Long: a publish to a topic the broker does not have waits for the producer's retries.
    Ok(reqwest::Client::builder().timeout(Duration::from_secs(60)).no_proxy().build()?)
}

impl Backend {
    async fn devhost(fixtures: Fixtures) -> anyhow::Result<Self> {
        let app = TestApp::start_as(fixtures.app.clone()).await?;
        let dir = tempfile::tempdir()?;
        let sidecar_port = free_port()?;
        let run_file = write_run_file(dir.path(), app.port, sidecar_port, &fixtures)?;
        let database = dir.path().join("devhost.sqlite").display().to_string();
        let settings = devhost::system::Settings {
            database: database.clone(),
            api_token: Some(API_TOKEN.to_owned()),
            app_token: Some(APP_TOKEN.to_owned()),
            grace: Duration::from_secs(5),
            ready_timeout: Some(Duration::from_secs(60)),
            ..devhost::system::Settings::default()
        };
        let system = devhost::system::System::start(&run_file, &settings).await?;
        Ok(Self {
            name: "devhost",
            sidecar: format!("http://127.0.0.1:{sidecar_port}"),
            http: http_client()?,
            app,
            fixtures,
            runtime: Some(Runtime::Devhost { system, database }),
            _dir: dir,
        })
    }

    /// The platform in `$TMPDIR/todo-platform-tests/conformance-<area>`, kept after the test
    /// (every process's log in `logs/`) and replaced by the next run.
    async fn daprd(area: &str, fixtures: Fixtures) -> anyhow::Result<Self> {
        let app = TestApp::start_as(fixtures.app.clone()).await?;
        let dir = tempfile::tempdir()?;
        let sidecar_port = free_port()?;
        let run_file = write_run_file(dir.path(), app.port, sidecar_port, &fixtures)?;
        let platform_dir = Platform::fresh_dir(&format!("conformance-{area}"))?;
        let options = Options {
            dapr_api_token: Some(API_TOKEN.to_owned()),
            app_api_token: Some(APP_TOKEN.to_owned()),
            ..Options::default()
        };
        let platform = Platform::start(&run_file, &platform_dir, options).await?;
        println!("daprd platform for {area}: logs in {}", platform.logs().display());
        Ok(Self {
            name: "daprd",
            sidecar: format!("http://127.0.0.1:{sidecar_port}"),
            http: http_client()?,
            app,
            fixtures,
            runtime: Some(Runtime::Daprd { platform: Box::new(platform) }),
            _dir: dir,
        })
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        match self.runtime.take() {
            Some(Runtime::Devhost { system, .. }) => system.stop().await,
            Some(Runtime::Daprd { platform }) => platform.stop()?,
            None => {}
        }
        Ok(())
    }

    /// A sidecar call with the API token.
    async fn call(&self, method: Method, path: impl AsRef<str>, body: Option<Value>) -> anyhow::Result<Answer> {
        self.call_with(method, path, body, &[("dapr-api-token", API_TOKEN)]).await
    }

    async fn call_with(
        &self,
        method: Method,
        path: impl AsRef<str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let path = path.as_ref();
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.sidecar));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let response = request.send().await.with_context(|| format!("{}: {method} {path}", self.name))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Ok(Answer { status, headers, body })
    }

    /// The messages of `topic` on this backend's broker: (key, CloudEvent).
    async fn topic(&self, topic: &str) -> anyhow::Result<Vec<(Option<String>, Value)>> {
        match self.runtime.as_ref().context("stopped")? {
            Runtime::Devhost { database, .. } => {
                Ok(devhost::peek::messages(database, "pubsub", topic)?.into_iter().map(|m| (m.key, m.body)).collect())
            }
            Runtime::Daprd { platform } => Ok(platform
                .kafka()
                .await?
                .messages(topic)
                .await?
                .into_iter()
                .map(|m| {
                    let key = m.key.map(|k| String::from_utf8_lossy(&k).into_owned());
                    let value = m.value.unwrap_or_default();
                    let body = serde_json::from_slice(&value)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&value).into()));
                    (key, body)
                })
                .collect()),
        }
    }
}

/// A sidecar's answer.
#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn etag(&self) -> String {
        self.headers.get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().trim_matches('"').to_owned()
    }

    /// What is compared: status, the error code, the body with its varying values normalised,
    /// and whether an ETag header came.
    fn observed(&self) -> Value {
        let mut out = json!({ "status": self.status.as_u16(), "body": normalise(&self.body) });
        if let Some(code) = self.body.get("errorCode") {
            out["errorCode"] = code.clone();
        }
        if self.headers.contains_key("etag") {
            out["etag"] = json!(if self.etag().is_empty() { "<empty>" } else { "<etag>" });
        }
        out
    }
}

/// Replaces what legitimately differs between two runs (ETags, message texts, times, trace ids)
/// by a placeholder naming its kind, recursively.
fn normalise(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("etag", Value::String(s)) if !s.is_empty() => json!("<etag>"),
                        ("message", Value::String(_)) => json!("<message>"),
                        ("description", Value::String(s)) if !s.is_empty() => json!("<description>"),
                        // daprd's NAMESPACE (`todo` on the platform, as in Kubernetes; `default`
                        // without it), configuration rather than behaviour.
                        ("namespace", Value::String(_)) => json!("<namespace>"),
                        // An error's text in `ErrorInfo` metadata: Go's wording, not devhost's.
                        ("error", Value::String(s)) if !s.is_empty() => json!("<error>"),
                        ("time", Value::String(_)) => json!("<time>"),
                        ("dueTime", Value::String(_)) => json!("<dueTime>"),
                        ("traceparent" | "traceid", Value::String(s)) if !s.is_empty() => json!("<traceparent>"),
                        _ => normalise(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        other => other.clone(),
    }
}

// ------------------------------------------------------------------------------------------
// Steps and their comparison
// ------------------------------------------------------------------------------------------

/// What one backend answered, step by step.
#[derive(Debug, Default)]
struct Steps(Vec<(String, Value)>);

impl Steps {
    fn add(&mut self, step: &str, observed: Value) {
        self.0.push((step.to_owned(), observed));
    }

    fn answer(&mut self, step: &str, answer: &Answer) {
        self.add(step, answer.observed());
    }
}

/// A difference devhost keeps on purpose (listed in devhost's documented differences): both
/// sides' observations of `step` exactly as expected.
#[derive(Debug)]
struct Documented {
    step: &'static str,
    devhost: Value,
    daprd: Value,
}

/// Compares the steps; returns every failure (a divergence not documented, or a documented one
/// that no longer holds as written).
fn compare(area: &str, devhost: &Steps, daprd: &Steps, documented: &[Documented]) -> Vec<String> {
    let mut failures = Vec::new();
    let theirs: BTreeMap<&str, &Value> = daprd.0.iter().map(|(s, v)| (s.as_str(), v)).collect();
    if devhost.0.len() != daprd.0.len() {
        failures.push(format!("{area}: {} steps on devhost, {} on daprd", devhost.0.len(), daprd.0.len()));
    }
    for (step, ours) in &devhost.0 {
        let Some(theirs) = theirs.get(step.as_str()).copied() else {
            failures.push(format!("{area} / {step}: no answer from daprd"));
            continue;
        };
        match documented.iter().find(|d| d.step == step) {
            Some(d) if (&d.devhost, &d.daprd) == (ours, theirs) => {
                println!("  {area} / {step}: documented difference holds\n    devhost {ours}\n    daprd   {theirs}");
            }
            Some(d) => failures.push(format!(
                "{area} / {step}: the documented difference changed\n    devhost {ours}\n      documented {}\n    daprd   {theirs}\n      documented {}",
                d.devhost, d.daprd
            )),
            None if ours == theirs => println!("  {area} / {step}: same: {ours}"),
            None => failures.push(format!("{area} / {step}: DIVERGES\n    devhost {ours}\n    daprd   {theirs}")),
        }
    }
    failures
}

/// Starts both backends for `area`, runs `calls` against both at once, stops them and compares.
async fn differential<F>(area: &'static str, documented: &[Documented], calls: F) -> anyhow::Result<()>
where
    F: for<'a> Fn(&'a Backend) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Steps>> + 'a>>,
{
    let started = Instant::now();
    let devhost = Backend::devhost(Fixtures::for_area(area).await?).await?;
    let daprd = Backend::daprd(area, Fixtures::for_area(area).await?).await?;
    println!("{area}: both backends up after {:.1?}", started.elapsed());
    let ran = Instant::now();
    let (ours, theirs) = tokio::join!(calls(&devhost), calls(&daprd));
    println!("{area}: calls made in {:.1?}", ran.elapsed());
    devhost.stop().await?;
    daprd.stop().await?;
    let (ours, theirs) = (ours.context("on devhost")?, theirs.context("on daprd")?);
    let failures = compare(area, &ours, &theirs, documented);
    println!("{area}: {} steps compared in {:.1?}", ours.0.len(), started.elapsed());
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
    Ok(())
}

/// Headers of a delivery with their varying values normalised.
fn delivery_headers(call: &Call) -> Value {
    let map: Map<String, Value> = call
        .headers
        .iter()
        .map(|(k, v)| {
            let v = match k.as_str() {
                "__partition" | "__offset" | "__timestamp" => json!(format!("<{}>", k.trim_start_matches('_'))),
                "traceparent" if v != ZERO_TRACEPARENT => json!("<traceparent>"),
                _ => json!(v),
            };
            (k.clone(), v)
        })
        .collect();
    Value::Object(map)
}
