//! Domain rules as pure functions: no I/O, no clock reads (callers pass `now`).

pub mod recurrence;
pub mod task;
