//! Bulk subscriptions (`bulkSubscribe.enabled`): the messages of a partition delivered in
//! batches, as daprd with `pubsub.kafka` does.
//!
//! Batches: `pubsub.kafka` collects up to `maxMessagesCount` messages of one partition claim
//! and flushes them when that many arrived or when its `maxAwaitDurationMs` ticker fires
//! (components-contrib v1.18.3 `common/component/kafka/consumer.go:36-68`). devhost flushes
//! when `maxMessagesCount` messages are pending or `maxAwaitDurationMs` after the first pending
//! one arrived (Kafka's ticker runs from the claim's start, so a lone message waits anywhere up
//! to that long there). Entry ids are the message's index in its batch, `"0"`, `"1"`, ...
//! (`doBulkCallback`, consumer.go:149-184).
//!
//! Per batch, as dapr/dapr v1.18.2 `pkg/runtime/subscription/bulksubscription.go`
//! `bulkSubscribeTopic` does:
//! 1. each entry is read as a CloudEvent (a `rawPayload` subscription: its bytes, base64, with
//!    the raw bytes *as a string* given to the routing rules as `event`); one that is not a JSON
//!    object fails; an expired one is dropped (dead-lettered if configured); its route is found
//!    by the rules ([`crate::cel`]); an evaluation error fails it; no matching route drops it
//!    (dead-lettered if configured);
//! 2. the entries of each route go to the app in one `POST <route>` (`Content-Type:
//!    application/json`, `pubsubName` header, the app token) with the envelope
//!    `{"id", "type": "com.dapr.event.sent.bulk", "topic", "pubsubname", "metadata":
//!    {"pubsubName"}, "entries": [{"entryId", "event", "metadata", "contentType"}]}`
//!    (`pkg/runtime/pubsub/bulksubscribe_events.go`, `todo/helpers.go:40-90`); `event` is the
//!    CloudEvent object, `metadata` the Kafka metadata of the message (`__key`, `__topic`,
//!    `__partition`, `__offset`, `__timestamp`, record headers);
//! 3. the answer (`postman/http/http.go:177-395` `DeliverBulk`): 2xx with
//!    `{"statuses": [{"entryId", "status"}]}`, case-sensitive: `SUCCESS` done; `DROP` done and
//!    dead-lettered at once if configured; `RETRY`, `""`, an unknown status (`"drop"` too) or no
//!    status for an entry: failed; a 2xx body that is not such JSON (an empty body too) fails
//!    every entry; 404 settles every entry without a dead letter; any other status or no
//!    connection fails every entry;
//! 4. failed entries are posted again, alone, under the inbound retry policy
//!    (`bulkresiliency.go`); those still failed then go to the dead-letter topic
//!    (`sendBulkToDLQIfConfigured`); without one the whole batch is handed to Kafka's consume
//!    retry and delivered again, its successful entries included.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use tracing::warn;

use super::{Settled, Subscriber, go_field, sleep_or_cancel};
use crate::cloudevent;
use crate::pubsub::Stored;

/// `pubsub.DefaultBulkEventType` (components-contrib `pubsub/envelope.go:33`).
const BULK_EVENT_TYPE: &str = "com.dapr.event.sent.bulk";

/// One entry of a batch on its way to the app.
struct Entry {
    id: String,
    /// The `entries[]` item sent to the app.
    item: Value,
}

/// What one bulk request settled: per entry (index in the batch), `None` done, `Some(why)` failed.
type Outcome = Vec<(usize, Option<String>)>;

impl Subscriber {
    /// Delivers one batch until it is settled; `false`: devhost is shutting down.
    pub(super) async fn process_bulk(&self, batch: &[Stored]) -> bool {
        let mut component_retries = 0i64;
        loop {
            match self.settle_bulk(batch).await {
                Settled::Done => return true,
                Settled::Cancelled => return false,
                Settled::Failed(reason) => {
                    let first = batch.first().map_or((0, 0), |m| (m.partition, m.offset));
                    if let Some(done) = self.after_failure(&mut component_retries, first.0, first.1, &reason).await {
                        return done;
                    }
                }
            }
        }
    }

    async fn settle_bulk(&self, batch: &[Stored]) -> Settled {
        let mut failed: BTreeMap<usize, String> = BTreeMap::new();
        // Routes in the order their first entry came (daprd walks a Go map: any order).
        let mut routes: Vec<(String, Vec<usize>)> = Vec::new();
        let mut entries: Vec<Option<Entry>> = Vec::with_capacity(batch.len());
        for (index, message) in batch.iter().enumerate() {
            entries.push(None);
            let id = index.to_string();
            let (event, for_rules, content_type) = if self.spec.raw_payload {
                let text = Value::String(String::from_utf8_lossy(&message.body).into_owned());
                let data = base64::engine::general_purpose::STANDARD.encode(&message.body);
                (Value::String(data), text, "application/octet-stream")
            } else {
                match serde_json::from_slice::<Value>(&message.body) {
                    Ok(v @ Value::Object(_)) => (v.clone(), v, cloudevent::CLOUDEVENTS_CONTENT_TYPE),
                    _ => {
                        failed.insert(index, "error deserializing one of the messages in bulk cloud event".into());
                        continue;
                    }
                }
            };
            if !self.spec.raw_payload && cloudevent::has_expired(&event) {
                warn!(app_id = %self.app.app_id, id = ?event.get("id"), "dropping expired pub/sub event");
                if self.spec.dead_letter_topic.is_some() {
                    let _ = self.dead_letter(message, "expired").await;
                }
                continue;
            }
            let path = match self.route(&for_rules) {
                Ok(Some(path)) => path,
                Ok(None) => {
                    warn!(app_id = %self.app.app_id, topic = %self.spec.topic, entry_id = %id, "no matching route for a bulk entry; skipping");
                    if self.spec.dead_letter_topic.is_some() {
                        let _ = self.dead_letter(message, "no matching route").await;
                    }
                    continue;
                }
                Err(e) => {
                    failed.insert(index, format!("error finding matching route: {e}"));
                    continue;
                }
            };
            let item = json!({
                "entryId": id,
                "event": event,
                "metadata": entry_metadata(message, &self.spec.topic),
                "contentType": content_type,
            });
            entries[index] = Some(Entry { id, item });
            match routes.iter_mut().find(|(p, _)| *p == path) {
                Some((_, indexes)) => indexes.push(index),
                None => routes.push((path, vec![index])),
            }
        }
        for (path, indexes) in &routes {
            match self.invoke_bulk(batch, &entries, path, indexes).await {
                None => return Settled::Cancelled,
                Some(outcome) => {
                    for (index, error) in outcome {
                        if let Some(why) = error {
                            failed.insert(index, why);
                        }
                    }
                }
            }
        }
        if failed.is_empty() {
            return Settled::Done;
        }
        let reason = failed.values().next().cloned().unwrap_or_default();
        if self.spec.dead_letter_topic.is_none() {
            return Settled::Failed(format!("{} bulk entries failed: {reason}", failed.len()));
        }
        for (index, why) in &failed {
            if let Some(message) = batch.get(*index)
                && let Settled::Failed(e) = self.dead_letter(message, why).await
            {
                return Settled::Failed(e);
            }
        }
        Settled::Done
    }

    /// The entries of one route, posted until they are settled or the inbound retry policy
    /// gives up (`applyBulkSubscribeResiliency`: each retry posts only the entries still
    /// failed). `None`: shutting down.
    async fn invoke_bulk(
        &self,
        batch: &[Stored],
        entries: &[Option<Entry>],
        path: &str,
        indexes: &[usize],
    ) -> Option<Outcome> {
        let mut pending: Vec<usize> = indexes.to_vec();
        let mut outcome: BTreeMap<usize, Option<String>> = BTreeMap::new();
        let mut retry = 0u32;
        loop {
            if !self.app.wait_ready(&self.host.shutdown).await {
                return None;
            }
            let sent: Vec<(usize, &Entry)> =
                pending.iter().filter_map(|i| entries.get(*i).and_then(Option::as_ref).map(|e| (*i, e))).collect();
            let answer = tokio::select! {
                a = self.post_bulk(batch, path, &sent) => a,
                () = self.host.shutdown.cancelled() => return None,
            };
            pending.clear();
            for (index, error) in answer {
                if error.is_some() {
                    pending.push(index);
                }
                outcome.insert(index, error);
            }
            if pending.is_empty() {
                break;
            }
            // daprd's bulk errors carry no HTTP status for the policy to match.
            let Some(policy) = self.policy.retry.as_ref().filter(|p| p.matches(None) && p.allows(retry)) else {
                break;
            };
            let pause = policy.delay(retry);
            retry += 1;
            warn!(
                app_id = %self.app.app_id, %path, failed = pending.len(), retry, pause_ms = pause.as_millis() as u64,
                "bulk entries failed; retrying them under the inbound retry policy"
            );
            if sleep_or_cancel(&self.host.shutdown, pause).await {
                return None;
            }
        }
        Some(outcome.into_iter().collect())
    }

    /// One bulk request; the result of every entry sent.
    async fn post_bulk(&self, batch: &[Stored], path: &str, sent: &[(usize, &Entry)]) -> Outcome {
        let all = |why: Option<String>| sent.iter().map(|(i, _)| (*i, why.clone())).collect::<Outcome>();
        let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
        let url = format!("{}{path}", self.app.base_url());
        let envelope = json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "type": BULK_EVENT_TYPE,
            "topic": self.spec.topic,
            "pubsubname": self.spec.pubsub,
            "metadata": {"pubsubName": self.spec.pubsub},
            "entries": sent.iter().map(|(_, e)| e.item.clone()).collect::<Vec<_>>(),
        });
        let mut request = self
            .host
            .http
            .post(&url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("pubsubName", self.spec.pubsub.as_str())
            .header("traceparent", ZERO_TRACEPARENT)
            .timeout(self.policy.timeout.unwrap_or(std::time::Duration::from_secs(300)))
            .body(envelope.to_string());
        if let Some(token) = &self.host.options.app_token {
            request = request.header("dapr-api-token", token);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return all(Some(format!("error from app channel while sending pub/sub event to app: {e}"))),
        };
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            warn!(app_id = %self.app.app_id, %path, "app answered 404 to a bulk delivery: its entries are settled (non-retriable)");
            return all(None);
        }
        if !status.is_success() {
            return all(Some(format!(
                "Retriable error returned from app while processing bulk pub/sub event, topic: {}. status code returned: {}",
                self.spec.topic,
                status.as_u16()
            )));
        }
        let bytes = response.bytes().await.unwrap_or_default();
        let statuses = match parse_bulk_answer(&bytes) {
            Ok(s) => s,
            Err(e) => return all(Some(format!("failed unmarshalling app response for bulk subscribe: {e}"))),
        };
        let mut results: BTreeMap<usize, Option<String>> = BTreeMap::new();
        for (entry_id, answer) in statuses {
            let Some((index, _)) = sent.iter().find(|(_, e)| e.id == entry_id) else {
                warn!(app_id = %self.app.app_id, %entry_id, "Invalid entry id received from app while processing pub/sub event");
                continue;
            };
            let error = match answer.as_str() {
                "" | "RETRY" => {
                    Some(format!("RETRY required while processing bulk subscribe event for entry id: {entry_id}"))
                }
                "SUCCESS" => None,
                "DROP" => {
                    warn!(app_id = %self.app.app_id, %entry_id, "DROP status returned from app while processing pub/sub event");
                    if self.spec.dead_letter_topic.is_some()
                        && let Some(message) = batch.get(*index)
                    {
                        let _ = self.dead_letter(message, "app answered DROP").await;
                    }
                    None
                }
                other => Some(format!(
                    "unknown status returned from app while processing bulk subscribe event {entry_id}: {other}"
                )),
            };
            results.insert(*index, error);
        }
        sent.iter()
            .map(|(index, e)| {
                let result = results.remove(index).unwrap_or_else(|| {
                    Some(format!(
                        "response not received, RETRY required while processing bulk subscribe event for entry id: {}",
                        e.id
                    ))
                });
                (*index, result)
            })
            .collect()
    }
}

/// daprd's bulk delivery carries no span of its own without a tracing configuration.
const ZERO_TRACEPARENT: &str = "00-00000000000000000000000000000000-0000000000000000-00";

/// The Kafka metadata of a message as `GetEventMetadata` builds it (components-contrib
/// `common/component/kafka/consumer.go:228-257`): key, offset, topic, timestamp, partition and
/// the record headers.
fn entry_metadata(message: &Stored, topic: &str) -> Value {
    let mut out = Map::new();
    for (name, value) in &message.headers {
        out.insert(name.clone(), Value::String(value.clone()));
    }
    if let Some(key) = &message.key {
        out.insert("__key".into(), json!(key));
    }
    out.insert("__offset".into(), json!(message.offset.to_string()));
    out.insert("__topic".into(), json!(topic));
    out.insert("__timestamp".into(), json!(message.published_at.to_string()));
    out.insert("__partition".into(), json!(message.partition.to_string()));
    Value::Object(out)
}

/// The app's answer as Go decodes it into `AppBulkResponse` (`{"statuses": [{"entryId",
/// "status"}]}`, field names matched without case, values as written). `Err`: what Go's decoder
/// refuses (an empty body, JSON of another shape).
fn parse_bulk_answer(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let object = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Object(o) => o,
        other => return Err(format!("json: cannot unmarshal {} into AppBulkResponse", query_model::json_kind(&other))),
    };
    let items = match go_field(&object, "statuses") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err("json: cannot unmarshal statuses into []AppBulkResponseEntry".into()),
    };
    let mut out = Vec::new();
    for item in items {
        let entry = match item {
            Value::Null => continue,
            Value::Object(o) => o,
            _ => return Err("json: cannot unmarshal a status entry into AppBulkResponseEntry".into()),
        };
        let text = |name: &str| -> Result<String, String> {
            match go_field(entry, name) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(format!("json: cannot unmarshal {name} into string")),
            }
        };
        out.push((text("entryId")?, text("status")?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_answers_as_go_decodes_them() {
        let ok =
            parse_bulk_answer(br#"{"statuses":[{"entryId":"0","status":"SUCCESS"},{"EntryID":"1","Status":"drop"}]}"#);
        assert_eq!(ok, Ok(vec![("0".into(), "SUCCESS".into()), ("1".into(), "drop".into())]));
        assert_eq!(parse_bulk_answer(b"null"), Ok(Vec::new()));
        assert_eq!(parse_bulk_answer(b"{}"), Ok(Vec::new()));
        assert!(parse_bulk_answer(b"").is_err());
        assert!(parse_bulk_answer(b"[]").is_err());
        assert!(parse_bulk_answer(br#"{"statuses":[{"entryId":0}]}"#).is_err());
    }
}
