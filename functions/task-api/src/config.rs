//! task-api's own settings, read from the environment with envy (the runtime reads its own:
//! port, body limit, log format).
//!
//! The process refuses to start without a usable `JWT_SECRET` rather than serving requests it
//! can only answer with 401: a misconfigured deployment should crash-loop visibly, not look
//! healthy.

use std::fmt;

use anyhow::bail;
use serde::Deserialize;
use shared::outbox::OutboxConfig;

/// HS256 keys shorter than the hash output (32 bytes) are brute-forceable; RFC 7518 §3.2
/// requires at least this much.
pub const MIN_SECRET_BYTES: usize = 32;

/// Default `LIST_SCAN_LIMIT`.
pub const DEFAULT_LIST_SCAN_LIMIT: usize = 10_000;

#[derive(Clone, Deserialize)]
pub struct Config {
    /// `JWT_SECRET`: the HS256 key bearer tokens are signed with. Required, at least
    /// [`MIN_SECRET_BYTES`] bytes.
    #[serde(default)]
    pub jwt_secret: Option<String>,
    /// `JWT_ISSUER`: when set, tokens must carry exactly this `iss`.
    #[serde(default)]
    pub jwt_issuer: Option<String>,
    /// `JWT_AUDIENCE`: when set, tokens must name this audience in `aud`.
    #[serde(default)]
    pub jwt_audience: Option<String>,
    /// `LIST_SCAN_LIMIT`: the most tasks one list request reads from the store. Filters the
    /// Query API cannot express (search, tags, due range) run in memory, so this bounds the
    /// memory and latency of one request whatever a user has stored.
    #[serde(default = "default_scan_limit")]
    pub list_scan_limit: usize,
    /// `OUTBOX_*`: the outbox this function writes through and relays (read by
    /// [`OutboxConfig::from_vars`] from the same variables).
    #[serde(skip)]
    pub outbox: OutboxConfig,
}

fn default_scan_limit() -> usize {
    DEFAULT_LIST_SCAN_LIMIT
}

/// Never prints the secret, so a `{config:?}` in a log line cannot leak it.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|s| format!("<{} bytes>", s.len())))
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("list_scan_limit", &self.list_scan_limit)
            .field("outbox", &self.outbox)
            .finish()
    }
}

impl Config {
    /// A valid configuration with this secret and defaults for the rest (tests, tools).
    pub fn with_secret(secret: impl Into<String>) -> Self {
        Self {
            jwt_secret: Some(secret.into()),
            jwt_issuer: None,
            jwt_audience: None,
            list_scan_limit: default_scan_limit(),
            outbox: OutboxConfig::default(),
        }
    }

    /// Reads and checks the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_vars(std::env::vars())
    }

    /// Reads and checks `vars` (`JWT_SECRET`, ...), as the environment would supply them.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Self> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let mut config: Self = envy::from_iter(vars.iter().cloned())
            .map_err(|e| anyhow::anyhow!("task-api configuration from the environment: {e}"))?;
        config.outbox = OutboxConfig::from_vars(vars)?;
        config.checked()
    }

    /// Normalises (an empty variable, as manifests render an unset value, means "unset") and
    /// validates.
    pub fn checked(mut self) -> anyhow::Result<Self> {
        self.jwt_issuer = self.jwt_issuer.filter(|v| !v.trim().is_empty());
        self.jwt_audience = self.jwt_audience.filter(|v| !v.trim().is_empty());
        match self.jwt_secret.as_deref() {
            None | Some("") => bail!("JWT_SECRET is required: the HS256 key bearer tokens are signed with"),
            Some(secret) if secret.len() < MIN_SECRET_BYTES => {
                bail!("JWT_SECRET is too short: {} bytes, at least {MIN_SECRET_BYTES} are required", secret.len())
            }
            Some(_) => {}
        }
        if self.list_scan_limit == 0 {
            bail!("LIST_SCAN_LIMIT must be at least 1");
        }
        Ok(self)
    }

    /// The secret as bytes. Empty only for a configuration that skipped [`Config::checked`].
    pub fn secret(&self) -> &[u8] {
        self.jwt_secret.as_deref().unwrap_or_default().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults() {
        let config = Config::from_vars(vars(&[("JWT_SECRET", SECRET)])).unwrap();
        assert_eq!(config.secret(), SECRET.as_bytes());
        assert_eq!(config.list_scan_limit, DEFAULT_LIST_SCAN_LIMIT);
        assert_eq!((config.jwt_issuer, config.jwt_audience), (None, None));
    }

    #[test]
    fn reads_every_variable() {
        let config = Config::from_vars(vars(&[
            ("JWT_SECRET", SECRET),
            ("JWT_ISSUER", "https://id.example"),
            ("JWT_AUDIENCE", "todo"),
            ("LIST_SCAN_LIMIT", "25"),
        ]))
        .unwrap();
        assert_eq!(config.jwt_issuer.as_deref(), Some("https://id.example"));
        assert_eq!(config.jwt_audience.as_deref(), Some("todo"));
        assert_eq!(config.list_scan_limit, 25);
    }

    #[test]
    fn reads_the_outbox_settings() {
        let config = Config::from_vars(vars(&[
            ("JWT_SECRET", SECRET),
            ("OUTBOX_RELAY_INTERVAL_MS", "500"),
            ("OUTBOX_RELAY_MIN_AGE_MS", "1500"),
        ]))
        .unwrap();
        assert_eq!((config.outbox.outbox_relay_interval_ms, config.outbox.outbox_relay_min_age_ms), (500, 1500));
        assert!(config.outbox.outbox_relay_enabled);
        let bad = Config::from_vars(vars(&[("JWT_SECRET", SECRET), ("OUTBOX_RELAY_INTERVAL_MS", "0")]));
        assert!(bad.unwrap_err().to_string().contains("OUTBOX_RELAY_INTERVAL_MS"));
    }

    #[test]
    fn empty_optional_values_mean_unset() {
        let config =
            Config::from_vars(vars(&[("JWT_SECRET", SECRET), ("JWT_ISSUER", ""), ("JWT_AUDIENCE", " ")])).unwrap();
        assert_eq!((config.jwt_issuer, config.jwt_audience), (None, None));
    }

    #[test]
    fn a_missing_or_short_secret_refuses_to_start() {
        let missing = Config::from_vars(vars(&[])).unwrap_err().to_string();
        assert!(missing.contains("JWT_SECRET is required"), "{missing}");
        let empty = Config::from_vars(vars(&[("JWT_SECRET", "")])).unwrap_err().to_string();
        assert!(empty.contains("JWT_SECRET is required"), "{empty}");
        let short = Config::from_vars(vars(&[("JWT_SECRET", "short")])).unwrap_err().to_string();
        assert!(short.contains("too short: 5 bytes"), "{short}");
    }

    #[test]
    fn bad_scan_limits_are_refused() {
        assert!(Config::from_vars(vars(&[("JWT_SECRET", SECRET), ("LIST_SCAN_LIMIT", "0")])).is_err());
        assert!(Config::from_vars(vars(&[("JWT_SECRET", SECRET), ("LIST_SCAN_LIMIT", "many")])).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!("{:?}", Config::with_secret(SECRET));
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("<32 bytes>"), "{shown}");
    }
}
