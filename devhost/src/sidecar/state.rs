//! The state API (`/v1.0/state/...`, `/v1.0-alpha1/state/.../query`) over [`crate::state`],
//! with daprd's (`state.postgresql` v1's) answers.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, Ctx, error_info, field_violation, header, resource_info};
use crate::outbox;
use crate::query;
use crate::state::{self, Op, StateError};

/// Looks up a store for the app: 500 when the app has none at all, 400 when this one is unknown.
fn store<'a>(ctx: &'a Ctx, name: &str) -> Result<&'a crate::resources::StateComponent, ApiError> {
    // dapr/dapr `pkg/api/errors/state.go` `NotConfigured`, `NotFound`: no ResourceInfo.
    let app = json!({"appID": &*ctx.app_id});
    if !ctx.host.has_kind_for(&ctx.app_id, true) {
        return Err(ApiError::internal(
            "ERR_STATE_STORE_NOT_CONFIGURED",
            format!("state store {name} is not configured"),
        )
        .with_details(vec![error_info("DAPR_STATE_NOT_CONFIGURED", app)]));
    }
    ctx.host.state_store_for(&ctx.app_id, name).ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "ERR_STATE_STORE_NOT_FOUND", format!("state store {name} is not found"))
            .with_details(vec![error_info("DAPR_STATE_NOT_FOUND", app)])
    })
}

/// `InvalidKeyName`: the key as a field violation, the store, `DAPR_STATE_ILLEGAL_KEY`.
fn full_key(ctx: &Ctx, store_name: &str, prefix: &crate::resources::KeyPrefix, key: &str) -> Result<String, ApiError> {
    state::full_key(prefix, store_name, &ctx.app_id, key).map_err(|e| {
        let message = format!("api error: code = InvalidArgument desc = {e}");
        ApiError::malformed(message.clone()).with_details(vec![
            field_violation(key, &message),
            resource_info("state", store_name, ""),
            error_info("DAPR_STATE_ILLEGAL_KEY", Value::Null),
        ])
    })
}

/// `QueryFailed`: 500 for every query that fails, a body that does not parse included.
fn query_failed(store_name: &str, detail: impl std::fmt::Display) -> ApiError {
    ApiError::internal("ERR_STATE_QUERY", format!("state store {store_name} query failed: {detail}"))
        .with_details(vec![resource_info("state", store_name, ""), error_info("DAPR_STATE_QUERY_FAILED", Value::Null)])
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::malformed(format!("failed deserializing HTTP body: {e}")))
}

/// One state item of a save or a transaction upsert.
#[derive(Debug, Clone)]
struct Item {
    key: String,
    value: Value,
    etag: Option<String>,
    metadata: BTreeMap<String, String>,
    first_write: bool,
    content_type: Option<String>,
}

fn parse_item(v: &Value) -> Result<Item, String> {
    let Value::Object(m) = v else { return Err("a state item must be an object".to_owned()) };
    let key =
        m.get("key").and_then(Value::as_str).filter(|k| !k.is_empty()).ok_or("a state item needs a non-empty `key`")?;
    let etag = match m.get("etag") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err("`etag` must be a string".to_owned()),
    };
    let mut metadata = BTreeMap::new();
    if let Some(Value::Object(meta)) = m.get("metadata") {
        for (k, v) in meta {
            metadata
                .insert(k.clone(), crate::fields::scalar_string(v).ok_or(format!("metadata {k:?} must be a string"))?);
        }
    }
    let first_write = match m.get("options").and_then(|o| o.get("concurrency")).and_then(Value::as_str) {
        None | Some("") | Some("last-write") => false,
        Some("first-write") => true,
        Some(other) => return Err(format!("concurrency {other:?} must be first-write or last-write")),
    };
    let content_type = m.get("contentType").and_then(Value::as_str).map(str::to_owned);
    Ok(Item {
        key: key.to_owned(),
        value: m.get("value").cloned().unwrap_or(Value::Null),
        etag,
        metadata,
        first_write,
        content_type,
    })
}

/// `ttlInSeconds` as `state.postgresql` reads it: -1 (or absent) = no expiry.
fn ttl_of(metadata: &BTreeMap<String, String>) -> Result<Option<i64>, StateError> {
    match metadata.get("ttlInSeconds") {
        None => Ok(None),
        Some(v) => {
            let ttl: i64 = v
                .trim()
                .parse()
                .map_err(|_| StateError::Invalid(format!("error parsing TTL: {v:?} is not an integer")))?;
            if ttl < -1 {
                return Err(StateError::Invalid(format!("error parsing TTL: {ttl} is below -1")));
            }
            Ok((ttl > 0).then_some(ttl))
        }
    }
}

fn set_op(full: String, item: &Item) -> Result<Op, StateError> {
    Ok(Op::Set {
        key: full,
        value: item.value.to_string(),
        etag: item.etag.clone(),
        first_write: item.first_write,
        ttl_secs: ttl_of(&item.metadata)?,
    })
}

/// dapr/dapr `etagError`: mismatch 409, invalid 400, anything else 500.
fn save_error(code: &'static str, what: String, e: StateError) -> ApiError {
    let status = match e {
        StateError::Mismatch(_) => StatusCode::CONFLICT,
        StateError::InvalidEtag(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, code, format!("{what}: {e}"))
}

pub(super) async fn get_state(
    State(ctx): State<Ctx>,
    Path((store_name, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let config = store(&ctx, &store_name)?;
    let full = full_key(&ctx, &store_name, &config.key_prefix, &key)?;
    let name = store_name.clone();
    let row =
        ctx.host.db.read(move |conn| -> Result<_, StateError> { Ok(state::get(conn, &name, &full)?) }).await.map_err(
            |e| ApiError::internal("ERR_STATE_GET", format!("fail to get {key} from state store {store_name}: {e}")),
        )?;
    let Some(row) = row else { return Ok(StatusCode::NO_CONTENT.into_response()) };
    let mut response = (StatusCode::OK, [(http::header::CONTENT_TYPE, "application/json")], row.value).into_response();
    if let Ok(v) = HeaderValue::from_str(&row.etag.to_string()) {
        response.headers_mut().insert(http::header::ETAG, v);
    }
    if let Some(expires) = row.expires_at.and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
        && let Ok(v) = HeaderValue::from_str(&expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    {
        response.headers_mut().insert("metadata.ttlexpiretime", v);
    }
    Ok(response)
}

pub(super) async fn save_state(
    State(ctx): State<Ctx>,
    Path(store_name): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let config = store(&ctx, &store_name)?;
    let Value::Array(items) = parse_json(&body)? else {
        return Err(ApiError::malformed("failed deserializing HTTP body: expected a JSON array of state items"));
    };
    let what = format!("failed saving state in state store {store_name}");
    let mut ops = Vec::with_capacity(items.len());
    for item in &items {
        let item = parse_item(item).map_err(|e| ApiError::malformed(format!("failed deserializing HTTP body: {e}")))?;
        let full = full_key(&ctx, &store_name, &config.key_prefix, &item.key)?;
        ops.push(set_op(full, &item).map_err(|e| save_error("ERR_STATE_SAVE", what.clone(), e))?);
    }
    ctx.host.apply(&store_name, ops, Vec::new()).await.map_err(|e| save_error("ERR_STATE_SAVE", what, e))?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn delete_state(
    State(ctx): State<Ctx>,
    Path((store_name, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let config = store(&ctx, &store_name)?;
    let full = full_key(&ctx, &store_name, &config.key_prefix, &key)?;
    let etag = header(&headers, "if-match").map(|e| e.trim_matches('"').to_owned());
    let ops = vec![Op::Delete { key: full, etag }];
    ctx.host
        .apply(&store_name, ops, Vec::new())
        .await
        .map_err(|e| save_error("ERR_STATE_DELETE", format!("failed deleting state with key {key}"), e))?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn bulk_get(
    State(ctx): State<Ctx>,
    Path(store_name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let config = store(&ctx, &store_name)?;
    let request = parse_json(&body)?;
    let keys: Vec<String> = match request.get("keys") {
        Some(Value::Array(keys)) => keys.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect(),
        _ => return Err(ApiError::malformed("failed deserializing HTTP body: `keys` must be a list of strings")),
    };
    let mut pairs = Vec::with_capacity(keys.len());
    for key in keys {
        let full = full_key(&ctx, &store_name, &config.key_prefix, &key)?;
        pairs.push((key, full));
    }
    let name = store_name.clone();
    let rows = ctx
        .host
        .db
        .read(move |conn| -> Result<Vec<_>, StateError> {
            pairs.into_iter().map(|(key, full)| Ok((key, state::get(conn, &name, &full)?))).collect()
        })
        .await
        .map_err(|e| {
            ApiError::internal("ERR_STATE_BULK_GET", format!("failed getting state in bulk from {store_name}: {e}"))
        })?;
    let out: Vec<Value> = rows
        .into_iter()
        .map(|(key, row)| match row {
            Some(row) => {
                let data: Value = serde_json::from_str(&row.value).unwrap_or(Value::String(row.value));
                json!({"key": key, "data": data, "etag": row.etag.to_string()})
            }
            None => json!({"key": key}),
        })
        .collect();
    Ok(axum::Json(out).into_response())
}

/// `POST /v1.0/state/{store}/transaction`: every failure is a 500 (dapr/dapr
/// `onPostStateTransaction`), an ETag conflict included.
pub(super) async fn transaction(
    State(ctx): State<Ctx>,
    Path(store_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let config = store(&ctx, &store_name)?;
    let request = parse_json(&body)?;
    let Some(Value::Array(operations)) = request.get("operations") else {
        return Err(ApiError::malformed("failed deserializing HTTP body: `operations` must be a list"));
    };
    let tx_error = |e: String| {
        ApiError::internal("ERR_STATE_TRANSACTION", format!("error while executing state transaction: {e}"))
    };
    let mut ops = Vec::new();
    let mut upserts = Vec::new();
    let mut projections = Vec::new();
    for op in operations {
        let kind = op.get("operation").and_then(Value::as_str).unwrap_or_default();
        let request = op.get("request").cloned().unwrap_or(Value::Null);
        match kind {
            "upsert" => {
                let item = parse_item(&request)
                    .map_err(|e| ApiError::malformed(format!("failed deserializing HTTP body: {e}")))?;
                let full = full_key(&ctx, &store_name, &config.key_prefix, &item.key)?;
                let entry = outbox::Upsert {
                    key: item.key.clone(),
                    value: item.value.clone(),
                    content_type: item.content_type.clone(),
                    metadata: item.metadata.clone(),
                };
                if config.outbox.is_some() && outbox::is_projection(&item.metadata) {
                    projections.push(entry);
                    continue;
                }
                ops.push(set_op(full, &item).map_err(|e| tx_error(e.to_string()))?);
                upserts.push(entry);
            }
            "delete" => {
                let key = request.get("key").and_then(Value::as_str).filter(|k| !k.is_empty()).ok_or_else(|| {
                    ApiError::malformed("failed deserializing HTTP body: a delete needs a non-empty `key`")
                })?;
                let etag = match request.get("etag") {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                };
                ops.push(Op::Delete { key: full_key(&ctx, &store_name, &config.key_prefix, key)?, etag });
            }
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "ERR_NOT_SUPPORTED_STATE_OPERATION",
                    format!("operation type {other} not supported"),
                ));
            }
        }
    }
    let messages = match &config.outbox {
        None => Vec::new(),
        Some(outbox_config) => {
            if ctx.host.pubsub_for(&ctx.app_id, &outbox_config.publish_pubsub).is_none() {
                return Err(tx_error(format!(
                    "outbox pubsub {} is not loaded for app {} (component scopes)",
                    outbox_config.publish_pubsub, ctx.app_id
                )));
            }
            // The internal message is published through the outbox pub/sub as the app loaded it
            // (daprd's publisher answers "not found" for one it did not load).
            let Some(internal) = ctx.host.pubsub_for(&ctx.app_id, &outbox_config.outbox_pubsub) else {
                return Err(tx_error(format!(
                    "outbox pubsub {} is not loaded for app {} (component scopes)",
                    outbox_config.outbox_pubsub, ctx.app_id
                )));
            };
            outbox::events(
                outbox_config,
                &internal.cluster,
                &ctx.app_id,
                header(&headers, "traceparent"),
                &upserts,
                &projections,
            )
            .map_err(|key| tx_error(format!("outbox projection for key {key} has no matching upsert")))?
        }
    };
    ctx.host.apply(&store_name, ops, messages).await.map_err(|e| tx_error(e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn query_state(
    State(ctx): State<Ctx>,
    Path(store_name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    store(&ctx, &store_name)?;
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| query_failed(&store_name, format!("failed to parse JSON query body: {e}")))?;
    let query = query::parse_query(&request)
        .map_err(|e| query_failed(&store_name, format!("failed to parse JSON query body: {e}")))?;
    query::check_query(&query).map_err(|e| query_failed(&store_name, e))?;
    let name = store_name.clone();
    let (hits, token) = ctx
        .host
        .db
        .call(move |inner| -> Result<_, StateError> { Ok(query::run(inner, &name, &query)?) })
        .await
        .map_err(|e| query_failed(&store_name, e))?;
    if hits.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    /// The wire shape of a result, serialised straight from the mirror's values (no copies).
    #[derive(serde::Serialize)]
    struct Hit<'a> {
        key: &'a str,
        data: &'a Value,
        etag: String,
    }
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        results: Vec<Hit<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    }
    let results = hits
        .iter()
        .map(|(key, data, etag)| Hit { key: state::original_key(key), data, etag: etag.to_string() })
        .collect();
    let body = Answer { results, token };
    Ok(axum::Json(body).into_response())
}
