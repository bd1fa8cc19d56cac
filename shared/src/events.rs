//! The names and payloads the functions exchange: components, topics, CloudEvent types, state
//! keys and deterministic ids. Changing a string here changes the wire contract; the Kubernetes
//! manifests are checked against these constants.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::task::{Series, Task};
use crate::domain::validate::NewTask;

/// Dapr component names (`metadata.name` in `dapr-components/`).
pub mod components {
    /// `pubsub.kafka`: every topic below.
    pub const PUBSUB: &str = "pubsub";
    /// `state.postgresql` v1: `task:<id>`, and the outbox records of task changes
    /// ([`crate::outbox`]) written in the same transactions.
    pub const TASKS_STORE: &str = "tasks";
    /// `state.postgresql` v1: reminder status and audit entries. Nothing here emits events.
    pub const STATE_STORE: &str = "state";
}

/// Kafka topics.
pub mod topics {
    /// `todo.task.create` requests, consumed by create-task.
    pub const TASK_CREATE: &str = "task-create";
    /// `todo.task.created|updated|completed|deleted`, published through the outbox of the
    /// `tasks` store by the function that made the change (or by task-api's relay).
    pub const TASK_EVENTS: &str = "task-events";
    /// `todo.reminder.due`, published by fire-reminder.
    pub const REMINDERS: &str = "reminders";

    /// The dead-letter topic of one consumer app-id. One per consumer (not per topic) so that a
    /// message can be replayed to the one function that could not process it.
    pub fn dead_letter(app_id: &str) -> String {
        format!("{app_id}-dlq")
    }
}

/// CloudEvent `type` values.
pub mod types {
    pub const TASK_CREATE: &str = "todo.task.create";
    pub const TASK_CREATED: &str = "todo.task.created";
    pub const TASK_UPDATED: &str = "todo.task.updated";
    pub const TASK_COMPLETED: &str = "todo.task.completed";
    pub const TASK_DELETED: &str = "todo.task.deleted";
    pub const REMINDER_DUE: &str = "todo.reminder.due";
}

/// What happened to a task; each kind is one CloudEvent type on `task-events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskChange {
    Created,
    Updated,
    Completed,
    Deleted,
}

impl TaskChange {
    pub fn event_type(self) -> &'static str {
        match self {
            Self::Created => types::TASK_CREATED,
            Self::Updated => types::TASK_UPDATED,
            Self::Completed => types::TASK_COMPLETED,
            Self::Deleted => types::TASK_DELETED,
        }
    }

    pub fn from_event_type(event_type: &str) -> Option<Self> {
        match event_type {
            types::TASK_CREATED => Some(Self::Created),
            types::TASK_UPDATED => Some(Self::Updated),
            types::TASK_COMPLETED => Some(Self::Completed),
            types::TASK_DELETED => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// The namespace of every name-based (v5) UUID this system derives.
pub const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2b0e_93d4_4b6a_9a51_7d0e_4c2f_8e13);

/// The id of the task a `todo.task.create` request creates. Derived from the owner and the
/// request id, so that a repeated request maps to the same task (create-task's idempotency) and
/// two users' request ids can never collide.
pub fn task_id_for_request(owner: &str, request_id: &str) -> Uuid {
    Uuid::new_v5(&ID_NAMESPACE, format!("{owner}\n{request_id}").as_bytes())
}

/// The request id on-task-completed uses for occurrence `index` of a series: the same for every
/// replica and every duplicate of the completion event.
pub fn occurrence_request_id(series: Uuid, index: u32) -> String {
    format!("occurrence:{series}:{index}")
}

/// The CloudEvent id of the `task-events` event of `version` of `task`.
///
/// Every change of a task bumps its version, and a version is written once (creation is
/// insert-if-absent, every later write is guarded by the ETag it read), so (task, version)
/// names exactly one change: the writer's publish and every relay of it carry the same id, and
/// consumers deduplicate on it (audit-writer keys its entries by it).
pub fn task_event_id(task: Uuid, version: u64) -> String {
    format!("task:{task}:v{version}")
}

/// The CloudEvent id of the reminder for `task` due at `remind_at`: a re-published reminder (the
/// job retried after a failed state write) carries the same id, so notifiers can deduplicate.
pub fn reminder_event_id(task: Uuid, remind_at: DateTime<Utc>) -> String {
    format!("reminder:{task}:{}", remind_at.timestamp())
}

/// `data` of `todo.task.create`: ask create-task for a task, idempotently on `request_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    /// Idempotency key chosen by the producer; the task id is derived from it and the owner.
    pub request_id: String,
    pub owner: String,
    pub task: NewTask,
    /// Set by on-task-completed for the next occurrence of a series.
    #[serde(default)]
    pub series: Option<Series>,
}

/// `data` of `todo.reminder.due`: what a notifier needs without reading any state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderDue {
    pub task_id: Uuid,
    pub owner: String,
    pub title: String,
    pub due: Option<DateTime<FixedOffset>>,
    /// When the reminder was meant to fire.
    pub remind_at: DateTime<Utc>,
    /// When it actually fired.
    pub fired_at: DateTime<Utc>,
    /// `fired_at - remind_at` in milliseconds (never negative): how late the reminder is, for
    /// example because the system was down when it came due.
    pub late_by_ms: u64,
    pub task_version: u64,
}

impl ReminderDue {
    pub fn new(task: &Task, remind_at: DateTime<Utc>, fired_at: DateTime<Utc>) -> Self {
        let late_by_ms = (fired_at - remind_at).num_milliseconds().max(0).unsigned_abs();
        Self {
            task_id: task.id,
            owner: task.owner.clone(),
            title: task.title.clone(),
            due: task.due,
            remind_at,
            fired_at,
            late_by_ms,
            task_version: task.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_map_to_stable_task_ids_per_owner() {
        let a = task_id_for_request("alice", "r-1");
        assert_eq!(a, task_id_for_request("alice", "r-1"));
        assert_ne!(a, task_id_for_request("bob", "r-1"));
        assert_ne!(a, task_id_for_request("alice", "r-2"));
        assert_eq!(a.get_version_num(), 5);
    }

    #[test]
    fn occurrence_request_ids_are_deterministic() {
        let series = Uuid::from_u128(7);
        assert_eq!(occurrence_request_id(series, 3), "occurrence:00000000-0000-0000-0000-000000000007:3");
    }

    #[test]
    fn task_event_ids_name_one_version_of_one_task() {
        let task = Uuid::from_u128(7);
        assert_eq!(task_event_id(task, 3), "task:00000000-0000-0000-0000-000000000007:v3");
        assert_eq!(task_event_id(task, 3), task_event_id(task, 3), "stable across republishing");
        assert_ne!(task_event_id(task, 3), task_event_id(task, 4));
        assert_ne!(task_event_id(task, 3), task_event_id(Uuid::from_u128(8), 3));
    }

    #[test]
    fn event_types_round_trip() {
        for change in [TaskChange::Created, TaskChange::Updated, TaskChange::Completed, TaskChange::Deleted] {
            assert_eq!(TaskChange::from_event_type(change.event_type()), Some(change));
        }
        assert_eq!(TaskChange::from_event_type("todo.task.create"), None);
    }

    #[test]
    fn dead_letter_topic_names_the_consumer() {
        assert_eq!(topics::dead_letter("audit-writer"), "audit-writer-dlq");
    }
}
