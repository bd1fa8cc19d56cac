//! CloudEvents 1.0 envelopes as Dapr builds them.
//!
//! - publish: dapr/dapr `pkg/runtime/pubsub/cloudevents.go` `NewCloudEvent` and
//!   components-contrib `pubsub/envelope.go` `NewCloudEventsEnvelope` / `FromCloudEvent` /
//!   `ApplyMetadata`;
//! - raw-payload subscriptions: `FromRawPayload`;
//! - trace context: as daprd without a tracing configuration (the case of
//!   `dapr-components/local`, which has no `Configuration`): the sidecar starts no span of its
//!   own, so the envelope carries the caller's `traceparent`/`tracestate` unchanged, or empty
//!   strings when the caller sent none (dapr/dapr `pkg/api/http/http.go` `onPublish`,
//!   `diag.TraceIDAndStateFromSpan`; observed on daprd 1.18 by the conformance tests).
//!   [`child_traceparent`] (a span of the sidecar's own) is what a sampled trace would carry.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value, json};

pub const DEFAULT_TYPE: &str = "com.dapr.event.sent";
pub const DEFAULT_CONTENT_TYPE: &str = "text/plain";
pub const CLOUDEVENTS_CONTENT_TYPE: &str = "application/cloudevents+json";

/// components-contrib `contenttype.isContentType` (`contenttype/utils.go`): the content type,
/// lower-cased, is `expected`, or is it up to its first `;` (nothing trimmed).
fn is_content_type(content_type: &str, expected: &str) -> bool {
    let lower = content_type.to_ascii_lowercase();
    lower == expected || lower.split_once(';').is_some_and(|(media, _)| media == expected)
}

/// components-contrib `contenttype.IsJSONContentType`: `application/json` only (a `+json` type
/// such as `application/problem+json` is not JSON to Dapr: its data is kept as a string).
pub fn is_json(content_type: &str) -> bool {
    is_content_type(content_type, "application/json")
}

/// `contenttype.IsCloudEventContentType`.
pub fn is_cloudevent(content_type: &str) -> bool {
    is_content_type(content_type, CLOUDEVENTS_CONTENT_TYPE)
}

/// `contenttype.IsBinaryContentType`, and `application/cloudevents+protobuf`, which
/// `NewCloudEventsEnvelope` encodes as `data_base64` too.
pub fn is_binary(content_type: &str) -> bool {
    is_content_type(content_type, "application/octet-stream")
        || is_content_type(content_type, "application/cloudevents+protobuf")
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

/// A W3C `traceparent` daprd accepts (dapr/dapr `diag.SpanContextFromW3CString`): version 00,
/// a 32-hex trace id and a 16-hex span id, neither all zeros, 2-hex flags.
pub fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.trim().split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    let nonzero = |s: &str| s.chars().any(|c| c != '0');
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && nonzero(parts[1])
        && hex(parts[2], 16)
        && nonzero(parts[2])
        && hex(parts[3], 2)
}

/// The trace context a publish puts into its envelope without tracing: the caller's, unchanged,
/// when its `traceparent` is valid; else none (two empty strings).
pub fn caller_trace(traceparent: Option<&str>, tracestate: Option<&str>) -> (String, String) {
    match traceparent.map(str::trim).filter(|t| is_traceparent(t)) {
        Some(t) => (t.to_owned(), tracestate.unwrap_or_default().trim().to_owned()),
        None => (String::new(), String::new()),
    }
}

/// The all-zero trace context daprd sends where there is none (no tracing configuration).
pub const ZERO_TRACEPARENT: &str = "00-00000000000000000000000000000000-0000000000000000-00";

/// The `traceparent` header of a delivery: the envelope's `traceparent` (else `traceid`) when it
/// is valid, else the all-zero context daprd sends when the event carries no trace.
pub fn delivery_traceparent(event: &Value) -> String {
    let carried = event.get("traceparent").or_else(|| event.get("traceid")).and_then(Value::as_str);
    match carried.map(str::trim).filter(|t| is_traceparent(t)) {
        Some(t) => t.to_owned(),
        None => ZERO_TRACEPARENT.to_owned(),
    }
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

/// Builds the CloudEvent a publish call produces. `Err`: `application/cloudevents+json` that is
/// not a JSON object (daprd's `CloudEventCreation`, a 500).
pub fn wrap(p: &Publish<'_>) -> Result<Value, String> {
    let content_type = p.content_type.filter(|c| !c.is_empty());
    let mut ce = if let Some(ct) = content_type.filter(|c| is_cloudevent(c)) {
        // `unmarshalPrecise` into a map: Go's decoder error.
        let mut m = match serde_json::from_slice::<Value>(p.body) {
            Ok(Value::Object(m)) => m,
            Ok(other) => {
                let kind = query_model::json_kind(&other);
                return Err(format!("json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"));
            }
            Err(e) if p.body.iter().all(u8::is_ascii_whitespace) => return Err(format!("EOF ({e})")),
            Err(e) => return Err(format!("the body is not a CloudEvent: {e}")),
        };
        let _ = ct;
        // FromCloudEvent: the routing fields are always set; the trace fields and the time only
        // when absent; a missing (or null) source, type or specversion gets Dapr's default
        // (source `Dapr`, not the app-id); a missing id stays missing.
        if !m.contains_key("traceid") {
            m.insert("traceid".into(), json!(p.traceparent));
            m.insert("traceparent".into(), json!(p.traceparent));
        }
        m.entry("tracestate").or_insert_with(|| json!(p.tracestate));
        m.entry("time").or_insert_with(|| json!(now_rfc3339()));
        m.insert("topic".into(), json!(p.topic));
        m.insert("pubsubname".into(), json!(p.pubsub));
        for (field, default) in [("source", "Dapr"), ("type", DEFAULT_TYPE), ("specversion", "1.0")] {
            if m.get(field).is_none_or(Value::is_null) {
                m.insert(field.into(), json!(default));
            }
        }
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
    // ApplyMetadata (the Kafka component has no FeatureMessageTTL, so daprd handles the TTL):
    // it overwrites an `expiration` the event carried.
    if let Some(ttl) = message_ttl(p.metadata) {
        let expiration = chrono::Utc::now() + ttl;
        ce.insert("expiration".into(), json!(expiration.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    }
    Ok(Value::Object(ce))
}

/// A publish's message TTL as components-contrib `metadata.TryGetTTL` reads it
/// (`metadata/utils.go`) and `pubsub.ApplyMetadata` uses it (`pubsub/envelope.go`), which
/// ignores its error: the value of `ttl`, else `ttlInSeconds` (keys in any case, dapr/kit
/// `GetMetadataProperty`); a Go duration (`90s`, `1h`, and `0`) is taken as is, a negative
/// one as 0 (an event that expires at once); else an integer number of seconds, which must be
/// above 0. Anything else (`-1`, `abc`) is no TTL: the publish succeeds and the event never
/// expires.
pub fn message_ttl(metadata: &BTreeMap<String, String>) -> Option<chrono::Duration> {
    let lookup = |name: &str| metadata.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    let val = lookup("ttl").or_else(|| lookup("ttlInSeconds")).filter(|v| !v.is_empty())?;
    // Go's time.ParseDuration does not trim.
    if !val.contains(char::is_whitespace) {
        let (negative, unsigned) = match val.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, val.strip_prefix('+').unwrap_or(val)),
        };
        if !unsigned.starts_with(['+', '-'])
            && let Ok(d) = crate::duration::parse_go(unsigned)
        {
            if negative {
                return Some(chrono::Duration::zero());
            }
            return Some(chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::days(106_751)));
        }
    }
    let seconds: i64 = val.parse().ok().filter(|s| *s > 0)?;
    // Go's time.Duration (int64 nanoseconds) caps it at about 292 years.
    Some(chrono::Duration::seconds(seconds.min(9_223_372_036)))
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
    fn message_ttls_read_as_dapr_reads_them() {
        let ttl = |pairs: &[(&str, &str)]| {
            let metadata: BTreeMap<String, String> =
                pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            message_ttl(&metadata).map(|d| d.num_seconds())
        };
        assert_eq!(ttl(&[("ttlInSeconds", "60")]), Some(60));
        assert_eq!(ttl(&[("TTLINSECONDS", "60")]), Some(60));
        assert_eq!(ttl(&[("ttl", "90s"), ("ttlInSeconds", "5")]), Some(90));
        assert_eq!(ttl(&[("ttlInSeconds", "1m")]), Some(60));
        // `0` parses as a Go duration: an expiration of now. A negative duration is 0 too.
        assert_eq!(ttl(&[("ttlInSeconds", "0")]), Some(0));
        assert_eq!(ttl(&[("ttlInSeconds", "-5s")]), Some(0));
        // An integer must be above 0, and anything else is no TTL, not an error.
        assert_eq!(ttl(&[("ttlInSeconds", "-1")]), None);
        assert_eq!(ttl(&[("ttlInSeconds", "abc")]), None);
        assert_eq!(ttl(&[("ttlInSeconds", "")]), None);
        assert_eq!(ttl(&[]), None);
    }

    #[test]
    fn traceparent_continues_the_trace() {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let child = child_traceparent(Some(parent));
        assert!(child.starts_with("00-0af7651916cd43dd8448eb211c80319c-"));
        assert_ne!(child, parent);
        assert_eq!(child_traceparent(Some("garbage")).len(), 55);
    }
}
