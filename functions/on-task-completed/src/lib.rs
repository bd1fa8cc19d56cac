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
//!
//! The request acts for the task's owner, so it is computed from the task as stored, never from
//! the event body: the event only says which version of which task to look at, and an event the
//! store contradicts is dropped. on-task-completed is the one app the pub/sub scopes let publish
//! on `task-create` (`todo_core::events::authority`), which is why create-task may trust the owner
//! a request names.

use dapr_fn::dapr::{Dapr, Publish};
use dapr_fn::runtime::{Event, Function, HandlerError, HandlerResult, Subscription};
use todo_core::events::{components, task_id_for_request, topics, types};
use todo_core::occurrence::next_instance;
use todo_core::task::Task;
use todo_store::TaskStore;
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
        let completed = match event.event_type.as_str() {
            types::TASK_COMPLETED => true,
            types::TASK_DELETED => false,
            other => return Err(HandlerError::drop(format!("routed a {other:?} event to the recurrence handler"))),
        };
        // The event names a version of a task; what that task is comes from the store. A task
        // the writer published without a recurrence needs no read: nothing follows it, and a
        // forged event could only ask for less.
        let claimed = event.data;
        if claimed.recurrence.is_none() {
            return Ok(());
        }
        let stored = match self.tasks.get(claimed.id).await? {
            None => return Err(HandlerError::retry(anyhow::anyhow!("task {} is not in the store yet", claimed.id))),
            Some(stored) if stored.value.version < claimed.version => {
                return Err(HandlerError::retry(anyhow::anyhow!(
                    "store has version {} of task {}, the event version {}",
                    stored.value.version,
                    claimed.id,
                    claimed.version
                )));
            }
            Some(stored) => stored.value,
        };
        let later = stored.version > claimed.version;
        let task = trusted(&claimed, stored).map_err(HandlerError::drop)?;
        let Some(done_at) = done_at(&task, completed, later).map_err(HandlerError::drop)? else {
            // Deleted after its completion, which already asked for the next occurrence, or
            // reopened since: its next completion will ask.
            return Ok(());
        };
        if task.recurrence.is_none() {
            return Ok(());
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

/// The task to act on: the stored one, once it is shown to be the one the event speaks of. At
/// the event's own version the two must be equal; a later stored version (edited since) must
/// still belong to the same owner. Anything else is an event no writer published.
fn trusted(claimed: &Task, stored: Task) -> Result<Task, String> {
    if stored.owner != claimed.owner {
        return Err(format!("the event gives task {} another owner than the store does", claimed.id));
    }
    if stored.version == claimed.version && &stored != claimed {
        return Err(format!(
            "the event's version {} of task {} differs from the stored one",
            claimed.version, claimed.id
        ));
    }
    Ok(stored)
}

/// When the stored occurrence was done with: its completion time for a completion event, its
/// deletion time for the deletion of an open occurrence, `None` for the deletion of one
/// completed before (its completion asked for the next one already) and for a completion the
/// store has undone since (`later`: reopened; completing it again asks). An event the store
/// contradicts at its own version (a completion of a task never completed) is an error.
fn done_at(task: &Task, completed: bool, later: bool) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    match (completed, task.completed_at, task.deleted_at) {
        (true, Some(completed_at), _) => Ok(Some(completed_at)),
        (true, None, _) if later => Ok(None),
        (true, None, _) => Err(format!("completion event for task {}, which the store has {}", task.id, task.status)),
        (false, Some(_), Some(_)) => Ok(None),
        (false, None, Some(deleted_at)) => Ok(Some(deleted_at)),
        (false, _, None) => Err(format!("deletion event for task {}, which the store has not deleted", task.id)),
    }
}
