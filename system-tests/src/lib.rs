//! The system as a whole: the functions with devhost, and the deployment artifacts against the
//! code. The tests are in `tests/`; this library holds what they and `make demo` share.
//!
//! # Layout
//!
//! - [`api`]: a small client of task-api, and polling with a deadline.
//! - [`scenario`]: the demo scenario (recurring task, reminder, completion, next occurrence,
//!   audit trail), played through task-api only.
//! - [`kafka`]: a small Kafka admin client (topics, consumer lag, reading a topic) for the tests
//!   that run the functions on a real broker.
//! - [`host`]: a private copy of the system (run file, database, JWT secret) started in-process
//!   or as the `devhost` binary.
//! - `src/bin/demo.rs`: `make demo`.

pub mod api;
pub mod host;
pub mod kafka;
pub mod outbox_support;
pub mod scenario;

use std::path::PathBuf;

/// The workspace root (where `dapr.yaml` and `Cargo.toml` are).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map(PathBuf::from).unwrap_or(manifest_dir)
}
