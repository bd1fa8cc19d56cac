//! `get_task`: `GET /v1/tasks/{id}`: one of the caller's tasks, all its fields.

use axum::http::Method;
use rmcp::model::{CallToolResult, Tool, ToolAnnotations};
use schemars::JsonSchema;

use super::rest::{RestAnswer, RestRequest};
use super::schema;
use super::tool::{ArgError, Arguments, TaskTool, describe_task, success};
use crate::routes::paths;

/// The `get_task` tool.
#[derive(Debug)]
pub struct GetTask;

/// The arguments of `get_task`.
#[derive(Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The task's `id` (a UUID), as add_task or list_tasks gave it.
    pub task_id: String,
}

impl TaskTool for GetTask {
    const NAME: &'static str = "get_task";

    fn tool() -> Tool {
        Tool::new(
            Self::NAME,
            "Read one of the user's tasks by its id: title, description, status, priority, tags, due time, time \
             zone, reminder, recurrence, and its `version` (pass it to update_task as `if_match` to change the \
             task only if nobody changed it since). A deleted task or another user's is \"not found\".",
            schema::input::<Args>(),
        )
        .with_title("Get a task")
        .with_raw_output_schema(schema::rest("Task"))
        .with_annotations(ToolAnnotations::new().read_only(true).idempotent(true).open_world(false))
    }

    fn request(mut arguments: Arguments) -> Result<RestRequest, ArgError> {
        let id = arguments.take_task_id()?;
        arguments.finish(Self::NAME, &["task_id"])?;
        Ok(RestRequest::new(Method::GET, paths::TASK.replace("{id}", &id)))
    }

    fn success(_request: &RestRequest, answer: RestAnswer) -> CallToolResult {
        success(format!("Task {}.", describe_task(&answer.body)), answer.body)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::{Value, json};

    use super::*;

    fn request_for(arguments: Value) -> Result<RestRequest, ArgError> {
        let Value::Object(map) = arguments else { panic!("an object") };
        GetTask::request(Arguments(map))
    }

    #[test]
    fn task_id_goes_into_the_path() {
        let request = request_for(json!({"task_id": "0b8e4a4c-6f6e-4f55-9d43-1d2c1b0e5a7f"})).unwrap();
        assert_eq!(
            (request.method, request.uri.as_str()),
            (Method::GET, "/v1/tasks/0b8e4a4c-6f6e-4f55-9d43-1d2c1b0e5a7f")
        );
        assert!(request.body.is_none());
        assert_eq!(request_for(json!({})).unwrap_err().field, "task_id");
        assert_eq!(request_for(json!({"task_id": "x", "title": "y"})).unwrap_err().field, "title");
    }
}
