//! `DELETE /v1/tasks/{id}`: soft delete. The task becomes a tombstone (`deleted_at` set, version
//! bumped) rather than disappearing: the tombstone is the data of `todo.task.deleted` (reminders
//! are cancelled), the version history never restarts (event ids are task id + version, so a
//! re-created id must not start again at 1), and the audit trail stays readable. To the client
//! the task is gone: GET and a second DELETE answer 404.
//!
//! Deleting an open occurrence of a recurring task skips it: the series goes on, and
//! on-task-completed asks for the next occurrence as it would after a completion. To end the
//! series as well, `?series=end` deletes the occurrence without its recurrence, so nothing
//! follows it (`PATCH {"recurrence": null}` ends a series but keeps the current task).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use todo_core::events::TaskChange;

use crate::access::modify;
use crate::app::App;
use crate::auth::User;
use crate::error::ApiError;
use crate::params::decode_pairs;
use crate::precondition::Precondition;
use crate::routes::task_id;

pub async fn handler(
    State(app): State<App>,
    user: User,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let id = task_id(path)?;
    let end_series = end_series(query.as_deref())?;
    let precondition = Precondition::from_headers(&headers)?;
    modify(&app, &user, id, &precondition, TaskChange::Deleted, |task, now| {
        let mut next = task.clone();
        if !next.delete(now) {
            return Ok(None);
        }
        if end_series {
            next.recurrence = None;
        }
        Ok(Some(next))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `series=end` (or `series=continue`, the default); anything else is a 400 naming it.
fn end_series(query: Option<&str>) -> Result<bool, ApiError> {
    let mut end = false;
    for (name, value) in decode_pairs(query.unwrap_or_default())? {
        match (name.as_str(), value.as_str()) {
            ("series", "end") => end = true,
            ("series", "continue") => end = false,
            ("series", _) => return Err(ApiError::bad_request("series", "must be end or continue")),
            _ => return Err(ApiError::bad_request(&name, format!("unknown query parameter {name:?}; known: series"))),
        }
    }
    Ok(end)
}
