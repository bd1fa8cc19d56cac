//! `GET /v1/tasks`: the caller's tasks, filtered, searched, sorted and paged.
//!
//! Candidates come from the Query API (owner, status and priority pushed down), read in full up
//! to `LIST_SCAN_LIMIT`; everything else is [`crate::listing`]. When the scan limit cut the
//! candidates short, the answer says so in `X-Scan-Truncated: true` rather than pretending to be
//! complete.

use axum::extract::State;
use axum::http::{HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use shared::dapr::{Query, SortOrder};
use shared::domain::task::Task;
use shared::events::components;
use tracing::warn;

use crate::app::App;
use crate::auth::User;
use crate::error::ApiError;
use crate::listing;
use crate::params;
use crate::scan::scan;

pub const TRUNCATED_HEADER: &str = "x-scan-truncated";

/// One page of the list.
// A struct rather than `json!`, which would sort each task's fields alphabetically unlike GET.
#[derive(Debug, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskPage<'a> {
    pub items: &'a [Task],
    /// Pass as `cursor` for the next page (with the same filters and sort); null on the last page.
    pub next_cursor: Option<&'a str>,
}

pub async fn handler(State(app): State<App>, user: User, uri: Uri) -> Result<Response, ApiError> {
    let params = params::parse(uri.query())?;
    // Sorted by id only so that the store's offset-based continuation tokens page over a
    // stable order; the order the client asked for is applied after filtering.
    let query = Query::new().filter(listing::store_filter(&user.id, &params)).sort("id", SortOrder::Asc);
    let scanned = scan(app.dapr(), components::TASKS_STORE, query, app.scan_limit).await?;
    let candidates = scanned
        .items
        .into_iter()
        .filter_map(|item| match serde_json::from_value::<Task>(item.value) {
            Ok(task) => Some(task),
            Err(error) => {
                // One undecodable record must not take the whole list down with it.
                warn!(key = %item.key, error = %error, "skipping a stored task that does not decode");
                None
            }
        })
        .collect();
    let page = listing::page(candidates, &user.id, &params);
    let answer = TaskPage { items: &page.items, next_cursor: page.next_cursor.as_deref() };
    let mut response = axum::Json(answer).into_response();
    if scanned.truncated {
        response.headers_mut().insert(TRUNCATED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(response)
}
