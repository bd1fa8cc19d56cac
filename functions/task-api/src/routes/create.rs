//! `POST /v1/tasks`: creates a task owned by the caller.
//!
//! With an `Idempotency-Key`, the task id is derived from (caller, key), so a client that
//! retries after a lost response gets the same task back (200) instead of a duplicate (201).
//! The replay is answered from a read, without a write: a write that fails by design would
//! count toward the state store's circuit breaker in Dapr (docs/dapr-contract.md,
//! "Resiliency"). The write stays insert-if-absent, so two concurrent retries that both read
//! "absent" still create one task. Keys are per caller by construction; another user's key can
//! never reach this caller's task.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use shared::domain::validate::{self, NewTask};
use shared::events::task_id_for_request;
use shared::tasks::{Created, IdOrigin};
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
    let input: NewTask = validate::parse_json(&body::bytes(payload)?)?;
    let (id, origin) = match &key {
        Some(key) => (task_id_for_request(&user.id, key), IdOrigin::Derived),
        None => (Uuid::new_v4(), IdOrigin::Random),
    };
    let task = validate::new_task(id, &user.id, input, None, app.clock.now())?;

    let (status, task) = match app.store.create(&task, origin).await? {
        Created::Inserted => {
            info!(task_id = %id, idempotent = key.is_some(), "task created");
            (StatusCode::CREATED, task)
        }
        Created::Existing(existing) => {
            let existing = existing.value;
            if existing.owner != user.id || key.is_none() {
                // A random id collided (astronomically unlikely): never reveal or return it.
                return Err(ApiError::Conflict { field: None, message: "a task with this id already exists".into() });
            }
            if existing.is_deleted() {
                return Err(ApiError::Conflict {
                    field: Some("Idempotency-Key".into()),
                    message: "this Idempotency-Key created a task that has since been deleted; use a new key".into(),
                });
            }
            info!(task_id = %id, "idempotent replay: returning the existing task");
            (StatusCode::OK, existing)
        }
    };
    let mut response = task_response(status, &task);
    response.headers_mut().insert(header::LOCATION, location(task.id));
    Ok(response)
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
    fn keys() {
        assert_eq!(idempotency_key(&HeaderMap::new()).unwrap(), None);
        assert_eq!(key(" 8e0f-req-1 ").unwrap().as_deref(), Some("8e0f-req-1"));
        for bad in ["", "   ", "has space", &"k".repeat(256)] {
            assert!(matches!(key(bad), Err(ApiError::BadRequest { .. })), "{bad:?}");
        }
    }
}
