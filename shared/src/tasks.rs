//! The `tasks` store: read tasks, and write every change in one transaction with its event.
//!
//! Writes go through the store's transactional outbox, so a task change and its `task-events`
//! event are atomic: the event is published if and only if the change committed, even if this
//! process dies in between. Creation is insert-if-absent (idempotent on the task id); changes
//! are guarded by the ETag they were read with.

use uuid::Uuid;

use crate::dapr::{Dapr, DaprError, Inserted, SaveItem, TxOp, Versioned};
use crate::domain::task::{Task, task_key};
use crate::events::{TaskChange, components};

/// Why a guarded write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Someone else changed the task since it was read: read again and re-apply.
    #[error("the task was changed concurrently")]
    Conflict,
    #[error(transparent)]
    Dapr(#[from] DaprError),
}

#[derive(Debug, Clone)]
pub struct TaskStore {
    dapr: Dapr,
}

impl TaskStore {
    pub fn new(dapr: Dapr) -> Self {
        Self { dapr }
    }

    pub fn dapr(&self) -> &Dapr {
        &self.dapr
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<Versioned<Task>>, DaprError> {
        self.dapr.get_state(components::TASKS_STORE, &task_key(id)).await
    }

    /// Creates `task` unless a task with its id exists, emitting `todo.task.created`.
    ///
    /// A failed transaction is a 500 whether the key existed or the store failed, so a failure
    /// is followed by a read: if the task is there now, the create was a duplicate.
    pub async fn create(&self, task: &Task) -> Result<Inserted, DaprError> {
        let op = TxOp::Upsert(
            SaveItem::new(task.key(), task)?
                .if_absent()
                .outbox_event(TaskChange::Created.event_type(), &task.id.to_string()),
        );
        match self.dapr.transact(components::TASKS_STORE, &[op]).await {
            Ok(()) => Ok(Inserted::Inserted),
            Err(err @ DaprError::TransactionFailed { .. }) => match self.get(task.id).await? {
                Some(_) => Ok(Inserted::AlreadyExists),
                None => Err(err),
            },
            Err(err) => Err(err),
        }
    }

    /// Writes `task` (already changed, version bumped) if the stored ETag is still `etag`,
    /// emitting the event for `change`.
    pub async fn update(&self, task: &Task, etag: Option<String>, change: TaskChange) -> Result<(), WriteError> {
        let op = TxOp::Upsert(
            SaveItem::new(task.key(), task)?
                .if_match(etag.clone())
                .outbox_event(change.event_type(), &task.id.to_string()),
        );
        match self.dapr.transact(components::TASKS_STORE, &[op]).await {
            Ok(()) => Ok(()),
            // Conflict or store failure: a changed ETag tells which.
            Err(err @ DaprError::TransactionFailed { .. }) => match self.get(task.id).await? {
                Some(current) if current.etag != etag => Err(WriteError::Conflict),
                None if etag.is_some() => Err(WriteError::Conflict),
                _ => Err(WriteError::Dapr(err)),
            },
            Err(err) => Err(WriteError::Dapr(err)),
        }
    }
}
