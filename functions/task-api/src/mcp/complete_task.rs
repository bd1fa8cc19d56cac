//! `complete_task`: `POST /v1/tasks/{id}/complete`.
//!
//! The REST answer is the completed task; the next occurrence of a repeating task is created
//! from the `todo.task.completed` event, asynchronously, by on-task-completed and create-task.
//! An agent wants to say when the task comes back, so the result also names the next
//! occurrence: computed by the very function on-task-completed runs
//! ([`todo_core::occurrence::next_instance`]) on the completed task, with the task id
//! create-task will give it ([`todo_core::events::task_id_for_request`]). Completing a completed
//! task changes nothing and names the same occurrence, so the tool is idempotent.

use axum::http::Method;
use chrono::{DateTime, FixedOffset};
use rmcp::model::{CallToolResult, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;
use todo_core::events::task_id_for_request;
use todo_core::occurrence::next_instance;
use todo_core::task::Task;
use uuid::Uuid;

use super::rest::{RestAnswer, RestRequest};
use super::schema;
use super::tool::{ArgError, Arguments, TaskTool, describe_task, success};
use crate::routes::paths;

/// The `complete_task` tool.
#[derive(Debug)]
pub struct CompleteTask;

/// The arguments of `complete_task`.
#[derive(Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The task's `id` (a UUID).
    pub task_id: String,
    /// Only if the task's `version` is still this one (from get_task or list_tasks); otherwise
    /// nothing changes and the error says the current version.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub if_match: Option<u64>,
}

/// The next occurrence of a repeating task, as the result names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextOccurrence {
    /// The id the occurrence has (it appears in list_tasks within seconds).
    pub task_id: Uuid,
    pub due: DateTime<FixedOffset>,
}

/// What follows `task` once completed: `Ok(None)` when it does not repeat or its series ended.
pub fn next_occurrence(task: &Task) -> Result<Option<NextOccurrence>, String> {
    let completed_at = task.completed_at.unwrap_or(task.updated_at);
    let next = next_instance(task, completed_at).map_err(|e| e.to_string())?;
    Ok(next.and_then(|request| {
        let due = request.task.due?;
        Some(NextOccurrence { task_id: task_id_for_request(&request.owner, &request.request_id), due })
    }))
}

impl TaskTool for CompleteTask {
    const NAME: &'static str = "complete_task";

    fn tool() -> Tool {
        Tool::new(
            Self::NAME,
            "Mark one of the user's tasks as done. For a repeating task the result also gives the next \
             occurrence (its task id and due time), which is created automatically within seconds; completing \
             again never creates a second one. Completing a completed task changes nothing. Use reopen_task to \
             undo.",
            schema::input::<Args>(),
        )
        .with_title("Complete a task")
        .with_raw_output_schema(schema::output(json!({
            "type": "object",
            "properties": {
                "task": {"$ref": "#/$defs/Task", "description": "The completed task."},
                "next_occurrence": {
                    "description": "The next occurrence of a repeating task (created within seconds); null when the \
                                    task does not repeat or its series has ended.",
                    "type": ["object", "null"],
                    "properties": {
                        "task_id": {"type": "string", "format": "uuid"},
                        "due": {"type": "string", "format": "date-time"}
                    },
                    "required": ["task_id", "due"]
                }
            },
            "required": ["task", "next_occurrence"]
        })))
        .with_annotations(ToolAnnotations::new().read_only(false).destructive(false).idempotent(true).open_world(false))
    }

    fn request(mut arguments: Arguments) -> Result<RestRequest, ArgError> {
        let id = arguments.take_task_id()?;
        let if_match = arguments.take_if_match()?;
        arguments.finish(Self::NAME, &["task_id", "if_match"])?;
        let request = RestRequest::new(Method::POST, paths::COMPLETE.replace("{id}", &id));
        Ok(request.if_match(if_match))
    }

    fn success(_request: &RestRequest, answer: RestAnswer) -> CallToolResult {
        let mut text = format!("Completed task {}.", describe_task(&answer.body));
        let next = match serde_json::from_value::<Task>(answer.body.clone()) {
            Ok(task) => match (next_occurrence(&task), &task.recurrence) {
                (Ok(Some(next)), _) => {
                    text.push_str(&format!(
                        " It repeats: the next occurrence, due {}, is being created as task {} (it appears in \
                         list_tasks within seconds).",
                        next.due.to_rfc3339(),
                        next.task_id
                    ));
                    Some(next)
                }
                (Ok(None), Some(_)) => {
                    text.push_str(" It was the last occurrence of its series: nothing follows it.");
                    None
                }
                (Ok(None), None) => None,
                (Err(error), _) => {
                    tracing::warn!(%error, "the next occurrence of a completed task cannot be computed");
                    text.push_str(" It repeats, but its next occurrence could not be computed.");
                    None
                }
            },
            Err(error) => {
                tracing::error!(%error, "the completed task does not decode");
                None
            }
        };
        success(text, json!({"task": answer.body, "next_occurrence": next}))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::http::StatusCode;
    use serde_json::Value;

    use super::*;

    fn completed(recurrence: Option<Value>) -> Value {
        json!({
            "id": "0b8e4a4c-6f6e-4f55-9d43-1d2c1b0e5a7f", "owner": "alice", "title": "Pay rent", "description": "",
            "priority": "medium", "tags": [], "status": "completed", "due": "2026-11-01T09:00:00+01:00",
            "time_zone": "Europe/Berlin", "reminder": null, "recurrence": recurrence, "series": null,
            "created_at": "2026-10-01T08:00:00Z", "updated_at": "2026-11-02T08:00:00Z",
            "completed_at": "2026-11-02T08:00:00Z", "deleted_at": null, "version": 2
        })
    }

    #[test]
    fn a_repeating_task_names_its_next_occurrence() {
        let result = CompleteTask::success(
            &RestRequest::new(Method::POST, "/"),
            RestAnswer {
                status: StatusCode::OK,
                body: completed(Some(json!({"rule": "FREQ=MONTHLY", "mode": "strict"}))),
            },
        );
        let structured = result.structured_content.unwrap();
        assert_eq!(structured["next_occurrence"]["due"], "2026-12-01T09:00:00+01:00");
        let task: Task = serde_json::from_value(structured["task"].clone()).unwrap();
        let expected = next_occurrence(&task).unwrap().unwrap();
        assert_eq!(structured["next_occurrence"]["task_id"], expected.task_id.to_string());
        let text = &result.content[0].as_text().unwrap().text;
        assert!(text.contains("next occurrence, due 2026-12-01T09:00:00+01:00"), "{text}");
    }

    #[test]
    fn a_one_off_task_has_no_next_occurrence() {
        let result = CompleteTask::success(
            &RestRequest::new(Method::POST, "/"),
            RestAnswer { status: StatusCode::OK, body: completed(None) },
        );
        assert_eq!(result.structured_content.unwrap()["next_occurrence"], Value::Null);
        let ended = CompleteTask::success(
            &RestRequest::new(Method::POST, "/"),
            RestAnswer { status: StatusCode::OK, body: completed(Some(json!({"rule": "FREQ=MONTHLY;COUNT=1"}))) },
        );
        assert!(ended.content[0].as_text().unwrap().text.contains("last occurrence"));
    }
}
