//! Reading a caller's task and changing it safely.
//!
//! Ownership is checked on every read: a task of another user answers exactly like a missing
//! one (404), so ids cannot be probed. Changes are read-modify-write guarded by the store's
//! ETag; a conflict (someone else wrote in between) re-reads and re-applies the change, so
//! concurrent edits of different fields both land, and the client's `If-Match`, if any, is
//! checked again against every fresh read.

use chrono::{DateTime, Utc};
use dapr_fn::dapr::Versioned;
use todo_core::events::TaskChange;
use todo_core::task::Task;
use todo_store::{TaskStore, WriteError};
use tracing::{debug, info};
use uuid::Uuid;

use crate::app::App;
use crate::auth::User;
use crate::error::ApiError;
use crate::precondition::Precondition;

/// Attempts of one change before answering 409. Each attempt is a read and a transaction; more
/// than a few conflicts in a row means a hot task, and the client is better placed to retry.
pub const MAX_ATTEMPTS: usize = 4;

/// Whether a tombstone counts as the task (the audit trail) or as gone (everything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tombstones {
    Hidden,
    Visible,
}

/// The caller's task `id` with the store's ETag, or 404.
pub async fn load_owned(
    store: &TaskStore,
    id: Uuid,
    user: &User,
    tombstones: Tombstones,
) -> Result<Versioned<Task>, ApiError> {
    match store.get(id).await? {
        Some(found) if found.value.owner == user.id => {
            if found.value.is_deleted() && tombstones == Tombstones::Hidden {
                return Err(ApiError::NotFound);
            }
            Ok(found)
        }
        Some(_) => {
            // Logged for operators (someone is probing or a client mixes up accounts), answered
            // as if the task did not exist.
            debug!(task_id = %id, "task belongs to another user; answering 404");
            Err(ApiError::NotFound)
        }
        None => Err(ApiError::NotFound),
    }
}

/// The result of [`modify`].
#[derive(Debug, Clone, PartialEq)]
pub enum Modified {
    /// The change was written (and its event emitted through the outbox).
    Changed(Task),
    /// The change would change nothing: nothing was written, no event.
    Unchanged(Task),
}

impl Modified {
    pub fn task(&self) -> &Task {
        match self {
            Self::Changed(task) | Self::Unchanged(task) => task,
        }
    }
}

/// Applies `apply` to the caller's current task `id` and writes the result as `change`.
///
/// `apply` gets the current task and the time of this attempt, and returns the changed task
/// (version bumped by the domain method) or `None` when there is nothing to change. It may run
/// more than once (once per attempt), on different versions of the task.
pub async fn modify<F>(
    app: &App,
    user: &User,
    id: Uuid,
    precondition: &Precondition,
    change: TaskChange,
    mut apply: F,
) -> Result<Modified, ApiError>
where
    F: FnMut(&Task, DateTime<Utc>) -> Result<Option<Task>, ApiError>,
{
    for attempt in 1..=MAX_ATTEMPTS {
        let current = load_owned(&app.store, id, user, Tombstones::Hidden).await?;
        precondition.check(current.value.version)?;
        // Read the clock after the task: the change happens now, not when the request arrived.
        let now = app.clock.now();
        let Some(next) = apply(&current.value, now)? else {
            return Ok(Modified::Unchanged(current.value));
        };
        match app.store.update(&next, current.etag, change).await {
            Ok(()) => {
                info!(task_id = %id, version = next.version, change = change.event_type(), "task changed");
                return Ok(Modified::Changed(next));
            }
            Err(WriteError::Conflict) => {
                debug!(task_id = %id, attempt, "concurrent change; reading the task again");
            }
            Err(error) => return Err(error.into()),
        }
    }
    info!(task_id = %id, attempts = MAX_ATTEMPTS, "giving up: the task kept changing concurrently");
    Err(WriteError::Conflict.into())
}
