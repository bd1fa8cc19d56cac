//! The one library every todo-functions binary links: the domain, the wire contract, the Dapr
//! sidecar client and the function runtime.
//!
//! # Layout
//!
//! - [`domain`]: the task model and the rules over it (validation, recurrence, reminder
//!   planning, next occurrence) as pure functions with unit tests, separate from all I/O.
//! - [`events`]: component, topic and CloudEvent type names, event payloads, and the
//!   deterministic ids consumers deduplicate on. The wire contract between functions.
//! - [`dapr`]: a client of the sidecar's HTTP API (publish, state incl. transactions, bulk
//!   and query, jobs) that handles Dapr's real status codes.
//! - [`outbox`]: the project's transactional outbox on the state API: a change and one record
//!   per event in one transaction, publish and delete right after the commit, and the relay
//!   that republishes what a crash left behind. Generic: it knows nothing of tasks.
//! - [`tasks`]: the `tasks` store: reading tasks and writing each change atomically with its
//!   event through the outbox.
//! - [`runtime`]: the function runtime: subscriptions, job callbacks, CloudEvent parsing,
//!   SUCCESS / RETRY / DROP mapping, app-token check, health, metrics, logs, graceful shutdown.
//!   A function's `main` is `runtime::main(&ABOUT, build)`: its command line (`--help`), then
//!   `runtime::run(build)`.
//! - [`clock`]: the time source handlers read, fixed or advanced in tests.
//! - [`trace`]: W3C trace context carried from a trigger to every sidecar call.
//! - `testing` (feature `testing`): a recording stub sidecar and a harness that serves a
//!   function's real router on loopback.

pub mod clock;
pub mod dapr;
pub mod domain;
pub mod events;
pub mod outbox;
pub mod runtime;
pub mod tasks;
pub mod trace;

#[cfg(feature = "testing")]
pub mod testing;
