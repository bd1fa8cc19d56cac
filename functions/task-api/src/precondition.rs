//! `ETag` / `If-Match` / `If-None-Match` over task versions (RFC 9110 §8.8.3, §13.1.1-2).
//!
//! A task's entity tag is its `version` (`"3"`), not the store's ETag: the version is part of
//! the task every client sees, survives a store migration, and grows with every change, while
//! the store's ETag is an implementation detail of `state.postgresql` (`xmin`). The store's ETag
//! still guards the write itself, so a client's `If-Match` and the store's concurrency check
//! compose: the version says "the task I saw", the store ETag says "the row I read".

use axum::http::{HeaderMap, HeaderValue, header};

use crate::error::ApiError;

/// The `ETag` header value of a task at `version`.
pub fn etag(version: u64) -> HeaderValue {
    // Digits and quotes are always a valid header value; the fallback is unreachable.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// What a write request requires of the current task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Precondition {
    /// No `If-Match`: apply the change to whatever is current (retrying on conflicts).
    #[default]
    None,
    /// `If-Match: *`: the task must exist.
    Exists,
    /// `If-Match: "3", "4"`: the current version must be one of `strong`. The versions of weak
    /// tags (`W/"3"`) are kept only to explain the 412: they never match.
    Versions { strong: Vec<u64>, weak: Vec<u64> },
}

impl Precondition {
    /// Parses the `If-Match` headers of a request. A malformed value is a 400 naming the
    /// header: silently ignoring it would turn a conditional write into an unconditional one.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut versions = Vec::new();
        let mut weak_versions = Vec::new();
        let mut any = false;
        let mut seen = false;
        for value in headers.get_all(header::IF_MATCH) {
            seen = true;
            let value = value.to_str().map_err(|_| bad(IF_MATCH, "must be ASCII"))?;
            for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if tag == "*" {
                    any = true;
                } else if let Some(weak) = tag.strip_prefix("W/") {
                    // Weak tags never match under If-Match's strong comparison (RFC 9110
                    // §13.1.1), so the write fails with 412 as the RFC asks, but with a
                    // message that says why and what to send: task-api issues only strong
                    // tags, and a client (or a compressing proxy that weakened the ETag) would
                    // otherwise re-read the task and retry the same weak tag forever.
                    weak_versions.push(parse_quoted(IF_MATCH, weak)?);
                } else {
                    versions.push(parse_quoted(IF_MATCH, tag)?);
                }
            }
        }
        match (seen, any) {
            (false, _) => Ok(Self::None),
            (true, true) => Ok(Self::Exists),
            // An empty `If-Match` is an empty list of tags (RFC 9110 §5.6.1 allows one), which
            // no version matches: 412, never an unconditional write.
            (true, false) => Ok(Self::Versions { strong: versions, weak: weak_versions }),
        }
    }

    pub fn is_conditional(&self) -> bool {
        !matches!(self, Self::None)
    }

    /// Checks the precondition against the current version of an existing task.
    pub fn check(&self, current: u64) -> Result<(), ApiError> {
        match self {
            Self::None | Self::Exists => Ok(()),
            Self::Versions { strong, .. } if strong.contains(&current) => Ok(()),
            Self::Versions { strong, weak } => Err(ApiError::PreconditionFailed {
                current,
                weak: weak.first().copied(),
                empty: strong.is_empty() && weak.is_empty(),
            }),
        }
    }
}

/// Whether a read's `If-None-Match` names the current version, i.e. the client's copy is
/// current and the answer is `304 Not Modified`. Weak comparison, as RFC 9110 §13.1.2 asks of
/// this header: `W/"3"` matches version 3. A malformed value is a 400 naming the header.
pub fn not_modified(headers: &HeaderMap, current: u64) -> Result<bool, ApiError> {
    let mut matched = false;
    for value in headers.get_all(header::IF_NONE_MATCH) {
        let value = value.to_str().map_err(|_| bad(IF_NONE_MATCH, "must be ASCII"))?;
        // An empty value is an empty list (RFC 9110 §5.6.1), which names no version: the read
        // goes ahead as if the header were absent.
        for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            matched |= tag == "*" || parse_quoted(IF_NONE_MATCH, tag.strip_prefix("W/").unwrap_or(tag))? == current;
        }
    }
    Ok(matched)
}

const IF_MATCH: &str = "If-Match";
const IF_NONE_MATCH: &str = "If-None-Match";

fn parse_quoted(name: &str, tag: &str) -> Result<u64, ApiError> {
    let inner = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or_else(|| bad(name, "entity tags must be quoted, as in \"3\""))?;
    inner.parse::<u64>().map_err(|_| bad(name, "entity tags are task versions, as in \"3\""))
}

fn bad(name: &str, message: &str) -> ApiError {
    ApiError::bad_request(name, format!("{name} {message}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn parse(values: &[&str]) -> Result<Precondition, ApiError> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::IF_MATCH, HeaderValue::from_str(v).unwrap());
        }
        Precondition::from_headers(&headers)
    }

    #[test]
    fn etag_is_the_quoted_version() {
        assert_eq!(etag(7), "\"7\"");
    }

    #[test]
    fn parses_the_forms_clients_send() {
        assert_eq!(parse(&[]).unwrap(), Precondition::None);
        assert_eq!(parse(&["*"]).unwrap(), Precondition::Exists);
        let strong = |strong: Vec<u64>| Precondition::Versions { strong, weak: vec![] };
        assert_eq!(parse(&["\"3\""]).unwrap(), strong(vec![3]));
        assert_eq!(parse(&["\"3\", \"4\""]).unwrap(), strong(vec![3, 4]));
        assert_eq!(parse(&["\"3\"", "\"5\""]).unwrap(), strong(vec![3, 5]));
    }

    #[test]
    fn malformed_values_are_400_naming_the_header() {
        for bad in ["3", "\"three\"", "\"3"] {
            match parse(&[bad]) {
                Err(ApiError::BadRequest { field, .. }) => assert_eq!(field.as_deref(), Some("If-Match"), "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn if_none_match_uses_weak_comparison_and_names_itself_when_malformed() {
        let check = |values: &[&str], current| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
            }
            not_modified(&headers, current)
        };
        assert!(!check(&[], 3).unwrap(), "no header: send the task");
        assert!(check(&["\"3\""], 3).unwrap());
        assert!(check(&["W/\"3\""], 3).unwrap(), "weak tags match");
        assert!(check(&["\"1\", \"3\""], 3).unwrap());
        assert!(check(&["\"1\"", "\"3\""], 3).unwrap());
        assert!(check(&["*"], 3).unwrap());
        assert!(!check(&["\"2\""], 3).unwrap(), "a stale copy gets the task");
        assert!(!check(&[""], 3).unwrap(), "an empty list names no version: send the task");
        assert!(!check(&[" , "], 3).unwrap(), "an empty list names no version: send the task");
        for bad in ["3", "\"x\"", "\"3"] {
            match check(&[bad], 3) {
                Err(ApiError::BadRequest { field, .. }) => {
                    assert_eq!(field.as_deref(), Some("If-None-Match"), "{bad:?}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    /// RFC 9110 §5.6.1 allows an empty list, and no version is in it: an empty `If-Match` (a
    /// client whose ETag variable was blank) fails with 412 saying so, and never writes
    /// unconditionally.
    #[test]
    fn an_empty_if_match_matches_nothing_and_says_it_is_empty() {
        for empty in ["", " ", ",", " , "] {
            let precondition = parse(&[empty]).unwrap();
            assert!(precondition.is_conditional(), "{empty:?}");
            let error = precondition.check(4).unwrap_err();
            assert!(matches!(error, ApiError::PreconditionFailed { current: 4, empty: true, .. }), "{empty:?}");
            assert!(error.to_string().contains("If-Match is empty"), "{error}");
        }
    }

    #[test]
    fn checks_use_strong_comparison() {
        assert!(Precondition::None.check(9).is_ok());
        assert!(Precondition::Exists.check(9).is_ok());
        assert!(parse(&["\"9\""]).unwrap().check(9).is_ok());
        assert!(matches!(
            parse(&["\"8\""]).unwrap().check(9),
            Err(ApiError::PreconditionFailed { current: 9, weak: None, empty: false })
        ));
        assert!(parse(&["W/\"9\""]).unwrap().check(9).is_err(), "a weak tag never matches");
    }

    #[test]
    fn a_weak_if_match_fails_explaining_that_weak_tags_are_not_accepted() {
        for values in [&["W/\"9\""][..], &["\"8\", W/\"9\""], &["\"8\"", "W/\"9\""]] {
            let error = parse(values).unwrap().check(9).unwrap_err();
            assert!(matches!(error, ApiError::PreconditionFailed { current: 9, weak: Some(9), .. }), "{values:?}");
            let message = error.to_string();
            assert!(message.contains("weak entity tags such as W/\"9\" are not accepted"), "{message}");
            assert!(message.contains("send the task's ETag as task-api gave it, like \"9\""), "{message}");
        }
        // A strong tag in the list that matches still wins.
        assert!(parse(&["W/\"8\", \"9\""]).unwrap().check(9).is_ok());
    }
}
