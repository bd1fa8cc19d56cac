//! `delete_task`: `DELETE /v1/tasks/{id}`.
//!
//! The REST answer is 204 without a body, so the result is a small object saying which task is
//! gone. Deleting an open occurrence of a repeating task skips it and the series goes on;
//! `series: "end"` ends the series too (the REST route's `?series=end`). A second delete
//! answers "not found": the tool is idempotent in effect (`idempotentHint`), not in answer.

use axum::http::Method;
use rmcp::model::{CallToolResult, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde_json::json;

use super::rest::{RestAnswer, RestRequest};
use super::schema;
use super::tool::{ArgError, Arguments, TaskTool, success};
use crate::routes::paths;

/// The `delete_task` tool.
#[derive(Debug)]
pub struct DeleteTask;

/// What happens to the series of a repeating task.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Series {
    /// Skip this occurrence; the next one is still created (default).
    Continue,
    /// Delete this occurrence and end the series: nothing follows it.
    End,
}

/// The arguments of `delete_task`.
#[derive(Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The task's `id` (a UUID).
    pub task_id: String,
    /// For a repeating task: `continue` (default) skips this occurrence and keeps the series;
    /// `end` stops the series as well.
    #[serde(default)]
    pub series: Option<Series>,
    /// Only if the task's `version` is still this one (from get_task or list_tasks); otherwise
    /// nothing changes and the error says the current version.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub if_match: Option<u64>,
}

impl TaskTool for DeleteTask {
    const NAME: &'static str = "delete_task";

    fn tool() -> Tool {
        Tool::new(
            Self::NAME,
            "Delete one of the user's tasks. It disappears from list_tasks and get_task, but its history stays \
             readable with task_history. For a repeating task, deleting skips this occurrence and the next one \
             still comes, unless `series` is \"end\". Deleting an already deleted task answers \"not found\". \
             Ask the user before deleting.",
            schema::input::<Args>(),
        )
        .with_title("Delete a task")
        .with_raw_output_schema(schema::output(json!({
            "type": "object",
            "properties": {
                "task_id": {"type": "string", "description": "The deleted task's id."},
                "deleted": {"type": "boolean", "const": true},
                "series_ended": {"type": "boolean", "description": "Whether the series was ended too (series: end)."}
            },
            "required": ["task_id", "deleted", "series_ended"]
        })))
        .with_annotations(ToolAnnotations::new().read_only(false).destructive(true).idempotent(true).open_world(false))
    }

    fn request(mut arguments: Arguments) -> Result<RestRequest, ArgError> {
        let id = arguments.take_task_id()?;
        let if_match = arguments.take_if_match()?;
        let series = arguments.take_string("series")?;
        arguments.finish(Self::NAME, &["task_id", "series", "if_match"])?;
        let mut uri = paths::TASK.replace("{id}", &id);
        if let Some(series) = series {
            uri.push_str("?series=");
            uri.extend(url::form_urlencoded::byte_serialize(series.as_bytes()));
        }
        let request = RestRequest::new(Method::DELETE, uri);
        Ok(request.if_match(if_match))
    }

    fn success(request: &RestRequest, _answer: RestAnswer) -> CallToolResult {
        // The 204 has no body: the id and the series choice are the request's.
        let (path, query) = request.uri.split_once('?').unwrap_or((&request.uri, ""));
        let task_id = path.rsplit('/').next().unwrap_or_default().to_owned();
        let series_ended = query == "series=end";
        let text = if series_ended {
            format!("Deleted task {task_id} and ended its series.")
        } else {
            format!("Deleted task {task_id}.")
        };
        success(text, json!({"task_id": task_id, "deleted": true, "series_ended": series_ended}))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::http::{StatusCode, header};
    use serde_json::Value;

    use super::*;

    fn request(arguments: Value) -> Result<RestRequest, ArgError> {
        let Value::Object(map) = arguments else { panic!("an object") };
        DeleteTask::request(Arguments(map))
    }

    #[test]
    fn delete_with_series_and_if_match() {
        let plain = request(json!({"task_id": "t1"})).unwrap();
        assert_eq!((plain.method.clone(), plain.uri.as_str()), (Method::DELETE, "/v1/tasks/t1"));
        let ended = request(json!({"task_id": "t1", "series": "end", "if_match": 4})).unwrap();
        assert_eq!(ended.uri, "/v1/tasks/t1?series=end");
        assert_eq!(ended.headers, [(header::IF_MATCH, "\"4\"".to_owned())]);
        let result = DeleteTask::success(&ended, RestAnswer { status: StatusCode::NO_CONTENT, body: Value::Null });
        assert_eq!(result.structured_content, Some(json!({"task_id": "t1", "deleted": true, "series_ended": true})));
        let result = DeleteTask::success(&plain, RestAnswer { status: StatusCode::NO_CONTENT, body: Value::Null });
        assert_eq!(result.structured_content.unwrap()["series_ended"], false);
    }
}
