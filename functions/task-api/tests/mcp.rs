//! `/mcp` end to end, as an MCP client sees it: raw JSON-RPC over Streamable HTTP against the
//! real router (through the runtime) and the stub sidecar, the way the official Python SDK
//! speaks it (`initialize`, `Mcp-Session-Id`, `MCP-Protocol-Version`, SSE answers).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Harness, token};
use dapr_fn::clock::Clock;
use dapr_fn::runtime::RuntimeConfig;
use serde_json::{Value, json};
use todo_core::events::task_id_for_request;

const PROTOCOL: &str = "2025-06-18";

/// One HTTP answer of `/mcp`: status, headers and the JSON-RPC messages of its body (JSON or SSE).
struct Reply {
    status: u16,
    headers: axum::http::HeaderMap,
    messages: Vec<Value>,
    text: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The JSON-RPC response (the message with an `id`).
    fn response(&self) -> &Value {
        self.messages.iter().find(|m| m.get("id").is_some()).unwrap_or_else(|| panic!("no response: {}", self.text))
    }
}

/// A client session: a user's token and, after `initialize`, the session id.
struct Client<'a> {
    h: &'a Harness,
    authorization: Option<String>,
    session: Option<String>,
    next_id: u64,
}

impl<'a> Client<'a> {
    fn new(h: &'a Harness, user: &str) -> Self {
        Self { h, authorization: Some(format!("Bearer {}", token(user))), session: None, next_id: 1 }
    }

    async fn post(&self, body: &Value, extra: &[(&str, &str)]) -> Reply {
        self.post_bytes(serde_json::to_vec(body).unwrap(), extra).await
    }

    async fn post_bytes(&self, body: Vec<u8>, extra: &[(&str, &str)]) -> Reply {
        let mut request = self
            .h
            .app
            .http
            .post(format!("{}/mcp", self.h.app.url))
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body);
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session).header("mcp-protocol-version", PROTOCOL);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let mut response = request.send().await.expect("task-api answered");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let sse = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/event-stream"));
        let mut text = String::new();
        let mut messages = Vec::new();
        // An SSE answer may stay open after the response (keep-alive): read until a response.
        while let Some(chunk) = response.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if sse {
                messages = sse_messages(&text);
                if messages.iter().any(|m| m.get("id").is_some()) {
                    break;
                }
            }
        }
        if !sse && !text.trim().is_empty() {
            messages = serde_json::from_str::<Value>(&text).map(|m| vec![m]).unwrap_or_default();
        }
        Reply { status, headers, messages, text }
    }

    /// `initialize` at `version`, then `notifications/initialized`; returns the result.
    async fn initialize(&mut self, version: &str) -> Value {
        let reply = self
            .post(
                &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": version, "capabilities": {},
                    "clientInfo": {"name": "task-api-tests", "version": "1"}}}),
                &[],
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        self.session = Some(reply.header("mcp-session-id").expect("a session id").to_owned());
        let result = reply.response()["result"].clone();
        let initialized = self.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}), &[]).await;
        assert_eq!(initialized.status, 202, "{}", initialized.text);
        result
    }

    async fn request(&mut self, method: &str, params: Value) -> Reply {
        self.next_id += 1;
        self.post(&json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}), &[]).await
    }

    /// `tools/call`: the tool result.
    async fn call(&mut self, tool: &str, arguments: Value) -> Value {
        let reply = self.request("tools/call", json!({"name": tool, "arguments": arguments})).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let response = reply.response();
        assert!(response.get("error").is_none(), "a protocol error: {response}");
        response["result"].clone()
    }
}

fn sse_messages(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
            let data = data.join("\n");
            (!data.trim().is_empty()).then(|| serde_json::from_str(&data).ok()).flatten()
        })
        .collect()
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

fn is_error(result: &Value) -> bool {
    result["isError"] == json!(true)
}

#[tokio::test]
async fn initialize_negotiates_and_lists_the_eight_tools_with_schemas() {
    let h = Harness::start().await;
    let mut client = Client::new(&h, "alice");
    let info = client.initialize("2025-11-25").await;
    assert_eq!(info["protocolVersion"], "2025-11-25");
    assert_eq!(info["serverInfo"]["name"], "task-api");
    assert!(info["capabilities"]["tools"].is_object(), "{info}");
    assert!(info["instructions"].as_str().unwrap().contains("list_tasks"));

    let reply = client.request("tools/list", json!({})).await;
    let tools = reply.response()["result"]["tools"].as_array().unwrap().clone();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
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
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        assert_eq!(tool["outputSchema"]["type"], "object", "{tool}");
        assert_eq!(tool["annotations"]["openWorldHint"], false, "{tool}");
    }
    let add = &tools[0];
    assert_eq!(add["inputSchema"]["required"], json!(["title"]));
    for field in
        ["title", "description", "priority", "tags", "due", "time_zone", "recurrence", "reminder", "request_id"]
    {
        assert!(add["inputSchema"]["properties"][field].is_object(), "add_task.{field}");
    }
    assert_eq!(tools[6]["annotations"]["destructiveHint"], true, "delete_task");
    assert_eq!(tools[1]["annotations"]["readOnlyHint"], true, "list_tasks");

    // An older revision is still answered.
    let mut old = Client::new(&h, "alice");
    assert_eq!(old.initialize("2025-03-26").await["protocolVersion"], "2025-03-26");
}

#[tokio::test]
async fn a_conversation_add_get_list_update_complete_history_delete() {
    let h = Harness::start().await;
    let mut client = Client::new(&h, "alice");
    client.initialize(PROTOCOL).await;

    let added = client
        .call(
            "add_task",
            json!({"title": "Pay rent", "priority": "high", "tags": ["home"], "due": "2026-12-01T09:00:00+01:00",
                   "time_zone": "Europe/Berlin", "recurrence": {"rule": "FREQ=MONTHLY"}, "request_id": "conv-1"}),
        )
        .await;
    assert!(!is_error(&added), "{added}");
    let task = added["structuredContent"].clone();
    let id = task["id"].as_str().unwrap().to_owned();
    assert_eq!(id, task_id_for_request("alice", "conv-1").to_string(), "request_id is the Idempotency-Key");
    assert_eq!((task["owner"].as_str(), task["version"].as_u64()), (Some("alice"), Some(1)));
    assert!(text(&added).starts_with("Created task \"Pay rent\""), "{}", text(&added));
    // The same task through REST, as the REST API stored it.
    let rest = h.get(&format!("/v1/tasks/{id}")).user("alice").send().await;
    assert_eq!(rest.body, task);

    let got = client.call("get_task", json!({"task_id": id})).await;
    assert_eq!(got["structuredContent"], task);

    let listed = client.call("list_tasks", json!({"priority": ["high"], "tag": ["home"], "sort": "due"})).await;
    assert_eq!(listed["structuredContent"]["items"][0]["id"], id.as_str(), "{listed}");
    assert!(listed["structuredContent"]["next_cursor"].is_null());
    assert!(text(&listed).starts_with("1 task:"), "{}", text(&listed));

    let updated =
        client.call("update_task", json!({"task_id": id, "if_match": 1, "title": "Pay the rent", "tags": null})).await;
    assert!(!is_error(&updated), "{updated}");
    assert_eq!(updated["structuredContent"]["title"], "Pay the rent");
    assert_eq!(updated["structuredContent"]["tags"], json!([]));
    let stale = client.call("update_task", json!({"task_id": id, "if_match": 1, "title": "Again"})).await;
    assert!(is_error(&stale) && text(&stale).starts_with("if_match: "), "{stale}");

    let completed = client.call("complete_task", json!({"task_id": id})).await;
    assert!(!is_error(&completed), "{completed}");
    assert_eq!(completed["structuredContent"]["task"]["status"], "completed");
    let next = &completed["structuredContent"]["next_occurrence"];
    assert_eq!(next["due"], "2027-01-01T09:00:00+01:00", "{completed}");
    assert!(text(&completed).contains("the next occurrence, due 2027-01-01T09:00:00+01:00"), "{}", text(&completed));

    let reopened = client.call("reopen_task", json!({"task_id": id})).await;
    assert_eq!(reopened["structuredContent"]["status"], "open");

    let history = client.call("task_history", json!({"task_id": id})).await;
    assert!(!is_error(&history), "{history}");
    assert!(history["structuredContent"]["items"].is_array(), "{history}");

    let deleted = client.call("delete_task", json!({"task_id": id, "series": "end"})).await;
    assert_eq!(deleted["structuredContent"], json!({"task_id": id, "deleted": true, "series_ended": true}));
    let gone = client.call("get_task", json!({"task_id": id})).await;
    assert!(is_error(&gone) && text(&gone).starts_with("task_id: task not found"), "{gone}");
}

#[tokio::test]
async fn errors_are_tool_results_that_name_the_argument_and_the_rule() {
    let h = Harness::start().await;
    let mut alice = Client::new(&h, "alice");
    alice.initialize(PROTOCOL).await;

    let missing = alice.call("add_task", json!({"priority": "high"})).await;
    assert!(is_error(&missing), "{missing}");
    assert!(text(&missing).starts_with("title: is required"), "{}", text(&missing));
    assert!(missing.get("structuredContent").is_none());

    let rrule = alice
        .call(
            "add_task",
            json!({"title": "x", "due": "2026-12-01T09:00:00Z", "recurrence": {"rule": "FREQ=SOMETIMES"}}),
        )
        .await;
    assert!(is_error(&rrule) && text(&rrule).starts_with("recurrence.rule: "), "{rrule}");

    let unknown_field = alice.call("add_task", json!({"title": "x", "colour": "red"})).await;
    assert!(
        is_error(&unknown_field) && text(&unknown_field).starts_with("colour: is not a known field"),
        "{unknown_field}"
    );

    let bad_filter = alice.call("list_tasks", json!({"status": "done"})).await;
    assert!(
        is_error(&bad_filter) && text(&bad_filter).starts_with("status: must be open or completed"),
        "{bad_filter}"
    );

    let unknown = alice.call("get_task", json!({"task_id": "0b8e4a4c-6f6e-4f55-9d43-1d2c1b0e5a7f"})).await;
    assert!(is_error(&unknown) && text(&unknown).starts_with("task_id: task not found"), "{unknown}");
    let not_a_uuid = alice.call("complete_task", json!({"task_id": "../openapi.json"})).await;
    assert!(is_error(&not_a_uuid) && text(&not_a_uuid).starts_with("task_id: task not found"), "{not_a_uuid}");

    // Bob's task is "not found" for Alice, through every tool that names one.
    let bobs = h.create("bob", json!({"title": "Bob's"})).await;
    let bobs = bobs["id"].as_str().unwrap();
    for tool in ["get_task", "complete_task", "reopen_task", "delete_task", "task_history"] {
        let result = alice.call(tool, json!({"task_id": bobs})).await;
        assert!(is_error(&result) && text(&result).starts_with("task_id: task not found"), "{tool}: {result}");
    }
    let result = alice.call("update_task", json!({"task_id": bobs, "title": "mine now"})).await;
    assert!(is_error(&result) && text(&result).starts_with("task_id: task not found"), "{result}");
    assert_eq!(h.get(&format!("/v1/tasks/{bobs}")).user("bob").send().await.body["title"], "Bob's");
    let listed = alice.call("list_tasks", json!({})).await;
    assert_eq!(listed["structuredContent"]["items"], json!([]), "Alice sees only her tasks");

    // An unknown tool is a protocol error.
    let reply = alice.request("tools/call", json!({"name": "drop_all_tasks", "arguments": {}})).await;
    assert_eq!(reply.response()["error"]["code"], -32602, "{}", reply.text);
}

#[tokio::test]
async fn add_task_with_the_same_request_id_creates_one_task() {
    let h = Harness::start().await;
    let mut client = Client::new(&h, "alice");
    client.initialize(PROTOCOL).await;
    let arguments = json!({"title": "Buy milk", "request_id": "retry-1"});
    let first = client.call("add_task", arguments.clone()).await;
    let second = client.call("add_task", arguments).await;
    assert_eq!(first["structuredContent"], second["structuredContent"]);
    assert!(text(&second).starts_with("Already created"), "{}", text(&second));
    let listed = h.get("/v1/tasks").user("alice").send().await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1, "one task");
    assert_eq!(h.task_transactions().len(), 1, "one write");
    let other_body = client.call("add_task", json!({"title": "Buy bread", "request_id": "retry-1"})).await;
    assert!(is_error(&other_body) && text(&other_body).starts_with("request_id: "), "{other_body}");
}

#[tokio::test]
async fn without_a_valid_token_mcp_answers_401_with_the_resource_metadata() {
    let h = Harness::start().await;
    let mut anonymous = Client::new(&h, "alice");
    anonymous.authorization = None;
    let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let reply = anonymous.post(&initialize, &[]).await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    let base = h.app.url.clone();
    assert_eq!(
        reply.header("www-authenticate"),
        Some(
            format!(r#"Bearer realm="task-api", resource_metadata="{base}/.well-known/oauth-protected-resource""#)
                .as_str()
        )
    );
    anonymous.authorization = Some("Bearer not.a.token".into());
    let reply = anonymous.post(&initialize, &[]).await;
    assert_eq!(reply.status, 401);
    assert!(reply.header("www-authenticate").unwrap().ends_with(r#", error="invalid_token""#), "{:?}", reply.headers);

    let metadata = h.get("/.well-known/oauth-protected-resource").send().await;
    assert_eq!(metadata.status, 200);
    assert_eq!(metadata.body["resource"], format!("{base}/mcp"));
    assert_eq!(metadata.body["bearer_methods_supported"], json!(["header"]));
    assert!(metadata.body.get("authorization_servers").is_none(), "no JWT_ISSUER here");
    let suffixed = h.get("/.well-known/oauth-protected-resource/mcp").send().await;
    assert_eq!(suffixed.body, metadata.body);
}

#[tokio::test]
async fn the_metadata_names_the_configured_resource_and_issuer() {
    let mut config = common::config();
    config.jwt_issuer = Some("https://id.example".into());
    config.mcp_resource_url = Some("https://todo.example/mcp".into());
    let h = Harness::custom(config, RuntimeConfig::default(), |_| Clock::fixed(common::now())).await;
    let metadata = h.get("/.well-known/oauth-protected-resource").send().await;
    assert_eq!(metadata.body["resource"], "https://todo.example/mcp");
    assert_eq!(metadata.body["authorization_servers"], json!(["https://id.example"]));
    let reply = Client { h: &h, authorization: None, session: None, next_id: 1 }
        .post(&json!({"jsonrpc": "2.0", "id": 0, "method": "ping"}), &[])
        .await;
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .contains(r#"resource_metadata="https://todo.example/.well-known/oauth-protected-resource""#),
        "{:?}",
        reply.headers
    );
}

#[tokio::test]
async fn a_session_is_refused_with_another_users_token() {
    let h = Harness::start().await;
    let mut alice = Client::new(&h, "alice");
    alice.initialize(PROTOCOL).await;
    let mut mallory = Client::new(&h, "mallory");
    mallory.session = alice.session.clone();
    let reply = mallory.request("tools/list", json!({})).await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    // Alice's session still works, and a made-up id is refused like another user's.
    assert_eq!(alice.request("tools/list", json!({})).await.status, 200);
    mallory.session = Some("made-up".into());
    assert_eq!(mallory.request("tools/list", json!({})).await.status, 404);
    // Ended by its owner, it is gone.
    let ended = h
        .app
        .http
        .delete(format!("{}/mcp", h.app.url))
        .header("authorization", format!("Bearer {}", token("alice")))
        .header("mcp-session-id", alice.session.as_deref().unwrap())
        .header("mcp-protocol-version", PROTOCOL)
        .send()
        .await
        .unwrap();
    assert!(ended.status().is_success(), "{}", ended.status());
    assert_eq!(alice.request("tools/list", json!({})).await.status, 404);
}

#[tokio::test]
async fn foreign_origins_and_hosts_are_refused() {
    let h = Harness::start().await;
    let mut client = Client::new(&h, "alice");
    client.initialize(PROTOCOL).await;
    let ping = json!({"jsonrpc": "2.0", "id": 9, "method": "ping"});
    assert_eq!(client.post(&ping, &[("origin", "https://evil.example")]).await.status, 403);
    assert_eq!(client.post(&ping, &[("origin", "http://localhost:5173")]).await.status, 200);
    assert_eq!(client.post(&ping, &[("host", "evil.example")]).await.status, 403);
    assert_eq!(client.post(&ping, &[("host", "task-api.todo.svc.cluster.local:3000")]).await.status, 200);
    assert_eq!(client.post(&ping, &[]).await.status, 200);
}

#[tokio::test]
async fn an_oversized_message_is_refused_with_413_before_it_is_parsed() {
    let runtime = RuntimeConfig { max_body_bytes: 4096, ..RuntimeConfig::default() };
    let h = Harness::custom(common::config(), runtime, |_| Clock::fixed(common::now())).await;
    let mut client = Client::new(&h, "alice");
    client.initialize(PROTOCOL).await;
    let big = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                     "params": {"name": "add_task", "arguments": {"title": "x", "description": "d".repeat(8000)}}});
    let reply = client.post(&big, &[]).await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    // Not JSON at all, and as large: still 413, since the limit comes before parsing.
    let reply = client.post_bytes(vec![b'{'; 10_000], &[]).await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert!(h.task_transactions().is_empty());
}

/// Malformed JSON-RPC is a protocol error, as JSON-RPC names it, and never reaches a tool.
#[tokio::test]
async fn malformed_json_rpc_is_a_protocol_error_with_its_code() {
    let h = Harness::start().await;
    let mut client = Client::new(&h, "alice");
    client.initialize(PROTOCOL).await;
    let reply = client.post_bytes(b"{\"jsonrpc\": \"2.0\", \"id\": ".to_vec(), &[]).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let error = &reply.messages[0];
    assert_eq!(error["error"]["code"], -32700, "{}", reply.text);
    assert_eq!(error["id"], Value::Null, "{}", reply.text);
    assert!(error["error"]["message"].as_str().unwrap().contains("line 1 column"), "{}", reply.text);
    // JSON, but no JSON-RPC message: an invalid request.
    let reply =
        client.post(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": "add_task"}), &[]).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.messages[0]["error"]["code"], -32600, "{}", reply.text);
    let reply = client.post(&json!(["not", "a", "message"]), &[]).await;
    assert_eq!(reply.messages[0]["error"]["code"], -32600, "{}", reply.text);
    assert!(h.task_transactions().is_empty());
    // A body that is not declared JSON stays rmcp's 415: the media type is what is wrong.
    let reply = h
        .app
        .http
        .post(format!("{}/mcp", h.app.url))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "text/plain")
        .header("authorization", format!("Bearer {}", token("alice")))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 415);
}

/// The newest revision (2026-07-28) needs no `initialize` and no session: each request carries
/// its version and capabilities in `_meta`, and the token as always.
#[tokio::test]
async fn the_newest_revision_is_served_without_a_session() {
    let h = Harness::start().await;
    h.create("alice", json!({"title": "Stateless"})).await;
    let client = Client::new(&h, "alice");
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "task-api-tests", "version": "1"},
    });
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "list_tasks", "arguments": {}, "_meta": meta}});
    let headers = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "list_tasks")];
    let reply = client.post(&body, &headers).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.header("mcp-session-id").is_none());
    let result = &reply.response()["result"];
    assert_eq!(result["structuredContent"]["items"][0]["title"], "Stateless", "{}", reply.text);
    // Bob, with the same request, sees his own (no) tasks.
    let bob = Client::new(&h, "bob");
    let reply = bob.post(&body, &headers).await;
    assert_eq!(reply.response()["result"]["structuredContent"]["items"], json!([]), "{}", reply.text);
}
