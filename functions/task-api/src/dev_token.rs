//! Development tokens, for `devhost dev-token <user> [--ttl-hours N]`, `make run` and the
//! tests. Only with the `mint` feature: the task-api binary is built without it and cannot mint.
//!
//! It signs with the same `JWT_SECRET` (and `JWT_ISSUER` / `JWT_AUDIENCE`, when set) the server
//! reads, so `make run` can hand a working token to curl without an identity provider. It is
//! not a login: anyone with the secret can mint any user's token, which is exactly what a
//! development secret is for and why the minting code is not in the image that holds a
//! production secret.

use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::auth::{self, Claims};
use crate::config::{Config, DEFAULT_MAX_LIFETIME_SECS};

/// Longest lifetime a development token may have, in hours: the default lifetime cap of the
/// server (`JWT_MAX_LIFETIME_SECS`), so that a token minted here is accepted there.
pub const MAX_TTL_HOURS: u64 = DEFAULT_MAX_LIFETIME_SECS / 3600;

/// A token for `user`, valid for `ttl`, under `config` (its current secret, issuer and
/// audience). Refuses a lifetime the server would refuse.
pub fn token(config: &Config, user: &str, ttl: Duration) -> anyhow::Result<String> {
    auth::check_user_id(user).map_err(anyhow::Error::msg)?;
    if config.secret().is_empty() {
        bail!("JWT_SECRET is not set: development tokens are HS256, signed with it");
    }
    if ttl.is_zero() || ttl.as_secs() > config.jwt_max_lifetime_secs {
        bail!("the token lifetime must be from 1 s to JWT_MAX_LIFETIME_SECS ({} s)", config.jwt_max_lifetime_secs);
    }
    auth::sign(config.secret(), &Claims::new(user, ttl).for_config(config))
}

/// The subcommand: configuration from the environment, the token as the result. (devhost's
/// command line bounds the hours to 1..=[`MAX_TTL_HOURS`]; [`token`] checks the lifetime again.)
pub fn run(user: &str, ttl: Duration) -> anyhow::Result<String> {
    let config = Config::from_env().context("reading JWT_SECRET, JWT_ISSUER, JWT_AUDIENCE")?;
    token(&config, user, ttl)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::auth::Authenticator;

    fn config() -> Config {
        let mut config = Config::with_secret("0123456789abcdef0123456789abcdef");
        config.jwt_issuer = Some("dev".into());
        config.jwt_audience = Some("task-api".into());
        config
    }

    #[tokio::test]
    async fn the_token_passes_the_servers_own_checks() {
        let config = config();
        let token = token(&config, "alice", Duration::from_secs(3600)).unwrap();
        assert_eq!(Authenticator::new(&config).verify(&token).await.unwrap().id, "alice");
        assert!(super::token(&config, " ", Duration::from_secs(3600)).is_err(), "an empty user is refused");
    }

    #[test]
    fn lifetimes_beyond_the_cap_are_refused() {
        assert_eq!(MAX_TTL_HOURS, 24);
        let config = config();
        assert!(token(&config, "alice", Duration::from_secs(24 * 3600)).is_ok());
        let error = token(&config, "alice", Duration::from_secs(24 * 3600 + 1)).unwrap_err().to_string();
        assert!(error.contains("JWT_MAX_LIFETIME_SECS"), "{error}");
        assert!(token(&config, "alice", Duration::ZERO).is_err());
    }

    #[test]
    fn a_jwks_only_configuration_has_nothing_to_sign_with() {
        let mut config = config();
        config.jwt_secret = None;
        assert!(token(&config, "alice", Duration::from_secs(60)).unwrap_err().to_string().contains("JWT_SECRET"));
    }
}
