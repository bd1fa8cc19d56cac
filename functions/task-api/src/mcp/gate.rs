//! What every `/mcp` request passes before rmcp sees it, in the REST routes' order: the caller
//! first (401 before anything else), then the session's owner, then the body.
//!
//! - **The token**: the [`User`] extractor of the REST routes (same verification, same rate
//!   limit: one `/mcp` request counts once). Refused, the answer is the REST error with a
//!   `WWW-Authenticate` challenge that also names the protected-resource metadata
//!   (`resource_metadata`, RFC 9728 §5.1), which is how the MCP authorization spec lets a client
//!   discover where to get a token.
//! - **The session**: a `Mcp-Session-Id` opened by another user is answered 404 ([`Sessions`]).
//! - **The body**: read here, within the `MAX_BODY_BYTES` limit the runtime sets on every public
//!   route (`DefaultBodyLimit`), so an oversized message is refused with 413 after at most that
//!   many bytes and before any JSON is parsed. rmcp then gets the bytes whole.
//! - **Malformed JSON-RPC**: rmcp answers a body it cannot read as a JSON-RPC message with 415
//!   and a line of text, as if the media type were wrong. A client (and an agent reading its
//!   error) is told what JSON-RPC says instead: 400 with a JSON-RPC error response, `-32700`
//!   (parse error, where the JSON is) or `-32600` (invalid request: JSON, but not a message of
//!   MCP), and no `id` (the Streamable HTTP transport's answer to input it cannot accept).
//!
//! `Host` and `Origin` are checked by rmcp itself (`allowed_hosts`, `allowed_origins`).

use std::sync::Arc;

use axum::RequestExt as _;
use axum::body::Body;
use axum::extract::{FromRequestParts as _, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Settings;
use super::metadata;
use super::sessions::Sessions;
use crate::app::App;
use crate::auth::User;
use crate::error::ApiError;

/// The header of the session id (legacy session mode).
pub const SESSION_ID: &str = "mcp-session-id";

/// What the gate needs: the app (for the [`User`] extractor), the settings (for the challenge),
/// and the session owners.
#[derive(Debug)]
pub struct Gate {
    pub app: App,
    pub settings: Arc<Settings>,
    pub sessions: Arc<Sessions>,
}

/// The middleware around rmcp's service.
pub async fn check(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let user = match User::from_request_parts(&mut parts, &gate.app).await {
        Ok(user) => user,
        Err(error) => return challenge(error, &gate.settings, &parts.headers),
    };
    let session = parts.headers.get(SESSION_ID).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(id) = &session
        && !gate.sessions.belongs_to(id, &user.id)
    {
        return session_not_found();
    }
    let method = parts.method.clone();
    let (parts, body) = Request::from_parts(parts, body).with_limited_body().into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(error) if too_large(&error) => return ApiError::PayloadTooLarge.into_response(),
        Err(_) => return ApiError::bad_request("body", "the request body could not be read").into_response(),
    };
    let json_body = method == Method::POST && is_json(&parts.headers);
    let response = next.run(Request::from_parts(parts, Body::from(bytes.clone()))).await;
    if json_body && response.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return malformed(&bytes, response).await;
    }
    match (&session, response.headers().get(SESSION_ID).and_then(|v| v.to_str().ok())) {
        // `initialize` opened a session: it is this user's.
        (None, Some(opened)) if response.status().is_success() => gate.sessions.bind(opened, &user.id).await,
        // Ended by the client, or unknown to rmcp (expired): forget it.
        (Some(id), _) if method == Method::DELETE && response.status().is_success() => gate.sessions.forget(id),
        (Some(id), _) if response.status() == StatusCode::NOT_FOUND => gate.sessions.forget(id),
        _ => {}
    }
    response
}

/// The REST error for a refused token, with the MCP authorization spec's challenge: RFC 6750's
/// `Bearer` with `resource_metadata` (RFC 9728 §5.1), and `error="invalid_token"` when a token
/// was sent but cannot be accepted. Other refusals (429, 503) are answered as REST answers them.
pub fn challenge(error: ApiError, settings: &Settings, headers: &HeaderMap) -> Response {
    let invalid_token = match &error {
        ApiError::Unauthorized { invalid_token, .. } => Some(*invalid_token),
        _ => None,
    };
    let mut response = error.into_response();
    if let Some(invalid_token) = invalid_token
        && let Some(url) = metadata::metadata_url(settings, headers)
    {
        let error = if invalid_token { r#", error="invalid_token""# } else { "" };
        let value = format!(r#"Bearer realm="task-api", resource_metadata="{url}"{error}"#);
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response
}

/// What rmcp answers for a session it does not know, so that a session of another user is
/// indistinguishable from none: 404 rather than 403, as the REST API answers another user's
/// task. A 403 would confirm to whoever holds a leaked session id that it is live, and the MCP
/// transport spec tells a client that gets 404 to start a new session, which is the right thing
/// for a client that presents a token of another user.
fn session_not_found() -> Response {
    (StatusCode::NOT_FOUND, axum::Json(json!({"error": "session not found", "field": "Mcp-Session-Id"})))
        .into_response()
}

/// Whether the request says its body is JSON, as rmcp checks it before reading the body: only
/// then is its 415 about the body rather than the media type.
fn is_json(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|value| {
        let essence = value.split_once(';').map_or(value, |(essence, _)| essence);
        essence.trim().eq_ignore_ascii_case("application/json")
    })
}

/// The JSON-RPC error for a body rmcp could not read as a message: a parse error with serde's
/// line and column, or an invalid request with rmcp's reason.
async fn malformed(body: &[u8], refused: Response) -> Response {
    let (code, message) = match serde_json::from_slice::<serde_json::Value>(body) {
        Err(error) => (-32700, format!("Parse error: the body is not JSON: {error}")),
        Ok(_) => {
            let reason = axum::body::to_bytes(refused.into_body(), 4096).await.unwrap_or_default();
            let reason = String::from_utf8_lossy(&reason);
            let reason = reason.trim().trim_start_matches("fail to deserialize request body").trim();
            (
                -32600,
                format!(
                    "Invalid Request: not a JSON-RPC 2.0 message of MCP (\"jsonrpc\": \"2.0\", an \"id\" for a \
                     request, a \"method\" and its \"params\"): {reason}"
                ),
            )
        }
    };
    let error = json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}});
    (StatusCode::BAD_REQUEST, axum::Json(error)).into_response()
}

/// Whether reading the body failed because it exceeded the limit.
fn too_large(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if error.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = error.source();
    }
    false
}
