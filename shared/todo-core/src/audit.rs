//! Audit entries: one immutable record per task event, written by audit-writer under
//! `audit:<task id>:<event id>` in the `state` store and read back by task-api.
//!
//! Keying by the CloudEvent id makes the write idempotent: a redelivered event has the same id,
//! and an insert-if-absent of an existing key writes nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::task::Task;
use crate::events::TaskChange;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub task_id: Uuid,
    /// Copied from the task so that the trail can be listed by owner and checked for access
    /// without reading the task.
    pub owner: String,
    pub event_id: String,
    pub change: TaskChange,
    pub task_version: u64,
    /// When the change happened (the event's `time`, else the task's `updated_at`).
    pub occurred_at: DateTime<Utc>,
    /// When audit-writer recorded it.
    pub recorded_at: DateTime<Utc>,
    /// The task after the change.
    pub task: Task,
}

impl AuditEntry {
    pub fn new(
        event_id: &str,
        change: TaskChange,
        event_time: Option<DateTime<Utc>>,
        task: Task,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            task_id: task.id,
            owner: task.owner.clone(),
            event_id: event_id.to_owned(),
            change,
            task_version: task.version,
            occurred_at: event_time.unwrap_or(task.updated_at),
            recorded_at: now,
            task,
        }
    }

    pub fn key(&self) -> String {
        audit_key(self.task_id, &self.event_id)
    }
}

/// The state key of one audit entry.
pub fn audit_key(task: Uuid, event_id: &str) -> String {
    format!("audit:{task}:{event_id}")
}

/// Orders a trail: by task version, then by when the change happened.
pub fn sort_trail(entries: &mut [AuditEntry]) {
    entries.sort_by(|a, b| {
        (a.task_version, a.occurred_at, &a.event_id).cmp(&(b.task_version, b.occurred_at, &b.event_id))
    });
}
