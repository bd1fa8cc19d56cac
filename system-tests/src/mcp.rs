//! A small client of task-api's MCP server (`/mcp`) that speaks the protocol itself: JSON-RPC
//! over Streamable HTTP with plain reqwest, `initialize` and `Mcp-Session-Id` sessions, answers
//! as JSON or as SSE. Plain HTTP rather than an SDK, for two users: `tests/mcp.rs` checks the
//! parts of the HTTP contract an SDK hides (status codes, headers, sessions bound to a user),
//! and `make bench` times tool calls, where an SDK's own work would be timed with them.

use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::json_body;

/// The revision [`Client`] negotiates: the newest with `initialize` and sessions that task-api's
/// rmcp knows (its `ProtocolVersion::LATEST_WITH_INITIALIZE`), which the official Python SDK
/// and the desktop clients speak. Later revisions are stateless, without a session.
pub const PROTOCOL: &str = "2025-11-25";

/// An open session: the `Mcp-Session-Id` the server assigned and the revision negotiated,
/// both sent with every request after `initialize`.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub protocol: String,
}

/// One answer of `/mcp`.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    /// The `Mcp-Session-Id` the answer assigned, if any (`initialize`).
    pub session: Option<String>,
    /// The JSON-RPC response (the message with an `id`), whether sent as JSON or as an SSE
    /// event; `Null` when there is none (a notification's 202, a refusal without a body).
    pub message: Value,
}

/// The `initialize` request at `version`.
pub fn initialize_request(version: &str) -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {},
                   "clientInfo": {"name": "system-tests", "version": "0"}}
    })
}

/// POSTs one JSON-RPC message to `/mcp` at `url`, with `token` as the bearer token, the
/// session's headers, and `headers`. An SSE answer is read only until its JSON-RPC response
/// arrived: the server may keep the stream open after it (keep-alive), and a timed call ends
/// when its result is read.
pub async fn post(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    session: Option<&Session>,
    message: &Value,
    headers: &[(&str, &str)],
) -> anyhow::Result<Reply> {
    let mut request = json_body(http.post(url), message).header("accept", "application/json, text/event-stream");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(session) = session {
        request = request.header("mcp-session-id", &session.id).header("mcp-protocol-version", &session.protocol);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let method = message["method"].as_str().unwrap_or("?");
    let mut response = request.send().await.with_context(|| format!("POST /mcp {method}"))?;
    let status = response.status();
    let session = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let sse = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    let mut body = String::new();
    while let Some(chunk) = response.chunk().await.with_context(|| format!("reading the answer to {method}"))? {
        body.push_str(&String::from_utf8_lossy(&chunk));
        if sse && let Some(message) = sse_response(&body) {
            return Ok(Reply { status, session, message });
        }
    }
    let message = if sse { Value::Null } else { serde_json::from_str(&body).unwrap_or(Value::Null) };
    Ok(Reply { status, session, message })
}

/// The JSON-RPC response among the complete events of an SSE body (`data:` lines, events ended
/// by a blank line); priming events and notifications have no `id`.
fn sse_response(body: &str) -> Option<Value> {
    let body = body.replace("\r\n", "\n");
    let complete = &body[..body.rfind("\n\n")?];
    complete.split("\n\n").find_map(|event| {
        let data: Vec<&str> = event.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
        serde_json::from_str::<Value>(&data.join("\n")).ok().filter(|m| m.get("id").is_some())
    })
}

/// One user's session with `/mcp`, for tool calls.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
    session: Session,
    next_id: u64,
}

impl Client {
    /// `initialize` at [`PROTOCOL`] as the user of `token`, then `notifications/initialized`:
    /// a session ready for tool calls. `url` is `/mcp`'s.
    pub async fn open(url: &str, token: &str, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(timeout).no_proxy().build().context("HTTP client")?;
        let reply = post(&http, url, Some(token), None, &initialize_request(PROTOCOL), &[]).await?;
        if reply.status != StatusCode::OK {
            bail!("initialize answered {}: {}", reply.status, reply.message);
        }
        let protocol = reply.message["result"]["protocolVersion"]
            .as_str()
            .with_context(|| format!("initialize answered no protocolVersion: {}", reply.message))?
            .to_owned();
        let id = reply.session.with_context(|| format!("initialize at {PROTOCOL} opened no session"))?;
        let session = Session { id, protocol };
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let reply = post(&http, url, Some(token), Some(&session), &initialized, &[]).await?;
        if !reply.status.is_success() {
            bail!("notifications/initialized answered {}: {}", reply.status, reply.message);
        }
        Ok(Self { http, url: url.to_owned(), token: token.to_owned(), session, next_id: 1 })
    }

    /// `tools/call` of `tool`: its result, or an error for a protocol error or a tool error
    /// (`isError`, whose text says what was wrong).
    pub async fn call_tool(&mut self, tool: &str, arguments: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let message = json!({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
                             "params": {"name": tool, "arguments": arguments}});
        let reply = post(&self.http, &self.url, Some(&self.token), Some(&self.session), &message, &[])
            .await
            .with_context(|| format!("calling {tool}"))?;
        if reply.status != StatusCode::OK {
            bail!("{tool} answered {}: {}", reply.status, reply.message);
        }
        let result = match reply.message.get("result") {
            Some(result) => result,
            None => bail!("{tool} answered no result: {}", reply.message),
        };
        if result["isError"] == json!(true) {
            bail!("{tool} answered a tool error: {}", result["content"][0]["text"]);
        }
        Ok(result.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_is_read_from_complete_sse_events_only() {
        let primed = "id: 0\nretry: 3000\ndata:\n\n";
        assert_eq!(sse_response(primed), None, "a priming event is no response");
        let response = r#"data: {"jsonrpc":"2.0","id":2,"result":{}}"#;
        assert_eq!(sse_response(&format!("{primed}{response}")), None, "an event not yet ended by a blank line");
        assert_eq!(sse_response(&format!("{primed}event: message\r\n{response}\r\n\r\n")).unwrap()["id"], 2);
        let notification = r#"data: {"jsonrpc":"2.0","method":"notifications/progress"}"#;
        assert_eq!(sse_response(&format!("{notification}\n\n")), None);
    }
}
