//! Runtime settings from the environment. Defaults work under devhost and `dapr run`.

use serde::Deserialize;

/// How log lines are written to stdout (`LOG_FORMAT`); any other value fails
/// [`RuntimeConfig::from_env`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default, for terminals).
    #[default]
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// The runtime's settings, one environment variable per field (all listed in `--help`,
/// [`crate::runtime::cli::RUNTIME_ENV`]). `Default` is every variable's default and no app
/// token, which [`RuntimeConfig::from_env`] would refuse: it is for tests (struct update).
#[derive(Debug, Clone, Deserialize)]
pub struct RuntimeConfig {
    /// `APP_PORT`: the port Dapr delivers to (`--app-port` / `dapr.io/app-port`).
    #[serde(default = "default_port")]
    pub app_port: u16,
    /// `APP_HOST`: bind address. Loopback by default (the sidecar is local); containers set
    /// `0.0.0.0` so that kubelet probes and the task-api Service can reach the pod.
    #[serde(default = "default_host")]
    pub app_host: String,
    /// `APP_API_TOKEN`: every Dapr-facing route requires `dapr-api-token` to match. Required:
    /// without it anything that reaches the app port could deliver events or fire jobs as if it
    /// were the sidecar, so the process refuses to start unless told this is development
    /// (`APP_API_TOKEN_OPTIONAL`). devhost and the test harnesses give every app its own.
    #[serde(default)]
    pub app_api_token: Option<String>,
    /// `APP_API_TOKEN_OPTIONAL=true`: start without an app token (development only; logged as a
    /// warning). Nothing in the Kubernetes manifests sets it.
    #[serde(default)]
    pub app_api_token_optional: bool,
    /// `METRICS_PORT`: serve `/metrics` and `/healthz` on their own port, without the app token,
    /// for Prometheus and kubelet probes (which cannot send `dapr-api-token`), so that the app
    /// port itself can stay on loopback where the sidecar is its only caller. Unset: both are on
    /// the app port.
    #[serde(default)]
    pub metrics_port: Option<u16>,
    /// `METRICS_HOST`: bind address of the metrics port; the app's own (`APP_HOST`) when unset.
    /// Containers set `0.0.0.0` there while the app port stays on loopback.
    #[serde(default)]
    pub metrics_host: Option<String>,
    /// `SHUTDOWN_TIMEOUT_SECS`: how long in-flight work may finish after SIGTERM. Keep it below
    /// `dapr.io/graceful-shutdown-seconds` and the pod's termination grace period.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout_secs: u64,
    /// `MAX_BODY_BYTES`: larger deliveries are dropped (dead-lettered), larger API requests
    /// refused with 413. Kafka's default message limit is 1 MiB.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// `LOG_FORMAT`: `text` or `json`.
    #[serde(default)]
    pub log_format: LogFormat,
}

fn default_port() -> u16 {
    8080
}
fn default_host() -> String {
    "127.0.0.1".to_owned()
}
fn default_shutdown_timeout() -> u64 {
    15
}
fn default_max_body() -> usize {
    1024 * 1024
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            app_port: default_port(),
            app_host: default_host(),
            app_api_token: None,
            app_api_token_optional: false,
            metrics_port: None,
            metrics_host: None,
            shutdown_timeout_secs: default_shutdown_timeout(),
            max_body_bytes: default_max_body(),
            log_format: LogFormat::default(),
        }
    }
}

impl RuntimeConfig {
    /// Reads and checks the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_vars(std::env::vars())
    }

    /// Reads and checks `vars`, as the environment would supply them.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Self> {
        let mut config: Self =
            envy::from_iter(vars).map_err(|e| anyhow::anyhow!("runtime configuration from the environment: {e}"))?;
        // An empty variable (as manifests render an unset secret) means "no token".
        config.app_api_token = config.app_api_token.filter(|t| !t.is_empty());
        config.metrics_host = config.metrics_host.filter(|h| !h.trim().is_empty());
        if config.app_api_token.is_none() && !config.app_api_token_optional {
            anyhow::bail!(
                "APP_API_TOKEN is required: the token the sidecar sends as dapr-api-token (give daprd and the app \
                 the same value; devhost sets one per app). For development without it, set \
                 APP_API_TOKEN_OPTIONAL=true"
            );
        }
        Ok(config)
    }

    /// Where the metrics port listens.
    pub fn metrics_host(&self) -> &str {
        self.metrics_host.as_deref().unwrap_or(&self.app_host)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn an_app_token_is_required_unless_development_says_otherwise() {
        let missing = RuntimeConfig::from_vars(vars(&[])).unwrap_err().to_string();
        assert!(missing.contains("APP_API_TOKEN is required"), "{missing}");
        let empty = RuntimeConfig::from_vars(vars(&[("APP_API_TOKEN", "")])).unwrap_err().to_string();
        assert!(empty.contains("APP_API_TOKEN is required"), "an empty token is no token: {empty}");
        let config = RuntimeConfig::from_vars(vars(&[("APP_API_TOKEN", "t")])).unwrap();
        assert_eq!(config.app_api_token.as_deref(), Some("t"));
        let dev = RuntimeConfig::from_vars(vars(&[("APP_API_TOKEN_OPTIONAL", "true")])).unwrap();
        assert_eq!(dev.app_api_token, None);
    }

    #[test]
    fn the_metrics_port_listens_where_the_app_does_unless_told() {
        let config = RuntimeConfig::from_vars(vars(&[("APP_API_TOKEN", "t"), ("METRICS_PORT", "9464")])).unwrap();
        assert_eq!((config.metrics_port, config.metrics_host()), (Some(9464), "127.0.0.1"));
        let split = RuntimeConfig::from_vars(vars(&[
            ("APP_API_TOKEN", "t"),
            ("APP_HOST", "127.0.0.1"),
            ("METRICS_HOST", "0.0.0.0"),
        ]))
        .unwrap();
        assert_eq!((split.app_host.as_str(), split.metrics_host()), ("127.0.0.1", "0.0.0.0"));
    }
}
