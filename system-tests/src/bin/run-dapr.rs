//! `make run-dapr`: the six functions of `dapr.yaml` on the real platform (daprd, the Dapr
//! Scheduler, Kafka and PostgreSQL that `make platform` built), with `dapr-components/local/`.
//! Prints the same URL and token as `make run`, so `make demo` plays against it; Ctrl-C (or
//! SIGTERM) stops everything it started. PostgreSQL's and Kafka's data stay in `.platform/`
//! between runs, as devhost's stay in `.devhost/`.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use system_tests::platform::{Options, Platform};
use system_tests::workspace_root;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("run-dapr: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let root = workspace_root();
    let secret_file = root.join(".devhost/jwt-secret");
    let secret = std::fs::read_to_string(&secret_file)
        .with_context(|| format!("reading {} (the Makefile writes it)", secret_file.display()))?
        .trim()
        .to_owned();
    let dir = root.join(".platform");
    let started = Instant::now();
    println!(
        "run-dapr: starting PostgreSQL, Kafka, the Dapr Scheduler, six daprd and six functions (mail goes to the mail-sink of make run-dapr)"
    );
    let options = Options {
        reuse_data: true,
        function_env: vec![("JWT_SECRET".to_owned(), secret.clone())],
        ..Options::default()
    };
    let platform = Platform::start(&root.join("dapr.yaml"), &dir, options).await?;
    let token = task_api::auth::mint(secret.as_bytes(), "alice", task_api::auth::DEFAULT_DEV_TTL)?;
    let url = platform.api_url()?;
    println!(
        "\n  up in {:.1} s (logs in {})\n  task-api:  {url}\n  MCP:       {url}/mcp (for AI agents: README, \"Use it from an AI agent\")\n  dev token: export TOKEN={token}\n  try:       curl -H \"Authorization: Bearer $TOKEN\" {url}/v1/tasks\n  demo:      make demo (in another terminal)\n",
        started.elapsed().as_secs_f64(),
        platform.logs().display()
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    println!("run-dapr: stopping");
    platform.stop()
}
