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
    pub value: T,
    pub etag: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Concurrency {
    FirstWrite,
    LastWrite,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct StateOptions {
    concurrency: Concurrency,
}

/// One key to save, alone or as a transaction's upsert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SaveItem {
    pub key: String,
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<StateOptions>,
}

impl SaveItem {
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

    pub fn metadata(mut self, key: &str, value: impl Into<String>) -> Self {
        self.metadata.insert(key.to_owned(), value.into());
        self
    }
}

/// One operation of a state transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum TxOp {
    Upsert(SaveItem),
    Delete { key: String, etag: Option<String> },
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
    pub key: String,
    pub value: Option<T>,
    pub etag: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SortOrder {
    Asc,
    Desc,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sort {
    pub key: String,
    pub order: SortOrder,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
struct Page {
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

/// A Query API request (`state.postgresql` v1 only): filter with `EQ`, `IN`, `AND`, `OR` over
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
    pub fn new() -> Self {
        Self::default()
    }

    /// `{"EQ": {"owner": "alice"}}`, `{"AND": [..]}`, ... as the Query API defines them.
    pub fn filter(mut self, filter: Value) -> Self {
        self.filter = Some(filter);
        self
    }

    pub fn sort(mut self, key: &str, order: SortOrder) -> Self {
        self.sort.push(Sort { key: key.to_owned(), order });
        self
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.page.limit = Some(limit);
        self
    }

    pub fn token(mut self, token: Option<String>) -> Self {
        self.page.token = token;
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryItem<T> {
    pub key: String,
    pub value: T,
    pub etag: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryPage<T> {
    pub results: Vec<QueryItem<T>>,
    /// Present when there may be more results.
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
