//! Every failure as `{"error": "<message>", "field": "<field>"}` with the status a client can act
//! on.
//!
//! Handlers return `Result<_, ApiError>` and never build error responses by hand, so the shape is
//! the same everywhere, including for axum's own rejections (body too large, bad path) which
//! would otherwise answer in plain text. Internal details (sidecar messages, store keys) are
//! logged here, once, with the request's span, and never sent to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dapr_fn::dapr::DaprError;
use serde::Serialize;
use todo_core::validate::ValidationError;
use todo_store::WriteError;

use crate::rate_limit::{self, Quota};

/// Seconds a client is told to wait when the sidecar or the store is unavailable. Short: the
/// common cause is a sidecar restart or a store failover, both over in seconds.
pub const RETRY_AFTER_SECS: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed; `field` names the body field, query parameter or header.
    #[error("{message}")]
    BadRequest { field: Option<String>, message: String },

    /// 401: no usable bearer token. The message is for the client; the token itself is never
    /// echoed or logged. `invalid_token` is false when no credentials were sent at all.
    #[error("{message}")]
    Unauthorized { message: String, invalid_token: bool },

    /// 404: no such task *for this caller* (another user's task is indistinguishable from a
    /// missing one, so ids cannot be probed).
    #[error("task not found")]
    NotFound,

    /// 404 from `GET /v1/tasks/{id}/reminder`: the task is the caller's, but it has no
    /// reminder and never had one. Not "task not found": the task is there, and a client that
    /// took this for a missing task would drop it from its view.
    #[error("this task has no reminder")]
    NoReminder,

    /// 404 for a path no route serves.
    #[error("no such route")]
    NoRoute,

    /// 405: the path exists, the method does not (axum adds the `Allow` header).
    #[error("method not allowed")]
    MethodNotAllowed,

    /// 409: the write kept conflicting with concurrent writers, or the request contradicts the
    /// stored state.
    #[error("{message}")]
    Conflict { field: Option<String>, message: String },

    /// 422: the request is well-formed but cannot be applied: a merge patch whose result is not
    /// a valid task (RFC 5789 §2.2), a reminder already in the past, an `Idempotency-Key`
    /// reused with another body (draft-ietf-httpapi-idempotency-key-header).
    #[error("{message}")]
    Unprocessable { field: Option<String>, message: String },

    /// 412: `If-Match` names a version that is no longer current, or only weak tags (`W/"3"`),
    /// which never match (RFC 9110 §13.1.1); `weak` is the first of those, to say so.
    /// `empty`: the header named no tag at all (an empty list, which matches nothing).
    #[error("{}", precondition_failed(*current, *weak, *empty))]
    PreconditionFailed { current: u64, weak: Option<u64>, empty: bool },

    /// 413: the body is larger than `MAX_BODY_BYTES`.
    #[error("request body too large")]
    PayloadTooLarge,

    /// 415: the body is not in a media type this endpoint reads.
    #[error("unsupported content type: expected {expected}")]
    UnsupportedMediaType { expected: &'static str },

    /// 429: the caller used up their rate limit ([`crate::rate_limit`]).
    #[error(
        "too many requests: at most {} per minute per user; try again in {retry_after_secs} s",
        quota.limit
    )]
    RateLimited { quota: Quota, retry_after_secs: u64 },

    /// 429 (one user's cap) or 503 (the replica's cap, or shutting down): a live stream
    /// (`GET /v1/events`) cannot be opened now.
    #[error("{message}")]
    TooManyStreams { message: String, per_user: bool },

    /// 503: the sidecar or the store is unavailable; retrying later can succeed.
    #[error("the task store is temporarily unavailable")]
    Unavailable(#[source] DaprError),

    /// 503: the token names a key of the identity provider (`JWT_JWKS_URL`) that cannot be
    /// fetched now. Not 401: the token may be valid, and the client should retry it, not
    /// discard it. The reason (for the log) never reaches the client.
    #[error("cannot check the token now: the identity provider's signing keys are unavailable; try again later")]
    AuthUnavailable(String),

    /// 500: a bug or an unexpected answer. Logged with its context, answered generically.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The 412 message: a weak tag is no stale copy, so "the task was changed" would mislead.
fn precondition_failed(current: u64, weak: Option<u64>, empty: bool) -> String {
    if empty {
        return format!(
            "If-Match is empty, so it names no version and never matches: send the task's ETag, like \"{current}\", \
             or * to require only that the task exists"
        );
    }
    match weak {
        Some(version) => format!(
            "If-Match: weak entity tags such as W/\"{version}\" are not accepted, because a write needs the exact \
             version: send the task's ETag as task-api gave it, like \"{version}\" (a proxy that compresses \
             responses may have weakened it), or * to require only that the task exists; its current version \
             is {current}"
        ),
        None => format!("the task was changed: its current version is {current}"),
    }
}

impl ApiError {
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        Self::BadRequest { field: Some(field.to_owned()), message: message.into() }
    }

    /// A token was presented but cannot be accepted (malformed, bad signature, expired, ...).
    pub fn invalid_token(reason: impl Into<String>) -> Self {
        Self::Unauthorized { message: reason.into(), invalid_token: true }
    }

    /// No credentials at all.
    pub fn missing_token() -> Self {
        Self::Unauthorized { message: "missing bearer token".into(), invalid_token: false }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::NotFound | Self::NoReminder | Self::NoRoute => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } | Self::TooManyStreams { per_user: true, .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::AuthUnavailable(_) | Self::TooManyStreams { per_user: false, .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            Self::BadRequest { field, .. } | Self::Conflict { field, .. } | Self::Unprocessable { field, .. } => {
                field.as_deref()
            }
            Self::PreconditionFailed { .. } => Some("If-Match"),
            Self::NoReminder => Some("reminder"),
            Self::UnsupportedMediaType { .. } => Some("Content-Type"),
            Self::Unauthorized { .. } | Self::AuthUnavailable(_) => Some("Authorization"),
            _ => None,
        }
    }
}

/// The wire shape of every error.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Error))]
pub struct ErrorBody<'a> {
    /// What went wrong, for people.
    pub error: String,
    /// The offending body field (a JSON path such as `reminder.before_due_seconds`), query
    /// parameter or header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Internal(error) => tracing::error!(error = format!("{error:#}"), "request failed"),
            Self::Unavailable(error) => tracing::warn!(error = %error, "task store unavailable"),
            Self::AuthUnavailable(reason) => tracing::warn!(%reason, "cannot verify the token: JWKS unavailable"),
            Self::Unauthorized { message, .. } => {
                tracing::info!(reason = %message, "rejected the request: not authenticated")
            }
            _ => {}
        }
        let body = ErrorBody { error: self.to_string(), field: self.field() };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized { invalid_token, .. } => {
                // RFC 6750 §3: a 401 names the scheme; `invalid_token` tells a client to get a
                // new token rather than retry the same one, and is left out when none was sent.
                let challenge = if *invalid_token {
                    r#"Bearer realm="task-api", error="invalid_token""#
                } else {
                    r#"Bearer realm="task-api""#
                };
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            }
            Self::Unavailable(_) | Self::AuthUnavailable(_) | Self::TooManyStreams { per_user: false, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            Self::RateLimited { quota, retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
                rate_limit::insert_fields(headers, quota);
            }
            _ => {}
        }
        response
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        // `parse_json` names no field (or `?`, serde_path_to_error's unknown position) for a body
        // that is not JSON at all; then the body is the field, and its message says so itself.
        // Any other message starts with the field it is about ("due: must be RFC 3339 ..."),
        // so that the `error` text alone, as a person reads it in a log or a terminal, is whole.
        match error.field.as_str() {
            "" | "." | "?" => Self::BadRequest { field: Some("body".to_owned()), message: error.message },
            _ => Self::BadRequest { message: format!("{}: {}", error.field, error.message), field: Some(error.field) },
        }
    }
}

impl ApiError {
    /// A 422 from a rule the well-formed request breaks, naming its field.
    pub fn unprocessable(error: ValidationError) -> Self {
        Self::Unprocessable { field: Some(error.field), message: error.message }
    }
}

impl From<DaprError> for ApiError {
    fn from(error: DaprError) -> Self {
        if error.is_transient() { Self::Unavailable(error) } else { Self::Internal(error.into()) }
    }
}

impl From<WriteError> for ApiError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Conflict => {
                Self::Conflict { field: None, message: "the task is being changed concurrently; try again".into() }
            }
            WriteError::Dapr(error) => error.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use axum::body::to_bytes;
    use serde_json::{Value, json};

    async fn render(error: ApiError) -> (StatusCode, axum::http::HeaderMap, Value) {
        let response = error.into_response();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, headers, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn validation_errors_name_the_field() {
        let (status, _, body) = render(ValidationError::new("title", "must not be empty").into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, json!({"error": "title: must not be empty", "field": "title"}));
        let (_, _, body) = render(ValidationError::new("", "the body is not valid JSON").into()).await;
        assert_eq!(body, json!({"error": "the body is not valid JSON", "field": "body"}));
    }

    #[tokio::test]
    async fn unauthorized_carries_the_bearer_challenge() {
        let (status, headers, body) = render(ApiError::invalid_token("token expired")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[header::WWW_AUTHENTICATE], r#"Bearer realm="task-api", error="invalid_token""#);
        assert_eq!(body["error"], "token expired");
        let (_, headers, _) = render(ApiError::missing_token()).await;
        assert_eq!(headers[header::WWW_AUTHENTICATE], r#"Bearer realm="task-api""#);
    }

    #[tokio::test]
    async fn not_found_has_no_field() {
        let (status, _, body) = render(ApiError::NotFound).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, json!({"error": "task not found"}));
    }

    #[tokio::test]
    async fn a_task_without_a_reminder_is_not_a_missing_task() {
        let (status, _, body) = render(ApiError::NoReminder).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, json!({"error": "this task has no reminder", "field": "reminder"}));
    }

    #[tokio::test]
    async fn transient_sidecar_errors_are_503_with_retry_after_and_no_detail() {
        let error = DaprError::TransactionFailed { store: "tasks".into(), message: "pq: secret detail".into() };
        let (status, headers, body) = render(error.into()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::RETRY_AFTER], "2");
        assert!(!body.to_string().contains("secret detail"), "{body}");
    }

    #[tokio::test]
    async fn other_sidecar_errors_are_500_without_detail() {
        let error = DaprError::Decode { what: "get state tasks/task:1".into(), detail: "bad json".into() };
        let (status, _, body) = render(error.into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, json!({"error": "internal error"}));
    }
}
