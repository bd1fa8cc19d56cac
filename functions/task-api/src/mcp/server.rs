//! The MCP server's handler: who the server is, which tools it has, and which tool a call runs.
//!
//! One handler value serves every session (rmcp, in crate `mcp_transport`, shares it behind an
//! `Arc<dyn Tools>` among every session and stateless request). It holds the REST router the
//! tools send their requests through and the tool list, built once.

use std::sync::Arc;

use axum::Router;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use mcp_transport::{CallFuture, Tools};
use rmcp::model::{CallToolRequestParams, CallToolResponse, Implementation, ServerCapabilities, ServerConfig, Tool};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use super::add_task::AddTask;
use super::complete_task::CompleteTask;
use super::delete_task::DeleteTask;
use super::get_task::GetTask;
use super::list_tasks::ListTasks;
use super::reopen_task::ReopenTask;
use super::task_history::TaskHistory;
use super::tool::{TaskTool, call};
use super::update_task::UpdateTask;

/// What `initialize` tells the client about using the tools.
pub const INSTRUCTIONS: &str = "The signed-in user's to-do list. Every tool acts on that user's tasks only. \
    Find tasks with list_tasks (search with q, filter, sort, page with cursor), create them with add_task (pass a \
    fresh request_id, and the same one again if you retry), change them with update_task, complete_task, \
    reopen_task and delete_task, and see a task's change history with task_history. Times are RFC 3339 with an \
    offset (2026-12-31T09:00:00+01:00); repeating tasks use an RFC 5545 RRULE (FREQ=WEEKLY;BYDAY=MO). A result \
    with isError names the argument to fix and what it must be.";

/// The MCP server of task-api.
#[derive(Debug, Clone)]
pub struct TodoServer {
    rest: Router,
    tools: Arc<[Tool]>,
}

impl TodoServer {
    pub fn new(rest: Router) -> Self {
        Self { rest, tools: tools().into() }
    }
}

/// Every tool, in the order a person would meet them.
pub fn tools() -> Vec<Tool> {
    vec![
        AddTask::tool(),
        ListTasks::tool(),
        GetTask::tool(),
        UpdateTask::tool(),
        CompleteTask::tool(),
        ReopenTask::tool(),
        DeleteTask::tool(),
        TaskHistory::tool(),
    ]
}

/// rmcp's server, instantiated once in `mcp_transport` (built for size), calls these.
impl Tools for TodoServer {
    fn info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(crate::APP_ID, env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    fn tools(&self) -> &[Tool] {
        &self.tools
    }

    fn call(&self, request: CallToolRequestParams, context: RequestContext<RoleServer>) -> CallFuture<'_> {
        Box::pin(self.call_tool(request, context))
    }
}

impl TodoServer {
    /// Runs a tool with the `Authorization` header of the HTTP request that carried the call
    /// (rmcp puts that request's [`Parts`] into the context). An unknown tool is a protocol
    /// error (JSON-RPC `-32602`, as the MCP spec lists it); everything else is a tool result.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let authorization = context.extensions.get::<Parts>().and_then(|parts| parts.headers.get(AUTHORIZATION));
        let arguments = request.arguments.unwrap_or_default();
        let rest = &self.rest;
        let result = match request.name.as_ref() {
            AddTask::NAME => call::<AddTask>(rest, arguments, authorization).await,
            ListTasks::NAME => call::<ListTasks>(rest, arguments, authorization).await,
            GetTask::NAME => call::<GetTask>(rest, arguments, authorization).await,
            UpdateTask::NAME => call::<UpdateTask>(rest, arguments, authorization).await,
            CompleteTask::NAME => call::<CompleteTask>(rest, arguments, authorization).await,
            ReopenTask::NAME => call::<ReopenTask>(rest, arguments, authorization).await,
            DeleteTask::NAME => call::<DeleteTask>(rest, arguments, authorization).await,
            TaskHistory::NAME => call::<TaskHistory>(rest, arguments, authorization).await,
            other => {
                let known: Vec<&str> = self.tools.iter().map(|tool| tool.name.as_ref()).collect();
                return Err(ErrorData::invalid_params(
                    format!("unknown tool {other:?}; the tools are {}", known.join(", ")),
                    None,
                ));
            }
        };
        Ok(result.into())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn every_tool_has_schemas_annotations_and_a_description() {
        let tools = tools();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "add_task",
                "list_tasks",
                "get_task",
                "update_task",
                "complete_task",
                "reopen_task",
                "delete_task",
                "task_history"
            ]
        );
        for tool in &tools {
            let name = &tool.name;
            assert_eq!(tool.input_schema["type"], "object", "{name}");
            assert!(tool.input_schema["properties"].as_object().is_some_and(|p| !p.is_empty()), "{name}");
            let output = tool.output_schema.as_ref().expect("an output schema");
            assert_eq!(output["type"], "object", "{name}");
            let annotations = tool.annotations.as_ref().expect("annotations");
            assert_eq!(annotations.open_world_hint, Some(false), "{name}");
            assert!(annotations.read_only_hint.is_some(), "{name}");
            assert!(tool.description.as_ref().is_some_and(|d| d.len() > 80), "{name}");
        }
        let read_only: Vec<&str> = tools
            .iter()
            .filter(|t| t.annotations.as_ref().and_then(|a| a.read_only_hint) == Some(true))
            .map(|t| t.name.as_ref())
            .collect();
        assert_eq!(read_only, ["list_tasks", "get_task", "task_history"]);
    }
}
