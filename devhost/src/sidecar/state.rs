//! The state API (`/v1.0/state/...`, `/v1.0-alpha1/state/.../query`) over [`crate::state`],
//! with daprd's (`state.postgresql` v1's) answers.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, Ctx, error_info, field_violation, header, metadata_params, resource_info};
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
    /// `options.concurrency` and `options.consistency` as sent: the store validates them when
    /// it writes (components-contrib `state.CheckRequestOptions`), so a bad one is a 500.
    concurrency: String,
    consistency: String,
    content_type: Option<String>,
}

/// How daprd decodes a state item: a save with Go's `encoding/json` into `state.SetRequest`
/// (dapr/dapr `pkg/api/http/http.go` `onPostState`), a transaction upsert with mapstructure
/// (`onPostStateTransaction`). Neither converts types: a numeric `etag` or a numeric
/// `ttlInSeconds` in `metadata` is a malformed request (400), not a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoder {
    Json,
    Mapstructure,
}

impl Decoder {
    /// The decoder's error for a value of the wrong type at `field` (a Go struct field path).
    fn type_error(self, field: &str, value: &Value, go_type: &str) -> String {
        match self {
            // encoding/json `UnmarshalTypeError`.
            Decoder::Json => {
                let kind = query_model::json_kind(value);
                if field.is_empty() {
                    format!("json: cannot unmarshal {kind} into Go value of type {go_type}")
                } else {
                    format!("json: cannot unmarshal {kind} into Go struct field SetRequest.{field} of type {go_type}")
                }
            }
            // mapstructure's decode error (values decoded by encoding/json into `any`).
            Decoder::Mapstructure => {
                let kind = match value {
                    Value::Null => "nil",
                    Value::Bool(_) => "bool",
                    Value::Number(_) => "float64",
                    Value::String(_) => "string",
                    Value::Array(_) => "[]interface {}",
                    Value::Object(_) => "map[string]interface {}",
                };
                format!(
                    "1 error(s) decoding:\n\n* '{field}' expected type '{go_type}', got unconvertible type '{kind}', value: '{value}'"
                )
            }
        }
    }
}

/// A string field: absent or null is `None`, a string is itself, anything else is the
/// decoder's type error.
fn string_field(
    decoder: Decoder,
    m: &serde_json::Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<Option<String>, String> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(decoder.type_error(path, other, "string")),
    }
}

/// Decodes one item as daprd does, then merges the URL's `metadata.*` parameters into its
/// metadata, the URL winning (`maps.Copy(reqs[i].Metadata, metadata)`, dapr/dapr
/// `pkg/api/http/http.go` `onPostState` and `onPostStateTransaction`). The key may be empty:
/// the callers check it as daprd does, after decoding every item.
fn parse_item(v: &Value, decoder: Decoder, url_metadata: &BTreeMap<String, String>) -> Result<Item, String> {
    let Value::Object(m) = v else { return Err(decoder.type_error("", v, "state.SetRequest")) };
    let go_name = |json: &'static str, go: &'static str| if decoder == Decoder::Json { json } else { go };
    let key = string_field(decoder, m, "key", go_name("key", "Key"))?.unwrap_or_default();
    let etag = string_field(decoder, m, "etag", go_name("etag", "ETag"))?;
    let mut metadata = BTreeMap::new();
    match m.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(meta)) => {
            for (k, v) in meta {
                let value = match v {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    // encoding/json names the map, mapstructure the entry.
                    other => {
                        let field =
                            if decoder == Decoder::Json { "metadata".to_owned() } else { format!("Metadata[{k}]") };
                        return Err(decoder.type_error(&field, other, "string"));
                    }
                };
                metadata.insert(k.clone(), value);
            }
        }
        Some(other) => return Err(decoder.type_error(go_name("metadata", "Metadata"), other, "map[string]string")),
    }
    metadata.extend(url_metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
    let (concurrency, consistency) = match m.get("options") {
        None | Some(Value::Null) => (None, None),
        Some(Value::Object(o)) => (
            string_field(decoder, o, "concurrency", go_name("options.concurrency", "Options.Concurrency"))?,
            string_field(decoder, o, "consistency", go_name("options.consistency", "Options.Consistency"))?,
        ),
        Some(other) => return Err(decoder.type_error(go_name("options", "Options"), other, "state.SetStateOption")),
    };
    Ok(Item {
        key,
        value: m.get("value").cloned().unwrap_or(Value::Null),
        etag,
        metadata,
        concurrency: concurrency.unwrap_or_default(),
        consistency: consistency.unwrap_or_default(),
        content_type: string_field(decoder, m, "contentType", go_name("contentType", "ContentType"))?,
    })
}

/// components-contrib `state.CheckRequestOptions` (`state/request_options.go`), which
/// `state.postgresql` v1 runs first in every set: consistency, then concurrency.
fn check_options(item: &Item) -> Result<bool, StateError> {
    if !matches!(item.consistency.as_str(), "" | "strong" | "eventual") {
        return Err(StateError::Invalid(format!("unrecognized consistency model '{}'", item.consistency)));
    }
    match item.concurrency.as_str() {
        "" | "last-write" => Ok(false),
        "first-write" => Ok(true),
        other => Err(StateError::Invalid(format!("unrecognized concurrency model '{other}'"))),
    }
}

/// `ttlInSeconds` as `state.postgresql` v1 reads it (components-contrib `state/utils/ttl.go`
/// `ParseTTL`): absent or empty = no expiry, -1 = no expiry, otherwise an integer from -1 to
/// `MaxInt32`.
fn ttl_of(metadata: &BTreeMap<String, String>) -> Result<Option<i64>, StateError> {
    let Some(v) = metadata.get("ttlInSeconds").filter(|v| !v.is_empty()) else { return Ok(None) };
    let invalid = |why: String| {
        StateError::Invalid(format!("error parsing TTL: incorrect value for metadata 'ttlInSeconds': {why}"))
    };
    let ttl: i64 = v.parse().map_err(|e: std::num::ParseIntError| {
        let why = if matches!(e.kind(), std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow) {
            "value out of range"
        } else {
            "invalid syntax"
        };
        invalid(format!("strconv.ParseInt: parsing {v:?}: {why}"))
    })?;
    if ttl < -1 || ttl > i64::from(i32::MAX) {
        return Err(invalid("must be -1 or greater".to_owned()));
    }
    Ok((ttl > 0).then_some(ttl))
}

fn set_op(full: String, item: &Item) -> Result<Op, StateError> {
    let first_write = check_options(item)?;
    Ok(Op::Set {
        key: full,
        value: item.value.to_string(),
        etag: item.etag.clone(),
        first_write,
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
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let config = store(&ctx, &store_name)?;
    // `json.NewDecoder(r.Body).Decode(&reqs)`: the message is the decoder's own, unprefixed.
    let items = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => items,
        Ok(other) => {
            return Err(ApiError::malformed(Decoder::Json.type_error("", &other, "[]state.SetRequest")));
        }
        Err(e) => return Err(ApiError::malformed(e.to_string())),
    };
    let url_metadata = metadata_params(&query);
    let items = items
        .iter()
        .map(|item| parse_item(item, Decoder::Json, &url_metadata))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::malformed)?;
    let what = format!("failed saving state in state store {store_name}");
    let mut ops = Vec::with_capacity(items.len());
    for item in &items {
        if item.key.is_empty() {
            return Err(ApiError::malformed(r#""key" is a required field"#));
        }
        let full = full_key(&ctx, &store_name, &config.key_prefix, &item.key)?;
        ops.push(set_op(full, item).map_err(|e| save_error("ERR_STATE_SAVE", what.clone(), e))?);
    }
    if ops.is_empty() {
        return Ok(StatusCode::NO_CONTENT);
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
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let config = store(&ctx, &store_name)?;
    let url_metadata = metadata_params(&query);
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
    // What the store refuses when it runs the operations (options, TTL, a missing key) comes
    // after every operation decoded and after the outbox, as in daprd.
    let mut refused: Option<String> = None;
    for op in operations {
        let kind = op.get("operation").and_then(Value::as_str).unwrap_or_default();
        let request = op.get("request").cloned().unwrap_or(Value::Null);
        match kind {
            "upsert" => {
                let item = parse_item(&request, Decoder::Mapstructure, &url_metadata)
                    .map_err(|e| ApiError::malformed(format!("failed deserializing HTTP body: {e}")))?;
                let full = full_key(&ctx, &store_name, &config.key_prefix, &item.key)?;
                if item.key.is_empty() {
                    refused.get_or_insert_with(|| "missing key in set operation".to_owned());
                }
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
                match set_op(full, &item) {
                    Ok(op) => ops.push(op),
                    Err(e) => {
                        refused.get_or_insert_with(|| e.to_string());
                    }
                }
                upserts.push(entry);
            }
            "delete" => {
                let malformed = |e: String| ApiError::malformed(format!("failed deserializing HTTP body: {e}"));
                let fields = match &request {
                    Value::Object(m) => m.clone(),
                    Value::Null => serde_json::Map::new(),
                    other => return Err(malformed(Decoder::Mapstructure.type_error("", other, "state.DeleteRequest"))),
                };
                let key = string_field(Decoder::Mapstructure, &fields, "key", "Key").map_err(malformed)?;
                let etag = string_field(Decoder::Mapstructure, &fields, "etag", "ETag").map_err(malformed)?;
                let key = key.unwrap_or_default();
                if key.is_empty() {
                    refused.get_or_insert_with(|| "missing key in delete operation".to_owned());
                }
                ops.push(Op::Delete { key: full_key(&ctx, &store_name, &config.key_prefix, &key)?, etag });
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
    if let Some(why) = refused {
        return Err(tx_error(why));
    }
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
    // What v1 refuses when it builds and runs the SQL: no "parse" prefix.
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
