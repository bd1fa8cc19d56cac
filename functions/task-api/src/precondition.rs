//! `ETag` / `If-Match` over task versions (RFC 9110 §8.8.3, §13.1.1).
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
    /// `If-Match: "3", "4"`: the current version must be one of these.
    Versions(Vec<u64>),
}

impl Precondition {
    /// Parses the `If-Match` headers of a request. A malformed value is a 400 naming the
    /// header: silently ignoring it would turn a conditional write into an unconditional one.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut versions = Vec::new();
        let mut any = false;
        let mut seen = false;
        for value in headers.get_all(header::IF_MATCH) {
            seen = true;
            let value = value.to_str().map_err(|_| bad("must be ASCII"))?;
            for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if tag == "*" {
                    any = true;
                } else if let Some(weak) = tag.strip_prefix("W/") {
                    // Weak tags never match under If-Match's strong comparison; keeping them
                    // (as an impossible version) makes the request fail with 412 as it must.
                    parse_quoted(weak)?;
                    versions.push(u64::MAX);
                } else {
                    versions.push(parse_quoted(tag)?);
                }
            }
        }
        match (seen, any, versions.is_empty()) {
            (false, _, _) => Ok(Self::None),
            (true, true, _) => Ok(Self::Exists),
            (true, false, true) => Err(bad("must be * or a list of quoted versions such as \"3\"")),
            (true, false, false) => Ok(Self::Versions(versions)),
        }
    }

    pub fn is_conditional(&self) -> bool {
        !matches!(self, Self::None)
    }

    /// Checks the precondition against the current version of an existing task.
    pub fn check(&self, current: u64) -> Result<(), ApiError> {
        match self {
            Self::None | Self::Exists => Ok(()),
            Self::Versions(versions) if versions.contains(&current) => Ok(()),
            Self::Versions(_) => Err(ApiError::PreconditionFailed { current }),
        }
    }
}

fn parse_quoted(tag: &str) -> Result<u64, ApiError> {
    let inner = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or_else(|| bad("entity tags must be quoted, as in \"3\""))?;
    inner.parse::<u64>().map_err(|_| bad("entity tags are task versions, as in \"3\""))
}

fn bad(message: &str) -> ApiError {
    ApiError::bad_request("If-Match", format!("If-Match {message}"))
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
        assert_eq!(parse(&["\"3\""]).unwrap(), Precondition::Versions(vec![3]));
        assert_eq!(parse(&["\"3\", \"4\""]).unwrap(), Precondition::Versions(vec![3, 4]));
        assert_eq!(parse(&["\"3\"", "\"5\""]).unwrap(), Precondition::Versions(vec![3, 5]));
    }

    #[test]
    fn malformed_values_are_400_naming_the_header() {
        for bad in ["3", "\"three\"", "", "\"3"] {
            match parse(&[bad]) {
                Err(ApiError::BadRequest { field, .. }) => assert_eq!(field.as_deref(), Some("If-Match"), "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn checks_use_strong_comparison() {
        assert!(Precondition::None.check(9).is_ok());
        assert!(Precondition::Exists.check(9).is_ok());
        assert!(parse(&["\"9\""]).unwrap().check(9).is_ok());
        assert!(matches!(parse(&["\"8\""]).unwrap().check(9), Err(ApiError::PreconditionFailed { current: 9 })));
        assert!(parse(&["W/\"9\""]).unwrap().check(9).is_err(), "a weak tag never matches");
    }
}
