//! `GET /v1/tasks/{id}/reminder`: where the caller's task's reminder stands.
//!
//! Reminders are fired by fire-reminder, asynchronously: this reads its record
//! (`reminder:<task id>` in the `state` store) and answers `pending` while fire-reminder has not
//! yet handled the task's latest change, so a client can tell "scheduled for 08:45" from "sent
//! at 08:45:00.3, 300 ms late" without consuming the `reminders` topic.
//!
//! A task that never had a reminder answers 404 with "this task has no reminder" and `field:
//! reminder`, the status the OpenAPI document has always promised: the reminder resource does not
//! exist. The message and field tell it apart from a missing task ("task not found", no field),
//! so a client does not take a task without a reminder for a deleted one.

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
        None => Err(ApiError::NoReminder),
    }
}
