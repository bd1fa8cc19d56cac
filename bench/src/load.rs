//! The system figures, each on a fresh private system of one [`Backend`], the release binaries
//! as its apps: sustained creations through `create-task`, create-to-audit latency, reminder
//! lateness, task-api's list over many tasks, and MCP tool calls at task-api's `/mcp`.
//!
//! Load is offered the way producers offer it: `todo.task.create` requests published to
//! `task-create` through on-task-completed's sidecar (the one app the pub/sub scopes let publish
//! there), at a fixed rate, bounded in time and count. What the figures read besides task-api
//! is read beside the functions, never through them, so measuring adds no load to what is
//! measured:
//!
//! - devhost: backlog from its consumer offsets, audit entries and reminder records straight
//!   from its SQLite database (read-only).
//! - the real platform: backlog from the Kafka broker, each consumer group's committed offsets
//!   against the end of each partition it subscribes to (`Kafka::lag_of` for every app-id and
//!   the topics its sidecar subscribed to, `Platform::subscriptions`). Not [`Platform::lag`]:
//!   it counts a group only from the group's first commit, and right after a start it read an
//!   empty backlog while create-task still had hundreds of requests to go. Audit entries and reminder records from
//!   PostgreSQL with `psql` (the `state` store's table, see [`Bench::state`]). Reading them
//!   through task-api would be backend-neutral, but it would put the measurement's own requests
//!   on the sidecar and store being measured, and task-api shows a user only their own audit
//!   trail, one task at a time.
//!
//! daprd's Kafka consumer (sarama, as components-contrib configures it) commits the offsets it
//! has processed once a second, so the platform's backlog reads high by up to a second's worth
//! of messages per consumer group, and a drain time there has about a second of resolution.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::api::{eventually, json_body};
use system_tests::host::{Profile, Setup, TASK_CREATE_PUBLISHER, children_of, task_create_url};
use system_tests::kafka::Kafka;
use system_tests::platform::{Options, Paths, Platform};
use todo_core::events::{task_id_for_request, topics};
use tokio::sync::{Mutex, Semaphore};
use uuid::Uuid;

use system_tests::procfs::{Cpu, comm, cpu_seconds, rss_mib};

/// Requests in flight at most: enough to keep the sidecar busy, bounded so a stalled system
/// shows up as a missed rate, not as an unbounded queue in the driver.
const MAX_IN_FLIGHT: usize = 256;
/// How often the driver sends what its schedule says is due.
const TICK: Duration = Duration::from_millis(10);
/// The most a backlog may take to drain before the run counts it as not drained.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);
/// The most the list figure waits for its tasks to be created: 10,000 of them may take a slow
/// backend minutes, and the figure is the list, not the creation.
const LIST_DRAIN_LIMIT: Duration = Duration::from_secs(300);
/// How long the warm-up creation may take to be audited: the first messages wait for every
/// consumer group to join (a few seconds on a loaded machine).
const WARM_UP_LIMIT: Duration = Duration::from_secs(90);
/// The `state` store (reminder records) and the `audit` store (audit entries). On the platform
/// each store `<name>` is the table `todo_<name>` with keys `<name>||<key>`
/// (`dapr-components/local/{state,audit}.yaml`: `tableName: todo_<name>`, `keyPrefix: name`).
const STATE_STORE: &str = "state";
const AUDIT_STORE: &str = "audit";

/// Which system the figures run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// devhost in this process, as the sidecar of every function.
    Devhost,
    /// The real platform (`make platform`): a daprd beside each function, the Dapr Scheduler,
    /// one Kafka broker and PostgreSQL, as processes of this one.
    Platform,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Devhost => "devhost",
            Self::Platform => "platform",
        }
    }

    /// A comma-separated list (`devhost,platform`), in the order given, each once.
    pub fn parse_list(list: &str) -> anyhow::Result<Vec<Self>> {
        let mut backends = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let backend = match name {
                "devhost" => Self::Devhost,
                "platform" => Self::Platform,
                other => bail!("unknown backend {other:?} (devhost, platform)"),
            };
            if !backends.contains(&backend) {
                backends.push(backend);
            }
        }
        if backends.is_empty() {
            bail!("no backend in {list:?} (devhost, platform)");
        }
        Ok(backends)
    }
}

/// The running system under a [`Bench`].
enum System {
    Devhost(devhost::system::System),
    Platform {
        /// Boxed: it is most of the enum's size.
        platform: Box<Platform>,
        /// One client for the whole figure: the backlog is polled often.
        kafka: Kafka,
        /// `psql` of the PostgreSQL that `make platform` found.
        psql: PathBuf,
        /// Each consumer group (app-id) and the topics it subscribes to.
        consumers: Vec<(String, Vec<String>)>,
    },
}

/// A private release-build system on one backend.
pub struct Bench {
    pub backend: Backend,
    pub setup: Setup,
    system: Option<System>,
    http: reqwest::Client,
    /// Where creation requests are published (task-api's sidecar).
    publish_url: reqwest::Url,
}

impl Bench {
    /// Starts a fresh system; the platform's lives in `$TMPDIR/todo-bench/<name>` (replaced).
    /// Returns once one warm-up creation has been audited and every backlog drained.
    pub async fn start(backend: Backend, name: &str) -> anyhow::Result<Self> {
        // The list figure searches 10,000 tasks in one request, as it was defined before the
        // search bound: neither bound may cut it short.
        let setup =
            Setup::with_profile(Profile::Release, &[("LIST_SCAN_LIMIT", "50000"), ("SEARCH_SCAN_LIMIT", "50000")])?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .build()?;
        let system = match backend {
            Backend::Devhost => System::Devhost(setup.start(false).await?),
            Backend::Platform => {
                let psql = Paths::load()?.postgres_bin.join("psql");
                let dir = Self::platform_dir(name);
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
                }
                let platform = Platform::start(&setup.run_file, &dir, Options::default()).await?;
                let kafka = platform.kafka().await?;
                // What each sidecar subscribed to (its app-id is its consumer group:
                // `consumerGroup: "{appID}"` in `dapr-components/local/pubsub.yaml`).
                let consumers = platform.subscriptions().await?.into_iter().collect();
                System::Platform { platform: Box::new(platform), kafka, psql, consumers }
            }
        };
        let publish_url = task_create_url(setup.sidecar(TASK_CREATE_PUBLISHER)?, &[])?;
        let bench = Self { backend, setup, system: Some(system), http, publish_url };
        if let Err(error) = bench.warm_up().await {
            bench.stop().await;
            return Err(error.context("warming up"));
        }
        Ok(bench)
    }

    fn platform_dir(name: &str) -> PathBuf {
        std::env::temp_dir().join("todo-bench").join(name)
    }

    pub async fn stop(mut self) {
        match self.system.take() {
            Some(System::Devhost(system)) => system.stop().await,
            Some(System::Platform { platform, .. }) => {
                // Dropping it would SIGKILL what is left, so a failed stop leaves nothing running.
                if let Err(error) = platform.stop() {
                    eprintln!("bench: stopping the platform: {error:#}");
                }
            }
            None => {}
        }
    }

    /// Runs one figure on a fresh system, and stops the system however the figure ends. The
    /// platform's folder is removed after a figure that succeeded, and kept (with every
    /// process's log) after one that failed.
    pub async fn run<T>(
        backend: Backend,
        name: &str,
        figure: impl AsyncFnOnce(&Self) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let result = match Self::start(backend, name).await {
            Ok(bench) => {
                let result = figure(&bench).await;
                bench.stop().await;
                result
            }
            Err(error) => Err(error.context("starting the system")),
        };
        if backend == Backend::Platform {
            let dir = Self::platform_dir(name);
            match &result {
                Ok(_) => {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                Err(_) => return result.with_context(|| format!("logs in {}", dir.join("logs").display())),
            }
        }
        result
    }

    /// One creation, waited for until audited: on the platform a consumer group joins Kafka
    /// only once its daprd is up, and without this the first messages of a figure would
    /// measure the joins. Then waits for every backlog to drain.
    async fn warm_up(&self) -> anyhow::Result<()> {
        let offered = self.offer("warmup", 1000, 1, Duration::from_secs(10), |_| json!({ "title": "warm-up" })).await?;
        let Some((request_id, _)) = offered.accepted.first() else {
            bail!("the warm-up creation was not accepted by task-api's sidecar");
        };
        let task_id = task_id_for_request("warmup", request_id).to_string();
        eventually("the warm-up creation to be audited", WARM_UP_LIMIT, || async {
            let entries = self.state(AUDIT_STORE, "audit:").await?;
            Ok(entries.iter().any(|e| e["task_id"] == task_id.as_str()).then_some(()))
        })
        .await?;
        self.drained(DRAIN_LIMIT).await
    }

    /// Messages published and not yet processed, over every consumer group and topic.
    pub async fn backlog(&self) -> anyhow::Result<i64> {
        match self.system()? {
            System::Devhost(_) => self.setup.backlog(),
            System::Platform { kafka, consumers, .. } => {
                let mut backlog = 0;
                for (group, topics) in consumers {
                    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
                    let lag = kafka.lag_of(group, &topics).await?.iter().map(|l| l.lag).sum::<i64>();
                    tracing::debug!(group, lag, "consumer group lag");
                    backlog += lag;
                }
                Ok(backlog)
            }
        }
    }

    fn system(&self) -> anyhow::Result<&System> {
        self.system.as_ref().context("the system is stopped")
    }

    /// Waits until every consumer group has caught up, or fails past `limit`.
    pub async fn drained(&self, limit: Duration) -> anyhow::Result<()> {
        if self.drain(limit).await?.is_none() {
            bail!("the backlog did not drain within {limit:?}");
        }
        Ok(())
    }

    /// Waits until every consumer group has caught up; how long that took, or `None` past
    /// `limit`.
    pub async fn drain(&self, limit: Duration) -> anyhow::Result<Option<Duration>> {
        // devhost's offsets are a local read; the platform's take a few requests to the broker,
        // whose committed offsets move once a second anyway.
        let poll = match self.backend {
            Backend::Devhost => Duration::from_millis(20),
            Backend::Platform => Duration::from_millis(250),
        };
        let started = Instant::now();
        loop {
            if self.backlog().await? == 0 {
                return Ok(Some(started.elapsed()));
            }
            if started.elapsed() > limit {
                return Ok(None);
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// How many messages `topic` holds (all of them: nothing expires during a figure).
    pub async fn topic_messages(&self, topic: &str) -> anyhow::Result<u64> {
        match self.system()? {
            System::Devhost(_) => Ok(devhost::peek::messages(&self.setup.database, "pubsub", topic)?.len() as u64),
            System::Platform { kafka, .. } => {
                let ends = kafka.end_offsets(topic).await?;
                Ok(ends.values().map(|end| u64::try_from(*end).unwrap_or(0)).sum())
            }
        }
    }

    /// The values of `store` (`audit`: audit entries, `state`: reminder records) whose keys
    /// start with `prefix`. On the platform: one `psql` query on the store's table, beside daprd (the
    /// table is Dapr's `state.postgresql` v1 layout: `key text`, `value jsonb`); `value::text`
    /// is one line per row, JSON strings keeping their newlines escaped.
    pub async fn state(&self, store: &str, prefix: &str) -> anyhow::Result<Vec<Value>> {
        match self.system()? {
            System::Devhost(_) => {
                Ok(devhost::peek::state(&self.setup.database, store, prefix)?.into_iter().map(|(_, v)| v).collect())
            }
            System::Platform { platform, psql, .. } => {
                let (psql, url) = (psql.clone(), platform.postgres_url());
                let key = format!("{store}||{prefix}").replace('\'', "''");
                let sql = format!("SELECT value::text FROM todo_{store} WHERE starts_with(key, '{key}')");
                tokio::task::spawn_blocking(move || psql_lines(&psql, &url, &sql))
                    .await??
                    .iter()
                    .map(|line| {
                        serde_json::from_str(line).with_context(|| format!("a {prefix} value is not JSON: {line}"))
                    })
                    .collect()
            }
        }
    }

    /// Offers `count` creation requests at `rate` per second (stopping at `limit` whatever the
    /// count), each built by `task(n)` for owner `owner`. Returns what was accepted, with when
    /// each was sent, and how many were offered in each second.
    pub async fn offer(
        &self,
        owner: &str,
        rate: u32,
        count: u64,
        limit: Duration,
        task: impl Fn(u64) -> Value,
    ) -> anyhow::Result<Offered> {
        let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
        let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let started = Instant::now();
        let mut per_second = Vec::new();
        let mut handles = Vec::new();
        let mut n = 0u64;
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        while n < count && started.elapsed() < limit {
            interval.tick().await;
            // Whatever the schedule says should have been sent by now.
            let due = ((started.elapsed().as_secs_f64() * f64::from(rate)) as u64).min(count);
            while n < due {
                let permit = permits.clone().acquire_owned().await?;
                let second = started.elapsed().as_secs() as usize;
                if per_second.len() <= second {
                    per_second.resize(second + 1, 0u64);
                }
                per_second[second] += 1;
                let request_id = format!("bench-{n}");
                let body = json!({ "request_id": request_id, "owner": owner, "task": task(n) });
                let (http, url, sent, failed) =
                    (self.http.clone(), self.publish_url.clone(), sent.clone(), failed.clone());
                handles.push(tokio::spawn(async move {
                    let at = Utc::now();
                    let status = json_body(http.post(url), &body).send().await.map(|r| r.status());
                    drop(permit);
                    match status {
                        Ok(StatusCode::NO_CONTENT) => sent.lock().await.push((request_id, at)),
                        _ => {
                            failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }));
                n += 1;
            }
        }
        let offering = started.elapsed();
        for handle in handles {
            handle.await?;
        }
        let accepted = std::mem::take(&mut *sent.lock().await);
        Ok(Offered { accepted, failed: failed.load(std::sync::atomic::Ordering::Relaxed), offering, per_second })
    }

    /// Resident memory now, in MiB, by process: each function (devhost runs in this process,
    /// so only the functions are separate); on the platform also each function's daprd
    /// (`daprd-<function>`), `kafka`, `scheduler` and `postgres` (the postmaster and every
    /// process it forked, summed: shared buffers count once per process that touched them).
    pub fn memory(&self) -> anyhow::Result<BTreeMap<String, f64>> {
        self.per_process(rss_mib)
    }

    /// CPU seconds used so far, by process, named as in [`Bench::memory`]; `postgres` counts the
    /// backends it has reaped too. On devhost `devhost + driver` is this process: the embedded
    /// host and the load driver together. On the platform `driver` is this process.
    pub fn cpu(&self) -> anyhow::Result<BTreeMap<String, f64>> {
        let mut out = self.per_process(|pid| cpu_seconds(pid, Cpu::WithReapedChildren))?;
        let this = match self.system()? {
            System::Devhost(_) => "devhost + driver",
            System::Platform { .. } => "driver",
        };
        out.insert(this.to_owned(), cpu_seconds(std::process::id(), Cpu::WithReapedChildren)?);
        Ok(out)
    }

    /// `read` of each process of the system, by name; `postgres` sums its children.
    fn per_process(&self, read: fn(u32) -> anyhow::Result<f64>) -> anyhow::Result<BTreeMap<String, f64>> {
        let mut out = BTreeMap::new();
        match self.system()? {
            System::Devhost(_) => {
                for pid in children_of(std::process::id())? {
                    // `comm` is cut at 15 characters (`on-task-complet`).
                    let Some(name) = comm(pid) else { continue };
                    if let Some(function) = crate::FUNCTIONS.iter().find(|f| f.starts_with(&name)) {
                        out.insert((*function).to_owned(), read(pid)?);
                    }
                }
            }
            System::Platform { platform, .. } => {
                for (name, pid) in platform.pids() {
                    let mut value = read(pid)?;
                    if name == "postgres" {
                        for child in children_of(pid)? {
                            // A backend may exit between the listing and the read.
                            value += read(child).unwrap_or(0.0);
                        }
                    }
                    out.insert(name, value);
                }
            }
        }
        Ok(out)
    }
}

/// CPU milliseconds per unit of work, by process, between two [`Bench::cpu`] readings.
pub fn cpu_ms_per(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, units: u64) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(name, end)| {
            let start = before.get(name)?;
            Some((name.clone(), (end - start).max(0.0) * 1000.0 / units.max(1) as f64))
        })
        .collect()
}

/// Runs `sql` with `psql` against `url`; the rows, one per line (unaligned, tuples only).
fn psql_lines(psql: &Path, url: &str, sql: &str) -> anyhow::Result<Vec<String>> {
    let output = std::process::Command::new(psql)
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .with_context(|| format!("running {}", psql.display()))?;
    if !output.status.success() {
        bail!("psql {sql:?}: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).lines().filter(|l| !l.is_empty()).map(str::to_owned).collect())
}

/// A request id the sidecar accepted, with when it was sent.
pub type Sent = (String, DateTime<Utc>);

#[derive(Debug)]
pub struct Offered {
    pub accepted: Vec<Sent>,
    pub failed: u64,
    /// How long offering took.
    pub offering: Duration,
    /// Requests offered in each second of the run.
    pub per_second: Vec<u64>,
}

/// Sustained creations: what was offered and accepted per second, the backlog while loaded,
/// how long it took to drain after the load stopped, and memory before and after the load.
#[derive(Debug, Clone)]
pub struct Throughput {
    pub offered_per_sec: f64,
    pub accepted_per_sec: f64,
    pub failed: u64,
    pub max_backlog: i64,
    pub drain: Option<Duration>,
    /// Per second: (offered, backlog at the end of that second).
    pub timeline: Vec<(u64, i64)>,
    /// [`Bench::memory`] after the warm-up, before the load.
    pub rss_idle_mib: BTreeMap<String, f64>,
    /// [`Bench::memory`] once the backlog drained (or the drain gave up).
    pub rss_after_mib: BTreeMap<String, f64>,
    /// CPU milliseconds each process spent per accepted creation, from the load's start until
    /// the backlog drained.
    pub cpu_ms_per_creation: BTreeMap<String, f64>,
    /// `task-events` messages published during the run.
    pub events: u64,
}

pub async fn throughput(backend: Backend, rate: u32, secs: u64) -> anyhow::Result<Throughput> {
    Bench::run(backend, "throughput", async |bench| {
        // Let the warm-up's work settle (connections, allocator) before idle is read.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_idle_mib = bench.memory()?;
        let events_before = bench.topic_messages(topics::TASK_EVENTS).await?;
        let cpu_before = bench.cpu()?;
        let stop = std::sync::atomic::AtomicBool::new(false);
        let sampling = async {
            let mut samples = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                samples.push(bench.backlog().await.unwrap_or(-1));
            }
            samples
        };
        let offering = async {
            let offered = bench
                .offer(
                    "load",
                    rate,
                    u64::from(rate) * secs,
                    Duration::from_secs(secs),
                    |n| json!({ "title": format!("load {n}"), "priority": "medium", "tags": ["bench"] }),
                )
                .await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            offered
        };
        let (backlog, offered) = tokio::join!(sampling, offering);
        let offered = offered?;
        let drain = bench.drain(DRAIN_LIMIT).await?;
        let cpu_after = bench.cpu()?;
        let rss_after_mib = bench.memory()?;
        let events = bench.topic_messages(topics::TASK_EVENTS).await?.saturating_sub(events_before);
        let offered_total: u64 = offered.per_second.iter().sum();
        // Over the run's duration: the nominal one, or longer if the driver fell behind its
        // schedule (the last batch goes out on the tick at the end, hence one tick of slack).
        let duration = offered.offering.saturating_sub(TICK).max(Duration::from_secs(secs)).as_secs_f64();
        Ok(Throughput {
            offered_per_sec: offered_total as f64 / duration,
            accepted_per_sec: offered.accepted.len() as f64 / duration,
            failed: offered.failed,
            max_backlog: backlog.iter().copied().max().unwrap_or(0),
            drain,
            timeline: offered
                .per_second
                .iter()
                .copied()
                .zip(backlog.iter().copied().chain(std::iter::repeat(0)))
                .collect(),
            rss_idle_mib,
            rss_after_mib,
            cpu_ms_per_creation: cpu_ms_per(&cpu_before, &cpu_after, offered.accepted.len() as u64),
            events,
        })
    })
    .await
}

/// Latencies of one run of a figure, in milliseconds, and how many of its samples never
/// arrived (not audited, not fired) within the figure's bound.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    pub values_ms: Vec<f64>,
    pub missing: usize,
}

/// Milliseconds from publishing each creation request to its `created` audit entry.
pub async fn audit_latency(backend: Backend, rate: u32, secs: u64) -> anyhow::Result<Latencies> {
    Bench::run(backend, "audit", async |bench| {
        let offered = bench
            .offer(
                "latency",
                rate,
                u64::from(rate) * secs,
                Duration::from_secs(secs + 5),
                |n| json!({ "title": format!("latency {n}") }),
            )
            .await?;
        // Not drained within the limit: what was audited is still the figure, the rest is
        // reported as missing.
        bench.drain(DRAIN_LIMIT).await?;
        let sent: HashMap<Uuid, DateTime<Utc>> =
            offered.accepted.iter().map(|(id, at)| (task_id_for_request("latency", id), *at)).collect();
        let mut values_ms = Vec::with_capacity(sent.len());
        for entry in bench.state(AUDIT_STORE, "audit:").await? {
            let (Some(task_id), Some(recorded_at)) = (
                entry["task_id"].as_str().and_then(|t| t.parse::<Uuid>().ok()),
                entry["recorded_at"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()),
            ) else {
                continue;
            };
            if entry["change"] == "created"
                && let Some(at) = sent.get(&task_id)
            {
                values_ms.push((recorded_at.to_utc() - *at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0);
            }
        }
        let missing = sent.len().saturating_sub(values_ms.len());
        Ok(Latencies { values_ms, missing })
    })
    .await
}

/// The reminder figures of one run: how late each fired (fire-reminder's record), and how long
/// from its due time until the owner's webhook received it (through the notifier).
#[derive(Debug, Clone)]
pub struct Reminded {
    pub lateness: Latencies,
    pub webhook: Latencies,
}

/// The owner of the reminder figure's tasks.
const REMINDED: &str = "reminded";

/// `count` reminders due within the same minute, their owner's webhook a receiver on loopback:
/// how late each fired, in milliseconds, and how many did not fire at all; and from each due
/// time to its webhook request (signature checked), and how many never arrived.
pub async fn reminder_lateness(backend: Backend, count: u64) -> anyhow::Result<Reminded> {
    Bench::run(backend, "reminders", async |bench| {
        let receiver = system_tests::webhook::Receiver::start().await?;
        let channels = json!({"webhook": {"url": receiver.url(), "secret": system_tests::webhook::SECRET}});
        let answer =
            bench.setup.api(REMINDED)?.call(reqwest::Method::PUT, "/v1/me/notifications", Some(&channels)).await?;
        if answer.status != StatusCode::OK {
            bail!("PUT /v1/me/notifications answered {}: {}", answer.status, answer.body);
        }
        // Time to create them all and schedule their jobs before the minute starts.
        let minute = Utc::now() + chrono::Duration::seconds(20);
        let spacing_ms = 60_000 / count.max(1);
        let offered = bench
            .offer(REMINDED, 1000, count, Duration::from_secs(15), |n| {
                let at = minute + chrono::Duration::milliseconds((n * spacing_ms) as i64);
                json!({ "title": format!("reminder {n}"), "reminder": {"at": at.to_rfc3339_opts(SecondsFormat::Millis, true)} })
            })
            .await?;
        if offered.accepted.len() as u64 != count {
            bail!("only {} of {count} reminder tasks were accepted", offered.accepted.len());
        }
        let end = minute + chrono::Duration::seconds(60);
        tokio::time::sleep((end - Utc::now()).to_std().unwrap_or_default()).await;
        let records = eventually("every reminder to fire", Duration::from_secs(60), || async {
            let records = bench.state(STATE_STORE, "reminder:").await?;
            let done = records.iter().filter(|r| r["status"] == "fired" || r["status"] == "missed").count();
            Ok((done as u64 >= count).then_some(records))
        })
        .await;
        let records = match records {
            Ok(records) => records,
            // Report what fired; the table shows the rest as not fired.
            Err(_) => bench.state(STATE_STORE, "reminder:").await?,
        };
        let values_ms: Vec<f64> = records.iter().filter_map(|r| r["late_by_ms"].as_u64()).map(|ms| ms as f64).collect();
        let missing = count as usize - values_ms.len().min(count as usize);
        let lateness = Latencies { values_ms, missing };
        // The webhooks of what fired; a few seconds for the last ones.
        let fired = count as usize - missing;
        let _ = eventually("every fired reminder's webhook", Duration::from_secs(15), || async {
            Ok((receiver.received().len() >= fired).then_some(()))
        })
        .await;
        let mut seen = std::collections::BTreeSet::new();
        let mut webhook_ms = Vec::new();
        for request in receiver.received() {
            let body = request.verified(system_tests::webhook::SECRET)?;
            let id = request.id()?.to_owned();
            let due = body["data"]["remind_at"].as_str().context("remind_at")?;
            let due = chrono::DateTime::parse_from_rfc3339(due)?.to_utc();
            if seen.insert(id) {
                webhook_ms.push((request.at - due).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0);
            }
        }
        let webhook = Latencies { missing: count as usize - webhook_ms.len().min(count as usize), values_ms: webhook_ms };
        Ok(Reminded { lateness, webhook })
    })
    .await
}

/// Requests sent before a latency figure's timed ones, each on the same connection and (MCP)
/// session as them: the first requests pay for connections and caches.
pub const WARM_UP_REQUESTS: usize = 5;

/// The list figures' query, `GET /v1/tasks` with search, filter and sort: one task in 60 of
/// [`seed_tasks`] matches it (`quarterly report`, `high`, `work`).
const LIST_QUERY: [(&str, &str); 6] =
    [("q", "report"), ("status", "open"), ("priority", "high"), ("tag", "work"), ("sort", "-due"), ("limit", "50")];

/// Creates `tasks` varied tasks of `owner` (titles, descriptions, priorities, tags and due
/// times for the list query to search, filter and sort) and waits until all are stored.
async fn seed_tasks(bench: &Bench, owner: &str, tasks: u64) -> anyhow::Result<()> {
    let priorities = ["low", "medium", "high", "urgent"];
    let offered = bench
        .offer(owner, 2000, tasks, Duration::from_secs(120), |n| {
            let word = if n % 10 == 0 { "quarterly report" } else { "groceries" };
            json!({
                "title": format!("{word} {n}"),
                "description": format!("item {n} of the benchmark"),
                "priority": priorities[(n % 4) as usize],
                "tags": if n % 3 == 0 { vec!["work"] } else { vec!["home"] },
                "due": (Utc::now() + chrono::Duration::hours((n % 500) as i64)).to_rfc3339_opts(SecondsFormat::Secs, true),
            })
        })
        .await?;
    if offered.accepted.len() as u64 != tasks {
        bail!("only {} of {tasks} tasks were accepted", offered.accepted.len());
    }
    bench.drained(LIST_DRAIN_LIMIT).await
}

/// Milliseconds of each of `count` sequential calls of `call`, after [`WARM_UP_REQUESTS`]
/// untimed ones. `call(n)` is the `n`-th call, warm-up included.
async fn timed(count: usize, mut call: impl AsyncFnMut(usize) -> anyhow::Result<()>) -> anyhow::Result<Vec<f64>> {
    let mut values_ms = Vec::with_capacity(count);
    for n in 0..WARM_UP_REQUESTS + count {
        let started = Instant::now();
        call(n).await?;
        if n >= WARM_UP_REQUESTS {
            values_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok(values_ms)
}

/// Milliseconds per `GET /v1/tasks` with search, filter and sort over `tasks` tasks of one
/// user, over `requests` requests after a warm-up.
pub async fn list_latency(backend: Backend, tasks: u64, requests: usize) -> anyhow::Result<Latencies> {
    Bench::run(backend, "list", async |bench| {
        seed_tasks(bench, "lister", tasks).await?;
        let api = bench.setup.api("lister")?;
        let first = api.get_query("/v1/tasks", &LIST_QUERY).await?;
        if first["items"].as_array().is_none_or(Vec::is_empty) {
            bail!("the list query found nothing: {first}");
        }
        let values_ms =
            timed(requests, async |_| api.get_query("/v1/tasks", &LIST_QUERY).await.map(drop).context("list")).await?;
        Ok(Latencies { values_ms, missing: 0 })
    })
    .await
}

/// One run of the MCP figure: the latencies of each tool, from the same session.
#[derive(Debug, Clone)]
pub struct McpCalls {
    pub list_tasks: Latencies,
    pub add_task: Latencies,
}

/// Milliseconds per MCP tool call through Streamable HTTP, as an agent makes them: one session
/// of a user with `tasks` tasks ([`seed_tasks`]), `calls` sequential `list_tasks` with the list
/// figure's query, then `calls` sequential `add_task`, each after a warm-up. A call is timed
/// from its request sent to its JSON-RPC result read; a tool error fails the run, and every
/// `add_task` must have made its task (counted through REST afterwards).
pub async fn mcp_latency(backend: Backend, tasks: u64, calls: usize) -> anyhow::Result<McpCalls> {
    const OWNER: &str = "agent";
    Bench::run(backend, "mcp", async |bench| {
        seed_tasks(bench, OWNER, tasks).await?;
        let api = bench.setup.api(OWNER)?;
        let url = format!("{}/mcp", bench.setup.api_url);
        let mut mcp = system_tests::mcp::Client::open(&url, api.token(), Duration::from_secs(10)).await?;
        // LIST_QUERY as list_tasks arguments (the repeatable parameters as arrays).
        let query = json!({"q": "report", "status": "open", "priority": ["high"], "tag": ["work"], "sort": "-due", "limit": 50});
        let first = mcp.call_tool("list_tasks", query.clone()).await?;
        if first["structuredContent"]["items"].as_array().is_none_or(Vec::is_empty) {
            bail!("list_tasks found nothing: {first}");
        }
        let list_ms = timed(calls, async |_| mcp.call_tool("list_tasks", query.clone()).await.map(drop)).await?;
        // A fresh request_id per call, as the tool's description asks of agents: the idempotency
        // key is part of what is timed.
        let add_ms = timed(calls, async |n| {
            let task = json!({"title": format!("call the plumber {n}"), "priority": "medium", "tags": ["mcp"],
                              "request_id": Uuid::new_v4().to_string()});
            let added = mcp.call_tool("add_task", task).await?;
            if added["structuredContent"]["id"].as_str().is_none() {
                bail!("add_task answered no task: {added}");
            }
            Ok(())
        })
        .await?;
        let made = api.list_all(&[("tag", "mcp"), ("limit", "200")]).await?.len();
        if made != WARM_UP_REQUESTS + calls {
            bail!("add_task answered {} calls but made {made} tasks", WARM_UP_REQUESTS + calls);
        }
        Ok(McpCalls {
            list_tasks: Latencies { values_ms: list_ms, missing: 0 },
            add_task: Latencies { values_ms: add_ms, missing: 0 },
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_parse_in_order_once_each() {
        assert_eq!(Backend::parse_list("devhost,platform").unwrap(), [Backend::Devhost, Backend::Platform]);
        assert_eq!(Backend::parse_list(" platform , devhost,platform").unwrap(), [Backend::Platform, Backend::Devhost]);
        assert!(Backend::parse_list("kubernetes").is_err());
        assert!(Backend::parse_list(" , ").is_err());
    }
}
