//! `POST|PUT /v1.0/bindings/{name}`: the request as daprd decodes it; the bindings themselves
//! are in [`crate::bindings`].

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{ApiError, Ctx, header};
use crate::cloudevent;

/// dapr/dapr `pkg/api/http/requests.go:17-21` `OutputBindingRequest`, as `encoding/json`
/// decodes it: the first JSON value of the body, field names matched case-insensitively,
/// unknown fields ignored, `null` leaving a field empty; a wrong type is an error.
fn binding_request(body: &[u8]) -> Result<(String, BTreeMap<String, String>, Value), String> {
    let value = serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .next()
        .ok_or_else(|| "EOF".to_owned())?
        .map_err(|e| e.to_string())?;
    let fields = match value {
        Value::Null => serde_json::Map::new(),
        Value::Object(map) => map,
        other => {
            return Err(format!(
                "json: cannot unmarshal {} into Go value of type http.OutputBindingRequest",
                query_model::json_kind(&other)
            ));
        }
    };
    let (mut operation, mut metadata, mut data) = (String::new(), BTreeMap::new(), Value::Null);
    for (key, value) in fields {
        match (key.to_ascii_lowercase().as_str(), value) {
            ("operation", Value::String(s)) => operation = s,
            ("operation", Value::Null) | ("metadata", Value::Null) => {}
            ("metadata", Value::Object(map)) => {
                for (k, v) in map {
                    match v {
                        Value::String(s) => metadata.insert(k, s),
                        Value::Null => metadata.insert(k, String::new()),
                        _ => {
                            return Err(format!(
                                "json: cannot unmarshal into Go struct field metadata.{k} of type string"
                            ));
                        }
                    };
                }
            }
            ("data", v) => data = v,
            ("operation" | "metadata", _) => return Err(format!("json: cannot unmarshal into Go struct field {key}")),
            _ => {}
        }
    }
    Ok((operation, metadata, data))
}

/// `POST|PUT /v1.0/bindings/{name}` (dapr/dapr `pkg/api/http/http.go:417-495`, and
/// `pkg/runtime/processor/binding/send.go:196-221` for which binding and operation): every
/// failure after the body is read is 500 `ERR_INVOKE_OUTPUT_BINDING` with
/// `error invoking output binding <name>: <error>`; a binding's response metadata comes back as
/// `metadata.<key>` headers, also with an error; no response is 204, a response 200 with its data.
pub(super) async fn invoke_binding(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (operation, mut metadata, data) = match binding_request(&body) {
        Ok(request) => request,
        Err(e) => return ApiError::malformed(format!("failed deserializing HTTP body: {e}")).into_response(),
    };
    // The trace context goes into the metadata (`http.go:438-452`), where `bindings.http` makes
    // headers of it: the caller's, passed on (no span of our own), else the all-zero context,
    // which daprd without a tracing configuration puts there too (the conformance test sees it
    // arrive at the receiver).
    let (traceparent, tracestate) =
        cloudevent::caller_trace(header(&headers, "traceparent"), header(&headers, "tracestate"));
    let traceparent = if traceparent.is_empty() { cloudevent::ZERO_TRACEPARENT.to_owned() } else { traceparent };
    metadata.insert("traceparent".to_owned(), traceparent);
    if !tracestate.is_empty() {
        metadata.insert("tracestate".to_owned(), tracestate);
    }
    let baggage: Vec<&str> = headers.get_all("baggage").iter().filter_map(|v| v.to_str().ok()).collect();
    if !baggage.is_empty() {
        metadata.insert("baggage".to_owned(), baggage.join(","));
    }
    let data = crate::bindings::go_json(&data);
    let failed = |error: String| {
        ApiError::internal("ERR_INVOKE_OUTPUT_BINDING", format!("error invoking output binding {name}: {error}"))
    };
    if operation.is_empty() {
        return failed("operation field is missing from request".to_owned()).into_response();
    }
    let Some(binding) = ctx.host.binding_for(&ctx.app_id, &name) else {
        return failed(format!("couldn't find output binding {name}")).into_response();
    };
    let operations = binding.operations();
    if !operations.contains(&operation.as_str()) {
        return failed(format!(
            "binding {name} does not support operation {operation}. supported operations:{}",
            operations.join(" ")
        ))
        .into_response();
    }
    let invoked = binding.invoke(&ctx.host.bindings_http, &operation, data.as_bytes(), &metadata).await;
    let mut response = match (&invoked.error, &invoked.output) {
        (Some(error), _) => failed(error.clone()).into_response(),
        (None, None) => StatusCode::NO_CONTENT.into_response(),
        (None, Some(output)) => {
            (StatusCode::OK, [(http::header::CONTENT_TYPE, "application/json")], output.data.clone()).into_response()
        }
    };
    if let Some(output) = &invoked.output {
        for (key, value) in &output.metadata {
            if let (Ok(k), Ok(v)) =
                (http::HeaderName::from_bytes(format!("metadata.{key}").as_bytes()), HeaderValue::from_str(value))
            {
                response.headers_mut().append(k, v);
            }
        }
    }
    response
}
