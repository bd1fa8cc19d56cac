//! `GET /v1/tasks`: the caller's tasks, filtered, searched, sorted and paged.
//!
//! What the store is asked and what is checked here is [`crate::listing`]. One request reads at
//! most `LIST_SCAN_LIMIT` stored tasks, or `SEARCH_SCAN_LIMIT` with `q` or `tag` (which are
//! checked here, so few hits can mean many rows read). A page that bound cut short still ends
//! in a `next_cursor` that resumes after the last task read, and says `X-Scan-Truncated: true`.
//! The one case that cannot resume exactly is a title group (tasks whose titles share their
//! first seven characters) larger than the bound: it is ordered from its first rows only.

use axum::extract::State;
use axum::http::{HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use dapr_fn::dapr::{Query, QueryItem};
use serde_json::Value;
use todo_core::events::components;
use todo_core::order;
use todo_core::task::Task;
use tracing::warn;
use uuid::Uuid;

use crate::app::App;
use crate::auth::User;
use crate::cursor::Cursor;
use crate::error::ApiError;
use crate::listing;
use crate::params::{self, ListParams};
use crate::scan::scan;
use crate::sort::SortKey;

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
    let (page, truncated) = match listing::phases(&params) {
        Some(phases) => store_sorted(&app, &user.id, &params, &phases).await?,
        None => title_sorted(&app, &user.id, &params).await?,
    };
    let answer = TaskPage { items: &page.items, next_cursor: page.next_cursor.as_deref() };
    let mut response = axum::Json(answer).into_response();
    if truncated {
        response.headers_mut().insert(TRUNCATED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Rows asked for per query when every filter runs in the store: the page, one more to know
/// whether another page follows, and one for a row the exact re-check may drop.
fn batch_size(params: &ListParams) -> usize {
    if params.q.is_some() || !params.tags.is_empty() {
        // Search and tags are checked here: read in larger batches, most rows may not match.
        SEARCH_BATCH.max(params.limit + 2)
    } else {
        params.limit + 2
    }
}

/// Rows per query when search or tags filter here: about 300 KB of tasks.
const SEARCH_BATCH: usize = 500;

/// The most rows one request reads: search and tags are checked here, row by row, so they get
/// the smaller bound (`SEARCH_SCAN_LIMIT`); every other filter runs in the store.
fn read_budget(app: &App, params: &ListParams) -> usize {
    if params.q.is_some() || !params.tags.is_empty() { app.search_scan_limit } else { app.scan_limit }
}

/// A list the store sorts: batches in order, each starting strictly after the last row read,
/// until the page is full, the rows run out, or `scan_limit` rows were read. In the last case
/// the page may be short (even empty), and `next_cursor` resumes after the last row read, so a
/// search over many tasks is paged, never cut: the client sees `X-Scan-Truncated: true` and
/// follows the cursor.
async fn store_sorted(
    app: &App,
    owner: &str,
    params: &ListParams,
    phases: &[listing::Phase],
) -> Result<(listing::Page, bool), ApiError> {
    let sort = params.sort;
    let name = sort.field.order_key().unwrap_or("created");
    let key_pointer = format!("/{}/{name}", order::FIELD);
    let cursor = params.cursor.as_ref().and_then(|c| match &c.key {
        SortKey::Order(key) => Some((key.clone(), c.id)),
        SortKey::Title(_) => None,
    });
    let mut after = cursor.clone();
    let mut items: Vec<(String, Task)> = Vec::new();
    let mut read = 0usize;
    let budget = read_budget(app, params);
    let batch = batch_size(params);
    'phases: for (n, &phase) in phases.iter().enumerate() {
        if n > 0 {
            // A later phase follows every row of the one before: it starts from its beginning.
            after = None;
        }
        // The continuation token of the current query: followed only while its rows are all
        // at or before the resume point (ties with the cursor's key and tie key), so that a
        // tie group larger than a batch is read through instead of re-read forever.
        let mut token: Option<String> = None;
        let mut query = None;
        loop {
            // One row more when resuming: the store's range includes the resume point itself.
            // One more than the bound allows, to tell "exactly at the bound" from "more follow".
            let wanted = batch.min(budget.saturating_sub(read) + 1) + usize::from(after.is_some());
            let request = match (&query, &token) {
                (Some(query), Some(_)) => Query::clone(query).token(token.clone()),
                _ => {
                    let fresh = listing::store_query(
                        owner,
                        params,
                        phase,
                        after.as_ref().map(|(key, id)| (key.as_str(), *id)),
                        u32::try_from(wanted).unwrap_or(u32::MAX),
                    );
                    query = Some(fresh.clone());
                    fresh
                }
            };
            let page = app.dapr().query_state::<Value>(components::TASKS_STORE, &request).await?;
            let exhausted = page.results.len() < wanted;
            let mut new_rows = 0usize;
            let mut bound_hit = false;
            for row in page.results {
                let Some(key) = row.value.pointer(&key_pointer).and_then(Value::as_str) else {
                    continue;
                };
                let key = key.to_owned();
                let Some(id) = row.value.get("id").and_then(Value::as_str).and_then(|id| Uuid::parse_str(id).ok())
                else {
                    warn!(key = %row.key, "skipping a stored task without a valid id");
                    continue;
                };
                if let Some((at, after_id)) = &after
                    && !listing::is_after(sort, (at, *after_id), (&key, id))
                {
                    // At or before the resume point (the store's range includes it): not new.
                    continue;
                }
                if read == budget {
                    bound_hit = true;
                    break;
                }
                new_rows += 1;
                read += 1;
                after = Some((key.clone(), id));
                // Most rows of a search fail it: reject those on the stored JSON, undecoded.
                if !listing::may_match(&row.value, params) {
                    continue;
                }
                let Some(task) = decode(row) else {
                    continue;
                };
                if listing::matches(&task, owner, params) {
                    items.push((key, task));
                    if items.len() > params.limit {
                        break 'phases;
                    }
                }
            }
            token = if new_rows == 0 { page.token } else { None };
            if bound_hit {
                // The bound: resume after the last row read.
                let next = after.map(|(key, id)| {
                    Cursor { sort, key: SortKey::Order(key), id, query: params.fingerprint() }.encode()
                });
                let items = items.into_iter().map(|(_, task)| task).collect();
                return Ok((listing::Page { items, next_cursor: next }, true));
            }
            if exhausted || (new_rows == 0 && token.is_none()) {
                // A full page without a token would be asked again unchanged: stop instead.
                break;
            }
        }
    }
    let next_cursor = (items.len() > params.limit).then(|| {
        items.truncate(params.limit);
        items.last().map(|(key, task)| {
            Cursor { sort, key: SortKey::Order(key.clone()), id: task.id, query: params.fingerprint() }.encode()
        })
    });
    let items = items.into_iter().map(|(_, task)| task).collect();
    Ok((listing::Page { items, next_cursor: next_cursor.flatten() }, false))
}

/// A list in title order: title groups in the store's order, each read whole and ordered by
/// the full title here ([`listing::sort_group`]), until the page is full, the groups run out,
/// or the read budget is spent (then the page may be short, and `next_cursor` resumes after the
/// last task read).
async fn title_sorted(app: &App, owner: &str, params: &ListParams) -> Result<(listing::Page, bool), ApiError> {
    let sort = params.sort;
    let cursor = params.cursor.as_ref().and_then(|c| match &c.key {
        SortKey::Title(title) => Some((title.clone(), c.id)),
        SortKey::Order(_) => None,
    });
    // The cursor's own group again (inclusive): its tasks after the cursor are still to come.
    let mut from = cursor.as_ref().map(|(title, _)| (order::title_group(title), true));
    let cursor = cursor.map(|(title, id)| (SortKey::Title(title), id));
    let budget = read_budget(app, params);
    // One row more than a page with its spare, to know whether the batch cut a group.
    let batch = batch_size(params) + 1;
    let group_pointer = format!("/{}/title", order::FIELD);
    let mut items: Vec<(SortKey, Task)> = Vec::new();
    let mut last: Option<(SortKey, uuid::Uuid)> = None;
    let mut read = 0usize;
    let mut truncated = false;
    loop {
        let wanted = batch.min(budget.saturating_sub(read) + 1);
        let query = listing::title_query(
            owner,
            params,
            from.as_ref().map(|(key, inclusive)| (key.as_str(), *inclusive)),
            u32::try_from(wanted).unwrap_or(u32::MAX),
        );
        let page = app.dapr().query_state::<Value>(components::TASKS_STORE, &query).await?;
        let more = page.results.len() >= wanted;
        read += page.results.len();
        let mut rows: Vec<(String, QueryItem<Value>)> = page
            .results
            .into_iter()
            .filter_map(|row| Some((row.value.pointer(&group_pointer).and_then(Value::as_str)?.to_owned(), row)))
            .collect();
        if more && let Some((group, _)) = rows.last() {
            // The batch may have cut the last group: read that group whole on its own (up to
            // the whole budget, so that every request gets past at least one group).
            let group = group.clone();
            rows.retain(|(g, _)| *g != group);
            let whole =
                scan(app.dapr(), components::TASKS_STORE, listing::group_query(owner, params, &group), budget).await?;
            read += whole.items.len();
            truncated |= whole.truncated;
            rows.extend(whole.items.into_iter().map(|item| (group.clone(), item)));
            from = Some((group, false));
        }
        let tasks = rows.into_iter().filter_map(|(_, row)| decode(row)).collect();
        for (key, task) in listing::sort_group(sort, tasks) {
            if let Some((at, id)) = &cursor
                && sort.compare((&key, task.id), (at, *id)).is_le()
            {
                continue;
            }
            last = Some((key.clone(), task.id));
            if listing::matches(&task, owner, params) {
                items.push((key, task));
                if items.len() > params.limit {
                    break;
                }
            }
        }
        if items.len() > params.limit || !more {
            break;
        }
        if read >= budget && last.is_some() {
            // The bound: resume after the last task read.
            let next = last.map(|(key, id)| Cursor { sort, key, id, query: params.fingerprint() }.encode());
            let items = items.into_iter().map(|(_, task)| task).collect();
            return Ok((listing::Page { items, next_cursor: next }, true));
        }
    }
    let next_cursor = (items.len() > params.limit).then(|| {
        items.truncate(params.limit);
        items
            .last()
            .map(|(key, task)| Cursor { sort, key: key.clone(), id: task.id, query: params.fingerprint() }.encode())
    });
    let items = items.into_iter().map(|(_, task)| task).collect();
    Ok((listing::Page { items, next_cursor: next_cursor.flatten() }, truncated))
}

/// A stored task, or `None` (logged) for a record that does not decode: one bad record must
/// not take the whole list down with it.
fn decode(row: QueryItem<Value>) -> Option<Task> {
    match serde_json::from_value::<Task>(row.value) {
        Ok(task) => Some(task),
        Err(error) => {
            warn!(key = %row.key, error = %error, "skipping a stored task that does not decode");
            None
        }
    }
}
