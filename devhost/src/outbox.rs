//! The transactional outbox of a state component (dapr/dapr `pkg/runtime/pubsub/outbox.go`).
//!
//! A transaction on a store whose metadata has `outboxPublishPubsub` + `outboxPublishTopic`
//! publishes one CloudEvent per *upsert* to `outboxPublishTopic` (deletes publish nothing):
//! - `id` is `outbox-<uuid>` and cannot be overridden; `source` is the app-id; `type` defaults to
//!   `com.dapr.event.sent`;
//! - every key of the operation's `metadata` is copied verbatim into the event as an attribute,
//!   except `id` and `data` (so `type: todo.task.created` sets the type);
//! - `datacontenttype` comes from the operation's `contentType` field or its `contentType`
//!   metadata; with `application/json` the value is the JSON `data`; without a content type real
//!   Dapr formats the value with Go's `%v` (`map[a:1]`): devhost publishes the JSON text as a
//!   string instead, with a warning;
//! - an upsert with metadata `outbox.projection: "true"` is not stored: its value replaces the
//!   published data of the upsert with the same key; a projection without such an upsert fails
//!   the transaction (howto-outbox.md "Shape the outbox pattern message");
//! - no partition key: events of one key may land on different partitions, as in Dapr.
//!
//! Two phases and their timing, as in Dapr: the transaction appends each event to the writer's
//! **internal topic** `<appId><outboxPublishTopic>outbox` on `outboxPubsub` (no partition key,
//! so a random partition), and a relay per app-id and internal partition, consuming as the
//! app's consumer group, moves it to `outboxPublishTopic` **one message at a time, sleeping 1 s
//! per message first** (`defaultStateScanDelay`: Dapr sleeps before it looks up the marker key
//! of the transaction). So every event arrives at least 1 s after its commit, and one internal
//! partition relays about one event per second. The relay runs in the writer's own sidecar:
//! events of an app-id move only while devhost serves that app (always, under devhost).
//!
//! **Difference from Dapr, on purpose:** Dapr publishes the first phase *before* the
//! transaction and writes a marker key in it; its relay publishes only if the marker exists
//! (retrying the lookup for 10 s, then discarding with `outboxDiscardWhenMissingState`, or, on
//! 1.18.2/1.18.3, spinning forever: see docs/dapr-contract.md). devhost appends the internal
//! message in the same SQLite transaction as the state, so a failed transaction leaves no
//! internal message at all (and does not stall its partition), there is no marker key, and a
//! committed one is always relayed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tracing::{error, info, warn};

use crate::cloudevent::{DEFAULT_TYPE, child_traceparent};
use crate::db::DbInner;
use crate::host::Host;
use crate::pubsub::{self, NewMessage, Stored};
use crate::resources::{ComponentKind, Outbox, StateComponent};
use crate::state::StateError;

/// How long Dapr's relay sleeps per message before it looks up the marker key
/// (dapr/dapr `pkg/runtime/pubsub/outbox.go` `defaultStateScanDelay`, `time.Sleep` in the
/// internal topic's handler).
pub const STATE_SCAN_DELAY: Duration = Duration::from_secs(1);

/// The internal topic of `app_id`'s outbox to `publish_topic` (outbox.go `outboxTopic`, with
/// no namespace: devhost runs no namespaces).
pub fn internal_topic(app_id: &str, publish_topic: &str) -> String {
    format!("{app_id}{publish_topic}outbox")
}

/// One upsert of a transaction, as the outbox sees it.
#[derive(Debug, Clone)]
pub struct Upsert {
    /// The key as the app wrote it (without prefix).
    pub key: String,
    pub value: Value,
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

pub fn is_projection(metadata: &BTreeMap<String, String>) -> bool {
    metadata.get("outbox.projection").is_some_and(|v| crate::fields::is_truthy(v))
}

/// The events a transaction publishes, to the internal topic on `cluster` (that of the outbox
/// pub/sub as `app_id` loaded it). `upserts` excludes projections; `projections` are the
/// projection upserts. `Err(key)`: a projection without a matching upsert.
pub fn events(
    outbox: &Outbox,
    cluster: &str,
    app_id: &str,
    traceparent: Option<&str>,
    upserts: &[Upsert],
    projections: &[Upsert],
) -> Result<Vec<NewMessage>, String> {
    for p in projections {
        if !upserts.iter().any(|u| u.key == p.key) {
            return Err(p.key.clone());
        }
    }
    let trace = child_traceparent(traceparent);
    let mut out = Vec::new();
    for upsert in upserts {
        let shaped = projections.iter().find(|p| p.key == upsert.key).unwrap_or(upsert);
        let content_type = shaped
            .content_type
            .clone()
            .or_else(|| shaped.metadata.get("contentType").cloned())
            .filter(|c| !c.is_empty());
        let (datacontenttype, data) = match content_type.as_deref() {
            Some(ct) if ct.eq_ignore_ascii_case("application/json") => (ct.to_owned(), shaped.value.clone()),
            other => {
                tracing::warn!(
                    app_id,
                    key = %upsert.key,
                    "outbox upsert without contentType application/json: real Dapr publishes the value formatted \
                     with Go's %v (like map[a:1]); devhost publishes its JSON text as a string"
                );
                let text = match &shaped.value {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                (other.unwrap_or(crate::cloudevent::DEFAULT_CONTENT_TYPE).to_owned(), Value::String(text))
            }
        };
        let mut ce = Map::new();
        ce.insert("id".into(), json!(format!("outbox-{}", uuid::Uuid::new_v4())));
        ce.insert("source".into(), json!(app_id));
        ce.insert("type".into(), json!(DEFAULT_TYPE));
        ce.insert("specversion".into(), json!("1.0"));
        ce.insert("datacontenttype".into(), json!(datacontenttype));
        ce.insert("data".into(), data);
        // The first phase's envelope names the outbox pub/sub and no topic; the relay sets both
        // to the destination (outbox.go `PublishInternal`, then `TopicField`/`PubsubField`).
        ce.insert("topic".into(), json!(""));
        ce.insert("pubsubname".into(), json!(outbox.outbox_pubsub));
        // outbox.go builds the envelope with an empty traceparent and sets `traceid`.
        ce.insert("traceid".into(), json!(trace));
        ce.insert("traceparent".into(), json!(""));
        ce.insert("tracestate".into(), json!(""));
        ce.insert("time".into(), json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
        for (k, v) in &upsert.metadata {
            if k != "id" && k != "data" {
                ce.insert(k.clone(), json!(v));
            }
        }
        out.push(NewMessage {
            cluster: cluster.to_owned(),
            topic: internal_topic(app_id, &outbox.publish_topic),
            key: None,
            partition: None,
            headers: BTreeMap::new(),
            content_type: Some(datacontenttype_of(&ce)),
            body: serde_json::to_vec(&Value::Object(ce)).unwrap_or_default(),
        });
    }
    Ok(out)
}

fn datacontenttype_of(ce: &Map<String, Value>) -> String {
    ce.get("datacontenttype").and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// Starts the relays of every outbox store each app-id loads: one loop per partition of the
/// app's internal topic.
pub(crate) async fn start_relays(host: &Arc<Host>) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut handles = Vec::new();
    let mut app_ids: Vec<&String> = host.apps.keys().collect();
    app_ids.sort();
    for app_id in app_ids {
        for component in host.components_for(app_id) {
            let ComponentKind::State(StateComponent { outbox: Some(outbox), .. }) = &component.kind else { continue };
            // Dapr only warns when the outbox pub/sub is not loaded for the app, and relays nothing.
            let Some(pubsub) = host.pubsub_for(app_id, &outbox.outbox_pubsub) else {
                warn!(app_id = %app_id, store = %component.name, pubsub = %outbox.outbox_pubsub,
                      "outbox pub/sub not loaded for this app: its internal topic is not relayed");
                continue;
            };
            // Nor can it publish to a destination pub/sub the app does not load (every attempt
            // would fail; the app's transactions on the store fail the same way).
            let Some(destination) = host.pubsub_for(app_id, &outbox.publish_pubsub) else {
                warn!(app_id = %app_id, store = %component.name, pubsub = %outbox.publish_pubsub,
                      "outbox destination pub/sub not loaded for this app: its internal topic is not relayed");
                continue;
            };
            let relay = Arc::new(Relay {
                host: host.clone(),
                app_id: app_id.clone(),
                group: pubsub.consumer_group.clone(),
                cluster: pubsub.cluster.clone(),
                topic: internal_topic(app_id, &outbox.publish_topic),
                destination_cluster: destination.cluster.clone(),
                outbox: outbox.clone(),
            });
            let (cluster, topic, default) = (relay.cluster.clone(), relay.topic.clone(), host.options.partitions);
            let n = host
                .db
                .call(move |inner| -> Result<u32, StateError> {
                    Ok(pubsub::partitions(&inner.conn, &mut inner.cache, &cluster, &topic, default)?)
                })
                .await?;
            info!(app_id = %app_id, store = %component.name, topic = %relay.topic, partitions = n,
                  "outbox relay: one message per partition at a time, {STATE_SCAN_DELAY:?} each");
            let relays: Vec<_> = (0..n).map(|p| tokio::spawn(relay.clone().run_partition(p))).collect();
            // A relay is a subscription of the app-id's sidecar: `POST /v1.0/shutdown` stops it.
            if let Some(app) = host.apps.get(app_id.as_str()) {
                let mut tasks = app.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                tasks.extend(relays.iter().map(tokio::task::JoinHandle::abort_handle));
            }
            handles.extend(relays);
        }
    }
    Ok(handles)
}

/// The second phase of one app-id's outbox to one topic.
#[derive(Debug)]
struct Relay {
    host: Arc<Host>,
    app_id: String,
    /// The app's consumer group on the outbox pub/sub.
    group: String,
    /// The outbox pub/sub's cluster, and the internal topic on it.
    cluster: String,
    topic: String,
    /// The cluster of the destination pub/sub (`outboxPublishPubsub`).
    destination_cluster: String,
    outbox: Outbox,
}

impl Relay {
    async fn run_partition(self: Arc<Self>, partition: u32) {
        let shutdown = self.host.shutdown.clone();
        let mut wake = self.host.notifier.subscribe(&self.cluster, &self.topic, partition);
        let mut next = loop {
            let (group, cluster, topic) = (self.group.clone(), self.cluster.clone(), self.topic.clone());
            let r = self
                .host
                .db
                .call(move |inner| -> Result<i64, StateError> {
                    // An internal topic is read from its start, whatever the app's initialOffset.
                    Ok(pubsub::resume_offset(
                        &inner.conn,
                        &mut inner.cache,
                        &group,
                        &cluster,
                        &topic,
                        partition,
                        crate::resources::InitialOffset::Oldest,
                    )?)
                })
                .await;
            match r {
                Ok(offset) => break offset,
                Err(e) => {
                    error!(app_id = %self.app_id, topic = %self.topic, error = %e, "reading the outbox relay's offset failed; retrying");
                    if pause(&shutdown, Duration::from_secs(1)).await {
                        return;
                    }
                }
            }
        };
        loop {
            wake.borrow_and_update();
            let (cluster, topic) = (self.cluster.clone(), self.topic.clone());
            let fetched = self
                .host
                .db
                .read(move |conn| -> Result<Vec<Stored>, StateError> {
                    Ok(pubsub::fetch(conn, &cluster, &topic, partition, next, 1)?)
                })
                .await;
            let message = match fetched {
                Ok(mut batch) if !batch.is_empty() => batch.remove(0),
                Ok(_) => {
                    tokio::select! {
                        r = wake.changed() => if r.is_err() { return },
                        () = shutdown.cancelled() => return,
                    }
                    continue;
                }
                Err(e) => {
                    error!(app_id = %self.app_id, topic = %self.topic, error = %e, "reading the outbox's internal topic failed; retrying");
                    if pause(&shutdown, Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            // Dapr's handler sleeps before it looks up the marker, for every message, and the
            // Kafka consumer hands a partition's messages over one at a time.
            if pause(&shutdown, STATE_SCAN_DELAY).await {
                return;
            }
            match self.forward(&message, partition).await {
                Ok(()) => next = message.offset + 1,
                Err(e) => {
                    error!(app_id = %self.app_id, topic = %self.topic, offset = message.offset, error = %e,
                           "relaying an outbox message failed; retrying");
                    if pause(&shutdown, Duration::from_secs(1)).await {
                        return;
                    }
                }
            }
        }
    }

    /// Publishes `message` to the destination topic and commits the internal offset past it,
    /// in one SQLite transaction (so a crash neither loses nor, within devhost, doubles it).
    async fn forward(&self, message: &Stored, partition: u32) -> Result<(), StateError> {
        let out = match destination(&self.outbox, &self.destination_cluster, message) {
            Ok(out) => vec![out],
            Err(reason) => {
                // devhost wrote this message itself, so this is a bug; Dapr would retry it forever.
                error!(app_id = %self.app_id, topic = %self.topic, offset = message.offset, %reason,
                       "skipping an outbox message that is not a CloudEvent");
                Vec::new()
            }
        };
        let (group, cluster, topic, next) =
            (self.group.clone(), self.cluster.clone(), self.topic.clone(), message.offset + 1);
        let (partitions, notifier) = (self.host.options.partitions, self.host.notifier.clone());
        self.host
            .db
            .call_then(
                move |inner: &mut DbInner| -> Result<Vec<crate::pubsub::Touched>, StateError> {
                    let DbInner { conn, cache } = inner;
                    let result = (|| {
                        let tx = conn.savepoint()?;
                        let touched = pubsub::append(&tx, cache, &out, partitions)?;
                        pubsub::commit(&tx, &group, &cluster, &topic, partition, next)?;
                        tx.commit()?;
                        Ok(touched)
                    })();
                    if result.is_err() {
                        // Offsets handed out inside a rolled-back transaction are forgotten with it.
                        cache.next_offsets.clear();
                        cache.partitions.clear();
                    }
                    result
                },
                move |touched| notifier.notify(touched),
            )
            .await?;
        Ok(())
    }
}

/// The second phase's message: the stored envelope with `topic` and `pubsubname` set to the
/// destination, on the destination topic (of `cluster`, the destination pub/sub's), without a
/// partition key.
fn destination(outbox: &Outbox, cluster: &str, message: &Stored) -> Result<NewMessage, String> {
    let mut ce: Map<String, Value> = serde_json::from_slice(&message.body).map_err(|e| e.to_string())?;
    ce.insert("topic".into(), json!(outbox.publish_topic));
    ce.insert("pubsubname".into(), json!(outbox.publish_pubsub));
    let content_type = datacontenttype_of(&ce);
    Ok(NewMessage {
        cluster: cluster.to_owned(),
        topic: outbox.publish_topic.clone(),
        key: None,
        partition: None,
        headers: BTreeMap::new(),
        content_type: Some(content_type),
        body: serde_json::to_vec(&Value::Object(ce)).map_err(|e| e.to_string())?,
    })
}

/// Sleeps `d`; `true` if devhost is shutting down.
async fn pause(shutdown: &tokio_util::sync::CancellationToken, d: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        () = shutdown.cancelled() => true,
    }
}
