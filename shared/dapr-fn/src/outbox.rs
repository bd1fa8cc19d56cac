//! A transactional outbox on the Dapr state API, owned by this project instead of Dapr's.
//!
//! A change and its events must be atomic: an event published without its change committed
//! would announce something that never happened, and a change committed without its event
//! would be missed by every consumer. So a writer calls [`Outbox::commit`]: the change's
//! operations and one [`OutboxRecord`] per event (the complete event: id, type, subject, data,
//! partition key, pub/sub and topic, time written) go into **one state transaction** on the
//! same store. Right after the commit the writer publishes each event
//! (`POST /v1.0/publish/...` with `metadata.cloudevent.id/type/subject` and
//! `metadata.partitionKey`) and hands its record to the sweeper, which deletes
//! the records of every event out since its last call in one transaction: under load a single
//! state call then clears dozens of records, and the writer's request never waits for it. A
//! transaction that fails publishes nothing. A writer that dies between commit and publish, or
//! whose publish fails, leaves the record behind, and the [relay](Outbox::run_relay) publishes
//! it within a few seconds from any replica that runs it: records are found through the Query
//! API by [`MARKER_FIELD`], which nothing else in a store carries.
//!
//! Why not Dapr's own outbox (`outboxPublishPubsub` on the component): in Dapr 1.18 its relay
//! sleeps 1 s per message and consumes each internal partition one message at a time (about
//! one event per second per partition), a transaction that fails by design (an
//! insert-if-absent that finds its key, an ETag conflict) has already published its first
//! phase and stalls that partition (11 s, or forever on 1.18.2/1.18.3), its event ids are
//! random, and its internal topics need a KEDA trigger to wake a writer scaled to zero. See
//! docs/architecture.md.
//!
//! Guarantees: at least once, with an id the caller chooses and that stays the same on every
//! republish, so consumers deduplicate on it. The writer publishes one commit's events in
//! order; the relay publishes oldest records first but cannot promise order across records
//! (two replicas may relay at once, and a writer may be publishing while the relay does), so
//! consumers order by a version in the data, never by arrival. Duplicates are accepted rather
//! than prevented: claiming a record with its ETag would cost a write per record and turn
//! every lost claim into a failed state call, which Dapr counts toward the store's circuit
//! breaker (docs/dapr-contract.md, "Resiliency").
//!
//! The module knows nothing of what the events mean; the todo-store crate builds the task events.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::dapr::{Dapr, DaprError, Publish, Query, SaveItem, SortOrder, TxOp};
use crate::runtime::Stopping;

/// Records are stored under `outbox:<event id>`.
pub const KEY_PREFIX: &str = "outbox:";

/// The top-level field every record carries, and the only one the relay filters on. No other
/// value in a store has it, so a query on another field (a task list on `owner`) never returns
/// a record, and the relay's query never returns anything else.
pub const MARKER_FIELD: &str = "outbox_record";

/// The value of [`MARKER_FIELD`]: the layout version of [`OutboxRecord`].
pub const MARKER_VALUE: &str = "v1";

/// One event to publish: everything `POST /v1.0/publish` needs, so that a relay on another
/// replica (or app) can publish it without knowing what it means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEvent {
    /// CloudEvent `id`: stable across every republish, so consumers deduplicate on it.
    pub id: String,
    /// CloudEvent `type`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// CloudEvent `subject`.
    pub subject: String,
    /// Kafka message key: the events of one entity stay on one partition, in publish order.
    pub partition_key: String,
    /// The pub/sub component to publish through (its Dapr name). Stored with the event, as is
    /// `topic`, so that the relay on any replica sends it where the writer would have.
    pub pubsub: String,
    /// The topic on that component.
    pub topic: String,
    /// The CloudEvent `data`, published as JSON.
    pub data: Value,
}

impl OutboxEvent {
    fn publish_options(&self) -> Publish {
        Publish::new(&self.event_type)
            .id(self.id.clone())
            .subject(self.subject.clone())
            .partition_key(self.partition_key.clone())
    }
}

/// What is stored for one event until it is published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// Always [`MARKER_VALUE`].
    outbox_record: String,
    /// When the writer committed it: RFC 3339 in UTC with milliseconds, a fixed width, so that
    /// the Query API's text sort (`value->>'written_at'` on `state.postgresql` v1) is
    /// chronological.
    written_at: String,
    /// The event, complete: the relay publishes it from this alone.
    pub event: OutboxEvent,
}

impl OutboxRecord {
    /// The record of `event`, marked and stamped with `written_at` in the fixed-width form the
    /// relay sorts on. The relay leaves it to its writer until it is
    /// `OUTBOX_RELAY_MIN_AGE_MS` old.
    pub fn new(event: OutboxEvent, written_at: DateTime<Utc>) -> Self {
        Self {
            outbox_record: MARKER_VALUE.to_owned(),
            written_at: written_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            event,
        }
    }

    /// The state key of the record of `event_id`.
    pub fn key_of(event_id: &str) -> String {
        format!("{KEY_PREFIX}{event_id}")
    }

    /// The state key to store this record under: [`KEY_PREFIX`] and the event id, so that an
    /// event has at most one record and a rewrite replaces it.
    pub fn key(&self) -> String {
        Self::key_of(&self.event.id)
    }

    fn written_at(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.written_at).ok().map(|t| t.to_utc())
    }
}

/// Outbox settings, from the environment (envy): `OUTBOX_PUBLISH_TIMEOUT_MS`,
/// `OUTBOX_RELAY_ENABLED`, `OUTBOX_RELAY_INTERVAL_MS`, `OUTBOX_RELAY_MIN_AGE_MS`,
/// `OUTBOX_RELAY_BATCH`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OutboxConfig {
    /// How long a writer waits for its own publish before leaving the event to the relay, so
    /// that a broker outage slows a request by this much at most, not by the sidecar's retries.
    #[serde(default = "default_publish_timeout_ms")]
    pub outbox_publish_timeout_ms: u64,
    /// Whether this process runs the relay (where the function has one).
    #[serde(default = "default_relay_enabled")]
    pub outbox_relay_enabled: bool,
    /// Pause between two relay passes. Each replica jitters it by up to a quarter, so that
    /// replicas started together do not query in step.
    #[serde(default = "default_relay_interval_ms")]
    pub outbox_relay_interval_ms: u64,
    /// Records younger than this are left to their writer, which normally publishes within
    /// milliseconds; relaying them too would only make duplicates. Keep it above the publish
    /// timeout.
    #[serde(default = "default_relay_min_age_ms")]
    pub outbox_relay_min_age_ms: u64,
    /// Records read per Query API call. A page that holds only records that do not decode
    /// (nothing but this module writes the marker field, so: none) would hide the rest.
    #[serde(default = "default_relay_batch")]
    pub outbox_relay_batch: u32,
}

fn default_publish_timeout_ms() -> u64 {
    3_000
}
fn default_relay_enabled() -> bool {
    true
}
fn default_relay_interval_ms() -> u64 {
    2_000
}
fn default_relay_min_age_ms() -> u64 {
    5_000
}
fn default_relay_batch() -> u32 {
    100
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            outbox_publish_timeout_ms: default_publish_timeout_ms(),
            outbox_relay_enabled: default_relay_enabled(),
            outbox_relay_interval_ms: default_relay_interval_ms(),
            outbox_relay_min_age_ms: default_relay_min_age_ms(),
            outbox_relay_batch: default_relay_batch(),
        }
    }
}

impl OutboxConfig {
    /// Reads and checks the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_vars(std::env::vars())
    }

    /// Reads and checks `vars` as the environment would supply them.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Self> {
        let config: Self =
            envy::from_iter(vars).map_err(|e| anyhow::anyhow!("outbox configuration from the environment: {e}"))?;
        config.checked()
    }

    /// Refuses a zero relay interval (the relay would spin), relay batch or publish timeout (every
    /// publish would time out). [`Self::from_vars`] calls it; call it on a config built in code.
    pub fn checked(self) -> anyhow::Result<Self> {
        if self.outbox_relay_interval_ms == 0 {
            anyhow::bail!("OUTBOX_RELAY_INTERVAL_MS must be at least 1");
        }
        if self.outbox_relay_batch == 0 {
            anyhow::bail!("OUTBOX_RELAY_BATCH must be at least 1");
        }
        if self.outbox_publish_timeout_ms == 0 {
            anyhow::bail!("OUTBOX_PUBLISH_TIMEOUT_MS must be at least 1");
        }
        Ok(self)
    }

    /// `OUTBOX_PUBLISH_TIMEOUT_MS`: how long a writer waits for its own publish.
    pub fn publish_timeout(&self) -> Duration {
        Duration::from_millis(self.outbox_publish_timeout_ms)
    }

    /// `OUTBOX_RELAY_INTERVAL_MS`: the pause between relay passes, before the jitter.
    pub fn relay_interval(&self) -> Duration {
        Duration::from_millis(self.outbox_relay_interval_ms)
    }

    /// `OUTBOX_RELAY_MIN_AGE_MS`: the age under which the relay leaves a record to its writer.
    pub fn relay_min_age(&self) -> Duration {
        Duration::from_millis(self.outbox_relay_min_age_ms)
    }
}

/// The result of a commit whose transaction succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Events published (and their records deleted) by this call.
    pub published: usize,
    /// Events whose publish failed or timed out: their records wait for the relay.
    pub left_for_relay: usize,
}

/// What one relay pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayPass {
    /// Records published and deleted.
    pub relayed: usize,
    /// Records too young to relay (their writer is probably publishing them).
    pub young: usize,
    /// Records that do not decode (logged; left in place).
    pub undecodable: usize,
}

/// The most records one sweep deletes in one transaction.
pub const SWEEP_BATCH: usize = 200;

/// Deletes the records of published events, many per state transaction.
///
/// A writer used to delete each record right after its publish: one more sidecar call and one
/// more database commit per event, on the path every consumer message waits on (about a
/// fifth of create-task's sidecar work on the real platform). The sweeper takes the keys
/// instead and, in a task of its own, deletes whatever has queued up since its last
/// transaction, up to [`SWEEP_BATCH`] at a time: one key when idle, dozens under load. A key
/// it loses (the process stops first, the transaction fails) costs one more publish of the
/// same event by the relay, which consumers deduplicate by id: the record is deleted only
/// after its event is out, so nothing is ever lost this way.
#[derive(Debug, Clone, Default)]
struct Sweeper {
    /// Started on first use, so that building an [`Outbox`] needs no runtime.
    queue: Arc<OnceLock<mpsc::UnboundedSender<String>>>,
}

impl Sweeper {
    fn delete(&self, dapr: &Dapr, store: &str, key: String) {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(Self::run(dapr.clone(), store.to_owned(), rx));
            tx
        });
        if queue.send(key).is_err() {
            warn!(store, "the outbox sweeper has stopped; the relay will publish this event again");
        }
    }

    async fn run(dapr: Dapr, store: String, mut keys: mpsc::UnboundedReceiver<String>) {
        let mut batch = Vec::with_capacity(SWEEP_BATCH);
        while keys.recv_many(&mut batch, SWEEP_BATCH).await > 0 {
            let operations: Vec<TxOp> = batch.drain(..).map(|key| TxOp::Delete { key, etag: None }).collect();
            if let Err(error) = dapr.transact(&store, &operations).await {
                warn!(
                    store = %store, records = operations.len(), error = format!("{error:#}"),
                    "deleting published outbox records failed; the relay will publish their events again"
                );
            }
        }
    }
}

/// The outbox of one state store.
#[derive(Debug, Clone)]
pub struct Outbox {
    dapr: Dapr,
    store: String,
    clock: Clock,
    config: OutboxConfig,
    sweeper: Sweeper,
}

impl Outbox {
    /// The outbox of state store `store`: the one the changes' transactions run on, since the
    /// records must commit with them. Starts nothing: the sweeper starts (on the caller's
    /// Tokio runtime) once a commit has published an event, the relay only in
    /// [`run_relay`](Self::run_relay).
    pub fn new(dapr: Dapr, store: impl Into<String>, config: OutboxConfig) -> Self {
        Self { dapr, store: store.into(), clock: Clock::system(), config, sweeper: Sweeper::default() }
    }

    /// The time source for `written_at` and for the relay's age check.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The state store component the records are written to, and the changes must be.
    pub fn store(&self) -> &str {
        &self.store
    }

    /// The settings it runs with. It never reads `outbox_relay_enabled` itself: whether to
    /// start [`run_relay`](Self::run_relay) is the caller's decision.
    pub fn config(&self) -> &OutboxConfig {
        &self.config
    }

    /// The transaction operation that stores `event`'s record. A plain upsert: a record is
    /// written once and never changed, and its key (the event id) is unique to its change.
    pub fn record_op(&self, event: &OutboxEvent) -> Result<TxOp, DaprError> {
        let record = OutboxRecord::new(event.clone(), self.clock.now());
        Ok(TxOp::Upsert(SaveItem::new(record.key(), &record)?))
    }

    /// Commits `operations` and one record per event in one transaction, then publishes the
    /// events in order, handing each record to the sweeper once its event is out.
    ///
    /// `Err` only when the transaction failed: then nothing was written and nothing is
    /// published. Once it has committed, the change is done whatever happens to the publish:
    /// a failed or slow publish is logged and its event (and every later one of this call, to
    /// keep their order) is left to the relay.
    pub async fn commit(&self, mut operations: Vec<TxOp>, events: &[OutboxEvent]) -> Result<Committed, DaprError> {
        for event in events {
            operations.push(self.record_op(event)?);
        }
        self.dapr.transact(&self.store, &operations).await?;
        let mut published = 0;
        for event in events {
            match self.publish(event).await {
                Ok(()) => {
                    self.sweeper.delete(&self.dapr, &self.store, OutboxRecord::key_of(&event.id));
                    published += 1;
                }
                Err(error) => {
                    warn!(
                        store = %self.store, event_id = %event.id, error = format!("{error:#}"),
                        "publishing after the commit failed; the outbox relay will publish it"
                    );
                    break;
                }
            }
        }
        Ok(Committed { published, left_for_relay: events.len() - published })
    }

    /// Publishes `event`, giving up after `OUTBOX_PUBLISH_TIMEOUT_MS`.
    async fn publish(&self, event: &OutboxEvent) -> Result<(), DaprError> {
        let options = event.publish_options();
        let publish = self.dapr.publish(&event.pubsub, &event.topic, &event.data, &options);
        match tokio::time::timeout(self.config.publish_timeout(), publish).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(DaprError::TimedOut {
                    what: format!("publish to {}/{} (OUTBOX_PUBLISH_TIMEOUT_MS)", event.pubsub, event.topic),
                    after: self.config.publish_timeout(),
                });
            }
        }
        Ok(())
    }

    /// Deletes the records of events the relay has published, in one transaction, before it
    /// reads the next page: a record still there would be read and published again. A failure
    /// only means one more publish later (same event id), so it is logged, not returned.
    async fn delete_relayed(&self, keys: Vec<String>) {
        if keys.is_empty() {
            return;
        }
        let operations: Vec<TxOp> = keys.into_iter().map(|key| TxOp::Delete { key, etag: None }).collect();
        if let Err(error) = self.dapr.transact(&self.store, &operations).await {
            warn!(
                store = %self.store, records = operations.len(), error = format!("{error:#}"),
                "deleting relayed outbox records failed; the relay will publish their events again"
            );
        }
    }

    /// The relay's query: every record, oldest first, one page of `batch`.
    fn relay_query(batch: u32) -> Query {
        Query::new().filter(json!({"EQ": {MARKER_FIELD: MARKER_VALUE}})).sort("written_at", SortOrder::Asc).limit(batch)
    }

    /// One relay pass: publishes and deletes every record at least `min_age` old, oldest first.
    ///
    /// Always reads the first page again rather than following a continuation token:
    /// `state.postgresql` v1's token is an offset, and deleting what was relayed would make it
    /// skip records. The records a page relayed are deleted in one transaction before the next
    /// page is read. The pass ends at the first record that is too young (everything after it
    /// is younger), at the first failed publish (the broker is likely down; the next pass tries
    /// again), when a page relayed nothing, or when `stopping` fires.
    pub async fn relay_once(&self, stopping: &Stopping) -> Result<RelayPass, DaprError> {
        let batch = self.config.outbox_relay_batch.max(1);
        let mut pass = RelayPass::default();
        loop {
            let page = self.dapr.query_state::<Value>(&self.store, &Self::relay_query(batch)).await?;
            let full = page.results.len() >= batch as usize;
            let (relayed, go_on) = self.relay_page(page.results, stopping, &mut pass).await;
            let relayed_now = relayed.len();
            self.delete_relayed(relayed).await;
            if !go_on || !full || relayed_now == 0 {
                return Ok(pass);
            }
        }
    }

    /// Publishes the records of one page that are old enough, in order. Returns the keys of
    /// those published, and whether the pass may read another page.
    async fn relay_page(
        &self,
        items: Vec<crate::dapr::QueryItem<Value>>,
        stopping: &Stopping,
        pass: &mut RelayPass,
    ) -> (Vec<String>, bool) {
        let min_age = chrono::Duration::from_std(self.config.relay_min_age()).unwrap_or(chrono::Duration::MAX);
        let now = self.clock.now();
        let mut relayed = Vec::new();
        for item in items {
            if stopping.is_stopped() {
                return (relayed, false);
            }
            let record = match serde_json::from_value::<OutboxRecord>(item.value) {
                Ok(record) => record,
                Err(error) => {
                    warn!(store = %self.store, key = %item.key, %error, "skipping an outbox record that does not decode");
                    pass.undecodable += 1;
                    continue;
                }
            };
            let Some(written_at) = record.written_at() else {
                warn!(store = %self.store, key = %item.key, written_at = %record.written_at, "skipping an outbox record with a bad written_at");
                pass.undecodable += 1;
                continue;
            };
            if now - written_at < min_age {
                pass.young += 1;
                return (relayed, false);
            }
            if let Err(error) = self.publish(&record.event).await {
                warn!(
                    store = %self.store, event_id = %record.event.id, error = format!("{error:#}"),
                    "relaying an outbox record failed; trying again on the next pass"
                );
                return (relayed, false);
            }
            info!(store = %self.store, event_id = %record.event.id, written_at = %record.written_at, "relayed an event its writer left behind");
            pass.relayed += 1;
            relayed.push(item.key);
        }
        (relayed, true)
    }

    /// Runs a relay pass at once (a replica that starts after a crash publishes what the crash
    /// left without waiting), then one every `OUTBOX_RELAY_INTERVAL_MS` (jittered), until
    /// `stopping` fires. A pass in progress finishes the record it is publishing, then stops.
    pub async fn run_relay(self, stopping: Stopping) {
        info!(
            store = %self.store,
            interval_ms = self.config.outbox_relay_interval_ms,
            min_age_ms = self.config.outbox_relay_min_age_ms,
            "outbox relay running"
        );
        while !stopping.is_stopped() {
            let outcome = match self.relay_once(&stopping).await {
                Ok(pass) => {
                    if pass != RelayPass::default() {
                        debug!(store = %self.store, ?pass, "outbox relay pass");
                    }
                    metrics::counter!(RELAYED_METRIC, "store" => self.store.clone())
                        .increment(u64::try_from(pass.relayed).unwrap_or(u64::MAX));
                    "ok"
                }
                Err(error) => {
                    warn!(store = %self.store, error = format!("{error:#}"), "outbox relay pass failed; trying again");
                    "error"
                }
            };
            metrics::counter!(PASSES_METRIC, "store" => self.store.clone(), "outcome" => outcome).increment(1);
            tokio::select! {
                () = tokio::time::sleep(jittered(self.config.relay_interval())) => {}
                () = stopping.stopped() => break,
            }
        }
        info!(store = %self.store, "outbox relay stopped");
    }
}

/// Relay passes run, by `store` and `outcome` (`ok`, `error`): an operator sees the relay is
/// alive (and a test waits for passes instead of sleeping through them).
pub const PASSES_METRIC: &str = "todo_outbox_relay_passes_total";
/// Events the relay published, by `store`: each one a writer's publish that did not happen.
pub const RELAYED_METRIC: &str = "todo_outbox_relayed_total";

/// `interval` plus up to a quarter of it, at random.
fn jittered(interval: Duration) -> Duration {
    let quarter = u64::try_from(interval.as_millis() / 4).unwrap_or(u64::MAX).max(1);
    let extra = u64::try_from(uuid::Uuid::new_v4().as_u128() % u128::from(quarter)).unwrap_or(0);
    interval + Duration::from_millis(extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> OutboxEvent {
        OutboxEvent {
            id: "thing:1:v2".into(),
            event_type: "example.changed".into(),
            subject: "1".into(),
            partition_key: "1".into(),
            pubsub: "pubsub".into(),
            topic: "things".into(),
            data: json!({"n": 1}),
        }
    }

    #[test]
    fn record_wire_shape() {
        let at = DateTime::parse_from_rfc3339("2026-12-05T10:00:00Z").unwrap().to_utc();
        let record = OutboxRecord::new(event(), at);
        assert_eq!(record.key(), "outbox:thing:1:v2");
        assert_eq!(
            serde_json::to_value(&record).unwrap(),
            json!({
                "outbox_record": "v1",
                "written_at": "2026-12-05T10:00:00.000Z",
                "event": {"id": "thing:1:v2", "type": "example.changed", "subject": "1", "partition_key": "1",
                          "pubsub": "pubsub", "topic": "things", "data": {"n": 1}},
            })
        );
    }

    #[test]
    fn written_at_sorts_as_text() {
        let early =
            OutboxRecord::new(event(), DateTime::parse_from_rfc3339("2026-12-05T10:00:09.5Z").unwrap().to_utc());
        let late = OutboxRecord::new(event(), DateTime::parse_from_rfc3339("2026-12-05T10:00:10Z").unwrap().to_utc());
        assert!(early.written_at < late.written_at, "{} vs {}", early.written_at, late.written_at);
    }

    #[test]
    fn relay_query_filters_on_the_marker_only() {
        assert_eq!(
            serde_json::to_value(Outbox::relay_query(50)).unwrap(),
            json!({"filter": {"EQ": {"outbox_record": "v1"}}, "sort": [{"key": "written_at", "order": "ASC"}], "page": {"limit": 50}})
        );
    }

    #[test]
    fn config_defaults_and_checks() {
        let config = OutboxConfig::from_vars(Vec::new()).unwrap();
        assert_eq!(config, OutboxConfig::default());
        assert_eq!((config.relay_interval(), config.relay_min_age()), (Duration::from_secs(2), Duration::from_secs(5)));
        assert!(config.outbox_relay_enabled);
        let vars =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>();
        let custom = OutboxConfig::from_vars(vars(&[
            ("OUTBOX_RELAY_INTERVAL_MS", "250"),
            ("OUTBOX_RELAY_MIN_AGE_MS", "1000"),
            ("OUTBOX_RELAY_ENABLED", "false"),
            ("OUTBOX_RELAY_BATCH", "7"),
            ("OUTBOX_PUBLISH_TIMEOUT_MS", "500"),
        ]))
        .unwrap();
        assert_eq!(
            (
                custom.outbox_relay_interval_ms,
                custom.outbox_relay_min_age_ms,
                custom.outbox_relay_enabled,
                custom.outbox_relay_batch
            ),
            (250, 1000, false, 7)
        );
        assert_eq!(custom.publish_timeout(), Duration::from_millis(500));
        for bad in [("OUTBOX_RELAY_INTERVAL_MS", "0"), ("OUTBOX_RELAY_BATCH", "0"), ("OUTBOX_RELAY_MIN_AGE_MS", "soon")]
        {
            assert!(OutboxConfig::from_vars(vars(&[bad])).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        for _ in 0..100 {
            let d = jittered(Duration::from_millis(2000));
            assert!(d >= Duration::from_millis(2000) && d < Duration::from_millis(2500), "{d:?}");
        }
    }
}
