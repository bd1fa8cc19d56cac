//! What every handler shares: the task store, the clock, the token checker and the limits.
//! Cheap to clone (everything inside is reference-counted), as axum clones it per request.

use std::sync::Arc;

use axum::extract::FromRef;
use shared::clock::Clock;
use shared::dapr::Dapr;
use shared::tasks::TaskStore;

use crate::auth::Authenticator;
use crate::config::Config;

#[derive(Debug, Clone)]
pub struct App {
    pub store: TaskStore,
    pub clock: Clock,
    pub auth: Arc<Authenticator>,
    /// `LIST_SCAN_LIMIT`: the most records one list or audit request reads from the store.
    pub scan_limit: usize,
}

impl App {
    pub fn new(dapr: Dapr, config: &Config, clock: Clock) -> Self {
        Self {
            store: TaskStore::with_outbox(dapr, config.outbox.clone(), clock.clone()),
            clock,
            auth: Arc::new(Authenticator::new(config)),
            scan_limit: config.list_scan_limit.max(1),
        }
    }

    pub fn dapr(&self) -> &Dapr {
        self.store.dapr()
    }
}

/// Lets the [`crate::auth::User`] extractor find the authenticator in the router's state.
impl FromRef<App> for Arc<Authenticator> {
    fn from_ref(app: &App) -> Self {
        app.auth.clone()
    }
}
