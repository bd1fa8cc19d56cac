//! `PATCH /v1/tasks/{id}`: a JSON merge patch (RFC 7396) of the caller's task.
//!
//! The patch is parsed before the task is read, so a malformed one touches nothing. A patch
//! that changes nothing answers 200 with the task and writes nothing (no version bump, no
//! `todo.task.updated` for consumers to process). `If-Match: "<version>"` makes the change
//! conditional; without it, a concurrent change is merged by re-applying the patch.
//!
//! Objects merge recursively (RFC 7396; see [`TaskPatch`]). A body that is not a merge patch of
//! a task (not JSON, an unknown member, a wrong type) is 400; a well-formed patch whose merged
//! result breaks a rule of the task (an empty title, a reminder with both kinds, a mode without
//! a rule, a reminder that would fire in the past) is 422 naming the field (RFC 5789 §2.2).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use todo_core::events::TaskChange;
use todo_core::validate::{self, TaskPatch};

use crate::access::modify;
use crate::app::App;
use crate::auth::User;
use crate::body;
use crate::error::ApiError;
use crate::precondition::Precondition;
use crate::routes::{task_id, task_response};

pub async fn handler(
    State(app): State<App>,
    user: User,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    payload: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = task_id(path)?;
    body::require_media_type(&headers, &[body::JSON, body::MERGE_PATCH_JSON])?;
    let precondition = Precondition::from_headers(&headers)?;
    let bytes = body::bytes(payload)?;
    let patch: TaskPatch = validate::parse_json(&bytes)?;
    let outcome = modify(&app, &user, id, &precondition, TaskChange::Updated, |task, now| {
        validate::apply_patch(task, patch.clone(), now).map_err(ApiError::unprocessable)
    })
    .await?;
    Ok(task_response(StatusCode::OK, outcome.task()))
}
