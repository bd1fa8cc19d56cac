//! W3C trace context, carried from what woke a handler to every sidecar call it makes.
//!
//! The runtime parses `traceparent` from the CloudEvent (or the request header), gives the
//! handler its own span id, and runs the handler inside [`TraceContext::scope`]. The Dapr client
//! reads [`TraceContext::current`] and sends the handler's span as the parent of its calls, so
//! a trace continues across functions without a single parameter in handler signatures.

use std::fmt;
use std::future::Future;

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// The trace a handler runs in: built by [`TraceContext::continue_from`], never by hand, so
/// that every `traceparent` it sends is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits.
    pub(crate) trace_id: String,
    /// This process's span: 16 lowercase hex digits.
    pub(crate) span_id: String,
    /// The caller's span, if the context was propagated.
    pub(crate) parent_id: Option<String>,
    /// The caller's sampled flag (trace-flags bit 0), passed on; `true` for a new trace.
    pub(crate) sampled: bool,
    /// Opaque vendor state, passed on unchanged.
    pub(crate) tracestate: Option<String>,
}

impl TraceContext {
    /// Continues the trace of a received `traceparent` header or CloudEvent attribute, or starts
    /// a new trace when it is missing or malformed (a bad header must never fail a request).
    pub fn continue_from(traceparent: Option<&str>, tracestate: Option<&str>) -> Self {
        let tracestate = tracestate.filter(|s| !s.is_empty()).map(str::to_owned);
        match traceparent.and_then(parse_traceparent) {
            Some((trace_id, parent_id, sampled)) => {
                Self { trace_id, span_id: random_hex(8), parent_id: Some(parent_id), sampled, tracestate }
            }
            None => Self {
                trace_id: random_hex(16),
                span_id: random_hex(8),
                parent_id: None,
                sampled: true,
                tracestate: None,
            },
        }
    }

    /// The `traceparent` to send on outgoing calls: this span as their parent.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, if self.sampled { "01" } else { "00" })
    }

    /// The context of the handler running on this task, if any.
    pub fn current() -> Option<TraceContext> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `fut` with `self` as the current context.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        CURRENT.scope(self, fut).await
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent())
    }
}

/// `00-<trace-id>-<parent-id>-<flags>`; all-zero ids are invalid per the W3C spec.
fn parse_traceparent(value: &str) -> Option<(String, String, bool)> {
    let mut parts = value.trim().split('-');
    let (version, trace_id, parent_id, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    if version == "ff" || !hex(version, 2) || !hex(flags, 2) {
        return None;
    }
    // Version 00 has exactly four fields; later versions may append more.
    if version == "00" && parts.next().is_some() {
        return None;
    }
    if !hex(trace_id, 32) || !hex(parent_id, 16) || !nonzero(trace_id) || !nonzero(parent_id) {
        return None;
    }
    let sampled = u8::from_str_radix(flags, 16).ok()? & 1 == 1;
    Some((trace_id.to_owned(), parent_id.to_owned(), sampled))
}

fn random_hex(bytes: usize) -> String {
    let random = uuid::Uuid::new_v4();
    let mut out = String::with_capacity(bytes * 2);
    for b in &random.as_bytes()[..bytes] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn continues_a_valid_trace_with_a_new_span() {
        let ctx = TraceContext::continue_from(Some(PARENT), Some("congo=t61rcWkgMzE"));
        assert_eq!(ctx.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.parent_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_ne!(ctx.span_id, "00f067aa0ba902b7");
        assert!(ctx.sampled);
        assert_eq!(ctx.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
        let out = ctx.traceparent();
        assert!(out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(out.ends_with("-01"));
        assert_eq!(parse_traceparent(&out).map(|p| p.1), Some(ctx.span_id.clone()));
    }

    #[test]
    fn malformed_headers_start_a_new_trace() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let ctx = TraceContext::continue_from(Some(bad), None);
            assert_eq!(ctx.parent_id, None, "{bad:?} should not be continued");
            assert_eq!(ctx.trace_id.len(), 32);
            assert_eq!(ctx.span_id.len(), 16);
        }
    }

    #[test]
    fn unsampled_flag_is_kept() {
        let ctx = TraceContext::continue_from(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"), None);
        assert!(!ctx.sampled);
        assert!(ctx.traceparent().ends_with("-00"));
    }

    #[tokio::test]
    async fn scope_sets_the_current_context() {
        assert_eq!(TraceContext::current(), None);
        let ctx = TraceContext::continue_from(Some(PARENT), None);
        let seen = ctx.clone().scope(async { TraceContext::current() }).await;
        assert_eq!(seen, Some(ctx));
    }
}
