//! The apps: starting them as processes (CLI), waiting until they are healthy, reading their
//! subscriptions, and stopping them.
//!
//! Startup order is Dapr's (dapr/dapr `pkg/runtime/runtime.go`): the sidecar API is up first
//! (apps poll `/v1.0/healthz/outbound` before their first call), then the app port must accept
//! connections and `GET <appHealthCheckPath>` (default `/healthz`, no token, like Dapr's probe)
//! must answer 2xx; only then `GET /dapr/subscribe` is read once (404 = no programmatic
//! subscriptions; any other failure is logged and leaves the app without them, as in Dapr), the
//! delivery loops start and jobs of that app-id may fire.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tracing::{error, info, warn};

use crate::delivery::Subscriber;
use crate::fields::Fields;
use crate::host::{App, Host};
use crate::resources::{SubscriptionSpec, parse_subscription};
use crate::runfile::RunApp;

/// Waits until `app` is healthy, reads its subscriptions, starts its delivery loops and marks it
/// ready. `timeout`: give up (None = wait forever, logging every few seconds).
pub async fn attach(
    host: Arc<Host>,
    app: Arc<App>,
    timeout: Option<Duration>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    wait_healthy(&host, &app, timeout).await?;
    let mut subscriptions: Vec<SubscriptionSpec> =
        host.resources.subscriptions.iter().filter(|s| s.visible_to(&app.app_id)).cloned().collect();
    for programmatic in read_subscriptions(&host, &app).await? {
        if subscriptions.iter().any(|s| s.pubsub == programmatic.pubsub && s.topic == programmatic.topic) {
            warn!(
                app_id = %app.app_id, pubsub = %programmatic.pubsub, topic = %programmatic.topic,
                "programmatic subscription duplicates a declarative one; the declarative one is used"
            );
            continue;
        }
        subscriptions.push(programmatic);
    }
    let mut subscribers = Vec::new();
    for spec in &subscriptions {
        let Some(pubsub) = host.pubsub_for(&app.app_id, &spec.pubsub) else {
            // Dapr logs and ignores a subscription to a pub/sub the app does not have.
            warn!(app_id = %app.app_id, pubsub = %spec.pubsub, topic = %spec.topic, "subscription to a pub/sub component not loaded for this app; ignored");
            continue;
        };
        if !pubsub.allowed(&app.app_id, &spec.topic, false) {
            warn!(app_id = %app.app_id, topic = %spec.topic, "subscription to topic is not allowed (subscriptionScopes); ignored");
            continue;
        }
        subscribers.push(Arc::new(Subscriber::new(host.clone(), app.clone(), spec.clone())?));
    }
    let mut handles = Vec::new();
    for subscriber in subscribers {
        handles.extend(subscriber.start().await?);
    }
    *app.subscriptions.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = subscriptions;
    app.ready.send_replace(true);
    host.jobs_changed.notify_one();
    info!(app_id = %app.app_id, app_port = app.app_port, "app ready");
    Ok(handles)
}

async fn wait_healthy(host: &Host, app: &App, timeout: Option<Duration>) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last_log = Instant::now();
    let url = format!("{}{}", app.base_url(), app.health_path);
    let mut pause = Duration::from_millis(20);
    loop {
        let status = match tokio::net::TcpStream::connect(("127.0.0.1", app.app_port)).await {
            Err(e) => format!("port {} not accepting connections ({e})", app.app_port),
            Ok(_) => match host.http.get(&url).timeout(Duration::from_secs(5)).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => format!("GET {} answered {}", app.health_path, r.status().as_u16()),
                Err(e) => format!("GET {} failed: {e}", app.health_path),
            },
        };
        if timeout.is_some_and(|t| started.elapsed() > t) {
            bail!("app {:?} did not become healthy within {:?}: {status}", app.app_id, timeout.unwrap_or_default());
        }
        if last_log.elapsed() > Duration::from_secs(5) {
            info!(app_id = %app.app_id, %status, "waiting for the app");
            last_log = Instant::now();
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = host.shutdown.cancelled() => bail!("shutting down"),
        }
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// `GET /dapr/subscribe` (dapr/dapr `pkg/runtime/pubsub/subscriptions.go` `GetSubscriptionsHTTP`).
/// A routing rule outside the supported CEL subset fails startup.
async fn read_subscriptions(host: &Host, app: &App) -> anyhow::Result<Vec<SubscriptionSpec>> {
    let url = format!("{}/dapr/subscribe", app.base_url());
    // The headers daprd sends (`GetSubscriptionsHTTP`): JSON content type and its app-id.
    let mut request = host
        .http
        .get(&url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("dapr-app-id", &app.app_id)
        .timeout(Duration::from_secs(10));
    if let Some(token) = &host.options.app_token {
        request = request.header("dapr-api-token", token);
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            error!(app_id = %app.app_id, error = %e, "GET /dapr/subscribe failed: no programmatic subscriptions until restart");
            return Ok(Vec::new());
        }
    };
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(Vec::new());
    }
    if !response.status().is_success() {
        error!(app_id = %app.app_id, status = response.status().as_u16(), "GET /dapr/subscribe failed: no programmatic subscriptions until restart");
        return Ok(Vec::new());
    }
    let body: Value = match response
        .bytes()
        .await
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            error!(app_id = %app.app_id, error = %e, "GET /dapr/subscribe answered something that is not JSON");
            return Ok(Vec::new());
        }
    };
    let Value::Array(entries) = body else {
        error!(app_id = %app.app_id, "GET /dapr/subscribe must answer a JSON array");
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (index, entry) in entries.into_iter().enumerate() {
        let at = format!("app {:?} GET /dapr/subscribe [{index}]", app.app_id);
        let spec = parse_subscription(Fields::new(entry, at.clone())?, false)?;
        if spec.rules.is_empty() && spec.default_path.is_none() {
            warn!(app_id = %app.app_id, topic = %spec.topic, "subscription without route or rules: dropped (as Dapr does)");
            continue;
        }
        spec.compile_rules().with_context(|| format!("{at}: invalid subscription"))?;
        out.push(spec);
    }
    Ok(out)
}

/// A started app process.
#[derive(Debug)]
pub struct Process {
    pub app_id: String,
    pub child: Child,
}

/// Starts one app of the run file with its environment, prefixing its output with `[app-id]`.
pub fn spawn(
    run: &RunApp,
    app_port: u16,
    sidecar_port: u16,
    api_token: Option<&str>,
    app_token: Option<&str>,
) -> anyhow::Result<Process> {
    let Some((program, args)) = run.command.split_first() else {
        bail!("app {:?} has no `command` in the run file", run.app_id);
    };
    // A relative program path is relative to appDirPath (Command would resolve it ambiguously).
    let program_path = if program.contains('/') { run.app_dir.join(program) } else { program.into() };
    let mut env: BTreeMap<String, String> = run.env.clone();
    env.insert("APP_ID".into(), run.app_id.clone());
    env.insert("APP_PORT".into(), app_port.to_string());
    env.insert("DAPR_HTTP_PORT".into(), sidecar_port.to_string());
    env.insert("DAPR_HTTP_ENDPOINT".into(), format!("http://127.0.0.1:{sidecar_port}"));
    if let Some(t) = api_token {
        env.insert("DAPR_API_TOKEN".into(), t.to_owned());
    }
    if let Some(t) = app_token {
        env.insert("APP_API_TOKEN".into(), t.to_owned());
    }
    let mut command = Command::new(&program_path);
    command
        .args(args)
        .current_dir(&run.app_dir)
        .envs(&env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().with_context(|| {
        format!(
            "starting app {:?}: {} (in {}); did `cargo build` run?",
            run.app_id,
            program_path.display(),
            run.app_dir.display()
        )
    })?;
    for (stream, is_err) in [
        (child.stdout.take().map(Box::new).map(|s| s as Box<dyn tokio::io::AsyncRead + Unpin + Send>), false),
        (child.stderr.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>), true),
    ] {
        let Some(stream) = stream else { continue };
        let prefix = format!("[{}]", run.app_id);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if is_err {
                    eprintln!("{prefix} {line}");
                } else {
                    println!("{prefix} {line}");
                }
            }
        });
    }
    Ok(Process { app_id: run.app_id.clone(), child })
}

/// SIGTERM to every app, then waits up to `grace` for each before killing it.
pub async fn stop_all(processes: &mut [Process], grace: Duration) {
    for p in processes.iter() {
        if let Some(pid) = p.child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
    }
    let deadline = tokio::time::Instant::now() + grace;
    for p in processes.iter_mut() {
        match tokio::time::timeout_at(deadline, p.child.wait()).await {
            Ok(Ok(status)) => info!(app_id = %p.app_id, %status, "app stopped"),
            Ok(Err(e)) => warn!(app_id = %p.app_id, error = %e, "waiting for the app failed"),
            Err(_) => {
                warn!(app_id = %p.app_id, "app did not stop within {grace:?} of SIGTERM; killing it");
                let _ = p.child.kill().await;
            }
        }
    }
}
