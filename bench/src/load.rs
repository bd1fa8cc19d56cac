//! The system figures, each on a fresh private system (devhost in this process, the release
//! binaries as its apps): sustained creations through `create-task`, create-to-audit latency,
//! reminder lateness, and task-api's list over many tasks.
//!
//! Load is offered the way producers offer it: `todo.task.create` requests published to
//! `task-create` through a sidecar, at a fixed rate, bounded in time and count. Backlog is read
//! from devhost's consumer offsets; audit entries and reminder records straight from its
//! database (read-only), so measuring adds no load to the functions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::events::{task_id_for_request, topics};
use system_tests::api::{eventually, json_body};
use system_tests::host::{Profile, Setup, children_of, task_create_url};
use tokio::sync::{Mutex, Semaphore};
use uuid::Uuid;

use crate::process::{comm, rss_mib};

/// Requests in flight at most: enough to keep the sidecar busy, bounded so a stalled system
/// shows up as a missed rate, not as an unbounded queue in the driver.
const MAX_IN_FLIGHT: usize = 256;
/// How often the driver sends what its schedule says is due.
const TICK: Duration = Duration::from_millis(10);
/// The most a backlog may take to drain before the run counts it as not drained.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// A private release-build system.
pub struct Bench {
    pub setup: Setup,
    system: Option<devhost::system::System>,
    http: reqwest::Client,
    /// Where creation requests are published (task-api's sidecar).
    publish_url: reqwest::Url,
}

impl Bench {
    pub async fn start() -> anyhow::Result<Self> {
        let setup = Setup::with_profile(Profile::Release, &[("LIST_SCAN_LIMIT", "50000")])?;
        let system = setup.start(false).await?;
        let publish_url = task_create_url(setup.sidecar("task-api")?, &[])?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .build()?;
        Ok(Self { setup, system: Some(system), http, publish_url })
    }

    pub async fn stop(mut self) {
        if let Some(system) = self.system.take() {
            system.stop().await;
        }
    }

    /// Runs one figure on a fresh system, and stops the system however the figure ends.
    pub async fn run<T>(figure: impl AsyncFnOnce(&Self) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let bench = Self::start().await?;
        let result = figure(&bench).await;
        bench.stop().await;
        result
    }

    /// Waits until every consumer group has caught up, or fails past [`DRAIN_LIMIT`].
    pub async fn drained(&self) -> anyhow::Result<()> {
        if self.drain().await?.is_none() {
            bail!("the backlog did not drain within {DRAIN_LIMIT:?}");
        }
        Ok(())
    }

    /// Waits until every consumer group has caught up; how long that took, or `None` past
    /// [`DRAIN_LIMIT`].
    pub async fn drain(&self) -> anyhow::Result<Option<Duration>> {
        let started = Instant::now();
        loop {
            if self.setup.backlog()? == 0 {
                return Ok(Some(started.elapsed()));
            }
            if started.elapsed() > DRAIN_LIMIT {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
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

    /// Resident memory of each function process now, in MiB.
    pub fn function_rss(&self) -> anyhow::Result<Vec<(String, f64)>> {
        let mut out = Vec::new();
        for pid in children_of(std::process::id())? {
            // `comm` is cut at 15 characters (`on-task-complet`).
            let Some(name) = comm(pid) else { continue };
            if let Some(function) = crate::FUNCTIONS.iter().find(|f| f.starts_with(&name)) {
                out.push(((*function).to_owned(), rss_mib(pid)?));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
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
/// how long it took to drain after the load stopped, and memory after the load.
#[derive(Debug, Clone)]
pub struct Throughput {
    pub offered_per_sec: f64,
    pub accepted_per_sec: f64,
    pub failed: u64,
    pub max_backlog: i64,
    pub drain: Option<Duration>,
    /// Per second: (offered, backlog at the end of that second).
    pub timeline: Vec<(u64, i64)>,
    pub rss_after_mib: Vec<(String, f64)>,
    pub events: usize,
}

pub async fn throughput(rate: u32, secs: u64) -> anyhow::Result<Throughput> {
    Bench::run(async |bench| {
        let samples: Arc<Mutex<Vec<i64>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let (samples, stop, db) = (samples.clone(), stop.clone(), bench.setup.database.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let backlog = system_tests::host::backlog(&db).unwrap_or(-1);
                    samples.lock().await.push(backlog);
                }
            })
        };
        let offered = bench
            .offer(
                "load",
                rate,
                u64::from(rate) * secs,
                Duration::from_secs(secs),
                |n| json!({ "title": format!("load {n}"), "priority": "medium", "tags": ["bench"] }),
            )
            .await?;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let drain = bench.drain().await?;
        sampler.await?;
        let rss_after_mib = bench.function_rss()?;
        let events = devhost::peek::messages(&bench.setup.database, "pubsub", topics::TASK_EVENTS)?.len();
        let backlog = samples.lock().await.clone();
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
            rss_after_mib,
            events,
        })
    })
    .await
}

/// Milliseconds from publishing each creation request to its `created` audit entry.
pub async fn audit_latency(rate: u32, secs: u64) -> anyhow::Result<Vec<f64>> {
    Bench::run(async |bench| {
        let offered = bench
            .offer(
                "latency",
                rate,
                u64::from(rate) * secs,
                Duration::from_secs(secs + 5),
                |n| json!({ "title": format!("latency {n}") }),
            )
            .await?;
        bench.drained().await?;
        let sent: HashMap<Uuid, DateTime<Utc>> =
            offered.accepted.iter().map(|(id, at)| (task_id_for_request("latency", id), *at)).collect();
        let mut latencies = Vec::with_capacity(sent.len());
        for (_, entry) in devhost::peek::state(&bench.setup.database, "state", "audit:")? {
            let (Some(task_id), Some(recorded_at)) = (
                entry["task_id"].as_str().and_then(|t| t.parse::<Uuid>().ok()),
                entry["recorded_at"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()),
            ) else {
                continue;
            };
            if entry["change"] == "created"
                && let Some(at) = sent.get(&task_id)
            {
                latencies.push((recorded_at.to_utc() - *at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0);
            }
        }
        if latencies.len() != sent.len() {
            bail!("{} creations accepted but {} audited", sent.len(), latencies.len());
        }
        Ok(latencies)
    })
    .await
}

/// How late each of `count` reminders due within the same minute fired, in milliseconds, and
/// how many did not fire at all.
pub async fn reminder_lateness(count: u64) -> anyhow::Result<(Vec<f64>, usize)> {
    Bench::run(async |bench| {
        // Time to create them all and schedule their jobs before the minute starts.
        let minute = Utc::now() + chrono::Duration::seconds(20);
        let spacing_ms = 60_000 / count.max(1);
        let offered = bench
            .offer("reminded", 1000, count, Duration::from_secs(15), |n| {
                let at = minute + chrono::Duration::milliseconds((n * spacing_ms) as i64);
                json!({ "title": format!("reminder {n}"), "reminder": {"at": at.to_rfc3339_opts(SecondsFormat::Millis, true)} })
            })
            .await?;
        if offered.accepted.len() as u64 != count {
            bail!("only {} of {count} reminder tasks were accepted", offered.accepted.len());
        }
        let end = minute + chrono::Duration::seconds(60);
        tokio::time::sleep((end - Utc::now()).to_std().unwrap_or_default()).await;
        let db = bench.setup.database.clone();
        let records = eventually("every reminder to fire", Duration::from_secs(60), || {
            let db = db.clone();
            async move {
                let records = devhost::peek::state(&db, "state", "reminder:")?;
                let done = records.iter().filter(|(_, r)| r["status"] == "fired" || r["status"] == "missed").count();
                Ok((done as u64 >= count).then_some(records))
            }
        })
        .await;
        let records = match records {
            Ok(records) => records,
            // Report what fired; the table shows the rest as not fired.
            Err(_) => devhost::peek::state(&db, "state", "reminder:")?,
        };
        let lateness: Vec<f64> = records.iter().filter_map(|(_, r)| r["late_by_ms"].as_u64()).map(|ms| ms as f64).collect();
        let missing = count as usize - lateness.len().min(count as usize);
        Ok((lateness, missing))
    })
    .await
}

/// Milliseconds per `GET /v1/tasks` with search, filter and sort over `tasks` tasks of one
/// user, over `requests` requests after a warm-up.
pub async fn list_latency(tasks: u64, requests: usize) -> anyhow::Result<Vec<f64>> {
    Bench::run(async |bench| {
        let priorities = ["low", "medium", "high", "urgent"];
        let offered = bench
            .offer("lister", 2000, tasks, Duration::from_secs(120), |n| {
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
        bench.drained().await?;
        let api = bench.setup.api("lister")?;
        let query = [("q", "report"), ("status", "open"), ("priority", "high"), ("tag", "work"), ("sort", "-due"), ("limit", "50")];
        let first = api.get_query("/v1/tasks", &query).await?;
        if first["items"].as_array().is_none_or(Vec::is_empty) {
            bail!("the list query found nothing: {first}");
        }
        let mut latencies = Vec::with_capacity(requests);
        for i in 0..requests + 5 {
            let started = Instant::now();
            api.get_query("/v1/tasks", &query).await.context("list")?;
            if i >= 5 {
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        Ok(latencies)
    })
    .await
}
