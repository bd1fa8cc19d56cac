//! on-task-completed: when an occurrence of a recurring task is done with, completed or
//! deleted (skipped), asks create-task for the next occurrence.
//!
//! Subscribed to `task-events` with the routing rule [`MATCH`], so Dapr delivers only
//! completions and deletions here. Deleting an open occurrence skips it without ending the
//! series (task-api's `DELETE ?series=end` removes the recurrence from the tombstone, and then
//! nothing follows); deleting one that was already completed asks for nothing, since its
//! completion already did. The next occurrence is computed from the series anchor (never from
//! the previous instance) and requested on `task-create` with a request id derived from
//! (series, occurrence index) as both CloudEvent id and idempotency key: duplicate events, on
//! any replica, create the next instance once.

use shared::dapr::{Dapr, Publish};
use shared::domain::occurrence::next_instance;
use shared::domain::task::{Status, Task};
use shared::events::{components, task_id_for_request, topics, types};
use shared::runtime::{Event, Function, HandlerError, HandlerResult, Subscription};
use shared::tasks::TaskStore;
use tracing::info;

pub const APP_ID: &str = "on-task-completed";
pub const ROUTE: &str = "/events/task-completed";
/// The routing rule Dapr evaluates (CEL) before delivering to [`ROUTE`].
pub const MATCH: &str = r#"event.type == "todo.task.completed" || event.type == "todo.task.deleted""#;

pub fn function(dapr: Dapr) -> anyhow::Result<Function> {
    Ok(build(dapr))
}

pub fn build(dapr: Dapr) -> Function {
    let handler = Recurrer { tasks: TaskStore::new(dapr) };
    Function::new(APP_ID).subscribe(Subscription::new(components::PUBSUB, topics::TASK_EVENTS).when(
        MATCH,
        ROUTE,
        move |event| handler.clone().handle(event),
    ))
}

#[derive(Debug, Clone)]
struct Recurrer {
    tasks: TaskStore,
}

impl Recurrer {
    async fn handle(self, event: Event<Task>) -> HandlerResult {
        let task = event.data;
        // When this occurrence was done with: completed, or deleted while still open.
        let done_at = match event.event_type.as_str() {
            types::TASK_COMPLETED if task.status == Status::Completed => task.completed_at.unwrap_or(task.updated_at),
            types::TASK_COMPLETED => {
                return Err(HandlerError::drop(format!(
                    "completion event for task {} whose status is {}",
                    task.id, task.status
                )));
            }
            types::TASK_DELETED => match (task.deleted_at, task.completed_at) {
                (None, _) => {
                    return Err(HandlerError::drop(format!("deletion event for task {} without deleted_at", task.id)));
                }
                // Its completion already asked for the next occurrence.
                (Some(_), Some(_)) => return Ok(()),
                (Some(deleted_at), None) => deleted_at,
            },
            other => return Err(HandlerError::drop(format!("routed a {other:?} event to the recurrence handler"))),
        };
        if task.recurrence.is_none() {
            return Ok(());
        }
        // The event must not be ahead of the store: act only on a completion the store has.
        match self.tasks.get(task.id).await? {
            None => return Err(HandlerError::retry(anyhow::anyhow!("task {} is not in the store yet", task.id))),
            Some(stored) if stored.value.version < task.version => {
                return Err(HandlerError::retry(anyhow::anyhow!(
                    "store has version {} of task {}, the event version {}",
                    stored.value.version,
                    task.id,
                    task.version
                )));
            }
            Some(_) => {}
        }
        let next = next_instance(&task, done_at)
            .map_err(|e| HandlerError::drop(format!("cannot evaluate the recurrence of task {}: {e}", task.id)))?;
        let Some(request) = next else {
            info!(task_id = %task.id, "series ended");
            return Ok(());
        };
        let next_id = task_id_for_request(&request.owner, &request.request_id);
        let options =
            Publish::new(types::TASK_CREATE).id(request.request_id.clone()).partition_key(next_id.to_string());
        self.tasks.dapr().publish(components::PUBSUB, topics::TASK_CREATE, &request, &options).await?;
        info!(task_id = %task.id, next_task_id = %next_id, request_id = %request.request_id, "next occurrence requested");
        Ok(())
    }
}
