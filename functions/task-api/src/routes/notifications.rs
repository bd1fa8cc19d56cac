//! `GET` / `PUT /v1/me/notifications`: where the caller's reminders are delivered (issue 16).
//!
//! The channels live in the `notify` store under `channels:<user>`, a store of their own that
//! only task-api (which writes them) and the notifier (which reads them) can load: they hold
//! people's addresses and webhook secrets (docs/notifier.md). What a PUT body means is
//! [`notification::apply`]'s: a channel left out (or `null`) is off, a webhook without `secret`
//! keeps the secret already set (and needs one), every URL and address is checked against
//! [`notification::TargetPolicy`] (`NOTIFY_ALLOW_LOOPBACK_HTTP`). A failing field is 400 naming it, like the
//! fields of a new task.
//!
//! The secret is never answered: `GET` and `PUT` show the [`notification::ChannelsView`] (`secret_set`).
//!
//! A PUT is a read-modify-write, because what it writes depends on what is stored (the kept
//! secret). The write is guarded by the ETag of the read (first-write when nothing is stored),
//! so two concurrent PUTs cannot lose one: the loser reads again and re-applies its body, as
//! [`crate::access::modify`] does for tasks, and answers 409 after [`MAX_ATTEMPTS`].

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dapr_fn::dapr::{DaprError, SaveItem, Versioned};
use serde_json::Value;
use todo_core::events::components;
use todo_core::notification::{self, Channels, ChannelsInput, channels_key};
use todo_core::validate;
use tracing::{debug, info};

use crate::access::MAX_ATTEMPTS;
use crate::app::App;
use crate::auth::User;
use crate::body;
use crate::error::ApiError;

/// `GET /v1/me/notifications`: the caller's channels; none set is `{"webhook": null, "email":
/// null}`, not 404, since every user has notification settings (all off by default).
pub async fn get(State(app): State<App>, user: User) -> Result<Response, ApiError> {
    let current = read(&app, &user).await?;
    Ok(axum::Json(current.map(|c| c.value).unwrap_or_default().view()).into_response())
}

/// `PUT /v1/me/notifications`: replaces the caller's channels with the body's.
pub async fn put(
    State(app): State<App>,
    user: User,
    headers: HeaderMap,
    payload: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    body::require_media_type(&headers, &[body::JSON])?;
    let bytes = body::bytes(payload)?;
    let input: ChannelsInput = validate::parse_json(&bytes)?;
    let key = channels_key(&user.id);
    for attempt in 1..=MAX_ATTEMPTS {
        let current = read(&app, &user).await?;
        let stored = current.as_ref().map(|c| c.value.clone()).unwrap_or_default();
        let next = notification::apply(input.clone(), &stored, app.notify_policy)?;
        if next == stored {
            // Nothing changes: no write (and none that could conflict).
            return Ok(axum::Json(next.view()).into_response());
        }
        let inserting = current.is_none();
        let item = SaveItem::new(key.as_str(), &next)?;
        let item = match current {
            Some(Versioned { etag, .. }) => item.if_match(etag),
            None => item.if_absent(),
        };
        match app.dapr().save_state(components::NOTIFY_STORE, std::slice::from_ref(&item)).await {
            Ok(()) => {
                info!(webhook = next.webhook.is_some(), email = next.email.is_some(), "notification channels set");
                return Ok(axum::Json(next.view()).into_response());
            }
            Err(error) if lost_race(&app, &key, inserting, &error).await? => {
                debug!(attempt, "notification channels changed concurrently; reading them again");
            }
            Err(error) => return Err(error.into()),
        }
    }
    info!(attempts = MAX_ATTEMPTS, "giving up: the notification channels kept changing concurrently");
    Err(ApiError::Conflict {
        field: None,
        message: "your notification settings are being changed concurrently; try again".into(),
    })
}

/// The caller's stored channels with their ETag.
async fn read(app: &App, user: &User) -> Result<Option<Versioned<Channels>>, ApiError> {
    Ok(app.dapr().get_state::<Channels>(components::NOTIFY_STORE, &channels_key(&user.id)).await?)
}

/// Whether a failed save lost a race with another writer (then read again): an ETag mismatch,
/// or a first-write insert that failed because the key exists now. The latter answers 500 on
/// `state.postgresql`, like an outage, so it is told apart by reading the key.
async fn lost_race(app: &App, key: &str, inserting: bool, error: &DaprError) -> Result<bool, ApiError> {
    if error.is_conflict() {
        return Ok(true);
    }
    if inserting && matches!(error, DaprError::Status { .. }) {
        return Ok(app.dapr().get_state::<Value>(components::NOTIFY_STORE, key).await?.is_some());
    }
    Ok(false)
}
