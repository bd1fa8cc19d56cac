//! Where a user's reminders are delivered (issue 16): the channels a user sets with
//! `PUT /v1/me/notifications`, and the rules every delivery target obeys, checked when the user
//! sets it (task-api) and again when a reminder is sent (the notifier), as pure functions.
//!
//! A webhook URL is a request our network makes on a user's behalf, so it is held to what a
//! server-side request forgery needs: HTTPS only, no credentials in the URL, and no address that
//! reaches inside (loopback, private, link-local, carrier-grade NAT, cloud metadata at
//! 169.254.169.254, unique local, multicast, reserved). A host name passes here; its addresses are
//! checked with [`check_address`] at send time, on the address actually connected to, since a
//! name can resolve elsewhere by then (DNS rebinding). Plain `http` to loopback is allowed only
//! where the operator opted in for development ([`TargetPolicy::allow_loopback_http`]).
//!
//! A webhook is signed as the Standard Webhooks specification says ([`signature`]), and its
//! answer decides the delivery ([`outcome`]).
//!
//! An email address is one mailbox: no list, no display name, nothing a mail header could carry
//! beyond it (a `,` or `;` would add recipients in Dapr's `bindings.smtp`, a line break a header).

use std::net::{IpAddr, Ipv4Addr};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use url::Url;

use super::validate::ValidationError;

/// The longest webhook URL accepted, as common HTTP servers limit a request line.
pub const MAX_URL_LEN: usize = 2048;
/// RFC 5321's limit on a forward path (RFC 3696 errata 1690).
pub const MAX_EMAIL_LEN: usize = 254;
/// The Standard Webhooks secret prefix.
pub const SECRET_PREFIX: &str = "whsec_";
/// A secret's key length in bytes, as the Standard Webhooks specification bounds it.
pub const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// What may be a delivery target on this deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetPolicy {
    /// Plain `http` to a loopback address or `localhost` (development and tests only: on a
    /// shared host anyone's loopback service would be reachable).
    pub allow_loopback_http: bool,
}

/// The body of `PUT /v1/me/notifications`: every channel the user wants, the others off.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChannelsInput {
    #[serde(default)]
    pub webhook: Option<WebhookInput>,
    #[serde(default)]
    pub email: Option<EmailInput>,
}

/// A webhook as the user sets it. `secret` may be left out to keep the one already set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// `https://` and a public host, at most 2048 characters (`MAX_URL_LEN`).
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 2048, format = "uri", examples("https://hooks.example.com/todo"))
    )]
    pub url: String,
    /// A Standard Webhooks secret: `whsec_` and the base64 of 24 to 64 random bytes. Left out,
    /// the secret already set is kept.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^whsec_[A-Za-z0-9+/]+={0,2}$"))]
    pub secret: Option<String>,
}

/// An email channel as the user sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EmailInput {
    /// One mailbox, `local@domain`, at most 254 characters (`MAX_EMAIL_LEN`).
    #[cfg_attr(feature = "openapi", schema(max_length = 254, examples("alice@example.com")))]
    pub address: String,
}

/// The state key of a user's channels (`notify` store).
pub fn channels_key(user: &str) -> String {
    format!("channels:{user}")
}

/// A user's channels as kept: what the notifier needs to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Channels {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailInput>,
}

/// A webhook as kept: its URL and the user's Standard Webhooks secret (`whsec_…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub url: String,
    pub secret: String,
}

/// A user's channels as `GET /v1/me/notifications` shows them: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelsView {
    pub webhook: Option<WebhookView>,
    pub email: Option<EmailInput>,
}

/// A webhook as shown: the URL and that a secret is set (one always is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookView {
    pub url: String,
    pub secret_set: bool,
}

impl Channels {
    pub fn view(&self) -> ChannelsView {
        ChannelsView {
            webhook: self
                .webhook
                .as_ref()
                .map(|w| WebhookView { url: w.url.clone(), secret_set: !w.secret.is_empty() }),
            email: self.email.clone(),
        }
    }
}

/// What `PUT /v1/me/notifications` makes of `input` over the user's `current` channels: every
/// field checked, the first failure named; a webhook without `secret` keeps the current one, and
/// needs one to keep. A channel left out (or null) is off.
pub fn apply(input: ChannelsInput, current: &Channels, policy: TargetPolicy) -> Result<Channels, ValidationError> {
    let webhook = match input.webhook {
        None => None,
        Some(WebhookInput { url, secret }) => {
            let url = webhook_url(&url, policy)?.to_string();
            let secret = match secret {
                Some(secret) => {
                    webhook_secret(&secret)?;
                    secret
                }
                None => match &current.webhook {
                    Some(kept) => kept.secret.clone(),
                    None => {
                        return Err(ValidationError::new(
                            "webhook.secret",
                            format!(
                                "is required when no webhook is set yet ({SECRET_PREFIX} and base64 of 24 to 64 random bytes)"
                            ),
                        ));
                    }
                },
            };
            Some(Webhook { url, secret })
        }
    };
    let email = match input.email {
        None => None,
        Some(EmailInput { address }) => Some(EmailInput { address: email_address(&address)? }),
    };
    Ok(Channels { webhook, email })
}

/// Checks a webhook URL as the user gives it: the parsed URL, or what is wrong with it.
pub fn webhook_url(raw: &str, policy: TargetPolicy) -> Result<Url, ValidationError> {
    const FIELD: &str = "webhook.url";
    let fail = |message: &str| Err(ValidationError::new(FIELD, message));
    if raw.len() > MAX_URL_LEN {
        return fail(&format!("must be at most {MAX_URL_LEN} characters"));
    }
    let url = Url::parse(raw).map_err(|e| ValidationError::new(FIELD, format!("must be an absolute URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return fail("must not carry credentials (user:password@); the receiver checks the signature instead");
    }
    if url.fragment().is_some() {
        return fail("must not have a fragment (#...): it is never sent");
    }
    let loopback = match url.host() {
        None => return fail("must name a host"),
        Some(url::Host::Domain(name)) => is_localhost(name),
        Some(url::Host::Ipv4(ip)) => {
            check_address(IpAddr::V4(ip), policy).map_err(|m| ValidationError::new(FIELD, m))?
        }
        Some(url::Host::Ipv6(ip)) => {
            check_address(IpAddr::V6(ip), policy).map_err(|m| ValidationError::new(FIELD, m))?
        }
    };
    match (url.scheme(), loopback) {
        // The deployments let the notifier out on 443 only (NetworkPolicy
        // `allow-notifier-webhooks`): another port would time out on every attempt, and a
        // webhook has no business probing other services' ports.
        ("https", false) if url.port().is_some_and(|port| port != 443) => {
            fail("must use the https port, 443 (leave the port out)")
        }
        ("https", false) => Ok(url),
        ("https" | "http", true) if policy.allow_loopback_http => Ok(url),
        (_, true) => fail("must not point at this host (localhost, loopback)"),
        ("http", false) => fail("must use https"),
        (scheme, false) => fail(&format!("must use https, not {scheme}")),
    }
}

/// Whether a delivery may connect to `ip`: `Ok(true)` for loopback the policy allows, `Ok(false)`
/// for a public address, `Err` naming the range otherwise. The notifier calls it on every address
/// it connects to, so a host name that resolves inside is refused at send time too.
pub fn check_address(ip: IpAddr, policy: TargetPolicy) -> Result<bool, String> {
    let ip = canonical(ip);
    if ip.is_loopback() {
        return if policy.allow_loopback_http {
            Ok(true)
        } else {
            Err(format!("must not point at this host ({ip} is a loopback address)"))
        };
    }
    match internal_range(ip) {
        Some(range) => Err(format!("must reach the public internet ({ip} is {range})")),
        None => Ok(false),
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`, or NAT64's `64:ff9b::a.b.c.d`) is that
/// IPv4 address to the network, and is judged as one.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// The non-public range `ip` is in, if any (IANA special-purpose registries; loopback is
/// handled by the caller).
fn internal_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            match () {
                _ if v4.is_unspecified() || a == 0 => Some("\"this network\" (0.0.0.0/8)"),
                _ if v4.is_private() => Some("a private address (RFC 1918)"),
                _ if v4.is_link_local() => Some("link-local (169.254.0.0/16, cloud metadata among it)"),
                _ if a == 100 && (64..128).contains(&b) => Some("carrier-grade NAT (100.64.0.0/10)"),
                _ if a == 192 && b == 0 && v4.octets()[2] == 0 => Some("IETF protocol assignments (192.0.0.0/24)"),
                _ if v4.is_documentation() => Some("a documentation address"),
                _ if a == 198 && (18..20).contains(&b) => Some("benchmarking (198.18.0.0/15)"),
                _ if v4.is_multicast() => Some("multicast"),
                _ if a >= 240 => Some("reserved (240.0.0.0/4, broadcast among it)"),
                _ => None,
            }
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            match () {
                _ if v6.is_unspecified() => Some("unspecified (::)"),
                _ if (s[0] & 0xfe00) == 0xfc00 => Some("unique local (fc00::/7)"),
                _ if (s[0] & 0xffc0) == 0xfe80 => Some("link-local (fe80::/10)"),
                _ if (s[0] & 0xffc0) == 0xfec0 => Some("site-local (fec0::/10)"),
                _ if v6.is_multicast() => Some("multicast"),
                _ if s[0] == 0x2001 && s[1] == 0x0db8 => Some("a documentation address (2001:db8::/32)"),
                _ if s[0] == 0x0100 && s[1..4] == [0, 0, 0] => Some("discard-only (100::/64)"),
                _ if s[..6] == [0; 6] => Some("IPv4-compatible (::/96, deprecated)"),
                _ if s[0] == 0x2002 => Some("6to4 (2002::/16), which can wrap an internal IPv4 address"),
                _ if s[0] == 0x2001 && s[1] == 0 => Some("Teredo (2001::/32), which can wrap an internal IPv4 address"),
                _ => None,
            }
        }
    }
}

/// `localhost` and its subdomains resolve to loopback (RFC 6761 §6.3), whatever DNS says.
fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Checks a webhook secret: the key bytes of a Standard Webhooks secret (`whsec_` and the
/// base64 of 24 to 64 random bytes).
pub fn webhook_secret(raw: &str) -> Result<Vec<u8>, ValidationError> {
    const FIELD: &str = "webhook.secret";
    let encoded = raw.strip_prefix(SECRET_PREFIX).ok_or_else(|| {
        ValidationError::new(FIELD, format!("must be a Standard Webhooks secret: {SECRET_PREFIX} and base64"))
    })?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| ValidationError::new(FIELD, format!("must be {SECRET_PREFIX} and standard base64: {e}")))?;
    if !SECRET_BYTES.contains(&key.len()) {
        return Err(ValidationError::new(
            FIELD,
            format!(
                "must hold {} to {} random bytes (base64), not {}",
                SECRET_BYTES.start(),
                SECRET_BYTES.end(),
                key.len()
            ),
        ));
    }
    Ok(key)
}

/// Checks an email address: one mailbox, `local@domain`, as a mail header may carry it.
pub fn email_address(raw: &str) -> Result<String, ValidationError> {
    const FIELD: &str = "email.address";
    let fail = |message: &str| Err(ValidationError::new(FIELD, message));
    if raw.len() > MAX_EMAIL_LEN {
        return fail(&format!("must be at most {MAX_EMAIL_LEN} characters"));
    }
    if let Some(c) =
        raw.chars().find(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | ';' | '<' | '>' | '"'))
    {
        return fail(&format!("must be one address (local@domain), without {c:?}"));
    }
    let Some((local, domain)) = raw.rsplit_once('@') else {
        return fail("must be local@domain");
    };
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return fail("must have one @ and 1 to 64 characters before it");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| l.is_empty() || l.len() > 63 || l.starts_with('-') || l.ends_with('-'))
    {
        return fail("must have a domain of dot-separated labels after the @ (like example.com)");
    }
    Ok(raw.to_owned())
}

/// The `webhook-signature` header of a Standard Webhooks delivery: `v1,` and the base64 of
/// HMAC-SHA256 over `{id}.{timestamp}.{body}` with the secret's key bytes ([`webhook_secret`]).
/// `id` is the reminder event's id, the same on every attempt, so receivers dedupe on it.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut context = ring::hmac::Context::with_key(&key);
    context.update(format!("{id}.{timestamp}.").as_bytes());
    context.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(context.sign().as_ref()))
}

/// What a webhook's answer means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: received.
    Delivered,
    /// Worth another attempt later: the receiver is busy, failing or asks to wait (408, 425,
    /// 429, 5xx). Timeouts and connection errors are retried too.
    Retry,
    /// Final: the receiver refuses this delivery or is gone (other 4xx, 410 among them), or
    /// answers a redirect, which is never followed (it could point anywhere, inside too).
    Failed,
}

/// The [`Outcome`] of a webhook's HTTP status.
pub fn outcome(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        408 | 425 | 429 | 500..=599 => Outcome::Retry,
        _ => Outcome::Failed,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const PROD: TargetPolicy = TargetPolicy { allow_loopback_http: false };
    const DEV: TargetPolicy = TargetPolicy { allow_loopback_http: true };

    #[test]
    fn https_to_a_public_host_is_a_webhook() {
        for ok in ["https://hooks.example.com/todo", "https://hooks.example.com:443/a?b=c", "https://93.184.215.14/x"] {
            assert_eq!(webhook_url(ok, PROD).unwrap().as_str(), Url::parse(ok).unwrap().as_str(), "{ok}");
        }
    }

    #[test]
    fn what_a_webhook_must_not_be_is_named() {
        for (bad, says) in [
            ("http://hooks.example.com/x", "must use https"),
            ("ftp://hooks.example.com/x", "not ftp"),
            ("hooks.example.com/x", "absolute URL"),
            ("https://user:pw@hooks.example.com/x", "credentials"),
            ("https://hooks.example.com/x#frag", "fragment"),
            ("https://hooks.example.com:8443/x", "port, 443"),
            ("https://localhost/x", "this host"),
            ("https://api.localhost./x", "this host"),
            ("https://127.0.0.1/x", "loopback"),
            ("https://[::1]/x", "loopback"),
            ("https://10.1.2.3/x", "private"),
            ("https://172.16.0.1/x", "private"),
            ("https://192.168.1.1/x", "private"),
            ("https://169.254.169.254/latest/meta-data", "link-local"),
            ("https://100.64.0.1/x", "carrier-grade"),
            ("https://0.0.0.0/x", "this network"),
            ("https://255.255.255.255/x", "reserved"),
            ("https://[fd00::1]/x", "unique local"),
            ("https://[fe80::1]/x", "link-local"),
            ("https://[::ffff:10.0.0.1]/x", "private"),
            ("https://[64:ff9b::a9fe:a9fe]/x", "link-local"),
            ("https://[2002:a00:1::]/x", "6to4"),
            ("https://0x7f.1/x", "loopback"),
        ] {
            let error = webhook_url(bad, PROD).expect_err(bad);
            assert_eq!(error.field, "webhook.url");
            assert!(error.message.contains(says), "{bad}: {}", error.message);
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(webhook_url(&long, PROD).unwrap_err().message.contains("at most"));
    }

    #[test]
    fn loopback_http_only_where_development_allows_it() {
        for url in ["http://127.0.0.1:9000/hook", "http://localhost:9000/hook", "https://[::1]:9/x"] {
            assert!(webhook_url(url, DEV).is_ok(), "{url}");
            assert!(webhook_url(url, PROD).is_err(), "{url}");
        }
        // Development opens loopback, nothing else inside.
        assert!(webhook_url("http://10.0.0.1/x", DEV).is_err());
        assert!(webhook_url("http://example.com/x", DEV).unwrap_err().message.contains("https"));
    }

    #[test]
    fn addresses_are_checked_as_connected_to() {
        assert_eq!(check_address("93.184.215.14".parse().unwrap(), PROD), Ok(false));
        assert_eq!(check_address("2606:2800:21f:cb07:6820:80da:af6b:8b2c".parse().unwrap(), PROD), Ok(false));
        assert_eq!(check_address("127.0.0.53".parse().unwrap(), DEV), Ok(true));
        assert!(check_address("127.0.0.53".parse().unwrap(), PROD).is_err());
        assert!(check_address("::ffff:127.0.0.1".parse().unwrap(), PROD).is_err());
        assert!(check_address("192.168.0.1".parse().unwrap(), DEV).is_err());
    }

    #[test]
    fn secrets_are_standard_webhooks_secrets() {
        let key = webhook_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(key.len(), 24);
        for (bad, says) in [
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_"),
            ("whsec_not base64!", "base64"),
            ("whsec_c2hvcnQ=", "24 to 64"),
        ] {
            let error = webhook_secret(bad).unwrap_err();
            assert_eq!(error.field, "webhook.secret");
            assert!(error.message.contains(says), "{bad}: {}", error.message);
        }
    }

    #[test]
    fn an_email_address_is_one_mailbox() {
        assert_eq!(email_address("alice@example.com").unwrap(), "alice@example.com");
        assert!(email_address("a.b+todo@mail.example.co.uk").is_ok());
        for (bad, says) in [
            ("alice", "local@domain"),
            ("alice@", "domain"),
            ("@example.com", "before it"),
            ("alice@example", "domain"),
            ("alice@-x.com", "domain"),
            ("a@b@example.com", "one @"),
            ("alice@example.com, eve@example.com", "one address"),
            ("alice@example.com;eve@example.com", "one address"),
            ("alice@example.com\r\nBcc: eve@example.com", "one address"),
            ("Alice <alice@example.com>", "one address"),
        ] {
            let error = email_address(bad).unwrap_err();
            assert_eq!(error.field, "email.address");
            assert!(error.message.contains(says), "{bad:?}: {}", error.message);
        }
        assert!(email_address(&format!("{}@example.com", "a".repeat(65))).is_err());
        assert!(email_address(&format!("a@{}.com", "b".repeat(250))).unwrap_err().message.contains("at most"));
    }

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The specification's reference vector (standard-webhooks, and Svix's libraries).
        let key = webhook_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signed = signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body);
        assert_eq!(signed, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        // Every part is signed.
        assert_ne!(signature(&key, "msg_other", 1_614_265_330, body), signed);
        assert_ne!(signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_331, body), signed);
        assert_ne!(signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, b"{}"), signed);
    }

    #[test]
    fn answers_decide_the_delivery() {
        for (status, expected) in [
            (200, Outcome::Delivered),
            (204, Outcome::Delivered),
            (301, Outcome::Failed),
            (307, Outcome::Failed),
            (400, Outcome::Failed),
            (401, Outcome::Failed),
            (404, Outcome::Failed),
            (408, Outcome::Retry),
            (410, Outcome::Failed),
            (413, Outcome::Failed),
            (425, Outcome::Retry),
            (429, Outcome::Retry),
            (500, Outcome::Retry),
            (503, Outcome::Retry),
            (599, Outcome::Retry),
            (100, Outcome::Failed),
        ] {
            assert_eq!(outcome(status), expected, "{status}");
        }
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn input(json: serde_json::Value) -> ChannelsInput {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_put_sets_both_channels_and_the_view_hides_the_secret() {
        let body = input(serde_json::json!({
            "webhook": {"url": "https://hooks.example.com/todo", "secret": SECRET},
            "email": {"address": "alice@example.com"},
        }));
        let channels = apply(body, &Channels::default(), PROD).unwrap();
        assert_eq!(channels.webhook.as_ref().unwrap().secret, SECRET);
        let view = serde_json::to_value(channels.view()).unwrap();
        assert_eq!(
            view,
            serde_json::json!({
                "webhook": {"url": "https://hooks.example.com/todo", "secret_set": true},
                "email": {"address": "alice@example.com"},
            })
        );
        assert!(!view.to_string().contains("whsec_"));
    }

    #[test]
    fn a_webhook_without_secret_keeps_the_current_one_or_needs_one() {
        let first = input(serde_json::json!({"webhook": {"url": "https://a.example.com/", "secret": SECRET}}));
        let current = apply(first, &Channels::default(), PROD).unwrap();
        let moved =
            apply(input(serde_json::json!({"webhook": {"url": "https://b.example.com/"}})), &current, PROD).unwrap();
        assert_eq!(moved.webhook, Some(Webhook { url: "https://b.example.com/".into(), secret: SECRET.into() }));
        let error =
            apply(input(serde_json::json!({"webhook": {"url": "https://b.example.com/"}})), &Channels::default(), PROD)
                .unwrap_err();
        assert_eq!(error.field, "webhook.secret");
        // Left out, a channel is off; the secret goes with its webhook.
        let off = apply(input(serde_json::json!({"email": {"address": "a@example.com"}})), &current, PROD).unwrap();
        assert_eq!(off.webhook, None);
        assert_eq!(apply(ChannelsInput::default(), &current, PROD).unwrap(), Channels::default());
    }

    #[test]
    fn a_put_is_refused_whole_on_its_first_bad_field() {
        let current = Channels { webhook: None, email: Some(EmailInput { address: "old@example.com".into() }) };
        for (body, field) in [
            (serde_json::json!({"webhook": {"url": "http://hooks.example.com", "secret": SECRET}}), "webhook.url"),
            (serde_json::json!({"webhook": {"url": "https://hooks.example.com", "secret": "x"}}), "webhook.secret"),
            (serde_json::json!({"email": {"address": "a@b@c.com"}}), "email.address"),
        ] {
            assert_eq!(apply(input(body.clone()), &current, PROD).unwrap_err().field, field, "{body}");
        }
    }

    #[test]
    fn the_channels_body_refuses_unknown_fields() {
        let body: ChannelsInput =
            serde_json::from_str(r#"{"webhook": {"url": "https://x.example"}, "email": null}"#).unwrap();
        assert_eq!(body.webhook.unwrap().secret, None);
        assert!(serde_json::from_str::<ChannelsInput>(r#"{"sms": {}}"#).is_err());
        assert!(serde_json::from_str::<ChannelsInput>(r#"{"webhook": {"url": "u", "headers": {}}}"#).is_err());
    }
}
