//! `add_task`: `POST /v1/tasks`.
//!
//! The arguments are `NewTask`'s fields (the REST body) plus `request_id`, sent as the
//! `Idempotency-Key`: the same `request_id` again (a retry after a timeout) gets the task the
//! first call created, not a second one, and the text says "already created". Without it every
//! call creates a task, so the tool is not idempotent in general (`idempotentHint: false`), and
//! its description tells agents to pass one.

use axum::http::{HeaderName, Method, StatusCode};
use rmcp::model::{CallToolResult, Tool, ToolAnnotations};
use schemars::JsonSchema;

use super::rest::{RestAnswer, RestRequest};
use super::schema;
use super::tool::{ArgError, Arguments, TaskTool, describe_task, success};
use crate::body::JSON;
use crate::routes::create::IDEMPOTENCY_KEY;
use crate::routes::paths;

/// The `add_task` tool.
#[derive(Debug)]
pub struct AddTask;

/// How urgent a task is (default `medium`).
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Medium,
    High,
    Urgent,
}

/// When to remind the user: at an instant, or a number of seconds before the due time (which
/// then moves with the due time and with every repetition).
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reminder {
    /// An RFC 3339 date-time with an offset, like `2026-12-31T08:45:00+01:00`, not in the past.
    At(String),
    /// Seconds before `due` (the task needs a due time), from 0 to 31622400 (a year), like 900.
    BeforeDueSeconds(u32),
}

/// Whether the next occurrence follows the schedule (`strict`, the default) or counts from
/// the completion (`after_completion`, for "every 2 weeks after I last did it").
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Strict,
    AfterCompletion,
}

/// How the task repeats. Needs `due`: the first occurrence is the task itself.
#[derive(Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Recurrence {
    /// An RFC 5545 RRULE, without the `RRULE:` prefix, evaluated in `time_zone`, like
    /// `FREQ=WEEKLY;BYDAY=MO`, `FREQ=MONTHLY;BYMONTHDAY=31` or `FREQ=DAILY;COUNT=10`.
    pub rule: String,
    /// `strict` (default) or `after_completion`.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Occurrences to skip, as RFC 3339 date-times with an offset; each must be an occurrence.
    #[serde(default)]
    #[schemars(length(max = 366))]
    pub exdates: Option<Vec<String>>,
}

/// The arguments of `add_task`: the REST API's `NewTask` and `request_id`.
#[derive(Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// What to do, one line of 1 to 200 characters, like "Buy milk".
    #[schemars(length(min = 1, max = 200))]
    pub title: String,
    /// Longer notes, up to 10000 characters.
    #[serde(default)]
    #[schemars(length(max = 10_000))]
    pub description: Option<String>,
    /// `low`, `medium` (default), `high` or `urgent`.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Labels: distinct words of 1 to 32 characters without spaces, at most 20, like
    /// ["home", "errands"].
    #[serde(default)]
    #[schemars(length(max = 20))]
    pub tags: Option<Vec<String>>,
    /// When it is due: an RFC 3339 date-time with an offset, like `2026-12-31T09:00:00+01:00`.
    /// May be in the past (an overdue task).
    #[serde(default)]
    #[schemars(extend("format" = "date-time"))]
    pub due: Option<String>,
    /// The IANA time zone the repetition follows (so 09:00 stays 09:00 across DST), like
    /// `Europe/Berlin`; default `UTC`.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// A reminder: `{"at": "<RFC 3339>"}` or `{"before_due_seconds": 900}`.
    #[serde(default)]
    pub reminder: Option<Reminder>,
    /// Makes the task repeat: `{"rule": "FREQ=WEEKLY;BYDAY=MO"}`. Needs `due`.
    #[serde(default)]
    pub recurrence: Option<Recurrence>,
    /// A fresh id you choose for this request (a UUID is good), 1 to 255 visible ASCII
    /// characters. Calling again with the same `request_id` and the same arguments returns the
    /// task the first call created instead of creating another, so a call whose answer was lost
    /// can be retried safely. Reusing it with different arguments is refused.
    #[serde(default)]
    #[schemars(length(min = 1, max = 255))]
    pub request_id: Option<String>,
}

/// The arguments that are not a field of the REST body.
const REQUEST_ID: &str = "request_id";

impl TaskTool for AddTask {
    const NAME: &'static str = "add_task";

    fn tool() -> Tool {
        Tool::new(
            Self::NAME,
            "Create a task on the user's to-do list. Only `title` is required; set `due` for a deadline, \
             `recurrence` for a repeating task, `reminder` to be reminded. Pass a fresh `request_id` and reuse it \
             if you retry after an error or timeout: the task is then created once. Returns the new task with \
             its `id`, which the other tools take as `task_id`.",
            schema::input::<Args>(),
        )
        .with_title("Add a task")
        .with_raw_output_schema(schema::rest("Task"))
        .with_annotations(
            ToolAnnotations::new().read_only(false).destructive(false).idempotent(false).open_world(false),
        )
    }

    fn request(mut arguments: Arguments) -> Result<RestRequest, ArgError> {
        let request_id = arguments.take_string(REQUEST_ID)?;
        let mut request = RestRequest::new(Method::POST, paths::TASKS);
        if let Some(key) = request_id {
            request = request.header(HeaderName::from_static(IDEMPOTENCY_KEY), key);
        }
        Ok(request.body(JSON, arguments.into_body()))
    }

    fn success(_request: &RestRequest, answer: RestAnswer) -> CallToolResult {
        let text = match answer.status {
            StatusCode::CREATED => format!("Created task {}.", describe_task(&answer.body)),
            _ => format!(
                "Already created by an earlier call with this request_id: task {}. No second task was made.",
                describe_task(&answer.body)
            ),
        };
        success(text, answer.body)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::{Value, json};

    use super::*;

    fn request_for(arguments: Value) -> Result<RestRequest, ArgError> {
        let Value::Object(map) = arguments else { panic!("an object") };
        AddTask::request(Arguments(map))
    }

    #[test]
    fn the_arguments_are_the_body_and_request_id_the_idempotency_key() {
        let request =
            request_for(json!({"title": "Buy milk", "due": "2026-12-31T09:00:00+01:00", "request_id": "r-1"})).unwrap();
        assert_eq!((request.method, request.uri.as_str()), (Method::POST, "/v1/tasks"));
        assert_eq!(request.headers, [(HeaderName::from_static("idempotency-key"), "r-1".to_owned())]);
        let (media_type, body) = request.body.unwrap();
        assert_eq!(media_type, "application/json");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, json!({"title": "Buy milk", "due": "2026-12-31T09:00:00+01:00"}));
    }

    #[test]
    fn what_the_rest_api_judges_is_forwarded_as_is() {
        // A missing title or an unknown field is the REST API's to refuse, with its message.
        let request = request_for(json!({"titel": "x"})).unwrap();
        let body: Value = serde_json::from_slice(&request.body.unwrap().1).unwrap();
        assert_eq!(body, json!({"titel": "x"}));
        assert!(request.headers.is_empty());
        assert_eq!(request_for(json!({"request_id": 5})).unwrap_err().field, "request_id");
    }

    #[test]
    fn the_arguments_are_new_task_and_request_id() {
        let schema = schema::input::<Args>();
        let mut arguments: Vec<String> = schema["properties"].as_object().unwrap().keys().cloned().collect();
        let mut expected = schema::rest_properties("NewTask");
        expected.push(REQUEST_ID.to_owned());
        arguments.sort();
        expected.sort();
        assert_eq!(arguments, expected);
        assert_eq!(schema["required"], json!(["title"]));
    }

    #[test]
    fn created_and_replayed_say_which() {
        let task = json!({"id": "t1", "title": "Buy milk", "status": "open", "priority": "medium"});
        let request = RestRequest::new(Method::POST, "/v1/tasks");
        let created = AddTask::success(&request, RestAnswer { status: StatusCode::CREATED, body: task.clone() });
        assert_eq!(created.structured_content, Some(task.clone()));
        assert!(created.content[0].as_text().unwrap().text.starts_with("Created task \"Buy milk\""));
        let replayed = AddTask::success(&request, RestAnswer { status: StatusCode::OK, body: task });
        assert!(replayed.content[0].as_text().unwrap().text.starts_with("Already created"));
    }
}
