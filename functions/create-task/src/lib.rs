//! create-task: creates the tasks that are asked for asynchronously on `task-create` (the next
//! occurrence of a recurring task, chat tools, imports), idempotently on the request id.
//!
//! The task id is derived from (owner, request id). A repeated request (at-least-once
//! delivery, a producer's retry), on any replica, reads the task already there and writes
//! nothing; a new one is an insert-if-absent in one outbox transaction with its
//! `todo.task.created` event ([`todo_store`]), so two racing duplicates still create one
//! task. An invalid request can never succeed and is dropped to the dead-letter topic with the
//! reason; an unavailable sidecar is retried.
//!
//! create-task publishes its own events right after each commit. It scales to zero, so what a
//! crash leaves in the outbox is relayed by task-api, which always runs.

use dapr_fn::clock::Clock;
use dapr_fn::dapr::Dapr;
use dapr_fn::outbox::OutboxConfig;
use dapr_fn::runtime::{Event, Function, HandlerError, HandlerResult, Subscription};
use todo_core::events::{CreateTaskRequest, components, task_id_for_request, topics, types};
use todo_core::validate::new_task;
use todo_store::{Created, IdOrigin, TaskStore};
use tracing::info;

pub const APP_ID: &str = "create-task";
pub const ROUTE: &str = "/events/task-create";
/// Longest accepted request id (it is hashed into the task id, but also logged and stored).
pub const MAX_REQUEST_ID_CHARS: usize = 200;

pub fn function(dapr: Dapr) -> anyhow::Result<Function> {
    Ok(build_with(dapr, OutboxConfig::from_env()?, Clock::system()))
}

pub fn build(dapr: Dapr, clock: Clock) -> Function {
    build_with(dapr, OutboxConfig::default(), clock)
}

/// The function with explicit outbox settings (`OUTBOX_PUBLISH_TIMEOUT_MS` is the one a writer
/// uses; the relay settings are task-api's).
pub fn build_with(dapr: Dapr, outbox: OutboxConfig, clock: Clock) -> Function {
    let creator = Creator { tasks: TaskStore::with_outbox(dapr, outbox, clock.clone()), clock };
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
        let created = self.tasks.create(&task, IdOrigin::Derived).await? == Created::Inserted;
        info!(task_id = %task.id, request_id, created, "task request");
        Ok(())
    }
}
