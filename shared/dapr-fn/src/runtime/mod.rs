//! The function runtime: everything between Dapr and a handler, written once.
//!
//! A function is declared as its triggers plus plain async handlers:
//!
//! ```no_run
//! use dapr_fn::runtime::{Event, Function, HandlerResult, Subscription};
//!
//! async fn handle(event: Event<serde_json::Value>) -> HandlerResult {
//!     tracing::info!(id = %event.id, "got it");
//!     Ok(())
//! }
//!
//! const ABOUT: dapr_fn::runtime::About = dapr_fn::runtime::About {
//!     name: "audit-writer",
//!     version: env!("CARGO_PKG_VERSION"),
//!     summary: "appends one audit entry per task event",
//!     env: &[],
//!     elsewhere: &[],
//! };
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     dapr_fn::runtime::main(&ABOUT, |_dapr| {
//!         Ok(Function::new("audit-writer")
//!             .subscribe(Subscription::new("pubsub", "task-events").route("/events/task-events", handle)))
//!     })
//!     .await
//! }
//! ```
//!
//! (`--help` prints the summary and every environment variable the binary reads, see [`cli`]),
//! and the runtime serves:
//! - `GET /dapr/subscribe`: the subscriptions in Dapr's v2 format, with routing rules and the
//!   dead-letter topic;
//! - the event routes: body parsed by hand ([`cloudevent`]), handler result mapped to
//!   SUCCESS / RETRY / DROP ([`outcome`]), malformed input DROPped, never answered with a 4xx;
//! - `POST /job/{name}`: job callbacks, dispatched on the name's prefix;
//! - `GET /healthz` (never behind a token: Dapr's health probe sends none) and `GET /metrics`;
//! - the function's own public routes, if any (task-api), which bring their own auth.
//!
//! Around every handler it checks `dapr-api-token` against `APP_API_TOKEN`, continues the
//! `traceparent` ([`crate::trace`]), logs one line with the CloudEvent id and trace id, records
//! metrics, catches panics (answered as RETRY), and on SIGTERM stops accepting connections and
//! lets in-flight work finish within `SHUTDOWN_TIMEOUT_SECS`.
//!
//! A function may also run [`background`] tasks (task-api's outbox relay): the runtime starts
//! them with the server, signals them at the start of shutdown and waits for them within the
//! same deadline.

pub mod background;
pub mod cli;
pub mod cloudevent;
mod config;
pub mod metrics;
pub mod outcome;
mod trigger;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tracing::{Instrument, debug, info, info_span, warn};

pub use background::{Background, StopSignal, Stopping};
pub use cli::About;
pub use cloudevent::{Delivery, Event};
pub use config::{LogFormat, RuntimeConfig};
pub use outcome::{HandlerError, HandlerResult, Outcome};
pub use trigger::{JobCall, Subscription, default_dead_letter_topic};

use crate::dapr::{API_TOKEN_HEADER, Dapr};
use crate::trace::TraceContext;
use trigger::{EventHandler, JobRoute};

/// A function: its app-id, its triggers, for HTTP front doors its public routes, and any
/// background tasks.
pub struct Function {
    app_id: &'static str,
    subscriptions: Vec<Subscription>,
    jobs: Vec<JobRoute>,
    public: Option<Router>,
    background: Vec<Background>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("app_id", &self.app_id)
            .field("subscriptions", &self.subscriptions)
            .field("jobs", &self.jobs.iter().map(|j| &j.prefix).collect::<Vec<_>>())
            .field("public_routes", &self.public.is_some())
            .field("background", &self.background_names())
            .finish()
    }
}

impl Function {
    /// `app_id` must equal the Dapr app-id: it names the consumer group, the dead-letter topic,
    /// the owner of scheduled jobs, and the `function` label of every metric.
    pub fn new(app_id: &'static str) -> Self {
        Self { app_id, subscriptions: Vec::new(), jobs: Vec::new(), public: None, background: Vec::new() }
    }

    /// Adds a topic subscription, completed for this app-id: the dead-letter topic `{app_id}-dlq`
    /// unless it names its own or none, and an acknowledging default route if it has none
    /// (daprd would dead-letter an event that matches no route).
    pub fn subscribe(mut self, subscription: Subscription) -> Self {
        self.subscriptions.push(subscription.finish(self.app_id));
        self
    }

    /// Handles `POST /job/{name}` for every job whose name starts with `prefix`.
    pub fn on_job<T, F, Fut>(mut self, prefix: &str, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(JobCall<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.jobs.push(trigger::job_route(prefix, handler));
        self
    }

    /// Public HTTP routes (not behind the app token: they authenticate their own callers).
    pub fn public_routes(mut self, router: Router) -> Self {
        self.public = Some(router);
        self
    }

    /// A task that runs beside the server for the life of the process (see [`background`]).
    /// It gets a [`Stopping`] and must return soon after shutdown begins; `name` is logged.
    pub fn background<F, Fut>(mut self, name: &'static str, task: F) -> Self
    where
        F: FnOnce(Stopping) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.background.push(Background::new(name, task));
        self
    }

    /// The app-id given to [`Function::new`]: the `function` label of every runtime metric and
    /// the `app_id` of `/healthz` and of the runtime's log lines.
    pub fn app_id(&self) -> &'static str {
        self.app_id
    }

    /// Names of the background tasks, in the order they were added.
    pub fn background_names(&self) -> Vec<&'static str> {
        self.background.iter().map(Background::name).collect()
    }

    /// Takes the background tasks out, for a host that starts them itself ([`serve`] does;
    /// the test harness does too). [`Function::into_router`] does not start them.
    pub fn take_background(&mut self) -> Vec<Background> {
        std::mem::take(&mut self.background)
    }

    /// The subscriptions as served on `GET /dapr/subscribe`: completed, with their dead-letter
    /// topics and default routes filled in.
    pub fn subscriptions(&self) -> &[Subscription] {
        &self.subscriptions
    }

    /// Prefixes of the job names this function handles.
    pub fn job_prefixes(&self) -> Vec<&str> {
        self.jobs.iter().map(|j| j.prefix.as_str()).collect()
    }

    /// The complete router. Tests serve it against a stub sidecar. Background tasks are not
    /// part of it: take them first with [`Function::take_background`] to run them.
    pub fn into_router(self, config: &RuntimeConfig) -> Router {
        // Install the recorder before the first event is counted.
        let _ = metrics::handle();
        let app_id = self.app_id;
        let max_body = config.max_body_bytes;
        let subscribe_body = Arc::new(Value::Array(self.subscriptions.iter().map(Subscription::to_wire).collect()));

        let mut dapr_facing = Router::new().route(
            "/dapr/subscribe",
            get(move || {
                let body = subscribe_body.clone();
                async move { axum::Json(body.as_ref().clone()) }
            }),
        );
        for subscription in &self.subscriptions {
            for route in subscription.routes() {
                let ctx = Arc::new(DeliveryCtx {
                    app_id,
                    path: route.path.clone(),
                    handler: route.handler.clone(),
                    max_body,
                });
                dapr_facing = dapr_facing.route(&route.path, post(deliver).with_state(ctx));
            }
        }
        if !self.jobs.is_empty() {
            let ctx = Arc::new(JobCtx { app_id, routes: self.jobs, max_body });
            dapr_facing = dapr_facing.route("/job/{name}", post(job).with_state(ctx));
        }
        if config.metrics_port.is_none() {
            dapr_facing = dapr_facing.route("/metrics", get(render_metrics));
        }
        if let Some(token) = config.app_api_token.clone().filter(|t| !t.is_empty()) {
            let token: Arc<str> = token.into();
            dapr_facing = dapr_facing.layer(middleware::from_fn_with_state(token, require_app_token));
        }

        let mut router = Router::new()
            .route("/healthz", get(move || async move { axum::Json(json!({"status": "ok", "app_id": app_id})) }))
            .merge(dapr_facing);
        if let Some(public) = self.public {
            let public = public
                .layer(axum::extract::DefaultBodyLimit::max(max_body))
                .layer(middleware::from_fn_with_state(app_id, observe_http));
            router = router.merge(public);
        }
        router
    }
}

/// A function binary's whole `main`: the command line ([`cli`]: `--help` and `--version` exit
/// 0, anything else 2), then [`run`]. A failure to start is printed as `Error: ...` with its
/// causes, exit code 1, as a `main` returning `anyhow::Result` would.
pub async fn main<F>(about: &About, build: F) -> std::process::ExitCode
where
    F: FnOnce(Dapr) -> anyhow::Result<Function>,
{
    if let Some(code) = cli::handle_args(about) {
        return code;
    }
    match run(build).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:?}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs a function as a process: configuration from the environment, logging, the sidecar
/// client, the listener, and graceful shutdown on SIGTERM or Ctrl-C.
pub async fn run<F>(build: F) -> anyhow::Result<()>
where
    F: FnOnce(Dapr) -> anyhow::Result<Function>,
{
    let config = RuntimeConfig::from_env()?;
    init_tracing(config.log_format);
    if config.app_api_token.is_none() {
        warn!("APP_API_TOKEN_OPTIONAL: the Dapr-facing routes accept calls without the app token (development only)");
    }
    let dapr = Dapr::from_env().context("Dapr sidecar client")?;
    let function = build(dapr)?;
    let listener = TcpListener::bind((config.app_host.as_str(), config.app_port))
        .await
        .with_context(|| format!("binding {}:{}", config.app_host, config.app_port))?;
    serve(function, &config, listener, shutdown_signal()).await
}

/// Serves `function` on `listener` until `shutdown` resolves, then drains for at most
/// `shutdown_timeout_secs`. Background tasks run from the start; they are signalled when
/// `shutdown` resolves and waited for within the same deadline, then aborted.
pub async fn serve(
    mut function: Function,
    config: &RuntimeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app_id = function.app_id;
    let addr = listener.local_addr().context("listener address")?;
    let metrics_listener = match config.metrics_port {
        Some(port) => Some(
            TcpListener::bind((config.metrics_host(), port))
                .await
                .with_context(|| format!("binding metrics port {}:{port}", config.metrics_host()))?,
        ),
        None => None,
    };
    let background = function.take_background();
    let router = function.into_router(config);
    info!(app_id, %addr, "listening");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let grace = Duration::from_secs(config.shutdown_timeout_secs);
    // When shutdown began: the one deadline the server's drain and the background tasks share.
    let (deadline_tx, mut deadline_rx) = tokio::sync::watch::channel(None::<tokio::time::Instant>);
    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = deadline_tx.send(Some(tokio::time::Instant::now() + grace));
            let _ = stop_tx.send(true);
        });
    }
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let tasks: Vec<(&'static str, tokio::task::JoinHandle<()>)> = background
        .into_iter()
        .map(|task| {
            let name = task.name();
            info!(app_id, task = name, "background task started");
            (name, task.spawn(Stopping::from_receiver(stop_rx.clone())))
        })
        .collect();

    if let Some(listener) = metrics_listener {
        // Health here too: kubelet probes this port when the app port is on loopback.
        let metrics_router = Router::new()
            .route("/metrics", get(render_metrics))
            .route("/healthz", get(move || async move { axum::Json(json!({"status": "ok", "app_id": app_id})) }));
        let rx = stop_rx.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, metrics_router).with_graceful_shutdown(stopped(rx)).await;
        });
    }

    // TCP_NODELAY: an answer written in more than one piece (an SSE answer of `/mcp`: headers,
    // then the event) otherwise waits in Nagle's algorithm for the client's delayed ACK, 40 ms
    // on Linux, on every call (`make bench`'s MCP figure: 44 ms a call without it, 3 with it).
    // A socket that refuses the option is served as it is.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            debug!(%error, "TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(stopped(stop_rx.clone()));
    let deadline = async move {
        stopped(stop_rx).await;
        info!(app_id, grace_secs = grace.as_secs(), "shutting down: draining in-flight work");
        tokio::time::sleep(grace).await;
    };
    let served = tokio::select! {
        result = server => result.context("serving"),
        () = deadline => {
            warn!(app_id, "in-flight work did not finish within the shutdown timeout");
            Ok(())
        }
    };
    // The server may also have ended on an error: the background tasks stop either way.
    let _ = stop_tx.send(true);
    let deadline = deadline_rx.borrow_and_update().unwrap_or_else(|| tokio::time::Instant::now() + grace);
    for (name, mut task) in tasks {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            warn!(app_id, task = name, "background task did not stop within the shutdown timeout; aborting it");
            task.abort();
        }
    }
    served?;
    info!(app_id, "stopped");
    Ok(())
}

/// Resolves on SIGTERM (Kubernetes, devhost) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Structured logs to stdout; `RUST_LOG` filters (default `info`).
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: a log collector or a file gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
    };
}

struct DeliveryCtx {
    app_id: &'static str,
    path: String,
    /// `None` for the acknowledging default route of a subscription without one.
    handler: Option<EventHandler>,
    max_body: usize,
}

/// One topic delivery: parse, run the handler, answer Dapr. Always HTTP 200 with a status body:
/// the status, not the HTTP code, tells Dapr what to do.
async fn deliver(State(ctx): State<Arc<DeliveryCtx>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let parsed = match to_bytes(body, ctx.max_body).await {
        Ok(bytes) => cloudevent::parse(&bytes, &headers),
        Err(e) => Err(format!("body unreadable or larger than {} bytes: {e}", ctx.max_body)),
    };
    let (trace, span) = match &parsed {
        Ok(event) => {
            let trace = TraceContext::continue_from(event.traceparent.as_deref(), event.tracestate.as_deref());
            let span = event_span(ctx.app_id, &ctx.path, &event.id, &event.event_type, &trace);
            (trace, span)
        }
        Err(_) => {
            let trace = TraceContext::continue_from(header(&headers, "traceparent"), header(&headers, "tracestate"));
            let span = event_span(ctx.app_id, &ctx.path, "", "", &trace);
            (trace, span)
        }
    };
    let outcome = match (parsed, &ctx.handler) {
        (Err(reason), _) => {
            span.in_scope(|| warn!(reason = %reason, "dropping malformed delivery"));
            Outcome::Drop
        }
        (Ok(_), None) => Outcome::Ignored,
        (Ok(event), Some(handler)) => run_handler(handler(event), trace, span.clone()).await,
    };
    let elapsed = started.elapsed();
    span.in_scope(|| info!(outcome = outcome.as_str(), elapsed_ms = elapsed.as_secs_f64() * 1e3, "event handled"));
    ::metrics::counter!("todo_events_total", "function" => ctx.app_id, "route" => ctx.path.clone(), "outcome" => outcome.as_str())
        .increment(1);
    ::metrics::histogram!("todo_event_handler_seconds", "function" => ctx.app_id, "route" => ctx.path.clone())
        .record(elapsed.as_secs_f64());
    (StatusCode::OK, axum::Json(json!({"status": outcome.dapr_status()}))).into_response()
}

fn event_span(app_id: &str, route: &str, id: &str, event_type: &str, trace: &TraceContext) -> tracing::Span {
    info_span!("event", app_id, route, ce.id = id, ce.type = event_type, trace_id = %trace.trace_id, span_id = %trace.span_id)
}

/// Runs a handler future in its own task (so a panic becomes RETRY, not a dropped connection)
/// within the trace context and span. `Err(reason)` from the decoder means DROP.
async fn run_handler(
    prepared: Result<trigger::BoxFuture, String>,
    trace: TraceContext,
    span: tracing::Span,
) -> Outcome {
    let future = match prepared {
        Ok(future) => future,
        Err(reason) => {
            span.in_scope(|| warn!(reason = %reason, "dropping: payload cannot be processed"));
            return Outcome::Drop;
        }
    };
    let task = tokio::spawn(trace.scope(future.instrument(span.clone())));
    match task.await {
        Ok(Ok(())) => Outcome::Success,
        Ok(Err(HandlerError::Retry(error))) => {
            span.in_scope(|| warn!(error = format!("{error:#}"), "handler asked for retry"));
            Outcome::Retry
        }
        Ok(Err(HandlerError::Drop(reason))) => {
            span.in_scope(|| warn!(reason = %reason, "handler dropped the message"));
            Outcome::Drop
        }
        Err(join_error) => {
            span.in_scope(|| tracing::error!(error = %join_error, "handler panicked; asking for retry"));
            Outcome::Retry
        }
    }
}

struct JobCtx {
    app_id: &'static str,
    routes: Vec<JobRoute>,
    max_body: usize,
}

/// `POST /job/{name}`: 200 done; 500 retry under the job's failure policy; 404 cannot be
/// processed (Dapr 1.15+ treats it as done and does not retry).
async fn job(State(ctx): State<Arc<JobCtx>>, Path(name): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let trace = TraceContext::continue_from(header(&headers, "traceparent"), header(&headers, "tracestate"));
    let span =
        info_span!("job", app_id = ctx.app_id, job = %name, trace_id = %trace.trace_id, span_id = %trace.span_id);
    let outcome = match ctx.routes.iter().find(|r| name.starts_with(&r.prefix)) {
        None => {
            span.in_scope(|| warn!("no handler for this job name"));
            Outcome::Drop
        }
        Some(route) => {
            let data = match to_bytes(body, ctx.max_body).await {
                Err(e) => Err(format!("body unreadable or too large: {e}")),
                Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Value::Null),
                Ok(bytes) => serde_json::from_slice::<Value>(&bytes).map_err(|e| format!("job body is not JSON: {e}")),
            };
            match data {
                Err(reason) => {
                    span.in_scope(|| warn!(reason = %reason, "dropping job callback"));
                    Outcome::Drop
                }
                Ok(data) => {
                    let call = JobCall {
                        name: name.clone(),
                        data,
                        traceparent: header(&headers, "traceparent").map(str::to_owned),
                    };
                    run_handler((route.handler)(call), trace.clone(), span.clone()).await
                }
            }
        }
    };
    let elapsed = started.elapsed();
    span.in_scope(|| info!(outcome = outcome.as_str(), elapsed_ms = elapsed.as_secs_f64() * 1e3, "job handled"));
    ::metrics::counter!("todo_jobs_total", "function" => ctx.app_id, "outcome" => outcome.as_str()).increment(1);
    ::metrics::histogram!("todo_job_handler_seconds", "function" => ctx.app_id).record(elapsed.as_secs_f64());
    let status = match outcome {
        Outcome::Success | Outcome::Ignored => StatusCode::OK,
        Outcome::Retry => StatusCode::INTERNAL_SERVER_ERROR,
        Outcome::Drop => StatusCode::NOT_FOUND,
    };
    (status, axum::Json(json!({"outcome": outcome.as_str()}))).into_response()
}

/// Rejects Dapr-facing calls without the app token. Constant-time comparison.
async fn require_app_token(State(token): State<Arc<str>>, request: Request, next: Next) -> Response {
    use subtle::ConstantTimeEq;
    let presented = request.headers().get(API_TOKEN_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    if bool::from(presented.ct_eq(token.as_bytes())) {
        return next.run(request).await;
    }
    warn!(path = %request.uri().path(), "rejected a call without a valid dapr-api-token");
    (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "missing or invalid dapr-api-token"}))).into_response()
}

/// Trace context, one log line and metrics for every public HTTP request.
async fn observe_http(State(app_id): State<&'static str>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let trace =
        TraceContext::continue_from(header(request.headers(), "traceparent"), header(request.headers(), "tracestate"));
    let span =
        info_span!("request", app_id, %method, route = %route, trace_id = %trace.trace_id, span_id = %trace.span_id);
    let response = trace.scope(next.run(request).instrument(span.clone())).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| info!(status, elapsed_ms = elapsed.as_secs_f64() * 1e3, "request handled"));
    ::metrics::counter!("todo_http_requests_total", "function" => app_id, "method" => method.to_string(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    ::metrics::histogram!("todo_http_request_seconds", "function" => app_id, "route" => route)
        .record(elapsed.as_secs_f64());
    response
}

async fn render_metrics() -> Response {
    match metrics::render() {
        Some(text) => ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics recorder not installed").into_response(),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
