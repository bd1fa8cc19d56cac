//! CloudEvents 1.0 (JSON format) as Dapr delivers them, parsed by hand.
//!
//! Parsing is ours, not an extractor's: axum's `Json` answers 400, 415 or 422, which daprd
//! retries like any status but 404 (`pkg/runtime/subscription/postman/http/http.go`), so a
//! message that can never parse would be retried until it blocks its partition. Every failure
//! here becomes a reason string that the runtime answers with DROP (and the dead-letter topic).

use base64::Engine;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A delivered event with typed `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<T> {
    /// CloudEvent `id`: with `source`, identifies the event; redeliveries carry the same id.
    pub id: String,
    /// CloudEvent `source`: daprd sets the publisher's app-id unless the publisher overrode it
    /// (`metadata.cloudevent.source`, or a CloudEvent of its own).
    pub source: String,
    /// CloudEvent `type`, which routing rules match as `event.type`: daprd's default is
    /// `com.dapr.event.sent` when the publisher sets none (`metadata.cloudevent.type`).
    pub event_type: String,
    /// CloudEvent `subject`, if the publisher set one (`metadata.cloudevent.subject`).
    pub subject: Option<String>,
    /// CloudEvent `time`: when daprd wrapped the published data (whole seconds), or the time a
    /// publisher's own CloudEvent carried. `None` if absent; a value not in RFC 3339 is a DROP.
    pub time: Option<DateTime<Utc>>,
    /// The topic the event was published to (Dapr's `topic` extension).
    pub topic: Option<String>,
    /// The publisher's W3C `traceparent` (the envelope's, else the delivery header's), as
    /// received: the runtime has already continued it for the handler and its sidecar calls.
    pub traceparent: Option<String>,
    /// The W3C `tracestate` that came with [`Event::traceparent`], as received.
    pub tracestate: Option<String>,
    /// Where the broker delivered it from (Kafka headers `__topic`, `__partition`, `__offset`).
    pub delivery: Delivery,
    /// The CloudEvent `data` decoded into `T` (`Null` when absent): `data_base64` must hold JSON,
    /// and a JSON text published as `text/plain` is parsed. Data that does not fit `T` is a DROP.
    pub data: T,
}

/// Broker coordinates of one delivery; `(topic, partition, offset)` is a stable dedupe key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// `__topic`: the broker's topic. Every field is `None` when its header is absent (only
    /// components-contrib's Kafka components send them) or, for the numbers, not an integer.
    pub topic: Option<String>,
    /// `__partition`: the Kafka partition (a hash of the key: events with one key share one).
    pub partition: Option<i32>,
    /// `__offset`: the message's offset in its partition; a redelivery carries the same one.
    pub offset: Option<i64>,
    /// `__key`: the Kafka message key, i.e. the publisher's `metadata.partitionKey`; `None` for
    /// a message published without one.
    pub key: Option<String>,
}

impl<T> Event<T> {
    /// The same envelope with other data.
    pub fn with_data<U>(self, data: U) -> Event<U> {
        Event {
            id: self.id,
            source: self.source,
            event_type: self.event_type,
            subject: self.subject,
            time: self.time,
            topic: self.topic,
            traceparent: self.traceparent,
            tracestate: self.tracestate,
            delivery: self.delivery,
            data,
        }
    }
}

impl Event<Value> {
    /// Decodes `data` into `T`, naming the offending field on failure.
    pub fn decode<T: DeserializeOwned>(mut self) -> Result<Event<T>, String> {
        let data = std::mem::take(&mut self.data);
        let typed = decode_json::<T>(data).map_err(|e| format!("event data {e}"))?;
        Ok(self.with_data(typed))
    }
}

/// Deserializes with the JSON path of the first bad field in the error (`at owner: invalid type`).
pub fn decode_json<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." { e.into_inner().to_string() } else { format!("at {path}: {}", e.into_inner()) }
    })
}

/// Parses a delivery body (structured-mode CloudEvent JSON) plus its headers.
pub fn parse(body: &[u8], headers: &HeaderMap) -> Result<Event<Value>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let Value::Object(mut attrs) = value else {
        return Err("body is not a JSON object".to_owned());
    };

    match attrs.get("specversion") {
        Some(Value::String(v)) if v == "1.0" => {}
        Some(other) => return Err(format!("unsupported CloudEvents specversion {other}")),
        None => return Err("missing attribute specversion".to_owned()),
    }
    let id = required(&attrs, "id")?;
    let source = required(&attrs, "source")?;
    let event_type = required(&attrs, "type")?;
    let time = match optional(&attrs, "time")? {
        None => None,
        Some(raw) => Some(
            DateTime::parse_from_rfc3339(&raw)
                .map_err(|e| format!("attribute time {raw:?} is not RFC 3339: {e}"))?
                .with_timezone(&Utc),
        ),
    };
    let content_type = optional(&attrs, "datacontenttype")?;
    let data = take_data(&mut attrs, content_type.as_deref())?;

    Ok(Event {
        id,
        source,
        event_type,
        subject: optional(&attrs, "subject")?,
        time,
        topic: optional(&attrs, "topic")?,
        traceparent: optional(&attrs, "traceparent")?.or_else(|| header(headers, "traceparent")),
        tracestate: optional(&attrs, "tracestate")?.or_else(|| header(headers, "tracestate")),
        delivery: Delivery {
            topic: header(headers, "__topic"),
            partition: header(headers, "__partition").and_then(|v| v.parse().ok()),
            offset: header(headers, "__offset").and_then(|v| v.parse().ok()),
            key: header(headers, "__key"),
        },
        data,
    })
}

fn required(attrs: &Map<String, Value>, name: &str) -> Result<String, String> {
    match attrs.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(format!("attribute {name} is empty")),
        Some(_) => Err(format!("attribute {name} is not a string")),
        None => Err(format!("missing attribute {name}")),
    }
}

fn optional(attrs: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match attrs.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("attribute {name} is not a string")),
    }
}

fn is_json(content_type: Option<&str>) -> bool {
    match content_type {
        None => true,
        Some(ct) => {
            let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
        }
    }
}

/// `data` as JSON. Handles the two ways producers get this wrong or differently: a JSON text
/// published without a content type arrives as a *string* in `data` (Dapr defaults to
/// `text/plain`), and binary content arrives as `data_base64`.
fn take_data(attrs: &mut Map<String, Value>, content_type: Option<&str>) -> Result<Value, String> {
    if let Some(encoded) = attrs.remove("data_base64") {
        let Value::String(encoded) = encoded else {
            return Err("attribute data_base64 is not a string".to_owned());
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| format!("data_base64 is not base64: {e}"))?;
        return serde_json::from_slice(&bytes).map_err(|e| format!("data_base64 does not hold JSON: {e}"));
    }
    match attrs.remove("data") {
        None => Ok(Value::Null),
        Some(Value::String(text)) if !is_json(content_type) => {
            Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }
        Some(data) => Ok(data),
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    fn envelope(extra: Value) -> Vec<u8> {
        let mut base = json!({
            "specversion": "1.0", "id": "e-1", "source": "task-api", "type": "todo.task.created",
            "datacontenttype": "application/json", "data": {"title": "x"},
            "topic": "task-events", "pubsubname": "pubsub",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "time": "2026-11-22T10:00:00Z"
        });
        if let (Value::Object(base), Value::Object(extra)) = (&mut base, extra) {
            for (k, v) in extra {
                if v.is_null() {
                    base.remove(&k);
                } else {
                    base.insert(k, v);
                }
            }
        }
        serde_json::to_vec(&base).unwrap()
    }

    #[test]
    fn parses_a_dapr_delivery() {
        let mut headers = HeaderMap::new();
        headers.insert("__partition", "3".parse().unwrap());
        headers.insert("__offset", "42".parse().unwrap());
        headers.insert("__topic", "task-events".parse().unwrap());
        let event = parse(&envelope(json!({})), &headers).unwrap();
        assert_eq!(event.id, "e-1");
        assert_eq!(event.event_type, "todo.task.created");
        assert_eq!(event.data, json!({"title": "x"}));
        assert_eq!(event.topic.as_deref(), Some("task-events"));
        assert_eq!(event.delivery.partition, Some(3));
        assert_eq!(event.delivery.offset, Some(42));
        assert_eq!(event.time.map(|t| t.to_rfc3339()), Some("2026-11-22T10:00:00+00:00".into()));
    }

    #[test]
    fn rejects_what_can_never_be_processed() {
        let headers = HeaderMap::new();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "not JSON"),
            (b"[1,2]".to_vec(), "not a JSON object"),
            (envelope(json!({"id": null})), "missing attribute id"),
            (envelope(json!({"id": ""})), "attribute id is empty"),
            (envelope(json!({"type": 5})), "attribute type is not a string"),
            (envelope(json!({"specversion": "0.3"})), "specversion"),
            (envelope(json!({"specversion": null})), "missing attribute specversion"),
            (envelope(json!({"time": "yesterday"})), "RFC 3339"),
            (envelope(json!({"data": null, "data_base64": "%%%"})), "not base64"),
        ];
        for (body, expected) in cases {
            let err = parse(&body, &headers).unwrap_err();
            assert!(err.contains(expected), "{err:?} should mention {expected:?}");
        }
    }

    #[test]
    fn json_published_as_text_is_recovered() {
        let body = envelope(json!({"datacontenttype": "text/plain", "data": "{\"title\":\"y\"}"}));
        assert_eq!(parse(&body, &HeaderMap::new()).unwrap().data, json!({"title": "y"}));
        let body = envelope(json!({"datacontenttype": "text/plain", "data": "just text"}));
        assert_eq!(parse(&body, &HeaderMap::new()).unwrap().data, json!("just text"));
    }

    #[test]
    fn binary_data_is_decoded() {
        let encoded = base64::engine::general_purpose::STANDARD.encode(br#"{"title":"z"}"#);
        let body =
            envelope(json!({"data": null, "data_base64": encoded, "datacontenttype": "application/octet-stream"}));
        assert_eq!(parse(&body, &HeaderMap::new()).unwrap().data, json!({"title": "z"}));
    }

    #[test]
    fn trace_context_falls_back_to_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", "00-11111111111111111111111111111111-2222222222222222-01".parse().unwrap());
        let event = parse(&envelope(json!({"traceparent": null})), &headers).unwrap();
        assert_eq!(event.traceparent.as_deref(), Some("00-11111111111111111111111111111111-2222222222222222-01"));
    }

    #[test]
    fn typed_decoding_names_the_field() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Data {
            title: String,
            count: u32,
        }
        let event = parse(&envelope(json!({"data": {"title": "x", "count": "many"}})), &HeaderMap::new()).unwrap();
        let err = event.decode::<Data>().unwrap_err();
        assert!(err.contains("count"), "{err}");
    }
}
