//! What every tool shares: the [`TaskTool`] trait (a tool is its definition, the REST request
//! its arguments make, and the result its REST answer makes), the arguments as they arrive, and
//! REST answers as tool results.
//!
//! Arguments are forwarded to the REST API as they came, not re-validated here: the REST API's
//! messages (which name the field and say what it must be) are what the agent reads. Only what
//! is not part of a REST body is taken out first (`task_id` goes into the path, `request_id`
//! into `Idempotency-Key`, `if_match` into `If-Match`).

use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool};
use serde_json::Value;

use super::rest::{self, RestAnswer, RestRequest};
use crate::error::RETRY_AFTER_SECS;

/// One tool: a REST route seen as an MCP tool.
pub trait TaskTool {
    /// The tool's name, as agents call it.
    const NAME: &'static str;

    /// The tool's definition: description, schemas, annotations.
    fn tool() -> Tool;

    /// The REST request `arguments` make, or what is wrong with them.
    fn request(arguments: Arguments) -> Result<RestRequest, ArgError>;

    /// The result of a successful (2xx) REST answer to `request`.
    fn success(request: &RestRequest, answer: RestAnswer) -> CallToolResult;
}

/// Calls tool `T`: arguments → REST request → the REST routes in process → tool result.
pub async fn call<T: TaskTool>(
    rest: &Router,
    arguments: JsonObject,
    authorization: Option<&HeaderValue>,
) -> CallToolResult {
    let request = match T::request(Arguments(arguments)) {
        Ok(request) => request,
        Err(error) => return error.result(),
    };
    let answer = rest::send(rest, &request, authorization).await;
    if let Ok(answer) = &answer {
        tracing::info!(tool = T::NAME, status = answer.status.as_u16(), "tool called");
    }
    match answer {
        Ok(answer) if answer.status.is_success() => T::success(&request, answer),
        Ok(answer) => failure(&answer),
        Err(error) => {
            tracing::error!(tool = T::NAME, %error, "the REST request of a tool failed");
            retry_later("task-api could not complete the request")
        }
    }
}

/// An argument that cannot be made into a REST request: named, with what it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError {
    pub field: String,
    pub message: String,
}

impl ArgError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self { field: field.to_owned(), message: message.into() }
    }

    pub fn result(&self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(format!("{}: {}", self.field, self.message))])
    }
}

/// A tool call's arguments (the JSON object of `tools/call`), taken apart by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Arguments(pub JsonObject);

/// The description of `task_id` errors, shared by every tool that takes one.
const TASK_ID_RULE: &str = "must be the id of one of your tasks, a UUID like 0b8e4a4c-6f6e-4f55-9d43-1d2c1b0e5a7f \
                            (add_task and list_tasks give tasks' ids)";

impl Arguments {
    /// Takes `name` out: a string, or absent (or `null`).
    pub fn take_string(&mut self, name: &str) -> Result<Option<String>, ArgError> {
        match self.0.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) => Ok(Some(value)),
            Some(_) => Err(ArgError::new(name, "must be a string")),
        }
    }

    /// Takes the required `task_id` out, as a path segment (percent-encoded, so that no value
    /// can reach another route: whatever it is, a non-UUID is "task not found").
    pub fn take_task_id(&mut self) -> Result<String, ArgError> {
        match self.take_string("task_id")? {
            Some(id) if !id.trim().is_empty() => {
                Ok(url::form_urlencoded::byte_serialize(id.trim().as_bytes()).collect())
            }
            _ => Err(ArgError::new("task_id", format!("is required: it {TASK_ID_RULE}"))),
        }
    }

    /// Takes `if_match` out: the `version` of the task the change was decided on, as the
    /// `If-Match` entity tag (`"3"`).
    pub fn take_if_match(&mut self) -> Result<Option<String>, ArgError> {
        match self.0.remove("if_match") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v >= 1) => Ok(n.as_u64().map(|v| format!("\"{v}\""))),
            Some(_) => Err(ArgError::new(
                "if_match",
                "must be a task's version, a whole number of 1 or more (the `version` of the task as you read it)",
            )),
        }
    }

    /// Refuses any argument left: `known` are the tool's arguments.
    pub fn finish(self, tool: &str, known: &[&str]) -> Result<(), ArgError> {
        match self.0.keys().next() {
            None => Ok(()),
            Some(name) => Err(unknown(name, tool, known)),
        }
    }

    /// The arguments left, as a JSON body.
    pub fn into_body(self) -> Vec<u8> {
        // Serialising a map of JSON values cannot fail.
        serde_json::to_vec(&Value::Object(self.0)).unwrap_or_default()
    }
}

/// The error for an argument the tool does not take.
pub fn unknown(name: &str, tool: &str, known: &[&str]) -> ArgError {
    ArgError::new(name, format!("is not an argument of {tool}; its arguments are {}", known.join(", ")))
}

/// The text and JSON of a successful result.
pub fn success(text: String, structured: Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(structured);
    result
}

/// A tool error for a non-2xx REST answer.
pub fn failure(answer: &RestAnswer) -> CallToolResult {
    if answer.status.is_server_error() {
        return retry_later(&format!("task-api answered {}", answer.status));
    }
    if answer.status == StatusCode::TOO_MANY_REQUESTS {
        let message = error_message(&answer.body).unwrap_or_else(|| "too many requests".to_owned());
        return CallToolResult::error(vec![ContentBlock::text(format!("rate limited: {message}"))]);
    }
    CallToolResult::error(vec![ContentBlock::text(error_text(answer.status, &answer.body))])
}

/// A tool error that says to retry: the failure is the system's, not the arguments'.
pub fn retry_later(what: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!(
        "{what}; this is not a problem with the arguments: retry the same call in {RETRY_AFTER_SECS} seconds \
         or more (add_task is safe to retry when it has a request_id)."
    ))])
}

fn error_message(body: &Value) -> Option<String> {
    body.get("error").and_then(Value::as_str).map(str::to_owned)
}

/// The text of a 4xx REST error `{"error", "field"}`: `<argument>: <rule>`, with the REST
/// API's header names replaced by the tool arguments that set them, and a hint for "not found".
pub fn error_text(status: StatusCode, body: &Value) -> String {
    let message = error_message(body).unwrap_or_else(|| format!("refused ({status})"));
    let field = body.get("field").and_then(Value::as_str);
    let rename = |text: &str| text.replace("Idempotency-Key", "request_id").replace("If-Match", "if_match");
    let argument = field.map(|field| match field {
        "body" | "query" => "arguments".to_owned(),
        other => rename(other),
    });
    let message = rename(&message);
    if status == StatusCode::NOT_FOUND && message == "task not found" {
        return format!("task_id: task not found: {TASK_ID_RULE}");
    }
    match argument {
        Some(argument) if !message.starts_with(&format!("{argument}:")) => format!("{argument}: {message}"),
        _ => message,
    }
}

/// One line about a task (a REST task object): title, id, status, and what is set.
pub fn describe_task(task: &Value) -> String {
    let text = |name: &str| task.get(name).and_then(Value::as_str).unwrap_or_default();
    let mut line =
        format!("\"{}\" (id {}, {}, priority {}", text("title"), text("id"), text("status"), text("priority"));
    if let Some(due) = task.get("due").and_then(Value::as_str) {
        line.push_str(&format!(", due {due}"));
    }
    if let Some(rule) = task.pointer("/recurrence/rule").and_then(Value::as_str) {
        line.push_str(&format!(", repeats {rule}"));
    }
    let tags: Vec<&str> =
        task.get("tags").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    if !tags.is_empty() {
        line.push_str(&format!(", tags {}", tags.join(", ")));
    }
    if let Some(version) = task.get("version").and_then(Value::as_u64) {
        line.push_str(&format!(", version {version}"));
    }
    line.push(')');
    line
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    fn text(result: &CallToolResult) -> String {
        result.content[0].as_text().map(|t| t.text.clone()).unwrap_or_default()
    }

    fn args(value: Value) -> Arguments {
        match value {
            Value::Object(map) => Arguments(map),
            _ => panic!("arguments are an object"),
        }
    }

    #[test]
    fn validation_errors_name_the_field_and_the_rule_once() {
        let body = json!({"error": "title: must not be empty", "field": "title"});
        assert_eq!(error_text(StatusCode::BAD_REQUEST, &body), "title: must not be empty");
        let body = json!({"error": "must not be in the past", "field": "reminder"});
        assert_eq!(error_text(StatusCode::UNPROCESSABLE_ENTITY, &body), "reminder: must not be in the past");
        let body = json!({"error": "the body is not valid JSON", "field": "body"});
        assert_eq!(error_text(StatusCode::BAD_REQUEST, &body), "arguments: the body is not valid JSON");
    }

    #[test]
    fn header_names_become_the_arguments_that_set_them() {
        let body = json!({"error": "this Idempotency-Key was already used with a different request body", "field": "Idempotency-Key"});
        assert_eq!(
            error_text(StatusCode::UNPROCESSABLE_ENTITY, &body),
            "request_id: this request_id was already used with a different request body"
        );
        let body = json!({"error": "the task was changed: its current version is 4", "field": "If-Match"});
        assert_eq!(
            error_text(StatusCode::PRECONDITION_FAILED, &body),
            "if_match: the task was changed: its current version is 4"
        );
    }

    #[test]
    fn not_found_names_task_id() {
        let text = error_text(StatusCode::NOT_FOUND, &json!({"error": "task not found"}));
        assert!(text.starts_with("task_id: task not found: must be the id of one of your tasks"), "{text}");
    }

    #[test]
    fn server_errors_say_to_retry_and_client_errors_do_not() {
        let unavailable = failure(&RestAnswer { status: StatusCode::SERVICE_UNAVAILABLE, body: json!({"error": "x"}) });
        assert_eq!(unavailable.is_error, Some(true));
        assert!(text(&unavailable).contains("retry the same call"), "{}", text(&unavailable));
        let bad = failure(&RestAnswer {
            status: StatusCode::BAD_REQUEST,
            body: json!({"error": "q: at most 200 characters", "field": "q"}),
        });
        assert_eq!((bad.is_error, text(&bad)), (Some(true), "q: at most 200 characters".to_owned()));
        assert!(bad.structured_content.is_none(), "errors have no structured content to validate");
    }

    #[test]
    fn task_ids_are_required_strings_and_one_path_segment() {
        let mut arguments = args(json!({"task_id": "../../openapi.json?x=1"}));
        assert_eq!(arguments.take_task_id().unwrap(), "..%2F..%2Fopenapi.json%3Fx%3D1");
        for bad in [json!({}), json!({"task_id": 7}), json!({"task_id": " "}), json!({"task_id": null})] {
            let error = args(bad.clone()).take_task_id().unwrap_err();
            assert_eq!(error.field, "task_id", "{bad}");
        }
    }

    #[test]
    fn if_match_is_a_version() {
        assert_eq!(args(json!({"if_match": 3})).take_if_match().unwrap().as_deref(), Some("\"3\""));
        assert_eq!(args(json!({})).take_if_match().unwrap(), None);
        for bad in [json!({"if_match": 0}), json!({"if_match": "3"}), json!({"if_match": -1}), json!({"if_match": 1.5})]
        {
            assert_eq!(args(bad.clone()).take_if_match().unwrap_err().field, "if_match", "{bad}");
        }
    }

    #[test]
    fn unknown_arguments_are_named_with_the_known_ones() {
        let error = args(json!({"titel": "x"})).finish("get_task", &["task_id"]).unwrap_err();
        assert_eq!(error.field, "titel");
        assert_eq!(text(&error.result()), "titel: is not an argument of get_task; its arguments are task_id");
    }

    #[test]
    fn a_task_in_one_line() {
        let task = json!({"id": "t1", "title": "Pay rent", "status": "open", "priority": "high", "due": "2026-12-01T09:00:00+01:00", "recurrence": {"rule": "FREQ=MONTHLY"}, "tags": ["home"], "version": 2});
        assert_eq!(
            describe_task(&task),
            "\"Pay rent\" (id t1, open, priority high, due 2026-12-01T09:00:00+01:00, repeats FREQ=MONTHLY, tags home, version 2)"
        );
    }
}
