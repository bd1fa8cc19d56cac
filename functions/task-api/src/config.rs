//! task-api's own settings, read from the environment with envy (the runtime reads its own:
//! port, body limit, log format).
//!
//! The process refuses to start without a usable way to check tokens (an HS256 `JWT_SECRET`, an
//! OIDC provider's `JWT_JWKS_URL`, or both) rather than serving requests it can only answer
//! with 401: a misconfigured deployment should crash-loop visibly, not look healthy. For the
//! same reason a JWKS deployment, or one marked `JWT_STRICT=true`, refuses to start without
//! `JWT_ISSUER` and `JWT_AUDIENCE`: a key set from a shared identity provider signs tokens for
//! every application registered there, and only `iss` / `aud` tell ours apart.

use std::fmt;
use std::time::Duration;

use anyhow::{Context as _, bail};
use dapr_fn::outbox::OutboxConfig;
use serde::Deserialize;
use url::Url;

/// HS256 keys shorter than the hash output (32 bytes) are brute-forceable; RFC 7518 §3.2
/// requires at least this much.
pub const MIN_SECRET_BYTES: usize = 32;

/// Default `LIST_SCAN_LIMIT`.
pub const DEFAULT_LIST_SCAN_LIMIT: usize = 10_000;

/// Default `SEARCH_SCAN_LIMIT`: about 25 ms of reading on the real platform (the 1M-task
/// benchmark read 2,000 tasks through daprd in 50 ms p50, 64 ms p95), so that a search with few
/// hits answers within the list's 50 ms target and is paged rather than slow.
pub const DEFAULT_SEARCH_SCAN_LIMIT: usize = 1_000;

/// Default `JWT_MAX_LIFETIME_SECS`: a day. An identity provider's access tokens live minutes to
/// hours; a token valid for longer is a leaked credential waiting to happen.
pub const DEFAULT_MAX_LIFETIME_SECS: u64 = 24 * 3600;

#[derive(Clone, Deserialize)]
pub struct Config {
    /// `JWT_SECRET`: the current HS256 key, which development tokens are signed with. At least
    /// [`MIN_SECRET_BYTES`] bytes; optional when `JWT_JWKS_URL` is set.
    #[serde(default)]
    pub jwt_secret: Option<String>,
    /// `JWT_SECRET_PREVIOUS`: the HS256 key being rotated out, still accepted so that tokens
    /// signed before the rotation keep working until they expire.
    #[serde(default)]
    pub jwt_secret_previous: Option<String>,
    /// `JWT_JWKS_URL`: the OIDC provider's key set (RS256 / ES256 keys by `kid`).
    #[serde(default)]
    pub jwt_jwks_url: Option<String>,
    /// `JWT_ISSUER`: when set, tokens must carry exactly this `iss`.
    #[serde(default)]
    pub jwt_issuer: Option<String>,
    /// `JWT_AUDIENCE`: when set, tokens must name this audience in `aud`.
    #[serde(default)]
    pub jwt_audience: Option<String>,
    /// `JWT_MAX_LIFETIME_SECS`: the longest a token may be valid, from now and from its `iat`.
    #[serde(default = "default_max_lifetime")]
    pub jwt_max_lifetime_secs: u64,
    /// `JWT_STRICT=true`: refuse to start unless `JWT_ISSUER` and `JWT_AUDIENCE` are set (the
    /// cloud overlay sets it).
    #[serde(default)]
    pub jwt_strict: bool,
    /// How the JWKS is cached and refetched. Not read from the environment: the defaults suit
    /// every provider we know, and tests shorten them.
    #[serde(skip)]
    pub jwks_timing: JwksTiming,
    /// `LIST_SCAN_LIMIT`: the most tasks one list request reads from the store. Filters the
    /// Query API cannot express (search, tags, due range) run in memory, so this bounds the
    /// memory and latency of one request whatever a user has stored.
    #[serde(default = "default_scan_limit")]
    pub list_scan_limit: usize,
    /// `SEARCH_SCAN_LIMIT`: the most tasks one list request with `q` or `tag` reads. Search
    /// and tags are checked here, task by task, so a search with few hits among many tasks
    /// reads far more than a page: it stops at this bound with a short page and a cursor
    /// (`X-Scan-Truncated: true`) instead of reading everything in one slow request.
    #[serde(default = "default_search_scan_limit")]
    pub search_scan_limit: usize,
    /// `LIVE_STREAMS_PER_USER`: live streams (`GET /v1/events`) one user may have open on one
    /// replica (a browser tab each); one more is refused with 429.
    #[serde(default = "default_live_per_user")]
    pub live_streams_per_user: usize,
    /// `LIVE_STREAMS`: live streams one replica holds; one more is refused with 503 (another
    /// replica may have room). Each costs a connection and a few KB.
    #[serde(default = "default_live_streams")]
    pub live_streams: usize,
    /// `LIVE_RESUME_SECS`: how long a change stays resumable with `Last-Event-ID`.
    #[serde(default = "default_live_resume_secs")]
    pub live_resume_secs: u64,
    /// `LIVE_RESUME_EVENTS`: the most changes (of all users) a replica keeps for resuming.
    #[serde(default = "default_live_resume_events")]
    pub live_resume_events: usize,
    /// `RATE_LIMIT_PER_MINUTE`: requests one user may make per minute on one replica, in bursts
    /// of as many ([`crate::rate_limit`]); 0 turns the limit off.
    #[serde(default = "default_rate_limit")]
    pub rate_limit_per_minute: u32,
    /// `MCP_RESOURCE_URL`: the URL of `/mcp` as MCP clients reach it (`https://todo.example/mcp`
    /// behind an Ingress): the `resource` of the protected-resource metadata (RFC 9728) and the
    /// base of the `resource_metadata` link in a 401. Unset, both are derived from each
    /// request's `Host` (and `X-Forwarded-Proto`), which is right on devhost and `dapr run`.
    #[serde(default)]
    pub mcp_resource_url: Option<String>,
    /// `MCP_ALLOWED_HOSTS`: comma-separated `Host` values `/mcp` accepts besides the defaults
    /// ([`crate::mcp::DEFAULT_ALLOWED_HOSTS`]: loopback and the in-cluster names of the
    /// `task-api` Service in namespace `todo`) and the host of `MCP_RESOURCE_URL`. Any other
    /// `Host` is refused with 403 (DNS-rebinding protection). A deployment whose clients reach
    /// `/mcp` by another name (an Ingress host, another namespace) lists it here.
    #[serde(default)]
    pub mcp_allowed_hosts: Option<String>,
    /// `MCP_ALLOWED_ORIGINS`: comma-separated browser origins (`https://app.example`, a port or
    /// `:*` allowed) whose pages may call `/mcp`, besides loopback origins and the origin of
    /// `MCP_RESOURCE_URL`. A request with any other `Origin` is refused with 403; requests
    /// without one (every non-browser client) pass.
    #[serde(default)]
    pub mcp_allowed_origins: Option<String>,
    /// `NOTIFY_ALLOW_LOOPBACK_HTTP=true`: webhook URLs may be plain `http` to loopback
    /// (`localhost`, 127.0.0.1, ::1), for development and tests where the receiver runs on the
    /// same machine. Off by default: on a shared host anyone's loopback service would become a
    /// target. The notifier reads the same variable, so what task-api accepts it delivers to.
    #[serde(default)]
    pub notify_allow_loopback_http: bool,
    /// `OUTBOX_*`: the outbox this function writes through and relays (read by
    /// [`OutboxConfig::from_vars`] from the same variables).
    #[serde(skip)]
    pub outbox: OutboxConfig,
}

/// The JWKS cache's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksTiming {
    /// At most one fetch per this interval, whatever the tokens say: an unknown `kid` (a key
    /// the provider just rotated in, or an attacker's made-up one) triggers a refetch only when
    /// the last attempt is at least this old, so random kids cannot turn task-api into a
    /// load generator against the provider.
    pub min_refetch: Duration,
    /// How long a fetched set is fresh when the response has no `Cache-Control: max-age`.
    pub default_max_age: Duration,
    /// Bounds on the provider's `max-age`: at least `min_max_age` (a `max-age=0` must not mean
    /// one fetch per request), at most `max_max_age` (a key the provider removed is refused
    /// within this time even if it asked for a day).
    pub min_max_age: Duration,
    pub max_max_age: Duration,
    /// How long an expired set is still used while the provider cannot be reached, so that a
    /// provider outage does not become a task-api outage for tokens whose keys are known.
    pub stale_grace: Duration,
    /// Timeout of one fetch.
    pub fetch_timeout: Duration,
}

impl Default for JwksTiming {
    fn default() -> Self {
        Self {
            min_refetch: Duration::from_secs(10),
            default_max_age: Duration::from_secs(300),
            min_max_age: Duration::from_secs(60),
            max_max_age: Duration::from_secs(3600),
            stale_grace: Duration::from_secs(3600),
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

fn default_rate_limit() -> u32 {
    crate::rate_limit::DEFAULT_PER_MINUTE
}

fn default_scan_limit() -> usize {
    DEFAULT_LIST_SCAN_LIMIT
}

fn default_search_scan_limit() -> usize {
    DEFAULT_SEARCH_SCAN_LIMIT
}

fn default_live_per_user() -> usize {
    crate::live::Limits::default().per_user
}

fn default_live_streams() -> usize {
    crate::live::Limits::default().per_replica
}

fn default_live_resume_secs() -> u64 {
    crate::live::Limits::default().window.as_secs()
}

fn default_live_resume_events() -> usize {
    crate::live::Limits::default().window_events
}

fn default_max_lifetime() -> u64 {
    DEFAULT_MAX_LIFETIME_SECS
}

fn redacted(secret: &Option<String>) -> Option<String> {
    secret.as_ref().map(|s| format!("<{} bytes>", s.len()))
}

/// Never prints the secrets, so a `{config:?}` in a log line cannot leak them.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("jwt_secret", &redacted(&self.jwt_secret))
            .field("jwt_secret_previous", &redacted(&self.jwt_secret_previous))
            .field("jwt_jwks_url", &self.jwt_jwks_url)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("jwt_max_lifetime_secs", &self.jwt_max_lifetime_secs)
            .field("jwt_strict", &self.jwt_strict)
            .field("list_scan_limit", &self.list_scan_limit)
            .field("search_scan_limit", &self.search_scan_limit)
            .field("live_streams_per_user", &self.live_streams_per_user)
            .field("live_streams", &self.live_streams)
            .field("live_resume_secs", &self.live_resume_secs)
            .field("live_resume_events", &self.live_resume_events)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("mcp_resource_url", &self.mcp_resource_url)
            .field("mcp_allowed_hosts", &self.mcp_allowed_hosts)
            .field("mcp_allowed_origins", &self.mcp_allowed_origins)
            .field("notify_allow_loopback_http", &self.notify_allow_loopback_http)
            .field("outbox", &self.outbox)
            .finish()
    }
}

impl Config {
    /// A valid configuration with this secret and defaults for the rest (tests, tools).
    pub fn with_secret(secret: impl Into<String>) -> Self {
        Self {
            jwt_secret: Some(secret.into()),
            jwt_secret_previous: None,
            jwt_jwks_url: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_max_lifetime_secs: DEFAULT_MAX_LIFETIME_SECS,
            jwt_strict: false,
            jwks_timing: JwksTiming::default(),
            list_scan_limit: default_scan_limit(),
            search_scan_limit: default_search_scan_limit(),
            live_streams_per_user: default_live_per_user(),
            live_streams: default_live_streams(),
            live_resume_secs: default_live_resume_secs(),
            live_resume_events: default_live_resume_events(),
            rate_limit_per_minute: default_rate_limit(),
            mcp_resource_url: None,
            mcp_allowed_hosts: None,
            mcp_allowed_origins: None,
            notify_allow_loopback_http: false,
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
        for value in [
            &mut self.jwt_secret,
            &mut self.jwt_secret_previous,
            &mut self.jwt_jwks_url,
            &mut self.jwt_issuer,
            &mut self.jwt_audience,
            &mut self.mcp_resource_url,
            &mut self.mcp_allowed_hosts,
            &mut self.mcp_allowed_origins,
        ] {
            *value = value.take().filter(|v| !v.trim().is_empty());
        }
        for (name, secret) in [("JWT_SECRET", &self.jwt_secret), ("JWT_SECRET_PREVIOUS", &self.jwt_secret_previous)] {
            if let Some(secret) = secret
                && secret.len() < MIN_SECRET_BYTES
            {
                bail!("{name} is too short: {} bytes, at least {MIN_SECRET_BYTES} are required", secret.len());
            }
        }
        if self.jwt_secret_previous.is_some() && self.jwt_secret.is_none() {
            bail!(
                "JWT_SECRET_PREVIOUS is set without JWT_SECRET: the previous key is only accepted next to a current one"
            );
        }
        if self.jwt_secret.is_none() && self.jwt_jwks_url.is_none() {
            bail!(
                "JWT_SECRET is required: the HS256 key bearer tokens are signed with \
                 (or JWT_JWKS_URL, an OIDC provider's key set)"
            );
        }
        if let Some(url) = &self.jwt_jwks_url {
            jwks_url(url)?;
        }
        let missing: Vec<&str> = [("JWT_ISSUER", &self.jwt_issuer), ("JWT_AUDIENCE", &self.jwt_audience)]
            .into_iter()
            .filter_map(|(name, value)| value.is_none().then_some(name))
            .collect();
        if !missing.is_empty() {
            let missing = missing.join(" and ");
            if self.jwt_jwks_url.is_some() {
                bail!(
                    "JWT_JWKS_URL is set, so {missing} must be too: an identity provider's keys sign tokens \
                     for every application it serves, and only iss and aud tell ours apart"
                );
            }
            if self.jwt_strict {
                bail!("JWT_STRICT=true: {missing} must be set, so that only tokens issued for task-api are accepted");
            }
        }
        if self.jwt_max_lifetime_secs == 0 {
            bail!("JWT_MAX_LIFETIME_SECS must be at least 1");
        }
        if self.list_scan_limit == 0 {
            bail!("LIST_SCAN_LIMIT must be at least 1");
        }
        if self.search_scan_limit == 0 {
            bail!("SEARCH_SCAN_LIMIT must be at least 1");
        }
        if self.live_streams_per_user == 0 || self.live_streams == 0 {
            bail!("LIVE_STREAMS_PER_USER and LIVE_STREAMS must be at least 1");
        }
        if let Some(url) = &self.mcp_resource_url {
            crate::mcp::resource_url(url)?;
        }
        Ok(self)
    }

    /// The bounds of this replica's live streams.
    pub fn live_limits(&self) -> crate::live::Limits {
        crate::live::Limits {
            per_user: self.live_streams_per_user,
            per_replica: self.live_streams,
            window: std::time::Duration::from_secs(self.live_resume_secs),
            window_events: self.live_resume_events,
            ..crate::live::Limits::default()
        }
    }

    /// The current secret as bytes. Empty when there is none (a JWKS-only configuration).
    pub fn secret(&self) -> &[u8] {
        self.jwt_secret.as_deref().unwrap_or_default().as_bytes()
    }

    /// The JWKS URL, parsed (it was checked by [`Config::checked`]).
    pub fn jwks_url(&self) -> Option<anyhow::Result<Url>> {
        self.jwt_jwks_url.as_deref().map(jwks_url)
    }
}

/// `JWT_JWKS_URL` as a URL. HTTPS, except on loopback (a local provider in development and
/// tests): keys fetched over plain HTTP could be swapped by anyone on the path, and then any
/// token they sign would be accepted.
fn jwks_url(raw: &str) -> anyhow::Result<Url> {
    let url = Url::parse(raw.trim()).with_context(|| format!("JWT_JWKS_URL {raw:?} is not a URL"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(host)) => host == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => bail!(
            "JWT_JWKS_URL {raw:?} must be https (plain http only on loopback): the key set decides who can sign in"
        ),
        other => bail!("JWT_JWKS_URL {raw:?}: unsupported scheme {other:?}, expected https"),
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
        assert_eq!(config.search_scan_limit, DEFAULT_SEARCH_SCAN_LIMIT);
        assert_eq!((config.jwt_issuer, config.jwt_audience), (None, None));
    }

    #[test]
    fn reads_every_variable() {
        let config = Config::from_vars(vars(&[
            ("JWT_SECRET", SECRET),
            ("JWT_ISSUER", "https://id.example"),
            ("JWT_AUDIENCE", "todo"),
            ("LIST_SCAN_LIMIT", "25"),
            ("SEARCH_SCAN_LIMIT", "7"),
            ("LIVE_STREAMS_PER_USER", "3"),
            ("LIVE_STREAMS", "40"),
            ("LIVE_RESUME_SECS", "60"),
            ("LIVE_RESUME_EVENTS", "99"),
        ]))
        .unwrap();
        assert_eq!(config.jwt_issuer.as_deref(), Some("https://id.example"));
        assert_eq!(config.jwt_audience.as_deref(), Some("todo"));
        assert_eq!(config.list_scan_limit, 25);
        assert_eq!(config.search_scan_limit, 7);
        let live = config.live_limits();
        assert_eq!((live.per_user, live.per_replica, live.window.as_secs(), live.window_events), (3, 40, 60, 99));
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
    fn reads_the_token_settings() {
        let config = Config::from_vars(vars(&[
            ("JWT_SECRET", SECRET),
            ("JWT_SECRET_PREVIOUS", "previous-previous-previous-previous"),
            ("JWT_JWKS_URL", "https://id.example/.well-known/jwks.json"),
            ("JWT_ISSUER", "https://id.example"),
            ("JWT_AUDIENCE", "todo"),
            ("JWT_MAX_LIFETIME_SECS", "3600"),
            ("JWT_STRICT", "true"),
        ]))
        .unwrap();
        assert_eq!(config.jwt_secret_previous.as_deref(), Some("previous-previous-previous-previous"));
        assert_eq!(config.jwks_url().unwrap().unwrap().as_str(), "https://id.example/.well-known/jwks.json");
        assert_eq!((config.jwt_max_lifetime_secs, config.jwt_strict), (3600, true));
        let defaults = Config::from_vars(vars(&[("JWT_SECRET", SECRET)])).unwrap();
        assert_eq!((defaults.jwt_max_lifetime_secs, defaults.jwt_strict), (DEFAULT_MAX_LIFETIME_SECS, false));
        assert!(Config::from_vars(vars(&[("JWT_SECRET", SECRET), ("JWT_MAX_LIFETIME_SECS", "0")])).is_err());
    }

    #[test]
    fn strict_mode_refuses_to_start_without_issuer_and_audience() {
        let error = Config::from_vars(vars(&[("JWT_SECRET", SECRET), ("JWT_STRICT", "true")])).unwrap_err().to_string();
        assert!(error.contains("JWT_STRICT=true: JWT_ISSUER and JWT_AUDIENCE must be set"), "{error}");
        let error =
            Config::from_vars(vars(&[("JWT_SECRET", SECRET), ("JWT_STRICT", "true"), ("JWT_ISSUER", "https://id")]))
                .unwrap_err()
                .to_string();
        assert!(error.contains("JWT_AUDIENCE must be set"), "{error}");
        // An empty value, as a manifest renders an unset one, is unset.
        let empty = vars(&[("JWT_SECRET", SECRET), ("JWT_STRICT", "true"), ("JWT_ISSUER", ""), ("JWT_AUDIENCE", "x")]);
        assert!(Config::from_vars(empty).is_err());
        let full = vars(&[("JWT_SECRET", SECRET), ("JWT_STRICT", "true"), ("JWT_ISSUER", "i"), ("JWT_AUDIENCE", "a")]);
        assert!(Config::from_vars(full).is_ok());
    }

    #[test]
    fn a_jwks_needs_issuer_and_audience_and_no_secret() {
        let url = ("JWT_JWKS_URL", "https://id.example/jwks");
        let error = Config::from_vars(vars(&[url])).unwrap_err().to_string();
        assert!(error.contains("JWT_JWKS_URL is set, so JWT_ISSUER and JWT_AUDIENCE must be too"), "{error}");
        let config =
            Config::from_vars(vars(&[url, ("JWT_ISSUER", "https://id.example"), ("JWT_AUDIENCE", "todo")])).unwrap();
        assert!(config.secret().is_empty(), "JWKS alone is enough");
    }

    #[test]
    fn the_jwks_url_is_https_except_on_loopback() {
        let with = |url: &str| {
            Config::from_vars(vars(&[("JWT_JWKS_URL", url), ("JWT_ISSUER", "i"), ("JWT_AUDIENCE", "a")]))
                .map_err(|e| e.to_string())
        };
        assert!(with("https://id.example/jwks").is_ok());
        assert!(with("http://127.0.0.1:8081/jwks").is_ok());
        assert!(with("http://localhost/jwks").is_ok());
        assert!(with("http://[::1]:80/jwks").is_ok());
        assert!(with("http://id.example/jwks").unwrap_err().contains("must be https"));
        assert!(with("ftp://id.example/jwks").unwrap_err().contains("unsupported scheme"));
        assert!(with("not a url").unwrap_err().contains("is not a URL"));
    }

    #[test]
    fn the_previous_secret_needs_a_current_one_and_the_same_length() {
        let previous = ("JWT_SECRET_PREVIOUS", "previous-previous-previous-previous");
        let error = Config::from_vars(vars(&[previous])).unwrap_err().to_string();
        assert!(error.contains("JWT_SECRET_PREVIOUS is set without JWT_SECRET"), "{error}");
        let short = Config::from_vars(vars(&[("JWT_SECRET", SECRET), ("JWT_SECRET_PREVIOUS", "short")]));
        assert!(short.unwrap_err().to_string().contains("JWT_SECRET_PREVIOUS is too short"));
    }

    #[test]
    fn reads_the_mcp_settings() {
        let config = Config::from_vars(vars(&[
            ("JWT_SECRET", SECRET),
            ("MCP_RESOURCE_URL", "https://todo.example/mcp"),
            ("MCP_ALLOWED_HOSTS", "todo.example, api.todo.example"),
            ("MCP_ALLOWED_ORIGINS", "https://app.todo.example"),
        ]))
        .unwrap();
        assert_eq!(config.mcp_resource_url.as_deref(), Some("https://todo.example/mcp"));
        assert_eq!(config.mcp_allowed_hosts.as_deref(), Some("todo.example, api.todo.example"));
        assert_eq!(config.mcp_allowed_origins.as_deref(), Some("https://app.todo.example"));
        let bad = Config::from_vars(vars(&[("JWT_SECRET", SECRET), ("MCP_RESOURCE_URL", "todo.example/mcp")]));
        assert!(bad.unwrap_err().to_string().contains("MCP_RESOURCE_URL"));
    }

    #[test]
    fn loopback_webhooks_are_off_unless_asked_for() {
        let default = Config::from_vars(vars(&[("JWT_SECRET", SECRET)])).unwrap();
        assert!(!default.notify_allow_loopback_http);
        let on = Config::from_vars(vars(&[("JWT_SECRET", SECRET), ("NOTIFY_ALLOW_LOOPBACK_HTTP", "true")])).unwrap();
        assert!(on.notify_allow_loopback_http);
        let bad = Config::from_vars(vars(&[("JWT_SECRET", SECRET), ("NOTIFY_ALLOW_LOOPBACK_HTTP", "yes please")]));
        let bad = bad.unwrap_err().to_string();
        assert!(bad.contains("NOTIFY_ALLOW_LOOPBACK_HTTP"), "{bad}");
    }

    #[test]
    fn bad_scan_limits_are_refused() {
        assert!(Config::from_vars(vars(&[("JWT_SECRET", SECRET), ("LIST_SCAN_LIMIT", "0")])).is_err());
        assert!(Config::from_vars(vars(&[("JWT_SECRET", SECRET), ("LIST_SCAN_LIMIT", "many")])).is_err());
        assert!(Config::from_vars(vars(&[("JWT_SECRET", SECRET), ("SEARCH_SCAN_LIMIT", "0")])).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let mut config = Config::with_secret(SECRET);
        config.jwt_secret_previous = Some("previous-previous-previous-previous".into());
        let shown = format!("{config:?}");
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains("previous-previous"), "{shown}");
        assert!(shown.contains("<32 bytes>"), "{shown}");
    }
}
