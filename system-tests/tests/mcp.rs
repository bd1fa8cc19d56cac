//! task-api's MCP server (`/mcp`, issue 22) driven by a client nobody here wrote: the official
//! Python MCP SDK (`mcp` on PyPI, installed by `scripts/mcp-python.sh` into a venv cached
//! outside the repo, version pinned there) runs `system-tests/mcp/conversation.py` against a
//! private devhost system, as two users. The script is an agent's whole conversation: it lists
//! the tools, adds (due, time zone, tags, priority, a weekly recurrence, a reminder), lists with
//! filters and search, updates, completes (the recurring task names its next occurrence),
//! reopens, reads the history and deletes; every error path is a tool error that names the
//! field and REST's rule for the same input; the other user sees nothing and can touch nothing;
//! a retried `add_task` with the same `request_id` is one task. Here, around it: the tasks it
//! made are checked through REST (and audited), and the parts of the HTTP contract an MCP client
//! library hides are checked with plain HTTP (401 with `WWW-Authenticate` and the
//! protected-resource metadata, RFC 9728; older protocol revisions; Origin and Host checks; a
//! session bound to its user). And the README's Claude Desktop configuration runs as Claude
//! Desktop runs it, `npx mcp-remote` (npm, installed by `scripts/mcp-remote.sh`) bridging the
//! SDK's stdio client to `/mcp`.
//!
//! Without python3 (3.10+) and venv, or Node.js with npm, the tests fail with a message saying
//! what to install; they never skip. `make test` builds the binaries first.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::api::{client, json_body};
use system_tests::host::Setup;
use system_tests::mcp::{Session, initialize_request, post};
use system_tests::{installed, workspace_root};

const USER_A: &str = "alice";
const USER_B: &str = "bob";

/// The conversation takes a few seconds; most of this is for a loaded machine (and a first run,
/// whose install is before the system starts and not counted here).
const CONVERSATION_TIMEOUT: Duration = Duration::from_secs(240);

/// The official Python MCP SDK's interpreter, installed on first use.
async fn sdk_python() -> anyhow::Result<PathBuf> {
    let python = installed(
        "scripts/mcp-python.sh",
        "python3 3.10+ with venv (apt-get install python3-venv) and, on first use, PyPI",
    )
    .await?;
    ensure!(python.is_file(), "mcp-python.sh printed {}, not the path of a python", python.display());
    Ok(python)
}

/// The directory `mcp-remote` (npm) is installed in, installed on first use.
async fn mcp_remote() -> anyhow::Result<PathBuf> {
    let dir = installed(
        "scripts/mcp-remote.sh",
        "Node.js 20.18.1+ with npm (apt-get install nodejs npm) and, on first use, the npm registry",
    )
    .await?;
    ensure!(
        dir.join("node_modules/.bin/mcp-remote").is_file(),
        "mcp-remote.sh printed {}, which holds no mcp-remote",
        dir.display()
    );
    Ok(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_on_the_official_python_sdk_holds_the_whole_conversation() -> anyhow::Result<()> {
    let python = sdk_python().await?;
    let setup = Setup::new(&[])?;
    let system = setup.start(false).await?;
    let outcome = async {
        let report = conversation(&setup, &python).await?;
        through_rest(&setup, &report).await?;
        readme_program(&setup, &python).await
    }
    .await;
    system.stop().await;
    outcome
}

/// Runs the script; its report if every check passed, else an error listing the failed ones.
async fn conversation(setup: &Setup, python: &std::path::Path) -> anyhow::Result<Value> {
    let report_path = setup.path().join("mcp-report.json");
    let (a, b) = (setup.api(USER_A)?, setup.api(USER_B)?);
    let child = tokio::process::Command::new(python)
        .arg(workspace_root().join("system-tests/mcp/conversation.py"))
        .env("MCP_URL", format!("{}/mcp", setup.api_url))
        .env("API_URL", &setup.api_url)
        .env("USER_A", USER_A)
        .env("TOKEN_A", a.token())
        .env("USER_B", USER_B)
        .env("TOKEN_B", b.token())
        .env("MCP_REPORT", &report_path)
        // Loopback only: a proxy from the environment must not see the tokens.
        .env("NO_PROXY", "*")
        .env("PYTHONUNBUFFERED", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the conversation script")?;
    let output = tokio::time::timeout(CONVERSATION_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("the conversation did not end within {CONVERSATION_TIMEOUT:?}"))??;
    let log = format!(
        "--- conversation.py stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = match std::fs::read(&report_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).context("the report is not JSON")?,
        Err(error) => bail!("conversation.py wrote no report ({error}), exit {}\n{log}", output.status),
    };
    let failed: Vec<String> = report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["ok"] != true)
        .map(|c| format!("  - {}: {}", c["name"].as_str().unwrap_or("?"), c["detail"].as_str().unwrap_or("")))
        .collect();
    let checks = report["checks"].as_array().map_or(0, Vec::len);
    if !failed.is_empty() || !output.status.success() {
        bail!(
            "{} of {checks} checks failed through the official Python MCP SDK {} (protocol {}), exit {}:\n{}\n{log}",
            failed.len(),
            report["sdk"]["version"],
            report["protocol_version"],
            output.status,
            failed.join("\n")
        );
    }
    // A script that stopped early passes no check it did not reach: it must have reached the end.
    ensure!(checks >= 150, "only {checks} checks ran: the conversation stopped early\n{log}");
    for key in ["kept", "deleted", "next_occurrence"] {
        ensure!(report[key].is_string(), "the report has no `{key}` task id\n{log}");
    }
    // Shown with --nocapture: every check the conversation made.
    eprintln!("{log}");
    eprintln!(
        "mcp: {checks} checks passed with the official Python MCP SDK {} (protocol {})",
        report["sdk"]["version"], report["protocol_version"]
    );
    Ok(report)
}

/// What the conversation did, seen through REST: the same tasks, audited, and still private.
async fn through_rest(setup: &Setup, report: &Value) -> anyhow::Result<()> {
    let (a, b) = (setup.api(USER_A)?, setup.api(USER_B)?);
    let kept = report["kept"].as_str().context("kept")?;
    let task = a.get(&format!("/v1/tasks/{kept}")).await.context("the task MCP made, through REST")?;
    assert_eq!(
        (&task["title"], &task["priority"], &task["tags"], &task["owner"], &task["version"]),
        (&json!("Pay the rent"), &json!("urgent"), &json!(["home"]), &json!(USER_A), &json!(2)),
        "{task}"
    );
    assert_eq!(
        a.audit_changes(kept).await?,
        ["created", "updated"],
        "the audit trail of the task MCP made and changed"
    );
    let bobs_view = b.call(reqwest::Method::GET, &format!("/v1/tasks/{kept}"), None).await?;
    assert_eq!(bobs_view.status, StatusCode::NOT_FOUND, "another user reads A's task through REST: {bobs_view:?}");

    let deleted = report["deleted"].as_str().context("deleted")?;
    let gone = a.call(reqwest::Method::GET, &format!("/v1/tasks/{deleted}"), None).await?;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "the task MCP deleted, through REST: {gone:?}");
    assert_eq!(a.audit_changes(deleted).await?, ["created", "deleted"]);

    let next = report["next_occurrence"].as_str().context("next_occurrence")?;
    let next = a.get(&format!("/v1/tasks/{next}")).await?;
    assert_eq!((&next["status"], &next["title"]), (&json!("open"), &json!("Water the plants")), "{next}");
    Ok(())
}

/// The README's Python program (section "Use it from an AI agent"), exactly as written, with
/// only `MCP_URL` and `TOKEN` from its environment: a user configured from the README alone gets
/// the tools, a task, a list and a correctable error.
async fn readme_program(setup: &Setup, python: &std::path::Path) -> anyhow::Result<()> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md"))?;
    let program = readme
        .split("```python\n")
        .skip(1)
        .filter_map(|block| block.split_once("\n```").map(|(code, _)| code))
        .find(|code| code.contains("streamable_http_client"))
        .context("README.md has no ```python block with the MCP client (section \"Use it from an AI agent\")")?;
    let file = setup.path().join("readme_agent.py");
    std::fs::write(&file, program)?;
    let carol = setup.api("carol")?;
    let output = tokio::process::Command::new(python)
        .arg(&file)
        .env("MCP_URL", format!("{}/mcp", setup.api_url))
        .env("TOKEN", carol.token())
        .env("NO_PROXY", "*")
        .kill_on_drop(true)
        .output();
    let output =
        tokio::time::timeout(Duration::from_secs(60), output).await.context("the README's program hangs")??;
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    ensure!(output.status.success(), "the README's Python program failed ({}):\n{stdout}\n{stderr}", output.status);
    let lines: Vec<&str> = stdout.lines().collect();
    ensure!(lines.len() >= 4, "the README's program printed {lines:?}");
    for tool in [
        "add_task",
        "list_tasks",
        "get_task",
        "update_task",
        "complete_task",
        "reopen_task",
        "delete_task",
        "task_history",
    ] {
        ensure!(lines[0].contains(&format!("'{tool}'")), "the README's program lists {}, without {tool}", lines[0]);
    }
    ensure!(
        lines.iter().any(|l| l.starts_with("True ") && l.contains("title")),
        "the README's program shows no tool error naming `title`: {stdout}"
    );
    // What it made is carol's, through REST.
    let tasks = carol.list_all(&[("tag", "agent")]).await?;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!((&tasks[0]["title"], &tasks[0]["status"]), (&json!("Try the tools"), &json!("open")));
    ensure!(lines[1].starts_with(tasks[0]["id"].as_str().unwrap_or("?")), "the README's program printed {}", lines[1]);
    Ok(())
}

/// The README's Claude Desktop configuration, run as Claude Desktop runs it: its command
/// (`npx mcp-remote`, the stdio-to-HTTP bridge) with its arguments and environment as written,
/// driven over stdio by the official Python SDK (`system-tests/mcp/desktop_bridge.py`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_desktops_configuration_from_the_readme_works_through_mcp_remote() -> anyhow::Result<()> {
    let python = sdk_python().await?;
    let bridge = mcp_remote().await?;
    let setup = Setup::new(&[])?;
    let system = setup.start(false).await?;
    let outcome = desktop_bridge(&setup, &python, &bridge).await;
    system.stop().await;
    outcome
}

async fn desktop_bridge(setup: &Setup, python: &std::path::Path, bridge: &std::path::Path) -> anyhow::Result<()> {
    const README_URL: &str = "http://127.0.0.1:8080/mcp";
    const README_TOKEN: &str = "Bearer <the token>";
    let readme = std::fs::read_to_string(workspace_root().join("README.md"))?;
    let block = readme
        .split("```json\n")
        .skip(1)
        .filter_map(|block| block.split_once("\n```").map(|(code, _)| code))
        .find(|code| code.contains("mcp-remote"))
        .context("README.md has no ```json block with Claude Desktop's mcp-remote configuration")?;
    let mut config: Value =
        serde_json::from_str(block).context("README.md's Claude Desktop configuration is not JSON")?;
    let dave = setup.api("dave")?;
    let server = &mut config["mcpServers"]["todo"];
    let args = server["args"].as_array_mut().context("the README's configuration has no mcpServers.todo.args")?;
    let url = args
        .iter_mut()
        .find(|arg| *arg == README_URL)
        .context("the README's configuration does not name make run's MCP URL")?;
    *url = json!(format!("{}/mcp", setup.api_url));
    ensure!(
        server["env"]["AUTH_HEADER"] == README_TOKEN,
        "the README's configuration passes no AUTH_HEADER {README_TOKEN:?}"
    );
    server["env"]["AUTH_HEADER"] = json!(format!("Bearer {}", dave.token()));
    let file = setup.path().join("claude_desktop_config.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&config)?)?;
    let output = tokio::process::Command::new(python)
        .arg(workspace_root().join("system-tests/mcp/desktop_bridge.py"))
        .arg(&file)
        .arg(bridge)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output).await.context("the bridge hangs")??;
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    ensure!(output.status.success(), "Claude Desktop's configuration failed ({}):\n{stdout}\n{stderr}", output.status);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .with_context(|| format!("desktop_bridge.py printed no report:\n{stdout}\n{stderr}"))?;
    let mut expected = vec![
        "add_task",
        "complete_task",
        "delete_task",
        "get_task",
        "list_tasks",
        "reopen_task",
        "task_history",
        "update_task",
    ];
    expected.sort_unstable();
    ensure!(report["tools"] == json!(expected), "through mcp-remote: {report}");
    ensure!(report["added_error"] == json!(false), "add_task failed through mcp-remote: {report}");
    let id = report["added"]["id"].as_str().context("add_task returned no id")?;
    ensure!(report["listed"] == json!([id]), "list_tasks through mcp-remote: {report}");
    let error = &report["error"];
    ensure!(
        error["is_error"] == json!(true) && error["text"].as_str().is_some_and(|t| t.contains("title")),
        "{report}"
    );
    // What it made is dave's, through REST.
    let tasks = dave.list_all(&[("tag", "desktop")]).await?;
    ensure!(tasks.len() == 1 && tasks[0]["id"] == id && tasks[0]["title"] == "From the desktop", "{tasks:?}");
    Ok(())
}

/// The HTTP contract around the tools, which an SDK hides: what a client without a token
/// learns (RFC 9728), the older protocol revisions, and the request checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_contract_of_mcp_with_plain_http() -> anyhow::Result<()> {
    let setup = Setup::new(&[])?;
    let system = setup.start(false).await?;
    let outcome = http_contract(&setup).await;
    system.stop().await;
    outcome
}

async fn http_contract(setup: &Setup) -> anyhow::Result<()> {
    let http = client()?;
    let mcp = format!("{}/mcp", setup.api_url);
    let (a, b) = (setup.api(USER_A)?, setup.api(USER_B)?);

    // No token, then a bad one: 401 pointing at the protected-resource metadata.
    let initialize = initialize_request("2025-06-18");
    for token in [None, Some("not-a-jwt")] {
        let mut request =
            json_body(http.post(&mcp), &initialize).header("accept", "application/json, text/event-stream");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "POST /mcp with token {token:?}");
        let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let expected = format!(r#"resource_metadata="{}/.well-known/oauth-protected-resource"#, setup.api_url);
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains(&expected),
            "WWW-Authenticate {challenge:?} must be a Bearer challenge with {expected}…\""
        );
        // RFC 6750 §3.1: a token that was sent and refused is `invalid_token`.
        assert_eq!(challenge.contains(r#"error="invalid_token""#), token.is_some(), "{challenge}");
    }

    // RFC 9728: the metadata names the resource, without a token.
    let response = http.get(format!("{}/.well-known/oauth-protected-resource", setup.api_url)).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    let metadata: Value = serde_json::from_slice(&response.bytes().await?)?;
    assert_eq!(metadata["resource"], json!(mcp), "{metadata}");
    assert!(
        metadata["authorization_servers"].is_array() || metadata.get("authorization_servers").is_none(),
        "{metadata}"
    );
    if let Some(methods) = metadata.get("bearer_methods_supported") {
        assert!(methods.as_array().is_some_and(|m| m.contains(&json!("header"))), "{metadata}");
    }

    // Clients that negotiate an older revision are still answered with it.
    let (ta, tb) = (Some(a.token()), Some(b.token()));
    for version in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        let answer = post(&http, &mcp, ta, None, &initialize_request(version), &[]).await?;
        assert_eq!(answer.status, StatusCode::OK, "initialize at {version}: {}", answer.message);
        assert_eq!(answer.message["result"]["protocolVersion"], json!(version), "initialize at {version}: {answer:?}");
        assert!(answer.message["result"]["capabilities"]["tools"].is_object(), "{answer:?}");
    }

    // DNS rebinding: a foreign Origin or Host is refused, even with a valid token.
    let answer = post(&http, &mcp, ta, None, &initialize, &[("origin", "http://attacker.example")]).await?;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "a foreign Origin: {answer:?}");
    let answer = post(&http, &mcp, ta, None, &initialize, &[("host", "attacker.example")]).await?;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "a foreign Host: {answer:?}");
    let port = setup.api_url.rsplit(':').next().unwrap_or_default();
    let loopback = format!("http://localhost:{port}");
    let answer = post(&http, &mcp, ta, None, &initialize, &[("origin", loopback.as_str())]).await?;
    assert_eq!(answer.status, StatusCode::OK, "a loopback Origin: {answer:?}");

    // The handshake revisions open a session (Mcp-Session-Id); it belongs to the user who opened
    // it: with another user's token it is "not found" (404, as another user's task), and still
    // works for its owner.
    let answer = post(&http, &mcp, ta, None, &initialize, &[]).await?;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let id = answer.session.context("initialize at 2025-06-18 opened no session (no Mcp-Session-Id)")?;
    let session = Session { id, protocol: "2025-06-18".to_owned() };
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let answer = post(&http, &mcp, ta, Some(&session), &initialized, &[]).await?;
    assert!(answer.status.is_success(), "notifications/initialized: {}", answer.status);
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "list_tasks", "arguments": {}}});
    let answer = post(&http, &mcp, tb, Some(&session), &list, &[]).await?;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "B used A's session: {answer:?}");
    assert!(answer.message.get("result").is_none(), "B used A's session and got a result: {answer:?}");
    let answer = post(&http, &mcp, ta, Some(&session), &list, &[]).await?;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.message["result"]["structuredContent"]["items"], json!([]), "{answer:?}");
    assert_ne!(answer.message["result"]["isError"], json!(true), "{answer:?}");
    Ok(())
}
