//! `update_task`: `PATCH /v1/tasks/{id}` with a JSON merge patch (RFC 7396).
//!
//! The arguments are `task_id`, an optional `if_match`, and the fields to change, named and
//! shaped as in the REST API's `TaskPatch`: an absent field is unchanged, `null` removes it
//! (where a task may lack it), `reminder` and `recurrence` merge member by member. They are sent
//! as the patch itself, so the REST code decides what a valid result is.
//!
//! Annotations: not read-only, and destructive, because a patch can remove what it names
//! (`"description": null`, `"recurrence": null` ends a series, `"reminder": null`); idempotent,
//! because applying the same patch twice leaves the task as applying it once (RFC 7396 patches
//! set values, they do not add to them).

use axum::http::Method;
use rmcp::model::{CallToolResult, Tool, ToolAnnotations};
use schemars::JsonSchema;

use super::add_task::{Mode, Priority, Reminder};
use super::rest::{RestAnswer, RestRequest};
use super::schema;
use super::tool::{ArgError, Arguments, TaskTool, describe_task, success};
use crate::body::MERGE_PATCH_JSON;
use crate::routes::paths;

/// The `update_task` tool.
#[derive(Debug)]
pub struct UpdateTask;

/// Changes to the repetition, merged into the current one: give only what changes.
#[derive(Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurrencePatch {
    /// A new RFC 5545 RRULE, like `FREQ=WEEKLY;BYDAY=MO,WE`. Cannot be null: to stop repeating,
    /// set `recurrence` itself to null.
    #[serde(default)]
    pub rule: Option<String>,
    /// `strict` or `after_completion`; null restores `strict`.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Occurrences to skip (RFC 3339 date-times with an offset), replacing the list; null skips none.
    #[serde(default)]
    pub exdates: Option<Vec<String>>,
}

/// The arguments of `update_task`: `task_id`, `if_match` and the REST API's `TaskPatch`.
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
    /// A new title, 1 to 200 characters on one line. Cannot be null.
    #[serde(default)]
    #[schemars(length(min = 1, max = 200))]
    pub title: Option<String>,
    /// New notes (up to 10000 characters); null removes them.
    #[serde(default)]
    pub description: Option<String>,
    /// `low`, `medium`, `high` or `urgent`. Cannot be null.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// The new tags, replacing all current ones; null or [] removes them.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// A new due time, RFC 3339 with an offset like `2026-12-31T09:00:00+01:00`; null removes
    /// it (not possible while the task repeats).
    #[serde(default)]
    #[schemars(extend("format" = "date-time"))]
    pub due: Option<String>,
    /// A new IANA time zone, like `Europe/Berlin`. Cannot be null.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// A new reminder, `{"at": "<RFC 3339>"}` or `{"before_due_seconds": 900}`; null removes it.
    /// To switch kinds, set the other member to null: `{"at": "...", "before_due_seconds": null}`.
    #[serde(default)]
    pub reminder: Option<Reminder>,
    /// Changes to the repetition, merged into it (`{"rule": "FREQ=DAILY"}`); null stops the task
    /// repeating.
    #[serde(default)]
    pub recurrence: Option<RecurrencePatch>,
}

impl TaskTool for UpdateTask {
    const NAME: &'static str = "update_task";

    fn tool() -> Tool {
        Tool::new(
            Self::NAME,
            "Change some fields of one of the user's tasks; fields you leave out stay as they are, and null \
             removes a field (description, tags, due, reminder, recurrence). To mark a task done use \
             complete_task, not this. Pass `if_match` with the version you read to avoid overwriting someone \
             else's change. Returns the updated task.",
            schema::input::<Args>(),
        )
        .with_title("Update a task")
        .with_raw_output_schema(schema::rest("Task"))
        .with_annotations(ToolAnnotations::new().read_only(false).destructive(true).idempotent(true).open_world(false))
    }

    fn request(mut arguments: Arguments) -> Result<RestRequest, ArgError> {
        let id = arguments.take_task_id()?;
        let if_match = arguments.take_if_match()?;
        let request = RestRequest::new(Method::PATCH, paths::TASK.replace("{id}", &id))
            .body(MERGE_PATCH_JSON, arguments.into_body());
        Ok(request.if_match(if_match))
    }

    fn success(_request: &RestRequest, answer: RestAnswer) -> CallToolResult {
        success(format!("Updated task {}.", describe_task(&answer.body)), answer.body)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::http::header;
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn the_fields_are_the_merge_patch_and_nulls_stay() {
        let Value::Object(map) = json!({"task_id": "t1", "if_match": 3, "title": "New", "due": null}) else { panic!() };
        let request = UpdateTask::request(Arguments(map)).unwrap();
        assert_eq!((request.method.clone(), request.uri.as_str()), (Method::PATCH, "/v1/tasks/t1"));
        assert_eq!(request.headers, [(header::IF_MATCH, "\"3\"".to_owned())]);
        let (media_type, body) = request.body.unwrap();
        assert_eq!(media_type, "application/merge-patch+json");
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), json!({"title": "New", "due": null}));
    }

    #[test]
    fn the_arguments_are_task_patch_task_id_and_if_match() {
        let schema = schema::input::<Args>();
        let mut arguments: Vec<String> = schema["properties"].as_object().unwrap().keys().cloned().collect();
        let mut expected = schema::rest_properties("TaskPatch");
        // The arguments that are not part of the patch.
        expected.extend(["task_id", "if_match"].map(str::to_owned));
        arguments.sort();
        expected.sort();
        assert_eq!(arguments, expected);
        assert_eq!(schema["required"], json!(["task_id"]));
    }
}
