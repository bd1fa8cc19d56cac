//! Bearer authentication: `Authorization: Bearer <JWT>`, HS256 with `JWT_SECRET` (and
//! `JWT_SECRET_PREVIOUS` during a rotation), RS256 / ES256 with keys from `JWT_JWKS_URL`.
//!
//! The token's `sub` is the user id, and the user id is the owner of every task that user
//! creates: there is no other identity or role, so authorisation is simply "owner == sub".
//! `exp` is required (a token without one would be valid forever) and capped at
//! `JWT_MAX_LIFETIME_SECS` from now and from `iat`, a small leeway absorbs clock skew between
//! the issuer and this pod, and `iss` / `aud` are required and checked when configured so that
//! a token minted for another service is not accepted here.
//!
//! **Which key.** The token's `kid` names the key, and the *key* decides the algorithm: an
//! HS256 secret verifies HS256 only, a JWKS RSA key RS256 only, an EC key ES256 only. The
//! header's `alg` must match it and never picks the algorithm family; accepting it would be the
//! classic JWT downgrade (`none`, or an RSA public key used as an HMAC secret). HS256 kids are
//! derived from the secrets ([`crate::crypto::hs256_kid`]), so rotation needs no configuration:
//! a token without a `kid` is tried against the current secret, then the previous one; a kid
//! that is neither goes to the JWKS, unless the token claims HS256 (a provider's set never holds
//! HMAC secrets).
//!
//! **When the provider is down** and no held key fits, the answer is 503 with `Retry-After`,
//! not 401: the token may be perfectly good.
//!
//! Tokens are never logged; rejections log only the reason.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use todo_core::validate::MAX_OWNER_CHARS;

use crate::app::RateGate;
use crate::config::{Config, MIN_SECRET_BYTES};
use crate::error::ApiError;
use crate::jwks::{Jwks, Lookup};
use crate::rate_limit::{Counted, Decision, QuotaSlot};

/// Clock skew tolerated on `exp`, `nbf` and the lifetime cap, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// Default lifetime of a development token (`devhost dev-token`).
pub const DEFAULT_DEV_TTL: Duration = Duration::from_secs(12 * 3600);

/// The authenticated caller. Extracting it from a request is what makes a route require a
/// valid bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The token's `sub`: the owner of the caller's tasks.
    pub id: String,
    /// The token's `exp`, seconds since the epoch: a live stream ends then.
    pub expires_at: u64,
}

/// The claims task-api mints and reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// `None` only while decoding, so that a missing `sub` is reported as such.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Expiry, seconds since the epoch. Defaulted only while decoding, so that jsonwebtoken's
    /// own check reports a missing `exp` as such.
    #[serde(default)]
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// One audience or several (RFC 7519 §4.1.3): providers that sign for more than one
    /// application send an array, and the token is ours when the configured audience is in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
}

/// A token's `aud`: a string, or an array of strings (RFC 7519 §4.1.3). jsonwebtoken checks
/// either form against the configured audience; this type only lets both decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl From<&str> for Audience {
    fn from(audience: &str) -> Self {
        Self::One(audience.to_owned())
    }
}

impl Claims {
    /// Claims for `user`, valid from now for `ttl`.
    pub fn new(user: &str, ttl: Duration) -> Self {
        let now = unix_now();
        Self {
            sub: Some(user.to_owned()),
            exp: now.saturating_add(ttl.as_secs()),
            iat: Some(now),
            iss: None,
            aud: None,
        }
    }

    /// Adds the `iss` and `aud` the verifier of `config` requires, so that a development token
    /// works against a deployment that checks them.
    pub fn for_config(mut self, config: &Config) -> Self {
        self.iss = config.jwt_issuer.clone();
        self.aud = config.jwt_audience.as_deref().map(Audience::from);
        self
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// Signs `claims` with HS256 under `secret`, naming the secret's kid in the header. Only with
/// the `mint` feature: the server binary verifies and never signs.
#[cfg(feature = "mint")]
pub fn sign(secret: &[u8], claims: &impl Serialize) -> anyhow::Result<String> {
    use anyhow::Context as _;
    crate::crypto::install();
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = Some(crate::crypto::hs256_kid(secret));
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_secret(secret)).context("signing the token")
}

/// A token for `user`, valid for `ttl`: what `devhost dev-token` prints and what tests use.
#[cfg(feature = "mint")]
pub fn mint(secret: &[u8], user: &str, ttl: Duration) -> anyhow::Result<String> {
    check_user_id(user).map_err(anyhow::Error::msg)?;
    if secret.is_empty() {
        anyhow::bail!("an empty secret signs nothing");
    }
    sign(secret, &Claims::new(user, ttl))
}

/// An HS256 secret and its derived kid.
#[derive(Clone)]
struct HsKey {
    kid: String,
    key: DecodingKey,
}

/// Checks bearer tokens. Built once from the configuration; cheap to share.
#[derive(Clone)]
pub struct Authenticator {
    /// The current HS256 secret, then the previous one. Secrets shorter than
    /// [`MIN_SECRET_BYTES`] are left out (an empty HMAC key would accept tokens anyone can
    /// sign); [`Config::checked`] refuses them before this point.
    hs256: Vec<HsKey>,
    jwks: Option<Arc<Jwks>>,
    /// The checks every token gets, with `algorithms` set per key.
    validation: Validation,
    max_lifetime_secs: u64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("hs256_kids", &self.hs256.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>())
            .field("jwks", &self.jwks)
            .field("iss", &self.validation.iss)
            .field("aud", &self.validation.aud)
            .field("max_lifetime_secs", &self.max_lifetime_secs)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(config: &Config) -> Self {
        crate::crypto::install();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &config.jwt_issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if let Some(audience) = &config.jwt_audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        let hs256 = [config.jwt_secret.as_deref(), config.jwt_secret_previous.as_deref()]
            .into_iter()
            .flatten()
            .filter(|secret| secret.len() >= MIN_SECRET_BYTES)
            .map(|secret| HsKey {
                kid: crate::crypto::hs256_kid(secret.as_bytes()),
                key: DecodingKey::from_secret(secret.as_bytes()),
            })
            .collect();
        let jwks = match config.jwks_url() {
            Some(Ok(url)) => Some(Arc::new(Jwks::new(url, config.jwks_timing))),
            Some(Err(error)) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    "JWT_JWKS_URL unusable; no JWKS-signed token is accepted"
                );
                None
            }
            None => None,
        };
        Self { hs256, jwks, validation, max_lifetime_secs: config.jwt_max_lifetime_secs }
    }

    /// The caller named by a valid `token`.
    pub async fn verify(&self, token: &str) -> Result<User, ApiError> {
        if self.hs256.is_empty() && self.jwks.is_none() {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "neither a usable JWT_SECRET nor JWT_JWKS_URL is configured; refusing every token"
            )));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| ApiError::invalid_token(reason(e.kind())))?;
        let hs256_key = header.kid.as_deref().and_then(|kid| self.hs256.iter().find(|k| k.kid == kid));
        let claims = match (hs256_key, header.kid.as_deref(), header.alg) {
            (Some(key), _, _) => self.decode(token, Algorithm::HS256, &key.key)?,
            (None, None, Algorithm::HS256) => self.decode_hs256_without_kid(token)?,
            (None, None, alg) => {
                return Err(ApiError::invalid_token(format!(
                    "token algorithm {alg:?} without a kid: only HS256 tokens may omit it"
                )));
            }
            (None, Some(_), Algorithm::HS256) => return Err(ApiError::invalid_token("unknown signing key (kid)")),
            (None, Some(kid), _) => {
                let Some(jwks) = &self.jwks else {
                    return Err(ApiError::invalid_token("unknown signing key (kid)"));
                };
                match jwks.key(kid).await {
                    Lookup::Found(key) => self.decode(token, key.algorithm, &key.key)?,
                    Lookup::Unknown => return Err(ApiError::invalid_token("unknown signing key (kid)")),
                    Lookup::Unavailable(reason) => return Err(ApiError::AuthUnavailable(reason)),
                }
            }
        };
        self.check_lifetime(&claims)?;
        let sub = claims.sub.unwrap_or_default();
        check_user_id(&sub).map_err(ApiError::invalid_token)?;
        Ok(User { id: sub, expires_at: claims.exp })
    }

    /// An HS256 token without a kid (issued before kids, or by another HS256 signer): the
    /// current secret, then the previous one.
    fn decode_hs256_without_kid(&self, token: &str) -> Result<Claims, ApiError> {
        let Some((last, others)) = self.hs256.split_last() else {
            return Err(ApiError::invalid_token("token algorithm HS256 not accepted here"));
        };
        for key in others {
            match self.decode(token, Algorithm::HS256, &key.key) {
                Err(ApiError::Unauthorized { message, .. }) if message == reason(&ErrorKind::InvalidSignature) => {}
                other => return other,
            }
        }
        self.decode(token, Algorithm::HS256, &last.key)
    }

    /// Verifies `token` with `key` for `algorithm` only, and the standard claims.
    fn decode(&self, token: &str, algorithm: Algorithm, key: &DecodingKey) -> Result<Claims, ApiError> {
        let mut validation = self.validation.clone();
        validation.algorithms = vec![algorithm];
        jsonwebtoken::decode::<Claims>(token, key, &validation).map(|data| data.claims).map_err(|e| match e.kind() {
            ErrorKind::InvalidAlgorithm => {
                ApiError::invalid_token(format!("token algorithm does not match its key: {algorithm:?} only"))
            }
            kind => ApiError::invalid_token(reason(kind)),
        })
    }

    /// `JWT_MAX_LIFETIME_SECS`: from now (with the leeway) and from `iat`.
    fn check_lifetime(&self, claims: &Claims) -> Result<(), ApiError> {
        let cap = self.max_lifetime_secs;
        if claims.exp > unix_now().saturating_add(cap).saturating_add(LEEWAY_SECS) {
            return Err(ApiError::invalid_token(format!(
                "token lifetime exceeds the {cap} s cap: exp is too far in the future"
            )));
        }
        if let Some(iat) = claims.iat
            && claims.exp.saturating_sub(iat) > cap
        {
            return Err(ApiError::invalid_token(format!(
                "token lifetime exceeds the {cap} s cap: exp - iat is longer"
            )));
        }
        Ok(())
    }

    /// The caller named by an `Authorization` header value.
    pub async fn authenticate(&self, authorization: Option<&[u8]>) -> Result<User, ApiError> {
        let Some(raw) = authorization else {
            return Err(ApiError::missing_token());
        };
        let value = std::str::from_utf8(raw).map_err(|_| ApiError::invalid_token("malformed Authorization header"))?;
        let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::Unauthorized {
                message: "the Authorization header must use the Bearer scheme".into(),
                invalid_token: false,
            });
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(ApiError::missing_token());
        }
        self.verify(token).await
    }
}

/// The owner invariants of `todo_core::validate::check`, enforced at the door, plus what
/// keeps a user id safe where it is spliced into text: state keys and request-id namespaces
/// join parts with `:` and `/`, and logs are line-based, so a `sub` holding those or control
/// characters could collide with another user's keys or forge log lines. The length is bounded
/// in bytes, because keys and headers are. A token whose `sub` could never own a task is not a
/// valid identity here; `dev-token` refuses to mint one.
pub(crate) fn check_user_id(user: &str) -> Result<(), String> {
    if user.trim().is_empty() {
        return Err("the token's sub (user id) is empty".into());
    }
    if user.len() > MAX_USER_ID_BYTES {
        return Err(format!(
            "the token's sub (user id) is {} bytes; at most {MAX_USER_ID_BYTES} are accepted",
            user.len()
        ));
    }
    if user.chars().any(|c| c.is_control() || matches!(c, ':' | '/')) {
        return Err("the token's sub (user id) contains ':', '/' or a control character, which user ids may not".into());
    }
    Ok(())
}

/// Longest user id (`sub`) accepted, in bytes.
pub const MAX_USER_ID_BYTES: usize = 128;
// Every id accepted here must also be a valid task owner (bytes bound characters).
const _: () = assert!(MAX_USER_ID_BYTES <= MAX_OWNER_CHARS);

/// What the client is told. Specific enough to fix a client, never the token itself.
fn reason(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "token expired".into(),
        ErrorKind::ImmatureSignature => "token not valid yet (nbf)".into(),
        ErrorKind::InvalidSignature => "invalid token signature".into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "token algorithm not accepted".into(),
        ErrorKind::InvalidIssuer => "wrong token issuer".into(),
        ErrorKind::InvalidAudience => "wrong token audience".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("token lacks the {claim} claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("token claim {claim} is malformed"),
        _ => "malformed token".into(),
    }
}

/// Authenticates, then counts the request against the user's rate limit: a caller is refused
/// with 429 only once it is known who they are. A request marked [`Counted`] (an MCP tool's
/// REST request) is authenticated but not counted again. The quota goes back to the response through the
/// slot [`crate::routes`]' middleware leaves in the request, which turns it into the `RateLimit`
/// fields.
impl<S> FromRequestParts<S> for User
where
    S: Send + Sync,
    Arc<Authenticator>: FromRef<S>,
    Arc<RateGate>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Arc::<Authenticator>::from_ref(state);
        let user = auth.authenticate(parts.headers.get(AUTHORIZATION).map(|v| v.as_bytes())).await?;
        if parts.extensions.get::<Counted>().is_some() {
            return Ok(user);
        }
        let gate = Arc::<RateGate>::from_ref(state);
        match gate.limiter.check(&user.id, gate.clock.now()) {
            None => {}
            Some(Decision::Allowed(quota)) => {
                if let Some(slot) = parts.extensions.get::<QuotaSlot>() {
                    slot.set(quota);
                }
            }
            Some(Decision::Limited { quota, retry_after_secs }) => {
                tracing::info!(retry_after_secs, "rate limited");
                return Err(ApiError::RateLimited { quota, retry_after_secs });
            }
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::test_keys::{self, RsaKey};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const PREVIOUS: &str = "previous-previous-previous-previous!";

    fn auth() -> Authenticator {
        Authenticator::new(&Config::with_secret(SECRET))
    }

    fn rotating() -> Authenticator {
        let mut config = Config::with_secret(SECRET);
        config.jwt_secret_previous = Some(PREVIOUS.into());
        Authenticator::new(&config)
    }

    fn reason(result: Result<User, ApiError>) -> String {
        match result.unwrap_err() {
            ApiError::Unauthorized { message, .. } => message,
            other => panic!("expected 401, got {other:?}"),
        }
    }

    /// An HS256 token signed by hand, with or without a kid.
    fn hs256(secret: &[u8], kid: Option<&str>, claims: &serde_json::Value) -> String {
        let mut header = json!({"alg": "HS256", "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        test_keys::jwt(&header, claims, |m| test_keys::hmac(secret, m))
    }

    fn claims(ttl: u64) -> serde_json::Value {
        let now = unix_now();
        json!({"sub": "alice", "iat": now, "exp": now + ttl})
    }

    #[tokio::test]
    async fn mint_and_verify_round_trip() {
        let token = mint(SECRET.as_bytes(), "alice", DEFAULT_DEV_TTL).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(crate::crypto::hs256_kid(SECRET.as_bytes()).as_str()));
        assert_eq!(auth().verify(&token).await.unwrap().id, "alice");
        let header = format!("Bearer {token}");
        assert_eq!(auth().authenticate(Some(header.as_bytes())).await.unwrap().id, "alice");
        let lowercase = format!("bearer {token}");
        assert_eq!(auth().authenticate(Some(lowercase.as_bytes())).await.unwrap().id, "alice");
    }

    #[tokio::test]
    async fn an_unchecked_short_secret_fails_closed() {
        let weak = Authenticator::new(&Config::with_secret(""));
        let token = sign(b"", &Claims::new("alice", DEFAULT_DEV_TTL)).unwrap();
        assert!(matches!(weak.verify(&token).await, Err(ApiError::Internal(_))));
    }

    #[test]
    fn mint_refuses_an_empty_user() {
        assert!(mint(SECRET.as_bytes(), "  ", DEFAULT_DEV_TTL).is_err());
    }

    #[tokio::test]
    async fn missing_and_malformed_headers() {
        let a = auth();
        assert!(matches!(a.authenticate(None).await, Err(ApiError::Unauthorized { invalid_token: false, .. })));
        assert_eq!(
            reason(a.authenticate(Some(b"Basic YWxpY2U6cHc=")).await),
            "the Authorization header must use the Bearer scheme"
        );
        assert_eq!(reason(a.authenticate(Some(b"Bearer ")).await), "missing bearer token");
        assert_eq!(reason(a.authenticate(Some(b"Bearer not.a.jwt")).await), "malformed token");
        assert_eq!(reason(a.authenticate(Some(b"Bearer \xff")).await), "malformed Authorization header");
    }

    #[tokio::test]
    async fn wrong_signature() {
        let token = hs256(b"another-secret-another-secret-xx", None, &claims(60));
        assert_eq!(reason(auth().verify(&token).await), "invalid token signature");
    }

    #[tokio::test]
    async fn the_previous_secret_is_accepted_during_a_rotation() {
        let previous_kid = crate::crypto::hs256_kid(PREVIOUS.as_bytes());
        let by_kid = hs256(PREVIOUS.as_bytes(), Some(&previous_kid), &claims(60));
        assert_eq!(rotating().verify(&by_kid).await.unwrap().id, "alice");
        let without_kid = hs256(PREVIOUS.as_bytes(), None, &claims(60));
        assert_eq!(rotating().verify(&without_kid).await.unwrap().id, "alice", "tried after the current one");
        let current = mint(SECRET.as_bytes(), "alice", DEFAULT_DEV_TTL).unwrap();
        assert_eq!(rotating().verify(&current).await.unwrap().id, "alice");

        // Once the rotation is over (no JWT_SECRET_PREVIOUS), the old key is refused.
        assert_eq!(reason(auth().verify(&by_kid).await), "unknown signing key (kid)");
        assert_eq!(reason(auth().verify(&without_kid).await), "invalid token signature");
    }

    #[tokio::test]
    async fn a_kid_picks_exactly_one_key() {
        // The previous key's kid on a token signed with the current key: the kid picks the
        // previous key, whose check fails; the current key is not tried.
        let previous_kid = crate::crypto::hs256_kid(PREVIOUS.as_bytes());
        let mismatched = hs256(SECRET.as_bytes(), Some(&previous_kid), &claims(60));
        assert_eq!(reason(rotating().verify(&mismatched).await), "invalid token signature");
        let unknown = hs256(b"unknown-unknown-unknown-unknown-unknown", Some("0011223344556677"), &claims(60));
        assert_eq!(reason(rotating().verify(&unknown).await), "unknown signing key (kid)");
    }

    #[tokio::test]
    async fn expired_beyond_the_leeway() {
        let mut claims = Claims::new("alice", Duration::ZERO);
        claims.exp = unix_now() - LEEWAY_SECS - 5;
        assert_eq!(reason(auth().verify(&sign(SECRET.as_bytes(), &claims).unwrap()).await), "token expired");
        claims.exp = unix_now() - 5;
        assert!(auth().verify(&sign(SECRET.as_bytes(), &claims).unwrap()).await.is_ok(), "within the leeway");
    }

    #[tokio::test]
    async fn lifetimes_beyond_the_cap_are_refused() {
        let mut config = Config::with_secret(SECRET);
        config.jwt_max_lifetime_secs = 3600;
        let capped = Authenticator::new(&config);
        let now = unix_now();
        let at_cap = json!({"sub": "alice", "iat": now, "exp": now + 3600});
        assert!(capped.verify(&hs256(SECRET.as_bytes(), None, &at_cap)).await.is_ok());
        let too_far = json!({"sub": "alice", "exp": now + 3600 + LEEWAY_SECS + 60});
        assert_eq!(
            reason(capped.verify(&hs256(SECRET.as_bytes(), None, &too_far)).await),
            "token lifetime exceeds the 3600 s cap: exp is too far in the future"
        );
        // Issued long ago, expiring soon: exp - iat tells its real lifetime.
        let long_lived = json!({"sub": "alice", "iat": now - 30 * 86400, "exp": now + 60});
        assert_eq!(
            reason(capped.verify(&hs256(SECRET.as_bytes(), None, &long_lived)).await),
            "token lifetime exceeds the 3600 s cap: exp - iat is longer"
        );
        // The default cap is a day: a year-long development token of old is refused.
        let year = mint(SECRET.as_bytes(), "alice", Duration::from_secs(366 * 86400)).unwrap();
        assert!(reason(auth().verify(&year).await).contains("86400 s cap"));
    }

    #[tokio::test]
    async fn exp_and_sub_are_required() {
        let no_exp = sign(SECRET.as_bytes(), &json!({"sub": "alice"})).unwrap();
        assert_eq!(reason(auth().verify(&no_exp).await), "token lacks the exp claim");
        let mut claims = Claims::new("alice", DEFAULT_DEV_TTL);
        claims.sub = None;
        assert_eq!(
            reason(auth().verify(&sign(SECRET.as_bytes(), &claims).unwrap()).await),
            "token lacks the sub claim"
        );
        claims.sub = Some(String::new());
        assert_eq!(
            reason(auth().verify(&sign(SECRET.as_bytes(), &claims).unwrap()).await),
            "the token's sub (user id) is empty"
        );
    }

    #[tokio::test]
    async fn other_algorithms_are_refused() {
        // The algorithm is checked before the signature: the signature part need not be valid.
        let claims = serde_json::to_string(&Claims::new("alice", DEFAULT_DEV_TTL)).unwrap();
        for alg in ["HS512", "RS256", "ES256"] {
            let token = format!("{}.{}.c2ln", b64(&format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#)), b64(&claims));
            assert_eq!(
                reason(auth().verify(&token).await),
                format!("token algorithm {alg} without a kid: only HS256 tokens may omit it"),
            );
            // With the HS256 key's kid, the key pins HS256.
            let kid = crate::crypto::hs256_kid(SECRET.as_bytes());
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#);
            let token = format!("{}.{}.c2ln", b64(&header), b64(&claims));
            assert_eq!(reason(auth().verify(&token).await), "token algorithm does not match its key: HS256 only");
        }
        // An unsigned token (`alg: none`) is not even a token jsonwebtoken can parse.
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(r#"{"sub":"alice","exp":9999999999}"#));
        assert!(auth().verify(&none).await.is_err());
    }

    /// The classic confusion: an HS256 token whose HMAC key is the RSA *public* key. Refused
    /// whether it names the RSA key's kid or none, and with or without HS256 configured.
    #[tokio::test]
    async fn an_rsa_public_key_is_never_an_hmac_secret() {
        let rsa = RsaKey::shared();
        for secret in [rsa.public_der.clone(), rsa.n.clone()] {
            let forged = hs256(&secret, Some("rsa-1"), &claims(60));
            assert_eq!(reason(auth().verify(&forged).await), "unknown signing key (kid)");
            let forged = hs256(&secret, None, &claims(60));
            assert_eq!(reason(auth().verify(&forged).await), "invalid token signature");
        }
    }

    fn b64(s: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[tokio::test]
    async fn issuer_and_audience_when_configured() {
        let mut config = Config::with_secret(SECRET);
        config.jwt_issuer = Some("https://id.example".into());
        config.jwt_audience = Some("todo".into());
        let strict = Authenticator::new(&config);
        let check = |claims: Claims| {
            let strict = strict.clone();
            async move { strict.verify(&sign(SECRET.as_bytes(), &claims).unwrap()).await }
        };

        let mut no_iss = Claims::new("alice", DEFAULT_DEV_TTL).for_config(&config);
        no_iss.iss = None;
        assert_eq!(reason(check(no_iss).await), "token lacks the iss claim");
        let mut no_aud = Claims::new("alice", DEFAULT_DEV_TTL).for_config(&config);
        no_aud.aud = None;
        assert_eq!(reason(check(no_aud).await), "token lacks the aud claim");

        let good = Claims::new("alice", DEFAULT_DEV_TTL).for_config(&config);
        assert!(check(good.clone()).await.is_ok());

        let wrong_iss = Claims { iss: Some("https://evil.example".into()), ..good.clone() };
        assert_eq!(reason(check(wrong_iss).await), "wrong token issuer");
        let wrong_aud = Claims { aud: Some("billing".into()), ..good.clone() };
        assert_eq!(reason(check(wrong_aud).await), "wrong token audience");

        // An array is a list of audiences: ours among them is enough, in any place.
        for audiences in [vec!["todo"], vec!["billing", "todo"], vec!["todo", "billing"]] {
            let many = Audience::Many(audiences.iter().map(|a| (*a).to_owned()).collect());
            let token = Claims { aud: Some(many), ..good.clone() };
            assert!(check(token).await.is_ok(), "aud {audiences:?} names todo");
        }
        for audiences in [vec![], vec!["billing"], vec!["billing", "Todo"]] {
            let many = Audience::Many(audiences.iter().map(|a| (*a).to_owned()).collect());
            let token = Claims { aud: Some(many), ..good.clone() };
            assert_eq!(reason(check(token).await), "wrong token audience", "aud {audiences:?}");
        }
        // Neither a string nor an array of strings: malformed, not a wrong audience.
        let mut odd = serde_json::to_value(&good).unwrap();
        odd["aud"] = serde_json::json!(["todo", 7]);
        let refused = strict.verify(&sign(SECRET.as_bytes(), &odd).unwrap()).await;
        assert_eq!(reason(refused), "malformed token", "aud [\"todo\", 7] is malformed");
    }
}
