//! `GET /v1/events`: the caller's changes as Server-Sent Events.
//!
//! Each change is one event: `id` the CloudEvent id, `event` its type (`todo.task.created`,
//! `todo.task.updated`, `todo.task.completed`, `todo.task.reopened`, `todo.task.deleted`,
//! `todo.reminder.due`), `data` the CloudEvent data (the task as it is after the change, with its
//! `version`; or the reminder). A comment line every [`HEARTBEAT`] keeps proxies from closing an
//! idle stream. Three more events, without an `id`: `resync` (the stream cannot continue where
//! the client was: re-list, then carry on), `expired` (the token expired: reconnect with a new
//! one; the stream ends), and nothing at all when the replica shuts down (the stream ends and
//! the browser reconnects, to another replica, with `Last-Event-ID`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt as _};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::hub::{Refused, Stamped, Start};
use crate::app::App;
use crate::auth::User;
use crate::error::ApiError;

/// How often an idle stream sends a comment line.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// How long a browser waits before reconnecting after the stream ends (the SSE `retry` field).
pub const RECONNECT_MS: u64 = 1_000;

pub async fn handler(State(app): State<App>, user: User, headers: HeaderMap) -> Result<Response, ApiError> {
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::trim).filter(|s| !s.is_empty());
    let opened = app.live.open(&user.id, last).map_err(|refused| match refused {
        Refused::User(max) => ApiError::TooManyStreams {
            message: format!("too many live streams: at most {max} per user are open at once; close one first"),
            per_user: true,
        },
        Refused::Replica(max) => ApiError::TooManyStreams {
            message: format!("this replica has its {max} live streams open; try again (another replica may have room)"),
            per_user: false,
        },
        Refused::Closing => {
            ApiError::TooManyStreams { message: "this replica is shutting down; reconnect".to_owned(), per_user: false }
        }
    })?;
    let expires = remaining(user.expires_at);
    tracing::info!(user = %user.id, resumed = last.is_some(), "live stream opened");
    let first: Vec<Event> = match &opened.start {
        Start::Now => Vec::new(),
        Start::Resync => vec![resync("the change named by Last-Event-ID is no longer held: list your tasks again")],
        Start::Resumed(changes) => changes.iter().map(change_event).collect(),
    };
    let hello = Event::default().retry(Duration::from_millis(RECONNECT_MS)).comment("live");
    let events =
        stream::iter(std::iter::once(hello).chain(first)).chain(live(opened, expires)).map(Ok::<_, Infallible>);
    let mut response = Sse::new(events).keep_alive(KeepAlive::new().interval(HEARTBEAT)).into_response();
    // nginx (an Ingress) buffers answers unless told not to, which would hold events back.
    response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The live part of a stream: changes as they come, until the stream falls behind, the token
/// expires, or the replica shuts down.
fn live(opened: super::hub::Stream, expires: Duration) -> impl Stream<Item = Event> {
    let deadline = tokio::time::Instant::now() + expires;
    stream::unfold(Some(opened), move |state| async move {
        let mut opened = state?;
        // What ends the stream, if anything; borrowed fields are released before `opened` moves.
        let (event, end) = tokio::select! {
            received = opened.changes.recv() => match received {
                Ok(stamped) => (change_event(&stamped), false),
                Err(RecvError::Lagged(missed)) => (
                    resync(&format!("this stream fell {missed} changes behind: list your tasks again, then reconnect")),
                    true,
                ),
                Err(RecvError::Closed) => return None,
            },
            _ = opened.closing.wait_for(|closing| *closing) => return None,
            () = tokio::time::sleep_until(deadline) => (
                Event::default().event("expired").data(json!({"reason": "the token expired: reconnect with a new one"}).to_string()),
                true,
            ),
        };
        Some((event, (!end).then_some(opened)))
    })
}

fn change_event(stamped: &Arc<Stamped>) -> Event {
    let change = &stamped.change;
    Event::default().id(&change.id).event(&change.event_type).data(change.data.to_string())
}

fn resync(reason: &str) -> Event {
    Event::default().event("resync").data(json!({ "reason": reason }).to_string())
}

/// Time left until `expires_at` (seconds since the epoch), by the wall clock the token was
/// checked with.
fn remaining(expires_at: u64) -> Duration {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Duration::from_secs(expires_at).saturating_sub(now)
}
