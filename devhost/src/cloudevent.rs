//! CloudEvents 1.0 envelopes as Dapr builds them.
//!
//! - publish: dapr/dapr `pkg/runtime/pubsub/cloudevents.go` `NewCloudEvent` and
//!   components-contrib `pubsub/envelope.go` `NewCloudEventsEnvelope` / `FromCloudEvent` /
//!   `ApplyMetadata`;
//! - raw-payload subscriptions: `FromRawPayload`;
//! - trace context: the sidecar continues the caller's `traceparent` (same trace id, new span id)
//!   or starts a new trace (dapr/dapr `pkg/api/http/http.go` `onPublish`).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value, json};

pub const DEFAULT_TYPE: &str = "com.dapr.event.sent";
pub const DEFAULT_CONTENT_TYPE: &str = "text/plain";
pub const CLOUDEVENTS_CONTENT_TYPE: &str = "application/cloudevents+json";

/// The media type without parameters, lower-cased.
fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// components-contrib `contenttype.IsJSONContentType`: `application/json` or `+json`.
pub fn is_json(content_type: &str) -> bool {
    let m = media_type(content_type);
    m == "application/json" || m.ends_with("+json")
}

pub fn is_cloudevent(content_type: &str) -> bool {
    media_type(content_type) == CLOUDEVENTS_CONTENT_TYPE
}

/// components-contrib `contenttype.IsBinaryContentType`.
pub fn is_binary(content_type: &str) -> bool {
    media_type(content_type) == "application/octet-stream"
}

/// A W3C trace context: continue `incoming` (new span, same trace) or start a new trace.
pub fn child_traceparent(incoming: Option<&str>) -> String {
    let span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    if let Some(parent) = incoming {
        let parts: Vec<&str> = parent.trim().split('-').collect();
        if parts.len() == 4 && parts[1].len() == 32 && parts[1].chars().all(|c| c.is_ascii_hexdigit()) {
            return format!("00-{}-{span}-{}", parts[1], parts[3]);
        }
    }
    format!("00-{}-{span}-01", uuid::Uuid::new_v4().simple())
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Everything the sidecar knows about one publish call.
#[derive(Debug, Clone)]
pub struct Publish<'a> {
    pub source: &'a str,
    pub pubsub: &'a str,
    pub topic: &'a str,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// `metadata.*` query parameters, prefix removed.
    pub metadata: &'a BTreeMap<String, String>,
    pub traceparent: String,
    pub tracestate: String,
}

/// Builds the CloudEvent a publish call produces. `Err` is a 400 (`application/cloudevents+json`
/// that is not a JSON object, bad `ttlInSeconds`).
pub fn wrap(p: &Publish<'_>) -> Result<Value, String> {
    let content_type = p.content_type.filter(|c| !c.is_empty());
    let mut ce = if let Some(ct) = content_type.filter(|c| is_cloudevent(c)) {
        let Ok(Value::Object(mut m)) = serde_json::from_slice::<Value>(p.body) else {
            return Err("the body is not a CloudEvent (a JSON object) although the content type is \
                        application/cloudevents+json"
                .to_owned());
        };
        let _ = ct;
        // FromCloudEvent: trace and routing fields are always (re)set, the rest kept; missing
        // required attributes get Dapr's defaults.
        m.insert("traceid".into(), json!(p.traceparent));
        m.insert("traceparent".into(), json!(p.traceparent));
        m.insert("tracestate".into(), json!(p.tracestate));
        m.insert("topic".into(), json!(p.topic));
        m.insert("pubsubname".into(), json!(p.pubsub));
        m.entry("id").or_insert_with(|| json!(uuid::Uuid::new_v4().to_string()));
        m.entry("source").or_insert_with(|| json!(p.source));
        m.entry("type").or_insert_with(|| json!(DEFAULT_TYPE));
        m.entry("specversion").or_insert_with(|| json!("1.0"));
        m.entry("time").or_insert_with(|| json!(now_rfc3339()));
        m
    } else {
        let meta = |key: &str| p.metadata.get(&format!("cloudevent.{key}")).filter(|v| !v.is_empty()).cloned();
        let content_type = content_type.unwrap_or(DEFAULT_CONTENT_TYPE).to_owned();
        let traceparent = meta("traceparent").or_else(|| meta("traceid")).unwrap_or_else(|| p.traceparent.clone());
        let mut m = Map::new();
        m.insert("id".into(), json!(meta("id").unwrap_or_else(|| uuid::Uuid::new_v4().to_string())));
        m.insert("source".into(), json!(meta("source").unwrap_or_else(|| p.source.to_owned())));
        m.insert("type".into(), json!(meta("type").unwrap_or_else(|| DEFAULT_TYPE.to_owned())));
        m.insert("specversion".into(), json!("1.0"));
        m.insert("datacontenttype".into(), json!(content_type));
        let (field, data) = encode_data(&content_type, p.body);
        m.insert(field.into(), data);
        m.insert("topic".into(), json!(p.topic));
        m.insert("pubsubname".into(), json!(p.pubsub));
        m.insert("traceid".into(), json!(traceparent));
        m.insert("traceparent".into(), json!(traceparent));
        m.insert("tracestate".into(), json!(meta("tracestate").unwrap_or_else(|| p.tracestate.clone())));
        m.insert("time".into(), json!(now_rfc3339()));
        if let Some(subject) = meta("subject") {
            m.insert("subject".into(), json!(subject));
        }
        m
    };
    if let Some(ttl) = p.metadata.get("ttlInSeconds") {
        let secs: i64 = ttl.trim().parse().map_err(|_| format!("metadata.ttlInSeconds {ttl:?} is not an integer"))?;
        let expiration = chrono::Utc::now() + chrono::Duration::seconds(secs);
        ce.insert("expiration".into(), json!(expiration.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    }
    Ok(Value::Object(ce))
}

/// `data` by content type: JSON kept as JSON (a string if it does not parse), binary as
/// `data_base64`, anything else as a string.
pub fn encode_data(content_type: &str, body: &[u8]) -> (&'static str, Value) {
    if is_json(content_type) {
        match serde_json::from_slice::<Value>(body) {
            Ok(v) => ("data", v),
            Err(_) => ("data", json!(String::from_utf8_lossy(body))),
        }
    } else if is_binary(content_type) {
        ("data_base64", json!(base64::engine::general_purpose::STANDARD.encode(body)))
    } else {
        ("data", json!(String::from_utf8_lossy(body)))
    }
}

/// The envelope a `rawPayload` subscriber gets: a new random id on every delivery, the bytes as
/// `data_base64` (components-contrib `FromRawPayload`).
pub fn from_raw_payload(body: &[u8], topic: &str, pubsub: &str) -> Value {
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "specversion": "1.0",
        "datacontenttype": "application/octet-stream",
        "source": "Dapr",
        "type": DEFAULT_TYPE,
        "topic": topic,
        "pubsubname": pubsub,
        "data_base64": base64::engine::general_purpose::STANDARD.encode(body),
    })
}

/// components-contrib `HasExpired`: an `expiration` in the past.
pub fn has_expired(ce: &Value) -> bool {
    ce.get("expiration")
        .and_then(Value::as_str)
        .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
        .is_some_and(|e| e < chrono::Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_continues_the_trace() {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let child = child_traceparent(Some(parent));
        assert!(child.starts_with("00-0af7651916cd43dd8448eb211c80319c-"));
        assert_ne!(child, parent);
        assert_eq!(child_traceparent(Some("garbage")).len(), 55);
    }
}
