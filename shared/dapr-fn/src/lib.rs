//! Dapr functions in Rust: small binaries that wake on a pub/sub topic or a Dapr Jobs callback,
//! talk to their sidecar over its HTTP API, and scale to zero between events.
//!
//! A function is its triggers plus plain async handlers; the runtime owns the plumbing:
//! subscriptions, job callbacks, CloudEvent parsing, the SUCCESS / RETRY / DROP answer,
//! app-token checks, health, metrics, logs with trace context, and graceful shutdown. The
//! crate knows nothing of what a function does: see the README for a complete one.
//!
//! # Layout
//!
//! - [`runtime`]: the function runtime. [`runtime::Function`] collects the triggers
//!   ([`runtime::Subscription`], job prefixes, background tasks, public routes);
//!   [`runtime::main`] parses the command line (`--help`) and runs it until SIGTERM.
//!   Its modules: `cloudevent` (envelope parsing), `outcome` (handler result to Dapr's
//!   answer), `cli` (`--help` from the environment variables read), `background` (tasks
//!   stopped with the server), `metrics` (the Prometheus page).
//! - [`dapr`]: a client of the sidecar's HTTP API: state (get, bulk, save with ETags and
//!   first-write, transactions, query), pub/sub, jobs and output bindings, with Dapr's real
//!   status codes turned into [`dapr::DaprError`].
//! - [`outbox`]: a transactional outbox on the plain state and publish APIs: a change and one
//!   record per event in one transaction, publish right after the commit, and a relay that
//!   republishes what a crash left behind, with the same event id.
//! - [`clock`]: the time source handlers read, fixed or moved by hand in tests.
//! - [`trace`]: W3C trace context carried from a trigger to every sidecar call.
//! - `testing` (feature `testing`): a recording stub of the sidecar and a harness that serves a
//!   function's real router on loopback.

#![warn(missing_docs)]

pub mod clock;
pub mod dapr;
pub mod outbox;
pub mod runtime;
pub mod trace;

#[cfg(feature = "testing")]
pub mod testing;

pub use dapr::{Dapr, DaprError};
pub use runtime::{About, Event, Function, HandlerError, HandlerResult, JobCall, Subscription};
