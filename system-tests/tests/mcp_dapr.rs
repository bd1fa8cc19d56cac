//! Dapr as the MCP client of task-api, on the real platform (issue 22, point 9;
//! `docs/mcp-dapr.md`): the real daprd 1.18.2 of `make platform`, loaded with the shipped
//! `MCPServer` (`dapr-components/local-agent/mcpserver.yaml`, its URL pointed at this platform's
//! task-api), discovers task-api's tools and runs each call as a durable workflow, for the one
//! user whose token the sidecar holds.
//!
//! An agent's sidecar (app-id `todo-agent`, no app) gets what the functions' sidecars do not:
//! placement and an actor state store (the workflow engine needs both). The store is the
//! platform's PostgreSQL, through a role and schema of the agent's own (`todo_agent`), as each
//! function has its role (`manifests/base/postgres/roles.sql`).
//!
//! - alice's agent (`TODO_MCP_AUTHORIZATION="Bearer <alice's JWT>"`) lists task-api's eight tools
//!   (`dapr.internal.mcp.todo-tasks.ListTools`), and `CallTool.list_tasks` returns alice's tasks
//!   and none of bob's; `CallTool.get_task` reads her own task but answers bob's with a tool error
//!   (`isError`) that holds nothing of it; `CallTool.add_task` creates a task that REST shows as
//!   alice's and bob cannot read.
//! - then bob's agent (same app-id, bob's token), the reverse.
//! - both agents at once under the one app-id share their workflows: bob's agent reads alice's
//!   earlier result, and a call started on alice's agent comes back with bob's tasks. Not a
//!   property to want: it is why docs/mcp-dapr.md gives each user's agent an app-id of its own,
//!   and checked so that the advice stays true.
//! - a function's app-id (outside the resource's `scopes`) with the agent's resources and token
//!   loads no MCPServer.
//!
//! The figures it prints (start of an agent's sidecar, discovery included; each workflow) are
//! docs/mcp-dapr.md's.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::api::{Api, client, json_body};
use system_tests::host::Setup;
use system_tests::platform::{Options, Platform, Sidecar};
use system_tests::workspace_root;

/// The app-id the shipped resource is scoped to.
const AGENT_ID: &str = "todo-agent";
/// The resource's `metadata.name`: the middle of every workflow name.
const SERVER: &str = "todo-tasks";
/// The agent's PostgreSQL role, and the schema its actor state lives in.
const AGENT_ROLE: &str = "todo_agent";
/// A workflow of this test takes well under a second; this bounds a loaded 2-core machine.
const WORKFLOW_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daprd_runs_task_apis_tools_as_the_user_of_its_token() -> anyhow::Result<()> {
    let setup = Setup::new(&[])?;
    let dir = Platform::fresh_dir("mcp-dapr")?;
    let mut platform = Platform::start(&setup.run_file, &dir, Options::default()).await?;
    let outcome = check(&setup, &mut platform).await;
    let logs = platform.logs().to_owned();
    platform.stop()?;
    outcome.with_context(|| format!("logs in {}", logs.display()))
}

/// One user's tasks, made through REST.
struct User {
    name: &'static str,
    api: Api,
    /// Task id → title.
    tasks: Vec<(String, String)>,
}

impl User {
    async fn new(setup: &Setup, name: &'static str, titles: &[&str]) -> anyhow::Result<Self> {
        let api = setup.api(name)?;
        let mut tasks = Vec::new();
        for title in titles {
            let task = api.post("/v1/tasks", Some(&json!({ "title": title })), StatusCode::CREATED).await?;
            tasks.push((task["id"].as_str().context("a created task without id")?.to_owned(), (*title).to_owned()));
        }
        Ok(Self { name, api, tasks })
    }

    fn ids(&self) -> BTreeSet<String> {
        self.tasks.iter().map(|(id, _)| id.clone()).collect()
    }
}

async fn check(setup: &Setup, platform: &mut Platform) -> anyhow::Result<()> {
    let alice = User::new(setup, "alice", &["alice: buy oat milk", "alice: call the plumber"]).await?;
    let bob = User::new(setup, "bob", &["bob: renew the passport"]).await?;
    let resources = agent_resources(platform)?;

    let alice_tasks = agent_session(platform, &resources, &alice, &bob).await?;
    let bob_tasks = agent_session(platform, &resources, &bob, &alice).await?;
    let crossed = one_app_id_two_users(platform, &resources, &alice, &bob).await?;
    let transient = TRANSIENT.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "alice's agent: {alice_tasks}\nbob's agent: {bob_tasks}\nboth at once: {crossed}\n\
         transient status errors: {transient}"
    );

    // A function's app-id (outside `scopes`) with the agent's folder and token, and no placement,
    // as the functions' sidecars run: the resource is not loaded (loaded, daprd would exit, as
    // its workflows cannot register without placement), so the token goes nowhere.
    let outsider = Sidecar {
        id: "task-api".to_owned(),
        resources: vec![resources.clone()],
        placement: false,
        env: vec![("TODO_MCP_AUTHORIZATION".to_owned(), format!("Bearer {}", alice.api.token()))],
    };
    let url = platform.start_sidecar("outsider", &outsider).await?;
    let metadata = sidecar_get(&url, "/v1.0/metadata").await?;
    platform.stop_sidecar("outsider", Duration::from_secs(10))?;
    ensure!(mcp_servers(&metadata).is_empty(), "a sidecar outside the scopes loaded: {metadata}");
    Ok(())
}

/// `user`'s agent: app-id `todo-agent`, the agent's resources, `user`'s token.
fn agent(resources: &Path, user: &User) -> Sidecar {
    Sidecar {
        id: AGENT_ID.to_owned(),
        resources: vec![resources.to_owned()],
        placement: true,
        env: vec![("TODO_MCP_AUTHORIZATION".to_owned(), format!("Bearer {}", user.api.token()))],
    }
}

/// The instance id of the first `list_tasks` workflow `user`'s agent runs.
fn first_list(user: &User) -> String {
    format!("{}-list-tasks", user.name)
}

/// Starts `user`'s agent, checks everything it may and may not see, and stops it; returns its
/// timings, for the test's output (docs/mcp-dapr.md quotes them).
async fn agent_session(platform: &mut Platform, resources: &Path, user: &User, other: &User) -> anyhow::Result<String> {
    let name = format!("agent-{}", user.name);
    let sidecar = agent(resources, user);
    let started = Instant::now();
    let url = platform.start_sidecar(&name, &sidecar).await?;
    let ready = started.elapsed();
    let outcome = agent_checks(&url, user, other).await;
    platform.stop_sidecar(&name, Duration::from_secs(10))?;
    let timings = outcome?;
    Ok(format!("ready in {ready:?} (discovery included); {timings}"))
}

async fn agent_checks(url: &str, user: &User, other: &User) -> anyhow::Result<String> {
    let who = user.name;
    let metadata = sidecar_get(url, "/v1.0/metadata").await?;
    ensure!(mcp_servers(&metadata) == [SERVER], "{who}'s agent does not list {SERVER}: {metadata}");

    // Discovery: the eight tools task-api serves, by name.
    let started = Instant::now();
    let instance = uuid::Uuid::new_v4().simple().to_string();
    let listed = run_workflow(url, &format!("dapr.internal.mcp.{SERVER}.ListTools"), &json!({}), &instance).await?;
    let list_tools = started.elapsed();
    let tools: BTreeSet<String> = listed["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    let served: BTreeSet<String> = task_api::mcp::server::tools().iter().map(|tool| tool.name.to_string()).collect();
    ensure!(served.len() == 8, "task-api serves {} tools, not eight: {served:?}", served.len());
    ensure!(tools == served, "{who}'s agent discovered {tools:?}, task-api serves {served:?}");

    // list_tasks: exactly the user's tasks.
    let started = Instant::now();
    let listed = call_tool_as(url, "list_tasks", json!({}), &first_list(user)).await?;
    let list_tasks = started.elapsed();
    ensure!(listed["isError"] != true, "list_tasks through {who}'s agent failed: {listed}");
    let ids = item_ids(&listed);
    ensure!(ids == user.ids(), "{who}'s agent listed {ids:?}, {who} has {:?}", user.ids());
    let text = text_of(&listed);
    for (id, title) in &user.tasks {
        ensure!(text.contains(title.as_str()) && text.contains(id.as_str()), "{who}'s list lacks {title}: {text}");
    }
    for (id, title) in &other.tasks {
        ensure!(!text.contains(title.as_str()) && !text.contains(id.as_str()), "{who}'s list holds {title}: {text}");
    }

    // get_task: the user's own task, and the other user's as a tool error that shows nothing of it.
    let (own_id, own_title) = user.tasks.first().context("the user has tasks")?;
    let own = call_tool(url, "get_task", json!({ "task_id": own_id })).await?;
    ensure!(
        own["isError"] != true && own["structuredContent"]["title"] == own_title.as_str(),
        "{who}'s agent could not read {who}'s task: {own}"
    );
    let (other_id, other_title) = other.tasks.first().context("the other user has tasks")?;
    let foreign = call_tool(url, "get_task", json!({ "task_id": other_id })).await?;
    ensure!(foreign["isError"] == true, "{who}'s agent read {}'s task: {foreign}", other.name);
    ensure!(foreign.get("structuredContent").is_none_or(Value::is_null), "an error with content: {foreign}");
    let text = text_of(&foreign);
    ensure!(text.starts_with("task_id: task not found"), "not the not-found error: {foreign}");
    ensure!(!text.contains(other_title.as_str()), "the error shows the other user's task: {foreign}");

    // add_task: a write, owned by the user as REST sees it, invisible to the other.
    let title = format!("{who}: added through Dapr");
    let started = Instant::now();
    let added = call_tool(url, "add_task", json!({ "title": title })).await?;
    let add_task = started.elapsed();
    ensure!(added["isError"] != true, "add_task through {who}'s agent failed: {added}");
    let id = added["structuredContent"]["id"].as_str().context("add_task returned no id")?;
    let task = user.api.get(&format!("/v1/tasks/{id}")).await?;
    ensure!(task["owner"] == who && task["title"] == title.as_str(), "REST shows {task} to {who}");
    let seen = other.api.call(Method::GET, &format!("/v1/tasks/{id}"), None).await?;
    ensure!(seen.status == StatusCode::NOT_FOUND, "{} reads {who}'s new task: {}", other.name, seen.status);
    // Not counted in `user.tasks`: the other user's session checks its list holds neither.
    let listed = call_tool(url, "list_tasks", json!({ "q": "added through Dapr" })).await?;
    let found: Vec<&str> = listed["structuredContent"]["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_str())
        .collect();
    ensure!(found == [id], "{who}'s search for the added task found {found:?}: {listed}");

    Ok(format!("ListTools {list_tools:?}, CallTool.list_tasks {list_tasks:?}, CallTool.add_task {add_task:?}"))
}

/// The agent's resources: the shipped MCPServer with this platform's task-api URL, and an
/// actor state store on the agent's own PostgreSQL role and schema (created here: no agent
/// ships, so `roles.sql` has none).
fn agent_resources(platform: &Platform) -> anyhow::Result<std::path::PathBuf> {
    let dir = platform.dir().join("agent-resources");
    std::fs::create_dir_all(&dir)?;
    let shipped = workspace_root().join("dapr-components/local-agent/mcpserver.yaml");
    let text = std::fs::read_to_string(&shipped).with_context(|| format!("reading {}", shipped.display()))?;
    const SHIPPED_URL: &str = "url: http://localhost:8080/mcp";
    ensure!(text.matches(SHIPPED_URL).count() == 1, "{} no longer has `{SHIPPED_URL}`", shipped.display());
    let text = text.replace(SHIPPED_URL, &format!("url: {}/mcp", platform.api_url()?));
    std::fs::write(dir.join("mcpserver.yaml"), text)?;

    let sql = format!(
        "CREATE ROLE {AGENT_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; \
         CREATE SCHEMA {AGENT_ROLE} AUTHORIZATION {AGENT_ROLE};"
    );
    if let Err(error) = platform.psql("postgres", &sql)? {
        bail!("creating the agent's role: {error}");
    }
    let store = format!(
        "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: agent-actors
spec:
  type: state.postgresql
  version: v1
  metadata:
    - name: connectionString
      value: {url}
    - name: tableName
      value: {AGENT_ROLE}.actor_state
    - name: metadataTableName
      value: {AGENT_ROLE}.actor_state_metadata
    - name: actorStateStore
      value: \"true\"
scopes:
  - {AGENT_ID}
",
        url = platform.postgres_url_as(AGENT_ROLE)
    );
    std::fs::write(dir.join("actor-state.yaml"), store)?;
    Ok(dir)
}

/// Two agents of one app-id at once, alice's and bob's, as "one deployment per user" would run
/// them if each kept the shipped app-id. The sidecars of an app-id are one pool of workflow
/// actors (placement spreads the instances over them) with one state: so bob's agent reads
/// the result of alice's earlier `list_tasks` (her tasks), and a workflow started on alice's
/// agent may run on bob's, calling the tool with bob's token. Checked here because
/// docs/mcp-dapr.md rests its advice on it (each user's agent needs an app-id of its own);
/// returns at which of alice's calls bob's tasks came back.
async fn one_app_id_two_users(
    platform: &mut Platform,
    resources: &Path,
    alice: &User,
    bob: &User,
) -> anyhow::Result<String> {
    // What REST shows each now (the sessions added a task each).
    let rest_ids = |user: &User| {
        let api = user.api.clone();
        async move {
            let tasks = api.list_all(&[]).await?;
            anyhow::Ok(tasks.iter().filter_map(|t| t["id"].as_str().map(str::to_owned)).collect::<BTreeSet<_>>())
        }
    };
    let (alice_now, bob_now) = (rest_ids(alice).await?, rest_ids(bob).await?);
    let url_a = platform.start_sidecar("agent-alice-shared", &agent(resources, alice)).await?;
    let url_b = platform.start_sidecar("agent-bob-shared", &agent(resources, bob)).await?;
    let outcome = async {
        let earlier = workflow_output(&url_b, &first_list(alice)).await?;
        let ids = item_ids(&earlier);
        ensure!(ids == alice.ids(), "bob's agent read {ids:?} as alice's earlier list_tasks: {earlier}");
        const CALLS: usize = 40;
        for n in 1..=CALLS {
            let listed = call_tool(&url_a, "list_tasks", json!({})).await?;
            let ids = item_ids(&listed);
            if ids == bob_now {
                return Ok(format!("alice's agent returned bob's tasks at call {n}"));
            }
            ensure!(ids == alice_now, "list_tasks through alice's agent returned {ids:?}: {listed}");
        }
        bail!("{CALLS} list_tasks through alice's agent, with bob's up under the same app-id, all ran as alice")
    }
    .await;
    platform.stop_sidecar("agent-alice-shared", Duration::from_secs(10))?;
    platform.stop_sidecar("agent-bob-shared", Duration::from_secs(10))?;
    outcome
}

/// The ids of the tasks in a `list_tasks` result.
fn item_ids(result: &Value) -> BTreeSet<String> {
    result["structuredContent"]["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_str().map(str::to_owned))
        .collect()
}

/// `CallTool.<tool>` with `arguments`: the tool's result.
async fn call_tool(sidecar: &str, tool: &str, arguments: Value) -> anyhow::Result<Value> {
    call_tool_as(sidecar, tool, arguments, &uuid::Uuid::new_v4().simple().to_string()).await
}

/// [`call_tool`] as workflow instance `instance`.
async fn call_tool_as(sidecar: &str, tool: &str, arguments: Value, instance: &str) -> anyhow::Result<Value> {
    let name = format!("dapr.internal.mcp.{SERVER}.CallTool.{tool}");
    run_workflow(sidecar, &name, &json!({ "arguments": arguments }), instance).await
}

/// The output of the completed workflow `instance`, read through `sidecar`.
async fn workflow_output(sidecar: &str, instance: &str) -> anyhow::Result<Value> {
    let state = sidecar_get(sidecar, &format!("/v1.0/workflows/dapr/{instance}")).await?;
    ensure!(state["runtimeStatus"] == "COMPLETED", "{instance} is not completed: {state}");
    let output = state["properties"]["dapr.workflow.output"].as_str().with_context(|| format!("no output: {state}"))?;
    serde_json::from_str(output).with_context(|| format!("{instance}'s output: {output}"))
}

/// Starts workflow `name` as `instance` with `input` through the sidecar's HTTP API and returns
/// its output once it has completed; an error with the workflow's state if it fails or does not
/// finish.
async fn run_workflow(sidecar: &str, name: &str, input: &Value, instance: &str) -> anyhow::Result<Value> {
    let http = client()?;
    let start = format!("{sidecar}/v1.0/workflows/dapr/{name}/start?instanceID={instance}");
    let answer = json_body(http.post(&start), input).send().await.with_context(|| format!("POST {start}"))?;
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    ensure!(status.is_success(), "starting {name} answered {status}: {body}");
    let deadline = Instant::now() + WORKFLOW_TIMEOUT;
    let url = format!("{sidecar}/v1.0/workflows/dapr/{instance}");
    loop {
        let answer = http.get(&url).send().await.with_context(|| format!("GET {url}"))?;
        let status = answer.status();
        let state: Value = serde_json::from_slice(&answer.bytes().await?).unwrap_or_default();
        // daprd 1.18.2 on state.postgresql reads a workflow's metadata and its inbox in two
        // reads; when the workflow moves on between them the status answers 500
        // ERR_GET_WORKFLOW ("inbox key ... missing from state store (transient ...)"). A poller
        // asks again.
        if status == StatusCode::INTERNAL_SERVER_ERROR && state["errorCode"] == "ERR_GET_WORKFLOW" {
            TRANSIENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ensure!(Instant::now() < deadline, "{name} not readable within {WORKFLOW_TIMEOUT:?}: {state}");
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        ensure!(status.is_success(), "GET {url} answered {status}: {state}");
        match state["runtimeStatus"].as_str() {
            Some("COMPLETED") => {
                let output = state["properties"]["dapr.workflow.output"]
                    .as_str()
                    .with_context(|| format!("{name} completed without output: {state}"))?;
                return serde_json::from_str(output).with_context(|| format!("{name}'s output: {output}"));
            }
            Some("FAILED" | "TERMINATED") => bail!("{name} did not complete: {state}"),
            _ if Instant::now() > deadline => bail!("{name} not done within {WORKFLOW_TIMEOUT:?}: {state}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// How often a workflow's status answered the transient 500 (`run_workflow`), for the output.
static TRANSIENT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// `GET path` on a sidecar: its JSON answer, or an error with the status and body.
async fn sidecar_get(sidecar: &str, path: &str) -> anyhow::Result<Value> {
    let url = format!("{sidecar}{path}");
    let answer = client()?.get(&url).send().await.with_context(|| format!("GET {url}"))?;
    let status = answer.status();
    let body = answer.bytes().await.with_context(|| format!("reading GET {url}"))?;
    ensure!(status.is_success(), "GET {url} answered {status}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).with_context(|| format!("GET {url}: {}", String::from_utf8_lossy(&body)))
}

/// The names of the MCPServers a sidecar's metadata lists.
fn mcp_servers(metadata: &Value) -> Vec<&str> {
    metadata["mcpServers"].as_array().into_iter().flatten().filter_map(|s| s["name"].as_str()).collect()
}

/// The text blocks of a tool result, joined.
fn text_of(result: &Value) -> String {
    result["content"].as_array().into_iter().flatten().filter_map(|c| c["text"].as_str()).collect::<Vec<_>>().join("\n")
}
