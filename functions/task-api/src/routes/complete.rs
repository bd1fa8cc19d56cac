//! `POST /v1/tasks/{id}/complete`: marks the caller's task completed, emitting
//! `todo.task.completed` (which on-task-completed turns into the next occurrence of a recurring
//! task). Completing a completed task answers 200 and writes nothing, so a retried request
//! never creates a second occurrence. Any request body is ignored.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use todo_core::events::TaskChange;

use crate::access::modify;
use crate::app::App;
use crate::auth::User;
use crate::error::ApiError;
use crate::precondition::Precondition;
use crate::routes::{task_id, task_response};

pub async fn handler(
    State(app): State<App>,
    user: User,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = task_id(path)?;
    let precondition = Precondition::from_headers(&headers)?;
    let outcome = modify(&app, &user, id, &precondition, TaskChange::Completed, |task, now| {
        let mut next = task.clone();
        Ok(next.complete(now).then_some(next))
    })
    .await?;
    Ok(task_response(StatusCode::OK, outcome.task()))
}
