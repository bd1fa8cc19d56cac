//! The OIDC provider's signing keys (`JWT_JWKS_URL`): fetched over HTTPS, cached, selected by
//! `kid`, refreshed without a restart.
//!
//! - **Cache.** A fetched set is fresh for the response's `Cache-Control: max-age` (bounded by
//!   [`JwksTiming`]; a default when absent). The first request after it expires refetches;
//!   concurrent requests wait for that one fetch rather than each starting their own.
//! - **Rotation.** A token whose `kid` is not in the set triggers a refetch, at most one per
//!   `min_refetch`: a provider that rotated in a new key is picked up on its first token, and a
//!   flood of made-up kids costs the provider one request per interval.
//! - **Removal.** A refetch replaces the whole set: a key the provider dropped is refused from
//!   then on.
//! - **Provider down.** The set already held keeps serving for `stale_grace` past its expiry;
//!   a token that no held key fits is then answered with [`Lookup::Unavailable`] (503 at the
//!   door, the reason logged), not 401: the token may be fine, and the client should retry,
//!   not throw it away.
//!
//! Each key carries the one algorithm it may verify, from the JWK's `kty` (and `alg`, which
//! must agree when present): RSA keys RS256 with at least 2048 bits, EC keys ES256 on P-256.
//! Other keys (encryption keys, symmetric `oct` keys, other curves) are skipped: a provider's
//! key set never makes an HMAC secret, whatever it contains.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use url::Url;

use crate::config::JwksTiming;

/// The largest key set read; real ones are a few kilobytes.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Smallest RSA modulus accepted (RFC 7518 §3.3 requires 2048 bits; ring also refuses fewer).
pub const MIN_RSA_BITS: usize = 2048;

type Client = Arc<rustls::ClientConfig>;

/// A verification key from the set, with the one algorithm it may verify.
#[derive(Clone)]
pub struct PublicKey {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

/// What the set says about a `kid`.
#[derive(Debug, Clone)]
pub enum Lookup {
    Found(PublicKey),
    /// The provider answered, and has no such key (anymore).
    Unknown,
    /// No key fits, and the provider could not be asked: the reason, for the log.
    Unavailable(String),
}

#[derive(Debug, Default)]
struct Cache {
    keys: Arc<HashMap<String, PublicKey>>,
    /// When the held set was fetched, and how long it is fresh.
    fetched: Option<(Instant, Duration)>,
    /// When the last fetch was tried, successful or not.
    last_attempt: Option<Instant>,
    /// Why the last fetch failed; `None` after a success.
    last_error: Option<String>,
}

/// The key set of one provider. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Jwks {
    url: Url,
    timing: JwksTiming,
    /// `Err` only if the HTTP client could not be built (no TLS provider): every lookup is then
    /// `Unavailable` with this reason.
    client: Result<Client, String>,
    cache: RwLock<Cache>,
    /// Held while fetching: one fetch at a time, the others wait for its result.
    fetching: tokio::sync::Mutex<()>,
}

impl Jwks {
    pub fn new(url: Url, timing: JwksTiming) -> Self {
        let client = tls_connector().map_err(|e| {
            let reason = format!("cannot set up TLS for JWT_JWKS_URL: {e:#}");
            tracing::error!(%reason, "every JWKS-signed token will be answered with 503");
            reason
        });
        Self { url, timing, client, cache: RwLock::default(), fetching: tokio::sync::Mutex::new(()) }
    }

    /// The key named `kid`, refetching the set when it is stale or does not know the kid (at
    /// most once per `min_refetch`).
    pub async fn key(&self, kid: &str) -> Lookup {
        let now = Instant::now();
        {
            let cache = self.read();
            let fresh = cache.fetched.is_some_and(|(at, max_age)| now < at + max_age);
            if fresh && let Some(key) = cache.keys.get(kid) {
                return Lookup::Found(key.clone());
            }
        }
        if self.may_attempt(now) {
            self.refresh().await;
        }
        let cache = self.read();
        let now = Instant::now();
        let usable = cache.fetched.is_some_and(|(at, max_age)| now < at + max_age + self.timing.stale_grace);
        if usable && let Some(key) = cache.keys.get(kid) {
            if let Some(error) = &cache.last_error {
                tracing::warn!(%error, kid, "JWKS refresh failing; using the key set fetched before");
            }
            return Lookup::Found(key.clone());
        }
        match &cache.last_error {
            Some(error) => Lookup::Unavailable(error.clone()),
            None if cache.fetched.is_none() => Lookup::Unavailable("the key set has not been fetched yet".into()),
            None => Lookup::Unknown,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        // A panic while holding the lock cannot leave the cache half-written (it is replaced
        // whole), so a poisoned lock is still a consistent one.
        self.cache.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn may_attempt(&self, now: Instant) -> bool {
        self.read().last_attempt.is_none_or(|at| now >= at + self.timing.min_refetch)
    }

    /// Fetches the set, unless another caller did so while this one waited for the lock.
    async fn refresh(&self) {
        let _fetching = self.fetching.lock().await;
        if !self.may_attempt(Instant::now()) {
            return;
        }
        let result = self.fetch().await;
        let now = Instant::now();
        let mut cache = self.cache.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.last_attempt = Some(now);
        match result {
            Ok((keys, max_age)) => {
                tracing::info!(url = %self.url, keys = keys.len(), max_age_secs = max_age.as_secs(), "JWKS fetched");
                if keys.is_empty() {
                    tracing::error!(url = %self.url, "the JWKS holds no usable RS256 or ES256 key: every token is refused");
                }
                cache.keys = Arc::new(keys);
                cache.fetched = Some((now, max_age));
                cache.last_error = None;
            }
            Err(error) => {
                let reason = format!("fetching the identity provider's keys from {}: {error:#}", self.url);
                tracing::warn!(%reason, "JWKS fetch failed");
                cache.last_error = Some(reason);
            }
        }
    }

    async fn fetch(&self) -> anyhow::Result<(HashMap<String, PublicKey>, Duration)> {
        let tls = self.client.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        let (headers, body) = tokio::time::timeout(self.timing.fetch_timeout, get(&self.url, tls))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {:?}", self.timing.fetch_timeout))??;
        Ok((parse(&body)?, max_age(&headers, &self.timing)))
    }
}

/// TLS for the provider: rustls on `ring` (passed explicitly, so nothing process-wide is
/// installed) with the platform's trust roots.
fn tls_connector() -> anyhow::Result<Client> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_platform_verifier()
        .context("the platform's trust roots")?
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A byte stream: TCP, or TLS over TCP. One type, so the HTTP exchange is compiled once.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// `GET url` on a fresh HTTP/1.1 connection (a fetch every few minutes needs no pool):
/// the response's headers and body, at most [`MAX_JWKS_BYTES`]. Redirects are not followed.
async fn get(url: &Url, tls: &Client) -> anyhow::Result<(http::HeaderMap, Bytes)> {
    let host = match url.host() {
        Some(url::Host::Domain(domain)) => domain.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => bail!("the URL has no host"),
    };
    let port = url.port_or_known_default().context("the URL has no port")?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.context("connecting")?;
    let io: Box<dyn Io> = if url.scheme() == "https" {
        let name = rustls::pki_types::ServerName::try_from(host).context("the server name")?;
        let connector = tokio_rustls::TlsConnector::from(tls.clone());
        Box::new(connector.connect(name, tcp).await.context("TLS handshake")?)
    } else {
        Box::new(tcp)
    };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(hyper_util::rt::TokioIo::new(io))
            .await
            .context("HTTP handshake")?;
    let driver = tokio::spawn(connection);
    let result = async {
        let request = http::Request::get(&url[url::Position::BeforePath..url::Position::AfterQuery])
            .header(http::header::HOST, &url[url::Position::BeforeHost..url::Position::AfterPort])
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, "task-api")
            .body(Empty::<Bytes>::new())
            .context("building the request")?;
        let response = sender.send_request(request).await.context("request failed")?;
        let (parts, body) = response.into_parts();
        if !parts.status.is_success() {
            bail!("HTTP {}", parts.status);
        }
        let body = Limited::new(body, MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the key set (at most {MAX_JWKS_BYTES} bytes): {e}"))?
            .to_bytes();
        Ok((parts.headers, body))
    }
    .await;
    driver.abort();
    result
}

/// How long a response is fresh: its `Cache-Control: max-age`, bounded; the minimum for
/// `no-cache` / `no-store`; the default when it says nothing.
fn max_age(headers: &http::HeaderMap, timing: &JwksTiming) -> Duration {
    let directives = headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect::<Vec<_>>();
    let asked = if directives.iter().any(|d| d == "no-cache" || d == "no-store") {
        Duration::ZERO
    } else {
        directives
            .iter()
            .find_map(|d| d.strip_prefix("max-age=").and_then(|s| s.trim_matches('"').parse::<u64>().ok()))
            .map_or(timing.default_max_age, Duration::from_secs)
    };
    asked.clamp(timing.min_max_age, timing.max_max_age.max(timing.min_max_age))
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

/// The fields of a JWK (RFC 7517) this reads.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// The usable keys of a JWKS document, by `kid`. Unusable entries are skipped with a log line,
/// so that one exotic key does not take the whole set down; a document that is not a JWKS is
/// an error.
pub fn parse(body: &[u8]) -> anyhow::Result<HashMap<String, PublicKey>> {
    let set: JwkSet = serde_json::from_slice(body).context("the response is not a JWKS ({\"keys\": [...]})")?;
    let mut keys = HashMap::new();
    for (index, value) in set.keys.into_iter().enumerate() {
        let kid = value.get("kid").and_then(|k| k.as_str()).unwrap_or("").to_owned();
        match serde_json::from_value::<Jwk>(value).map_err(anyhow::Error::from).and_then(|jwk| key(&jwk)) {
            Ok(Some((kid, key))) => match keys.entry(kid) {
                Entry::Occupied(entry) => {
                    tracing::warn!(kid = entry.key(), "the JWKS names this kid twice; keeping the first");
                }
                Entry::Vacant(entry) => {
                    entry.insert(key);
                }
            },
            Ok(None) => tracing::debug!(index, kid, "JWKS entry skipped: not a signing key we verify with"),
            Err(error) => tracing::warn!(index, kid, error = format!("{error:#}"), "JWKS entry skipped"),
        }
    }
    Ok(keys)
}

/// One JWK as a key pinned to its algorithm; `None` for keys this service never verifies with.
fn key(jwk: &Jwk) -> anyhow::Result<Option<(String, PublicKey)>> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    let algorithm = match (jwk.kty.as_str(), jwk.alg.as_deref()) {
        ("RSA", None | Some("RS256")) => Algorithm::RS256,
        ("EC", None | Some("ES256")) => Algorithm::ES256,
        _ => return Ok(None),
    };
    let kid = jwk.kid.clone().filter(|k| !k.is_empty()).context("the key has no kid")?;
    let field = |name: &str, value: &Option<String>| -> anyhow::Result<Vec<u8>> {
        let value = value.as_deref().with_context(|| format!("the key has no {name}"))?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value.trim_end_matches('='))
            .with_context(|| format!("the key's {name} is not base64url"))
    };
    let key = match algorithm {
        Algorithm::RS256 => {
            let n = field("n", &jwk.n)?;
            let e = field("e", &jwk.e)?;
            let n = strip_leading_zeros(&n);
            let bits = n.first().map_or(0, |top| (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize));
            if bits < MIN_RSA_BITS {
                bail!("the RSA key has {bits} bits, at least {MIN_RSA_BITS} are required");
            }
            DecodingKey::from_rsa_raw_components(n, strip_leading_zeros(&e))
        }
        _ => {
            if jwk.crv.as_deref() != Some("P-256") {
                return Ok(None);
            }
            let (x, y) = (field("x", &jwk.x)?, field("y", &jwk.y)?);
            if x.len() != 32 || y.len() != 32 {
                bail!("a P-256 key's x and y are 32 bytes each");
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            DecodingKey::from_ec_der(&point)
        }
    };
    Ok(Some((kid, PublicKey { algorithm, key })))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::test_keys::{EcKey, RsaKey};
    use serde_json::json;

    fn timing() -> JwksTiming {
        JwksTiming::default()
    }

    #[test]
    fn parses_rsa_and_ec_keys_pinned_to_their_algorithm() {
        let rsa = RsaKey::shared();
        let ec = EcKey::generate();
        let mut rsa_no_alg = rsa.jwk("r2");
        rsa_no_alg.as_object_mut().unwrap().remove("alg");
        let body = json!({"keys": [rsa.jwk("r1"), ec.jwk("e1"), rsa_no_alg]}).to_string();
        let keys = parse(body.as_bytes()).unwrap();
        assert_eq!(keys.len(), 3);
        assert_eq!(keys["r1"].algorithm, Algorithm::RS256);
        assert_eq!(keys["r2"].algorithm, Algorithm::RS256, "kty decides when alg is absent");
        assert_eq!(keys["e1"].algorithm, Algorithm::ES256);
    }

    #[test]
    fn skips_what_it_never_verifies_with() {
        let rsa = RsaKey::shared();
        let ec = EcKey::generate();
        let mut encryption = rsa.jwk("enc");
        encryption["use"] = json!("enc");
        let mut mismatched = rsa.jwk("ps");
        mismatched["alg"] = json!("PS256");
        let mut lying = ec.jwk("lying");
        lying["alg"] = json!("RS256");
        let mut p384 = ec.jwk("p384");
        p384["crv"] = json!("P-384");
        let mut no_kid = rsa.jwk("x");
        no_kid.as_object_mut().unwrap().remove("kid");
        let mut short = rsa.jwk("short");
        short["n"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xffu8; 128]));
        let oct = json!({"kty": "oct", "kid": "oct", "k": "c2VjcmV0"});
        let body = json!({"keys": [encryption, mismatched, lying, p384, no_kid, short, oct, "junk", ec.jwk("ok")]});
        let keys = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["ok"]);
    }

    #[test]
    fn a_document_that_is_not_a_jwks_is_an_error() {
        assert!(parse(b"<html>").is_err());
        assert!(parse(br#"{"issuer": "x"}"#).is_err());
    }

    #[test]
    fn max_age_is_honoured_within_bounds() {
        let t = timing();
        let headers = |value: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::CACHE_CONTROL, value.parse().unwrap());
            h
        };
        assert_eq!(max_age(&http::HeaderMap::new(), &t), t.default_max_age);
        assert_eq!(max_age(&headers("public, max-age=600"), &t), Duration::from_secs(600));
        assert_eq!(max_age(&headers("max-age=1"), &t), t.min_max_age);
        assert_eq!(max_age(&headers("max-age=999999"), &t), t.max_max_age);
        assert_eq!(max_age(&headers("no-store"), &t), t.min_max_age);
    }

    /// An https URL is fetched over TLS, with certificate checks: a server that does not speak
    /// TLS (here, plain HTTP on loopback) fails the handshake instead of being read.
    #[tokio::test]
    async fn https_means_tls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let _ = socket.writable().await;
                let _ = socket.try_write(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{\"keys\":[]}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let jwks = Jwks::new(format!("https://127.0.0.1:{port}/jwks").parse().unwrap(), timing());
        match jwks.key("any").await {
            Lookup::Unavailable(reason) => assert!(reason.contains("TLS handshake"), "{reason}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unreachable_provider_is_unavailable_not_unknown() {
        // Port 9 on loopback: nothing listens, the connection is refused at once.
        let jwks = Jwks::new("http://127.0.0.1:9/jwks".parse().unwrap(), timing());
        match jwks.key("any").await {
            Lookup::Unavailable(reason) => assert!(reason.contains("127.0.0.1:9"), "{reason}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}
