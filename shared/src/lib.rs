//! Shared crate (layout doc written below once the modules exist).

pub mod domain;
pub mod events;
