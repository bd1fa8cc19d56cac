//! Domain rules as pure functions: no I/O, no clock reads (callers pass `now`), unit-tested on
//! their own.
//!
//! - [`audit`]: the immutable audit entry written per task event.
//! - [`delivery`]: delivering one reminder on one channel exactly once in effect: claims,
//!   retries with backoff, the delivery record.
//! - [`task`]: the task model and its mutations (each bumps `version`).
//! - [`validate`]: input parsing with the failing field named, and the invariants of a task.
//! - [`recurrence`]: RRULE evaluation on wall-clock time in the task's zone.
//! - [`notification`]: where reminders are delivered (webhook, email) and what a target may be.
//! - [`order`]: each task's sort positions as keys the store can index, sort and range-filter.
//! - [`occurrence`]: the `todo.task.create` request for a recurring task's next instance.
//! - [`reminder`]: when a reminder fires, how fire-reminder reacts to events and to its jobs.

pub mod audit;
pub mod delivery;
pub mod notification;
pub mod occurrence;
pub mod order;
pub mod recurrence;
pub mod reminder;
pub mod task;
pub mod validate;
