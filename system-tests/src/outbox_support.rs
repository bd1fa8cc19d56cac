//! Waiting for the project's transactional outbox (`shared::outbox`) as well as for the
//! consumers.
//!
//! A writer that dies between its commit and its publish, or whose publish fails (a store or
//! broker outage), leaves the event in an outbox record that task-api's relay publishes once it
//! is `OUTBOX_RELAY_MIN_AGE_MS` old. Until then every consumer group can be caught up while an
//! event is still to come: "settled" means no outbox record left *and* no consumer behind, seen
//! together.

use std::time::Duration;

use anyhow::Context as _;
use shared::events::components;

use crate::host::Setup;

/// Keys of the outbox records still waiting in the `tasks` store of `setup`'s system.
pub fn pending_records(setup: &Setup) -> anyhow::Result<Vec<String>> {
    Ok(devhost::peek::state(&setup.database, components::TASKS_STORE, shared::outbox::KEY_PREFIX)?
        .into_iter()
        .map(|(key, _)| key)
        .collect())
}

/// Waits until no outbox record is left and every consumer group has processed everything, at
/// the same time; the error names what is still pending.
pub async fn settle(setup: &Setup, timeout: Duration) -> anyhow::Result<()> {
    let pending = || -> anyhow::Result<Vec<String>> {
        let mut pending: Vec<String> =
            pending_records(setup)?.into_iter().map(|key| format!("outbox record {key}")).collect();
        let lags = devhost::peek::lag(&setup.database, "pubsub")?;
        pending.extend(lags.iter().filter(|l| l.lag != 0).map(|l| format!("{} on {}: {}", l.group, l.topic, l.lag)));
        Ok(pending)
    };
    let quiet = crate::api::eventually("the outbox to be empty and every consumer to catch up", timeout, || async {
        Ok(pending()?.is_empty().then_some(()))
    })
    .await;
    quiet.with_context(|| format!("still pending: {}", pending().map(|p| p.join(", ")).unwrap_or_default()))
}
