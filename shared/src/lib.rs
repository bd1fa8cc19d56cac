//! The one library every todo-functions binary links (being built up: domain and events first).

pub mod domain;
pub mod events;
