//! The apps: starting them as processes (CLI), waiting until they accept connections (and are
//! healthy, with app health checks), reading their subscriptions, and stopping them.
//!
//! Startup order is daprd's (dapr/dapr v1.18.2 `pkg/runtime/runtime.go`): the sidecar API is up
//! first (apps poll `/v1.0/healthz/outbound` before their first call), then devhost waits until
//! the app port accepts a TCP connection, trying every 100 ms (`blockUntilAppIsReady`,
//! runtime.go:1536-1580). Without app health checks (daprd's default) that is all: the app is
//! healthy at once (runtime.go:899-902) and `GET /dapr/subscribe` is read; an app need not serve
//! any health route. With them enabled ([`HealthCheck`]), `GET <path>` is probed (no token, like
//! daprd's probe) until it answers 2xx (`pkg/apphealth/health.go`: the app starts unhealthy),
//! then every `interval`; `threshold` failures in a row make the app unhealthy, and deliveries
//! and job triggers wait until a probe succeeds again (daprd stops the app's subscriptions and
//! jobs while it is unhealthy and starts them again, runtime.go:940-1010).
//!
//! `GET /dapr/subscribe` is read once (404 = no programmatic subscriptions; any other failure is
//! logged and leaves the app without them, as in daprd); a routing rule in it that does not
//! compile leaves the app without any running subscription, declarative ones included, as daprd
//! does ([`crate::cel::Rule::compile`]).
//! Then the delivery loops start and jobs of that app-id may fire.

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
use crate::runfile::{HealthCheck, RunApp};

/// Waits until `app` accepts connections (and is healthy, with a health check), reads its
/// subscriptions, starts its delivery loops (and its health probes) and marks it ready.
/// `timeout`: give up (None = wait forever, logging every few seconds).
pub async fn attach(
    host: Arc<Host>,
    app: Arc<App>,
    timeout: Option<Duration>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let started = Instant::now();
    if app.app_port == crate::NO_APP_PORT {
        // daprd without an app channel: nothing to wait for, no subscriptions; a declarative
        // one would only fail every delivery there.
        if host.resources.subscriptions.iter().any(|s| s.visible_to(&app.app_id)) {
            warn!(app_id = %app.app_id, "the app has no appPort: its declarative subscriptions get no deliveries");
        }
        app.ready.send_replace(true);
        info!(app_id = %app.app_id, "app without an app port: only its sidecar is served");
        return Ok(Vec::new());
    }
    wait_for_port(&host, &app, timeout).await?;
    if let Some(check) = &app.health_check {
        let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
        wait_healthy(&host, &app, check, left).await?;
    }
    let mut subscriptions: Vec<SubscriptionSpec> =
        host.resources.subscriptions.iter().filter(|s| s.visible_to(&app.app_id)).cloned().collect();
    let mut start = true;
    match read_subscriptions(&host, &app).await {
        Ok(programmatic) => {
            for programmatic in programmatic {
                if subscriptions.iter().any(|s| s.pubsub == programmatic.pubsub && s.topic == programmatic.topic) {
                    warn!(
                        app_id = %app.app_id, pubsub = %programmatic.pubsub, topic = %programmatic.topic,
                        "programmatic subscription duplicates a declarative one; the declarative one is used"
                    );
                    continue;
                }
                subscriptions.push(programmatic);
            }
        }
        Err(e) => {
            // daprd: `StartAppSubscriptions` fails before it starts any subscription, declarative
            // ones included, and only logs it (runtime.go:963-966); `/v1.0/metadata` still lists
            // the declarative ones.
            error!(app_id = %app.app_id, error = %format!("{e:#}"), "failed to subscribe to topics: no subscription of the app is started");
            start = false;
        }
    }
    let mut subscribers = Vec::new();
    for spec in subscriptions.iter().filter(|_| start) {
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
    if let Some(check) = app.health_check.clone() {
        handles.push(tokio::spawn(probe_forever(host.clone(), app.clone(), check)));
    }
    info!(app_id = %app.app_id, app_port = app.app_port, "app ready");
    Ok(handles)
}

/// daprd's `blockUntilAppIsReady`: a TCP connection every 100 ms until one is accepted.
async fn wait_for_port(host: &Host, app: &App, timeout: Option<Duration>) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last_log = Instant::now();
    loop {
        let connect = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(("127.0.0.1", app.app_port)),
        )
        .await;
        let status = match connect {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => format!("port {} not accepting connections ({e})", app.app_port),
            Err(_) => format!("port {} not accepting connections (timed out)", app.app_port),
        };
        if timeout.is_some_and(|t| started.elapsed() > t) {
            bail!("app {:?} did not listen within {:?}: {status}", app.app_id, timeout.unwrap_or_default());
        }
        if last_log.elapsed() > Duration::from_secs(5) {
            info!(app_id = %app.app_id, %status, "waiting for the app to listen on its port");
            last_log = Instant::now();
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            () = host.shutdown.cancelled() => bail!("shutting down"),
        }
    }
}

/// One probe: `Ok` on 2xx, else why not.
async fn probe(host: &Host, app: &App, check: &HealthCheck) -> Result<(), String> {
    let url = format!("{}{}", app.base_url(), check.path);
    match host.http.get(&url).timeout(check.timeout).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("Health check failed with status code: {}", r.status().as_u16())),
        Err(e) => Err(format!("GET {} failed: {e}", check.path)),
    }
}

/// Probes right away, then every `interval`, until the first success (the app starts unhealthy).
async fn wait_healthy(host: &Host, app: &App, check: &HealthCheck, timeout: Option<Duration>) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last_log = Instant::now();
    loop {
        let status = match probe(host, app, check).await {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        if timeout.is_some_and(|t| started.elapsed() > t) {
            bail!("app {:?} did not become healthy within {:?}: {status}", app.app_id, timeout.unwrap_or_default());
        }
        if last_log.elapsed() > Duration::from_secs(5) {
            info!(app_id = %app.app_id, %status, "waiting for the app to be healthy");
            last_log = Instant::now();
        }
        tokio::select! {
            () = tokio::time::sleep(check.interval) => {}
            () = host.shutdown.cancelled() => bail!("shutting down"),
        }
    }
}

/// The probes of a healthy app, every `interval`: `threshold` failures in a row make it unhealthy
/// (deliveries and job triggers wait), one success healthy again (`pkg/apphealth/health.go`
/// `setResult`).
async fn probe_forever(host: Arc<Host>, app: Arc<App>, check: HealthCheck) {
    let mut failures = 0u32;
    loop {
        tokio::select! {
            () = tokio::time::sleep(check.interval) => {}
            () = host.shutdown.cancelled() => return,
        }
        match probe(&host, &app, &check).await {
            Ok(()) => {
                if failures >= check.threshold {
                    info!(app_id = %app.app_id, "App entered healthy status");
                    app.ready.send_replace(true);
                    host.jobs_changed.notify_one();
                }
                failures = 0;
            }
            Err(why) => {
                failures = failures.saturating_add(1);
                if failures == check.threshold {
                    warn!(app_id = %app.app_id, reason = %why, "App entered un-healthy status: deliveries and jobs wait");
                    app.ready.send_replace(false);
                }
            }
        }
    }
}

/// `GET /dapr/subscribe` (dapr/dapr `pkg/runtime/pubsub/subscriptions.go` `GetSubscriptionsHTTP`).
/// `Err`: a routing rule that does not compile (daprd's `GetSubscriptionsHTTP` fails then).
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
        let spec = match Fields::new(entry, at.clone()).and_then(|f| parse_subscription(f, false)) {
            Ok(spec) => spec,
            Err(e) => {
                error!(app_id = %app.app_id, error = %format!("{e:#}"), "GET /dapr/subscribe: an entry devhost cannot read is skipped");
                continue;
            }
        };
        spec.compile_rules().with_context(|| format!("{at}: invalid subscription"))?;
        if spec.rules.is_empty() && spec.default_path.is_none() {
            warn!(app_id = %app.app_id, topic = %spec.topic, "subscription without route or rules: dropped (as Dapr does)");
            continue;
        }
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
    // The dapr CLI sets APP_PORT only for an app that has one.
    if app_port != crate::NO_APP_PORT {
        env.insert("APP_PORT".into(), app_port.to_string());
    }
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
