//! The todo domain: tasks, their events and the rules over them, as pure functions and types.
//! No I/O, no clock reads (callers pass `now`), no async runtime, HTTP client or server in its
//! dependencies: every rule is unit-tested on its own, and the functions bring the I/O
//! (`dapr-fn` for Dapr, `todo-store` for the `tasks` store).
//!
//! # Layout
//!
//! - [`task`]: the task model and its mutations (each bumps `version`).
//! - [`validate`]: input parsing with the failing field named, and the invariants of a task.
//! - [`recurrence`]: RRULE evaluation on wall-clock time in the task's zone.
//! - [`occurrence`]: the `todo.task.create` request for a recurring task's next instance.
//! - [`reminder`]: when a reminder fires, how fire-reminder reacts to events and to its jobs.
//! - [`notification`]: where reminders are delivered (webhook, email) and what a target may be.
//! - [`delivery`]: delivering one reminder on one channel exactly once in effect: claims,
//!   retries with backoff, the delivery record.
//! - [`order`]: each task's sort positions as keys the store can index, sort and range-filter.
//! - [`audit`]: the immutable audit entry written per task event.
//! - [`events`]: component, topic and CloudEvent type names, event payloads, who may publish and
//!   consume each topic, and the deterministic ids consumers deduplicate on. The wire contract
//!   between the functions.
//! - `testing` (feature `testing`): a sample task for other crates' tests to adjust.

pub mod audit;
pub mod delivery;
pub mod events;
pub mod notification;
pub mod occurrence;
pub mod order;
pub mod recurrence;
pub mod reminder;
pub mod task;
pub mod validate;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
