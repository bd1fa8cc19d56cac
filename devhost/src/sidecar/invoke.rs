//! Service invocation over HTTP: `/v1.0/invoke/{app-id}/method/{method}` with any HTTP method,
//! and any other path with the header `dapr-app-id: <app-id>` (the method is then the whole
//! path), as dapr/dapr v1.18.2 `pkg/api/http/directmessaging.go` (`onDirectMessage`,
//! `findTargetIDAndMethod`) and `pkg/messaging/direct_messaging.go` route them, to any app of
//! the run file (`<app-id>` or `<app-id>.<namespace>` in devhost's namespace), itself included.
//!
//! The app gets the method, the path `/<method>` (cleaned and normalised as
//! `pkg/messaging/method/normalize.go` does), the raw query string, the body and the caller's
//! headers but the hop-by-hop ones (`pkg/messaging/v1/util.go` `IsHopByHopHeader`) and
//! `dapr-app-id`, with `dapr-api-token` replaced by the app token (`APP_API_TOKEN`) and the
//! caller's trace context passed on, or the zero `traceparent` without one
//! (`pkg/channel/http/http_channel.go` `constructRequest`).
//! A call to another app also carries `dapr-caller-app-id`, `dapr-caller-namespace`,
//! `dapr-callee-app-id`, `X-Forwarded-For`, `X-Forwarded-Host` and `Forwarded`, as the caller's
//! daprd adds them ([`add_remote_headers`]). A body is sent with its length when the caller
//! gave one, else chunked, as Go's client sends it ([`outgoing_body`]). The answer comes back
//! as the app gave it, streamed: status, headers (but hop-by-hop), body, whatever the status.
//! Errors:
//! no app-id 404 `ERR_DIRECT_INVOKE`; an unknown app-id, an app that does not accept the
//! connection, or a method with a forbidden character, 500 `ERR_DIRECT_INVOKE`
//! (`failed to invoke, id: <id>, err: ...`). Resiliency policies for invocation, HTTPEndpoint
//! resources, `http://` targets and gRPC are not emulated (404 `ERR_DEVHOST_NOT_EMULATED`).

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use base64::Engine as _;

use super::{ApiError, Ctx};

const APP_ID_HEADER: &str = "dapr-app-id";

/// `IsHopByHopHeader`, plus what the HTTP client sets itself.
fn dropped(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "http2-settings"
            | "te"
            | "trailer"
            | "proxy-authorization"
            | "proxy-authenticate"
            | "host"
            | "content-length"
    )
}

/// Whether a request outside the API routes is an invocation (`dapr-app-id` header, or Basic
/// auth with user `dapr-app-id`).
pub(super) fn is_invocation(headers: &HeaderMap) -> bool {
    target_from_headers(headers).is_some()
}

fn target_from_headers(headers: &HeaderMap) -> Option<String> {
    if let Some(id) = super::header(headers, APP_ID_HEADER).filter(|v| !v.is_empty()) {
        return Some(id.to_owned());
    }
    let auth = super::header(headers, "authorization")?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(auth).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let pair: Vec<&str> = text.split(':').collect();
    (pair.len() == 2 && pair[0].eq_ignore_ascii_case(APP_ID_HEADER)).then(|| pair[1].to_owned())
}

/// Go's `path.Clean`.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// (target, method) as `findTargetIDAndMethod` finds them in the decoded path.
fn target_and_method(path: &str, headers: &HeaderMap) -> Option<(String, String)> {
    if let Some(target) = target_from_headers(headers) {
        return Some((target, clean(path).trim_start_matches('/').to_owned()));
    }
    let rest = path.trim_start_matches('/').strip_prefix("v1.0/invoke/")?;
    let rest = rest.trim_start_matches('/');
    let at = rest.find("/method/").filter(|i| *i > 0)?;
    let target = &rest[..at];
    let mut method = clean(&rest[at + "/method/".len()..]);
    if method == "." {
        method.clear();
    }
    let target = percent_decode(target).filter(|t| !t.is_empty()).unwrap_or_else(|| target.to_owned());
    Some((target, method))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `NormalizeMethod`.
fn normalize(method: &str) -> Result<String, String> {
    if method.contains(['#', '?', '\0']) {
        return Err(format!("method contains forbidden character: {method:?}"));
    }
    if let Some(i) = method.bytes().position(|b| b < 0x20 || b == 0x7f) {
        return Err(format!("method contains control character at position {i}: {method:?}"));
    }
    let mut cleaned = clean(method);
    while let Some(rest) = cleaned.strip_prefix("../") {
        cleaned = rest.to_owned();
    }
    if cleaned == ".." || cleaned == "." {
        cleaned.clear();
    }
    Ok(cleaned)
}

fn invoke_error(target: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::internal("ERR_DIRECT_INVOKE", format!("failed to invoke, id: {target}, err: {err}"))
}

pub(super) async fn invoke(State(ctx): State<Ctx>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let path = percent_decode(parts.uri.path()).unwrap_or_else(|| parts.uri.path().to_owned());
    let Some((target, method)) = target_and_method(&path, &parts.headers) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ERR_DIRECT_INVOKE",
            "failed getting app id either from the URL path or the header dapr-app-id",
        ));
    };
    if target.starts_with("http://") || target.starts_with("https://") {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ERR_DEVHOST_NOT_EMULATED",
            format!("devhost does not emulate invoking a URL ({target}): only the apps of the run file"),
        ));
    }
    let method = normalize(&method)
        .map_err(|e| invoke_error(&target, format!("rpc error: code = InvalidArgument desc = invalid method: {e}")))?;
    let namespace = super::namespace();
    let app_id = match target.split('.').collect::<Vec<_>>().as_slice() {
        [id] => (*id).to_owned(),
        [id, ns] if *ns == namespace => (*id).to_owned(),
        [_, _] => {
            return Err(invoke_error(&target, "devhost knows only the apps of its run file, in its own namespace"));
        }
        _ => return Err(invoke_error(&target, format!("invalid app id {target}"))),
    };
    let Some(app) = ctx.host.apps.get(&app_id) else {
        return Err(invoke_error(&target, format!("app id {app_id} is not an app of devhost's run file")));
    };
    let verb = Method::from_bytes(parts.method.as_str().to_ascii_uppercase().as_bytes()).unwrap_or(parts.method);
    if verb == Method::CONNECT {
        return Err(invoke_error(&target, "rpc error: code = InvalidArgument desc = invalid HTTP verb"));
    }
    let mut url = format!("{}/{method}", app.base_url());
    if let Some(query) = parts.uri.query().filter(|q| !q.is_empty()) {
        url.push('?');
        url.push_str(query);
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        let lower = name.as_str();
        if dropped(lower) || lower == APP_ID_HEADER || lower == "dapr-api-token" {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    // Without a trace context of the caller, daprd's (unsampled, zero) span context is sent.
    if !headers.contains_key("traceparent") {
        headers.insert("traceparent", HeaderValue::from_static(crate::cloudevent::ZERO_TRACEPARENT));
    }
    if let Some(token) = &ctx.host.options.app_token
        && let Ok(v) = HeaderValue::from_str(token)
    {
        headers.insert("dapr-api-token", v);
    }
    if app_id != *ctx.app_id {
        add_remote_headers(&mut headers, &namespace, &ctx.app_id, &app_id);
    }
    let known_length = super::header(&parts.headers, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    let body: Bytes = axum::body::to_bytes(body, 4 << 20)
        .await
        .map_err(|e| ApiError::malformed(format!("failed to read the request body: {e}")))?;
    let body = outgoing_body(&verb, known_length, body);
    let answer = ctx
        .host
        .http
        .request(verb, &url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| invoke_error(&target, format!("{e:#}")))?;
    // Streamed back as it comes (daprd copies it with a flush after every write: a stream of
    // server-sent events reaches the caller event by event).
    let (answer, body) = http::Response::<reqwest::Body>::from(answer).into_parts();
    let mut response = Response::new(Body::new(body));
    *response.status_mut() = answer.status;
    for (name, value) in &answer.headers {
        if !dropped(name.as_str()) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(response)
}

/// What the caller's daprd adds to a call to another app (`direct_messaging.go:553-605`
/// `addForwardedHeadersToMetadata`, `addCallerAndCalleeAppIDHeaderToMetadata`): the forwarding
/// headers, appended to the caller's own, with devhost's address (loopback, where daprd uses its
/// host's address) and the machine's host name, and the caller and callee.
fn add_remote_headers(headers: &mut HeaderMap, namespace: &str, caller: &str, callee: &str) {
    const ADDRESS: &str = "127.0.0.1";
    let host = hostname();
    headers.append("x-forwarded-for", HeaderValue::from_static(ADDRESS));
    let mut forwarded = format!("for={ADDRESS};by={ADDRESS}");
    if let Some(host) = &host {
        if let Ok(v) = HeaderValue::from_str(host) {
            headers.append("x-forwarded-host", v);
        }
        forwarded.push_str(&format!(";host={host}"));
    }
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        headers.append("forwarded", v);
    }
    for (name, value) in
        [("dapr-caller-namespace", namespace), ("dapr-caller-app-id", caller), ("dapr-callee-app-id", callee)]
    {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
}

/// The machine's host name (Go's `os.Hostname` reads the same file on Linux).
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// The body as Go's client sends daprd's request to the app (`net/http` `transferWriter`): with
/// its `Content-Length` when the caller gave a non-zero one; otherwise its length is unknown
/// (`constructRequest` takes it from the caller's header only, and 0 counts as unknown), so it
/// goes chunked, but for methods that usually lack a body (GET, HEAD, DELETE, OPTIONS, ...)
/// whose body turns out empty, which are sent without one.
fn outgoing_body(method: &Method, known_length: Option<u64>, body: Bytes) -> reqwest::Body {
    let lacks_body = matches!(method.as_str(), "GET" | "HEAD" | "DELETE" | "OPTIONS" | "PROPFIND" | "SEARCH");
    match known_length {
        Some(n) if n > 0 && n == body.len() as u64 => reqwest::Body::from(body),
        _ if body.is_empty() && lacks_body => reqwest::Body::from(Bytes::new()),
        _ => reqwest::Body::wrap(Chunked(Some(body))),
    }
}

/// A body of unknown length (no size hint): hyper sends it chunked.
struct Chunked(Option<Bytes>);

impl http_body::Body for Chunked {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.take().filter(|b| !b.is_empty()).map(|b| Ok(http_body::Frame::data(b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_as_daprd_reads_them() {
        let none = HeaderMap::new();
        let found = |p: &str| target_and_method(p, &none);
        assert_eq!(found("/v1.0/invoke/app/method/a/b"), Some(("app".into(), "a/b".into())));
        assert_eq!(found("/v1.0/invoke/app/method/a/../b/"), Some(("app".into(), "b".into())));
        assert_eq!(found("/v1.0/invoke/app/method/"), Some(("app".into(), String::new())));
        assert_eq!(found("/v1.0/invoke/app"), None);
        let mut headers = HeaderMap::new();
        headers.insert(APP_ID_HEADER, HeaderValue::from_static("other"));
        assert_eq!(target_and_method("/x/y", &headers), Some(("other".into(), "x/y".into())));
        assert_eq!(normalize("../../a"), Ok("a".into()));
        assert!(normalize("a#b").is_err());
    }
}
