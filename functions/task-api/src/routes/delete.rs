//! `DELETE /v1/tasks/{id}`: soft delete. The task becomes a tombstone (`deleted_at` set) rather
//! than disappearing, because Dapr's outbox publishes upserts only: the tombstone write is what
//! carries `todo.task.deleted` to the consumers (reminders are cancelled), and it keeps the
//! audit trail readable. To the client the task is gone: GET and a second DELETE answer 404.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use shared::events::TaskChange;

use crate::access::modify;
use crate::app::App;
use crate::auth::User;
use crate::error::ApiError;
use crate::precondition::Precondition;
use crate::routes::task_id;

pub async fn handler(
    State(app): State<App>,
    user: User,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = task_id(path)?;
    let precondition = Precondition::from_headers(&headers)?;
    modify(&app, &user, id, &precondition, TaskChange::Deleted, |task, now| {
        let mut next = task.clone();
        Ok(next.delete(now).then_some(next))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
