//! The sidecar HTTP API, one server per app: what daprd serves on `DAPR_HTTP_PORT`.
//!
//! Status codes and body shapes follow dapr/dapr `pkg/api/http/http.go`, `jobs.go` and
//! `pkg/messages/errorcodes/errorcodes.go`; errors are `{"errorCode": "ERR_...", "message": ...}`,
//! plus the `details` (google.rpc `ErrorInfo`, `ResourceInfo`, `BadRequest`) where daprd builds
//! the error with dapr/kit's error builder (`pkg/api/errors/*.go`): unknown stores and pub/subs,
//! illegal keys, publish and query failures, every Jobs API error. The output bindings
//! themselves are in [`crate::bindings`]. Checked against a real daprd by
//! `system-tests/tests/conformance.rs`.
//! Components are visible only to the app-ids in their `scopes`, as if the component were not
//! loaded for other apps. With `DAPR_API_TOKEN` set, every call but `GET /v1.0/healthz` and
//! `GET /v1.0/healthz/outbound` needs the header `dapr-api-token`, and a call without it gets
//! Go's `http.Error`: 401 with the plain text `invalid api token` (dapr/dapr
//! `pkg/api/http/middlewares.go`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tracing::debug;

use crate::cloudevent::{self, CLOUDEVENTS_CONTENT_TYPE};
use crate::host::Host;
use crate::jobs;
use crate::outbox;
use crate::pubsub::NewMessage;
use crate::query;
use crate::resources::ComponentKind;
use crate::state::{self, Op, StateError};

/// A Dapr API error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// google.rpc error details, as dapr/kit's `JSONErrorValue` writes them (empty: none).
    pub details: Vec<Value>,
}

/// google.rpc `ErrorInfo` (dapr/kit `convertErrorDetails`): `metadata` is `null` when the error
/// has none.
pub fn error_info(reason: &str, metadata: Value) -> Value {
    json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "dapr.io", "metadata": metadata})
}

/// google.rpc `ResourceInfo` of a component.
pub fn resource_info(resource_type: &str, name: &str, description: &str) -> Value {
    json!({"@type": "type.googleapis.com/google.rpc.ResourceInfo", "resource_type": resource_type,
           "resource_name": name, "owner": "", "description": description})
}

/// google.rpc `BadRequest` with one field violation.
pub fn field_violation(field: &str, description: &str) -> Value {
    json!({"@type": "type.googleapis.com/google.rpc.BadRequest",
           "field_violations": [{"field": field, "description": description}]})
}

/// The namespace daprd reports: `NAMESPACE`, else `default` (dapr/dapr `security.CurrentNamespace`).
pub fn namespace() -> String {
    std::env::var("NAMESPACE").unwrap_or_else(|_| "default".to_owned())
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: Vec::new() }
    }

    pub fn with_details(mut self, details: Vec<Value>) -> Self {
        self.details = details;
        self
    }

    /// A Jobs API error as `pkg/api/universal/jobs.go` builds it: its code is its `ErrorInfo`
    /// reason, with the app-id and namespace (the job name error has the app-id only).
    pub fn for_jobs(self, app_id: &str) -> Self {
        if !self.code.starts_with("DAPR_SCHEDULER_") {
            return self;
        }
        let metadata = if self.code == "DAPR_SCHEDULER_JOB_NAME" {
            json!({"appID": app_id})
        } else {
            json!({"appID": app_id, "namespace": namespace()})
        };
        let reason = self.code;
        self.with_details(vec![error_info(reason, metadata)])
    }

    pub fn internal(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, code, message)
    }

    fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        debug!(status = self.status.as_u16(), code = self.code, message = %self.message, "API error");
        let mut body = json!({"errorCode": self.code, "message": self.message});
        if !self.details.is_empty() {
            body["details"] = Value::Array(self.details);
        }
        (self.status, axum::Json(body)).into_response()
    }
}

#[derive(Debug, Clone)]
struct Ctx {
    host: Arc<Host>,
    app_id: Arc<str>,
}

/// The API router of one app's sidecar.
pub fn router(host: Arc<Host>, app_id: &str) -> Router {
    let ctx = Ctx { host, app_id: app_id.into() };
    let jobs_routes = || get(get_job).post(schedule_job).delete(delete_job);
    Router::new()
        .route("/v1.0/healthz", get(healthz))
        .route("/v1.0/healthz/outbound", get(healthz))
        .route("/v1.0/metadata", get(metadata))
        .route("/v1.0/publish/{pubsub}", post(publish_without_topic))
        .route("/v1.0/publish/{pubsub}/{*topic}", post(publish))
        .route("/v1.0/state/{store}", post(save_state).put(save_state))
        .route("/v1.0/state/{store}/bulk", post(bulk_get).put(bulk_get))
        .route("/v1.0/state/{store}/transaction", post(transaction).put(transaction))
        .route("/v1.0/state/{store}/{key}", get(get_state).delete(delete_state))
        .route("/v1.0-alpha1/state/{store}/query", post(query_state).put(query_state))
        .route("/v1.0/bindings/{name}", post(invoke_binding).put(invoke_binding))
        .route("/v1.0-alpha1/jobs/{name}", jobs_routes())
        .route("/v1.0/jobs/{name}", jobs_routes())
        .fallback(not_emulated)
        // daprd's default `dapr-http-max-request-size` is 4 MB.
        .layer(axum::extract::DefaultBodyLimit::max(4 << 20))
        .layer(middleware::from_fn_with_state(ctx.clone(), require_api_token))
        .with_state(ctx)
}

async fn require_api_token(State(ctx): State<Ctx>, request: Request, next: Next) -> Response {
    use subtle::ConstantTimeEq as _;
    let path = request.uri().path().trim_matches('/');
    let exempt = request.method() == Method::GET && (path == "v1.0/healthz" || path == "v1.0/healthz/outbound");
    if let Some(token) = &ctx.host.options.api_token
        && !exempt
    {
        let presented = request.headers().get("dapr-api-token").map(HeaderValue::as_bytes).unwrap_or_default();
        if !bool::from(presented.ct_eq(token.as_bytes())) {
            // Go's `http.Error`, not a Dapr error body.
            let headers = [
                (http::header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ];
            return (StatusCode::UNAUTHORIZED, headers, "invalid api token\n").into_response();
        }
    }
    next.run(request).await
}

async fn healthz() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn not_emulated(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "ERR_DEVHOST_NOT_EMULATED",
        format!("devhost does not emulate {method} {} (see devhost's documentation for the API subset)", uri.path()),
    )
}

async fn metadata(State(ctx): State<Ctx>) -> Response {
    let host = &ctx.host;
    let components: Vec<Value> = host
        .components_for(&ctx.app_id)
        .iter()
        .map(|c| {
            let capabilities: Vec<&str> = match &c.kind {
                ComponentKind::State(_) => vec!["ETAG", "TRANSACTIONAL", "QUERY_API", "TTL"],
                // dapr/dapr `pkg/runtime/runtime.go:1663-1669`: an output binding says so.
                ComponentKind::Binding(_) => vec!["OUTPUT_BINDING"],
                _ => vec![],
            };
            json!({"name": c.name, "type": c.type_name, "version": c.version, "capabilities": capabilities})
        })
        .collect();
    let app = host.apps.get(&*ctx.app_id);
    let subscriptions: Vec<Value> = app
        .map(|a| a.subscriptions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let mut rules: Vec<Value> = s.rules.iter().map(|(m, p)| json!({"match": m, "path": p})).collect();
            if let Some(default) = &s.default_path {
                rules.push(json!({"match": "", "path": default}));
            }
            let mut v = json!({
                "pubsubname": s.pubsub,
                "topic": s.topic,
                "metadata": s.metadata,
                "rules": {"rules": rules},
                "type": s.kind,
            });
            if let (Some(dlq), Value::Object(m)) = (&s.dead_letter_topic, &mut v) {
                m.insert("deadLetterTopic".into(), json!(dlq));
            }
            v
        })
        .collect();
    let mut body = json!({
        "id": &*ctx.app_id,
        "runtimeVersion": concat!("devhost-", env!("CARGO_PKG_VERSION")),
        "enabledFeatures": [],
        "actorRuntime": {"runtimeStatus": "DISABLED"},
        "components": components,
        "subscriptions": subscriptions,
        "httpEndpoints": [],
        "extended": {"devhost": "true"},
    });
    if let (Some(app), Value::Object(m)) = (app, &mut body) {
        m.insert(
            "appConnectionProperties".into(),
            json!({"port": app.app_port, "protocol": "http", "channelAddress": "127.0.0.1",
                   "health": {"healthCheckPath": app.health_path}}),
        );
    }
    axum::Json(body).into_response()
}

/// `metadata.<key>=<value>` query parameters, prefix removed.
fn metadata_params(query: &[(String, String)]) -> BTreeMap<String, String> {
    query.iter().filter_map(|(k, v)| k.strip_prefix("metadata.").map(|k| (k.to_owned(), v.clone()))).collect()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

// ------------------------------------------------------------------------------------------
// Output bindings
// ------------------------------------------------------------------------------------------

/// dapr/dapr `pkg/api/http/requests.go:17-21` `OutputBindingRequest`, as `encoding/json`
/// decodes it: the first JSON value of the body, field names matched case-insensitively,
/// unknown fields ignored, `null` leaving a field empty; a wrong type is an error.
fn binding_request(body: &[u8]) -> Result<(String, BTreeMap<String, String>, Value), String> {
    let value = serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .next()
        .ok_or_else(|| "EOF".to_owned())?
        .map_err(|e| e.to_string())?;
    let fields = match value {
        Value::Null => serde_json::Map::new(),
        Value::Object(map) => map,
        other => {
            return Err(format!(
                "json: cannot unmarshal {} into Go value of type http.OutputBindingRequest",
                crate::fields::kind(&other)
            ));
        }
    };
    let (mut operation, mut metadata, mut data) = (String::new(), BTreeMap::new(), Value::Null);
    for (key, value) in fields {
        match (key.to_ascii_lowercase().as_str(), value) {
            ("operation", Value::String(s)) => operation = s,
            ("operation", Value::Null) | ("metadata", Value::Null) => {}
            ("metadata", Value::Object(map)) => {
                for (k, v) in map {
                    match v {
                        Value::String(s) => metadata.insert(k, s),
                        Value::Null => metadata.insert(k, String::new()),
                        _ => {
                            return Err(format!(
                                "json: cannot unmarshal into Go struct field metadata.{k} of type string"
                            ));
                        }
                    };
                }
            }
            ("data", v) => data = v,
            ("operation" | "metadata", _) => return Err(format!("json: cannot unmarshal into Go struct field {key}")),
            _ => {}
        }
    }
    Ok((operation, metadata, data))
}

/// `POST|PUT /v1.0/bindings/{name}` (dapr/dapr `pkg/api/http/http.go:417-495`, and
/// `pkg/runtime/processor/binding/send.go:196-221` for which binding and operation): every
/// failure after the body is read is 500 `ERR_INVOKE_OUTPUT_BINDING` with
/// `error invoking output binding <name>: <error>`; a binding's response metadata comes back as
/// `metadata.<key>` headers, also with an error; no response is 204, a response 200 with its data.
async fn invoke_binding(State(ctx): State<Ctx>, Path(name): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let (operation, mut metadata, data) = match binding_request(&body) {
        Ok(request) => request,
        Err(e) => return ApiError::malformed(format!("failed deserializing HTTP body: {e}")).into_response(),
    };
    // The trace context goes into the metadata (`http.go:438-452`), where `bindings.http` makes
    // headers of it: the caller's, passed on (no span of our own), else the all-zero context,
    // which daprd without a tracing configuration puts there too (the conformance test sees it
    // arrive at the receiver).
    let (traceparent, tracestate) =
        cloudevent::caller_trace(header(&headers, "traceparent"), header(&headers, "tracestate"));
    let traceparent = if traceparent.is_empty() { cloudevent::ZERO_TRACEPARENT.to_owned() } else { traceparent };
    metadata.insert("traceparent".to_owned(), traceparent);
    if !tracestate.is_empty() {
        metadata.insert("tracestate".to_owned(), tracestate);
    }
    let baggage: Vec<&str> = headers.get_all("baggage").iter().filter_map(|v| v.to_str().ok()).collect();
    if !baggage.is_empty() {
        metadata.insert("baggage".to_owned(), baggage.join(","));
    }
    let data = crate::bindings::go_json(&data);
    let failed = |error: String| {
        ApiError::internal("ERR_INVOKE_OUTPUT_BINDING", format!("error invoking output binding {name}: {error}"))
    };
    if operation.is_empty() {
        return failed("operation field is missing from request".to_owned()).into_response();
    }
    let Some(binding) = ctx.host.binding_for(&ctx.app_id, &name) else {
        return failed(format!("couldn't find output binding {name}")).into_response();
    };
    let operations = binding.operations();
    if !operations.contains(&operation.as_str()) {
        return failed(format!(
            "binding {name} does not support operation {operation}. supported operations:{}",
            operations.join(" ")
        ))
        .into_response();
    }
    let invoked = binding.invoke(&ctx.host.bindings_http, &operation, data.as_bytes(), &metadata).await;
    let mut response = match (&invoked.error, &invoked.output) {
        (Some(error), _) => failed(error.clone()).into_response(),
        (None, None) => StatusCode::NO_CONTENT.into_response(),
        (None, Some(output)) => {
            (StatusCode::OK, [(http::header::CONTENT_TYPE, "application/json")], output.data.clone()).into_response()
        }
    };
    if let Some(output) = &invoked.output {
        for (key, value) in &output.metadata {
            if let (Ok(k), Ok(v)) =
                (http::HeaderName::from_bytes(format!("metadata.{key}").as_bytes()), HeaderValue::from_str(value))
            {
                response.headers_mut().append(k, v);
            }
        }
    }
    response
}

// ------------------------------------------------------------------------------------------
// Pub/sub
// ------------------------------------------------------------------------------------------

async fn publish_without_topic(
    State(ctx): State<Ctx>,
    Path(pubsub): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> ApiError {
    let _ = ctx;
    topic_empty(&pubsub, &metadata_params(&query))
}

/// dapr/dapr `pkg/api/errors/pubsub.go`: a `ResourceInfo` of the pub/sub (unless `skip`) and an
/// `ErrorInfo` with `metadata`.
fn pubsub_error(
    status: StatusCode,
    code: &'static str,
    reason: &str,
    pubsub: &str,
    message: String,
    metadata: Value,
    skip_resource: bool,
) -> ApiError {
    let mut details = Vec::new();
    if !skip_resource {
        details.push(resource_info("pubsub", pubsub, &message));
    }
    details.push(error_info(reason, metadata));
    ApiError::new(status, code, message).with_details(details)
}

fn topic_empty(pubsub: &str, metadata: &BTreeMap<String, String>) -> ApiError {
    pubsub_error(
        StatusCode::NOT_FOUND,
        "ERR_TOPIC_NAME_EMPTY",
        "DAPR_PUBSUB_TOPIC_NAME_EMPTY",
        pubsub,
        format!("topic is empty in pubsub {pubsub}"),
        json!(metadata),
        false,
    )
}

fn publish_failed(pubsub: &str, topic: &str, error: &str) -> ApiError {
    pubsub_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ERR_PUBSUB_PUBLISH_MESSAGE",
        "DAPR_PUBSUB_PUBLISH_MESSAGE",
        pubsub,
        format!("error when publishing to topic {topic} in pubsub {pubsub}: {error}"),
        json!({"topic": topic, "error": error}),
        false,
    )
}

/// `POST /v1.0/publish/{pubsub}/{topic}`: 204 once the message is committed to the log.
async fn publish(
    State(ctx): State<Ctx>,
    Path((pubsub, topic)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let host = &ctx.host;
    let metadata = metadata_params(&query);
    // The order of dapr/dapr `validateAndGetPubsubAndTopic`.
    if !host.has_kind_for(&ctx.app_id, false) {
        return Err(pubsub_error(
            StatusCode::BAD_REQUEST,
            "ERR_PUBSUB_NOT_CONFIGURED",
            "DAPR_PUBSUB_NOT_CONFIGURED",
            &pubsub,
            format!("pubsub {pubsub} is not configured"),
            json!(metadata),
            true,
        ));
    }
    let Some(component) = host.pubsub_for(&ctx.app_id, &pubsub) else {
        return Err(pubsub_error(
            StatusCode::NOT_FOUND,
            "ERR_PUBSUB_NOT_FOUND",
            "DAPR_PUBSUB_NOT_FOUND",
            &pubsub,
            format!("pubsub {pubsub} is not found"),
            json!(metadata),
            true,
        ));
    };
    if topic.is_empty() {
        return Err(topic_empty(&pubsub, &metadata));
    }
    let raw = match metadata.get("rawPayload") {
        None => false,
        Some(v) => crate::fields::parse_go_bool(v).ok_or_else(|| {
            pubsub_error(
                StatusCode::BAD_REQUEST,
                "ERR_PUBSUB_REQUEST_METADATA",
                "DAPR_PUBSUB_METADATA_DESERIALIZATION",
                &pubsub,
                format!(
                    "failed deserializing metadata. Error: rawPayload value must be a valid boolean: actual is '{v}'"
                ),
                json!(metadata),
                false,
            )
        })?,
    };
    let content_type = header(&headers, "content-type");
    let (body, stored_type) = if raw {
        (body.to_vec(), content_type.map(str::to_owned))
    } else {
        // daprd without a tracing configuration starts no span of its own: the caller's trace
        // context goes into the envelope as it came, or nothing.
        let (traceparent, tracestate) =
            cloudevent::caller_trace(header(&headers, "traceparent"), header(&headers, "tracestate"));
        let ce = cloudevent::wrap(&cloudevent::Publish {
            source: &ctx.app_id,
            pubsub: &pubsub,
            topic: &topic,
            content_type,
            body: &body,
            metadata: &metadata,
            traceparent,
            tracestate,
        })
        .map_err(|e| {
            // `CloudEventCreation`: 500 with the gRPC code InvalidArgument.
            pubsub_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERR_PUBSUB_CLOUD_EVENTS_SER",
                "DAPR_PUBSUB_CLOUD_EVENT_CREATION",
                &pubsub,
                "cannot create cloudevent".to_owned(),
                json!({"appID": &*ctx.app_id, "error": e}),
                false,
            )
        })?;
        let bytes = serde_json::to_vec(&ce).map_err(|e| publish_failed(&pubsub, &topic, &e.to_string()))?;
        (bytes, Some(CLOUDEVENTS_CONTENT_TYPE.to_owned()))
    };
    let partition = match metadata.get("partitionNumber") {
        None => None,
        Some(n) => Some(n.trim().parse::<u32>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "ERR_PUBSUB_REQUEST_METADATA",
                format!("failed deserializing metadata: partitionNumber {n:?} is not a partition number"),
            )
        })?),
    };
    let message = NewMessage {
        cluster: component.cluster.clone(),
        topic: topic.clone(),
        partition,
        key: metadata.get("partitionKey").filter(|k| !k.is_empty()).cloned(),
        headers: metadata,
        content_type: stored_type,
        body,
    };
    if !component.allowed(&ctx.app_id, &topic, true) {
        let message = format!("topic {topic} is not allowed for app id {}", ctx.app_id);
        return Err(pubsub_error(
            StatusCode::FORBIDDEN,
            "ERR_PUBSUB_FORBIDDEN",
            "DAPR_PUBSUB_FORBIDDEN",
            &pubsub,
            message.clone(),
            json!({"topic": topic, "error": message}),
            false,
        ));
    }
    host.publish(vec![message]).await.map_err(|e| publish_failed(&pubsub, &topic, &e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------------------------------------
// State
// ------------------------------------------------------------------------------------------

/// Looks up a store for the app: 500 when the app has none at all, 400 when this one is unknown.
fn store<'a>(ctx: &'a Ctx, name: &str) -> Result<&'a crate::resources::StateComponent, ApiError> {
    // dapr/dapr `pkg/api/errors/state.go` `NotConfigured`, `NotFound`: no ResourceInfo.
    let app = json!({"appID": &*ctx.app_id});
    if !ctx.host.has_kind_for(&ctx.app_id, true) {
        return Err(ApiError::internal(
            "ERR_STATE_STORE_NOT_CONFIGURED",
            format!("state store {name} is not configured"),
        )
        .with_details(vec![error_info("DAPR_STATE_NOT_CONFIGURED", app)]));
    }
    ctx.host.state_store_for(&ctx.app_id, name).ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "ERR_STATE_STORE_NOT_FOUND", format!("state store {name} is not found"))
            .with_details(vec![error_info("DAPR_STATE_NOT_FOUND", app)])
    })
}

/// `InvalidKeyName`: the key as a field violation, the store, `DAPR_STATE_ILLEGAL_KEY`.
fn full_key(ctx: &Ctx, store_name: &str, prefix: &crate::resources::KeyPrefix, key: &str) -> Result<String, ApiError> {
    state::full_key(prefix, store_name, &ctx.app_id, key).map_err(|e| {
        let message = format!("api error: code = InvalidArgument desc = {e}");
        ApiError::malformed(message.clone()).with_details(vec![
            field_violation(key, &message),
            resource_info("state", store_name, ""),
            error_info("DAPR_STATE_ILLEGAL_KEY", Value::Null),
        ])
    })
}

/// `QueryFailed`: 500 for every query that fails, a body that does not parse included.
fn query_failed(store_name: &str, detail: impl std::fmt::Display) -> ApiError {
    ApiError::internal("ERR_STATE_QUERY", format!("state store {store_name} query failed: {detail}"))
        .with_details(vec![resource_info("state", store_name, ""), error_info("DAPR_STATE_QUERY_FAILED", Value::Null)])
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::malformed(format!("failed deserializing HTTP body: {e}")))
}

/// One state item of a save or a transaction upsert.
#[derive(Debug, Clone)]
struct Item {
    key: String,
    value: Value,
    etag: Option<String>,
    metadata: BTreeMap<String, String>,
    first_write: bool,
    content_type: Option<String>,
}

fn parse_item(v: &Value) -> Result<Item, String> {
    let Value::Object(m) = v else { return Err("a state item must be an object".to_owned()) };
    let key =
        m.get("key").and_then(Value::as_str).filter(|k| !k.is_empty()).ok_or("a state item needs a non-empty `key`")?;
    let etag = match m.get("etag") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err("`etag` must be a string".to_owned()),
    };
    let mut metadata = BTreeMap::new();
    if let Some(Value::Object(meta)) = m.get("metadata") {
        for (k, v) in meta {
            metadata
                .insert(k.clone(), crate::fields::scalar_string(v).ok_or(format!("metadata {k:?} must be a string"))?);
        }
    }
    let first_write = match m.get("options").and_then(|o| o.get("concurrency")).and_then(Value::as_str) {
        None | Some("") | Some("last-write") => false,
        Some("first-write") => true,
        Some(other) => return Err(format!("concurrency {other:?} must be first-write or last-write")),
    };
    let content_type = m.get("contentType").and_then(Value::as_str).map(str::to_owned);
    Ok(Item {
        key: key.to_owned(),
        value: m.get("value").cloned().unwrap_or(Value::Null),
        etag,
        metadata,
        first_write,
        content_type,
    })
}

/// `ttlInSeconds` as `state.postgresql` reads it: -1 (or absent) = no expiry.
fn ttl_of(metadata: &BTreeMap<String, String>) -> Result<Option<i64>, StateError> {
    match metadata.get("ttlInSeconds") {
        None => Ok(None),
        Some(v) => {
            let ttl: i64 = v
                .trim()
                .parse()
                .map_err(|_| StateError::Invalid(format!("error parsing TTL: {v:?} is not an integer")))?;
            if ttl < -1 {
                return Err(StateError::Invalid(format!("error parsing TTL: {ttl} is below -1")));
            }
            Ok((ttl > 0).then_some(ttl))
        }
    }
}

fn set_op(full: String, item: &Item) -> Result<Op, StateError> {
    Ok(Op::Set {
        key: full,
        value: item.value.to_string(),
        etag: item.etag.clone(),
        first_write: item.first_write,
        ttl_secs: ttl_of(&item.metadata)?,
    })
}

/// dapr/dapr `etagError`: mismatch 409, invalid 400, anything else 500.
fn save_error(code: &'static str, what: String, e: StateError) -> ApiError {
    let status = match e {
        StateError::Mismatch(_) => StatusCode::CONFLICT,
        StateError::InvalidEtag(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, code, format!("{what}: {e}"))
}

async fn get_state(
    State(ctx): State<Ctx>,
    Path((store_name, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let config = store(&ctx, &store_name)?;
    let full = full_key(&ctx, &store_name, &config.key_prefix, &key)?;
    let name = store_name.clone();
    let row =
        ctx.host.db.read(move |conn| -> Result<_, StateError> { Ok(state::get(conn, &name, &full)?) }).await.map_err(
            |e| ApiError::internal("ERR_STATE_GET", format!("fail to get {key} from state store {store_name}: {e}")),
        )?;
    let Some(row) = row else { return Ok(StatusCode::NO_CONTENT.into_response()) };
    let mut response = (StatusCode::OK, [(http::header::CONTENT_TYPE, "application/json")], row.value).into_response();
    if let Ok(v) = HeaderValue::from_str(&row.etag.to_string()) {
        response.headers_mut().insert(http::header::ETAG, v);
    }
    if let Some(expires) = row.expires_at.and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
        && let Ok(v) = HeaderValue::from_str(&expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    {
        response.headers_mut().insert("metadata.ttlexpiretime", v);
    }
    Ok(response)
}

async fn save_state(
    State(ctx): State<Ctx>,
    Path(store_name): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let config = store(&ctx, &store_name)?;
    let Value::Array(items) = parse_json(&body)? else {
        return Err(ApiError::malformed("failed deserializing HTTP body: expected a JSON array of state items"));
    };
    let what = format!("failed saving state in state store {store_name}");
    let mut ops = Vec::with_capacity(items.len());
    for item in &items {
        let item = parse_item(item).map_err(|e| ApiError::malformed(format!("failed deserializing HTTP body: {e}")))?;
        let full = full_key(&ctx, &store_name, &config.key_prefix, &item.key)?;
        ops.push(set_op(full, &item).map_err(|e| save_error("ERR_STATE_SAVE", what.clone(), e))?);
    }
    ctx.host.apply(&store_name, ops, Vec::new()).await.map_err(|e| save_error("ERR_STATE_SAVE", what, e))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_state(
    State(ctx): State<Ctx>,
    Path((store_name, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let config = store(&ctx, &store_name)?;
    let full = full_key(&ctx, &store_name, &config.key_prefix, &key)?;
    let etag = header(&headers, "if-match").map(|e| e.trim_matches('"').to_owned());
    let ops = vec![Op::Delete { key: full, etag }];
    ctx.host
        .apply(&store_name, ops, Vec::new())
        .await
        .map_err(|e| save_error("ERR_STATE_DELETE", format!("failed deleting state with key {key}"), e))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn bulk_get(State(ctx): State<Ctx>, Path(store_name): Path<String>, body: Bytes) -> Result<Response, ApiError> {
    let config = store(&ctx, &store_name)?;
    let request = parse_json(&body)?;
    let keys: Vec<String> = match request.get("keys") {
        Some(Value::Array(keys)) => keys.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect(),
        _ => return Err(ApiError::malformed("failed deserializing HTTP body: `keys` must be a list of strings")),
    };
    let mut pairs = Vec::with_capacity(keys.len());
    for key in keys {
        let full = full_key(&ctx, &store_name, &config.key_prefix, &key)?;
        pairs.push((key, full));
    }
    let name = store_name.clone();
    let rows = ctx
        .host
        .db
        .read(move |conn| -> Result<Vec<_>, StateError> {
            pairs.into_iter().map(|(key, full)| Ok((key, state::get(conn, &name, &full)?))).collect()
        })
        .await
        .map_err(|e| {
            ApiError::internal("ERR_STATE_BULK_GET", format!("failed getting state in bulk from {store_name}: {e}"))
        })?;
    let out: Vec<Value> = rows
        .into_iter()
        .map(|(key, row)| match row {
            Some(row) => {
                let data: Value = serde_json::from_str(&row.value).unwrap_or(Value::String(row.value));
                json!({"key": key, "data": data, "etag": row.etag.to_string()})
            }
            None => json!({"key": key}),
        })
        .collect();
    Ok(axum::Json(out).into_response())
}

/// `POST /v1.0/state/{store}/transaction`: every failure is a 500 (dapr/dapr
/// `onPostStateTransaction`), an ETag conflict included.
async fn transaction(
    State(ctx): State<Ctx>,
    Path(store_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let config = store(&ctx, &store_name)?;
    let request = parse_json(&body)?;
    let Some(Value::Array(operations)) = request.get("operations") else {
        return Err(ApiError::malformed("failed deserializing HTTP body: `operations` must be a list"));
    };
    let tx_error = |e: String| {
        ApiError::internal("ERR_STATE_TRANSACTION", format!("error while executing state transaction: {e}"))
    };
    let mut ops = Vec::new();
    let mut upserts = Vec::new();
    let mut projections = Vec::new();
    for op in operations {
        let kind = op.get("operation").and_then(Value::as_str).unwrap_or_default();
        let request = op.get("request").cloned().unwrap_or(Value::Null);
        match kind {
            "upsert" => {
                let item = parse_item(&request)
                    .map_err(|e| ApiError::malformed(format!("failed deserializing HTTP body: {e}")))?;
                let full = full_key(&ctx, &store_name, &config.key_prefix, &item.key)?;
                let entry = outbox::Upsert {
                    key: item.key.clone(),
                    value: item.value.clone(),
                    content_type: item.content_type.clone(),
                    metadata: item.metadata.clone(),
                };
                if config.outbox.is_some() && outbox::is_projection(&item.metadata) {
                    projections.push(entry);
                    continue;
                }
                ops.push(set_op(full, &item).map_err(|e| tx_error(e.to_string()))?);
                upserts.push(entry);
            }
            "delete" => {
                let key = request.get("key").and_then(Value::as_str).filter(|k| !k.is_empty()).ok_or_else(|| {
                    ApiError::malformed("failed deserializing HTTP body: a delete needs a non-empty `key`")
                })?;
                let etag = match request.get("etag") {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                };
                ops.push(Op::Delete { key: full_key(&ctx, &store_name, &config.key_prefix, key)?, etag });
            }
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "ERR_NOT_SUPPORTED_STATE_OPERATION",
                    format!("operation type {other} not supported"),
                ));
            }
        }
    }
    let messages = match &config.outbox {
        None => Vec::new(),
        Some(outbox_config) => {
            if ctx.host.pubsub_for(&ctx.app_id, &outbox_config.publish_pubsub).is_none() {
                return Err(tx_error(format!(
                    "outbox pubsub {} is not loaded for app {} (component scopes)",
                    outbox_config.publish_pubsub, ctx.app_id
                )));
            }
            // The internal message is published through the outbox pub/sub as the app loaded it
            // (daprd's publisher answers "not found" for one it did not load).
            let Some(internal) = ctx.host.pubsub_for(&ctx.app_id, &outbox_config.outbox_pubsub) else {
                return Err(tx_error(format!(
                    "outbox pubsub {} is not loaded for app {} (component scopes)",
                    outbox_config.outbox_pubsub, ctx.app_id
                )));
            };
            outbox::events(
                outbox_config,
                &internal.cluster,
                &ctx.app_id,
                header(&headers, "traceparent"),
                &upserts,
                &projections,
            )
            .map_err(|key| tx_error(format!("outbox projection for key {key} has no matching upsert")))?
        }
    };
    ctx.host.apply(&store_name, ops, messages).await.map_err(|e| tx_error(e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn query_state(
    State(ctx): State<Ctx>,
    Path(store_name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    store(&ctx, &store_name)?;
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| query_failed(&store_name, format!("failed to parse JSON query body: {e}")))?;
    let query = query::parse_query(&request)
        .map_err(|e| query_failed(&store_name, format!("failed to parse JSON query body: {e}")))?;
    query::check_query(&query).map_err(|e| query_failed(&store_name, e))?;
    let name = store_name.clone();
    let (hits, token) = ctx
        .host
        .db
        .call(move |inner| -> Result<_, StateError> { Ok(query::run(inner, &name, &query)?) })
        .await
        .map_err(|e| query_failed(&store_name, e))?;
    if hits.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    /// The wire shape of a result, serialised straight from the mirror's values (no copies).
    #[derive(serde::Serialize)]
    struct Hit<'a> {
        key: &'a str,
        data: &'a Value,
        etag: String,
    }
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        results: Vec<Hit<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    }
    let results = hits
        .iter()
        .map(|(key, data, etag)| Hit { key: state::original_key(key), data, etag: etag.to_string() })
        .collect();
    let body = Answer { results, token };
    Ok(axum::Json(body).into_response())
}

// ------------------------------------------------------------------------------------------
// Jobs
// ------------------------------------------------------------------------------------------

async fn schedule_job(State(ctx): State<Ctx>, Path(name): Path<String>, body: Bytes) -> Result<StatusCode, ApiError> {
    let scheduled = async {
        let (job, overwrite) = jobs::parse_request(&body, chrono::Utc::now())?;
        jobs::validate_name(&name)?;
        if jobs::schedule(&ctx.host, &ctx.app_id, &name, job, overwrite).await? {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "DAPR_SCHEDULER_SCHEDULE_JOB",
                format!("failed to schedule job due to: job {name} already exists (set overwrite to replace it)"),
            ))
        }
    };
    scheduled.await.map_err(|e| e.for_jobs(&ctx.app_id))
}

/// A missing job is a 500, as in Dapr (`SchedulerGetJob`).
async fn get_job(State(ctx): State<Ctx>, Path(name): Path<String>) -> Result<Response, ApiError> {
    match jobs::get(&ctx.host, &ctx.app_id, &name).await.map_err(|e| e.for_jobs(&ctx.app_id))? {
        // daprd stores a job without `data` with an empty Any, which protojson cannot encode.
        Some(job) if job.data.is_none() => {
            Err(ApiError::internal("ERR_INTERNAL", format!("failed to encode response as JSON: {}", jobs::NO_DATA)))
        }
        Some(job) => Ok(axum::Json(jobs::to_wire(&name, &job)).into_response()),
        None => Err(ApiError::internal(
            "DAPR_SCHEDULER_GET_JOB",
            format!("failed to get job due to: job not found: {name}"),
        )
        .for_jobs(&ctx.app_id)),
    }
}

async fn delete_job(State(ctx): State<Ctx>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    jobs::delete(&ctx.host, &ctx.app_id, &name).await.map_err(|e| e.for_jobs(&ctx.app_id))?;
    Ok(StatusCode::NO_CONTENT)
}
