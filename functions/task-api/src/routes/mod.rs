//! The HTTP surface: one file per endpoint, each a thin handler over the pure modules (params,
//! listing, cursor, precondition) and [`crate::access`].
//!
//! Extractor order is part of the contract: the caller is authenticated first (401 before
//! anything else), then the path and headers are checked, and the body is read last, so bad
//! input is refused before the store is touched.

pub mod audit;
pub mod complete;
pub mod create;
pub mod delete;
pub mod get;
pub mod list;
pub mod notifications;
pub mod openapi;
pub mod reminder;
pub mod reopen;
pub mod update;

use axum::Router;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get as get_route, post};
use todo_core::task::Task;
use uuid::Uuid;

use crate::app::App;
use crate::error::ApiError;
use crate::precondition;
use crate::rate_limit::{self, QuotaSlot};

/// The paths this router serves, shared with the OpenAPI document and its tests.
pub mod paths {
    pub const TASKS: &str = "/v1/tasks";
    pub const TASK: &str = "/v1/tasks/{id}";
    pub const COMPLETE: &str = "/v1/tasks/{id}/complete";
    pub const REOPEN: &str = "/v1/tasks/{id}/reopen";
    pub const AUDIT: &str = "/v1/tasks/{id}/audit";
    pub const REMINDER: &str = "/v1/tasks/{id}/reminder";
    pub const NOTIFICATIONS: &str = "/v1/me/notifications";
    pub const OPENAPI: &str = "/openapi.json";
    /// The caller's changes as Server-Sent Events ([`crate::live`]).
    pub const EVENTS: &str = "/v1/events";

    pub const ALL: [&str; 9] = [TASKS, TASK, COMPLETE, REOPEN, AUDIT, REMINDER, NOTIFICATIONS, EVENTS, OPENAPI];
}

/// The public router: the REST routes and, beside them, `/mcp` ([`crate::mcp`]), whose tools
/// send their requests through the REST routes.
pub fn router(app: App, mcp_settings: crate::mcp::Settings) -> Router {
    let rest = rest(app.clone());
    let mcp = crate::mcp::router(app, rest.clone(), mcp_settings).layer(axum::middleware::from_fn(rate_limit_fields));
    rest.merge(mcp)
}

/// The REST routes, with their state. Unknown paths and methods answer in the API's JSON error
/// shape (axum adds `Allow` to the 405).
pub fn rest(app: App) -> Router {
    Router::new()
        .route(paths::TASKS, post(create::handler).get(list::handler))
        .route(paths::TASK, get_route(get::handler).patch(update::handler).delete(delete::handler))
        .route(paths::COMPLETE, post(complete::handler))
        .route(paths::REOPEN, post(reopen::handler))
        .route(paths::AUDIT, get_route(audit::handler))
        .route(paths::REMINDER, get_route(reminder::handler))
        .route(paths::NOTIFICATIONS, get_route(notifications::get).put(notifications::put))
        .route(paths::EVENTS, get_route(crate::live::route::handler))
        .route(crate::live::page::PAGE, get_route(crate::live::page::html))
        .route(crate::live::page::SCRIPT, get_route(crate::live::page::script))
        .route(paths::OPENAPI, get_route(openapi::handler))
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .fallback(|| async { ApiError::NoRoute })
        .layer(axum::middleware::from_fn(rate_limit_fields))
        .with_state(app)
}

/// Gives every request an empty [`QuotaSlot`] for the [`crate::auth::User`] extractor and turns
/// what it left there into the `RateLimit-Policy` / `RateLimit` fields of the answer.
async fn rate_limit_fields(mut request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let slot = QuotaSlot::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.run(request).await;
    if let Some(quota) = slot.get() {
        rate_limit::insert_fields(response.headers_mut(), &quota);
    }
    response
}

/// The `{id}` of a task path. Not a UUID means no such task: 404, like any id that does not
/// exist, so that clients need one rule only.
pub fn task_id(path: Result<Path<String>, PathRejection>) -> Result<Uuid, ApiError> {
    let Path(raw) = path.map_err(|_| ApiError::NotFound)?;
    Uuid::parse_str(&raw).map_err(|_| ApiError::NotFound)
}

/// A task as JSON with its version as `ETag`.
pub fn task_response(status: StatusCode, task: &Task) -> Response {
    let mut response = (status, axum::Json(task)).into_response();
    response.headers_mut().insert(header::ETAG, precondition::etag(task.version));
    response
}

/// Where a task lives: `Location` of a created task.
pub fn location(id: Uuid) -> HeaderValue {
    // A hyphenated UUID is always a valid header value; the fallback is unreachable.
    HeaderValue::from_str(&format!("{}/{id}", paths::TASKS)).unwrap_or_else(|_| HeaderValue::from_static(paths::TASKS))
}
