//! task-api's MCP transport: rmcp's Streamable HTTP service, its sessions and its JSON-RPC loop,
//! instantiated once, here, for a type-erased handler ([`Tools`]).
//!
//! **Why a crate of its own**: rmcp's server is generic over the handler (`serve_inner`,
//! `StreamableHttpService<S, M>`, the serde code of every message type reached from them), and
//! generic code is compiled in the crate that names the concrete type, at that crate's
//! opt-level. Named in task-api, it was ~1.5 MB of code at opt-level 3, more than the rest of
//! the MCP server together; named here, the release profile builds it for size (`z`, workspace
//! Cargo.toml) while task-api's request paths keep full optimisation. A tool call waits on the
//! store far longer than its JSON-RPC framing runs.
//!
//! task-api implements [`Tools`] (server info, the tool list, dispatch) and mounts [`router`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ListToolsResult, PaginatedRequestParams, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};

/// A boxed tool call.
pub type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<CallToolResponse, ErrorData>> + Send + 'a>>;

/// The MCP server's own part, as rmcp's [`ServerHandler`] would have it, object-safe: rmcp's
/// defaults answer everything else (`initialize`, `ping`, unsupported methods).
pub trait Tools: Send + Sync + 'static {
    /// What `initialize` answers: capabilities, server info, instructions.
    fn info(&self) -> ServerConfig;

    /// Every tool, in order.
    fn tools(&self) -> &[Tool];

    /// Runs one `tools/call`.
    fn call(&self, request: CallToolRequestParams, context: RequestContext<RoleServer>) -> CallFuture<'_>;
}

/// The one [`ServerHandler`] rmcp is instantiated for.
#[derive(Clone)]
struct Handler(Arc<dyn Tools>);

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler").field("tools", &self.0.tools().len()).finish()
    }
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        self.0.info()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.0.tools().to_vec()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.0.tools().iter().find(|tool| tool.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.0.call(request, context).await
    }
}

/// A router with rmcp's Streamable HTTP service at `path`, serving `tools` (one handler for every
/// session and stateless request: a clone is a reference count).
pub fn router(
    path: &str,
    tools: Arc<dyn Tools>,
    manager: Arc<LocalSessionManager>,
    config: StreamableHttpServerConfig,
) -> Router {
    let handler = Handler(tools);
    let service = StreamableHttpService::new(move || Ok(handler.clone()), manager, config);
    Router::new().route_service(path, service)
}
