//! `POST /v1/tasks/{id}/reopen`: makes the caller's completed task open again, emitting
//! `todo.task.reopened`. Reopening an open task answers 200 and writes nothing. The task keeps
//! its place in its series, so completing it again asks for the same next occurrence, which
//! create-task already made: a series never gets a second one. Its reminder, if still ahead, is
//! scheduled again by fire-reminder. Any request body is ignored.

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
    let outcome = modify(&app, &user, id, &precondition, TaskChange::Reopened, |task, now| {
        let mut next = task.clone();
        Ok(next.reopen(now).then_some(next))
    })
    .await?;
    Ok(task_response(StatusCode::OK, outcome.task()))
}
