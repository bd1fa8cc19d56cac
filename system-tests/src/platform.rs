//! The real platform on one machine: PostgreSQL, one Apache Kafka broker (KRaft), the Dapr
//! Scheduler and, beside each function of a run file, its own real `daprd`, all as plain
//! processes (no Docker, no cluster), the way dapr/dapr's own integration tests run them.
//!
//! `make platform` builds and caches the binaries and jars (`scripts/platform.sh`), and writes
//! their paths to `platform.env` in the cache; [`Paths::load`] reads it. Each [`Platform`] lives
//! in a folder of its own with free ports, so it never touches another one, and every process it
//! starts is killed when it is dropped: a test that fails half-way leaves nothing running.
//!
//! The resources are `dapr-components/local/` as they are, with one substitution: the Kafka
//! broker's address (`localhost:9092` there, for `dapr run`) becomes this platform's.
//!
//! Each app's first instance is the run file's, on the run file's ports ([`Platform::start_app`]).
//! More instances of an app ([`Platform::start_replica`], as a Deployment's replicas beyond the
//! first) each get every port fresh, since a pod's ports are its own and here all share one
//! host; they share the app-id (so the consumer group), components, tokens and environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_norway::Value;

use crate::host::free_port;
use crate::kafka::{Kafka, Lag, parse_topics_txt};
use crate::workspace_root;

/// The address `dapr-components/local/pubsub.yaml` names for `dapr run`.
const DEFAULT_BROKERS: &str = "localhost:9092";
/// How long one piece may take to come up on a loaded 2-core machine (a cold JVM is the slowest).
const READY: Duration = Duration::from_secs(90);

/// Where `make platform` put everything: read from `platform.env` in the cache folder.
#[derive(Debug, Clone)]
pub struct Paths {
    pub daprd: PathBuf,
    pub scheduler: PathBuf,
    /// Dapr placement, for sidecars that host actors or workflows ([`Platform::start_placement`]):
    /// no function's sidecar does.
    pub placement: PathBuf,
    pub kafka_libs: PathBuf,
    /// PostgreSQL's `bin` folder (`initdb`, `postgres`, `pg_isready`).
    pub postgres_bin: PathBuf,
}

impl Paths {
    /// `TODO_PLATFORM_CACHE`, else `$XDG_CACHE_HOME/todo-functions/platform`, else
    /// `~/.cache/todo-functions/platform`: the same rule as `scripts/platform.sh`.
    pub fn cache_dir() -> anyhow::Result<PathBuf> {
        if let Some(dir) = std::env::var_os("TODO_PLATFORM_CACHE") {
            return Ok(PathBuf::from(dir));
        }
        let base = match std::env::var_os("XDG_CACHE_HOME") {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache"),
        };
        Ok(base.join("todo-functions/platform"))
    }

    /// Reads `platform.env`; an error says to run `make platform` when it or a file it names is
    /// missing.
    pub fn load() -> anyhow::Result<Self> {
        let file = Self::cache_dir()?.join("platform.env");
        let text = std::fs::read_to_string(&file).with_context(|| {
            format!("reading {}: build the real platform first with `make platform`", file.display())
        })?;
        let vars: BTreeMap<&str, &str> = text.lines().filter_map(|line| line.split_once('=')).collect();
        let path = |name: &str| -> anyhow::Result<PathBuf> {
            let path = PathBuf::from(vars.get(name).with_context(|| format!("{} has no {name}", file.display()))?);
            if !path.exists() {
                bail!("{} (from {}) does not exist: run `make platform`", path.display(), file.display());
            }
            Ok(path)
        };
        Ok(Self {
            daprd: path("DAPRD")?,
            scheduler: path("DAPR_SCHEDULER")?,
            placement: path("DAPR_PLACEMENT")?,
            kafka_libs: path("KAFKA_LIBS")?,
            postgres_bin: path("POSTGRES_BIN")?,
        })
    }
}

/// One process the platform started, its output in a log file. Dropping it SIGKILLs it.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, mut command: Command, logs: &Path) -> anyhow::Result<Self> {
        let log = logs.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        command.stdin(Stdio::null()).stdout(Stdio::from(file.try_clone()?)).stderr(Stdio::from(file));
        let child = command.spawn().with_context(|| format!("starting {name} ({command:?})"))?;
        Ok(Self { name: name.to_owned(), child: Some(child), log })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last `lines` lines of its log, for error messages.
    pub fn tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// An error quoting the log if the process has exited.
    fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            bail!("{} exited ({status}); the end of {}:\n{}", self.name, self.log.display(), self.tail(30));
        }
        Ok(())
    }

    /// Sends `signal` and waits up to `grace` for the exit, then SIGKILLs.
    fn signal_and_wait(&mut self, signal: &str, grace: Duration) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        if child.try_wait()?.is_none() {
            let _ = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status();
            let deadline = Instant::now() + grace;
            while child.try_wait()?.is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        child.wait().with_context(|| format!("waiting for {}", self.name))?;
        Ok(())
    }

    /// Whether it runs (started and not exited).
    fn is_running(&mut self) -> anyhow::Result<bool> {
        match self.child.as_mut() {
            Some(child) => Ok(child.try_wait().with_context(|| format!("checking {}", self.name))?.is_none()),
            None => Ok(false),
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.signal_and_wait("KILL", Duration::from_secs(10))
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) -> anyhow::Result<()> {
        self.signal_and_wait("TERM", grace)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One function of the run file and the ports of its sidecar.
#[derive(Debug, Clone)]
pub struct AppSpec {
    pub id: String,
    pub app_port: u16,
    pub http_port: u16,
    grpc_port: u16,
    internal_grpc_port: u16,
    metrics_port: u16,
    command: Vec<String>,
    env: BTreeMap<String, String>,
}

impl AppSpec {
    pub fn sidecar_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }
}

/// A daprd without an app ([`Platform::start_sidecar`]): a publisher, or an agent's sidecar
/// that runs workflows.
#[derive(Debug, Clone, Default)]
pub struct Sidecar {
    /// Its app-id: the platform's resources are scoped to the functions, so an app-id of none
    /// loads only what is unscoped there (the `local-env` secret store, the resiliency policy).
    pub id: String,
    /// More `--resources-path` folders, after the platform's own.
    pub resources: Vec<PathBuf>,
    /// Connect to placement ([`Platform::start_placement`], started if it is not yet): actors
    /// and workflows. Without it daprd runs as the functions' sidecars do, with no actor runtime.
    pub placement: bool,
    /// More environment (what an `envRef` of a resource reads).
    pub env: Vec<(String, String)>,
}

/// What to start besides the defaults.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `DAPR_API_TOKEN` (sidecar API) and `APP_API_TOKEN` (app channel), given to each daprd and
    /// its function alike.
    pub dapr_api_token: Option<String>,
    pub app_api_token: Option<String>,
    /// Keep PostgreSQL's and Kafka's data when the folder already holds them (`make run-dapr`);
    /// otherwise the folder must be new.
    pub reuse_data: bool,
    /// daprd's `--log-level` (default `info`).
    pub dapr_log_level: Option<String>,
    /// daprd's `--log-level` for some apps only, by app-id, over `dapr_log_level`: `debug` shows
    /// the Kafka consumer's steps (components-contrib's and sarama's debug lines), which the KEDA
    /// test reads the cold path from.
    pub dapr_log_levels: Vec<(String, String)>,
    /// More environment for every function (after the run file's).
    pub function_env: Vec<(String, String)>,
    /// Each daprd connects to PostgreSQL as its app's own role of
    /// `manifests/base/postgres/roles.sql` ([`postgres_role`]), as on Kubernetes, instead of as
    /// the superuser.
    pub postgres_roles: bool,
    /// Start no function and no daprd: the platform alone (PostgreSQL, Kafka, Scheduler), and
    /// each app's pairs are started and stopped on demand ([`Platform::start_app`],
    /// [`Platform::start_replica`], [`Platform::stop_replica`], [`Platform::stop_app`]), as
    /// `crate::kubelet` does for the replicas KEDA and its HPA ask for.
    pub no_functions: bool,
    /// PostgreSQL logs every statement it runs, with its parameters (`log_statement=all`), to
    /// `logs/postgres.log` ([`Platform::postgres_log`]): what each daprd actually sends
    /// (`tests/query_plans.rs`). Off by default: it writes a line per state operation.
    pub log_statements: bool,
}

/// When one pair (function + daprd) of an app was started and became ready, as
/// [`Platform::start_app`] and [`Platform::start_replica`] saw it.
#[derive(Debug, Clone)]
pub struct PairStart {
    /// The instance: `<id>` for the first, `<id>-<n>` beyond (its log files' names).
    pub name: String,
    /// The function and then daprd spawned (back to back), taken before the first spawn.
    pub spawned: Instant,
    /// The function's `/healthz` first answered 200 (polled every 100 ms beside daprd's health;
    /// `None` for an app the test serves itself, or one that had not answered when daprd did).
    pub function_ready: Option<Instant>,
    /// daprd's `/v1.0/healthz` first answered 2xx (204: its runtime initialised).
    pub daprd_ready: Instant,
}

/// An instance of an app beyond its first: its own function and daprd on ports of its own.
#[derive(Debug)]
struct Replica {
    /// 2, 3, ... (the first instance is 1): its processes and logs are `<id>-<n>` and
    /// `daprd-<id>-<n>`, so that each replica's output can be told apart.
    n: usize,
    /// The app's spec with this replica's ports.
    spec: AppSpec,
    /// `None` for an app the test serves itself (no `command`).
    function: Option<Proc>,
    daprd: Proc,
}

impl Replica {
    fn name(&self) -> String {
        format!("{}-{}", self.spec.id, self.n)
    }

    /// As [`Platform::stop_app`]: daprd first (it finishes the deliveries in flight, which need
    /// the app), then the function.
    fn stop(&mut self, grace: Duration) -> anyhow::Result<()> {
        self.daprd.stop(grace)?;
        if let Some(function) = self.function.as_mut() {
            function.stop(grace)?;
        }
        Ok(())
    }
}

/// The PostgreSQL role of `manifests/base/postgres/roles.sql` that app `app_id` logs in as:
/// the app-id with `_` for `-` (`task-api` → `task_api`).
pub fn postgres_role(app_id: &str) -> String {
    app_id.replace('-', "_")
}

/// The SQL that creates the roles, schemas and tables (run by [`Platform::start`] as the
/// superuser, as the Kubernetes Job runs it as the administrator).
pub const ROLES_SQL: &str = "manifests/base/postgres/roles.sql";

/// The SQL that creates the indexes the queries need, run right after [`ROLES_SQL`] in the same
/// psql session (as the Job does).
pub const INDEXES_SQL: &str = "manifests/base/postgres/indexes.sql";

#[derive(Debug, Clone, Copy)]
struct Ports {
    postgres: u16,
    kafka: u16,
    kafka_controller: u16,
    scheduler: u16,
    scheduler_etcd_client: u16,
    scheduler_etcd_peer: u16,
    scheduler_healthz: u16,
    scheduler_metrics: u16,
}

/// The platform and the functions on it.
#[derive(Debug)]
pub struct Platform {
    dir: PathBuf,
    logs: PathBuf,
    paths: Paths,
    ports: Ports,
    options: Options,
    resources: PathBuf,
    postgres: Option<Proc>,
    kafka: Option<Proc>,
    scheduler: Option<Proc>,
    /// Placement and its gRPC port, once [`Platform::start_placement`] started it.
    placement: Option<(Proc, u16)>,
    apps: Vec<AppSpec>,
    daprds: BTreeMap<String, Proc>,
    functions: BTreeMap<String, Proc>,
    /// Each app's instances beyond the first ([`Platform::start_replica`]), oldest first.
    extra: BTreeMap<String, Vec<Replica>>,
    /// Each app's `APP_API_TOKEN` when [`Options::app_api_token`] names none: random, one per
    /// app, as the Dapr injector gives each app its own from its Secret.
    app_tokens: BTreeMap<String, String>,
    /// Every pair [`Platform::start_app`] and [`Platform::start_replica`] started, oldest first.
    starts: Vec<PairStart>,
}

impl Platform {
    /// Starts PostgreSQL, Kafka (with the topics of `manifests/base/kafka-topics/topics.txt`) and
    /// the Scheduler, then each app of `run_file` with its own daprd, in `dir`; returns once every
    /// sidecar is healthy.
    pub async fn start(run_file: &Path, dir: &Path, options: Options) -> anyhow::Result<Self> {
        let paths = Paths::load()?;
        let apps = read_run_file(run_file)?;
        Self::kill_leftovers(dir)?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let ports = Ports {
            postgres: free_port()?,
            kafka: free_port()?,
            kafka_controller: free_port()?,
            scheduler: free_port()?,
            scheduler_etcd_client: free_port()?,
            scheduler_etcd_peer: free_port()?,
            scheduler_healthz: free_port()?,
            scheduler_metrics: free_port()?,
        };
        let resources = dir.join("resources");
        let resources_from = resources_path(run_file)?;
        let mut platform = Self {
            dir: dir.to_owned(),
            logs,
            paths,
            ports,
            options,
            resources,
            postgres: None,
            kafka: None,
            scheduler: None,
            placement: None,
            apps,
            daprds: BTreeMap::new(),
            functions: BTreeMap::new(),
            extra: BTreeMap::new(),
            app_tokens: BTreeMap::new(),
            starts: Vec::new(),
        };
        platform.app_tokens =
            platform.apps.iter().map(|app| (app.id.clone(), uuid::Uuid::new_v4().simple().to_string())).collect();
        platform.write_resources(&resources_from)?;
        platform.start_postgres()?;
        platform.start_kafka()?;
        platform.start_scheduler()?;
        platform.wait_postgres().await?;
        platform.apply_roles()?;
        platform.wait_kafka().await?;
        platform.wait_scheduler().await?;
        let ids: Vec<String> = if platform.options.no_functions {
            Vec::new()
        } else {
            platform.apps.iter().map(|a| a.id.clone()).collect()
        };
        for id in &ids {
            platform.start_function(id)?;
        }
        // One sidecar first, the others once it is up: on a fresh database every
        // state.postgresql component creates its tables at init, and PostgreSQL's
        // `CREATE TABLE IF NOT EXISTS` is not safe against itself run concurrently (one of them
        // fails on the table's row type: "type ... already exists", SQLSTATE 42710), which
        // daprd treats as fatal. A cluster's kubelet restarts such a sidecar; here the first
        // one creates the tables alone.
        if let Some((first, rest)) = ids.split_first() {
            platform.start_daprd(first)?;
            platform.wait_app(first).await?;
            for id in rest {
                platform.start_daprd(id)?;
            }
            for id in rest {
                platform.wait_app(id).await?;
            }
        }
        Ok(platform)
    }

    /// `$TMPDIR/todo-platform-tests/<name>`, emptied of an earlier run (whose processes
    /// [`Platform::kill_leftovers`] stops first): a test's platform stays there after it (every
    /// process's log in `logs/`) until the next run of the same test replaces it.
    pub fn fresh_dir(name: &str) -> anyhow::Result<PathBuf> {
        let dir = std::env::temp_dir().join("todo-platform-tests").join(name);
        Self::kill_leftovers(&dir)?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        Ok(dir)
    }

    /// SIGKILLs what an earlier platform in `dir` left running: a test process that was itself
    /// killed never ran its destructors. Only processes whose command line names `dir` are
    /// touched, so a recycled pid is safe.
    pub fn kill_leftovers(dir: &Path) -> anyhow::Result<()> {
        let Ok(text) = std::fs::read_to_string(dir.join("pids")) else { return Ok(()) };
        let needle = dir.display().to_string();
        for pid in text.lines().filter_map(|line| line.split_whitespace().nth(1)) {
            // A function's command line is its binary: it carries the folder in its environment.
            let mut seen = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            seen.extend(std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default());
            if String::from_utf8_lossy(&seen).contains(&needle) {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        Ok(())
    }

    /// Writes `pids` (name and pid per line) for [`Platform::kill_leftovers`].
    fn record_pids(&self) -> anyhow::Result<()> {
        let text: String = self.pids().iter().map(|(name, pid)| format!("{name} {pid}\n")).collect();
        std::fs::write(self.dir.join("pids"), text).context("writing the pid file")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn apps(&self) -> &[AppSpec] {
        &self.apps
    }

    pub fn app(&self, id: &str) -> anyhow::Result<&AppSpec> {
        self.apps.iter().find(|a| a.id == id).with_context(|| format!("no app {id} in the run file"))
    }

    /// The sidecar URL of `id`.
    pub fn sidecar(&self, id: &str) -> anyhow::Result<String> {
        Ok(self.app(id)?.sidecar_url())
    }

    /// task-api's URL.
    pub fn api_url(&self) -> anyhow::Result<String> {
        Ok(format!("http://127.0.0.1:{}", self.app("task-api")?.app_port))
    }

    pub fn kafka_bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.ports.kafka)
    }

    /// The superuser's connection string (what the state stores get through the `local-env`
    /// secret store, unless [`Options::postgres_roles`]).
    pub fn postgres_url(&self) -> String {
        self.postgres_url_as("postgres")
    }

    /// The connection string of `role` (trust authentication: no password).
    pub fn postgres_url_as(&self, role: &str) -> String {
        format!("postgres://{role}@127.0.0.1:{}/postgres?sslmode=disable", self.ports.postgres)
    }

    /// The connection string `id`'s daprd gets.
    fn daprd_postgres_url(&self, id: &str) -> String {
        if self.options.postgres_roles { self.postgres_url_as(&postgres_role(id)) } else { self.postgres_url() }
    }

    /// Runs `sql` with `psql` as `role`: `Ok(Ok(output))` (unaligned, tuples only) when
    /// PostgreSQL accepted every statement, `Ok(Err(message))` with psql's error output when it
    /// refused one, `Err` when psql could not run at all.
    pub fn psql(&self, role: &str, sql: &str) -> anyhow::Result<Result<String, String>> {
        let output = Command::new(self.paths.postgres_bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.postgres_url_as(role))
            .args(["-c", sql])
            .output()
            .context("running psql")?;
        let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        Ok(if output.status.success() { Ok(stdout) } else { Err(stderr) })
    }

    /// Applies [`ROLES_SQL`], then [`INDEXES_SQL`], as the superuser in one psql session, as
    /// the Kubernetes Job does (idempotent: also on a reused database). The components name
    /// their metadata tables in its `dapr_metadata` schema, so it runs before any daprd starts,
    /// whichever role the sidecars log in as.
    pub fn apply_roles(&self) -> anyhow::Result<()> {
        let root = workspace_root();
        let output = Command::new(self.paths.postgres_bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.postgres_url())
            .arg("-f")
            .arg(root.join(ROLES_SQL))
            .arg("-f")
            .arg(root.join(INDEXES_SQL))
            .output()
            .context("running psql")?;
        if !output.status.success() {
            bail!("applying {ROLES_SQL} and {INDEXES_SQL}: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(())
    }

    pub fn logs(&self) -> &Path {
        &self.logs
    }

    /// PostgreSQL's log (every statement with [`Options::log_statements`]).
    pub fn postgres_log(&self) -> PathBuf {
        self.logs.join("postgres.log")
    }

    /// The run file's resources (`dapr-components/local/*.yaml` for `dapr.yaml`), with this
    /// platform's broker address.
    fn write_resources(&self, source: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.resources)?;
        for entry in std::fs::read_dir(source).with_context(|| format!("reading {}", source.display()))? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let text = text.replace(DEFAULT_BROKERS, &self.kafka_bootstrap());
            let name = path.file_name().context("file name")?;
            std::fs::write(self.resources.join(name), text)?;
        }
        Ok(())
    }

    // --- PostgreSQL --------------------------------------------------------------------------

    fn postgres_data(&self) -> PathBuf {
        self.dir.join("postgres")
    }

    fn start_postgres(&mut self) -> anyhow::Result<()> {
        let data = self.postgres_data();
        let owner = postgres_user()?;
        if !(self.options.reuse_data && data.join("PG_VERSION").exists()) {
            make_traversable(&self.dir)?;
            std::fs::create_dir_all(&data)?;
            set_mode(&data, 0o700)?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(&data, Some(uid), Some(gid))
                    .with_context(|| format!("giving {} to the postgres user", data.display()))?;
            }
            let mut initdb = Command::new(self.paths.postgres_bin.join("initdb"));
            initdb.args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "-D"]).arg(&data);
            as_user(&mut initdb, owner);
            let output = initdb.output().context("running initdb")?;
            if !output.status.success() {
                bail!("initdb failed: {}", String::from_utf8_lossy(&output.stderr));
            }
        }
        let mut postgres = Command::new(self.paths.postgres_bin.join("postgres"));
        postgres.arg("-D").arg(&data).args(["-p", &self.ports.postgres.to_string(), "-k"]).arg(&data).args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=300",
        ]);
        if self.options.log_statements {
            // The prefix `crate::plans::parse_log` reads: time and backend pid.
            postgres.args(["-c", "log_statement=all", "-c", "log_line_prefix=%m [%p] "]);
        }
        as_user(&mut postgres, owner);
        self.postgres = Some(Proc::spawn("postgres", postgres, &self.logs)?);
        self.record_pids()
    }

    async fn wait_postgres(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY;
        loop {
            self.postgres.as_mut().context("postgres not started")?.check_running()?;
            let status = Command::new(self.paths.postgres_bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.ports.postgres.to_string()])
                .status()
                .context("pg_isready")?;
            if status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("PostgreSQL not ready within {READY:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGQUIT (PostgreSQL's immediate shutdown: no checkpoint, crash recovery on the next
    /// start), then a new postmaster on the same data and port.
    pub async fn restart_postgres(&mut self, down_for: Duration) -> anyhow::Result<()> {
        if let Some(mut pg) = self.postgres.take() {
            pg.signal_and_wait("QUIT", Duration::from_secs(20))?;
        }
        tokio::time::sleep(down_for).await;
        self.options.reuse_data = true;
        self.start_postgres()?;
        self.wait_postgres().await
    }

    // --- Kafka -------------------------------------------------------------------------------

    fn kafka_java(&self, main: &str) -> Command {
        let mut java = Command::new("java");
        java.arg("-Xmx512m");
        if main == "kafka.Kafka" {
            // What Kafka's own `kafka-run-class.sh` gives the broker (KAFKA_JVM_PERFORMANCE_OPTS),
            // with the heap fixed as `kafka-server-start.sh` fixes it. G1's default pause
            // target is 200 ms, which showed as a latency tail of every event.
            java.args([
                "-Xms512m",
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-XX:InitiatingHeapOccupancyPercent=35",
                "-XX:+ExplicitGCInvokesConcurrent",
                "-XX:MaxInlineLevel=15",
                "-Djava.awt.headless=true",
            ]);
        }
        java.arg("-cp").arg(format!("{}/*", self.paths.kafka_libs.display())).arg(main);
        java
    }

    fn start_kafka(&mut self) -> anyhow::Result<()> {
        let data = self.dir.join("kafka");
        let config = self.dir.join("kafka.properties");
        let p = self.ports;
        let properties = format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.voters=1@127.0.0.1:{controller}\n\
             listeners=PLAINTEXT://127.0.0.1:{broker},CONTROLLER://127.0.0.1:{controller}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{broker}\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             log.dirs={data}\n\
             num.partitions=1\n\
             auto.create.topics.enable=false\n\
             offsets.topic.replication.factor=1\n\
             offsets.topic.num.partitions=10\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             group.initial.rebalance.delay.ms=0\n",
            controller = p.kafka_controller,
            broker = p.kafka,
            data = data.display(),
        );
        // Ports are new each start; a reused log directory keeps its cluster id.
        std::fs::write(&config, properties)?;
        if !(self.options.reuse_data && data.join("meta.properties").exists()) {
            let id = self.kafka_java("kafka.tools.StorageTool").arg("random-uuid").output().context("java")?;
            if !id.status.success() {
                bail!("kafka StorageTool random-uuid: {}", String::from_utf8_lossy(&id.stderr));
            }
            let id = String::from_utf8_lossy(&id.stdout).trim().to_owned();
            let format = self
                .kafka_java("kafka.tools.StorageTool")
                .args(["format", "-t", &id, "-c"])
                .arg(&config)
                .output()
                .context("java")?;
            if !format.status.success() {
                bail!("kafka StorageTool format: {}", String::from_utf8_lossy(&format.stderr));
            }
        }
        let mut kafka = self.kafka_java("kafka.Kafka");
        kafka.arg(&config);
        self.kafka = Some(Proc::spawn("kafka", kafka, &self.logs)?);
        self.record_pids()
    }

    /// Waits for the broker, then creates the topics of `topics.txt` (idempotent).
    async fn wait_kafka(&mut self) -> anyhow::Result<()> {
        let topics_file = workspace_root().join("manifests/base/kafka-topics/topics.txt");
        let topics = parse_topics_txt(&std::fs::read_to_string(&topics_file).context("reading topics.txt")?)?;
        let deadline = Instant::now() + READY;
        loop {
            self.kafka.as_mut().context("kafka not started")?.check_running()?;
            let attempt = async {
                let kafka = Kafka::connect(&self.kafka_bootstrap()).await?;
                kafka.create_topics(&topics).await
            };
            match attempt.await {
                Ok(()) => return Ok(()),
                Err(error) if Instant::now() > deadline => {
                    return Err(error.context(format!("Kafka not ready within {READY:?}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    /// SIGKILLs the broker, waits `down_for`, and starts it again on the same log directory.
    pub async fn restart_kafka(&mut self, down_for: Duration) -> anyhow::Result<()> {
        if let Some(mut kafka) = self.kafka.take() {
            kafka.kill()?;
        }
        tokio::time::sleep(down_for).await;
        self.options.reuse_data = true;
        self.start_kafka()?;
        self.wait_kafka().await
    }

    /// A client of this platform's broker.
    pub async fn kafka(&self) -> anyhow::Result<Kafka> {
        Kafka::connect(&self.kafka_bootstrap()).await
    }

    /// Consumer lag per group and topic.
    pub async fn lag(&self) -> anyhow::Result<Vec<Lag>> {
        self.kafka().await?.lag().await
    }

    /// Outbox records in the `tasks` store not yet published (and deleted): events whose writer
    /// died after the commit, or whose publish failed, waiting for the relay. Read through
    /// task-api's sidecar with the Query API, as the relay finds them.
    pub async fn unpublished(&self) -> anyhow::Result<usize> {
        use dapr_fn::outbox::{MARKER_FIELD, MARKER_VALUE};
        let store = todo_core::events::components::TASKS_STORE;
        let url = format!("{}/v1.0-alpha1/state/{store}/query", self.sidecar("task-api")?);
        let query =
            serde_json::json!({ "filter": { "EQ": { MARKER_FIELD: MARKER_VALUE } }, "page": { "limit": 1000 } });
        let body =
            self.sidecar_json(crate::api::json_body(crate::api::client()?.post(&url), &query), "POST", &url).await?;
        Ok(body["results"].as_array().map_or(0, Vec::len))
    }

    /// Sends `request` to a sidecar with this platform's API token, and returns its JSON answer,
    /// or an error naming `method url`, the status and the body when it is not a success.
    async fn sidecar_json(
        &self,
        mut request: reqwest::RequestBuilder,
        method: &str,
        url: &str,
    ) -> anyhow::Result<serde_json::Value> {
        if let Some(token) = &self.options.dapr_api_token {
            request = request.header("dapr-api-token", token);
        }
        let response = request.send().await.with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let body: serde_json::Value = serde_json::from_slice(&response.bytes().await?).unwrap_or_default();
        if !status.is_success() {
            bail!("{method} {url} answered {status}: {body}");
        }
        Ok(body)
    }

    /// The topics each app's sidecar subscribes to (`GET /v1.0/metadata`), by app-id (= its
    /// consumer group).
    pub async fn subscriptions(&self) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
        let http = crate::api::client()?;
        let mut subscriptions = BTreeMap::new();
        for app in &self.apps {
            let url = format!("{}/v1.0/metadata", app.sidecar_url());
            let metadata = self.sidecar_json(http.get(&url), "GET", &url).await?;
            // Through `pubsub` only, whose group is the app-id: task-api's live streams read
            // through `pubsub-live` in a group per sidecar (crate::host::is_function_group).
            let topics: Vec<String> = metadata["subscriptions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| s["pubsubname"] == todo_core::events::components::PUBSUB)
                .filter_map(|s| s["topic"].as_str().map(str::to_owned))
                .collect();
            if !topics.is_empty() {
                subscriptions.insert(app.id.clone(), topics);
            }
        }
        Ok(subscriptions)
    }

    /// Waits until every event is published and every consumer group has consumed everything
    /// of every topic it follows; if that does not happen within `timeout`, the error names
    /// each group and topic still behind, and the outbox records not yet published (an event
    /// whose writer died after its commit is in no topic until the relay publishes it).
    ///
    /// A group that has not committed yet is invisible to the broker's own group list, so the
    /// subscriptions the sidecars report are checked too: such a group's whole log is behind.
    pub async fn settle(&self, timeout: Duration) -> anyhow::Result<()> {
        let subscriptions = self.subscriptions().await?;
        let behind = || async {
            let kafka = self.kafka().await?;
            let mut lags = kafka.lag().await?;
            for (group, topics) in &subscriptions {
                let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
                lags.extend(kafka.lag_of(group, &topics).await?);
            }
            let mut behind: std::collections::BTreeSet<String> = lags
                .iter()
                .filter(|l| l.lag != 0 && crate::host::is_function_group(&l.group))
                .map(|l| format!("{} on {}: {}", l.group, l.topic, l.lag))
                .collect();
            let unpublished = self.unpublished().await?;
            if unpublished > 0 {
                behind.insert(format!("{unpublished} outbox records not yet published"));
            }
            anyhow::Ok(behind)
        };
        let caught_up = crate::api::eventually("every consumer group to catch up", timeout, || async {
            Ok(behind().await?.is_empty().then_some(()))
        })
        .await;
        match caught_up {
            Ok(()) => Ok(()),
            Err(error) => {
                let still = behind().await.map(|b| b.into_iter().collect::<Vec<_>>().join(", ")).unwrap_or_default();
                Err(error.context(format!("still behind: {still}")))
            }
        }
    }

    // --- Dapr Scheduler ----------------------------------------------------------------------

    fn start_scheduler(&mut self) -> anyhow::Result<()> {
        let etcd = self.dir.join("scheduler-etcd");
        std::fs::create_dir_all(&etcd)?;
        set_mode(&etcd, 0o700)?;
        let p = self.ports;
        let mut scheduler = Command::new(&self.paths.scheduler);
        scheduler
            .args(["--listen-address", "127.0.0.1", "--port", &p.scheduler.to_string()])
            .arg("--etcd-data-dir")
            .arg(&etcd)
            .args(["--etcd-client-listen-address", "127.0.0.1"])
            .args(["--etcd-client-port", &p.scheduler_etcd_client.to_string()])
            .args([
                "--etcd-initial-cluster",
                &format!("dapr-scheduler-server-0=http://127.0.0.1:{}", p.scheduler_etcd_peer),
            ])
            .args(["--healthz-listen-address", "127.0.0.1", "--healthz-port", &p.scheduler_healthz.to_string()])
            .args(["--metrics-listen-address", "127.0.0.1", "--metrics-port", &p.scheduler_metrics.to_string()])
            .args(["--override-broadcast-host-port", &format!("127.0.0.1:{}", p.scheduler)])
            .args(["--log-level", "warn"]);
        self.scheduler = Some(Proc::spawn("scheduler", scheduler, &self.logs)?);
        self.record_pids()
    }

    async fn wait_scheduler(&mut self) -> anyhow::Result<()> {
        let url = format!("http://127.0.0.1:{}/healthz", self.ports.scheduler_healthz);
        let http = crate::api::client()?;
        let deadline = Instant::now() + READY;
        loop {
            self.scheduler.as_mut().context("scheduler not started")?.check_running()?;
            if http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the Dapr Scheduler not healthy within {READY:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // --- Dapr placement ----------------------------------------------------------------------

    /// Starts Dapr placement (once; later calls return the same address) and returns its
    /// address once it is healthy (its Raft group of one has a leader). Not part of
    /// [`Platform::start`]: the functions' sidecars host no actors and run with
    /// `--placement-host-address ""`; only a sidecar that runs workflows (an agent's, for the
    /// tools of an MCPServer: `tests/mcp_dapr.rs`) needs it.
    pub async fn start_placement(&mut self) -> anyhow::Result<String> {
        if let Some((_, port)) = &self.placement {
            return Ok(format!("127.0.0.1:{port}"));
        }
        let (port, healthz) = (free_port()?, free_port()?);
        let mut placement = Command::new(&self.paths.placement);
        placement
            .args(["--listen-address", "127.0.0.1", "--port", &port.to_string()])
            .args(["--healthz-listen-address", "127.0.0.1", "--healthz-port", &healthz.to_string()])
            .args(["--metrics-listen-address", "127.0.0.1", "--metrics-port", &free_port()?.to_string()])
            .args(["--initial-cluster", &format!("dapr-placement-0=127.0.0.1:{}", free_port()?)])
            .args(["--log-level", "warn"])
            // Its command line does not name the folder: `kill_leftovers` finds it by this.
            .env("TODO_PLATFORM_DIR", &self.dir);
        self.placement = Some((Proc::spawn("placement", placement, &self.logs)?, port));
        self.record_pids()?;
        let url = format!("http://127.0.0.1:{healthz}/healthz");
        let http = crate::api::client()?;
        let deadline = Instant::now() + READY;
        loop {
            if let Some((proc, _)) = self.placement.as_mut() {
                proc.check_running()?;
            }
            if http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(format!("127.0.0.1:{port}"));
            }
            if Instant::now() > deadline {
                bail!("Dapr placement not healthy within {READY:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // --- daprd and the functions ------------------------------------------------------------

    /// The tokens `id`'s daprd and function share.
    fn tokens(&self, id: &str) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        if let Some(token) = &self.options.dapr_api_token {
            env.push(("DAPR_API_TOKEN", token.clone()));
        }
        if let Some(token) = self.options.app_api_token.as_ref().or_else(|| self.app_tokens.get(id)) {
            env.push(("APP_API_TOKEN", token.clone()));
        }
        env
    }

    /// Starts `id`'s daprd.
    pub fn start_daprd(&mut self, id: &str) -> anyhow::Result<()> {
        let app = self.app(id)?.clone();
        let proc = self.spawn_daprd(&app, &format!("daprd-{id}"))?;
        self.daprds.insert(id.to_owned(), proc);
        self.record_pids()
    }

    /// daprd for the app instance `spec` (its ports, and its app port), as process `name`.
    fn spawn_daprd(&self, spec: &AppSpec, name: &str) -> anyhow::Result<Proc> {
        let ports = [spec.http_port, spec.grpc_port, spec.internal_grpc_port, spec.metrics_port];
        let mut daprd = self.daprd_command(&spec.id, ports, None);
        daprd.args(["--app-port", &spec.app_port.to_string(), "--app-protocol", "http"]);
        Proc::spawn(name, daprd, &self.logs)
    }

    /// daprd for app-id `id` on `[http, grpc, internal grpc, metrics]` ports, without an app
    /// port (the caller adds one for an app), connected to `placement` (an address from
    /// [`Platform::start_placement`]) or, as every function's sidecar, to none.
    fn daprd_command(
        &self,
        id: &str,
        [http, grpc, internal_grpc, metrics]: [u16; 4],
        placement: Option<&str>,
    ) -> Command {
        let mut daprd = Command::new(&self.paths.daprd);
        daprd
            .args(["--app-id", id])
            .args(["--dapr-http-port", &http.to_string(), "--dapr-grpc-port", &grpc.to_string()])
            .args(["--dapr-internal-grpc-port", &internal_grpc.to_string()])
            .args(["--metrics-port", &metrics.to_string()])
            .arg("--resources-path")
            .arg(&self.resources)
            .args(["--scheduler-host-address", &format!("127.0.0.1:{}", self.ports.scheduler)])
            .args(["--placement-host-address", placement.unwrap_or_default()])
            .args(["--log-level", self.dapr_log_level(id)])
            // The `local-env` secret store reads the connection string from daprd's environment.
            .env("TODO_PG_CONNECTION_STRING", self.daprd_postgres_url(id))
            // Kubernetes runs the functions in namespace `todo`; the same here.
            .env("NAMESPACE", "todo")
            .envs(self.tokens(id));
        daprd
    }

    /// daprd's `--log-level` for app-id `id` ([`Options::dapr_log_levels`], else
    /// [`Options::dapr_log_level`], else `info`).
    pub fn dapr_log_level(&self, id: &str) -> &str {
        self.options
            .dapr_log_levels
            .iter()
            .find(|(app, _)| app == id)
            .map(|(_, level)| level.as_str())
            .or(self.options.dapr_log_level.as_deref())
            .unwrap_or("info")
    }

    /// Starts `id`'s function binary. An app without a `command` is external (a test serves it
    /// itself): it gets its daprd and nothing is spawned, as `dapr run` does without a command.
    pub fn start_function(&mut self, id: &str) -> anyhow::Result<()> {
        let app = self.app(id)?.clone();
        let Some(proc) = self.spawn_function(&app, id, &[])? else { return Ok(()) };
        self.functions.insert(id.to_owned(), proc);
        self.record_pids()
    }

    /// The function of the app instance `spec` (its ports), as process `name`, with `overrides`
    /// last in its environment; `None` for an external app.
    fn spawn_function(&self, spec: &AppSpec, name: &str, overrides: &[(&str, String)]) -> anyhow::Result<Option<Proc>> {
        let Some((program, args)) = spec.command.split_first() else { return Ok(None) };
        let mut function = Command::new(program);
        function
            .args(args)
            .current_dir(workspace_root())
            .envs(&spec.env)
            .env("APP_ID", &spec.id)
            .env("APP_PORT", spec.app_port.to_string())
            .env("DAPR_HTTP_PORT", spec.http_port.to_string())
            .env("DAPR_GRPC_PORT", spec.grpc_port.to_string())
            .env("DAPR_HTTP_ENDPOINT", spec.sidecar_url())
            // Also what `kill_leftovers` recognises a function by (its command line is only
            // the binary).
            .env("TODO_PLATFORM_DIR", &self.dir)
            .envs(self.options.function_env.iter().map(|(k, v)| (k, v)))
            .envs(self.tokens(&spec.id))
            .envs(overrides.iter().map(|(k, v)| (k, v)));
        Proc::spawn(name, function, &self.logs).map(Some)
    }

    /// Waits until `id`'s daprd answers its health check (components loaded, app reachable).
    pub async fn wait_app(&mut self, id: &str) -> anyhow::Result<()> {
        let sidecar = self.sidecar(id)?;
        wait_healthy(id, &sidecar, None, self.daprds.get_mut(id), self.functions.get_mut(id)).await.map(drop)
    }

    /// Starts `id`'s function and its daprd, and returns once the sidecar is healthy (what a
    /// kubelet does for one replica of a Deployment with its readiness probe).
    /// The times of the start are kept ([`Platform::starts`]).
    pub async fn start_app(&mut self, id: &str) -> anyhow::Result<()> {
        let spawned = Instant::now();
        self.start_function(id)?;
        self.start_daprd(id)?;
        let app = self.app(id)?;
        let (sidecar, app_url) = (app.sidecar_url(), self.has_function(id).then(|| app_url(app.app_port)));
        let (function_ready, daprd_ready) =
            wait_healthy(id, &sidecar, app_url.as_deref(), self.daprds.get_mut(id), self.functions.get_mut(id)).await?;
        self.starts.push(PairStart { name: id.to_owned(), spawned, function_ready, daprd_ready });
        Ok(())
    }

    /// Every pair [`Platform::start_app`] and [`Platform::start_replica`] started, oldest first:
    /// when it was spawned and when each of its processes was ready.
    pub fn starts(&self) -> &[PairStart] {
        &self.starts
    }

    /// Stops `id`'s pair gracefully, as a pod is deleted: SIGTERM to daprd first, which stops
    /// its subscriptions and finishes the deliveries in flight (they need the app), then to the
    /// function; each is SIGKILLed after `grace`.
    pub fn stop_app(&mut self, id: &str, grace: Duration) -> anyhow::Result<()> {
        if let Some(proc) = self.daprds.get_mut(id) {
            proc.stop(grace)?;
        }
        if let Some(proc) = self.functions.get_mut(id) {
            proc.stop(grace)?;
        }
        self.record_pids()
    }

    /// Whether `id`'s daprd runs (started and not exited).
    pub fn is_up(&mut self, id: &str) -> anyhow::Result<bool> {
        match self.daprds.get_mut(id).and_then(|p| p.child.as_mut()) {
            Some(child) => Ok(child.try_wait()?.is_none()),
            None => Ok(false),
        }
    }

    /// Starts one more instance of `id` (function and daprd) beside those running, and returns
    /// its number `n` (2, 3, ...: its processes and logs are `<id>-<n>` and `daprd-<id>-<n>`)
    /// once its sidecar is healthy, as [`Platform::start_app`] does for the first. `n` is one
    /// above the highest kept, so a number freed by [`Platform::stop_replica`] is given again
    /// and its log appended to, as the first instance's is on a restart.
    ///
    /// Every port is fresh (app, daprd's HTTP, gRPC, internal gRPC and metrics, and the
    /// function's `METRICS_PORT` if its environment sets one): on Kubernetes each pod has its
    /// own network namespace, here every replica shares the host's. Everything else is the
    /// first instance's: app-id (hence the Kafka consumer group, whose partitions the replicas
    /// share), components, configuration, PostgreSQL role, tokens and environment. A replica
    /// needs no first instance running, but starting one while none is up on a fresh database
    /// races the first's table creation (see [`Platform::start`]).
    pub async fn start_replica(&mut self, id: &str) -> anyhow::Result<usize> {
        let first = self.app(id)?.clone();
        let n = self.extra.get(id).and_then(|r| r.iter().map(|r| r.n).max()).unwrap_or(1) + 1;
        let spec = AppSpec {
            app_port: free_port()?,
            http_port: free_port()?,
            grpc_port: free_port()?,
            internal_grpc_port: free_port()?,
            metrics_port: free_port()?,
            ..first
        };
        let name = format!("{id}-{n}");
        let spawned = Instant::now();
        // The function's own metrics listener, when the run file or the options give it one:
        // a fixed port would stop the second replica from binding it.
        let sets_metrics_port =
            spec.env.contains_key("METRICS_PORT") || self.options.function_env.iter().any(|(k, _)| k == "METRICS_PORT");
        let overrides = if sets_metrics_port { vec![("METRICS_PORT", free_port()?.to_string())] } else { Vec::new() };
        let function = self.spawn_function(&spec, &name, &overrides)?;
        let daprd = self.spawn_daprd(&spec, &format!("daprd-{name}"))?;
        let sidecar = spec.sidecar_url();
        let app_url = function.is_some().then(|| app_url(spec.app_port));
        // Kept even if it never gets healthy (as `start_app` keeps its pair): its logs stay
        // named, and `stop`, `pids` and `kill_leftovers` see it.
        let replicas = self.extra.entry(id.to_owned()).or_default();
        replicas.push(Replica { n, spec, function, daprd });
        self.record_pids()?;
        let replica = self.extra.get_mut(id).and_then(|r| r.last_mut()).context("the replica just started")?;
        let (function_ready, daprd_ready) =
            wait_healthy(&name, &sidecar, app_url.as_deref(), Some(&mut replica.daprd), replica.function.as_mut())
                .await?;
        self.starts.push(PairStart { name, spawned, function_ready, daprd_ready });
        Ok(n)
    }

    /// Stops `id`'s newest instance beyond the first gracefully, as [`Platform::stop_app`] stops
    /// a pair (SIGTERM to daprd, then to the function; SIGKILL after `grace`), the way a scaled
    /// down Deployment removes its youngest pods first. Replicas that exited on their own are
    /// reaped on the way. `false` when no replica beyond the first was running: the first
    /// instance is stopped only by [`Platform::stop_app`].
    pub fn stop_replica(&mut self, id: &str, grace: Duration) -> anyhow::Result<bool> {
        self.app(id)?;
        let mut stopped = false;
        while let Some(mut replica) = self.extra.get_mut(id).and_then(Vec::pop) {
            let running = replica.daprd.is_running()?;
            replica.stop(grace).with_context(|| format!("stopping {}", replica.name()))?;
            if running {
                stopped = true;
                break;
            }
        }
        self.record_pids()?;
        Ok(stopped)
    }

    /// How many instances of `id` run, the first included: those whose daprd runs (started
    /// and not exited), as [`Platform::is_up`] counts the first.
    pub fn replicas(&mut self, id: &str) -> anyhow::Result<usize> {
        let mut running = usize::from(self.is_up(id)?);
        for replica in self.extra.get_mut(id).into_iter().flatten() {
            running += usize::from(replica.daprd.is_running()?);
        }
        Ok(running)
    }

    /// The app instance of `id`'s replica `n` (its ports: `app_port`, `sidecar_url()`); `n` 1
    /// is the first, [`Platform::app`].
    pub fn replica(&self, id: &str, n: usize) -> anyhow::Result<&AppSpec> {
        if n == 1 {
            return self.app(id);
        }
        self.extra
            .get(id)
            .and_then(|r| r.iter().find(|r| r.n == n))
            .map(|r| &r.spec)
            .with_context(|| format!("{id} has no replica {n}"))
    }

    /// Starts a daprd with app-id `id` and no app (no `--app-port`: it subscribes to nothing,
    /// so it joins no consumer group and wakes nothing) and returns its HTTP URL once healthy:
    /// a publisher with `id`'s publishing scopes while `id` itself is scaled to zero.
    pub async fn start_publisher(&mut self, id: &str) -> anyhow::Result<String> {
        self.app(id)?;
        let sidecar = Sidecar { id: id.to_owned(), ..Sidecar::default() };
        self.start_sidecar(&format!("{id}-publisher"), &sidecar).await
    }

    /// Starts `sidecar` (a daprd without an app) as process `daprd-<name>` and returns its HTTP
    /// URL once it is healthy; with [`Sidecar::placement`], also once its actor runtime has
    /// joined placement (workflows can start). [`Platform::stop_sidecar`] stops it by `name`.
    pub async fn start_sidecar(&mut self, name: &str, sidecar: &Sidecar) -> anyhow::Result<String> {
        let placement = if sidecar.placement { Some(self.start_placement().await?) } else { None };
        let http_port = free_port()?;
        let mut daprd = self.daprd_command(
            &sidecar.id,
            [http_port, free_port()?, free_port()?, free_port()?],
            placement.as_deref(),
        );
        for folder in &sidecar.resources {
            daprd.arg("--resources-path").arg(folder);
        }
        daprd.envs(sidecar.env.iter().map(|(k, v)| (k, v)));
        let proc = Proc::spawn(&format!("daprd-{name}"), daprd, &self.logs)?;
        self.daprds.insert(name.to_owned(), proc);
        self.record_pids()?;
        let url = format!("http://127.0.0.1:{http_port}");
        let http = crate::api::client()?;
        let deadline = Instant::now() + READY;
        loop {
            if let Some(proc) = self.daprds.get_mut(name) {
                proc.check_running()?;
            }
            if http.get(format!("{url}/v1.0/healthz")).send().await.is_ok_and(|r| r.status().is_success())
                && (!sidecar.placement || self.actors_ready(&url).await)
            {
                return Ok(url);
            }
            if Instant::now() > deadline {
                bail!("the daprd {name} ({}) not healthy within {READY:?}", sidecar.id);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the sidecar at `url` reports its actor runtime connected to placement and ready
    /// to host actors (`GET /v1.0/metadata`, `actorRuntime`): before that a workflow start
    /// fails.
    async fn actors_ready(&self, url: &str) -> bool {
        let Ok(http) = crate::api::client() else { return false };
        let metadata_url = format!("{url}/v1.0/metadata");
        let Ok(metadata) = self.sidecar_json(http.get(&metadata_url), "GET", &metadata_url).await else {
            return false;
        };
        let runtime = &metadata["actorRuntime"];
        runtime["hostReady"] == true && runtime["placement"].as_str().is_some_and(|p| p.ends_with("connected"))
    }

    /// Stops the sidecar `name` of [`Platform::start_sidecar`]: SIGTERM, SIGKILL after `grace`.
    pub fn stop_sidecar(&mut self, name: &str, grace: Duration) -> anyhow::Result<()> {
        match self.daprds.get_mut(name) {
            Some(proc) => proc.stop(grace)?,
            None => bail!("no sidecar {name}"),
        }
        self.record_pids()
    }

    /// SIGKILLs `id`'s function (its daprd stays).
    pub fn kill_function(&mut self, id: &str) -> anyhow::Result<()> {
        match self.functions.get_mut(id) {
            Some(proc) => proc.kill(),
            None => bail!("{id} is not running"),
        }
    }

    /// SIGKILLs `id`'s daprd (its function stays).
    pub fn kill_daprd(&mut self, id: &str) -> anyhow::Result<()> {
        match self.daprds.get_mut(id) {
            Some(proc) => proc.kill(),
            None => bail!("daprd of {id} is not running"),
        }
    }

    /// Restarts whatever of `id` is not running (function, daprd or both) and waits until it
    /// is healthy.
    pub async fn revive(&mut self, id: &str) -> anyhow::Result<()> {
        if self.functions.get_mut(id).is_none_or(|p| p.child.is_none()) {
            self.start_function(id)?;
        }
        if self.daprds.get_mut(id).is_none_or(|p| p.child.is_none()) {
            self.start_daprd(id)?;
        }
        self.wait_app(id).await
    }

    /// Processes of this platform, by name (`postgres`, `kafka`, `scheduler`, `daprd-<id>`, `<id>`,
    /// and for replicas beyond the first `daprd-<id>-<n>`, `<id>-<n>`).
    pub fn pids(&self) -> BTreeMap<String, u32> {
        let mut pids = BTreeMap::new();
        for (name, proc) in [("postgres", &self.postgres), ("kafka", &self.kafka), ("scheduler", &self.scheduler)] {
            if let Some(pid) = proc.as_ref().and_then(Proc::pid) {
                pids.insert(name.to_owned(), pid);
            }
        }
        if let Some(pid) = self.placement.as_ref().and_then(|(proc, _)| proc.pid()) {
            pids.insert("placement".to_owned(), pid);
        }
        for (id, proc) in &self.daprds {
            if let Some(pid) = proc.pid() {
                pids.insert(format!("daprd-{id}"), pid);
            }
        }
        for (id, proc) in &self.functions {
            if let Some(pid) = proc.pid() {
                pids.insert(id.clone(), pid);
            }
        }
        for replica in self.extra.values().flatten() {
            let name = replica.name();
            if let Some(pid) = replica.daprd.pid() {
                pids.insert(format!("daprd-{name}"), pid);
            }
            if let Some(pid) = replica.function.as_ref().and_then(Proc::pid) {
                pids.insert(name, pid);
            }
        }
        pids
    }

    /// Stops everything gracefully, functions and sidecars first, then placement, the
    /// Scheduler, Kafka and PostgreSQL.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let grace = Duration::from_secs(10);
        for replicas in self.extra.values_mut() {
            for replica in replicas.iter_mut().rev() {
                replica.stop(grace)?;
            }
        }
        for proc in self.functions.values_mut() {
            proc.stop(grace)?;
        }
        for proc in self.daprds.values_mut() {
            proc.stop(grace)?;
        }
        let placement = self.placement.as_mut().map(|(proc, _)| proc);
        for proc in [placement, self.scheduler.as_mut(), self.kafka.as_mut()].into_iter().flatten() {
            proc.stop(Duration::from_secs(20))?;
        }
        if let Some(pg) = self.postgres.as_mut() {
            // SIGINT: PostgreSQL's fast shutdown.
            pg.signal_and_wait("INT", Duration::from_secs(20))?;
        }
        Ok(())
    }

    /// Whether `id` has a function binary to start (an app without `command` is served by the
    /// test itself).
    pub fn has_function(&self, id: &str) -> bool {
        self.app(id).is_ok_and(|app| !app.command.is_empty())
    }

    /// The functions and daprds still running (neither killed nor exited), named as in
    /// [`Platform::pids`].
    pub fn running(&mut self) -> anyhow::Result<std::collections::BTreeSet<String>> {
        let mut running = std::collections::BTreeSet::new();
        for (prefix, procs) in [("daprd-", &mut self.daprds), ("", &mut self.functions)] {
            for (id, proc) in procs.iter_mut() {
                if let Some(child) = proc.child.as_mut()
                    && child.try_wait()?.is_none()
                {
                    running.insert(format!("{prefix}{id}"));
                }
            }
        }
        for replica in self.extra.values_mut().flatten() {
            let name = replica.name();
            if replica.daprd.is_running()? {
                running.insert(format!("daprd-{name}"));
            }
            if let Some(function) = replica.function.as_mut()
                && function.is_running()?
            {
                running.insert(name);
            }
        }
        Ok(running)
    }
}

/// The URL of the function's `/healthz` on `port`.
fn app_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/healthz")
}

/// Waits until the daprd at `sidecar` answers its health check (components loaded, app
/// reachable), failing early with the log's end if `daprd` or `function` exits; `name` is the
/// instance's, for the error. With `app` (the function's `/healthz`) it also asks the function
/// on every round until it answers 200. Returns when the function answered (`None` if it had not
/// by the time daprd did, or without `app`) and when daprd did.
async fn wait_healthy(
    name: &str,
    sidecar: &str,
    app: Option<&str>,
    mut daprd: Option<&mut Proc>,
    mut function: Option<&mut Proc>,
) -> anyhow::Result<(Option<Instant>, Instant)> {
    let url = format!("{sidecar}/v1.0/healthz");
    let http = crate::api::client()?;
    let deadline = Instant::now() + READY;
    let mut function_ready = None;
    loop {
        for proc in [daprd.as_deref_mut(), function.as_deref_mut()].into_iter().flatten() {
            proc.check_running()?;
        }
        if let Some(app) = app.filter(|_| function_ready.is_none())
            && http.get(app).send().await.is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
        {
            function_ready = Some(Instant::now());
        }
        if http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok((function_ready, Instant::now()));
        }
        if Instant::now() > deadline {
            let tail = daprd.as_deref().map(|p| p.tail(30)).unwrap_or_default();
            bail!("daprd of {name} not healthy within {READY:?}; the end of its log:\n{tail}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The run file's `common.resourcesPath`, as `dapr run` reads it (relative to the run file's
/// folder); `dapr-components/local` when it names none.
fn resources_path(run_file: &Path) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(run_file).with_context(|| format!("reading {}", run_file.display()))?;
    let run: Value = serde_norway::from_str(&text).with_context(|| format!("parsing {}", run_file.display()))?;
    let Some(path) = run.get("common").and_then(|c| c.get("resourcesPath")).and_then(Value::as_str) else {
        return Ok(workspace_root().join("dapr-components/local"));
    };
    let base = run_file.parent().unwrap_or_else(|| Path::new("."));
    Ok(base.join(path))
}

/// The apps of a run file (`dapr.yaml` or [`crate::host::Setup`]'s copy) with fresh ports for
/// the sidecar's other listeners.
fn read_run_file(path: &Path) -> anyhow::Result<Vec<AppSpec>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let run: Value = serde_norway::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let env_of = |value: Option<&Value>| -> BTreeMap<String, String> {
        value
            .and_then(Value::as_mapping)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| {
                        let value = match v {
                            Value::String(s) => s.clone(),
                            other => serde_norway::to_string(other).ok()?.trim().to_owned(),
                        };
                        Some((k.as_str()?.to_owned(), value))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let common = env_of(run.get("common").and_then(|c| c.get("env")));
    let root = workspace_root();
    let mut apps = Vec::new();
    for app in run.get("apps").and_then(Value::as_sequence).context("the run file has no apps")? {
        let id = app.get("appID").and_then(Value::as_str).context("an app without appID")?.to_owned();
        let port = |key: &str| -> anyhow::Result<u16> {
            let n = app.get(key).and_then(Value::as_u64).with_context(|| format!("{id}: no {key}"))?;
            u16::try_from(n).with_context(|| format!("{id}: {key} {n} is not a port"))
        };
        // No command: an external app (see `start_function`).
        let command: Vec<String> = app
            .get("command")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .map(|c| if c.starts_with("./") { root.join(&c).display().to_string() } else { c })
            .collect();
        let mut env = common.clone();
        env.extend(env_of(app.get("env")));
        apps.push(AppSpec {
            app_port: port("appPort")?,
            http_port: port("daprHTTPPort")?,
            grpc_port: free_port()?,
            internal_grpc_port: free_port()?,
            metrics_port: free_port()?,
            command,
            env,
            id,
        });
    }
    Ok(apps)
}

/// The `postgres` user's uid and gid when running as root (initdb refuses root); `None` runs
/// PostgreSQL as the current user.
fn postgres_user() -> anyhow::Result<Option<(u32, u32)>> {
    let uid = std::fs::metadata("/proc/self").context("/proc/self")?;
    if std::os::unix::fs::MetadataExt::uid(&uid) != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() == Some(&"postgres") && fields.len() > 3 {
            return Ok(Some((fields[2].parse()?, fields[3].parse()?)));
        }
    }
    bail!("running as root, and there is no `postgres` user to run PostgreSQL as: run `make platform`")
}

fn as_user(command: &mut Command, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        std::os::unix::process::CommandExt::uid(command, uid);
        std::os::unix::process::CommandExt::gid(command, gid);
        command.env("HOME", "/tmp");
    }
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// The postgres user must reach its data folder through `dir` (a temporary folder is 0700,
/// so it is opened to others' traversal, not reading) and every parent of it (checked, never
/// changed: a home folder stays closed, and the error says where to put the data instead).
fn make_traversable(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    set_mode(dir, (mode & 0o7777) | 0o011)?;
    for parent in dir.ancestors().skip(1) {
        if std::fs::metadata(parent)?.permissions().mode() & 0o001 == 0 {
            bail!(
                "{} is not traversable by the postgres user that runs PostgreSQL: use a folder under /tmp \
                 (TMPDIR) or open it with `chmod o+x`",
                parent.display()
            );
        }
    }
    Ok(())
}
