//! `GET /.well-known/oauth-protected-resource` (no auth): the OAuth 2.0 Protected Resource
//! Metadata of `/mcp` (RFC 9728), how an MCP client that got a 401 learns which authorization
//! server issues tokens for it (MCP authorization spec, "Authorization Server Discovery").
//!
//! - `resource`: the URL of `/mcp`: `MCP_RESOURCE_URL` when set (a deployment behind an Ingress
//!   sets it, since only it knows its public name and scheme), else derived from the request's
//!   `Host` and `X-Forwarded-Proto`, which is what a client on devhost or `dapr run` used.
//! - `authorization_servers`: `JWT_ISSUER`, when set. Development tokens have no issuer (they
//!   come from `devhost dev-token`), so the list is then absent.
//! - `bearer_methods_supported`: `["header"]`: the token goes in `Authorization` only.
//!
//! No `scopes_supported`: task-api has no scopes; a token names a user, and a user reaches
//! exactly their own tasks.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use url::Url;

use super::{METADATA_PATH, PATH, Settings};
use crate::error::ApiError;

/// The metadata document.
#[derive(Debug, Serialize)]
pub struct ResourceMetadata {
    pub resource: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    pub bearer_methods_supported: [&'static str; 1],
    pub resource_name: &'static str,
}

pub async fn handler(State(settings): State<Arc<Settings>>, headers: HeaderMap) -> Response {
    let Some(resource) = resource(&settings, &headers) else {
        return ApiError::bad_request("Host", "the Host header is missing or not a valid host").into_response();
    };
    let document = ResourceMetadata {
        resource: resource.to_string(),
        authorization_servers: settings.authorization_servers.clone(),
        bearer_methods_supported: ["header"],
        resource_name: "todo-functions tasks (MCP)",
    };
    ([(header::CACHE_CONTROL, "max-age=300")], axum::Json(document)).into_response()
}

/// The URL of `/mcp` for this request: `MCP_RESOURCE_URL`, or `http(s)://<Host>/mcp`.
pub fn resource(settings: &Settings, headers: &HeaderMap) -> Option<Url> {
    if let Some(url) = &settings.resource_url {
        return Some(url.clone());
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    // An authority has no path, query, user info or quotes: what is spliced in below stays one.
    let authority = axum::http::uri::Authority::try_from(host).ok()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let scheme = match headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) {
        Some(proto) if proto.trim().eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    Url::parse(&format!("{scheme}://{authority}{PATH}")).ok()
}

/// Where the metadata of the resource is: `<origin of the resource>/.well-known/oauth-protected-resource`.
pub fn metadata_url(settings: &Settings, headers: &HeaderMap) -> Option<String> {
    let resource = resource(settings, headers)?;
    Some(format!("{}{METADATA_PATH}", resource.origin().ascii_serialization()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn the_resource_comes_from_the_host_unless_configured() {
        let settings = Settings::default();
        let local = headers(&[("host", "127.0.0.1:3000")]);
        assert_eq!(resource(&settings, &local).unwrap().as_str(), "http://127.0.0.1:3000/mcp");
        assert_eq!(
            metadata_url(&settings, &local).unwrap(),
            "http://127.0.0.1:3000/.well-known/oauth-protected-resource"
        );
        let proxied = headers(&[("host", "todo.example"), ("x-forwarded-proto", "https")]);
        assert_eq!(resource(&settings, &proxied).unwrap().as_str(), "https://todo.example/mcp");
        let configured =
            Settings { resource_url: Some(Url::parse("https://api.example/mcp").unwrap()), ..Settings::default() };
        assert_eq!(resource(&configured, &local).unwrap().as_str(), "https://api.example/mcp");
        assert_eq!(
            metadata_url(&configured, &local).unwrap(),
            "https://api.example/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn a_host_that_is_not_an_authority_gives_no_resource() {
        let settings = Settings::default();
        for bad in ["evil\"x", "a/b", "user@host", ""] {
            assert!(resource(&settings, &headers(&[("host", bad)])).is_none(), "{bad}");
        }
        assert!(resource(&settings, &HeaderMap::new()).is_none());
    }
}
