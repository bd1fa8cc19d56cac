//! `POST /v1/tasks`: creates a task owned by the caller.
//!
//! With an `Idempotency-Key`, the task id is derived from (caller, key), so a client that
//! retries after a lost response gets the same task back (200) instead of a duplicate (201).
//! The replay is answered from a read, without a write: a write that fails by design would
//! count toward the state store's circuit breaker in Dapr (docs/dapr-contract.md,
//! "Resiliency"). The write stays insert-if-absent, so two concurrent retries that both read
//! "absent" still create one task. Keys are per caller by construction; another user's key can
//! never reach this caller's task.
//!
//! A key names one request, not one task id: reused with a different body it answers 422, as
//! the IETF Idempotency-Key draft (draft-ietf-httpapi-idempotency-key-header) and Stripe do,
//! rather than handing back a task the client did not ask for. The comparison is against a
//! digest of the original request kept on the task ([`request_digest`]), never against the
//! task's current fields, which a PATCH may have changed since. Tasks stored before the digest
//! was kept have none and are replayed as before.
//!
//! A reminder that would already have fired is refused (422, field `reminder`): it could only
//! ever be "missed". A due time in the past is fine (an overdue task), and so is an absolute
//! reminder after the due time; see `todo_core::validate::check_reminder_not_past`. A
//! replay of a key is answered even when its reminder has passed since the first request.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use todo_core::events::task_id_for_request;
use todo_core::task::Task;
use todo_core::validate::{self, NewTask};
use todo_store::{Created, IdOrigin};
use tracing::info;
use uuid::Uuid;

use crate::app::App;
use crate::auth::User;
use crate::body;
use crate::error::ApiError;
use crate::routes::{location, task_response};

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Longest key accepted (IETF draft-ietf-httpapi-idempotency-key-header suggests UUIDs; this
/// leaves room for any client's scheme).
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

pub async fn handler(
    State(app): State<App>,
    user: User,
    headers: HeaderMap,
    payload: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    body::require_media_type(&headers, &[body::JSON])?;
    let key = idempotency_key(&headers)?;
    let bytes = body::bytes(payload)?;
    let input: NewTask = validate::parse_json(&bytes)?;
    let digest = key.as_ref().map(|_| request_digest(&bytes));
    let (id, origin) = match &key {
        Some(key) => (task_id_for_request(&user.id, key), IdOrigin::Derived),
        None => (Uuid::new_v4(), IdOrigin::Random),
    };
    let now = app.clock.now();
    let mut task = validate::new_task(id, &user.id, input, None, now)?;
    task.request_digest = digest;

    if let Err(past) = validate::check_reminder_not_past(&task, None, now) {
        // A retry of a request that was accepted while its reminder was still ahead gets
        // its task back; anything else is refused.
        if key.is_some()
            && let Some(existing) = app.store.get(id).await?
        {
            let task = replay(existing.value, &task, &user.id)?;
            return Ok(created(StatusCode::OK, &task));
        }
        return Err(ApiError::unprocessable(past));
    }

    let (status, task) = match app.store.create(&task, origin).await? {
        Created::Inserted => {
            info!(task_id = %id, idempotent = key.is_some(), "task created");
            (StatusCode::CREATED, task)
        }
        Created::Existing(existing) => {
            if key.is_none() {
                // A random id collided (astronomically unlikely): never reveal or return it.
                return Err(ApiError::Conflict { field: None, message: "a task with this id already exists".into() });
            }
            (StatusCode::OK, replay(existing.value, &task, &user.id)?)
        }
    };
    Ok(created(status, &task))
}

/// The answer of a create: the task, and where it lives.
fn created(status: StatusCode, task: &Task) -> Response {
    let mut response = task_response(status, task);
    response.headers_mut().insert(header::LOCATION, location(task.id));
    response
}

/// The answer to an `Idempotency-Key` that already made `existing`, for the request that would
/// have made `asked`: the existing task if it is the caller's and the request is the same.
fn replay(existing: Task, asked: &Task, user: &str) -> Result<Task, ApiError> {
    if existing.owner != user {
        // Ids derive from (caller, key); another owner means a collision: never reveal it.
        return Err(ApiError::Conflict { field: None, message: "a task with this id already exists".into() });
    }
    if let (Some(original), Some(this)) = (&existing.request_digest, &asked.request_digest)
        && original != this
    {
        return Err(ApiError::Unprocessable {
            field: Some("Idempotency-Key".into()),
            message: "this Idempotency-Key was already used with a different request body; send the original \
                      body to get its task back, or use a new key for a new task"
                .into(),
        });
    }
    if existing.is_deleted() {
        return Err(ApiError::Conflict {
            field: Some("Idempotency-Key".into()),
            message: "this Idempotency-Key created a task that has since been deleted; use a new key".into(),
        });
    }
    info!(task_id = %existing.id, "idempotent replay: returning the existing task");
    Ok(existing)
}

/// What makes two requests under one key "the same": the body as JSON, written back in
/// serde_json's canonical form (members sorted, no whitespace, numbers as parsed), hashed with
/// SHA-256. So a client that re-serialises its request with other member order or spacing on
/// retry still gets its task, while any change of content is caught. Only called on a body
/// that `parse_json` accepted; were it not JSON, its raw bytes are hashed.
pub fn request_digest(body: &[u8]) -> String {
    use base64::Engine as _;
    let canonical = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| serde_json::to_vec(&value).ok())
        .unwrap_or_else(|| body.to_vec());
    let digest = ring::digest::digest(&ring::digest::SHA256, &canonical);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// The `Idempotency-Key` header, if any: 1 to 255 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            "Idempotency-Key",
            format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters"),
        )
    };
    let key = value.to_str().map_err(|_| bad())?.trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_CHARS || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(key.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use axum::http::HeaderValue;

    fn key(value: &str) -> Result<Option<String>, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_str(value).unwrap());
        idempotency_key(&headers)
    }

    #[test]
    fn the_digest_ignores_member_order_and_spacing_not_content() {
        let a = request_digest(br#"{"title":"Pay rent","priority":"medium","tags":[]}"#);
        let b = request_digest(b"{ \"tags\": [],\n  \"priority\": \"medium\", \"title\": \"Pay rent\" }");
        assert_eq!(a, b);
        assert_eq!(a.len(), 43, "SHA-256 in unpadded base64url");
        assert_ne!(a, request_digest(br#"{"title":"Pay rent","priority":"high","tags":[]}"#));
        assert_ne!(a, request_digest(br#"{"title":"Pay the rent","priority":"medium","tags":[]}"#));
    }

    #[test]
    fn keys() {
        assert_eq!(idempotency_key(&HeaderMap::new()).unwrap(), None);
        assert_eq!(key(" 8e0f-req-1 ").unwrap().as_deref(), Some("8e0f-req-1"));
        for bad in ["", "   ", "has space", &"k".repeat(256)] {
            assert!(matches!(key(bad), Err(ApiError::BadRequest { .. })), "{bad:?}");
        }
    }
}
