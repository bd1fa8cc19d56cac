//! create-task: creates the tasks that are asked for asynchronously on `task-create` (the next
//! occurrence of a recurring task, chat tools, imports), idempotently on the request id.
//!
//! The task id is derived from (owner, request id), and the write is an insert-if-absent in one
//! outbox transaction with its `todo.task.created` event: a repeated request, on any replica,
//! finds the task already there and creates nothing. An invalid request can never succeed and
//! is dropped to the dead-letter topic with the reason; an unavailable sidecar is retried.

use shared::clock::Clock;
use shared::dapr::{Dapr, Inserted};
use shared::domain::validate::new_task;
use shared::events::{CreateTaskRequest, components, task_id_for_request, topics, types};
use shared::runtime::{Event, Function, HandlerError, HandlerResult, Subscription};
use shared::tasks::TaskStore;
use tracing::info;

pub const APP_ID: &str = "create-task";
pub const ROUTE: &str = "/events/task-create";
/// Longest accepted request id (it is hashed into the task id, but also logged and stored).
pub const MAX_REQUEST_ID_CHARS: usize = 200;

pub fn function(dapr: Dapr) -> anyhow::Result<Function> {
    Ok(build(dapr, Clock::system()))
}

pub fn build(dapr: Dapr, clock: Clock) -> Function {
    let creator = Creator { tasks: TaskStore::new(dapr), clock };
    Function::new(APP_ID).subscribe(
        Subscription::new(components::PUBSUB, topics::TASK_CREATE)
            .route(ROUTE, move |event| creator.clone().handle(event)),
    )
}

#[derive(Debug, Clone)]
struct Creator {
    tasks: TaskStore,
    clock: Clock,
}

impl Creator {
    async fn handle(self, event: Event<CreateTaskRequest>) -> HandlerResult {
        if event.event_type != types::TASK_CREATE {
            return Err(HandlerError::drop(format!("{:?} is not {:?}", event.event_type, types::TASK_CREATE)));
        }
        let request = event.data;
        let request_id = request.request_id.trim();
        if request_id.is_empty() || request_id.chars().count() > MAX_REQUEST_ID_CHARS {
            return Err(HandlerError::drop(format!("request_id must be 1 to {MAX_REQUEST_ID_CHARS} characters")));
        }
        let id = task_id_for_request(&request.owner, request_id);
        let task = new_task(id, &request.owner, request.task, request.series, self.clock.now())
            .map_err(|e| HandlerError::drop(format!("invalid task request {request_id:?}: {e}")))?;
        let created = self.tasks.create(&task).await? == Inserted::Inserted;
        info!(task_id = %task.id, request_id, created, "task request");
        Ok(())
    }
}
