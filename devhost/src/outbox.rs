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
//! **Difference from Dapr, on purpose:** Dapr runs two phases (publish to an internal topic,
//! commit the state, then a consumer of the internal topic checks the state exists, with
//! `outboxDiscardWhenMissingState`, and publishes). devhost commits the state and the event in
//! one SQLite transaction, so a failed transaction publishes nothing and a committed one always
//! publishes; the observable result is what the two phases aim for.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::cloudevent::{DEFAULT_TYPE, child_traceparent};
use crate::pubsub::NewMessage;
use crate::resources::Outbox;

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

/// The events a transaction publishes. `upserts` excludes projections; `projections` are the
/// projection upserts. `Err(key)`: a projection without a matching upsert.
pub fn events(
    outbox: &Outbox,
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
        ce.insert("topic".into(), json!(outbox.publish_topic));
        ce.insert("pubsubname".into(), json!(outbox.publish_pubsub));
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
            pubsub: outbox.publish_pubsub.clone(),
            topic: outbox.publish_topic.clone(),
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
