//! `GET /v1/tasks/{id}/audit`: the caller's task's audit trail, oldest change first.
//!
//! The task must exist and be the caller's; a deleted task's trail stays readable (that is
//! much of the point of an audit trail). The entries are queried by task id *and* owner, and
//! re-checked after decoding, so the trail never shows another user's records. They are read
//! from the `audit` store, where task-api's role may only SELECT.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use dapr_fn::dapr::{Query, SortOrder};
use serde_json::json;
use todo_core::audit::{AuditEntry, sort_trail};
use todo_core::events::components;
use tracing::warn;

use crate::access::{Tombstones, load_owned};
use crate::app::App;
use crate::auth::User;
use crate::error::ApiError;
use crate::routes::task_id;
use crate::scan::scan;

pub async fn handler(
    State(app): State<App>,
    user: User,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = task_id(path)?;
    load_owned(&app.store, id, &user, Tombstones::Visible).await?;
    let filter = json!({"AND": [{"EQ": {"task_id": id.to_string()}}, {"EQ": {"owner": user.id}}]});
    // Sorted on a unique field only to page over a stable order; the trail is sorted below.
    let query = Query::new().filter(filter).sort("event_id", SortOrder::Asc);
    let scanned = scan(app.dapr(), components::AUDIT_STORE, query, app.scan_limit).await?;
    let mut entries: Vec<AuditEntry> = scanned
        .items
        .into_iter()
        .filter_map(|item| match serde_json::from_value::<AuditEntry>(item.value) {
            Ok(entry) => Some(entry),
            Err(error) => {
                warn!(key = %item.key, error = %error, "skipping an audit entry that does not decode");
                None
            }
        })
        .filter(|entry| entry.task_id == id && entry.owner == user.id)
        .collect();
    sort_trail(&mut entries);
    Ok(axum::Json(AuditTrail { items: entries }).into_response())
}

/// A task's audit trail: one entry per change, ordered by task version.
#[derive(Debug, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditTrail {
    pub items: Vec<AuditEntry>,
}
