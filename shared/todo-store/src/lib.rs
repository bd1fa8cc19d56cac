//! The `tasks` store: read tasks, and write every change in one transaction with its event.
//!
//! Writes go through the project's transactional outbox ([`dapr_fn::outbox`]): the task and an
//! outbox record holding its `task-events` event commit together, and the event is published
//! right after the commit (or by task-api's relay if this process dies first), with the id
//! [`task_event_id`] of (task, version), so every republish carries the same id.
//!
//! Expected outcomes are answered without a failing write wherever a read can tell: Dapr counts
//! every failed state call toward the store's circuit breaker, whatever the reason (see
//! docs/dapr-contract.md, "Resiliency"). A create whose id can repeat (derived from a request
//! id or an `Idempotency-Key`) reads first, so a replay writes nothing; the write itself stays
//! insert-if-absent, so two racing creates still make one task. Changes are guarded by the ETag
//! they were read with.
//!
//! A task is stored with its order keys ([`todo_core::order`]) beside its fields, under
//! `_order`, so the store can sort and page lists itself. Readers ignore the extra field;
//! events and API answers never carry it.

use serde::Serialize;
use uuid::Uuid;

use dapr_fn::clock::Clock;
use dapr_fn::dapr::{Dapr, DaprError, SaveItem, TxOp, Versioned};
use dapr_fn::outbox::{Outbox, OutboxConfig, OutboxEvent};
use todo_core::events::{TaskChange, components, task_event_id, topics};
use todo_core::order::OrderKeys;
use todo_core::task::{Task, task_key};

/// Why a guarded write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Someone else changed the task since it was read: read again and re-apply.
    #[error("the task was changed concurrently")]
    Conflict,
    #[error(transparent)]
    Dapr(#[from] DaprError),
}

/// Where the id of a task to create comes from, which decides whether a create can expect to
/// find its task already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdOrigin {
    /// A fresh random UUID: finding it taken is not an expected outcome (2^-122), so the
    /// create goes straight to the insert.
    Random,
    /// Derived from a request id or an idempotency key: a retried request maps to the same id,
    /// so the create reads first and a replay is answered from that read.
    Derived,
}

/// The outcome of [`TaskStore::create`].
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// This call created the task (and its `todo.task.created` event).
    Inserted,
    /// A task with this id already existed: nothing was written. It is returned as stored
    /// (boxed: a task is large, and most creates insert).
    Existing(Box<Versioned<Task>>),
}

/// A task as stored: its fields, and its order keys under [`todo_core::order::FIELD`].
#[derive(Serialize)]
struct Stored<'a> {
    #[serde(flatten)]
    task: &'a Task,
    #[serde(rename = "_order", skip_serializing_if = "Option::is_none")]
    order: Option<OrderKeys>,
}

#[derive(Debug, Clone)]
pub struct TaskStore {
    dapr: Dapr,
    outbox: Outbox,
}

impl TaskStore {
    /// A store with the default outbox settings and the system clock.
    pub fn new(dapr: Dapr) -> Self {
        Self::with_outbox(dapr, OutboxConfig::default(), Clock::system())
    }

    /// A store whose outbox uses `config` and stamps records with `clock`.
    pub fn with_outbox(dapr: Dapr, config: OutboxConfig, clock: Clock) -> Self {
        let outbox = Outbox::new(dapr.clone(), components::TASKS_STORE, config).with_clock(clock);
        Self { dapr, outbox }
    }

    pub fn dapr(&self) -> &Dapr {
        &self.dapr
    }

    /// The outbox of the `tasks` store (task-api runs its relay).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<Versioned<Task>>, DaprError> {
        self.dapr.get_state(components::TASKS_STORE, &task_key(id)).await
    }

    /// The state item that stores `task`: its fields and, unless it is deleted, its order keys
    /// (a tombstone has none, so no store-side list ever reads it).
    pub fn item(task: &Task) -> Result<SaveItem, DaprError> {
        let order = (!task.is_deleted()).then(|| OrderKeys::of(task));
        SaveItem::new(task.key(), &Stored { task, order })
    }

    /// The `task-events` event of `task` as it is after `change`.
    pub fn event(task: &Task, change: TaskChange) -> Result<OutboxEvent, DaprError> {
        let data = serde_json::to_value(task)
            .map_err(|source| DaprError::Encode { what: format!("task {} as event data", task.id), source })?;
        Ok(OutboxEvent {
            id: task_event_id(task.id, task.version),
            event_type: change.event_type().to_owned(),
            subject: task.id.to_string(),
            partition_key: task.id.to_string(),
            pubsub: components::PUBSUB.to_owned(),
            topic: topics::TASK_EVENTS.to_owned(),
            data,
        })
    }

    /// Creates `task` unless a task with its id exists, emitting `todo.task.created`.
    ///
    /// A failed transaction is a 500 whether the key existed or the store failed, so a failure
    /// is followed by a read: if the task is there now, another create won the race.
    pub async fn create(&self, task: &Task, origin: IdOrigin) -> Result<Created, DaprError> {
        if origin == IdOrigin::Derived
            && let Some(existing) = self.get(task.id).await?
        {
            return Ok(Created::Existing(Box::new(existing)));
        }
        let op = TxOp::Upsert(Self::item(task)?.if_absent());
        let event = Self::event(task, TaskChange::Created)?;
        match self.outbox.commit(vec![op], std::slice::from_ref(&event)).await {
            Ok(_) => Ok(Created::Inserted),
            Err(err @ DaprError::TransactionFailed { .. }) => match self.get(task.id).await? {
                Some(existing) => Ok(Created::Existing(Box::new(existing))),
                None => Err(err),
            },
            Err(err) => Err(err),
        }
    }

    /// Writes `task` (already changed, version bumped) if the stored ETag is still `etag`,
    /// emitting the event for `change`.
    pub async fn update(&self, task: &Task, etag: Option<String>, change: TaskChange) -> Result<(), WriteError> {
        let op = TxOp::Upsert(Self::item(task)?.if_match(etag.clone()));
        let event = Self::event(task, change)?;
        match self.outbox.commit(vec![op], std::slice::from_ref(&event)).await {
            Ok(_) => Ok(()),
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
