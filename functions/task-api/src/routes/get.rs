//! `GET /v1/tasks/{id}`: the caller's task with its version as `ETag`. Missing, deleted and
//! other users' tasks are all 404. `If-None-Match` with the current version answers `304 Not
//! Modified` without a body, so a client polling a task pays for it only when it changed.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse as _, Response};

use crate::access::{Tombstones, load_owned};
use crate::app::App;
use crate::auth::User;
use crate::error::ApiError;
use crate::precondition;
use crate::routes::{task_id, task_response};

pub async fn handler(
    State(app): State<App>,
    user: User,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = task_id(path)?;
    let task = load_owned(&app.store, id, &user, Tombstones::Hidden).await?;
    if precondition::not_modified(&headers, task.value.version)? {
        return Ok(([(header::ETAG, precondition::etag(task.value.version))], StatusCode::NOT_MODIFIED).into_response());
    }
    Ok(task_response(StatusCode::OK, &task.value))
}
