//! Client of the Dapr sidecar's HTTP API: the only way functions reach Kafka, the state stores,
//! the Scheduler and output bindings.
//!
//! Why HTTP and not the `dapr` crate: the Rust SDK is alpha and cannot answer RETRY or DROP from
//! a topic handler; over HTTP every status Dapr understands is ours to send and to read, the
//! client can be tested against a stub on loopback, and the binaries stay small.
//!
//! Facts this module is written against (status codes, body shapes) are cited in
//! `docs/dapr-contract.md`. The short version:
//! - base URL: `DAPR_HTTP_ENDPOINT`, else `http://127.0.0.1:$DAPR_HTTP_PORT` (default 3500);
//! - `dapr-api-token: $DAPR_API_TOKEN` on every call when set;
//! - before the first call, wait for `GET /v1.0/healthz/outbound` (components loaded) instead of
//!   failing the first events after a cold start;
//! - `traceparent` of the current handler on every call (see [`crate::trace`]).

mod bindings;
mod error;
mod jobs;
mod pubsub;
mod state;

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use tokio::sync::OnceCell;

pub use bindings::BindingRequest;
pub use error::DaprError;
pub use jobs::{FailurePolicy, Job, JobInfo};
pub use pubsub::Publish;
pub use state::{
    BulkItem, Concurrency, Inserted, Query, QueryItem, QueryPage, SaveItem, Sort, SortOrder, TxOp, Versioned,
};

use crate::trace::TraceContext;

/// The header Dapr reads and sends API tokens in.
pub const API_TOKEN_HEADER: &str = "dapr-api-token";

/// Sidecar connection settings, read from the environment variables Dapr itself sets
/// (`DAPR_HTTP_PORT`, `DAPR_API_TOKEN`) or the SDK convention (`DAPR_HTTP_ENDPOINT`).
#[derive(Debug, Clone, Deserialize)]
pub struct DaprConfig {
    /// `DAPR_HTTP_ENDPOINT`: the sidecar's base URL, `http` or `https` (the latter only in a
    /// build with the `tls` feature). When set and not blank it wins over the port.
    #[serde(default)]
    pub dapr_http_endpoint: Option<String>,
    /// `DAPR_HTTP_PORT` (default 3500), as the sidecar injector sets it: the sidecar is then
    /// `http://127.0.0.1:<port>`. Ignored when an endpoint is set.
    #[serde(default = "default_port")]
    pub dapr_http_port: u16,
    /// `DAPR_API_TOKEN`, sent as `dapr-api-token` on every call. It must be the sidecar's own: a
    /// sidecar that has one answers 401 to any call without it, health checks aside. Empty is none.
    #[serde(default)]
    pub dapr_api_token: Option<String>,
    /// How long the first call waits for the sidecar's components (`healthz/outbound`).
    #[serde(default = "default_startup_timeout_ms")]
    pub dapr_startup_timeout_ms: u64,
    /// Per-request timeout. Above Dapr's own 30 s limit for scheduling a job.
    #[serde(default = "default_request_timeout_ms")]
    pub dapr_request_timeout_ms: u64,
    /// Path version of the Jobs API: `v1.0-alpha1` works on 1.16 to 1.18, `v1.0` from 1.18.
    #[serde(default = "default_jobs_api")]
    pub dapr_jobs_api: String,
}

fn default_port() -> u16 {
    3500
}
fn default_startup_timeout_ms() -> u64 {
    30_000
}
fn default_request_timeout_ms() -> u64 {
    35_000
}
fn default_jobs_api() -> String {
    "v1.0-alpha1".to_owned()
}

impl Default for DaprConfig {
    fn default() -> Self {
        Self {
            dapr_http_endpoint: None,
            dapr_http_port: default_port(),
            dapr_api_token: None,
            dapr_startup_timeout_ms: default_startup_timeout_ms(),
            dapr_request_timeout_ms: default_request_timeout_ms(),
            dapr_jobs_api: default_jobs_api(),
        }
    }
}

impl DaprConfig {
    /// Reads the variables named after the fields in upper case (`DAPR_HTTP_PORT`, ...), with the
    /// defaults above for those unset. A value that does not parse is a [`DaprError::Config`].
    pub fn from_env() -> Result<Self, DaprError> {
        envy::from_env::<Self>().map_err(|e| DaprError::Config(e.to_string()))
    }

    fn base_url(&self) -> Result<Url, DaprError> {
        let raw = match self.dapr_http_endpoint.as_deref().map(str::trim) {
            Some(endpoint) if !endpoint.is_empty() => endpoint.to_owned(),
            _ => format!("http://127.0.0.1:{}", self.dapr_http_port),
        };
        let url = Url::parse(&raw).map_err(|e| DaprError::Config(format!("DAPR_HTTP_ENDPOINT {raw:?}: {e}")))?;
        if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
            return Err(DaprError::Config(format!("DAPR_HTTP_ENDPOINT {raw:?} is not an http(s) URL")));
        }
        Ok(url)
    }
}

/// HTTPS to the sidecar, in a build with the `tls` feature. reqwest is built without a
/// default TLS provider so that such a binary carries `ring` rather than aws-lc (half the
/// size); installing it is idempotent, and an error only means another provider came first.
#[cfg(feature = "tls")]
fn tls(builder: reqwest::ClientBuilder, base: &Url) -> Result<reqwest::ClientBuilder, DaprError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(if base.scheme() == "http" {
        // Plain HTTP to a local sidecar needs no trust roots, and loading the platform's
        // (parsing every CA certificate on the machine) would be most of a cold start.
        builder.tls_certs_only(std::iter::empty())
    } else {
        builder
    })
}

/// Without the `tls` feature an `https` endpoint is refused when the client is built, naming
/// the fix, rather than failing on the first request.
#[cfg(not(feature = "tls"))]
fn tls(builder: reqwest::ClientBuilder, base: &Url) -> Result<reqwest::ClientBuilder, DaprError> {
    if base.scheme() == "https" {
        return Err(DaprError::Config(format!(
            "DAPR_HTTP_ENDPOINT {base} is https, and this build has no TLS: build with \
             `--features dapr-fn/tls`, or reach the sidecar over http (it runs beside the app)"
        )));
    }
    Ok(builder)
}

/// A cheap-to-clone handle on one sidecar.
#[derive(Debug, Clone)]
pub struct Dapr {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    ready: OnceCell<()>,
    startup_timeout: Duration,
    jobs_api: String,
}

impl Dapr {
    /// Builds the client without contacting the sidecar: the first call waits for it
    /// ([`Self::ready`]). Fails with [`DaprError::Config`] on an endpoint that is not an http(s)
    /// URL, or an `https` one in a build without the `tls` feature.
    pub fn new(config: &DaprConfig) -> Result<Self, DaprError> {
        let base = config.base_url()?;
        let builder = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.dapr_request_timeout_ms))
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(60))
            .no_proxy();
        let builder = tls(builder, &base)?;
        let http = builder.build().map_err(|e| DaprError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                token: config.dapr_api_token.clone().filter(|t| !t.is_empty()),
                ready: OnceCell::new(),
                startup_timeout: Duration::from_millis(config.dapr_startup_timeout_ms),
                jobs_api: config.dapr_jobs_api.clone(),
            }),
        })
    }

    /// [`DaprConfig::from_env`] then [`Self::new`], as [`crate::runtime::run`] does at start.
    pub fn from_env() -> Result<Self, DaprError> {
        Self::new(&DaprConfig::from_env()?)
    }

    /// The sidecar's base URL.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// Waits until the sidecar has loaded its components. Called before every API call; only the
    /// first successful wait costs anything.
    pub async fn ready(&self) -> Result<(), DaprError> {
        self.inner
            .ready
            .get_or_try_init(|| async {
                let deadline = tokio::time::Instant::now() + self.inner.startup_timeout;
                let mut pause = Duration::from_millis(50);
                loop {
                    if self.outbound_healthy().await {
                        return Ok(());
                    }
                    if tokio::time::Instant::now() + pause > deadline {
                        return Err(DaprError::NotReady(self.inner.startup_timeout));
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            })
            .await
            .map(|_| ())
    }

    async fn outbound_healthy(&self) -> bool {
        let url = self.url(&["v1.0", "healthz", "outbound"]);
        // Health endpoints are exempt from the API token; sending it does no harm.
        let request = self.decorate(self.inner.http.get(url));
        matches!(request.send().await, Ok(r) if r.status().is_success())
    }

    /// `base/seg1/seg2/...` with every segment percent-encoded (state keys may contain `:`).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn decorate(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(token) = &self.inner.token {
            request = request.header(API_TOKEN_HEADER, token);
        }
        if let Some(trace) = TraceContext::current() {
            request = request.header("traceparent", trace.traceparent());
            if let Some(state) = &trace.tracestate {
                request = request.header("tracestate", state);
            }
        }
        request
    }

    /// Sends one API call after the readiness wait. Returns the status and body whatever the
    /// status; callers map statuses, because their meaning differs per endpoint.
    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        what: &str,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, bytes::Bytes), DaprError> {
        self.call_with(method, url, body, &[], what).await
    }

    /// [`Self::call`] with extra request headers (`If-Match`).
    async fn call_with(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        headers: &[(reqwest::header::HeaderName, &str)],
        what: &str,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, bytes::Bytes), DaprError> {
        self.ready().await?;
        let mut request = self.decorate(self.inner.http.request(method, url));
        for (name, value) in headers {
            request = request.header(name, *value);
        }
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        }
        let unavailable = |source| DaprError::Unavailable { what: what.to_owned(), source };
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(unavailable)?;
        Ok((status, headers, body))
    }
}

/// The generic error for an unexpected status.
fn status_error(what: &str, status: StatusCode, body: &[u8]) -> DaprError {
    let (code, message) = error::ErrorBody::parse(body);
    DaprError::Status { what: what.to_owned(), status: status.as_u16(), code, message }
}

fn encode<T: serde::Serialize + ?Sized>(what: &str, value: &T) -> Result<Vec<u8>, DaprError> {
    serde_json::to_vec(value).map_err(|source| DaprError::Encode { what: what.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_takes_precedence_over_port() {
        let mut config = DaprConfig { dapr_http_port: 3601, ..DaprConfig::default() };
        assert_eq!(config.base_url().unwrap().as_str(), "http://127.0.0.1:3601/");
        config.dapr_http_endpoint = Some("https://dapr.example:443/prefix".into());
        assert_eq!(config.base_url().unwrap().as_str(), "https://dapr.example/prefix");
        config.dapr_http_endpoint = Some("   ".into());
        assert_eq!(config.base_url().unwrap().as_str(), "http://127.0.0.1:3601/");
        config.dapr_http_endpoint = Some("ftp://x".into());
        assert!(matches!(config.base_url(), Err(DaprError::Config(_))));
    }

    #[test]
    fn an_https_endpoint_needs_the_tls_feature() {
        let config =
            DaprConfig { dapr_http_endpoint: Some("https://dapr.example/prefix".into()), ..DaprConfig::default() };
        match Dapr::new(&config) {
            #[cfg(feature = "tls")]
            Ok(dapr) => assert_eq!(dapr.url(&["v1.0", "healthz"]).as_str(), "https://dapr.example/prefix/v1.0/healthz"),
            #[cfg(not(feature = "tls"))]
            Err(DaprError::Config(message)) => assert!(message.contains("--features dapr-fn/tls"), "{message}"),
            other => panic!("unexpected: {other:?}"),
        }
    }

    #[test]
    fn path_segments_are_encoded() {
        let dapr = Dapr::new(&DaprConfig::default()).unwrap();
        let url = dapr.url(&["v1.0", "state", "tasks", "task:a/b c"]);
        assert_eq!(url.as_str(), "http://127.0.0.1:3500/v1.0/state/tasks/task:a%2Fb%20c");
    }

    #[test]
    fn empty_token_means_no_token() {
        let config = DaprConfig { dapr_api_token: Some(String::new()), ..DaprConfig::default() };
        assert!(Dapr::new(&config).unwrap().inner.token.is_none());
    }
}
