//! `dapr.yaml`, Dapr's multi-app run file (<https://docs.dapr.io/developing-applications/local-development/multi-app-dapr-run/multi-app-template/>):
//! the same file drives `dapr run -f dapr.yaml` and devhost.
//!
//! Used: `common.resourcesPath`/`resourcesPaths`, `common.env`, and per app `appID`,
//! `appDirPath`, `appPort`, `daprHTTPPort`, `command`, `env`, `appHealthCheckPath`,
//! `appProtocol` (`http` only). Fields that only tune daprd or its logs (ports of protocols
//! devhost does not serve, log levels, probe timings) are accepted and unused; see
//! [`UNUSED_FIELDS`]. Anything else is a startup error naming the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use serde_json::Value;

use crate::fields::{Fields, scalar_string, yaml_documents};

/// Run-file fields accepted and deliberately unused: they configure daprd features devhost does
/// not have (gRPC, metrics, profiling, placement, log files) or probe timings.
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
    "appHealthProbeInterval",
    "appHealthProbeTimeout",
    "appHealthThreshold",
    "enableAppHealthCheck",
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
    pub health_path: String,
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
        let common_health = common.string("appHealthCheckPath")?;
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
            let health_path = app
                .string("appHealthCheckPath")?
                .or_else(|| common_health.clone())
                .unwrap_or_else(|| "/healthz".to_owned());
            check_protocol(&mut app)?;
            if app.take("resourcesPath").is_some() || app.take("resourcesPaths").is_some() {
                bail!("{at}: per-app resourcesPath is not emulated by devhost; use common.resourcesPath");
            }
            app.ignore(UNUSED_FIELDS);
            app.finish()?;
            if apps.iter().any(|a: &RunApp| a.app_id == app_id) {
                bail!("{at}: appID is used twice");
            }
            apps.push(RunApp { app_id, app_dir, app_port, dapr_http_port, command, env, health_path });
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
        assert_eq!(app.health_path, "/healthz");
    }

    #[test]
    fn unknown_fields_are_errors() {
        let text = "version: 1\napps:\n  - appID: a\n    appPort: 1\n    sidecarMagic: true\n";
        let err = RunFile::parse(text, "dapr.yaml", Path::new(".")).unwrap_err().to_string();
        assert!(err.contains("sidecarMagic") && err.contains("app \"a\""), "{err}");
    }
}
