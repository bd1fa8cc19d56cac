//! task-api: the HTTP front door of todo-functions.
//!
//! REST over the caller's tasks: create, read, change (JSON merge patch), complete, delete,
//! list with search / filter / sort / keyset pagination, a task's audit trail and reminder (with
//! its deliveries), and where the caller's reminders are delivered (`/v1/me/notifications`), all behind
//! JWT bearer auth, plus `GET /openapi.json`; and the same operations as MCP tools at `/mcp`
//! for AI agents, which call the REST routes in process. Every change is one transaction on the `tasks`
//! store through the project's outbox ([`dapr_fn::outbox`]), so the task and its `todo.task.*`
//! event on `task-events` commit together; the other functions react to those events.
//! task-api's only subscriptions are those of its live streams ([`live`]: `GET /v1/events`,
//! every change of the caller's tasks as Server-Sent Events), which see every event and change
//! nothing; the runtime serves it like any function (health, metrics, logs, trace context) and
//! mounts its public routes.
//!
//! task-api also runs the **outbox relay** of the `tasks` store, a background task that
//! republishes what a writer left behind (a crash between commit and publish, a failed
//! publish), for every writer. It runs here because task-api is the one function that always
//! has a replica (the front door, `minReplicaCount: 1`): create-task scales to zero, and a
//! relay there would leave its own crash leftovers waiting until the next `task-create`
//! message woke it. Every replica relays; duplicates carry the same event id, and consumers
//! are idempotent on it.
//!
//! # Layout
//!
//! - [`config`]: `JWT_SECRET`, `JWT_SECRET_PREVIOUS`, `JWT_JWKS_URL`, `JWT_ISSUER`,
//!   `JWT_AUDIENCE`, `JWT_MAX_LIFETIME_SECS`, `JWT_STRICT`, `LIST_SCAN_LIMIT`, `SEARCH_SCAN_LIMIT`, the `LIVE_*`, the `MCP_*`,
//!   `NOTIFY_ALLOW_LOOPBACK_HTTP` and the `OUTBOX_*` settings from the environment; refuses to
//!   start without a usable way to check tokens.
//! - [`auth`]: bearer tokens (HS256 by derived kid, RS256 / ES256 from the JWKS) to an
//!   [`auth::User`]; with the `mint` feature, minting them.
//! - [`jwks`]: the identity provider's key set: fetched, cached, refreshed by kid.
//! - [`crypto`]: HS256, RS256 and ES256 on `ring` as jsonwebtoken's crypto provider.
//! - [`error`]: [`error::ApiError`], every failure as `{"error", "field"}` with its status.
//! - [`app`]: the state handlers share.
//! - [`access`]: reading the caller's task (404 for anyone else's) and the read-modify-write
//!   loop with ETags and conflict retries.
//! - [`body`]: media types and body bytes, with axum's rejections mapped to API errors.
//! - [`precondition`]: `ETag` / `If-Match` over task versions.
//! - [`params`], [`sort`], [`cursor`], [`listing`], [`search`]: the list request as pure
//!   functions: query string, sort orders, keyset cursors, filter and page, and what `q` matches
//!   (Unicode compatibility caseless matching).
//! - [`scan`]: reading all pages of a Query API request, bounded.
//! - [`rate_limit`]: a token bucket per user at the front door (429 and the IETF `RateLimit`
//!   fields), per replica.
//! - [`routes`]: one file per endpoint, and the router.
//! - [`live`]: `GET /v1/events`, the caller's changes as Server-Sent Events, from a consumer
//!   group of this replica's own.
//! - [`mcp`]: `/mcp`, the MCP server for AI agents: one file per tool, each calling its REST
//!   route in process; the bearer-token gate, session owners and protected-resource metadata.
//! - `dev_token` (feature `mint`): development tokens for `devhost dev-token`.

pub mod access;
pub mod app;
pub mod auth;
pub mod body;
pub mod config;
pub mod crypto;
pub mod cursor;
#[cfg(feature = "mint")]
pub mod dev_token;
pub mod error;
pub mod jwks;
pub mod listing;
pub mod live;
pub mod mcp;
pub mod params;
pub mod precondition;
pub mod rate_limit;
pub mod routes;
pub mod scan;
pub mod search;
pub mod sort;
#[cfg(any(test, feature = "testing"))]
pub mod test_keys;

use dapr_fn::clock::Clock;
use dapr_fn::dapr::Dapr;
use dapr_fn::runtime::Function;

pub use config::Config;

/// The Dapr app-id, crate and image name.
pub const APP_ID: &str = "task-api";

/// The function as `main` runs it: configuration from the environment, the system clock.
pub fn function(dapr: Dapr) -> anyhow::Result<Function> {
    let config = Config::from_env()?;
    tracing::info!(config = ?config, "task-api configured");
    Ok(build(dapr, config, Clock::system()))
}

/// The name of the outbox relay's background task.
pub const OUTBOX_RELAY: &str = "outbox-relay";

/// The name of the background task that ends the live streams at shutdown.
pub const LIVE_CLOSER: &str = "live-closer";

/// The function with explicit configuration and clock (tests). `config` should have passed
/// [`Config::checked`]; without a usable secret or JWKS every token is refused.
pub fn build(dapr: Dapr, config: Config, clock: Clock) -> Function {
    let app = app::App::new(dapr, &config, clock);
    let relay = app.store.outbox().clone();
    let hub = app.live.clone();
    let [task_events, reminders] = live::feed::subscriptions(&hub);
    let function = Function::new(APP_ID)
        .public_routes(routes::router(app, mcp::Settings::from_config(&config)))
        .subscribe(task_events)
        .subscribe(reminders)
        // Open streams would hold the server's graceful shutdown for its whole grace period.
        .background(LIVE_CLOSER, move |stopping| async move {
            stopping.stopped().await;
            hub.close();
        });
    if config.outbox.outbox_relay_enabled {
        function.background(OUTBOX_RELAY, move |stopping| relay.run_relay(stopping))
    } else {
        function
    }
}
