//! The query string of `GET /v1/tasks`, parsed by hand.
//!
//! By hand because `priority` and `tag` repeat (`?tag=a&tag=b`), which serde's flat query
//! deserialisers do not model, and because every mistake must be a 400 that names the parameter.
//! Unknown parameters are refused too: a typo such as `tags=work` silently ignored would return
//! an unfiltered list that looks like a filtered one.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use todo_core::task::{Priority, Status};
use todo_core::validate::{MAX_TAG_CHARS, MAX_TAGS};

use crate::cursor::Cursor;
use crate::error::ApiError;
use crate::search;
use crate::sort::SortBy;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 200;
/// Longest search string: longer than any title, short enough to bound the scan's cost.
pub const MAX_Q_CHARS: usize = 200;
/// Longest query string read at all.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;

/// Every parameter `GET /v1/tasks` understands.
pub const NAMES: [&str; 10] =
    ["q", "status", "priority", "tag", "due_before", "due_after", "sort", "limit", "cursor", "owner"];

/// A validated list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParams {
    /// The search text's [`search::key`] (normalised and case-folded), matched against the
    /// keys of title and description. The key, not the text as sent, is what the cursor is
    /// bound to: `STRASSE` and `straße` are one query with one result.
    pub q: Option<String>,
    pub status: Option<Status>,
    /// Any of these (empty: all).
    pub priorities: Vec<Priority>,
    /// All of these.
    pub tags: BTreeSet<String>,
    /// Only tasks due strictly before this instant.
    pub due_before: Option<DateTime<Utc>>,
    /// Only tasks due strictly after this instant.
    pub due_after: Option<DateTime<Utc>>,
    pub sort: SortBy,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

impl Default for ListParams {
    fn default() -> Self {
        Self {
            q: None,
            status: None,
            priorities: Vec::new(),
            tags: BTreeSet::new(),
            due_before: None,
            due_after: None,
            sort: SortBy::default(),
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(field, message)
}

/// Parses the raw query string (`None` when the URI has none).
pub fn parse(query: Option<&str>) -> Result<ListParams, ApiError> {
    let query = query.unwrap_or_default();
    if query.len() > MAX_QUERY_BYTES {
        return Err(bad("query", format!("the query string is longer than {MAX_QUERY_BYTES} bytes")));
    }
    let mut params = ListParams::default();
    let mut seen: BTreeSet<&'static str> = BTreeSet::new();
    let mut raw_cursor = None;
    for (name, value) in decode_pairs(query)? {
        let Some(name) = NAMES.into_iter().find(|n| *n == name) else {
            return Err(bad(&name, format!("unknown query parameter {name:?}; known: {}", NAMES[..9].join(", "))));
        };
        let repeatable = matches!(name, "priority" | "tag");
        if !repeatable && !seen.insert(name) {
            return Err(bad(name, format!("{name} may be given only once")));
        }
        match name {
            "q" => {
                let q = value.trim();
                // Counted as sent: folding can lengthen a query (`ß` is `ss`) but not beyond a
                // small factor, so this still bounds the scan's cost.
                if q.chars().count() > MAX_Q_CHARS {
                    return Err(bad("q", format!("at most {MAX_Q_CHARS} characters")));
                }
                params.q = (!q.is_empty()).then(|| search::key(q));
            }
            "status" => {
                params.status = Some(match value.as_str() {
                    "open" => Status::Open,
                    "completed" => Status::Completed,
                    _ => return Err(bad("status", "must be open or completed")),
                });
            }
            "priority" => {
                // Repeatable, and comma lists are accepted too (`priority=high,urgent`).
                for one in value.split(',') {
                    let priority = Priority::ALL
                        .into_iter()
                        .find(|p| p.as_str() == one.trim())
                        .ok_or_else(|| bad("priority", "must be low, medium, high or urgent"))?;
                    if !params.priorities.contains(&priority) {
                        params.priorities.push(priority);
                    }
                }
            }
            "tag" => {
                let tag = value.trim();
                if tag.is_empty() || tag.chars().count() > MAX_TAG_CHARS {
                    return Err(bad("tag", format!("a tag is 1 to {MAX_TAG_CHARS} characters")));
                }
                params.tags.insert(tag.to_owned());
                if params.tags.len() > MAX_TAGS {
                    return Err(bad("tag", format!("at most {MAX_TAGS} tags")));
                }
            }
            "due_before" => params.due_before = Some(parse_time("due_before", &value)?),
            "due_after" => params.due_after = Some(parse_time("due_after", &value)?),
            "sort" => {
                params.sort = SortBy::parse(&value)
                    .ok_or_else(|| bad("sort", format!("must be one of {}", SortBy::all_names().join(", "))))?;
            }
            "limit" => {
                params.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| bad("limit", format!("must be an integer from 1 to {MAX_LIMIT}")))?;
            }
            "cursor" => raw_cursor = Some(value).filter(|c| !c.is_empty()),
            // `owner` is listed only to answer it clearly: the owner is the token's subject.
            "owner" => return Err(bad("owner", "tasks are listed for the authenticated user only")),
            _ => {}
        }
    }
    // The cursor is checked against the final query, wherever `sort` or a filter appeared.
    if let Some(raw) = raw_cursor {
        params.cursor = Some(Cursor::decode(&raw, params.sort, &params.fingerprint())?);
    }
    Ok(params)
}

impl ListParams {
    /// What a cursor is bound to: the filters and the sort, in a canonical form (parameter
    /// order, repetition and comma lists, `+01:00` against `Z` do not matter), hashed with
    /// SHA-256 and cut to 128 bits, which keeps cursors short and is far beyond any chance
    /// collision. Not a secret and not a signature: it only tells an honest client that it
    /// changed its query between pages. `limit` and `cursor` are not part of it.
    pub fn fingerprint(&self) -> String {
        use base64::Engine as _;
        // Fed to the hash piece by piece, each piece length-prefixed so that no two queries
        // run together into the same bytes; no formatting, which task-api's 8 MB budget feels.
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        let mut piece = |bytes: &[u8]| {
            hash.update(&(bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        };
        piece(self.q.as_deref().unwrap_or("\0").as_bytes());
        piece(self.status.map_or("", Status::as_str).as_bytes());
        let mut priorities: Vec<Priority> = self.priorities.clone();
        priorities.sort_unstable();
        for priority in priorities {
            piece(priority.as_str().as_bytes());
        }
        piece(b"tags");
        for tag in &self.tags {
            piece(tag.as_bytes());
        }
        for bound in [self.due_before, self.due_after] {
            let nanos = bound.map(|t| (t.timestamp(), t.timestamp_subsec_nanos()));
            piece(&nanos.map_or([0xff; 12], |(secs, sub)| {
                let mut bytes = [0; 12];
                bytes[..8].copy_from_slice(&secs.to_le_bytes());
                bytes[8..].copy_from_slice(&sub.to_le_bytes());
                bytes
            }));
        }
        piece(self.sort.name().as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&hash.finish().as_ref()[..16])
    }
}

/// An RFC 3339 instant. A `+` in a query string means a space, so an unencoded offset
/// (`...T09:00:00+01:00`) arrives as `...T09:00:00 01:00`; that one ambiguity is repaired.
fn parse_time(field: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .or_else(|e| match value.rfind(' ') {
            Some(at) => DateTime::parse_from_rfc3339(&format!("{}+{}", &value[..at], &value[at + 1..])),
            None => Err(e),
        })
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| bad(field, "must be an RFC 3339 date-time with offset, such as 2026-12-01T09:00:00Z"))
}

/// `application/x-www-form-urlencoded` decoding: `&`-separated pairs, `+` is a space, `%XX`
/// escapes. Malformed escapes are kept literally (as browsers do); a value that is not UTF-8
/// after decoding is a 400 naming its parameter.
pub fn decode_pairs(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = part.split_once('=').unwrap_or((part, ""));
        let name = String::from_utf8(percent_decode(raw_name))
            .map_err(|_| bad("query", "a parameter name is not valid UTF-8"))?;
        let value = String::from_utf8(percent_decode(raw_value))
            .map_err(|_| bad(&name, format!("the value of {name} is not valid UTF-8")))?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

fn percent_decode(raw: &str) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                // Two hex digits exactly (`from_str_radix` alone would also take a sign).
                let escaped = bytes
                    .get(i + 1..i + 3)
                    .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|hex| std::str::from_utf8(hex).ok());
                match escaped.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::sort::SortKey;
    use uuid::Uuid;

    fn field_of(result: Result<ListParams, ApiError>) -> String {
        match result.unwrap_err() {
            ApiError::BadRequest { field, .. } => field.unwrap_or_default(),
            other => panic!("expected 400, got {other:?}"),
        }
    }

    #[test]
    fn no_query_means_defaults() {
        assert_eq!(parse(None).unwrap(), ListParams::default());
        assert_eq!(parse(Some("")).unwrap(), ListParams::default());
        assert_eq!(parse(Some("&&")).unwrap(), ListParams::default());
    }

    #[test]
    fn every_parameter() {
        let params = parse(Some(
            "q=Buy+MILK%21&status=open&priority=high&priority=urgent,high&tag=home&tag=errand\
             &due_before=2026-12-01T00:00:00Z&due_after=2026-11-01T00:00:00%2B01:00&sort=-due&limit=10",
        ))
        .unwrap();
        assert_eq!(params.q.as_deref(), Some("buy milk!"));
        assert_eq!(params.status, Some(Status::Open));
        assert_eq!(params.priorities, vec![Priority::High, Priority::Urgent]);
        assert_eq!(params.tags, BTreeSet::from(["errand".to_owned(), "home".to_owned()]));
        assert_eq!(params.due_before, Some("2026-12-01T00:00:00Z".parse().unwrap()));
        assert_eq!(params.due_after, Some("2026-10-31T23:00:00Z".parse().unwrap()));
        assert_eq!(params.sort.name(), "-due");
        assert_eq!(params.limit, 10);
    }

    #[test]
    fn an_unencoded_plus_in_an_offset_is_repaired() {
        let params = parse(Some("due_before=2026-12-01T09:00:00+01:00")).unwrap();
        assert_eq!(params.due_before, Some("2026-12-01T08:00:00Z".parse().unwrap()));
    }

    #[test]
    fn errors_name_the_parameter() {
        let cases = [
            ("status=done", "status"),
            ("priority=high&priority=whenever", "priority"),
            ("tag=", "tag"),
            ("due_before=tomorrow", "due_before"),
            ("due_after=2026-12-01", "due_after"),
            ("due_after=2026-12-01T09:00:00", "due_after"),
            ("sort=name", "sort"),
            ("sort=due&sort=title", "sort"),
            ("limit=0", "limit"),
            ("limit=201", "limit"),
            ("limit=-1", "limit"),
            ("limit=ten", "limit"),
            ("limit=5&limit=6", "limit"),
            ("cursor=%%%", "cursor"),
            ("tags=work", "tags"),
            ("owner=bob", "owner"),
            ("q=%FF", "q"),
        ];
        for (query, field) in cases {
            assert_eq!(field_of(parse(Some(query))), field, "{query}");
        }
        let long_q = format!("q={}", "x".repeat(MAX_Q_CHARS + 1));
        assert_eq!(field_of(parse(Some(&long_q))), "q");
    }

    #[test]
    fn q_is_kept_as_its_search_key_and_counted_as_sent() {
        assert_eq!(parse(Some("q=STRA%C3%9FE")).unwrap().q.as_deref(), Some("strasse"));
        // `ß` folds to two characters; the limit is on what the user typed.
        let sharp = format!("q={}", "%C3%9F".repeat(MAX_Q_CHARS));
        assert_eq!(parse(Some(&sharp)).unwrap().q.map(|q| q.chars().count()), Some(2 * MAX_Q_CHARS));
        let too_long = format!("q={}", "%C3%9F".repeat(MAX_Q_CHARS + 1));
        assert_eq!(field_of(parse(Some(&too_long))), "q");
        // One search, one fingerprint: a cursor from `STRASSE` serves `straße`.
        assert_eq!(
            parse(Some("q=STRASSE")).unwrap().fingerprint(),
            parse(Some("q=stra%C3%9Fe")).unwrap().fingerprint()
        );
    }

    fn cursor_for(query: &str) -> Cursor {
        let params = parse(Some(query)).unwrap();
        Cursor { sort: params.sort, key: SortKey::Title("m".into()), id: Uuid::nil(), query: params.fingerprint() }
    }

    #[test]
    fn the_cursor_is_checked_against_the_final_sort() {
        let cursor = cursor_for("sort=title");
        let encoded = cursor.encode();
        let params = parse(Some(&format!("cursor={encoded}&sort=title"))).unwrap();
        assert_eq!(params.cursor, Some(cursor));
        assert_eq!(field_of(parse(Some(&format!("cursor={encoded}")))), "cursor", "default sort is -created");
        assert_eq!(parse(Some("cursor=")).unwrap().cursor, None, "an empty cursor is the first page");
    }

    #[test]
    fn the_cursor_is_bound_to_the_filters() {
        let encoded = cursor_for("sort=title&tag=home&priority=high,urgent&status=open").encode();
        // The same query, spelled differently, and with another page size: accepted.
        let same = format!("priority=urgent&priority=high&tag=home&status=open&sort=title&limit=5&cursor={encoded}");
        assert!(parse(Some(&same)).unwrap().cursor.is_some());
        for changed in [
            "tag=work",
            "tag=home&tag=x",
            "priority=high",
            "status=completed",
            "q=rent",
            "due_before=2027-01-01T00:00:00Z",
            "due_after=2026-01-01T00:00:00Z",
        ] {
            let query = match changed.split('=').next().unwrap() {
                "tag" => format!("sort=title&{changed}&priority=high,urgent&status=open"),
                "priority" => format!("sort=title&tag=home&{changed}&status=open"),
                "status" => format!("sort=title&tag=home&priority=high,urgent&{changed}"),
                _ => format!("sort=title&tag=home&priority=high,urgent&status=open&{changed}"),
            };
            let err = parse(Some(&format!("{query}&cursor={encoded}"))).unwrap_err();
            assert!(err.to_string().contains("made for a different query"), "{query}: {err}");
            assert_eq!(field_of(Err(err)), "cursor", "{query}");
        }
    }

    #[test]
    fn equal_instants_give_the_same_fingerprint() {
        let a = parse(Some("due_before=2026-12-01T09:00:00%2B01:00")).unwrap().fingerprint();
        let b = parse(Some("due_before=2026-12-01T08:00:00Z")).unwrap().fingerprint();
        assert_eq!(a, b);
        assert_ne!(a, parse(Some("due_after=2026-12-01T08:00:00Z")).unwrap().fingerprint());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            decode_pairs("a=1%202&b&c=%zz&%74ag=x+y&d=%E2%9C%93").unwrap(),
            vec![
                ("a".into(), "1 2".into()),
                ("b".into(), String::new()),
                ("c".into(), "%zz".into()),
                ("tag".into(), "x y".into()),
                ("d".into(), "✓".into()),
            ]
        );
        assert_eq!(decode_pairs("x=%4").unwrap(), vec![("x".into(), "%4".into())]);
        assert_eq!(decode_pairs("x=%+1").unwrap(), vec![("x".into(), "% 1".into())]);
    }
}
