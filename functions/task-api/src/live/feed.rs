//! The live subscriptions: every `task-events` and `reminders` event, through `pubsub-live`,
//! into the [`Hub`].
//!
//! A live fan-out has nothing to retry: an event that names no owner is logged and acknowledged
//! (SUCCESS), never redelivered or dead-lettered, and a change that reached no open stream is
//! still kept for resuming.

use std::sync::Arc;
use std::time::Instant;

use dapr_fn::runtime::{Event, HandlerResult, Subscription};
use serde_json::Value;
use todo_core::events::{components, topics};

use super::hub::{Change, Hub};

/// The routes Dapr delivers the live events to.
pub const TASK_EVENTS_ROUTE: &str = "/live/task-events";
pub const REMINDERS_ROUTE: &str = "/live/reminders";

/// The two subscriptions of `hub`.
pub fn subscriptions(hub: &Arc<Hub>) -> [Subscription; 2] {
    [(topics::TASK_EVENTS, TASK_EVENTS_ROUTE), (topics::REMINDERS, REMINDERS_ROUTE)].map(|(topic, route)| {
        let hub = hub.clone();
        Subscription::new(components::LIVE_PUBSUB, topic).without_dead_letter().route(
            route,
            move |event: Event<Value>| {
                let hub = hub.clone();
                async move { feed(&hub, event) }
            },
        )
    })
}

/// Hands `event` to `hub` (see the module doc for what is acknowledged).
fn feed(hub: &Hub, event: Event<Value>) -> HandlerResult {
    match change(event) {
        Ok(change) => {
            let (id, owner) = (change.id.clone(), change.owner.clone());
            let fresh = hub.publish(change, Instant::now());
            tracing::debug!(event_id = %id, %owner, fresh, "live change");
        }
        Err((id, why)) => tracing::warn!(event_id = %id, why, "live event without an owner: not streamed"),
    }
    Ok(())
}

/// The change an event makes: both topics' data name the owner (`Task::owner`,
/// `ReminderDue::owner`).
pub fn change(event: Event<Value>) -> Result<Change, (String, &'static str)> {
    let Some(owner) = event.data.get("owner").and_then(Value::as_str).filter(|o| !o.is_empty()) else {
        return Err((event.id, "its data has no `owner`"));
    };
    // An SSE field is one line: an id or type with a line break or NUL cannot be sent.
    let one_line = |s: &str| !s.contains(['\n', '\r', '\0']);
    if !one_line(&event.id) || !one_line(&event.event_type) {
        return Err((event.id.escape_debug().to_string(), "its id or type is not one line"));
    }
    Ok(Change { owner: owner.to_owned(), id: event.id, event_type: event.event_type, data: event.data })
}
