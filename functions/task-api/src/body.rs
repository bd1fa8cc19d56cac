//! Request bodies, read by hand: the media type is checked and the bytes are read with axum's
//! rejections mapped to the API's JSON errors (413 for a body over `MAX_BODY_BYTES`, which the
//! runtime enforces with `DefaultBodyLimit`). Parsing is `validate::parse_json` (objects only), which
//! names the failing field; axum's `Json` extractor would answer in plain text without one.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};

use crate::error::ApiError;

pub const JSON: &str = "application/json";
pub const MERGE_PATCH_JSON: &str = "application/merge-patch+json";

/// Requires a `Content-Type` whose media type (parameters such as `charset` aside) is one of
/// `accepted`. A missing type is refused too: `curl -d` sends form encoding by default, and
/// reading that as JSON would only produce a confusing parse error.
pub fn require_media_type(headers: &HeaderMap, accepted: &'static [&'static str]) -> Result<(), ApiError> {
    let expected = match accepted {
        [JSON] => JSON,
        _ => "application/json or application/merge-patch+json",
    };
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    match media_type {
        Some(media_type) if accepted.contains(&media_type.as_str()) => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType { expected }),
    }
}

/// The body bytes, or the API error for why they could not be read.
pub fn bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        _ => ApiError::bad_request("body", "the request body could not be read"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use axum::http::HeaderValue;

    fn with_type(value: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn json_with_parameters_and_any_case_is_accepted() {
        for value in ["application/json", "application/json; charset=utf-8", "Application/JSON"] {
            assert!(require_media_type(&with_type(Some(value)), &[JSON]).is_ok(), "{value}");
        }
    }

    #[test]
    fn other_or_missing_types_are_415() {
        for value in [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some(MERGE_PATCH_JSON)] {
            let err = require_media_type(&with_type(value), &[JSON]).unwrap_err();
            assert!(matches!(err, ApiError::UnsupportedMediaType { .. }), "{value:?}");
        }
        assert!(require_media_type(&with_type(Some(MERGE_PATCH_JSON)), &[JSON, MERGE_PATCH_JSON]).is_ok());
    }
}
