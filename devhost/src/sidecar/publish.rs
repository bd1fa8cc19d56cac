//! `POST /v1.0/publish/{pubsub}/{topic}`: validation in daprd's order, the CloudEvent, the log.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{ApiError, Ctx, error_info, header, metadata_params, resource_info};
use crate::cloudevent::{self, CLOUDEVENTS_CONTENT_TYPE};
use crate::pubsub::NewMessage;

pub(super) async fn publish_without_topic(
    State(ctx): State<Ctx>,
    Path(pubsub): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> ApiError {
    let _ = ctx;
    topic_empty(&pubsub, &metadata_params(&query))
}

/// dapr/dapr `pkg/api/errors/pubsub.go`: a `ResourceInfo` of the pub/sub (unless `skip`) and an
/// `ErrorInfo` with `metadata`.
fn pubsub_error(
    status: StatusCode,
    code: &'static str,
    reason: &str,
    pubsub: &str,
    message: String,
    metadata: Value,
    skip_resource: bool,
) -> ApiError {
    let mut details = Vec::new();
    if !skip_resource {
        details.push(resource_info("pubsub", pubsub, &message));
    }
    details.push(error_info(reason, metadata));
    ApiError::new(status, code, message).with_details(details)
}

fn topic_empty(pubsub: &str, metadata: &BTreeMap<String, String>) -> ApiError {
    pubsub_error(
        StatusCode::NOT_FOUND,
        "ERR_TOPIC_NAME_EMPTY",
        "DAPR_PUBSUB_TOPIC_NAME_EMPTY",
        pubsub,
        format!("topic is empty in pubsub {pubsub}"),
        json!(metadata),
        false,
    )
}

fn publish_failed(pubsub: &str, topic: &str, error: &str) -> ApiError {
    pubsub_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ERR_PUBSUB_PUBLISH_MESSAGE",
        "DAPR_PUBSUB_PUBLISH_MESSAGE",
        pubsub,
        format!("error when publishing to topic {topic} in pubsub {pubsub}: {error}"),
        json!({"topic": topic, "error": error}),
        false,
    )
}

/// The pub/sub and topic of a publish, in the order of dapr/dapr
/// `validateAndGetPubsubAndTopic` (`pkg/api/http/http.go`): no pub/sub at all 400, this one
/// unknown 404, an empty topic 404.
fn target<'a>(
    ctx: &'a Ctx,
    pubsub: &str,
    topic: &str,
    metadata: &BTreeMap<String, String>,
) -> Result<&'a crate::resources::PubSubComponent, ApiError> {
    let host = &ctx.host;
    if !host.has_kind_for(&ctx.app_id, false) {
        return Err(pubsub_error(
            StatusCode::BAD_REQUEST,
            "ERR_PUBSUB_NOT_CONFIGURED",
            "DAPR_PUBSUB_NOT_CONFIGURED",
            pubsub,
            format!("pubsub {pubsub} is not configured"),
            json!(metadata),
            true,
        ));
    }
    let Some(component) = host.pubsub_for(&ctx.app_id, pubsub) else {
        return Err(pubsub_error(
            StatusCode::NOT_FOUND,
            "ERR_PUBSUB_NOT_FOUND",
            "DAPR_PUBSUB_NOT_FOUND",
            pubsub,
            format!("pubsub {pubsub} is not found"),
            json!(metadata),
            true,
        ));
    };
    if topic.is_empty() {
        return Err(topic_empty(pubsub, metadata));
    }
    Ok(component)
}

/// `metadata.rawPayload` (components-contrib `metadata.IsRawPayload`): `DeserializeError`, 400.
fn raw_payload(pubsub: &str, metadata: &BTreeMap<String, String>) -> Result<bool, ApiError> {
    match metadata.get("rawPayload") {
        None => Ok(false),
        Some(v) => crate::fields::parse_go_bool(v).ok_or_else(|| {
            pubsub_error(
                StatusCode::BAD_REQUEST,
                "ERR_PUBSUB_REQUEST_METADATA",
                "DAPR_PUBSUB_METADATA_DESERIALIZATION",
                pubsub,
                format!(
                    "failed deserializing metadata. Error: rawPayload value must be a valid boolean: actual is '{v}'"
                ),
                json!(metadata),
                false,
            )
        }),
    }
}

/// The CloudEvent of one published event (dapr/dapr `runtimePubsub.NewCloudEvent` then
/// `pubsub.ApplyMetadata`), serialised. daprd without a tracing configuration starts no span of
/// its own: the caller's trace context goes into the envelope as it came, or nothing.
fn envelope(
    ctx: &Ctx,
    pubsub: &str,
    topic: &str,
    content_type: Option<&str>,
    body: &[u8],
    metadata: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Result<Vec<u8>, ApiError> {
    let (traceparent, tracestate) =
        cloudevent::caller_trace(header(headers, "traceparent"), header(headers, "tracestate"));
    let ce = cloudevent::wrap(&cloudevent::Publish {
        source: &ctx.app_id,
        pubsub,
        topic,
        content_type,
        body,
        metadata,
        traceparent,
        tracestate,
    })
    .map_err(|e| {
        // `CloudEventCreation`: 500 with the gRPC code InvalidArgument.
        pubsub_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_PUBSUB_CLOUD_EVENTS_SER",
            "DAPR_PUBSUB_CLOUD_EVENT_CREATION",
            pubsub,
            "cannot create cloudevent".to_owned(),
            json!({"appID": &*ctx.app_id, "error": e}),
            false,
        )
    })?;
    serde_json::to_vec(&ce).map_err(|e| publish_failed(pubsub, topic, &e.to_string()))
}

/// `metadata.partitionNumber`, the explicit partition.
fn partition(metadata: &BTreeMap<String, String>) -> Result<Option<u32>, ApiError> {
    metadata
        .get("partitionNumber")
        .map(|n| {
            n.trim().parse::<u32>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "ERR_PUBSUB_REQUEST_METADATA",
                    format!("failed deserializing metadata: partitionNumber {n:?} is not a partition number"),
                )
            })
        })
        .transpose()
}

/// The publishing scopes (`PublishForbidden`, 403), checked by daprd's publisher after the
/// request was read and the envelopes built.
fn check_allowed(
    ctx: &Ctx,
    component: &crate::resources::PubSubComponent,
    pubsub: &str,
    topic: &str,
) -> Result<(), ApiError> {
    if component.allowed(&ctx.app_id, topic, true) {
        return Ok(());
    }
    let message = format!("topic {topic} is not allowed for app id {}", ctx.app_id);
    Err(pubsub_error(
        StatusCode::FORBIDDEN,
        "ERR_PUBSUB_FORBIDDEN",
        "DAPR_PUBSUB_FORBIDDEN",
        pubsub,
        message.clone(),
        json!({"topic": topic, "error": message}),
        false,
    ))
}

/// `POST /v1.0/publish/{pubsub}/{topic}`: 204 once the message is committed to the log.
pub(super) async fn publish(
    State(ctx): State<Ctx>,
    Path((pubsub, topic)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let metadata = metadata_params(&query);
    let component = target(&ctx, &pubsub, &topic, &metadata)?;
    let raw = raw_payload(&pubsub, &metadata)?;
    let content_type = header(&headers, "content-type");
    let (body, stored_type) = if raw {
        (body.to_vec(), content_type.map(str::to_owned))
    } else {
        let bytes = envelope(&ctx, &pubsub, &topic, content_type, &body, &metadata, &headers)?;
        (bytes, Some(CLOUDEVENTS_CONTENT_TYPE.to_owned()))
    };
    let message = NewMessage {
        cluster: component.cluster.clone(),
        topic: topic.clone(),
        partition: partition(&metadata)?,
        key: metadata.get("partitionKey").filter(|k| !k.is_empty()).cloned(),
        headers: metadata,
        content_type: stored_type,
        body,
    };
    check_allowed(&ctx, component, &pubsub, &topic)?;
    ctx.host.publish(vec![message]).await.map_err(|e| publish_failed(&pubsub, &topic, &e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

/// A bulk publish error about the request's events (`pkg/api/errors/pubsub.go`
/// `UnmarshalEvents`, `MarshalEnvelope`, `MarshalEvents`): 400 `ERR_PUBSUB_EVENTS_SER`, with
/// the app-id (and the error) in the `ErrorInfo`.
fn events_error(ctx: &Ctx, pubsub: &str, reason: &str, message: String, error: Option<&str>) -> ApiError {
    let mut metadata = json!({"appID": &*ctx.app_id});
    if let Some(error) = error {
        metadata["error"] = json!(error);
    }
    pubsub_error(StatusCode::BAD_REQUEST, "ERR_PUBSUB_EVENTS_SER", reason, pubsub, message, metadata, false)
}

/// One entry of a bulk publish body, as Go decodes dapr/dapr's `bulkPublishMessageEntry`.
#[derive(Debug)]
struct BulkEntry {
    entry_id: String,
    event: Value,
    content_type: String,
    /// `None` when the entry has none: then the request's metadata does not reach its envelope.
    metadata: Option<BTreeMap<String, String>>,
}

/// Decodes the body as `json.NewDecoder(r.Body).Decode(&[]bulkPublishMessageEntry)` would:
/// `Err` is the decoder's message.
fn bulk_entries(body: &[u8]) -> Result<Vec<BulkEntry>, String> {
    let kind = query_model::json_kind;
    let field_error = |field: &str, v: &Value, go_type: &str| {
        format!(
            "json: cannot unmarshal {} into Go struct field bulkPublishMessageEntry.{field} of type {go_type}",
            kind(v)
        )
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("EOF".to_owned());
    }
    let items = match serde_json::from_slice::<Value>(body).map_err(|e| e.to_string())? {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => {
            return Err(format!(
                "json: cannot unmarshal {} into Go value of type []http.bulkPublishMessageEntry",
                kind(&other)
            ));
        }
    };
    let string = |m: &serde_json::Map<String, Value>, name: &str| match m.get(name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(field_error(name, other, "string")),
    };
    items
        .into_iter()
        .map(|item| {
            let m = match item {
                Value::Object(m) => m,
                Value::Null => serde_json::Map::new(),
                other => {
                    return Err(format!(
                        "json: cannot unmarshal {} into Go value of type http.bulkPublishMessageEntry",
                        kind(&other)
                    ));
                }
            };
            let metadata = match m.get("metadata") {
                None | Some(Value::Null) => None,
                Some(Value::Object(meta)) => Some(
                    meta.iter()
                        .map(|(k, v)| match v {
                            Value::String(s) => Ok((k.clone(), s.clone())),
                            Value::Null => Ok((k.clone(), String::new())),
                            other => Err(field_error(&format!("metadata.{k}"), other, "string")),
                        })
                        .collect::<Result<BTreeMap<_, _>, _>>()?,
                ),
                Some(other) => return Err(field_error("metadata", other, "map[string]string")),
            };
            Ok(BulkEntry {
                entry_id: string(&m, "entryId")?,
                event: m.get("event").cloned().unwrap_or(Value::Null),
                content_type: string(&m, "contentType")?,
                metadata,
            })
        })
        .collect()
}

/// dapr/dapr `pkg/api/http/util.go` `ConvertEventToBytes`: the event's bytes by its content
/// type. A content type of none of these kinds (an empty one included) is a mismatch.
fn event_bytes(event: &Value, content_type: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    const MISMATCH: &str = "error: mismatch between contentType and event";
    let lower = content_type.to_ascii_lowercase();
    let media = lower.split(';').next().unwrap_or_default();
    if media == "application/octet-stream" {
        let Value::String(s) = event else { return Err(MISMATCH.to_owned()) };
        // Go's `base64.CorruptInputError`: the offset of the first bad byte.
        return base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| {
            let at = match e {
                base64::DecodeError::InvalidByte(at, _) | base64::DecodeError::InvalidLastSymbol { offset: at, .. } => {
                    at
                }
                _ => s.len(),
            };
            format!(
                "error: unable to decode base64 application/octect-stream data: illegal base64 data at input byte {at}"
            )
        });
    }
    if lower.starts_with("text/") || media == "application/xml" {
        let Value::String(s) = event else { return Err(MISMATCH.to_owned()) };
        return Ok(s.as_bytes().to_vec());
    }
    if media == "application/json" || media == CLOUDEVENTS_CONTENT_TYPE {
        return serde_json::to_vec(event).map_err(|e| format!("{MISMATCH}: {e}"));
    }
    Err(MISMATCH.to_owned())
}

/// `POST /v1.0-alpha1/publish/bulk/{pubsub}/{topic}` (and `/v1.0/`), dapr/dapr
/// `pkg/api/http/http.go` `onBulkPublish`: the same target and `rawPayload` checks as a
/// publish, then every entry converted (`MarshalEnvelope`, 400) and checked for a unique,
/// present `entryId` (`MarshalEvents`, 400), in order; each entry's envelope built as a single
/// publish builds it, from the entry's metadata with the request's filling in what it lacks
/// (`utils.PopulateMetadataForBulkPublishEntry`; an entry without metadata gets none); then the
/// publishing scopes (403). The Kafka record of each entry carries the entry's metadata with
/// the request's over it (components-contrib `common/component/kafka/producer.go`
/// `BulkPublish`). All entries are committed to the log at once, so success is 204 with no
/// body and there are no `failedEntries`.
pub(super) async fn bulk_publish(
    State(ctx): State<Ctx>,
    Path((pubsub, topic)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let metadata = metadata_params(&query);
    let component = target(&ctx, &pubsub, &topic, &metadata)?;
    let raw = raw_payload(&pubsub, &metadata)?;
    let entries = bulk_entries(&body).map_err(|e| {
        events_error(
            &ctx,
            &pubsub,
            "DAPR_PUBSUB_UNMARSHAL_EVENTS",
            format!("error when unmarshaling the request for topic {topic} pubsub {pubsub}: {e}"),
            None,
        )
    })?;
    let mut converted = Vec::with_capacity(entries.len());
    let mut ids = std::collections::HashSet::new();
    for entry in &entries {
        let bytes = event_bytes(&entry.event, &entry.content_type).map_err(|e| {
            events_error(
                &ctx,
                &pubsub,
                "DAPR_PUBSUB_MARSHAL_ENVELOPE",
                format!("error when marshalling cloud event envelope for topic {topic} pubsub {pubsub}: {e}"),
                Some(&e),
            )
        })?;
        if entry.entry_id.is_empty() || !ids.insert(entry.entry_id.as_str()) {
            let e = "entryId is duplicated or not present for entry";
            return Err(events_error(
                &ctx,
                &pubsub,
                "DAPR_PUBSUB_MARSHAL_EVENTS",
                format!("error marshaling events to bytes for topic {topic} pubsub {pubsub}. error: {e}"),
                Some(e),
            ));
        }
        converted.push(bytes);
    }
    let mut messages = Vec::with_capacity(entries.len());
    for (entry, bytes) in entries.iter().zip(converted) {
        let entry_metadata = entry.metadata.as_ref().map(|own| {
            let mut merged = metadata.clone();
            merged.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
            merged
        });
        let (body, stored_type) = if raw {
            (bytes, Some(entry.content_type.clone()))
        } else {
            let ce_metadata = entry_metadata.clone().unwrap_or_default();
            let bytes = envelope(&ctx, &pubsub, &topic, Some(&entry.content_type), &bytes, &ce_metadata, &headers)?;
            (bytes, Some(CLOUDEVENTS_CONTENT_TYPE.to_owned()))
        };
        let mut record_headers = entry.metadata.clone().unwrap_or_default();
        record_headers.extend(metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
        messages.push(NewMessage {
            cluster: component.cluster.clone(),
            topic: topic.clone(),
            partition: partition(&record_headers)?,
            key: record_headers.get("partitionKey").filter(|k| !k.is_empty()).cloned(),
            headers: record_headers,
            content_type: stored_type,
            body,
        });
    }
    check_allowed(&ctx, component, &pubsub, &topic)?;
    if messages.is_empty() {
        return Ok(StatusCode::NO_CONTENT);
    }
    ctx.host.publish(messages).await.map_err(|e| publish_failed(&pubsub, &topic, &e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}
