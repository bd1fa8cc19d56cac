//! A whole run file as one handle: sidecars served, every app started as a process, all apps
//! healthy and subscribed. The CLI runs it until a signal; system tests start and stop it.
//!
//! An app without a `command` is external, as with `dapr run`: devhost serves its sidecar and
//! waits for it on its `appPort` (which it must have), but starts no process for it. A test that
//! serves the app itself uses this. An app with a `command` and no `appPort` only calls its
//! sidecar (a client, a publisher): as with daprd without `--app-port`, devhost waits for
//! nothing and delivers nothing to it, and it gets no `APP_PORT` ([`crate::NO_APP_PORT`]).

use std::path::Path;
use std::time::Duration;

use crate::apps::{self, Process};
use crate::runfile::RunFile;
use crate::{AppSpec, Devhost};

/// How to run a run file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// SQLite file (or `:memory:`).
    pub database: String,
    pub partitions: u32,
    pub duplicate_delivery: bool,
    /// `DAPR_API_TOKEN`, enforced on the sidecars and passed to the apps.
    pub api_token: Option<String>,
    /// `APP_API_TOKEN`, sent to the apps and passed to them; a random one when unset.
    pub app_token: Option<String>,
    /// How long apps get after SIGTERM.
    pub grace: Duration,
    /// How long to wait for each app to be healthy (`None` = forever).
    pub ready_timeout: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database: ".devhost/devhost.sqlite".to_owned(),
            partitions: 4,
            duplicate_delivery: false,
            api_token: None,
            app_token: None,
            grace: Duration::from_secs(10),
            ready_timeout: None,
        }
    }
}

/// One started app: its id, where it listens and where its sidecar is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub app_id: String,
    pub app_port: u16,
    pub sidecar_port: u16,
}

/// A running system.
#[derive(Debug)]
pub struct System {
    pub devhost: Devhost,
    pub apps: Vec<Started>,
    processes: Vec<Process>,
    grace: Duration,
}

impl System {
    /// Starts everything in `run_file`; on any failure the apps started so far are stopped.
    pub async fn start(run_file: &Path, settings: &Settings) -> anyhow::Result<Self> {
        let run = RunFile::load(run_file)?;
        // Every app gets an app token even when none is configured, as the Dapr injector gives
        // one from the app's Secret: the functions refuse to start without one. Random per run.
        let app_token = settings.app_token.clone().or_else(|| Some(uuid::Uuid::new_v4().simple().to_string()));
        let mut builder = Devhost::builder()
            .database(settings.database.clone())
            .partitions(settings.partitions)
            .duplicate_delivery(settings.duplicate_delivery)
            .api_token(settings.api_token.clone())
            .app_token(app_token.clone())
            .ready_timeout(settings.ready_timeout);
        for dir in &run.resources_paths {
            builder = builder.resources_dir(dir.clone());
        }
        let mut app_ports = Vec::new();
        for app in &run.apps {
            let port = match app.app_port {
                Some(p) => p,
                None if app.is_external() => {
                    anyhow::bail!("app {:?} has no `command` and no `appPort`: devhost cannot reach it", app.app_id)
                }
                None => crate::NO_APP_PORT,
            };
            app_ports.push(port);
            let mut spec = AppSpec::new(app.app_id.clone(), port).sidecar_port(app.dapr_http_port.unwrap_or(0));
            spec.health_check = app.health_check.clone();
            builder = builder.app(spec);
        }
        for (app, port) in run.apps.iter().zip(&app_ports) {
            // A `kill -9`ed devhost leaves its apps running; say so instead of letting the new
            // app die on a bind error. An external app is expected to be listening already.
            if !app.is_external()
                && *port != crate::NO_APP_PORT
                && tokio::net::TcpListener::bind(("127.0.0.1", *port)).await.is_err()
            {
                anyhow::bail!(
                    "port {port} of app {:?} is already in use (an app left running by a killed devhost? stop it first)",
                    app.app_id
                );
            }
        }
        let starting = builder.start_sidecars().await?;
        let mut started = Vec::new();
        let mut processes = Vec::new();
        for (app, port) in run.apps.iter().zip(&app_ports) {
            let sidecar_port = starting.sidecar_addr(&app.app_id).map(|a| a.port()).unwrap_or_default();
            started.push(Started { app_id: app.app_id.clone(), app_port: *port, sidecar_port });
            if app.is_external() {
                continue;
            }
            match apps::spawn(app, *port, sidecar_port, settings.api_token.as_deref(), app_token.as_deref()) {
                Ok(p) => processes.push(p),
                Err(e) => {
                    apps::stop_all(&mut processes, settings.grace).await;
                    return Err(e);
                }
            }
        }
        let attached = tokio::select! {
            r = starting.attach_apps() => r,
            exited = first_exit(&mut processes) => Err(anyhow::anyhow!("app {exited} exited during startup")),
        };
        match attached {
            Ok(devhost) => Ok(Self { devhost, apps: started, processes, grace: settings.grace }),
            Err(e) => {
                apps::stop_all(&mut processes, settings.grace).await;
                Err(e)
            }
        }
    }

    /// Resolves when an app process exits, with its id and status.
    pub async fn app_exited(&mut self) -> String {
        first_exit(&mut self.processes).await
    }

    /// SIGTERM to every app (then kill after the grace period), then stops devhost.
    pub async fn stop(mut self) {
        apps::stop_all(&mut self.processes, self.grace).await;
        self.devhost.shutdown().await;
    }
}

async fn first_exit(processes: &mut [Process]) -> String {
    if processes.is_empty() {
        return std::future::pending().await;
    }
    let mut waits: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send + '_>>> = processes
        .iter_mut()
        .map(|p| -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send + '_>> {
            Box::pin(async move {
                let status = p.child.wait().await;
                format!("{} ({})", p.app_id, status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()))
            })
        })
        .collect();
    std::future::poll_fn(move |cx| {
        for f in &mut waits {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(cx) {
                return std::task::Poll::Ready(v);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_app_without_command_is_external() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app_port = listener.local_addr().unwrap().port();
        let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let dir = tempfile::tempdir().unwrap();
        let run_file = dir.path().join("dapr.yaml");
        std::fs::write(&run_file, format!("version: 1\napps:\n  - appID: outside\n    appPort: {app_port}\n")).unwrap();
        let settings = Settings {
            database: ":memory:".to_owned(),
            ready_timeout: Some(Duration::from_secs(10)),
            ..Settings::default()
        };
        let system = System::start(&run_file, &settings).await.unwrap();
        assert_eq!(system.apps.len(), 1);
        assert_eq!(system.apps[0].app_port, app_port);
        assert!(system.processes.is_empty(), "nothing spawned for an external app");
        let health = reqwest::get(format!("http://127.0.0.1:{}/v1.0/healthz", system.apps[0].sidecar_port)).await;
        assert_eq!(health.unwrap().status(), reqwest::StatusCode::NO_CONTENT);
        system.stop().await;
        server.abort();

        std::fs::write(&run_file, "version: 1\napps:\n  - appID: nowhere\n").unwrap();
        let error = System::start(&run_file, &settings).await.unwrap_err().to_string();
        assert!(error.contains("no `command` and no `appPort`"), "{error}");
    }

    #[tokio::test]
    async fn an_app_without_app_port_only_calls_its_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        let run_file = dir.path().join("dapr.yaml");
        // Writes what it was given, then stays up: devhost must not wait for it to listen.
        let script = "echo \"port=${APP_PORT:-none} sidecar=$DAPR_HTTP_PORT\" > seen.txt; sleep 30";
        std::fs::write(
            &run_file,
            format!(
                "version: 1\napps:\n  - appID: client\n    appDirPath: .\n    command: [\"sh\", \"-c\", {script:?}]\n"
            ),
        )
        .unwrap();
        let settings = Settings {
            database: ":memory:".to_owned(),
            ready_timeout: Some(Duration::from_secs(10)),
            grace: Duration::from_secs(1),
            ..Settings::default()
        };
        let system = System::start(&run_file, &settings).await.unwrap();
        assert_eq!(system.apps[0].app_port, crate::NO_APP_PORT);
        let sidecar = system.apps[0].sidecar_port;
        let metadata = reqwest::get(format!("http://127.0.0.1:{sidecar}/v1.0/metadata")).await.unwrap();
        let metadata: serde_json::Value = serde_json::from_slice(&metadata.bytes().await.unwrap()).unwrap();
        assert_eq!(metadata["appConnectionProperties"].get("port"), None, "{metadata}");
        let seen = dir.path().join("seen.txt");
        let mut written = String::new();
        for _ in 0..100 {
            written = std::fs::read_to_string(&seen).unwrap_or_default();
            if !written.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(written.trim(), format!("port=none sidecar={sidecar}"));
        system.stop().await;
    }
}
