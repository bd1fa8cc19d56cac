//! The system as a whole: the functions with devhost, and the deployment artifacts against the
//! code. The tests are in `tests/`; this library holds what they and `make demo` share.
//!
//! # Layout
//!
//! - [`api`]: a small client of task-api, and polling with a deadline.
//! - [`mcp`]: a small client of task-api's MCP server (`/mcp`) over plain HTTP: sessions,
//!   tool calls, SSE answers (`tests/mcp.rs`, `make bench`).
//! - [`scenario`]: the demo scenario (recurring task, reminder, completion, next occurrence,
//!   audit trail), played through task-api only.
//! - [`kustomize`]: the Kubernetes manifests rendered as the clusters get them, for the tests
//!   that check them against the code.
//! - [`kafka`]: a small Kafka admin client (topics, consumer lag, reading a topic) for the tests
//!   that run the functions on a real broker.
//! - [`host`]: a private copy of the system (run file, database, JWT secret) started in-process
//!   or as the `devhost` binary.
//! - [`platform`]: the same system on the real platform: PostgreSQL, a Kafka broker, the Dapr
//!   Scheduler and a real daprd beside each function, as processes built by `make platform`.
//! - [`kubelet`]: plays kubelet for the function Deployments of a real API server: runs as
//!   many (function + daprd) pairs on the [`platform`] as KEDA and the HPA controller ask for.
//! - [`keda`]: the control plane with KEDA (`scripts/control-plane.sh --keda`), the overlay
//!   applied for real, idle, and one wake-up from zero measured (`make test-keda`, `make bench`).
//! - [`plans`]: the SQL daprd sends PostgreSQL, read back from its statement log, and which
//!   index PostgreSQL's plan for it uses (`tests/query_plans.rs`).
//! - [`procfs`]: a process's resident memory, name and CPU time from `/proc` (the KEDA test's
//!   idle figures, `make bench`).
//! - [`system`]: one system under test on either backend (devhost, in this process or as a
//!   binary, or the real platform), so that a scenario is written once for both.
//! - [`scenarios`]: the end-to-end and fault scenarios that run on both backends
//!   (`tests/e2e.rs` and `tests/faults.rs` on devhost, `tests/platform.rs` on the platform).
//! - [`notify`]: the notifier's end-to-end scenarios on either backend (webhook and mail once
//!   each, a receiver down for 20 s, a receiver that is gone).
//! - [`smtp`]: an SMTP sink that keeps every message (envelope, raw data, decoded view), for
//!   the `bindings.smtp` tests and `make run` (`src/bin/mail-sink.rs`).
//! - [`webhook`]: a webhook receiver on loopback that records, answers as told and goes down
//!   on demand, and checks Standard Webhooks signatures (the notifier's tests, `make bench`).
//! - `src/bin/demo.rs`: `make demo`; `src/bin/run-dapr.rs`: `make run-dapr`.

pub mod api;
pub mod host;
pub mod kafka;
pub mod keda;
pub mod kubelet;
pub mod kustomize;
pub mod mcp;
pub mod notify;
pub mod plans;
pub mod platform;
pub mod procfs;
pub mod scenario;
pub mod scenarios;
pub mod smtp;
pub mod system;
pub mod webhook;

use std::path::PathBuf;

use anyhow::Context as _;

/// The workspace root (where `dapr.yaml` and `Cargo.toml` are).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map(PathBuf::from).unwrap_or(manifest_dir)
}

/// Runs an installer script of a client nobody here wrote (`scripts/mcp-python.sh`,
/// `scripts/node-example.sh`, ...): the path it prints last. On failure, the error says what the
/// test needs (`needs`); the script's own message is on stderr.
pub async fn installed(script: &str, needs: &str) -> anyhow::Result<PathBuf> {
    let script = workspace_root().join(script);
    let output = tokio::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        anyhow::bail!("{} failed ({}); its message is above. This test needs {needs}", script.display(), output.status);
    }
    let stdout = String::from_utf8(output.stdout).with_context(|| format!("{} printed no UTF-8", script.display()))?;
    Ok(PathBuf::from(stdout.lines().last().unwrap_or_default().trim()))
}
