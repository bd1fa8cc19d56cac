//! audit-writer: appends one immutable audit entry per `task-events` event, exactly once in
//! effect.
//!
//! The entry is keyed `audit:<task id>:<event id>` (the event id names one version of one
//! task, the same on every republish) and written insert-if-absent, so a redelivered or
//! duplicated event (at-least-once delivery, a relay republishing) writes nothing new, and
//! events arriving out of order are simply recorded in the order they come; the trail is sorted
//! by task version when read.
//!
//! A duplicate is found by a read first, not by a failing insert: Dapr retries a failed
//! first-write save under the store's outbound policy and counts it toward the circuit breaker
//! (the error is not an ETag error; docs/dapr-contract.md, "Resiliency"), so a burst of
//! duplicates after a crash could open the breaker and fail the valid events behind them. Only
//! two deliveries racing each other still reach the insert, which decides.
//!
//! Entries live in the `audit` store (its own table), not with the reminder records: its
//! PostgreSQL role may only insert there and read, and a trigger refuses any overwrite, so no
//! function's credentials can rewrite the trail (`manifests/base/postgres/roles.sql`).

use dapr_fn::clock::Clock;
use dapr_fn::dapr::{Dapr, Inserted};
use dapr_fn::runtime::{Event, Function, HandlerError, HandlerResult, Subscription};
use serde_json::Value;
use todo_core::audit::AuditEntry;
use todo_core::events::{TaskChange, components, topics};
use todo_core::task::Task;
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
        let key = entry.key();
        let duplicate = self.dapr.get_state::<Value>(components::AUDIT_STORE, &key).await?.is_some()
            || self.dapr.insert_state(components::AUDIT_STORE, &key, &entry).await? == Inserted::AlreadyExists;
        info!(task_id = %entry.task_id, version = entry.task_version, change = ?entry.change, duplicate, "audit entry");
        Ok(())
    }
}
