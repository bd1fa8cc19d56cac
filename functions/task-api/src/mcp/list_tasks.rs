//! `list_tasks`: `GET /v1/tasks`: the caller's tasks, searched, filtered, sorted and paged.
//!
//! The arguments are the list route's query parameters by name; the repeatable ones
//! (`priority`, `tag`) take arrays and become repeated parameters. Values are sent as given and
//! judged by the REST API's parser ([`crate::params`]), whose messages name the parameter.

use axum::http::Method;
use rmcp::model::{CallToolResult, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde_json::Value;

use super::add_task::Priority;
use super::rest::{RestAnswer, RestRequest};
use super::schema;
use super::tool::{ArgError, Arguments, TaskTool, describe_task, success, unknown};
use crate::routes::paths;

/// The `list_tasks` tool.
#[derive(Debug)]
pub struct ListTasks;

/// `open` or `completed`.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Completed,
}

/// A sort order: a field, ascending, or descending with a leading `-`.
#[derive(Debug, JsonSchema)]
pub enum Sort {
    #[serde(rename = "due")]
    Due,
    #[serde(rename = "-due")]
    DueDescending,
    #[serde(rename = "priority")]
    Priority,
    #[serde(rename = "-priority")]
    PriorityDescending,
    #[serde(rename = "created")]
    Created,
    #[serde(rename = "-created")]
    CreatedDescending,
    #[serde(rename = "updated")]
    Updated,
    #[serde(rename = "-updated")]
    UpdatedDescending,
    #[serde(rename = "title")]
    Title,
    #[serde(rename = "-title")]
    TitleDescending,
}

/// The arguments of `list_tasks`: the query parameters of `GET /v1/tasks`. All optional.
#[derive(Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Search text, matched in title and description regardless of case and accents (up to 200
    /// characters), like "rent".
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub q: Option<String>,
    /// Only `open` or only `completed` tasks (default: both).
    #[serde(default)]
    pub status: Option<Status>,
    /// Only tasks with any of these priorities.
    #[serde(default)]
    pub priority: Option<Vec<Priority>>,
    /// Only tasks that have all of these tags.
    #[serde(default)]
    #[schemars(length(max = 20))]
    pub tag: Option<Vec<String>>,
    /// Only tasks due before this instant: RFC 3339 with an offset, like `2026-12-31T00:00:00Z`.
    #[serde(default)]
    #[schemars(extend("format" = "date-time"))]
    pub due_before: Option<String>,
    /// Only tasks due after this instant: RFC 3339 with an offset.
    #[serde(default)]
    #[schemars(extend("format" = "date-time"))]
    pub due_after: Option<String>,
    /// Order: `due`, `priority`, `created`, `updated` or `title`, descending with a leading `-`
    /// (default `-created`, newest first). `due` puts tasks without a due time last.
    #[serde(default)]
    pub sort: Option<Sort>,
    /// Tasks per page, 1 to 200 (default 50).
    #[serde(default)]
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page, to get the next one (with the same other
    /// arguments).
    #[serde(default)]
    pub cursor: Option<String>,
}

/// The arguments, in the order the REST API lists its parameters.
pub const ARGUMENTS: [&str; 9] =
    ["q", "status", "priority", "tag", "due_before", "due_after", "sort", "limit", "cursor"];

/// The parameters that may repeat.
const REPEATABLE: [&str; 2] = ["priority", "tag"];

impl TaskTool for ListTasks {
    const NAME: &'static str = "list_tasks";

    fn tool() -> Tool {
        Tool::new(
            Self::NAME,
            "List the user's tasks, newest first unless `sort` says otherwise, with optional search (`q`) and \
             filters (status, priority, tag, due range). Returns one page (`items`) and, when there are more, \
             `next_cursor`: call again with `cursor` set to it and the same other arguments. A search (`q`, `tag`) \
             reads a bounded number of tasks per call, so a page may be short or empty while `next_cursor` is \
             set: follow it to search on. Use it to find a task's id for the other tools.",
            schema::input::<Args>(),
        )
        .with_title("List tasks")
        .with_raw_output_schema(schema::rest("TaskPage"))
        .with_annotations(ToolAnnotations::new().read_only(true).idempotent(true).open_world(false))
    }

    fn request(arguments: Arguments) -> Result<RestRequest, ArgError> {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for name in arguments.0.keys() {
            if !ARGUMENTS.contains(&name.as_str()) {
                return Err(unknown(name, Self::NAME, &ARGUMENTS));
            }
        }
        // In the REST API's order, so that equal calls make equal requests.
        for name in ARGUMENTS {
            let values = match arguments.0.get(name) {
                None | Some(Value::Null) => continue,
                Some(Value::Array(items)) if REPEATABLE.contains(&name) => items.iter().collect(),
                Some(value) => vec![value],
            };
            for value in values {
                let text = match value {
                    Value::String(text) => text.clone(),
                    Value::Number(number) => number.to_string(),
                    Value::Bool(flag) => flag.to_string(),
                    _ if REPEATABLE.contains(&name) => {
                        return Err(ArgError::new(name, "must be a list of strings, like [\"high\", \"urgent\"]"));
                    }
                    _ => return Err(ArgError::new(name, "must be a single value, not a list or object")),
                };
                query.append_pair(name, &text);
            }
        }
        let query = query.finish();
        let uri = if query.is_empty() { paths::TASKS.to_owned() } else { format!("{}?{query}", paths::TASKS) };
        Ok(RestRequest::new(Method::GET, uri))
    }

    fn success(_request: &RestRequest, answer: RestAnswer) -> CallToolResult {
        let items = answer.body.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
        let cursor = answer.body.get("next_cursor").and_then(Value::as_str);
        let mut text = match (items.len(), cursor) {
            // A search stops after a bounded number of tasks read: an empty page with a
            // cursor means "none so far", not "none".
            (0, Some(_)) => "No match among the tasks searched so far; more remain to search.".to_owned(),
            (0, None) => "No tasks match.".to_owned(),
            (1, _) => "1 task:".to_owned(),
            (n, _) => format!("{n} tasks:"),
        };
        for task in &items {
            text.push_str(&format!("\n- {}", describe_task(task)));
        }
        if let Some(cursor) = cursor {
            text.push_str(&format!("\nMore tasks follow: call list_tasks again with cursor \"{cursor}\"."));
        }
        success(text, answer.body)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;
    use crate::params::NAMES;
    use crate::sort::SortBy;

    fn request_for(arguments: Value) -> Result<RestRequest, ArgError> {
        let Value::Object(map) = arguments else { panic!("an object") };
        ListTasks::request(Arguments(map))
    }

    #[test]
    fn arguments_become_the_query_with_repeated_lists() {
        let request = request_for(json!({
            "priority": ["high", "urgent"], "tag": ["home"], "q": "rent & bills", "limit": 10,
            "due_before": "2026-12-31T09:00:00+01:00", "cursor": null
        }))
        .unwrap();
        assert_eq!(request.method, Method::GET);
        assert_eq!(
            request.uri,
            "/v1/tasks?q=rent+%26+bills&priority=high&priority=urgent&tag=home&due_before=2026-12-31T09%3A00%3A00%2B01%3A00&limit=10"
        );
        assert_eq!(request_for(json!({})).unwrap().uri, "/v1/tasks");
        assert_eq!(request_for(json!({"priority": "high"})).unwrap().uri, "/v1/tasks?priority=high");
    }

    #[test]
    fn an_empty_page_with_a_cursor_is_not_no_match() {
        let request = request_for(json!({"q": "rare"})).unwrap();
        let answer = |body: Value| {
            let result = ListTasks::success(&request, RestAnswer { status: axum::http::StatusCode::OK, body });
            serde_json::to_value(&result.content[0]).unwrap()["text"].as_str().unwrap().to_owned()
        };
        let partial = answer(json!({"items": [], "next_cursor": "abc"}));
        assert!(partial.starts_with("No match among the tasks searched so far"), "{partial}");
        assert!(partial.contains("cursor \"abc\""), "{partial}");
        assert_eq!(answer(json!({"items": [], "next_cursor": null})), "No tasks match.");
    }

    #[test]
    fn bad_shapes_and_unknown_arguments_name_the_argument() {
        assert_eq!(request_for(json!({"owner": "bob"})).unwrap_err().field, "owner");
        assert_eq!(request_for(json!({"status": ["open"]})).unwrap_err().field, "status");
        assert_eq!(request_for(json!({"tag": [{"a": 1}]})).unwrap_err().field, "tag");
    }

    #[test]
    fn the_arguments_are_the_rest_parameters() {
        let known: Vec<&str> = NAMES.iter().copied().filter(|n| *n != "owner").collect();
        assert_eq!(known, ARGUMENTS);
        let schema = schema::input::<Args>();
        let mut properties: Vec<&str> = schema["properties"].as_object().unwrap().keys().map(String::as_str).collect();
        properties.sort_unstable();
        let mut expected = ARGUMENTS.to_vec();
        expected.sort_unstable();
        assert_eq!(properties, expected);
        let text = serde_json::to_string(&*schema).unwrap();
        for sort in SortBy::all_names() {
            assert!(text.contains(&format!("\"{sort}\"")), "{sort} is not in the schema");
        }
    }
}
