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
//!
//! A reminder that fired also shows its `deliveries`: the notifier's records of that reminder
//! event on each channel (`delivery:<event id>:<channel>` in the `deliveries` store), read in one
//! bulk get. Only for `fired`: nothing is delivered before, and a reminder moved since has a new
//! event id. Always present, `[]` when the notifier has recorded nothing (no channel set, or not
//! handled yet), so clients need no second shape.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use todo_core::delivery::{Channel, DeliveryRecord, DeliveryView, delivery_key};
use todo_core::events::{components, reminder_event_id};
use todo_core::reminder::{self, ReminderRecord, ReminderStatus, reminder_key};
use uuid::Uuid;

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
    let Some(mut view) = reminder::view(&task, record.as_ref().map(|r| &r.value)) else {
        return Err(ApiError::NoReminder);
    };
    // The view says `fired` only from a record that does (and reflects the task's version).
    let fired = record.as_ref().is_some_and(|r| r.value.status == ReminderStatus::Fired) && view.status == "fired";
    if let (true, Some(remind_at)) = (fired, view.remind_at) {
        view.deliveries = deliveries(&app, id, &reminder_event_id(id, remind_at)).await?;
    }
    Ok(axum::Json(view).into_response())
}

/// The delivery records of reminder event `event_id`, in [`Channel::ALL`]'s order. A record the
/// store could not read is left out (and logged): the reminder's own status is still worth
/// answering.
async fn deliveries(app: &App, task: Uuid, event_id: &str) -> Result<Vec<DeliveryView>, ApiError> {
    let keys: Vec<String> = Channel::ALL.iter().map(|channel| delivery_key(event_id, *channel)).collect();
    let items = app.dapr().get_bulk_state::<DeliveryRecord>(components::DELIVERIES_STORE, &keys).await?;
    let mut views: Vec<DeliveryView> = items
        .into_iter()
        .filter_map(|item| {
            if let Some(error) = &item.error {
                tracing::warn!(task_id = %task, key = %item.key, %error, "delivery record unreadable; left out");
            }
            item.value.map(|record| record.view())
        })
        .collect();
    views.sort_by_key(|view| view.channel);
    Ok(views)
}
