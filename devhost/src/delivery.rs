//! Delivery: one consumer group per app-id and pub/sub component, one sequential loop per
//! partition of each subscribed topic (partitions in parallel), offsets committed when a
//! message is settled. A subscription reads the topic of the component's cluster, whichever
//! component published to it, with its group's own offsets
//! ([`crate::resources::PubSubComponent::cluster`]).
//!
//! Per message, as dapr/dapr `pkg/runtime/subscription/subscription.go` and
//! `postman/http/http.go` do:
//! 1. read the CloudEvent (a `rawPayload` subscription gets a synthesized envelope); a body that
//!    is not a CloudEvent goes to the dead-letter topic if there is one, else it is retried;
//! 2. an expired event (`expiration`) is dropped (dead-lettered if configured);
//! 3. the routing rules are evaluated in order ([`crate::cel`]); an evaluation error is handled
//!    like 1; no matching rule and no default route: acknowledged (and dead-lettered if
//!    configured, as Dapr does);
//! 4. `POST <route>` with `Content-Type: application/cloudevents+json`, the stored bytes as the
//!    body, the Kafka metadata as headers (`__key`, `__topic`, `__partition`, `__offset`,
//!    `__timestamp`, the record headers), `traceparent` (the event's, else all zeros; no
//!    `tracestate`), and `dapr-api-token` with an app token;
//! 5. the answer: 2xx with an empty, non-JSON or status-less body, or `SUCCESS`: done; `DROP` or
//!    404: dead letter (or acknowledged with a warning); `RETRY`, an unknown status (statuses are
//!    case-sensitive, as daprd's `switch`: `"drop"` is unknown), any other
//!    status or no connection: retried under the Resiliency inbound retry policy of the pub/sub
//!    component, then dead-lettered; without a dead-letter topic Kafka's own consume retry takes
//!    over: the message is retried every `backOffDuration` (5 s) forever, blocking its partition.
//!
//! A dead-lettered message is published to the subscription's `deadLetterTopic` on the same
//! pub/sub, bytes unchanged (the original CloudEvent), key and record headers kept.
//!
//! A bulk subscription delivers its messages in batches instead: see `delivery/bulk.rs`.

mod bulk;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tracing::{error, info, warn};

use crate::cel::Rule;
use crate::cloudevent;
use crate::db::TaskFailed;
use crate::host::{App, Host};
use crate::pubsub::{self, NewMessage, Stored};
use crate::resources::{InboundPolicy, PubSubComponent, SubscriptionSpec};

/// How soon an idle partition tries again to commit an offset whose commit failed.
const COMMIT_RETRY: Duration = Duration::from_secs(1);

/// The least time between two commits of a busy partition. Sarama, under daprd, marks each
/// processed offset and commits the marks once a second (`Consumer.Offsets.AutoCommit`); a
/// commit per batch instead cost devhost one write per message and consumer group whenever
/// batches were small, which is most of the time. A partition that goes idle commits at once,
/// so its lag reads zero as soon as it has caught up.
const COMMIT_INTERVAL: Duration = Duration::from_millis(100);

/// The most messages one read of a partition returns.
const FETCH_LIMIT: u32 = 64;

/// A subscription of one app, ready to run.
#[derive(Debug)]
pub struct Subscriber {
    host: Arc<Host>,
    app: Arc<App>,
    spec: SubscriptionSpec,
    rules: Vec<(Rule, String)>,
    group: String,
    component: PubSubComponent,
    policy: InboundPolicy,
}

#[derive(Debug, thiserror::Error)]
enum LoopError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Task(#[from] TaskFailed),
}

/// How one delivery attempt ended.
#[derive(Debug)]
enum Answer {
    Success,
    Drop(String),
    Retry { reason: String, status: Option<u16> },
}

/// How the processing of one message ended.
enum Settled {
    Done,
    /// Failed with nowhere to go: the component retry decides.
    Failed(String),
    Cancelled,
}

impl Subscriber {
    /// Checks the subscription for `app` and prepares it (routing rules compiled here, so a bad
    /// rule fails startup).
    pub fn new(host: Arc<Host>, app: Arc<App>, spec: SubscriptionSpec) -> anyhow::Result<Self> {
        let component = host.pubsub_for(&app.app_id, &spec.pubsub).cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: app {:?} subscribes to pub/sub {:?}, which is not a pub/sub component loaded for it",
                spec.source,
                app.app_id,
                spec.pubsub
            )
        })?;
        let rules = spec.compile_rules()?;
        let group = component.consumer_group.clone();
        let policy = host.resources.inbound_policy(&app.app_id, &spec.pubsub);
        Ok(Self { host, app, spec, rules, group, component, policy })
    }

    pub fn topic(&self) -> &str {
        &self.spec.topic
    }

    /// Spawns one loop per partition.
    pub async fn start(self: Arc<Self>) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
        let id = (self.group.clone(), self.component.cluster.clone(), self.spec.topic.clone());
        {
            let mut consumers = self.host.consumers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((app_id, pubsub)) = consumers.get(&id) {
                anyhow::bail!(
                    "app {:?}: consumer group {:?} already consumes topic {:?} of cluster {:?} (app {app_id:?}, \
                     pub/sub {pubsub:?}); two subscriptions in one group would share its partitions (competing \
                     consumers), which devhost does not emulate: give each its own group (`consumerGroup: \
                     \"{{appID}}\"`, or with `{{uuid}}` for one per start)",
                    self.app.app_id,
                    self.group,
                    self.spec.topic,
                    self.component.cluster
                );
            }
            consumers.insert(id, (self.app.app_id.clone(), self.spec.pubsub.clone()));
        }
        let (cluster, topic, default) =
            (self.component.cluster.clone(), self.spec.topic.clone(), self.host.options.partitions);
        let n = self
            .host
            .db
            .call(move |inner| -> Result<u32, LoopError> {
                Ok(pubsub::partitions(&inner.conn, &mut inner.cache, &cluster, &topic, default)?)
            })
            .await?;
        info!(
            app_id = %self.app.app_id, pubsub = %self.spec.pubsub, cluster = %self.component.cluster,
            topic = %self.spec.topic, group = %self.group, partitions = n,
            dead_letter = ?self.spec.dead_letter_topic, retry = ?self.policy.retry, "subscribed"
        );
        Ok((0..n).map(|p| tokio::spawn(self.clone().run_partition(p))).collect())
    }

    async fn run_partition(self: Arc<Self>, partition: u32) {
        let shutdown = self.host.shutdown.clone();
        let mut wake = self.host.notifier.subscribe(&self.component.cluster, &self.spec.topic, partition);
        let mut next = loop {
            let (group, cluster, topic, initial) = (
                self.group.clone(),
                self.component.cluster.clone(),
                self.spec.topic.clone(),
                self.component.initial_offset,
            );
            let r = self
                .host
                .db
                .call(move |inner| -> Result<i64, LoopError> {
                    Ok(pubsub::resume_offset(
                        &inner.conn,
                        &mut inner.cache,
                        &group,
                        &cluster,
                        &topic,
                        partition,
                        initial,
                    )?)
                })
                .await;
            match r {
                Ok(offset) => break offset,
                Err(e) => {
                    error!(error = %e, "reading the consumer offset failed; retrying");
                    if sleep_or_cancel(&shutdown, Duration::from_secs(1)).await {
                        return;
                    }
                }
            }
        };
        // What the database holds for this partition; behind `next` while a commit failed or
        // waits for COMMIT_INTERVAL.
        let mut committed = next;
        let mut last_commit = tokio::time::Instant::now();
        let mut commit_failed = false;
        // The last read returned everything up to the end of the partition and nothing was
        // appended since: the loop can idle without reading again. An empty read after every
        // batch was half of devhost's reads under load.
        let mut caught_up = false;
        // A bulk subscription's messages read but not yet flushed, and when the first came.
        let mut pending: Vec<Stored> = Vec::new();
        let mut pending_since = tokio::time::Instant::now();
        loop {
            let batch = if std::mem::take(&mut caught_up) {
                Ok(Vec::new())
            } else {
                wake.borrow_and_update();
                let (cluster, topic) = (self.component.cluster.clone(), self.spec.topic.clone());
                let from = pending.last().map_or(next, |m| m.offset + 1);
                self.host
                    .db
                    .read(move |conn| -> Result<Vec<Stored>, LoopError> {
                        Ok(pubsub::fetch(conn, &cluster, &topic, partition, from, FETCH_LIMIT)?)
                    })
                    .await
            };
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    error!(error = %e, "reading messages failed; retrying");
                    if sleep_or_cancel(&shutdown, Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            if batch.is_empty()
                && let Some(bulk) = &self.spec.bulk
                && !pending.is_empty()
            {
                // A bulk batch still filling: flushed `maxAwaitDurationMs` after its first
                // message, or earlier once it is full.
                let due = pending_since + bulk.max_await;
                if tokio::time::Instant::now() < due {
                    tokio::select! {
                        r = wake.changed() => if r.is_err() { return },
                        () = shutdown.cancelled() => {
                            if committed != next {
                                self.commit(partition, next).await;
                            }
                            return;
                        }
                        () = tokio::time::sleep_until(due) => {}
                    }
                    continue;
                }
                let Some(after) =
                    self.flush_bulk_or_stop(partition, &std::mem::take(&mut pending), next, committed).await
                else {
                    return;
                };
                next = after;
                continue;
            }
            if batch.is_empty() {
                // An idle partition commits what it processed once COMMIT_INTERVAL has passed
                // since its last commit (a failed one is tried again after COMMIT_RETRY): else a
                // partition that goes quiet keeps its lag (and KEDA its replicas) until the
                // next message.
                let wait = if commit_failed { COMMIT_RETRY } else { COMMIT_INTERVAL };
                if committed != next && last_commit.elapsed() >= wait {
                    commit_failed = !self.commit(partition, next).await;
                    if !commit_failed {
                        committed = next;
                    }
                    last_commit = tokio::time::Instant::now();
                }
                let wait = if commit_failed { COMMIT_RETRY } else { COMMIT_INTERVAL };
                tokio::select! {
                    r = wake.changed() => if r.is_err() { return },
                    () = shutdown.cancelled() => {
                        // As a consumer commits its marks when it closes: a restart then
                        // redelivers nothing this loop has processed.
                        if committed != next {
                            self.commit(partition, next).await;
                        }
                        return;
                    }
                    () = tokio::time::sleep_until(last_commit + wait), if committed != next => {}
                }
                continue;
            }
            // The offset is committed at most every COMMIT_INTERVAL while busy, and as soon as
            // the partition is idle, as a Kafka consumer commits marked offsets periodically
            // rather than per message: a crash only redelivers what was processed since
            // (at-least-once either way).
            // Appends notify after they commit, so one the read did not see has changed `wake`.
            let read_to_end = batch.len() < FETCH_LIMIT as usize;
            for message in batch {
                if let Some(bulk) = &self.spec.bulk {
                    if pending.is_empty() {
                        pending_since = tokio::time::Instant::now();
                    }
                    pending.push(message);
                    if pending.len() >= bulk.max_messages as usize {
                        let flushed = std::mem::take(&mut pending);
                        let Some(after) = self.flush_bulk_or_stop(partition, &flushed, next, committed).await else {
                            return;
                        };
                        next = after;
                    }
                    continue;
                }
                let rounds = if self.host.options.duplicate_delivery { 2 } else { 1 };
                for _ in 0..rounds {
                    if !self.process(&message).await {
                        if next != committed {
                            self.commit(partition, next).await;
                        }
                        return;
                    }
                }
                next = message.offset + 1;
            }
            if let Some(bulk) = &self.spec.bulk
                && !pending.is_empty()
                && pending_since.elapsed() >= bulk.max_await
            {
                let flushed = std::mem::take(&mut pending);
                if !self.flush_bulk(&flushed).await {
                    if next != committed {
                        self.commit(partition, next).await;
                    }
                    return;
                }
                next = flushed.last().map_or(next, |m| m.offset + 1);
            }
            if last_commit.elapsed() >= COMMIT_INTERVAL {
                commit_failed = !self.commit(partition, next).await;
                if !commit_failed {
                    committed = next;
                }
                last_commit = tokio::time::Instant::now();
            }
            caught_up = read_to_end && !wake.has_changed().unwrap_or(true);
        }
    }

    /// Delivers a bulk batch (twice with `duplicate_delivery`); `false`: shutting down.
    async fn flush_bulk(&self, batch: &[Stored]) -> bool {
        let rounds = if self.host.options.duplicate_delivery { 2 } else { 1 };
        for _ in 0..rounds {
            if !self.process_bulk(batch).await {
                return false;
            }
        }
        true
    }

    /// Delivers a full or timed-out bulk batch: the offset after it, or `None` when shutting
    /// down, once what was processed before the batch is committed (as a consumer commits its
    /// marks when it closes).
    async fn flush_bulk_or_stop(&self, partition: u32, batch: &[Stored], next: i64, committed: i64) -> Option<i64> {
        if self.flush_bulk(batch).await {
            return Some(batch.last().map_or(next, |m| m.offset + 1));
        }
        if next != committed {
            self.commit(partition, next).await;
        }
        None
    }

    /// Commits the group's position on `partition`; `false` if the database refused it.
    async fn commit(&self, partition: u32, next: i64) -> bool {
        let (group, cluster, topic) = (self.group.clone(), self.component.cluster.clone(), self.spec.topic.clone());
        let r = self
            .host
            .db
            .call(move |inner| -> Result<(), LoopError> {
                Ok(pubsub::commit(&inner.conn, &group, &cluster, &topic, partition, next)?)
            })
            .await;
        if let Err(e) = &r {
            // At-least-once: an uncommitted offset only means a redelivery after a restart; the
            // loop commits again with its next batch, or after COMMIT_RETRY when idle.
            warn!(
                app_id = %self.app.app_id, topic = %self.spec.topic, partition, next_offset = next, error = %e,
                "committing the consumer offset failed; trying again"
            );
        }
        r.is_ok()
    }

    /// Processes one message until it is settled. `false`: devhost is shutting down (the message
    /// stays unsettled and is delivered again after a restart).
    async fn process(&self, message: &Stored) -> bool {
        let mut component_retries = 0i64;
        loop {
            match self.settle(message).await {
                Settled::Done => return true,
                Settled::Cancelled => return false,
                Settled::Failed(reason) => {
                    if let Some(done) =
                        self.after_failure(&mut component_retries, message.partition, message.offset, &reason).await
                    {
                        return done;
                    }
                }
            }
        }
    }

    /// Kafka's consume retry after a failure with nowhere to go: `Some(true)` the message (or
    /// batch) is skipped, `Some(false)` devhost is shutting down, `None` try again (after the
    /// component's back-off).
    async fn after_failure(
        &self,
        component_retries: &mut i64,
        partition: u32,
        offset: i64,
        reason: &str,
    ) -> Option<bool> {
        if !self.component.consume_retry_enabled {
            error!(
                app_id = %self.app.app_id, topic = %self.spec.topic, partition, offset, %reason,
                "delivery failed and consumeRetryEnabled is false: the message is skipped (Kafka marks a later offset)"
            );
            return Some(true);
        }
        if self.component.backoff_max_retries >= 0 && *component_retries >= self.component.backoff_max_retries {
            error!(
                app_id = %self.app.app_id, topic = %self.spec.topic, partition, offset, %reason,
                "delivery failed and backOffMaxRetries is exhausted: skipped"
            );
            return Some(true);
        }
        *component_retries += 1;
        error!(
            app_id = %self.app.app_id, topic = %self.spec.topic, partition, offset, %reason, retry = *component_retries,
            backoff_ms = self.component.backoff.as_millis() as u64,
            "DELIVERY FAILED AND THE SUBSCRIPTION HAS NO DEAD-LETTER TOPIC: Kafka's consume retry redelivers \
             this message forever and BLOCKS ITS PARTITION; set deadLetterTopic and a bounded inbound retry policy"
        );
        if sleep_or_cancel(&self.host.shutdown, self.component.backoff).await {
            return Some(false);
        }
        None
    }

    async fn dead_letter(&self, message: &Stored, why: &str) -> Settled {
        let Some(dlq) = &self.spec.dead_letter_topic else {
            return Settled::Done;
        };
        // daprd publishes dead letters through its publisher, which applies the component's
        // publishingScopes like any publish (dapr v1.18.2 subscription.go `sendToDeadLetter`):
        // a consumer not granted its dead-letter topic cannot settle a message that way.
        if !self.component.allowed(&self.app.app_id, dlq, true) {
            return Settled::Failed(format!(
                "publishing to the dead-letter topic {dlq} failed: topic {dlq} is not allowed for app id {}",
                self.app.app_id
            ));
        }
        let letter = NewMessage {
            cluster: self.component.cluster.clone(),
            topic: dlq.clone(),
            key: message.key.clone(),
            partition: None,
            headers: message.headers.clone(),
            content_type: message.content_type.clone(),
            body: message.body.clone(),
        };
        match self.host.publish(vec![letter]).await {
            Ok(()) => {
                warn!(
                    app_id = %self.app.app_id, topic = %self.spec.topic, partition = message.partition,
                    offset = message.offset, dead_letter_topic = %dlq, reason = why, "message sent to the dead-letter topic"
                );
                Settled::Done
            }
            Err(e) => Settled::Failed(format!("publishing to the dead-letter topic {dlq} failed: {e}")),
        }
    }

    /// Dead-letters if there is a topic for it, else hands the failure to the component retry.
    async fn dead_letter_or_fail(&self, message: &Stored, why: String) -> Settled {
        if self.spec.dead_letter_topic.is_some() { self.dead_letter(message, &why).await } else { Settled::Failed(why) }
    }

    async fn settle(&self, message: &Stored) -> Settled {
        let (event, body) = if self.spec.raw_payload {
            let ce = cloudevent::from_raw_payload(&message.body, &self.spec.topic, &self.spec.pubsub);
            let bytes = serde_json::to_vec(&ce).unwrap_or_default();
            (ce, bytes)
        } else {
            match serde_json::from_slice::<Value>(&message.body) {
                Ok(v @ Value::Object(_)) => (v, message.body.clone()),
                _ => {
                    let why = "error deserializing cloud event: the message is not a JSON CloudEvent".to_owned();
                    return self.dead_letter_or_fail(message, why).await;
                }
            }
        };
        if cloudevent::has_expired(&event) {
            warn!(app_id = %self.app.app_id, id = ?event.get("id"), "dropping expired pub/sub event");
            if self.spec.dead_letter_topic.is_some() {
                return self.dead_letter(message, "expired").await;
            }
            return Settled::Done;
        }
        let path = match self.route(&event) {
            Ok(Some(path)) => path,
            Ok(None) => {
                info!(app_id = %self.app.app_id, topic = %self.spec.topic, id = ?event.get("id"), "no matching route; skipping");
                if self.spec.dead_letter_topic.is_some() {
                    return self.dead_letter(message, "no matching route").await;
                }
                return Settled::Done;
            }
            Err(e) => {
                let why = format!("error finding matching route: {e}");
                return self.dead_letter_or_fail(message, why).await;
            }
        };
        let mut retry = 0u32;
        loop {
            // While a health check finds the app unhealthy, daprd's subscriptions are stopped.
            if !self.app.wait_ready(&self.host.shutdown).await {
                return Settled::Cancelled;
            }
            let answer = tokio::select! {
                a = self.deliver(message, &event, &body, &path) => a,
                () = self.host.shutdown.cancelled() => return Settled::Cancelled,
            };
            match answer {
                Answer::Success => return Settled::Done,
                Answer::Drop(why) => {
                    warn!(app_id = %self.app.app_id, %path, offset = message.offset, reason = %why, "app dropped the message");
                    if self.spec.dead_letter_topic.is_some() {
                        return self.dead_letter(message, &why).await;
                    }
                    return Settled::Done;
                }
                Answer::Retry { reason, status } => {
                    let again = self.policy.retry.as_ref().filter(|p| p.matches(status) && p.allows(retry));
                    let Some(policy) = again else {
                        return self.dead_letter_or_fail(message, reason).await;
                    };
                    let pause = policy.delay(retry);
                    retry += 1;
                    warn!(
                        app_id = %self.app.app_id, %path, offset = message.offset, %reason, retry,
                        pause_ms = pause.as_millis() as u64, "delivery failed; retrying under the inbound retry policy"
                    );
                    if sleep_or_cancel(&self.host.shutdown, pause).await {
                        return Settled::Cancelled;
                    }
                }
            }
        }
    }

    /// dapr/dapr `findMatchingRoute`: rules in order, the first error stops the evaluation.
    fn route(&self, event: &Value) -> Result<Option<String>, String> {
        for (expr, path) in &self.rules {
            if expr.matches(event)? {
                return Ok(Some(path.clone()));
            }
        }
        Ok(self.spec.default_path.clone())
    }

    async fn deliver(&self, message: &Stored, event: &Value, body: &[u8], path: &str) -> Answer {
        let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
        let url = format!("{}{path}", self.app.base_url());
        let mut request = self
            .host
            .http
            .post(&url)
            .header(http::header::CONTENT_TYPE, cloudevent::CLOUDEVENTS_CONTENT_TYPE)
            .timeout(self.policy.timeout.unwrap_or(Duration::from_secs(300)))
            .body(body.to_vec());
        for (name, value) in &message.headers {
            let trace = name.eq_ignore_ascii_case("traceparent") || name.eq_ignore_ascii_case("tracestate");
            if name.starts_with("__") || name.eq_ignore_ascii_case("content-type") || trace {
                continue;
            }
            if let (Ok(n), Ok(v)) =
                (http::HeaderName::try_from(name.as_str()), http::HeaderValue::try_from(value.as_str()))
            {
                request = request.header(n, v);
            }
        }
        request = request
            .header("__topic", self.spec.topic.as_str())
            .header("__partition", message.partition.to_string())
            .header("__offset", message.offset.to_string())
            .header("__timestamp", message.published_at.to_string())
            .header("pubsubName", self.spec.pubsub.as_str());
        if let Some(key) = &message.key
            && let Ok(v) = http::HeaderValue::try_from(key.as_str())
        {
            request = request.header("__key", v);
        }
        // The event's trace context, or the all-zero one; never `tracestate` (daprd 1.18
        // without a tracing configuration, as the conformance tests observe it).
        request = request.header("traceparent", cloudevent::delivery_traceparent(event));
        if let Some(token) = &self.host.options.app_token {
            request = request.header("dapr-api-token", token);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Answer::Retry { reason: format!("app unreachable at {url}: {e}"), status: None },
        };
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Answer::Drop(format!("app answered 404 for {path} (non-retriable)"));
        }
        if !status.is_success() {
            return Answer::Retry {
                reason: format!("app answered HTTP {}", status.as_u16()),
                status: Some(status.as_u16()),
            };
        }
        let bytes = response.bytes().await.unwrap_or_default();
        let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(&bytes) else {
            return Answer::Success;
        };
        // Case-sensitive, as daprd's `switch appResponse.Status` (postman/http/http.go:131-150):
        // `"drop"` is an unknown status, retried.
        match go_field(&answer, "status").and_then(Value::as_str) {
            None | Some("") | Some("SUCCESS") => Answer::Success,
            Some("DROP") => Answer::Drop("app answered DROP".to_owned()),
            Some("RETRY") => Answer::Retry { reason: "app answered RETRY".to_owned(), status: None },
            Some(other) => Answer::Retry { reason: format!("app answered unknown status {other:?}"), status: None },
        }
    }
}

/// `true` if devhost is shutting down.
async fn sleep_or_cancel(shutdown: &tokio_util::sync::CancellationToken, pause: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(pause) => false,
        () = shutdown.cancelled() => true,
    }
}

/// A field of a JSON object as Go's `encoding/json` finds it for a struct field tagged `name`: the
/// exact key, else one that differs only in case. The *values* daprd compares stay case-sensitive.
pub(crate) fn go_field<'a>(object: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| object.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}
