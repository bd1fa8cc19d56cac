//! One REST request through task-api's own router, in process: what a tool call becomes.
//!
//! The request carries the caller's `Authorization` header as it reached `/mcp`, so the REST
//! route authenticates the caller itself; and a [`Counted`] marker, because the `/mcp` request
//! it serves was already counted against the caller's rate limit.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt as _;

use crate::rate_limit::Counted;

/// The most bytes of a REST answer read back. Answers are task-api's own, bounded by the page
/// and scan limits; this only keeps a bug from becoming unbounded memory.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// A REST request, as a tool builds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RestRequest {
    pub method: Method,
    /// Path and query, like `/v1/tasks?status=open`.
    pub uri: String,
    pub headers: Vec<(HeaderName, String)>,
    /// Media type and bytes.
    pub body: Option<(&'static str, Vec<u8>)>,
}

impl RestRequest {
    pub fn new(method: Method, uri: impl Into<String>) -> Self {
        Self { method, uri: uri.into(), headers: Vec::new(), body: None }
    }

    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// `If-Match` with `tag` when the caller gave one (`if_match`, taken by
    /// `Arguments::take_if_match`): the conditional form of every change to a task.
    pub fn if_match(self, tag: Option<String>) -> Self {
        match tag {
            Some(tag) => self.header(header::IF_MATCH, tag),
            None => self,
        }
    }

    pub fn body(mut self, media_type: &'static str, bytes: Vec<u8>) -> Self {
        self.body = Some((media_type, bytes));
        self
    }
}

/// A REST answer: the status and the body as JSON (`Null` when there is none).
#[derive(Debug, Clone, PartialEq)]
pub struct RestAnswer {
    pub status: StatusCode,
    pub body: Value,
}

/// Sends `request` with `authorization` through `rest`. `Err` only when the request could not be
/// built or the answer not read, which is task-api's fault, not the caller's.
pub async fn send(
    rest: &Router,
    request: &RestRequest,
    authorization: Option<&HeaderValue>,
) -> Result<RestAnswer, String> {
    let mut builder = Request::builder().method(request.method.clone()).uri(&request.uri);
    if let Some(value) = authorization {
        builder = builder.header(header::AUTHORIZATION, value);
    }
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let body = match &request.body {
        Some((media_type, bytes)) => {
            builder = builder.header(header::CONTENT_TYPE, *media_type);
            Body::from(bytes.clone())
        }
        None => Body::empty(),
    };
    let mut http = builder.body(body).map_err(|e| format!("building {}: {e}", request.uri))?;
    http.extensions_mut().insert(Counted);
    let response = match rest.clone().oneshot(http).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
        .await
        .map_err(|e| format!("reading the answer to {}: {e}", request.uri))?;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).map_err(|e| format!("the answer to {} is not JSON: {e}", request.uri))?
    };
    Ok(RestAnswer { status, body })
}
