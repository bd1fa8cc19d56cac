//! `/mcp`: the Model Context Protocol server of task-api, so that AI agents (any MCP client)
//! work with a user's tasks through tools instead of learning the REST API.
//!
//! **The tools are another face of the REST API, not a second implementation.** A tool call
//! becomes the HTTP request of the matching REST route (`add_task` is `POST /v1/tasks`, with
//! `request_id` as its `Idempotency-Key`), carrying the caller's own `Authorization` header, and
//! is sent through task-api's own router in process ([`rest::send`], no network). Validation,
//! ownership (another user's task is "not found"), idempotency, ETags, events and the rate limit
//! are therefore the REST code's. The answer is mapped back: 2xx is a result with
//! `structuredContent` (the REST JSON) and a short text; 4xx is a result with `isError: true`
//! whose text names the argument and the rule, so that an agent can correct itself; 5xx says to
//! retry. Only a malformed JSON-RPC message (or an unknown tool) is a protocol error. Argument
//! names are the REST API's field and query names, so that one vocabulary serves both.
//!
//! **Transport**: Streamable HTTP from the official Rust SDK (`rmcp`), at the newest protocol
//! revision it knows, stateless for clients that negotiate `2026-07-28` and later, and with
//! `initialize` + `Mcp-Session-Id` sessions for older ones (the official Python SDK among them).
//!
//! **Authorization** follows the MCP authorization spec: the same bearer tokens as REST, checked
//! by the same [`crate::auth::User`] extractor before rmcp sees the request; without a valid
//! one the answer is 401 with `WWW-Authenticate: Bearer resource_metadata="…"`, pointing at the
//! protected-resource metadata (RFC 9728, [`metadata`]). Sessions are bound to the subject of
//! the token that opened them ([`sessions`]). `Host` and `Origin` are checked against allow
//! lists (DNS-rebinding protection), and a body over `MAX_BODY_BYTES` is refused with 413
//! before it is parsed ([`gate`]).
//!
//! # Layout
//!
//! - [`gate`]: what every `/mcp` request passes before rmcp: the token, the session's owner,
//!   the body limit.
//! - [`sessions`]: which user each `Mcp-Session-Id` belongs to, bounded by rmcp's live sessions.
//! - [`metadata`]: `GET /.well-known/oauth-protected-resource` and the resource URL.
//! - [`server`]: the handler rmcp's server (crate `mcp_transport`) calls: server info, the
//!   tool list, dispatch.
//! - [`tool`]: what every tool shares: the [`tool::TaskTool`] trait, argument handling, and
//!   REST answers as tool results.
//! - [`rest`]: one REST request through the router, in process.
//! - [`schema`]: input schemas from the argument types, output schemas from the OpenAPI
//!   document the REST API serves.
//! - one file per tool: [`add_task`], [`list_tasks`], [`get_task`], [`update_task`],
//!   [`complete_task`], [`reopen_task`], [`delete_task`], [`task_history`].

pub mod add_task;
pub mod complete_task;
pub mod delete_task;
pub mod gate;
pub mod get_task;
pub mod list_tasks;
pub mod metadata;
pub mod reopen_task;
pub mod rest;
pub mod schema;
pub mod server;
pub mod sessions;
pub mod task_history;
pub mod tool;
pub mod update_task;

use std::sync::Arc;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::routing::get;
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use url::Url;

use crate::app::App;
use crate::config::Config;

/// Where the MCP server listens.
pub const PATH: &str = "/mcp";

/// The protected-resource metadata (RFC 9728), at the root form the `WWW-Authenticate` of a 401
/// names, and at the path-suffixed form RFC 9728 §3.1 derives from the resource `/mcp`.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";
pub const METADATA_PATH_FOR_MCP: &str = "/.well-known/oauth-protected-resource/mcp";

/// `Host` values always accepted: loopback (devhost, `dapr run`, a port-forward) and the names
/// under which other pods reach the `task-api` Service of the manifests (namespace `todo`). A
/// name only a cluster's DNS resolves cannot be rebound by a web page elsewhere. Any port.
pub const DEFAULT_ALLOWED_HOSTS: [&str; 7] = [
    "localhost",
    "127.0.0.1",
    "::1",
    "task-api",
    "task-api.todo",
    "task-api.todo.svc",
    "task-api.todo.svc.cluster.local",
];

/// Browser origins always accepted: pages served from this machine (an MCP inspector).
pub const DEFAULT_ALLOWED_ORIGINS: [&str; 3] = ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"];

/// The MCP settings of [`Config`], parsed.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `MCP_RESOURCE_URL`, if set.
    pub resource_url: Option<Url>,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    /// `JWT_ISSUER`: the authorization server clients get tokens from, when one is configured.
    pub authorization_servers: Vec<String>,
}

impl Settings {
    /// The settings of `config` (checked by [`Config::checked`]: an unusable `MCP_RESOURCE_URL`
    /// never gets here; were it to, it is left out and derived per request).
    pub fn from_config(config: &Config) -> Self {
        let resource_url = config.mcp_resource_url.as_deref().and_then(|raw| resource_url(raw).ok());
        let list = |raw: &Option<String>| -> Vec<String> {
            raw.as_deref()
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let mut allowed_hosts: Vec<String> = DEFAULT_ALLOWED_HOSTS.iter().map(|h| (*h).to_owned()).collect();
        let mut allowed_origins: Vec<String> = DEFAULT_ALLOWED_ORIGINS.iter().map(|o| (*o).to_owned()).collect();
        if let Some(url) = &resource_url {
            if let Some(host) = url.host_str() {
                allowed_hosts.push(host.trim_matches(['[', ']']).to_owned());
            }
            allowed_origins.push(url.origin().ascii_serialization());
        }
        allowed_hosts.extend(list(&config.mcp_allowed_hosts));
        allowed_origins.extend(list(&config.mcp_allowed_origins));
        Self {
            resource_url,
            allowed_hosts,
            allowed_origins,
            authorization_servers: config.jwt_issuer.iter().cloned().collect(),
        }
    }
}

/// `MCP_RESOURCE_URL` as a URL: absolute, http(s), without query or fragment (RFC 9728 §1.2: a
/// resource identifier has none).
pub fn resource_url(raw: &str) -> anyhow::Result<Url> {
    let url = Url::parse(raw.trim()).with_context(|| format!("MCP_RESOURCE_URL {raw:?} is not an absolute URL"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        bail!("MCP_RESOURCE_URL {raw:?} must be an http or https URL, like https://todo.example/mcp");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("MCP_RESOURCE_URL {raw:?} must have no query or fragment (RFC 9728)");
    }
    Ok(url)
}

/// `/mcp` and the protected-resource metadata, to merge into the public router. `rest` is the
/// REST router the tools send their requests through.
pub fn router(app: App, rest: Router, settings: Settings) -> Router {
    let settings = Arc::new(settings);
    let manager = Arc::new(LocalSessionManager::default());
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(settings.allowed_hosts.clone())
        .with_allowed_origins(settings.allowed_origins.clone())
        // Validate Origin even were the list empty: a present, unlisted Origin is refused.
        .enforce_origin_validation();
    let handler = Arc::new(server::TodoServer::new(rest));
    let checks = Arc::new(gate::Gate {
        app,
        settings: settings.clone(),
        sessions: Arc::new(sessions::Sessions::new(manager.clone())),
    });
    mcp_transport::router(PATH, handler, manager, config)
        .route_layer(axum::middleware::from_fn_with_state(checks, gate::check))
        .route(METADATA_PATH, get(metadata::handler).with_state(settings.clone()))
        .route(METADATA_PATH_FOR_MCP, get(metadata::handler).with_state(settings))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_resource_url_and_the_lists_extend_the_defaults() {
        let mut config = Config::with_secret("0123456789abcdef0123456789abcdef");
        config.mcp_resource_url = Some("https://todo.example/mcp".into());
        config.mcp_allowed_hosts = Some(" api.example , ,other.example:8443".into());
        config.mcp_allowed_origins = Some("https://app.example".into());
        config.jwt_issuer = Some("https://id.example".into());
        let settings = Settings::from_config(&config);
        for host in
            ["localhost", "task-api.todo.svc.cluster.local", "todo.example", "api.example", "other.example:8443"]
        {
            assert!(settings.allowed_hosts.iter().any(|h| h == host), "{host}: {:?}", settings.allowed_hosts);
        }
        for origin in ["http://localhost:*", "https://todo.example", "https://app.example"] {
            assert!(settings.allowed_origins.iter().any(|o| o == origin), "{origin}: {:?}", settings.allowed_origins);
        }
        assert_eq!(settings.authorization_servers, ["https://id.example"]);
        let defaults = Settings::from_config(&Config::with_secret("0123456789abcdef0123456789abcdef"));
        assert_eq!(defaults.allowed_hosts.len(), DEFAULT_ALLOWED_HOSTS.len());
        assert!(defaults.authorization_servers.is_empty());
    }

    #[test]
    fn resource_urls_are_absolute_http_without_query() {
        assert!(resource_url("https://todo.example/mcp").is_ok());
        assert!(resource_url("http://127.0.0.1:3000/mcp").is_ok());
        for bad in ["todo.example/mcp", "ftp://todo.example/mcp", "https://todo.example/mcp?x=1", "https://x/mcp#a"] {
            assert!(resource_url(bad).is_err(), "{bad}");
        }
    }
}
