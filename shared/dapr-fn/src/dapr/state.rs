//! State API: get, save, delete, bulk get, transactions and the Query API.
//!
//! Status codes as the sidecar really sends them (dapr/dapr `pkg/api/http/http.go`): a single
//! save or delete with a stale ETag answers **409**, but a transaction answers **500** for every
//! failure, ETag conflicts included; a missing key is **204** on get; bulk get names the value
//! `data`, not `value`.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Dapr, DaprError, encode, status_error};

/// A value and the ETag it was read with.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The stored JSON decoded as `T`. A value that does not decode is a [`DaprError::Decode`],
    /// never a missing key.
    pub value: T,
    /// The ETag of this read, quotes removed: give it to [`SaveItem::if_match`] (or a delete) so
    /// the write fails if anyone wrote since. On `state.postgresql` v1 it is the row's `xmin`, a
    /// decimal number; `None` only from a store that sends no `ETag` header.
    pub etag: Option<String>,
}

/// Dapr's `options.concurrency` of a save, set by [`SaveItem::if_match`] and
/// [`SaveItem::if_absent`]. On `state.postgresql` v1 it matters only to a write without an ETag:
/// an ETag, when sent, is checked whatever the concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Concurrency {
    /// `first-write`: without an ETag, write only if the key does not exist (or has expired);
    /// an existing key fails the write with a 500, not a 409.
    FirstWrite,
    /// `last-write`, Dapr's default when no option is sent: without an ETag, overwrite.
    LastWrite,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct StateOptions {
    concurrency: Concurrency,
}

/// One key to save, alone or as a transaction's upsert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SaveItem {
    /// The state key, as the app sees it: daprd adds the component's `keyPrefix` itself
    /// (`<store>||`, as the project's components set `keyPrefix: name`) and refuses a key
    /// containing `||` with a 400.
    pub key: String,
    /// The value as it will be stored, already serialized by [`SaveItem::new`].
    pub value: Value,
    /// Set through [`SaveItem::if_match`], which also sets the concurrency that goes with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    /// Set through [`SaveItem::metadata`].
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<StateOptions>,
}

impl SaveItem {
    /// An unconditional write of `value` as JSON (last write wins) until [`Self::if_match`] or
    /// [`Self::if_absent`] says otherwise. Fails with [`DaprError::Encode`] if `value` cannot be
    /// serialized (a map with non-string keys, say), before anything is sent.
    pub fn new<T: Serialize + ?Sized>(key: impl Into<String>, value: &T) -> Result<Self, DaprError> {
        let key = key.into();
        let value = serde_json::to_value(value)
            .map_err(|source| DaprError::Encode { what: format!("state value for {key:?}"), source })?;
        Ok(Self { key, value, etag: None, metadata: BTreeMap::new(), options: None })
    }

    /// Optimistic concurrency: the write succeeds only if the stored ETag is still `etag`.
    /// `None` leaves the item unconditional (last write wins).
    pub fn if_match(mut self, etag: Option<String>) -> Self {
        if let Some(etag) = etag {
            self.etag = Some(etag);
            self.options = Some(StateOptions { concurrency: Concurrency::FirstWrite });
        }
        self
    }

    /// Insert only if the key does not exist: first-write concurrency without an ETag. On
    /// `state.postgresql` this is `INSERT … ON CONFLICT DO UPDATE … WHERE <expired>`, so an
    /// existing key makes the write fail (HTTP 500 alone, a failed transaction in one).
    pub fn if_absent(mut self) -> Self {
        self.etag = None;
        self.options = Some(StateOptions { concurrency: Concurrency::FirstWrite });
        self
    }

    /// Per-request metadata the store reads, such as `ttlInSeconds` (`"60"`: the key expires a
    /// minute after this write). Always strings, as Dapr requires: a JSON number there is a 400.
    pub fn metadata(mut self, key: &str, value: impl Into<String>) -> Self {
        self.metadata.insert(key.to_owned(), value.into());
        self
    }
}

/// One operation of a state transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum TxOp {
    /// Write one key, with the item's conditions: a stale ETag, or [`SaveItem::if_absent`] on an
    /// existing key, fails the whole transaction.
    Upsert(SaveItem),
    /// Remove one key. A missing key is no error, unless an ETag was given.
    Delete {
        /// The state key as the app sees it, prefixed by daprd as for a save.
        key: String,
        /// `Some`: delete only if the stored ETag is still this one, else (a missing key
        /// included) the transaction fails. `None`: unconditional.
        etag: Option<String>,
    },
}

impl Serialize for TxOp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct DeleteRequest<'a> {
            key: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            etag: Option<&'a str>,
        }
        #[derive(Serialize)]
        #[serde(tag = "operation", content = "request", rename_all = "lowercase")]
        enum Wire<'a> {
            Upsert(&'a SaveItem),
            Delete(DeleteRequest<'a>),
        }
        match self {
            TxOp::Upsert(item) => Wire::Upsert(item),
            TxOp::Delete { key, etag } => Wire::Delete(DeleteRequest { key, etag: etag.as_deref() }),
        }
        .serialize(serializer)
    }
}

/// Outcome of an insert-if-absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// This call created the key.
    Inserted,
    /// The key already existed; nothing was written.
    AlreadyExists,
}

/// One entry of a bulk get. Missing keys come back with no value.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkItem<T> {
    /// The key asked for, daprd's prefix removed. Match entries by it, not by position:
    /// `state.postgresql` v1 answers the keys it found first and the missing ones after.
    pub key: String,
    /// The stored value decoded as `T`; `None` for a missing key or an entry with an `error`.
    /// A value that does not decode fails the whole call with [`DaprError::Decode`].
    pub value: Option<T>,
    /// The ETag to pass to [`SaveItem::if_match`], as for a single get; `None` for a missing key.
    pub etag: Option<String>,
    /// The store's error for this key alone (a row it could not read); the others still count.
    pub error: Option<String>,
}

/// The direction of one [`Query::sort`] key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SortOrder {
    /// `ASC`. `state.postgresql` v1 compares the value as text, in the database's collation, so
    /// numbers sort by their digits; a value without the field comes last.
    Asc,
    /// `DESC`: the exact reverse, so a value without the field comes first.
    Desc,
}

/// One sort key of a [`Query`], in its wire form: built by [`Query::sort`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sort {
    key: String,
    order: SortOrder,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
struct Page {
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

/// A Query API request (`state.postgresql` v1 only): filter with `EQ`, `NEQ`, `IN`, `GT`, `GTE`,
/// `LT`, `LTE`, `AND`, `OR` over
/// JSON paths of the stored value, sort, and a page limit plus continuation token.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Query {
    #[serde(skip_serializing_if = "Option::is_none")]
    filter: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sort: Vec<Sort>,
    page: Page,
}

impl Query {
    /// No filter, no sort, no limit: every row of the store's table in one answer. The Query API
    /// ignores `keyPrefix`, so it also sees keys that other app-ids wrote there.
    pub fn new() -> Self {
        Self::default()
    }

    /// `{"EQ": {"owner": "alice"}}`, `{"AND": [..]}`, ... as the Query API defines them.
    pub fn filter(mut self, filter: Value) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Orders by `key`, a dot-separated path in the stored value (`"due"`, `"order.due"`); keys
    /// apply in the order added, so end with a unique one for a stable page order.
    pub fn sort(mut self, key: &str, order: SortOrder) -> Self {
        self.sort.push(Sort { key: key.to_owned(), order });
        self
    }

    /// At most `limit` results per page; 0 is no limit. Only a limited query gets a continuation
    /// token back.
    pub fn limit(mut self, limit: u32) -> Self {
        self.page.limit = Some(limit);
        self
    }

    /// Continues after the page that returned `token` ([`QueryPage::token`]); `None` starts at
    /// the first page. On `state.postgresql` v1 the token is an `OFFSET`, so keys written or
    /// deleted in between make the next page skip or repeat results.
    pub fn token(mut self, token: Option<String>) -> Self {
        self.page.token = token;
        self
    }
}

/// One result of [`Dapr::query_state`]. Rows with no value are left out.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryItem<T> {
    /// The key with daprd's prefix removed (`task:1` for the row `tasks||task:1`), as a get takes it.
    pub key: String,
    /// The stored value decoded as `T`; one that does not decode fails the whole page with
    /// [`DaprError::Decode`].
    pub value: T,
    /// The row's ETag, to pass to [`SaveItem::if_match`] or a delete.
    pub etag: Option<String>,
}

/// One page of [`Dapr::query_state`] results.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPage<T> {
    /// The page's results, in the query's sort order (the database's order without one).
    pub results: Vec<QueryItem<T>>,
    /// Where the next page starts, for [`Query::token`]. `state.postgresql` v1 returns one after
    /// every page of a limited query, the last included: a page shorter than the limit is the
    /// end. `None` after an empty page or without a limit.
    pub token: Option<String>,
}

#[derive(Deserialize)]
struct WireItem {
    key: String,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct WireQueryResponse {
    #[serde(default)]
    results: Vec<WireItem>,
    #[serde(default)]
    token: Option<String>,
}

fn decode_value<T: DeserializeOwned>(what: &str, key: &str, value: Value) -> Result<T, DaprError> {
    serde_json::from_value(value)
        .map_err(|e| DaprError::Decode { what: what.to_owned(), detail: format!("value of {key:?}: {e}") })
}

impl Dapr {
    /// `GET /v1.0/state/{store}/{key}`: 200 with the value and an `ETag` header, 204 when the
    /// key does not exist.
    pub async fn get_state<T: DeserializeOwned>(
        &self,
        store: &str,
        key: &str,
    ) -> Result<Option<Versioned<T>>, DaprError> {
        let what = format!("get state {store}/{key}");
        let url = self.url(&["v1.0", "state", store, key]);
        let (status, headers, body) = self.call(Method::GET, url, None, &what).await?;
        match status {
            StatusCode::NO_CONTENT => Ok(None),
            StatusCode::OK if body.is_empty() => Ok(None),
            StatusCode::OK => {
                let value = serde_json::from_slice(&body)
                    .map_err(|e| DaprError::Decode { what: what.clone(), detail: e.to_string() })?;
                let etag = headers
                    .get(reqwest::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.trim_matches('"').to_owned());
                Ok(Some(Versioned { value, etag }))
            }
            _ => Err(status_error(&what, status, &body)),
        }
    }

    /// `POST /v1.0/state/{store}`: 204 saved; 409 ETag mismatch (single save only).
    pub async fn save_state(&self, store: &str, items: &[SaveItem]) -> Result<(), DaprError> {
        let what = format!("save state {store}");
        let url = self.url(&["v1.0", "state", store]);
        let (status, _, body) = self.call(Method::POST, url, Some(encode(&what, items)?), &what).await?;
        match status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            StatusCode::CONFLICT => Err(DaprError::EtagMismatch { key: keys_of(items) }),
            _ => Err(status_error(&what, status, &body)),
        }
    }

    /// Creates `key` unless it exists. A failed first-write cannot be told apart from a store
    /// failure by status alone (both are 500), so a failure is followed by a read: if the key
    /// is there now, it already existed.
    pub async fn insert_state<T: Serialize + ?Sized>(
        &self,
        store: &str,
        key: &str,
        value: &T,
    ) -> Result<Inserted, DaprError> {
        let item = SaveItem::new(key, value)?.if_absent();
        match self.save_state(store, std::slice::from_ref(&item)).await {
            Ok(()) => Ok(Inserted::Inserted),
            Err(err @ (DaprError::Status { .. } | DaprError::EtagMismatch { .. })) => {
                match self.get_state::<Value>(store, key).await? {
                    Some(_) => Ok(Inserted::AlreadyExists),
                    None => Err(err),
                }
            }
            Err(err) => Err(err),
        }
    }

    /// `DELETE /v1.0/state/{store}/{key}` with the ETag in `If-Match`: 204 deleted (or absent);
    /// 409 ETag mismatch.
    pub async fn delete_state(&self, store: &str, key: &str, etag: Option<&str>) -> Result<(), DaprError> {
        let what = format!("delete state {store}/{key}");
        let mut url = self.url(&["v1.0", "state", store, key]);
        if etag.is_some() {
            url.query_pairs_mut().append_pair("concurrency", "first-write");
        }
        let if_match: Vec<_> = etag.map(|etag| (reqwest::header::IF_MATCH, etag)).into_iter().collect();
        let (status, _, body) = self.call_with(Method::DELETE, url, None, &if_match, &what).await?;
        match status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            StatusCode::CONFLICT => Err(DaprError::EtagMismatch { key: key.to_owned() }),
            _ => Err(status_error(&what, status, &body)),
        }
    }

    /// `POST /v1.0/state/{store}/bulk`. The answer has one entry per key; missing keys have no
    /// `data`.
    pub async fn get_bulk_state<T: DeserializeOwned>(
        &self,
        store: &str,
        keys: &[String],
    ) -> Result<Vec<BulkItem<T>>, DaprError> {
        let what = format!("bulk get state {store}");
        let url = self.url(&["v1.0", "state", store, "bulk"]);
        let request = serde_json::json!({ "keys": keys, "parallelism": 10 });
        let (status, _, body) = self.call(Method::POST, url, Some(encode(&what, &request)?), &what).await?;
        if status != StatusCode::OK {
            return Err(status_error(&what, status, &body));
        }
        let items: Vec<WireItem> = serde_json::from_slice(&body)
            .map_err(|e| DaprError::Decode { what: what.clone(), detail: e.to_string() })?;
        items
            .into_iter()
            .map(|item| {
                let value = match item.data {
                    None | Some(Value::Null) => None,
                    Some(data) => Some(decode_value(&what, &item.key, data)?),
                };
                Ok(BulkItem { key: item.key, value, etag: item.etag, error: item.error.filter(|e| !e.is_empty()) })
            })
            .collect()
    }

    /// `POST /v1.0/state/{store}/transaction`: all operations or none. Nothing is published:
    /// the project's outbox ([`crate::outbox`]) writes its records in the same transaction and
    /// publishes after it.
    pub async fn transact(&self, store: &str, operations: &[TxOp]) -> Result<(), DaprError> {
        let what = format!("state transaction on {store}");
        let url = self.url(&["v1.0", "state", store, "transaction"]);
        let request = serde_json::json!({ "operations": operations });
        let (status, _, body) = self.call(Method::POST, url, Some(encode(&what, &request)?), &what).await?;
        match status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            StatusCode::INTERNAL_SERVER_ERROR => {
                let (_, message) = super::error::ErrorBody::parse(&body);
                Err(DaprError::TransactionFailed { store: store.to_owned(), message })
            }
            _ => Err(status_error(&what, status, &body)),
        }
    }

    /// `POST /v1.0-alpha1/state/{store}/query`. An empty answer (no body) means no results.
    pub async fn query_state<T: DeserializeOwned>(
        &self,
        store: &str,
        query: &Query,
    ) -> Result<QueryPage<T>, DaprError> {
        let what = format!("query state {store}");
        let url = self.url(&["v1.0-alpha1", "state", store, "query"]);
        let (status, _, body) = self.call(Method::POST, url, Some(encode(&what, query)?), &what).await?;
        if !status.is_success() {
            return Err(status_error(&what, status, &body));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(QueryPage { results: Vec::new(), token: None });
        }
        let wire: WireQueryResponse = serde_json::from_slice(&body)
            .map_err(|e| DaprError::Decode { what: what.clone(), detail: e.to_string() })?;
        let results = wire
            .results
            .into_iter()
            .filter_map(|item| match item.data {
                None | Some(Value::Null) => None,
                Some(data) => Some((item.key, data, item.etag)),
            })
            .map(|(key, data, etag)| Ok(QueryItem { value: decode_value(&what, &key, data)?, key, etag }))
            .collect::<Result<Vec<_>, DaprError>>()?;
        Ok(QueryPage { results, token: wire.token.filter(|t| !t.is_empty()) })
    }
}

fn keys_of(items: &[SaveItem]) -> String {
    items.iter().map(|i| i.key.as_str()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn save_item_wire_shape() {
        let item = SaveItem::new("task:1", &json!({"a": 1})).unwrap().if_match(Some("7".into()));
        assert_eq!(
            serde_json::to_value(&item).unwrap(),
            json!({"key": "task:1", "value": {"a": 1}, "etag": "7", "options": {"concurrency": "first-write"}})
        );
        let insert = SaveItem::new("k", &1).unwrap().if_absent();
        assert_eq!(
            serde_json::to_value(&insert).unwrap(),
            json!({"key": "k", "value": 1, "options": {"concurrency": "first-write"}})
        );
        let plain = SaveItem::new("k", &1).unwrap().if_match(None);
        assert_eq!(serde_json::to_value(&plain).unwrap(), json!({"key": "k", "value": 1}));
    }

    #[test]
    fn transaction_operations_wire_shape() {
        let ops = vec![
            TxOp::Upsert(SaveItem::new("a", &1).unwrap()),
            TxOp::Delete { key: "b".into(), etag: Some("3".into()) },
            TxOp::Delete { key: "c".into(), etag: None },
        ];
        assert_eq!(
            serde_json::to_value(&ops).unwrap(),
            json!([
                {"operation": "upsert", "request": {"key": "a", "value": 1}},
                {"operation": "delete", "request": {"key": "b", "etag": "3"}},
                {"operation": "delete", "request": {"key": "c"}},
            ])
        );
    }

    #[test]
    fn query_wire_shape() {
        let query = Query::new()
            .filter(json!({"EQ": {"owner": "alice"}}))
            .sort("due", SortOrder::Asc)
            .limit(50)
            .token(Some("t".into()));
        assert_eq!(
            serde_json::to_value(&query).unwrap(),
            json!({"filter": {"EQ": {"owner": "alice"}}, "sort": [{"key": "due", "order": "ASC"}], "page": {"limit": 50, "token": "t"}})
        );
        assert_eq!(serde_json::to_value(Query::new()).unwrap(), json!({"page": {}}));
    }
}
