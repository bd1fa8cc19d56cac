//! Runtime settings from the environment. Defaults work under devhost and `dapr run`.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default, for terminals).
    #[default]
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RuntimeConfig {
    /// `APP_PORT`: the port Dapr delivers to (`--app-port` / `dapr.io/app-port`).
    #[serde(default = "default_port")]
    pub app_port: u16,
    /// `APP_HOST`: bind address. Loopback by default (the sidecar is local); containers set
    /// `0.0.0.0` so that kubelet probes and the task-api Service can reach the pod.
    #[serde(default = "default_host")]
    pub app_host: String,
    /// `APP_API_TOKEN`: when set, every Dapr-facing route requires `dapr-api-token` to match.
    #[serde(default)]
    pub app_api_token: Option<String>,
    /// `METRICS_PORT`: serve `/metrics` on its own port, without the app token, for Prometheus
    /// (which cannot send `dapr-api-token`). Unset: `/metrics` is on the app port.
    #[serde(default)]
    pub metrics_port: Option<u16>,
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
            metrics_port: None,
            shutdown_timeout_secs: default_shutdown_timeout(),
            max_body_bytes: default_max_body(),
            log_format: LogFormat::default(),
        }
    }
}

impl RuntimeConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let mut config: Self =
            envy::from_env().map_err(|e| anyhow::anyhow!("runtime configuration from the environment: {e}"))?;
        // An empty variable (as manifests render an unset secret) means "no token".
        config.app_api_token = config.app_api_token.filter(|t| !t.is_empty());
        Ok(config)
    }
}
