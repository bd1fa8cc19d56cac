//! `GET /v1/tasks/{id}`: the caller's task with its version as `ETag`. Missing, deleted and
//! other users' tasks are all 404.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::access::{Tombstones, load_owned};
use crate::app::App;
use crate::auth::User;
use crate::error::ApiError;
use crate::routes::{task_id, task_response};

pub async fn handler(
    State(app): State<App>,
    user: User,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = task_id(path)?;
    let task = load_owned(&app.store, id, &user, Tombstones::Hidden).await?;
    Ok(task_response(StatusCode::OK, &task.value))
}
