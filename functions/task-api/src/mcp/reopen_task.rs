//! `reopen_task`: `POST /v1/tasks/{id}/reopen`: a completed task is open again. Reopening an
//! open task changes nothing, so the tool is idempotent.

use axum::http::Method;
use rmcp::model::{CallToolResult, Tool, ToolAnnotations};
use schemars::JsonSchema;

use super::rest::{RestAnswer, RestRequest};
use super::schema;
use super::tool::{ArgError, Arguments, TaskTool, describe_task, success};
use crate::routes::paths;

/// The `reopen_task` tool.
#[derive(Debug)]
pub struct ReopenTask;

/// The arguments of `reopen_task`.
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

impl TaskTool for ReopenTask {
    const NAME: &'static str = "reopen_task";

    fn tool() -> Tool {
        Tool::new(
            Self::NAME,
            "Mark a completed task as open again (undo complete_task). The task keeps its place in a repeating \
             series, so completing it again does not create a second next occurrence. Reopening an open task \
             changes nothing. Returns the task.",
            schema::input::<Args>(),
        )
        .with_title("Reopen a task")
        .with_raw_output_schema(schema::rest("Task"))
        .with_annotations(ToolAnnotations::new().read_only(false).destructive(false).idempotent(true).open_world(false))
    }

    fn request(mut arguments: Arguments) -> Result<RestRequest, ArgError> {
        let id = arguments.take_task_id()?;
        let if_match = arguments.take_if_match()?;
        arguments.finish(Self::NAME, &["task_id", "if_match"])?;
        let request = RestRequest::new(Method::POST, paths::REOPEN.replace("{id}", &id));
        Ok(request.if_match(if_match))
    }

    fn success(_request: &RestRequest, answer: RestAnswer) -> CallToolResult {
        success(format!("Reopened task {}.", describe_task(&answer.body)), answer.body)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::http::header;
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn reopen_is_a_post_with_if_match() {
        let Value::Object(map) = json!({"task_id": "t", "if_match": 2}) else { panic!() };
        let request = ReopenTask::request(Arguments(map)).unwrap();
        assert_eq!((request.method, request.uri.as_str()), (Method::POST, "/v1/tasks/t/reopen"));
        assert_eq!(request.headers, [(header::IF_MATCH, "\"2\"".to_owned())]);
    }
}
