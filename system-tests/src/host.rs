//! Running the whole system for a demo or a test: the repository's `dapr.yaml` rewritten into
//! a private run file (free ports, absolute paths, a JWT secret of its own), started either in
//! this process (`devhost::system::System`) or as the `devhost` binary (which a crash test can
//! SIGKILL).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use serde_norway::Value;

use crate::api::Api;
use crate::workspace_root;

/// A cargo build profile's output directory name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Release => "release",
        }
    }
}

/// Where cargo puts the binaries (`CARGO_TARGET_DIR`, else `<workspace>/target`), debug build.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    binary_in(Profile::Debug, name)
}

/// A binary of `profile`; an error says how to build it.
pub fn binary_in(profile: Profile, name: &str) -> anyhow::Result<PathBuf> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"));
    let path = target.join(profile.dir()).join(name);
    if !path.exists() {
        let how = match profile {
            Profile::Debug => "cargo build --workspace (make test does)",
            Profile::Release => "cargo build --workspace --release (make bench does)",
        };
        bail!("{} does not exist: build it first with `{how}`", path.display());
    }
    Ok(path)
}

/// The app whose sidecar may publish `task-create` (on-task-completed: the pub/sub component's
/// `publishingScopes` refuse every other): tests and the bench publish requests as that app.
pub const TASK_CREATE_PUBLISHER: &str = "on-task-completed";

/// The URL that publishes a `todo.task.create` request to `task-create` through `sidecar` (the
/// sidecar of [`TASK_CREATE_PUBLISHER`]), with `metadata.<name>` query parameters
/// (`partitionKey`, `cloudevent.id`, ...).
pub fn task_create_url(sidecar: &str, metadata: &[(&str, &str)]) -> anyhow::Result<reqwest::Url> {
    use todo_core::events::{topics, types};
    let mut url = reqwest::Url::parse(&format!("{sidecar}/v1.0/publish/pubsub/{}", topics::TASK_CREATE))?;
    url.query_pairs_mut().append_pair("metadata.cloudevent.type", types::TASK_CREATE);
    for (name, value) in metadata {
        url.query_pairs_mut().append_pair(&format!("metadata.{name}"), value);
    }
    Ok(url)
}

/// Messages published and not yet processed, summed over every function's consumer group and
/// topic of the system whose database is `database` (read-only, works while it runs).
pub fn backlog(database: &str) -> anyhow::Result<i64> {
    Ok(devhost::peek::lag(database, "pubsub")?.iter().filter(|l| is_function_group(&l.group)).map(|l| l.lag).sum())
}

/// Whether `group` is a function's consumer group (its app-id), whose lag is work still to do.
/// task-api's live streams read in a group per sidecar start (`task-api-live-<uuid>`): each
/// restart leaves one behind whose lag only grows, and a live stream has no backlog to catch up.
pub fn is_function_group(group: &str) -> bool {
    todo_core::events::authority::APPS.contains(&group)
}

/// Child processes of `pid` (Linux `/proc`).
pub fn children_of(pid: u32) -> anyhow::Result<Vec<u32>> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").context("/proc")? {
        let entry = entry?;
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if stat_field(child, 1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            children.push(child);
        }
    }
    Ok(children)
}

/// Field `n` after the command name of `/proc/<pid>/stat` (0: state, 1: parent pid), `None`
/// once the process is gone. `pid (comm) state ppid ...`; comm may contain spaces, so the
/// fields are read after the last ')'.
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(n)).map(str::to_owned)
}

/// Waits until each of `pids` has exited (gone, or a zombie: its sockets are closed). `kill`
/// returns as soon as the signal is sent; a process restarted on the same port before the
/// killed one has exited would find the port still taken.
fn wait_exited(pids: &[u32]) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while let Some(pid) = pids.iter().find(|pid| stat_field(**pid, 0).is_some_and(|state| state != "Z")) {
        if std::time::Instant::now() > deadline {
            bail!("process {pid} still running 10 s after SIGKILL");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Where [`free_port`] looks: below Linux's ephemeral range (32768-60999), which the kernel
/// hands to outgoing connections and port-0 binds. A system's ports stay free between a kill
/// and a restart only if no client connection can be given one of them meanwhile.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port nobody listens on right now, outside the ephemeral range, and never the same twice
/// in one process (two systems started side by side do not collide).
pub fn free_port() -> anyhow::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(PORTS.end - PORTS.start);
    // Processes started together (test binaries) begin at different places.
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = PORTS.start + u16::try_from((start + n) % span)?;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port in {PORTS:?}")
}

/// The port of `dapr-components/local/email.yaml` (what `make run` uses).
pub const LOCAL_SMTP_PORT: u16 = 2525;

/// Copies the resource files of `from` into `to`, the `email` binding's port set to `smtp_port`.
fn copy_resources(from: &Path, to: &Path, smtp_port: u16) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let port_line = format!("value: \"{LOCAL_SMTP_PORT}\"");
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name() else { continue };
        let mut text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        if name == "email.yaml" {
            ensure!(text.contains(&port_line), "{} has no `{port_line}` to point at a test sink", path.display());
            text = text.replace(&port_line, &format!("value: \"{smtp_port}\""));
        }
        std::fs::write(to.join(name), text).with_context(|| format!("writing {}", to.join(name).display()))?;
    }
    Ok(())
}

/// A private copy of the system: its run file, database and secret, in a temporary directory.
#[derive(Debug)]
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub run_file: PathBuf,
    pub database: String,
    pub jwt_secret: String,
    /// task-api's URL.
    pub api_url: String,
    /// Sidecar URL per app-id.
    pub sidecars: Vec<(String, String)>,
    /// The Prometheus page of each app-id (`METRICS_PORT`: its own port, not behind the app
    /// token), for tests that wait on what a function counts ([`Setup::counter`]).
    pub metrics: Vec<(String, String)>,
    /// Where this system's `email` binding sends mail (127.0.0.1): start a
    /// [`crate::smtp::Sink`] there to receive it.
    pub smtp_port: u16,
}

impl Setup {
    /// Rewrites the repository's `dapr.yaml`: every app on free ports, its command an absolute
    /// path to the debug binary, a copy of the resources of `dapr-components/local` (the mail
    /// binding on [`Setup::smtp_port`]), and `extra_env`
    /// plus a fresh `JWT_SECRET` and no rate limit in the common environment.
    pub fn new(extra_env: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::with_profile(Profile::Debug, extra_env)
    }

    /// As [`Setup::new`], with the binaries of `profile`.
    pub fn with_profile(profile: Profile, extra_env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let root = workspace_root();
        let source = std::fs::read_to_string(root.join("dapr.yaml")).context("reading dapr.yaml")?;
        let mut run: Value = serde_norway::from_str(&source).context("parsing dapr.yaml")?;
        let jwt_secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let dir = tempfile::tempdir().context("temporary directory")?;
        // The resources of `dapr-components/local`, with the `email` binding on this system's
        // own SMTP port: systems side by side each have their mailbox.
        let smtp_port = free_port()?;
        let resources = dir.path().join("resources");
        copy_resources(&root.join("dapr-components/local"), &resources, smtp_port)?;
        let common = run.get_mut("common").context("dapr.yaml has no common section")?;
        common["resourcesPath"] = resources.display().to_string().into();
        let env = common.get_mut("env").and_then(Value::as_mapping_mut).context("common.env")?;
        env.insert("JWT_SECRET".into(), jwt_secret.clone().into());
        env.insert("RUST_LOG".into(), "warn".into());
        // The tests and the bench drive the system as one user, far faster than any person or
        // agent would; the rate limit has its own tests (functions/task-api/tests/rate_limit.rs).
        env.insert("RATE_LIMIT_PER_MINUTE".into(), "0".into());
        for (k, v) in extra_env {
            env.insert((*k).into(), (*v).into());
        }
        let mut api_url = None;
        let mut sidecars = Vec::new();
        let mut metrics = Vec::new();
        for app in run.get_mut("apps").and_then(Value::as_sequence_mut).context("apps")? {
            let id = app["appID"].as_str().context("appID")?.to_owned();
            let (app_port, sidecar_port, metrics_port) = (free_port()?, free_port()?, free_port()?);
            app["appPort"] = u64::from(app_port).into();
            let app_env = app
                .as_mapping_mut()
                .context("an app of dapr.yaml")?
                .entry("env".into())
                .or_insert_with(|| Value::Mapping(Default::default()));
            app_env["METRICS_PORT"] = metrics_port.to_string().into();
            metrics.push((id.clone(), format!("http://127.0.0.1:{metrics_port}/metrics")));
            app["daprHTTPPort"] = u64::from(sidecar_port).into();
            app["appDirPath"] = root.display().to_string().into();
            app["command"] = Value::Sequence(vec![binary_in(profile, &id)?.display().to_string().into()]);
            if id == "task-api" {
                api_url = Some(format!("http://127.0.0.1:{app_port}"));
            }
            sidecars.push((id, format!("http://127.0.0.1:{sidecar_port}")));
        }
        let run_file = dir.path().join("dapr.yaml");
        std::fs::write(&run_file, serde_norway::to_string(&run)?).context("writing the run file")?;
        let database = dir.path().join("devhost.sqlite").display().to_string();
        Ok(Self {
            dir,
            run_file,
            database,
            jwt_secret,
            api_url: api_url.context("dapr.yaml has no task-api")?,
            sidecars,
            metrics,
            smtp_port,
        })
    }

    /// The counter `name` of `app_id`, summed over all its label sets: 0 until the first
    /// increment, as Prometheus reads a series that does not exist yet.
    pub async fn counter(&self, app_id: &str, name: &str) -> anyhow::Result<f64> {
        let url = self.metrics.iter().find(|(id, _)| id == app_id).map(|(_, url)| url).context("no such app")?;
        let page = reqwest::get(url.as_str()).await?.error_for_status()?.text().await?;
        page.lines()
            .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
            .map(|line| {
                let value = line.rsplit(' ').next().unwrap_or_default();
                value.parse::<f64>().with_context(|| format!("{app_id}'s {name}: {line:?}"))
            })
            .sum()
    }

    /// A task-api client acting as `user`.
    pub fn api(&self, user: &str) -> anyhow::Result<Api> {
        let token = task_api::auth::mint(self.jwt_secret.as_bytes(), user, Duration::from_secs(3600))?;
        Api::new(&self.api_url, &token)
    }

    pub fn sidecar(&self, app_id: &str) -> anyhow::Result<&str> {
        self.sidecars.iter().find(|(id, _)| id == app_id).map(|(_, url)| url.as_str()).context("no such app")
    }

    /// Starts the system in this process.
    pub async fn start(&self, duplicate_delivery: bool) -> anyhow::Result<devhost::system::System> {
        let settings = devhost::system::Settings {
            database: self.database.clone(),
            duplicate_delivery,
            grace: Duration::from_secs(5),
            ready_timeout: Some(Duration::from_secs(60)),
            ..devhost::system::Settings::default()
        };
        devhost::system::System::start(&self.run_file, &settings).await
    }

    /// Starts the `devhost` binary (and through it every function) as a child process, its
    /// output (every app's, prefixed) appended to [`Setup::log`], so that a failure can show it
    /// ([`Setup::log_tail`]).
    pub fn spawn(&self) -> anyhow::Result<Spawned> {
        self.spawn_with(&[], &[], Some(&self.log()))
    }

    /// Where [`Setup::spawn`] writes devhost's output, one start after the other.
    pub fn log(&self) -> PathBuf {
        self.path().join("devhost.log")
    }

    /// The last `lines` lines of [`Setup::log`], for a failure message.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        format!("{} ends with:\n{}", self.log().display(), all[all.len().saturating_sub(lines)..].join("\n"))
    }

    /// As [`Setup::spawn`], with more devhost flags (`--duplicate-delivery`), environment
    /// (`DAPR_API_TOKEN`, `APP_API_TOKEN`: devhost passes them on) and, if `log` is given,
    /// devhost's output (which carries every app's, prefixed) in that file.
    pub fn spawn_with(&self, flags: &[&str], env: &[(&str, &str)], log: Option<&Path>) -> anyhow::Result<Spawned> {
        let (stdout, stderr) = match log {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                (Stdio::from(file.try_clone()?), Stdio::from(file))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = Command::new(binary("devhost")?)
            .args(["--run-file", &self.run_file.display().to_string(), "--db", &self.database, "--grace-secs", "5"])
            .args(flags)
            .envs(env.iter().copied())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .context("starting devhost")?;
        Ok(Spawned { child: Some(child) })
    }

    /// This system's [`backlog`].
    pub fn backlog(&self) -> anyhow::Result<i64> {
        backlog(&self.database)
    }

    /// Waits until every event is published and every consumer group has processed
    /// everything; if that does not happen within `timeout`, the error names each group and
    /// topic still behind, and by how much, and the outbox records still unpublished. An event
    /// whose writer died after the commit is in no topic until the relay publishes it: lag
    /// alone would call the system settled too early.
    pub async fn settle(&self, timeout: Duration) -> anyhow::Result<()> {
        let behind = || -> anyhow::Result<Vec<String>> {
            let lags = devhost::peek::lag(&self.database, "pubsub")?;
            let mut behind: Vec<String> = lags
                .iter()
                .filter(|l| l.lag != 0 && is_function_group(&l.group))
                .map(|l| format!("{} on {}: {}", l.group, l.topic, l.lag))
                .collect();
            let unpublished = devhost::peek::state(
                &self.database,
                todo_core::events::components::TASKS_STORE,
                dapr_fn::outbox::KEY_PREFIX,
            )?;
            if !unpublished.is_empty() {
                behind.push(format!("{} outbox records not yet published", unpublished.len()));
            }
            Ok(behind)
        };
        let caught_up = crate::api::eventually("every consumer to catch up", timeout, || async {
            Ok(behind()?.is_empty().then_some(()))
        })
        .await;
        caught_up.with_context(|| format!("still behind: {}", behind().map(|b| b.join(", ")).unwrap_or_default()))
    }

    /// Messages of `topic` in this system's log.
    pub fn peek(&self, topic: &str) -> anyhow::Result<Vec<devhost::peek::Peeked>> {
        devhost::peek::messages(&self.database, "pubsub", topic)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A `devhost` process started by [`Setup::spawn`]. Dropping it SIGKILLs devhost and every app
/// it started, so a test that fails half-way leaves nothing running.
#[derive(Debug)]
pub struct Spawned {
    child: Option<Child>,
}

impl Spawned {
    /// SIGKILLs devhost and every process it started, at once: none of them gets to clean up
    /// (devhost cannot stop its apps when it is killed, so they are killed beside it). Returns
    /// how many apps were killed.
    pub fn kill_all(&mut self) -> anyhow::Result<usize> {
        let Some(mut child) = self.child.take() else { return Ok(0) };
        if let Some(status) = child.try_wait()? {
            bail!("devhost had already exited ({status}): an app failed or exited, see its log");
        }
        let children = children_of(child.id())?;
        // devhost first: killed after one of its apps, it could see that app exit and begin
        // stopping the others, and `kill` would then fail on an app already gone. An app that
        // is gone although devhost never stopped it did fail, and that fails here.
        let pids: Vec<String> =
            std::iter::once(child.id()).chain(children.iter().copied()).map(|p| p.to_string()).collect();
        let status = Command::new("kill").arg("-KILL").args(&pids).status().context("kill")?;
        child.wait().context("waiting for devhost")?;
        if !status.success() {
            bail!("kill -KILL {pids:?} failed");
        }
        wait_exited(&children)?;
        Ok(children.len())
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.kill_all();
    }
}
