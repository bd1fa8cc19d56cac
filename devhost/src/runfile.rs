//! `dapr.yaml`, Dapr's multi-app run file (<https://docs.dapr.io/developing-applications/local-development/multi-app-dapr-run/multi-app-template/>):
//! the same file drives `dapr run -f dapr.yaml` and devhost.
//!
//! Used: `common.resourcesPath`/`resourcesPaths`, `common.env`, and per app `appID`,
//! `appDirPath`, `appPort`, `daprHTTPPort`, `command`, `env`, `appProtocol` (`http` only), and
//! the app health check: `enableAppHealthCheck`, `appHealthCheckPath`, `appHealthProbeInterval`
//! (seconds), `appHealthProbeTimeout` (milliseconds), `appHealthThreshold`, which the dapr CLI
//! passes to daprd as `--enable-app-health-check`, `--app-health-check-path`, ... ([`HealthCheck`]).
//! Fields that only tune daprd or its logs (ports of protocols devhost does not serve, log
//! levels) are accepted and unused; see [`UNUSED_FIELDS`]. Anything else is a startup error naming
//! the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use serde_json::Value;

use crate::fields::{Fields, scalar_string, yaml_documents};

/// Run-file fields accepted and deliberately unused: they configure daprd features devhost does
/// not have (gRPC, metrics, profiling, placement, log files).
pub const UNUSED_FIELDS: &[&str] = &[
    "daprGRPCPort",
    "daprInternalGRPCPort",
    "metricsPort",
    "profilePort",
    "enableProfiling",
    "logLevel",
    "appLogDestination",
    "daprdLogDestination",
    "enableApiLogging",
    "appMaxConcurrency",
    "daprHTTPMaxRequestSize",
    "daprHTTPReadBufferSize",
    "placementHostAddress",
    "schedulerHostAddress",
    "runtimePath",
    "daprPath",
    "unixDomainSocket",
    "appChannelAddress",
    "appSSL",
    "configFilePath",
];

#[derive(Debug, Clone)]
pub struct RunFile {
    /// Directory of the run file: relative paths are resolved against it.
    pub dir: PathBuf,
    pub resources_paths: Vec<PathBuf>,
    pub apps: Vec<RunApp>,
}

#[derive(Debug, Clone)]
pub struct RunApp {
    pub app_id: String,
    pub app_dir: PathBuf,
    pub app_port: Option<u16>,
    /// The sidecar port to serve for this app; `None` or 0 = any free port.
    pub dapr_http_port: Option<u16>,
    /// Empty: an external app, started by someone else ([`RunApp::is_external`]).
    pub command: Vec<String>,
    /// Common env first, then the app's own (which wins).
    pub env: BTreeMap<String, String>,
    /// `None`: app health checks off (daprd's default): the app only has to accept connections.
    pub health_check: Option<HealthCheck>,
}

/// daprd's app health check (`--enable-app-health-check` and its settings; dapr/dapr v1.18.2
/// `pkg/runtime/config.go:538-567`, defaults `pkg/config/app_connection.go:23-28`): `GET <path>`
/// every `interval`, each probe given `timeout`; 2xx is a success. The app starts unhealthy;
/// one success makes it healthy, `threshold` failures in a row unhealthy again
/// (`pkg/apphealth/health.go`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub path: String,
    pub interval: std::time::Duration,
    pub timeout: std::time::Duration,
    pub threshold: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            path: "/healthz".to_owned(),
            interval: std::time::Duration::from_secs(5),
            timeout: std::time::Duration::from_millis(500),
            threshold: 3,
        }
    }
}

/// The health-check fields of `common` or of one app (an app's own win).
#[derive(Debug, Clone, Default)]
struct HealthFields {
    enabled: Option<bool>,
    path: Option<String>,
    interval: Option<i64>,
    timeout: Option<i64>,
    threshold: Option<i64>,
}

impl HealthFields {
    fn read(fields: &mut Fields) -> anyhow::Result<Self> {
        let at = fields.at().to_owned();
        let int = |fields: &mut Fields, key: &str| -> anyhow::Result<Option<i64>> {
            fields
                .string(key)?
                .map(|v| v.trim().parse::<i64>().map_err(|_| anyhow!("{at}: `{key}` {v:?} is not an integer")))
                .transpose()
        };
        let enabled = fields
            .string("enableAppHealthCheck")?
            .map(|v| {
                crate::fields::parse_go_bool(&v)
                    .ok_or_else(|| anyhow!("{at}: `enableAppHealthCheck` {v:?} is not a boolean"))
            })
            .transpose()?;
        Ok(Self {
            enabled,
            path: fields.string("appHealthCheckPath")?.filter(|p| !p.is_empty()),
            interval: int(fields, "appHealthProbeInterval")?,
            timeout: int(fields, "appHealthProbeTimeout")?,
            threshold: int(fields, "appHealthThreshold")?,
        })
    }

    fn or(self, common: &Self) -> Self {
        Self {
            enabled: self.enabled.or(common.enabled),
            path: self.path.or_else(|| common.path.clone()),
            interval: self.interval.or(common.interval),
            timeout: self.timeout.or(common.timeout),
            threshold: self.threshold.or(common.threshold),
        }
    }

    /// As daprd reads its flags: values ≤ 0 (threshold < 1) take the defaults, and a timeout
    /// longer than the interval is an error (`pkg/runtime/config.go:538-559`).
    fn check(self, at: &str) -> anyhow::Result<Option<HealthCheck>> {
        if self.enabled != Some(true) {
            return Ok(None);
        }
        let default = HealthCheck::default();
        let positive = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok()).filter(|v| *v > 0);
        let interval = positive(self.interval).map(std::time::Duration::from_secs).unwrap_or(default.interval);
        let timeout = positive(self.timeout).map(std::time::Duration::from_millis).unwrap_or(default.timeout);
        if timeout > interval {
            bail!("{at}: value for 'health-probe-timeout' must be smaller than 'health-probe-interval'");
        }
        let threshold =
            self.threshold.and_then(|t| u32::try_from(t).ok()).filter(|t| *t >= 1).unwrap_or(default.threshold);
        Ok(Some(HealthCheck { path: self.path.unwrap_or(default.path), interval, timeout, threshold }))
    }
}

impl RunApp {
    /// No `command`: devhost plays the sidecar for an app it does not start (daprd without a
    /// command to run beside it behaves the same).
    pub fn is_external(&self) -> bool {
        self.command.is_empty()
    }
}

impl RunFile {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading run file {}", path.display()))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        Self::parse(&text, &path.display().to_string(), &dir)
    }

    pub fn parse(text: &str, file: &str, dir: &Path) -> anyhow::Result<Self> {
        let mut docs = yaml_documents(text, file)?;
        if docs.len() != 1 {
            bail!("{file}: expected exactly one YAML document, found {}", docs.len());
        }
        let mut root = Fields::new(docs.remove(0), file)?;
        match root.string("version")?.as_deref() {
            None | Some("1") => {}
            Some(other) => bail!("{file}: run file version {other:?} is not supported (expected 1)"),
        }
        let mut common = root.object("common")?.unwrap_or(Fields::new(Value::Null, format!("{file}: common"))?);
        let mut resources_paths: Vec<PathBuf> =
            common.string("resourcesPath")?.into_iter().map(PathBuf::from).collect();
        resources_paths.extend(common.string_list("resourcesPaths")?.into_iter().map(PathBuf::from));
        let resources_paths = resources_paths.into_iter().map(|p| dir.join(p)).collect();
        let common_env = env_map(&mut common)?;
        let common_health = HealthFields::read(&mut common)?;
        check_protocol(&mut common)?;
        common.ignore(UNUSED_FIELDS);
        common.finish()?;

        let mut apps = Vec::new();
        for (index, app) in root.list("apps")?.into_iter().enumerate() {
            let mut app = Fields::new(app, format!("{file}: apps[{index}]"))?;
            let app_id = app.required_string("appID")?;
            let at = format!("{file}: app {app_id:?}");
            app.set_at(at.clone());
            let app_dir = dir.join(app.string("appDirPath")?.unwrap_or_else(|| ".".to_owned()));
            let port = |app: &mut Fields, key: &str| -> anyhow::Result<Option<u16>> {
                app.string(key)?
                    .map(|p| p.parse::<u16>().map_err(|_| anyhow!("{at}: `{key}` {p:?} is not a port number")))
                    .transpose()
            };
            let app_port = port(&mut app, "appPort")?;
            let dapr_http_port = port(&mut app, "daprHTTPPort")?;
            let command = match app.take("command") {
                None => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| scalar_string(v).ok_or_else(|| anyhow!("{at}: `command` items must be strings")))
                    .collect::<anyhow::Result<_>>()?,
                Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
                Some(_) => bail!("{at}: `command` must be a list of strings"),
            };
            let mut env = common_env.clone();
            env.extend(env_map(&mut app)?);
            let health_check = HealthFields::read(&mut app)?.or(&common_health).check(&at)?;
            check_protocol(&mut app)?;
            if app.take("resourcesPath").is_some() || app.take("resourcesPaths").is_some() {
                bail!("{at}: per-app resourcesPath is not emulated by devhost; use common.resourcesPath");
            }
            app.ignore(UNUSED_FIELDS);
            app.finish()?;
            if apps.iter().any(|a: &RunApp| a.app_id == app_id) {
                bail!("{at}: appID is used twice");
            }
            apps.push(RunApp { app_id, app_dir, app_port, dapr_http_port, command, env, health_check });
        }
        root.finish()?;
        if apps.is_empty() {
            bail!("{file}: no apps");
        }
        Ok(Self { dir: dir.to_path_buf(), resources_paths, apps })
    }
}

fn env_map(fields: &mut Fields) -> anyhow::Result<BTreeMap<String, String>> {
    let Some(env) = fields.object("env")? else { return Ok(BTreeMap::new()) };
    let at = env.at().to_owned();
    let mut env = env;
    let mut out = BTreeMap::new();
    for key in env.keys() {
        let value = env.take(&key).map(|v| scalar_string(&v).ok_or_else(|| anyhow!("{at}.{key}: must be a scalar")));
        out.insert(key, value.transpose()?.unwrap_or_default());
    }
    Ok(out)
}

fn check_protocol(fields: &mut Fields) -> anyhow::Result<()> {
    match fields.string("appProtocol")?.as_deref() {
        None | Some("http") => Ok(()),
        Some(other) => bail!("{}: appProtocol {other:?} is not emulated by devhost (only http)", fields.at()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_repository_shape() {
        let text = r#"
version: 1
common:
  resourcesPath: ./dapr-components/local
  env:
    RUST_LOG: info
apps:
  - appID: task-api
    appDirPath: .
    appPort: 8080
    daprHTTPPort: 3500
    command: ["./target/debug/task-api"]
    env: {EXTRA: 1}
"#;
        let run = RunFile::parse(text, "dapr.yaml", Path::new("/repo")).unwrap();
        assert_eq!(run.resources_paths, vec![PathBuf::from("/repo/./dapr-components/local")]);
        let app = &run.apps[0];
        assert_eq!(app.app_port, Some(8080));
        assert_eq!(app.dapr_http_port, Some(3500));
        assert_eq!(app.env.get("RUST_LOG").map(String::as_str), Some("info"));
        assert_eq!(app.env.get("EXTRA").map(String::as_str), Some("1"));
        // App health checks are off unless enabled, as with daprd.
        assert_eq!(app.health_check, None);
    }

    #[test]
    fn health_checks_as_the_dapr_cli_passes_them() {
        let text = "version: 1\ncommon:\n  enableAppHealthCheck: true\n  appHealthThreshold: 2\napps:\n  - appID: a\n    \
                    appPort: 1\n    appHealthCheckPath: /ready\n    appHealthProbeInterval: 1\n    appHealthProbeTimeout: 200\n  \
                    - appID: b\n    appPort: 2\n    appHealthProbeTimeout: 0\n  - appID: c\n    appPort: 3\n    \
                    enableAppHealthCheck: false\n";
        let run = RunFile::parse(text, "dapr.yaml", Path::new(".")).unwrap();
        let a = run.apps[0].health_check.clone().unwrap();
        assert_eq!(a.path, "/ready");
        assert_eq!(a.interval, std::time::Duration::from_secs(1));
        assert_eq!(a.timeout, std::time::Duration::from_millis(200));
        assert_eq!(a.threshold, 2);
        // Zero takes daprd's default.
        let b = run.apps[1].health_check.clone().unwrap();
        assert_eq!(
            (b.path.as_str(), b.timeout, b.interval),
            ("/healthz", std::time::Duration::from_millis(500), std::time::Duration::from_secs(5))
        );
        assert_eq!(run.apps[2].health_check, None);
        let err = RunFile::parse(
            "version: 1\napps:\n  - appID: a\n    appPort: 1\n    enableAppHealthCheck: true\n    appHealthProbeInterval: 1\n    appHealthProbeTimeout: 2000\n",
            "dapr.yaml",
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("health-probe-timeout"), "{err}");
    }

    #[test]
    fn unknown_fields_are_errors() {
        let text = "version: 1\napps:\n  - appID: a\n    appPort: 1\n    sidecarMagic: true\n";
        let err = RunFile::parse(text, "dapr.yaml", Path::new(".")).unwrap_err().to_string();
        assert!(err.contains("sidecarMagic") && err.contains("app \"a\""), "{err}");
    }
}
