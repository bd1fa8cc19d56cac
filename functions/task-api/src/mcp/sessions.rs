//! Which user each MCP session belongs to.
//!
//! In legacy session mode (protocol revisions before `2026-07-28`) rmcp keeps a session per
//! `initialize`, named by the `Mcp-Session-Id` it answers with, and routes every later request
//! carrying that id into it. rmcp does not know users, so a session id is bound here to the
//! subject of the token that opened it, and a request that presents it with another user's token
//! is refused ([`super::gate`]). Each tool call still sends the *current* request's token to the
//! REST routes, so even without this binding a session could not reach another user's tasks;
//! the binding keeps one user's session (its state, its notifications) from being driven by
//! anyone else who learns its id.
//!
//! The map holds what rmcp holds, no more: an entry goes when its session is deleted or answered
//! 404 (expired), and whenever the map has doubled since the last pass, entries whose session
//! rmcp no longer has (closed after `SessionConfig::keep_alive` of idleness, 5 minutes) are
//! dropped. An id missing from the map is refused, so the binding fails closed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

/// Prune no more often than this many entries (then at twice the live count).
const MIN_PRUNE_AT: usize = 1024;

/// Session id → user id.
#[derive(Debug)]
pub struct Sessions {
    owners: Mutex<HashMap<String, String>>,
    /// rmcp's sessions: which ids are still live.
    manager: Arc<LocalSessionManager>,
    prune_at: AtomicUsize,
}

impl Sessions {
    pub fn new(manager: Arc<LocalSessionManager>) -> Self {
        Self { owners: Mutex::new(HashMap::new()), manager, prune_at: AtomicUsize::new(MIN_PRUNE_AT) }
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // The map is never left half-changed by a panic (single inserts and removes).
        self.owners.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether session `id` was opened by `user`. Unknown ids are not.
    pub fn belongs_to(&self, id: &str, user: &str) -> bool {
        self.owners().get(id).is_some_and(|owner| owner == user)
    }

    /// Records that `user` opened session `id`.
    pub async fn bind(&self, id: &str, user: &str) {
        let len = {
            let mut owners = self.owners();
            owners.insert(id.to_owned(), user.to_owned());
            owners.len()
        };
        if len >= self.prune_at.load(Ordering::Relaxed) {
            self.prune().await;
        }
    }

    /// Forgets session `id`.
    pub fn forget(&self, id: &str) {
        self.owners().remove(id);
    }

    /// Drops the entries of sessions rmcp has closed.
    async fn prune(&self) {
        let live: std::collections::HashSet<String> =
            self.manager.sessions.read().await.keys().map(|id| id.to_string()).collect();
        let len = {
            let mut owners = self.owners();
            owners.retain(|id, _| live.contains(id));
            owners.len()
        };
        self.prune_at.store((len * 2).max(MIN_PRUNE_AT), Ordering::Relaxed);
    }

    pub fn len(&self) -> usize {
        self.owners().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_belongs_to_the_user_who_opened_it_only() {
        let sessions = Sessions::new(Arc::new(LocalSessionManager::default()));
        assert!(!sessions.belongs_to("s1", "alice"), "unknown ids fail closed");
        sessions.bind("s1", "alice").await;
        assert!(sessions.belongs_to("s1", "alice"));
        assert!(!sessions.belongs_to("s1", "bob"));
        sessions.forget("s1");
        assert!(!sessions.belongs_to("s1", "alice"));
    }

    #[tokio::test]
    async fn closed_sessions_are_pruned_once_the_map_has_grown() {
        let sessions = Sessions::new(Arc::new(LocalSessionManager::default()));
        for n in 0..MIN_PRUNE_AT {
            sessions.bind(&format!("s{n}"), "alice").await;
        }
        // rmcp holds none of them (never opened there): the pass at MIN_PRUNE_AT drops them all.
        assert!(sessions.is_empty(), "{}", sessions.len());
    }
}
