//! audit-writer: appends one immutable audit entry per `task-events` event, exactly once in
//! effect.
//!
//! The entry is keyed `audit:<task id>:<event id>` and written insert-if-absent, so a
//! redelivered or duplicated event (at-least-once delivery) writes nothing new, and events
//! arriving out of order are simply recorded in the order they come; the trail is sorted by task
//! version when read.

use shared::clock::Clock;
use shared::dapr::{Dapr, Inserted};
use shared::domain::audit::AuditEntry;
use shared::domain::task::Task;
use shared::events::{TaskChange, components, topics};
use shared::runtime::{Event, Function, HandlerError, HandlerResult, Subscription};
use tracing::info;

pub const APP_ID: &str = "audit-writer";
/// The route Dapr delivers every `task-events` event to.
pub const ROUTE: &str = "/events/task-events";

/// The function as `main` runs it: sidecar from the environment, system clock.
pub fn function(dapr: Dapr) -> anyhow::Result<Function> {
    Ok(build(dapr, Clock::system()))
}

pub fn build(dapr: Dapr, clock: Clock) -> Function {
    let writer = AuditWriter { dapr, clock };
    Function::new(APP_ID).subscribe(
        Subscription::new(components::PUBSUB, topics::TASK_EVENTS)
            .route(ROUTE, move |event| writer.clone().handle(event)),
    )
}

#[derive(Debug, Clone)]
struct AuditWriter {
    dapr: Dapr,
    clock: Clock,
}

impl AuditWriter {
    async fn handle(self, event: Event<Task>) -> HandlerResult {
        let change = TaskChange::from_event_type(&event.event_type)
            .ok_or_else(|| HandlerError::drop(format!("{:?} is not a task event type", event.event_type)))?;
        let entry = AuditEntry::new(&event.id, change, event.time, event.data, self.clock.now());
        let outcome = self.dapr.insert_state(components::STATE_STORE, &entry.key(), &entry).await?;
        let duplicate = outcome == Inserted::AlreadyExists;
        info!(task_id = %entry.task_id, version = entry.task_version, change = ?entry.change, duplicate, "audit entry");
        Ok(())
    }
}
