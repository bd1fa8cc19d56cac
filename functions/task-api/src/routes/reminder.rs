//! `GET /v1/tasks/{id}/reminder`: where the caller's task's reminder stands.
//!
//! Reminders are fired by fire-reminder, asynchronously: this reads its record
//! (`reminder:<task id>` in the `state` store) and answers `pending` while fire-reminder has not
//! yet handled the task's latest change, so a client can tell "scheduled for 08:45" from "sent
//! at 08:45:00.3, 300 ms late" without consuming the `reminders` topic.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use shared::domain::reminder::{self, ReminderRecord, reminder_key};
use shared::events::components;

use crate::access::{Tombstones, load_owned};
use crate::app::App;
use crate::auth::User;
use crate::error::ApiError;
use crate::routes::task_id;

pub async fn handler(
    State(app): State<App>,
    user: User,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = task_id(path)?;
    let task = load_owned(&app.store, id, &user, Tombstones::Hidden).await?.value;
    let record = app.dapr().get_state::<ReminderRecord>(components::STATE_STORE, &reminder_key(id)).await?;
    match reminder::view(&task, record.as_ref().map(|r| &r.value)) {
        Some(view) => Ok(axum::Json(view).into_response()),
        None => Err(ApiError::NotFound),
    }
}
