//! Webhook delivery: a direct HTTPS call, signed like the Standard Webhooks specification.
//!
//! Why not Dapr's `bindings.http`: it has one URL per component, follows redirects anywhere and
//! checks no address (`docs/notifier.md`). This client follows no redirect (a 3xx is a final
//! failure the user sees in the delivery status), and resolves names itself, refusing any
//! address `check_address` refuses: the address it connects to is the address it checked, so a
//! name rebound to an inside address after task-api accepted it is still refused.
//!
//! Why not reqwest: turning its TLS on here would turn it on for every crate of a workspace
//! build (features unify), where a client without an installed provider panics. So, as
//! task-api's JWKS fetch does: one HTTP/1.1 connection per attempt (a person's receiver gets a
//! reminder now and then; nothing to pool) over tokio-rustls on `ring`, with the platform's
//! trust roots.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt as _, Full};
use serde::Serialize;
use todo_core::delivery::Sent;
use todo_core::events::{ReminderDue, types};
use todo_core::notification::{self, Outcome, TargetPolicy, Webhook};

/// The JSON body of a reminder webhook: Standard Webhooks' `{type, timestamp, data}`.
#[derive(Debug, Serialize)]
pub struct Payload<'a> {
    #[serde(rename = "type")]
    pub event_type: &'static str,
    /// When the reminder fired.
    pub timestamp: DateTime<Utc>,
    pub data: PayloadData<'a>,
}

/// What the receiver needs to tell a person: which task, when it is due, where to see it.
#[derive(Debug, Serialize)]
pub struct PayloadData<'a> {
    pub task_id: uuid::Uuid,
    pub title: &'a str,
    pub due: Option<chrono::DateTime<chrono::FixedOffset>>,
    pub remind_at: DateTime<Utc>,
    pub url: String,
}

impl<'a> Payload<'a> {
    pub fn new(reminder: &'a ReminderDue, url: String) -> Self {
        Payload {
            event_type: types::REMINDER_DUE,
            timestamp: reminder.fired_at,
            data: PayloadData {
                task_id: reminder.task_id,
                title: &reminder.title,
                due: reminder.due,
                remind_at: reminder.remind_at,
                url,
            },
        }
    }
}

/// Timeouts of one attempt.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connect: Duration,
    pub total: Duration,
}

/// The most of a receiver's answer read (it is only looked at for its status).
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Calls webhooks.
#[derive(Clone)]
pub struct Sender {
    tls: Arc<rustls::ClientConfig>,
    policy: TargetPolicy,
    limits: Limits,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("policy", &self.policy).field("limits", &self.limits).finish()
    }
}

/// Why an attempt did not get an answer.
#[derive(Debug)]
enum Failure {
    /// The target is not acceptable (an inside address): final.
    Refused(String),
    /// Worth another attempt (DNS, connect, TLS, timeout, a broken answer).
    Transient(String),
}

impl Sender {
    pub fn new(policy: TargetPolicy, limits: Limits) -> anyhow::Result<Self> {
        use rustls_platform_verifier::BuilderVerifierExt as _;
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_platform_verifier()
            .context("the platform's trust roots")?
            .with_no_client_auth();
        Ok(Self { tls: Arc::new(tls), policy, limits })
    }

    /// Sends `body` to `webhook`, signed with its secret, as message `id` at `now`.
    pub async fn send(&self, webhook: &Webhook, id: &str, body: &[u8], now: DateTime<Utc>) -> Sent {
        let url = match notification::webhook_url(&webhook.url, self.policy) {
            Ok(url) => url,
            Err(e) => return Sent::Failed(format!("the webhook URL is no longer acceptable: {}", e.message)),
        };
        let key = match notification::webhook_secret(&webhook.secret) {
            Ok(key) => key,
            Err(e) => return Sent::Failed(format!("the webhook secret is unusable: {}", e.message)),
        };
        let timestamp = now.timestamp();
        let signed = Signed {
            id,
            timestamp,
            signature: notification::signature(&key, id, timestamp, body),
            body: Bytes::copy_from_slice(body),
        };
        match tokio::time::timeout(self.limits.total, self.post(&url, signed)).await {
            Err(_) => Sent::Retry(format!("no answer within {} ms", self.limits.total.as_millis())),
            Ok(Err(Failure::Refused(why))) => Sent::Failed(why),
            Ok(Err(Failure::Transient(why))) => Sent::Retry(why),
            Ok(Ok(status)) => match notification::outcome(status.as_u16()) {
                Outcome::Delivered => Sent::Delivered,
                Outcome::Retry => Sent::Retry(format!("the receiver answered {status}")),
                Outcome::Failed if status.is_redirection() => {
                    Sent::Failed(format!("the receiver answered {status}; redirects are not followed"))
                }
                Outcome::Failed => Sent::Failed(format!("the receiver answered {status}")),
            },
        }
    }

    async fn post(&self, url: &url::Url, signed: Signed<'_>) -> Result<http::StatusCode, Failure> {
        let transient = |what: &str| {
            let what = what.to_owned();
            move |e: &dyn std::fmt::Display| Failure::Transient(format!("{what}: {e}"))
        };
        let host = url.host_str().ok_or_else(|| Failure::Refused("the webhook URL has no host".into()))?;
        let port = url.port_or_known_default().ok_or_else(|| Failure::Refused("the webhook URL has no port".into()))?;
        let tcp = self.connect(url, port).await?;
        let io: Box<dyn Io> = if url.scheme() == "https" {
            let name = rustls::pki_types::ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
                .map_err(|e| Failure::Refused(format!("the webhook host is not a server name: {e}")))?
                .to_owned();
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone());
            Box::new(tls.connect(name, tcp).await.map_err(|e| transient("TLS handshake")(&e))?)
        } else {
            Box::new(tcp)
        };
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(hyper_util::rt::TokioIo::new(io))
                .await
                .map_err(|e| transient("HTTP handshake")(&e))?;
        let driver = tokio::spawn(connection);
        let result = async {
            let request = http::Request::post(&url[url::Position::BeforePath..url::Position::AfterQuery])
                .header(http::header::HOST, &url[url::Position::BeforeHost..url::Position::AfterPort])
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(http::header::USER_AGENT, concat!("todo-functions-notifier/", env!("CARGO_PKG_VERSION")))
                .header("webhook-id", signed.id)
                .header("webhook-timestamp", signed.timestamp.to_string())
                .header("webhook-signature", &signed.signature)
                .body(Full::new(signed.body))
                .map_err(|e| Failure::Refused(format!("the request cannot be built: {e}")))?;
            let response = sender.send_request(request).await.map_err(|e| transient("sending")(&e))?;
            let status = response.status();
            // Read (a bounded part of) the answer so the receiver is not cut off mid-write.
            let _ = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect().await;
            Ok(status)
        }
        .await;
        driver.abort();
        result
    }

    /// Resolves the URL's host and connects to the first address the policy allows: the
    /// address checked is the address connected to.
    async fn connect(&self, url: &url::Url, port: u16) -> Result<tokio::net::TcpStream, Failure> {
        let candidates: Vec<SocketAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
            Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| Failure::Transient(format!("resolving {name}: {e}")))?
                .collect(),
            None => return Err(Failure::Refused("the webhook URL has no host".into())),
        };
        let mut refused = None;
        let mut last_error = None;
        for addr in candidates {
            if let Err(why) = notification::check_address(addr.ip(), self.policy) {
                refused.get_or_insert(why);
                continue;
            }
            match tokio::time::timeout(self.limits.connect, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Ok(Err(e)) => last_error = Some(format!("connecting to {addr}: {e}")),
                Err(_) => {
                    last_error = Some(format!("connecting to {addr}: no answer within {:?}", self.limits.connect))
                }
            }
        }
        match (last_error, refused) {
            (Some(error), _) => Err(Failure::Transient(error)),
            (None, Some(why)) => Err(Failure::Refused(format!("the webhook URL {why}"))),
            (None, None) => Err(Failure::Transient(format!("{} resolves to no address", url.host_str().unwrap_or("")))),
        }
    }
}

/// The signed parts of one request.
struct Signed<'a> {
    id: &'a str,
    timestamp: i64,
    signature: String,
    body: Bytes,
}

/// A byte stream: TCP, or TLS over TCP. One type, so the HTTP exchange is compiled once.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const DEV: TargetPolicy = TargetPolicy { allow_loopback_http: true };
    const PROD: TargetPolicy = TargetPolicy { allow_loopback_http: false };
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn limits() -> Limits {
        Limits { connect: Duration::from_secs(2), total: Duration::from_secs(5) }
    }

    fn hook(url: &str) -> Webhook {
        Webhook { url: url.to_owned(), secret: SECRET.to_owned() }
    }

    #[tokio::test]
    async fn a_name_resolving_inside_is_refused_at_send_time_for_good() {
        // `localhost.` is loopback whatever DNS says; production refuses it before any connect.
        let sender = Sender::new(PROD, limits()).unwrap();
        let sent = sender.send(&hook("https://127.0.0.1:9/hook"), "msg", b"{}", Utc::now()).await;
        assert!(matches!(&sent, Sent::Failed(e) if e.contains("loopback")), "{sent:?}");
        let sent = sender.send(&hook("https://10.1.2.3/hook"), "msg", b"{}", Utc::now()).await;
        assert!(matches!(&sent, Sent::Failed(e) if e.contains("RFC 1918")), "{sent:?}");
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_in_production_only() {
        let sent =
            Sender::new(PROD, limits()).unwrap().send(&hook("https://localhost:9/"), "m", b"{}", Utc::now()).await;
        assert!(matches!(&sent, Sent::Failed(e) if e.contains("loopback")), "{sent:?}");
        let sent = Sender::new(DEV, limits()).unwrap().send(&hook("http://localhost:9/"), "m", b"{}", Utc::now()).await;
        assert!(matches!(&sent, Sent::Retry(e) if e.contains("connecting")), "development may reach it: {sent:?}");
    }

    #[tokio::test]
    async fn a_closed_port_is_worth_a_retry_and_plain_http_needs_development() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let sent = Sender::new(DEV, limits())
            .unwrap()
            .send(&hook(&format!("http://127.0.0.1:{port}/")), "m", b"{}", Utc::now())
            .await;
        assert!(matches!(sent, Sent::Retry(_)), "{sent:?}");
        let sent =
            Sender::new(PROD, limits()).unwrap().send(&hook("http://example.com/"), "m", b"{}", Utc::now()).await;
        assert!(matches!(&sent, Sent::Failed(e) if e.contains("https")), "{sent:?}");
    }
}
