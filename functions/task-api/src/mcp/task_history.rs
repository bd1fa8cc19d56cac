//! `task_history`: `GET /v1/tasks/{id}/audit`: the task's audit trail, oldest change first. A
//! deleted task's trail stays readable.

use axum::http::Method;
use rmcp::model::{CallToolResult, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde_json::Value;

use super::rest::{RestAnswer, RestRequest};
use super::schema;
use super::tool::{ArgError, Arguments, TaskTool, success};
use crate::routes::paths;

/// The `task_history` tool.
#[derive(Debug)]
pub struct TaskHistory;

/// The arguments of `task_history`.
#[derive(Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The task's `id` (a UUID); a deleted task's id works too.
    pub task_id: String,
}

impl TaskTool for TaskHistory {
    const NAME: &'static str = "task_history";

    fn tool() -> Tool {
        Tool::new(
            Self::NAME,
            "The change history (audit trail) of one of the user's tasks, oldest first: one entry per change \
             (created, updated, completed, reopened, deleted, ...) with when it happened, the task's version and \
             the task as it was after the change. Works for deleted tasks too. Changes appear within seconds of \
             being made.",
            schema::input::<Args>(),
        )
        .with_title("Task history")
        .with_raw_output_schema(schema::rest("AuditTrail"))
        .with_annotations(ToolAnnotations::new().read_only(true).idempotent(true).open_world(false))
    }

    fn request(mut arguments: Arguments) -> Result<RestRequest, ArgError> {
        let id = arguments.take_task_id()?;
        arguments.finish(Self::NAME, &["task_id"])?;
        Ok(RestRequest::new(Method::GET, paths::AUDIT.replace("{id}", &id)))
    }

    fn success(_request: &RestRequest, answer: RestAnswer) -> CallToolResult {
        let items = answer.body.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut text = match items.len() {
            0 => "No recorded changes yet (they appear within seconds of a change).".to_owned(),
            1 => "1 change:".to_owned(),
            n => format!("{n} changes, oldest first:"),
        };
        for entry in &items {
            let field = |name: &str| entry.get(name).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
            text.push_str(&format!(
                "\n- version {}: {} at {}",
                field("task_version").unwrap_or_default(),
                field("change").unwrap_or_default(),
                field("occurred_at").unwrap_or_default()
            ));
        }
        success(text, answer.body)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn history_is_the_audit_route() {
        let Value::Object(map) = json!({"task_id": "t"}) else { panic!() };
        let request = TaskHistory::request(Arguments(map)).unwrap();
        assert_eq!((request.method, request.uri.as_str()), (Method::GET, "/v1/tasks/t/audit"));
    }
}
