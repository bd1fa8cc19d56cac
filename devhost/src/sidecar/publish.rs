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

/// `POST /v1.0/publish/{pubsub}/{topic}`: 204 once the message is committed to the log.
pub(super) async fn publish(
    State(ctx): State<Ctx>,
    Path((pubsub, topic)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let host = &ctx.host;
    let metadata = metadata_params(&query);
    // The order of dapr/dapr `validateAndGetPubsubAndTopic`.
    if !host.has_kind_for(&ctx.app_id, false) {
        return Err(pubsub_error(
            StatusCode::BAD_REQUEST,
            "ERR_PUBSUB_NOT_CONFIGURED",
            "DAPR_PUBSUB_NOT_CONFIGURED",
            &pubsub,
            format!("pubsub {pubsub} is not configured"),
            json!(metadata),
            true,
        ));
    }
    let Some(component) = host.pubsub_for(&ctx.app_id, &pubsub) else {
        return Err(pubsub_error(
            StatusCode::NOT_FOUND,
            "ERR_PUBSUB_NOT_FOUND",
            "DAPR_PUBSUB_NOT_FOUND",
            &pubsub,
            format!("pubsub {pubsub} is not found"),
            json!(metadata),
            true,
        ));
    };
    if topic.is_empty() {
        return Err(topic_empty(&pubsub, &metadata));
    }
    let raw = match metadata.get("rawPayload") {
        None => false,
        Some(v) => crate::fields::parse_go_bool(v).ok_or_else(|| {
            pubsub_error(
                StatusCode::BAD_REQUEST,
                "ERR_PUBSUB_REQUEST_METADATA",
                "DAPR_PUBSUB_METADATA_DESERIALIZATION",
                &pubsub,
                format!(
                    "failed deserializing metadata. Error: rawPayload value must be a valid boolean: actual is '{v}'"
                ),
                json!(metadata),
                false,
            )
        })?,
    };
    let content_type = header(&headers, "content-type");
    let (body, stored_type) = if raw {
        (body.to_vec(), content_type.map(str::to_owned))
    } else {
        // daprd without a tracing configuration starts no span of its own: the caller's trace
        // context goes into the envelope as it came, or nothing.
        let (traceparent, tracestate) =
            cloudevent::caller_trace(header(&headers, "traceparent"), header(&headers, "tracestate"));
        let ce = cloudevent::wrap(&cloudevent::Publish {
            source: &ctx.app_id,
            pubsub: &pubsub,
            topic: &topic,
            content_type,
            body: &body,
            metadata: &metadata,
            traceparent,
            tracestate,
        })
        .map_err(|e| {
            // `CloudEventCreation`: 500 with the gRPC code InvalidArgument.
            pubsub_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERR_PUBSUB_CLOUD_EVENTS_SER",
                "DAPR_PUBSUB_CLOUD_EVENT_CREATION",
                &pubsub,
                "cannot create cloudevent".to_owned(),
                json!({"appID": &*ctx.app_id, "error": e}),
                false,
            )
        })?;
        let bytes = serde_json::to_vec(&ce).map_err(|e| publish_failed(&pubsub, &topic, &e.to_string()))?;
        (bytes, Some(CLOUDEVENTS_CONTENT_TYPE.to_owned()))
    };
    let partition = match metadata.get("partitionNumber") {
        None => None,
        Some(n) => Some(n.trim().parse::<u32>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "ERR_PUBSUB_REQUEST_METADATA",
                format!("failed deserializing metadata: partitionNumber {n:?} is not a partition number"),
            )
        })?),
    };
    let message = NewMessage {
        cluster: component.cluster.clone(),
        topic: topic.clone(),
        partition,
        key: metadata.get("partitionKey").filter(|k| !k.is_empty()).cloned(),
        headers: metadata,
        content_type: stored_type,
        body,
    };
    if !component.allowed(&ctx.app_id, &topic, true) {
        let message = format!("topic {topic} is not allowed for app id {}", ctx.app_id);
        return Err(pubsub_error(
            StatusCode::FORBIDDEN,
            "ERR_PUBSUB_FORBIDDEN",
            "DAPR_PUBSUB_FORBIDDEN",
            &pubsub,
            message.clone(),
            json!({"topic": topic, "error": message}),
            false,
        ));
    }
    host.publish(vec![message]).await.map_err(|e| publish_failed(&pubsub, &topic, &e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}
