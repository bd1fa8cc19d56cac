//! Bearer authentication: `Authorization: Bearer <JWT>`, HS256 with `JWT_SECRET`.
//!
//! The token's `sub` is the user id, and the user id is the owner of every task that user
//! creates: there is no other identity or role, so authorisation is simply "owner == sub".
//! `exp` is required (a token without one would be valid forever), a small leeway absorbs clock
//! skew between the issuer and this pod, and `iss` / `aud` are required and checked when
//! configured so that a token minted for another service is not accepted here.
//!
//! Only HS256 is accepted, whatever the token's header claims: accepting the header's `alg`
//! is the classic JWT downgrade (`none`, or an RSA public key used as an HMAC secret).
//! Tokens are never logged; rejections log only the reason.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use shared::domain::validate::MAX_OWNER_CHARS;

use crate::config::{Config, MIN_SECRET_BYTES};
use crate::error::ApiError;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// Default lifetime of a development token (`task-api dev-token`).
pub const DEFAULT_DEV_TTL: Duration = Duration::from_secs(12 * 3600);

/// The authenticated caller. Extracting it from a request is what makes a route require a
/// valid bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The token's `sub`: the owner of the caller's tasks.
    pub id: String,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
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
        self.aud = config.jwt_audience.clone();
        self
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// Signs `claims` with HS256.
pub fn sign(secret: &[u8], claims: &impl Serialize) -> anyhow::Result<String> {
    crate::hs256::install();
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret))
        .context("signing the token")
}

/// A token for `user`, valid for `ttl`: what `task-api dev-token` prints and what tests use.
pub fn mint(secret: &[u8], user: &str, ttl: Duration) -> anyhow::Result<String> {
    check_user_id(user).map_err(anyhow::Error::msg)?;
    if secret.is_empty() {
        bail!("an empty secret signs nothing");
    }
    sign(secret, &Claims::new(user, ttl))
}

/// Checks bearer tokens. Built once from the configuration; cheap to share.
#[derive(Clone)]
pub struct Authenticator {
    /// `None` for a configuration without a usable secret: every token is then refused. An
    /// empty HMAC key would accept tokens anyone can sign.
    key: Option<DecodingKey>,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("algorithms", &self.validation.algorithms)
            .field("iss", &self.validation.iss)
            .field("aud", &self.validation.aud)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(config: &Config) -> Self {
        crate::hs256::install();
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
        let key = (config.secret().len() >= MIN_SECRET_BYTES).then(|| DecodingKey::from_secret(config.secret()));
        Self { key, validation }
    }

    /// The caller named by a valid `token`.
    pub fn verify(&self, token: &str) -> Result<User, ApiError> {
        let Some(key) = &self.key else {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "JWT_SECRET is missing or too short; refusing every token"
            )));
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|e| ApiError::invalid_token(rejection_reason(e.kind())))?;
        let sub = data.claims.sub.unwrap_or_default();
        check_user_id(&sub).map_err(ApiError::invalid_token)?;
        Ok(User { id: sub })
    }

    /// The caller named by an `Authorization` header value.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<User, ApiError> {
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
        self.verify(token)
    }
}

/// The owner invariants of `shared::domain::validate::check`, enforced at the door: a token
/// whose `sub` could never own a task is not a valid identity here.
pub(crate) fn check_user_id(user: &str) -> Result<(), String> {
    if user.trim().is_empty() {
        return Err("the token's sub (user id) is empty".into());
    }
    if user.chars().count() > MAX_OWNER_CHARS || user.chars().any(char::is_control) {
        return Err(format!("the token's sub (user id) must be 1 to {MAX_OWNER_CHARS} printable characters"));
    }
    Ok(())
}

/// What the client is told. Specific enough to fix a client, never the token itself.
fn rejection_reason(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "token expired".into(),
        ErrorKind::ImmatureSignature => "token not valid yet (nbf)".into(),
        ErrorKind::InvalidSignature => "invalid token signature".into(),
        ErrorKind::InvalidAlgorithm => "token algorithm not accepted: HS256 only".into(),
        ErrorKind::InvalidIssuer => "wrong token issuer".into(),
        ErrorKind::InvalidAudience => "wrong token audience".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("token lacks the {claim} claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("token claim {claim} is malformed"),
        _ => "malformed token".into(),
    }
}

impl<S> FromRequestParts<S> for User
where
    S: Send + Sync,
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Arc::<Authenticator>::from_ref(state);
        auth.authenticate(parts.headers.get(AUTHORIZATION).map(|v| v.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn auth() -> Authenticator {
        Authenticator::new(&Config::with_secret(SECRET))
    }

    fn reason(result: Result<User, ApiError>) -> String {
        match result.unwrap_err() {
            ApiError::Unauthorized { message, .. } => message,
            other => panic!("expected 401, got {other:?}"),
        }
    }

    #[test]
    fn mint_and_verify_round_trip() {
        let token = mint(SECRET.as_bytes(), "alice", DEFAULT_DEV_TTL).unwrap();
        assert_eq!(auth().verify(&token).unwrap(), User { id: "alice".into() });
        let header = format!("Bearer {token}");
        assert_eq!(auth().authenticate(Some(header.as_bytes())).unwrap().id, "alice");
        let lowercase = format!("bearer {token}");
        assert_eq!(auth().authenticate(Some(lowercase.as_bytes())).unwrap().id, "alice");
    }

    #[test]
    fn an_unchecked_short_secret_fails_closed() {
        let weak = Authenticator::new(&Config::with_secret(""));
        let token = sign(b"", &Claims::new("alice", DEFAULT_DEV_TTL)).unwrap();
        assert!(matches!(weak.verify(&token), Err(ApiError::Internal(_))));
    }

    #[test]
    fn mint_refuses_an_empty_user() {
        assert!(mint(SECRET.as_bytes(), "  ", DEFAULT_DEV_TTL).is_err());
    }

    #[test]
    fn missing_and_malformed_headers() {
        assert!(matches!(auth().authenticate(None), Err(ApiError::Unauthorized { invalid_token: false, .. })));
        assert_eq!(
            reason(auth().authenticate(Some(b"Basic YWxpY2U6cHc="))),
            "the Authorization header must use the Bearer scheme"
        );
        assert_eq!(reason(auth().authenticate(Some(b"Bearer "))), "missing bearer token");
        assert_eq!(reason(auth().authenticate(Some(b"Bearer not.a.jwt"))), "malformed token");
        assert_eq!(reason(auth().authenticate(Some(b"Bearer \xff"))), "malformed Authorization header");
    }

    #[test]
    fn wrong_signature() {
        let token = mint(b"another-secret-another-secret-xx", "alice", DEFAULT_DEV_TTL).unwrap();
        assert_eq!(reason(auth().verify(&token)), "invalid token signature");
    }

    #[test]
    fn expired_beyond_the_leeway() {
        let mut claims = Claims::new("alice", Duration::ZERO);
        claims.exp = unix_now() - LEEWAY_SECS - 5;
        assert_eq!(reason(auth().verify(&sign(SECRET.as_bytes(), &claims).unwrap())), "token expired");
        claims.exp = unix_now() - 5;
        assert!(auth().verify(&sign(SECRET.as_bytes(), &claims).unwrap()).is_ok(), "within the leeway");
    }

    #[test]
    fn exp_and_sub_are_required() {
        let no_exp = sign(SECRET.as_bytes(), &serde_json::json!({"sub": "alice"})).unwrap();
        assert_eq!(reason(auth().verify(&no_exp)), "token lacks the exp claim");
        let mut claims = Claims::new("alice", DEFAULT_DEV_TTL);
        claims.sub = None;
        assert_eq!(reason(auth().verify(&sign(SECRET.as_bytes(), &claims).unwrap())), "token lacks the sub claim");
        claims.sub = Some(String::new());
        assert_eq!(
            reason(auth().verify(&sign(SECRET.as_bytes(), &claims).unwrap())),
            "the token's sub (user id) is empty"
        );
    }

    #[test]
    fn other_algorithms_are_refused() {
        // The algorithm is checked before the signature: the signature part need not be valid.
        let claims = serde_json::to_string(&Claims::new("alice", DEFAULT_DEV_TTL)).unwrap();
        for alg in ["HS512", "RS256", "ES256"] {
            let token = format!("{}.{}.c2ln", b64(&format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#)), b64(&claims));
            assert_eq!(reason(auth().verify(&token)), "token algorithm not accepted: HS256 only", "{alg}");
        }
        // An unsigned token (`alg: none`) is not even a token jsonwebtoken can parse.
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(r#"{"sub":"alice","exp":9999999999}"#));
        assert!(auth().verify(&none).is_err());
    }

    fn b64(s: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn issuer_and_audience_when_configured() {
        let mut config = Config::with_secret(SECRET);
        config.jwt_issuer = Some("https://id.example".into());
        config.jwt_audience = Some("todo".into());
        let strict = Authenticator::new(&config);

        let mut no_iss = Claims::new("alice", DEFAULT_DEV_TTL).for_config(&config);
        no_iss.iss = None;
        assert_eq!(reason(strict.verify(&sign(SECRET.as_bytes(), &no_iss).unwrap())), "token lacks the iss claim");
        let mut no_aud = Claims::new("alice", DEFAULT_DEV_TTL).for_config(&config);
        no_aud.aud = None;
        assert_eq!(reason(strict.verify(&sign(SECRET.as_bytes(), &no_aud).unwrap())), "token lacks the aud claim");

        let good = Claims::new("alice", DEFAULT_DEV_TTL).for_config(&config);
        assert!(strict.verify(&sign(SECRET.as_bytes(), &good).unwrap()).is_ok());

        let wrong_iss = Claims { iss: Some("https://evil.example".into()), ..good.clone() };
        assert_eq!(reason(strict.verify(&sign(SECRET.as_bytes(), &wrong_iss).unwrap())), "wrong token issuer");
        let wrong_aud = Claims { aud: Some("billing".into()), ..good };
        assert_eq!(reason(strict.verify(&sign(SECRET.as_bytes(), &wrong_aud).unwrap())), "wrong token audience");
    }
}
