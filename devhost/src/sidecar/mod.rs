//! The sidecar HTTP API, one server per app: what daprd serves on `DAPR_HTTP_PORT`.
//!
//! Status codes and body shapes follow dapr/dapr `pkg/api/http/http.go`, `jobs.go` and
//! `pkg/messages/errorcodes/errorcodes.go`; errors are `{"errorCode": "ERR_...", "message": ...}`,
//! plus the `details` (google.rpc `ErrorInfo`, `ResourceInfo`, `BadRequest`) where daprd builds
//! the error with dapr/kit's error builder (`pkg/api/errors/*.go`): unknown stores and pub/subs,
//! illegal keys, publish and query failures, every Jobs API error. The output bindings
//! themselves are in [`crate::bindings`]. Checked against a real daprd by
//! `system-tests/tests/conformance/`.
//! Components are visible only to the app-ids in their `scopes`, as if the component were not
//! loaded for other apps. With `DAPR_API_TOKEN` set, every call but `GET /v1.0/healthz` and
//! `GET /v1.0/healthz/outbound` needs the header `dapr-api-token`, and a call without it gets
//! Go's `http.Error`: 401 with the plain text `invalid api token` (dapr/dapr
//! `pkg/api/http/middlewares.go`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tracing::debug;

use crate::host::Host;

mod bindings;
mod invoke;
mod jobs;
mod metadata;
mod publish;
mod secrets;
mod shutdown;
mod state;

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

    pub(super) fn malformed(message: impl Into<String>) -> Self {
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
    pub(super) host: Arc<Host>,
    pub(super) app_id: Arc<str>,
}

/// The API router of one app's sidecar.
pub fn router(host: Arc<Host>, app_id: &str) -> Router {
    let ctx = Ctx { host, app_id: app_id.into() };
    let jobs_routes = || get(jobs::get_job).post(jobs::schedule_job).delete(jobs::delete_job);
    Router::new()
        .route("/v1.0/healthz", get(healthz))
        .route("/v1.0/healthz/outbound", get(healthz))
        .route("/v1.0/metadata", get(metadata::metadata))
        .route("/v1.0/metadata/{key}", axum::routing::put(metadata::put_metadata))
        .route("/v1.0/shutdown", post(shutdown::shutdown))
        .route("/v1.0/secrets/{store}/bulk", get(secrets::bulk_secrets))
        .route("/v1.0/secrets/{store}/{key}", get(secrets::get_secret))
        .route("/v1.0/invoke/{*rest}", axum::routing::any(invoke::invoke))
        .route("/v1.0/publish/{pubsub}", post(publish::publish_without_topic))
        .route("/v1.0/publish/{pubsub}/{*topic}", post(publish::publish))
        .route("/v1.0-alpha1/publish/bulk/{pubsub}/{*topic}", post(publish::bulk_publish).put(publish::bulk_publish))
        .route("/v1.0/publish/bulk/{pubsub}/{*topic}", post(publish::bulk_publish).put(publish::bulk_publish))
        .route("/v1.0/state/{store}", post(state::save_state).put(state::save_state))
        .route("/v1.0/state/{store}/bulk", post(state::bulk_get).put(state::bulk_get))
        .route("/v1.0/state/{store}/transaction", post(state::transaction).put(state::transaction))
        .route("/v1.0/state/{store}/{key}", get(state::get_state).delete(state::delete_state))
        .route("/v1.0-alpha1/state/{store}/query", post(state::query_state).put(state::query_state))
        .route("/v1.0/bindings/{name}", post(bindings::invoke_binding).put(bindings::invoke_binding))
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

async fn not_emulated(State(ctx): State<Ctx>, request: Request) -> Response {
    // daprd's invocation route is its fallback: any other path with `dapr-app-id` is one.
    if invoke::is_invocation(request.headers()) {
        return invoke::invoke(State(ctx), request).await.into_response();
    }
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let message = match dapr_api(&path) {
        Some(api) => format!(
            "devhost does not emulate Dapr's {api} ({method} {path}): run this app on daprd for it; devhost's \
             documentation lists what it emulates"
        ),
        None => format!("devhost does not emulate {method} {path} (see devhost's documentation for the API subset)"),
    };
    ApiError::new(StatusCode::NOT_FOUND, "ERR_DEVHOST_NOT_EMULATED", message).into_response()
}

/// The Dapr API a path belongs to, for the APIs daprd serves and devhost does not, so that the
/// answer names what is missing rather than only the path (dapr/dapr v1.18.2
/// `pkg/api/http/http.go` route tables).
fn dapr_api(path: &str) -> Option<&'static str> {
    let mut segments = path.trim_start_matches('/').splitn(3, '/');
    let (version, area) = (segments.next()?, segments.next()?);
    if !version.starts_with("v1.0") {
        return None;
    }
    Some(match area {
        "actors" => "actors API",
        "workflows" => "workflow API",
        "configuration" => "configuration API",
        "lock" | "unlock" => "distributed lock API",
        "crypto" => "cryptography API",
        "conversation" => "conversation API",
        "subscribe" => "streaming subscriptions",
        _ => return None,
    })
}

/// `metadata.<key>=<value>` query parameters, prefix removed; of a repeated key the first
/// (dapr/dapr `pkg/api/http/http.go` `getMetadataFromRequest`: `value[0]`).
pub(super) fn metadata_params(query: &[(String, String)]) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::new();
    for (k, v) in query {
        if let Some(k) = k.strip_prefix("metadata.") {
            metadata.entry(k.to_owned()).or_insert_with(|| v.clone());
        }
    }
    metadata
}

pub(super) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::dapr_api;

    #[test]
    fn an_api_devhost_lacks_is_named() {
        assert_eq!(dapr_api("/v1.0/actors/Cart/1/method/add"), Some("actors API"));
        assert_eq!(dapr_api("/v1.0-beta1/workflows/dapr/order/start"), Some("workflow API"));
        assert_eq!(dapr_api("/v1.0-alpha1/configuration/config"), Some("configuration API"));
        assert_eq!(dapr_api("/v1.0-alpha1/unlock/store"), Some("distributed lock API"));
        assert_eq!(dapr_api("/v1.0-alpha1/crypto/vault/encrypt"), Some("cryptography API"));
        assert_eq!(dapr_api("/v1.0-alpha2/conversation/llm/converse"), Some("conversation API"));
        assert_eq!(dapr_api("/v1.0-alpha1/subscribe"), Some("streaming subscriptions"));
        // Emulated APIs reach their own handlers; a path of theirs that lands here is unknown.
        assert_eq!(dapr_api("/v1.0/state/store/a/b/c"), None);
        assert_eq!(dapr_api("/v2.0/actors/x"), None);
        assert_eq!(dapr_api("/"), None);
    }
}
