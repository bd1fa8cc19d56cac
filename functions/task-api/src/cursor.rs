//! Keyset cursors for `GET /v1/tasks`: the sort, the last item's sort key and its id, as
//! base64url JSON.
//!
//! A keyset cursor says "after this point in the order", not "skip n items", so a task created
//! or deleted between two page requests neither duplicates nor hides an item. The cursor is
//! bound to the query that produced it: it names its sort (a key of one order is meaningless in
//! another) and carries a fingerprint of the filters and sort ([`crate::params::ListParams::
//! fingerprint`]), so a cursor replayed with other filters or another sort is refused (400,
//! field `cursor`) rather than paging a list that page 1 never showed. `limit` is not part of
//! the query: a client may change its page size between pages. It is opaque to clients, but not
//! secret or signed: a forged cursor can only move the caller within their own list.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;
use crate::sort::{SortBy, SortKey};

/// Longest cursor accepted. A real one is well under 1 KiB (the longest key is a 200-character
/// title); anything bigger is not ours.
pub const MAX_CURSOR_CHARS: usize = 4096;

/// A decoded cursor: resume strictly after `(key, id)` in the order `sort`, for the query whose
/// fingerprint is `query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub sort: SortBy,
    pub key: SortKey,
    pub id: Uuid,
    pub query: String,
}

/// The message of a cursor used with another query, as the brief of issue 14 words it; the
/// detail says which part changed.
pub const DIFFERENT_QUERY: &str = "made for a different query (filters or sort changed); start again without cursor";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    /// Format version, so that a future change can refuse old cursors explicitly.
    v: u8,
    /// The sort's query-string name (`-due`).
    s: String,
    k: SortKey,
    id: Uuid,
    /// The fingerprint of the query (filters and sort) that produced the cursor. Defaulted so
    /// that a version-1 cursor, which has none, reaches the version check and is named as such.
    #[serde(default)]
    q: String,
}

/// 2 since cursors carry their query's fingerprint (a version-1 cursor cannot be bound to a
/// query); 3 since the key is the stored order key. Older cursors are refused as incompatible.
const VERSION: u8 = 3;

/// Just the version, read first so that an old cursor is named as such whatever its shape.
#[derive(Deserialize)]
struct Version {
    v: u8,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let wire = Wire { v: VERSION, s: self.sort.name(), k: self.key.clone(), id: self.id, q: self.query.clone() };
        // Serialising plain data into memory cannot fail; an empty cursor would only be refused.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).unwrap_or_default())
    }

    /// Decodes `raw` and checks that it belongs to the query with this `sort` and fingerprint
    /// `query`. Every failure is a 400 naming `cursor`.
    pub fn decode(raw: &str, sort: SortBy, query: &str) -> Result<Self, ApiError> {
        let bad = |why: &str| ApiError::bad_request("cursor", format!("invalid cursor: {why}"));
        if raw.len() > MAX_CURSOR_CHARS {
            return Err(bad("too long"));
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim_end_matches('=')).map_err(|_| bad("not base64url"))?;
        let version: Version = serde_json::from_slice(&bytes).map_err(|_| bad("not a cursor of this API"))?;
        if version.v != VERSION {
            return Err(bad("from an incompatible version; start again without a cursor"));
        }
        let wire: Wire = serde_json::from_slice(&bytes).map_err(|_| bad("not a cursor of this API"))?;
        if wire.s != sort.name() || !wire.k.fits(sort.field) {
            return Err(ApiError::bad_request(
                "cursor",
                format!("{DIFFERENT_QUERY} (it was made for sort={}, this request has sort={})", wire.s, sort.name()),
            ));
        }
        if wire.q != query {
            return Err(ApiError::bad_request(
                "cursor",
                format!("{DIFFERENT_QUERY} (the filters q, status, priority, tag, due_before or due_after differ)"),
            ));
        }
        Ok(Self { sort, key: wire.k, id: wire.id, query: wire.q })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use chrono::{DateTime, Utc};
    use todo_core::order;

    fn field_of(err: ApiError) -> String {
        match err {
            ApiError::BadRequest { field, .. } => field.unwrap_or_default(),
            other => panic!("expected 400, got {other:?}"),
        }
    }

    #[test]
    fn round_trips_every_kind_of_key() {
        let when: DateTime<Utc> = "2026-11-22T10:00:00.123456789Z".parse().unwrap();
        let cases = [
            ("due", SortKey::Order(order::due_key(when))),
            ("-due", SortKey::Order(crate::sort::undated_key())),
            ("priority", SortKey::Order(order::encode(3))),
            ("-created", SortKey::Order(order::encode(1_763_805_600_123))),
            ("title", SortKey::Title("héllo, wörld & co".into())),
        ];
        for (sort, key) in cases {
            let sort = SortBy::parse(sort).unwrap();
            let cursor = Cursor { sort, key, id: Uuid::new_v4(), query: "f1".into() };
            let encoded = cursor.encode();
            assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{encoded}");
            assert_eq!(Cursor::decode(&encoded, sort, "f1").unwrap(), cursor);
        }
    }

    #[test]
    fn garbage_is_refused_naming_cursor() {
        let sort = SortBy::default();
        for raw in ["", "!!!", "bm90IGpzb24", &URL_SAFE_NO_PAD.encode(br#"{"v":1,"s":"-created"}"#), &"A".repeat(5000)]
        {
            assert_eq!(field_of(Cursor::decode(raw, sort, "").unwrap_err()), "cursor", "{raw:?}");
        }
    }

    #[test]
    fn a_cursor_of_another_sort_is_refused() {
        let cursor = Cursor {
            sort: SortBy::parse("due").unwrap(),
            key: SortKey::Order(order::encode(5)),
            id: Uuid::nil(),
            query: "f".into(),
        };
        let encoded = cursor.encode();
        let err = Cursor::decode(&encoded, SortBy::parse("-due").unwrap(), "f").unwrap_err();
        assert!(err.to_string().starts_with(DIFFERENT_QUERY), "{err}");
        assert!(err.to_string().contains("sort=due, this request has sort=-due"), "{err}");
        assert_eq!(field_of(Cursor::decode(&encoded, SortBy::parse("title").unwrap(), "f").unwrap_err()), "cursor");
        // The name matches but the key was tampered into another field's kind.
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(
                &serde_json::json!({"v": 3, "s": "due", "k": {"title": "x"}, "id": Uuid::nil(), "q": "f"}),
            )
            .unwrap(),
        );
        assert_eq!(field_of(Cursor::decode(&forged, SortBy::parse("due").unwrap(), "f").unwrap_err()), "cursor");
    }

    #[test]
    fn a_cursor_of_other_filters_is_refused() {
        let sort = SortBy::parse("due").unwrap();
        let encoded =
            Cursor { sort, key: SortKey::Order(order::encode(5)), id: Uuid::nil(), query: "tag=home".into() }.encode();
        let err = Cursor::decode(&encoded, sort, "tag=work").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{DIFFERENT_QUERY} (the filters q, status, priority, tag, due_before or due_after differ)")
        );
        assert_eq!(field_of(err), "cursor");
    }

    #[test]
    fn a_cursor_without_a_query_is_from_an_old_version() {
        let old = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&serde_json::json!({"v": 1, "s": "due", "k": {"due": null}, "id": Uuid::nil()}))
                .unwrap(),
        );
        let err = Cursor::decode(&old, SortBy::parse("due").unwrap(), "").unwrap_err();
        assert!(err.to_string().contains("incompatible version"), "{err}");
        assert_eq!(field_of(err), "cursor");
    }
}
