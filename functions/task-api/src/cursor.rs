//! Keyset cursors for `GET /v1/tasks`: the sort, the last item's sort key and its id, as
//! base64url JSON.
//!
//! A keyset cursor says "after this point in the order", not "skip n items", so a task created
//! or deleted between two page requests neither duplicates nor hides an item. The cursor names
//! its sort, because a key of one order is meaningless in another: a cursor replayed with a
//! different `sort` is refused rather than silently restarting. It is opaque to clients, but not
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

/// A decoded cursor: resume strictly after `(key, id)` in the order `sort`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub sort: SortBy,
    pub key: SortKey,
    pub id: Uuid,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    /// Format version, so that a future change can refuse old cursors explicitly.
    v: u8,
    /// The sort's query-string name (`-due`).
    s: String,
    k: SortKey,
    id: Uuid,
}

const VERSION: u8 = 1;

impl Cursor {
    pub fn encode(&self) -> String {
        let wire = Wire { v: VERSION, s: self.sort.name(), k: self.key.clone(), id: self.id };
        // Serialising plain data into memory cannot fail; an empty cursor would only be refused.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).unwrap_or_default())
    }

    /// Decodes `raw` and checks that it belongs to `sort`. Every failure is a 400 naming
    /// `cursor`.
    pub fn decode(raw: &str, sort: SortBy) -> Result<Self, ApiError> {
        let bad = |why: &str| ApiError::bad_request("cursor", format!("invalid cursor: {why}"));
        if raw.len() > MAX_CURSOR_CHARS {
            return Err(bad("too long"));
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim_end_matches('=')).map_err(|_| bad("not base64url"))?;
        let wire: Wire = serde_json::from_slice(&bytes).map_err(|_| bad("not a cursor of this API"))?;
        if wire.v != VERSION {
            return Err(bad("from an incompatible version; start again without a cursor"));
        }
        if wire.s != sort.name() || wire.k.field() != sort.field {
            return Err(bad(&format!(
                "it was issued for sort={}, not sort={}; use the same sort to page on",
                wire.s,
                sort.name()
            )));
        }
        Ok(Self { sort, key: wire.k, id: wire.id })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use chrono::{DateTime, Utc};
    use shared::domain::task::Priority;

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
            ("due", SortKey::Due(Some(when))),
            ("-due", SortKey::Due(None)),
            ("priority", SortKey::Priority(Priority::Urgent)),
            ("-created", SortKey::Created(when)),
            ("updated", SortKey::Updated(when)),
            ("title", SortKey::Title("héllo, wörld & co".into())),
        ];
        for (sort, key) in cases {
            let sort = SortBy::parse(sort).unwrap();
            let cursor = Cursor { sort, key, id: Uuid::new_v4() };
            let encoded = cursor.encode();
            assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{encoded}");
            assert_eq!(Cursor::decode(&encoded, sort).unwrap(), cursor);
        }
    }

    #[test]
    fn garbage_is_refused_naming_cursor() {
        let sort = SortBy::default();
        for raw in ["", "!!!", "bm90IGpzb24", &URL_SAFE_NO_PAD.encode(br#"{"v":1,"s":"-created"}"#), &"A".repeat(5000)]
        {
            assert_eq!(field_of(Cursor::decode(raw, sort).unwrap_err()), "cursor", "{raw:?}");
        }
    }

    #[test]
    fn a_cursor_of_another_sort_is_refused() {
        let cursor = Cursor { sort: SortBy::parse("due").unwrap(), key: SortKey::Due(None), id: Uuid::nil() };
        let encoded = cursor.encode();
        assert_eq!(field_of(Cursor::decode(&encoded, SortBy::parse("-due").unwrap()).unwrap_err()), "cursor");
        assert_eq!(field_of(Cursor::decode(&encoded, SortBy::parse("title").unwrap()).unwrap_err()), "cursor");
        // The name matches but the key was tampered into another field's kind.
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&serde_json::json!({"v": 1, "s": "due", "k": {"title": "x"}, "id": Uuid::nil()}))
                .unwrap(),
        );
        assert_eq!(field_of(Cursor::decode(&forged, SortBy::parse("due").unwrap()).unwrap_err()), "cursor");
    }
}
