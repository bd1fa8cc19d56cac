//! What every handler shares: the task store, the clock, the token checker and the limits.
//! Cheap to clone (everything inside is reference-counted), as axum clones it per request.

use std::sync::Arc;

use axum::extract::FromRef;
use dapr_fn::clock::Clock;
use dapr_fn::dapr::Dapr;
use todo_core::notification::TargetPolicy;
use todo_store::TaskStore;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::rate_limit::Limiter;

#[derive(Debug, Clone)]
pub struct App {
    pub store: TaskStore,
    pub clock: Clock,
    pub auth: Arc<Authenticator>,
    /// `LIST_SCAN_LIMIT`: the most records one list or audit request reads from the store.
    pub scan_limit: usize,
    /// `SEARCH_SCAN_LIMIT`: the most tasks one list request with `q` or `tag` reads.
    pub search_scan_limit: usize,
    /// `RATE_LIMIT_PER_MINUTE`, applied by the [`crate::auth::User`] extractor.
    pub limiter: Arc<RateGate>,
    /// The live streams of this replica (`GET /v1/events`).
    pub live: Arc<crate::live::Hub>,
    /// What may be a webhook target (`NOTIFY_ALLOW_LOOPBACK_HTTP`), for
    /// `PUT /v1/me/notifications`.
    pub notify_policy: TargetPolicy,
}

/// The rate limiter with the clock it reads: what the [`crate::auth::User`] extractor needs
/// beside the authenticator.
#[derive(Debug)]
pub struct RateGate {
    pub limiter: Limiter,
    pub clock: Clock,
}

impl App {
    pub fn new(dapr: Dapr, config: &Config, clock: Clock) -> Self {
        Self {
            store: TaskStore::with_outbox(dapr, config.outbox.clone(), clock.clone()),
            clock,
            auth: Arc::new(Authenticator::new(config)),
            scan_limit: config.list_scan_limit.max(1),
            search_scan_limit: config.search_scan_limit.max(1),
            // Wall time, not the injected clock: the limit is about how fast requests really
            // come, and the injected clock is the tasks' notion of now (tests move it).
            limiter: Arc::new(RateGate { limiter: Limiter::new(config.rate_limit_per_minute), clock: Clock::system() }),
            live: crate::live::Hub::new(config.live_limits()),
            notify_policy: TargetPolicy { allow_loopback_http: config.notify_allow_loopback_http },
        }
    }

    pub fn dapr(&self) -> &Dapr {
        self.store.dapr()
    }
}

/// Lets the [`crate::auth::User`] extractor find the rate limiter in the router's state.
impl FromRef<App> for Arc<RateGate> {
    fn from_ref(app: &App) -> Self {
        app.limiter.clone()
    }
}

/// Lets the [`crate::auth::User`] extractor find the authenticator in the router's state.
impl FromRef<App> for Arc<Authenticator> {
    fn from_ref(app: &App) -> Self {
        app.auth.clone()
    }
}
