//! `bench scale` (`make bench-scale`): the data-scale figures of issue 17 on the real platform.
//!
//! 1. The platform alone (PostgreSQL, Kafka, the Dapr Scheduler; no function yet) in
//!    `$TMPDIR/todo-bench/scale`, its tables made by `manifests/base/postgres/roles.sql`.
//! 2. The bulk load ([`data`], [`copy`]): `SCALE_TASKS` tasks of `SCALE_USERS` users, one audit
//!    entry per task version, the reminder and delivery records, each table through one
//!    `COPY ... FROM STDIN`; then `manifests/base/postgres/indexes.sql` if the tree has one, and
//!    `VACUUM ANALYZE` (what autovacuum would do after such a load, done before measuring rather
//!    than during it). Each step is timed.
//! 3. Every function beside its daprd, started on the loaded database; then, one request at a
//!    time, task-api's list (first page and page 50 in each sort, `q`, tag, due range), `GET` of
//!    one task and the audit trail of the task with the long trail, all as the heavy user.
//! 4. `EXPLAIN ANALYZE` of the outbox relay's query and KEDA's two PostgreSQL triggers, and
//!    how much of one request of each figure PostgreSQL spent (its statement log, briefly on).
//! 5. The platform stopped and its folder (1M rows of PostgreSQL data) removed, logs kept after a
//!    failure; the `## 1M tasks` section of `BENCHMARKS.md` replaced, the rest of the file kept.
//!
//! Configuration (environment): `SCALE_TASKS` (1000000), `SCALE_USERS` (10000),
//! `SCALE_HEAVY_USERS` (10), `SCALE_HEAVY_TASKS` (10000), `SCALE_TRAIL` (100: versions of the
//! long-trail task), `SCALE_SEED`, `SCALE_REQUESTS` (timed requests per figure, 200),
//! `SCALE_FIGURE_SECS` (the most one figure may take, 30: a figure cut short says so; following
//! the cursor to page 50 may take twice that),
//! `SCALE_OUT` (`BENCHMARKS.md`).

mod copy;
mod data;
mod explain;
mod measure;
mod render;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use dapr_fn::dapr::SaveItem;
use serde::Deserialize;
use system_tests::host::{Profile, Setup};
use system_tests::platform::{Options, Paths, Platform};
use system_tests::workspace_root;
use todo_core::delivery::{DeliveryStatus, delivery_key};
use todo_core::reminder::{ReminderStatus, reminder_key};
use todo_store::TaskStore;

use self::copy::{Copied, CopyIn};
use self::data::Spec;
use self::measure::{Client, Expect, Request, Samples};
use self::render::thousands;

/// The heading of the section this writes.
pub const HEADING: &str = "## 1M tasks";

/// Targets of issue 17 (p95, ms, real platform, 2 cores).
const LIST_FIRST_P95_MS: f64 = 50.0;
const LIST_PAGE_50_P95_MS: f64 = 100.0;
const GET_P95_MS: f64 = 10.0;
const AUDIT_P95_MS: f64 = 20.0;

/// The sorts of `GET /v1/tasks`, the default first (sent without `sort`).
const SORTS: [&str; 8] = ["-created", "created", "due", "-due", "priority", "-priority", "updated", "title"];
/// The page the deep-page figures read, and the list's default page size.
const DEEP_PAGE: usize = 50;
const PAGE_SIZE: usize = 50;
/// Runs of each `EXPLAIN ANALYZE` (after one untimed).
const EXPLAIN_RUNS: usize = 5;
/// Requests of each figure made with PostgreSQL's statement log on (fewer for a figure whose
/// requests take longer than half its time budget together).
const LOGGED_REQUESTS: usize = 3;
/// How long PostgreSQL's CPU is read while nothing is asked of the system.
const IDLE_SECS: u64 = 20;

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Config {
    tasks: u64,
    users: u64,
    heavy_users: u64,
    heavy_tasks: u64,
    trail: u64,
    seed: u64,
    requests: usize,
    figure_secs: u64,
    out: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tasks: 1_000_000,
            users: 10_000,
            heavy_users: 10,
            heavy_tasks: 10_000,
            trail: 100,
            seed: 17,
            requests: 200,
            figure_secs: 30,
            out: "BENCHMARKS.md".to_owned(),
        }
    }
}

/// One figure: what was asked, its samples or why there are none.
#[derive(Debug, Clone)]
pub struct Figure {
    pub name: String,
    /// Whose requests (the heavy user, or the typical one).
    pub user: String,
    /// The request as sent (a representative one when it cycles through several).
    pub request: String,
    pub target_p95_ms: Option<f64>,
    pub samples: Result<Samples, String>,
    /// PostgreSQL's share of one request (median over [`LOGGED_REQUESTS`]), from its statement
    /// log: statements and milliseconds.
    pub in_postgres: Option<InPostgres>,
}

/// What PostgreSQL logged for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct InPostgres {
    pub statements: usize,
    pub ms: f64,
    /// The slowest statement, shortened.
    pub slowest: String,
}

/// One timed step of the load.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
    pub secs: f64,
    pub note: String,
}

/// A query timed with `EXPLAIN ANALYZE`.
#[derive(Debug, Clone)]
pub struct Query {
    pub name: String,
    pub sql: String,
    pub role: String,
    /// What the query itself returns (a count), if it is one.
    pub result: Option<String>,
    pub runs: Result<Vec<explain::Explained>, String>,
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct ScaleRun {
    pub spec: Spec,
    pub started: DateTime<Utc>,
    pub commit: String,
    pub machine: String,
    pub versions: String,
    pub postgres_settings: String,
    pub speeds: Vec<(String, f64)>,
    pub users_light: (u64, u64),
    pub rows: Rows,
    pub indexes_after: Vec<String>,
    pub indexes_sql: bool,
    /// indexes.sql's indexes that were there before the load, dropped for it.
    pub indexes_dropped: Vec<String>,
    pub steps: Vec<Step>,
    pub table_sizes: Vec<(String, u64)>,
    pub functions_start_secs: f64,
    /// PostgreSQL's CPU while the system stood idle (the relay's passes), in % of one core.
    pub idle_postgres_cpu: Option<f64>,
    pub figures: Vec<Figure>,
    pub queries: Vec<Query>,
    pub total_secs: f64,
}

/// Rows loaded, by kind.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    pub tasks: u64,
    pub audit: u64,
    pub reminders_scheduled: u64,
    pub reminders_fired: u64,
    pub reminders_cancelled: u64,
    pub deliveries: u64,
    pub deliveries_retrying: u64,
}

pub async fn run() -> anyhow::Result<()> {
    let config: Config = envy::prefixed("SCALE_").from_env().context("SCALE_* settings")?;
    let spec = Spec {
        tasks: config.tasks,
        users: config.users,
        heavy_users: config.heavy_users,
        heavy_tasks: config.heavy_tasks,
        trail: config.trail,
        seed: config.seed,
    };
    let counts = spec.task_counts()?;
    let say = |s: &str| eprintln!("bench scale: {s}");
    let started = Instant::now();
    let mut speeds = vec![("before".to_owned(), crate::process::calibration_ms())];
    let dir = std::env::temp_dir().join("todo-bench").join("scale");
    Platform::kill_leftovers(&dir)?;
    remove(&dir)?;
    let setup = Setup::with_profile(Profile::Release, &[])?;
    let mut platform = Platform::start(&setup.run_file, &dir, Options { no_functions: true, ..Options::default() })
        .await
        .context("starting the platform")?;
    let outcome = measure_all(&config, &spec, &setup, &mut platform, &say).await;
    if let Err(error) = platform.stop() {
        say(&format!("stopping the platform: {error:#}"));
    }
    // 1M rows of PostgreSQL data do not stay behind; the logs do after a failure.
    match &outcome {
        Ok(_) => remove(&dir)?,
        Err(_) => {
            for data in ["postgres", "kafka", "scheduler-etcd"] {
                remove(&dir.join(data))?;
            }
        }
    }
    let mut run = outcome.with_context(|| format!("logs in {}", dir.join("logs").display()))?;
    speeds.push(("after".to_owned(), crate::process::calibration_ms()));
    let light = &counts[usize::try_from(spec.heavy_users)?..];
    run.users_light = (light.iter().copied().min().unwrap_or(0), light.iter().copied().max().unwrap_or(0));
    run.speeds = speeds;
    run.total_secs = started.elapsed().as_secs_f64();
    let section = render::section(&run);
    let out = workspace_root().join(&config.out);
    let doc = std::fs::read_to_string(&out).unwrap_or_default();
    std::fs::write(&out, crate::report::replace_section(&doc, HEADING, &section))
        .with_context(|| format!("writing {}", out.display()))?;
    say(&format!("wrote the {HEADING:?} section of {}", out.display()));
    let failed = run.figures.iter().filter(|f| f.samples.is_err()).count()
        + run.queries.iter().filter(|q| q.runs.is_err()).count();
    if failed > 0 {
        bail!("{failed} figure(s) failed: their errors are in {}", out.display());
    }
    Ok(())
}

fn remove(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        std::fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

/// The indexes `sql` (indexes.sql) creates, by name.
fn created_indexes(sql: &str) -> Vec<String> {
    const CREATE: &str = "CREATE INDEX CONCURRENTLY IF NOT EXISTS ";
    sql.lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .filter_map(|line| line.split_once(CREATE))
        .filter_map(|(_, rest)| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The tables the load writes, with their stores (`keyPrefix: name`).
const TABLES: [(&str, &str); 4] =
    [("todo_tasks", "tasks"), ("todo_audit", "audit"), ("todo_state", "state"), ("todo_deliveries", "deliveries")];

async fn measure_all(
    config: &Config,
    spec: &Spec,
    setup: &Setup,
    platform: &mut Platform,
    say: &impl Fn(&str),
) -> anyhow::Result<ScaleRun> {
    let psql = Paths::load()?.postgres_bin.join("psql");
    let url = platform.postgres_url();
    let sql = |sql: &str| -> anyhow::Result<String> {
        platform.psql("postgres", sql)?.map_err(|e| anyhow::anyhow!("{sql}: {e}"))
    };
    let postgres_settings =
        sql("SELECT 'PostgreSQL ' || current_setting('server_version') || ', shared_buffers ' || \
         current_setting('shared_buffers') || ', work_mem ' || current_setting('work_mem') || \
         ', effective_cache_size ' || current_setting('effective_cache_size')")?;
    let list_indexes = || -> anyhow::Result<Vec<String>> {
        let tables: Vec<String> = TABLES.iter().map(|(t, _)| format!("'{t}'")).collect();
        Ok(sql(&format!(
            "SELECT tablename || ': ' || indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename IN ({}) \
             ORDER BY 1",
            tables.join(", ")
        ))?
        .lines()
        .map(str::to_owned)
        .collect())
    };
    let indexes_before = list_indexes()?;
    // The platform's start ran indexes.sql on the empty tables. The bulk path builds each index
    // once on the loaded table instead of maintaining it row by row: its indexes go first.
    let indexes_file = workspace_root().join("manifests/base/postgres/indexes.sql");
    let indexes_sql = indexes_file.exists();
    let mut dropped = Vec::new();
    if indexes_sql {
        let text =
            std::fs::read_to_string(&indexes_file).with_context(|| format!("reading {}", indexes_file.display()))?;
        for index in created_indexes(&text) {
            if indexes_before.iter().any(|i| i.ends_with(&format!(": {index}"))) {
                sql(&format!("DROP INDEX public.{index}"))?;
                dropped.push(index);
            }
        }
    }
    let now = Utc::now();

    say(&format!(
        "loading {} tasks of {} users ({} heavy users with {} each)",
        spec.tasks, spec.users, spec.heavy_users, spec.heavy_tasks
    ));
    let (spec_copy, psql_copy, url_copy) = (*spec, psql.clone(), url.clone());
    let (copies, rows) = tokio::task::spawn_blocking(move || load(&spec_copy, now, &psql_copy, &url_copy)).await??;
    let mut steps: Vec<Step> = copies
        .iter()
        .map(|c| Step {
            name: format!("`COPY {} FROM STDIN`", c.table),
            rows: Some(c.rows),
            bytes: Some(c.bytes),
            secs: c.elapsed.as_secs_f64(),
            note: format!("{:.1} s of it generating the rows", c.generating.as_secs_f64()),
        })
        .collect();
    for c in &copies {
        say(&format!(
            "COPY {}: {} rows, {:.1} MB in {:.1} s",
            c.table,
            c.rows,
            c.bytes as f64 / 1e6,
            c.elapsed.as_secs_f64()
        ));
    }
    if indexes_sql {
        say("applying manifests/base/postgres/indexes.sql");
        let started = Instant::now();
        psql_file(&psql, &url, &indexes_file)?;
        steps.push(Step {
            name: "`manifests/base/postgres/indexes.sql`".to_owned(),
            rows: None,
            bytes: None,
            secs: started.elapsed().as_secs_f64(),
            note: format!("{} index builds (`CONCURRENTLY`, as the file has them) and its `ANALYZE`", dropped.len()),
        });
    }
    say("VACUUM ANALYZE");
    let started = Instant::now();
    for (table, _) in TABLES {
        sql(&format!("VACUUM (ANALYZE) {table}"))?;
    }
    steps.push(Step {
        name: "`VACUUM (ANALYZE)` of the four tables".to_owned(),
        rows: None,
        bytes: None,
        secs: started.elapsed().as_secs_f64(),
        note: "visibility map, hint bits and planner statistics".to_owned(),
    });
    let indexes_after = list_indexes()?;
    let table_sizes = TABLES
        .iter()
        .map(|(table, _)| -> anyhow::Result<(String, u64)> {
            let bytes = sql(&format!("SELECT pg_total_relation_size('{table}')"))?;
            Ok(((*table).to_owned(), bytes.trim().parse().with_context(|| format!("size of {table}: {bytes}"))?))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    say("starting the functions and their sidecars");
    let started = Instant::now();
    let ids: Vec<String> = platform.apps().iter().map(|a| a.id.clone()).collect();
    for id in &ids {
        platform.start_app(id).await.with_context(|| format!("starting {id}"))?;
    }
    let functions_start_secs = started.elapsed().as_secs_f64();
    // Consumer groups join, the relay makes its first passes.
    tokio::time::sleep(Duration::from_secs(10)).await;
    say(&format!("PostgreSQL's CPU over {IDLE_SECS} s of an idle system"));
    let idle_postgres_cpu = match idle_cpu(platform).await {
        Ok(share) => Some(share),
        Err(error) => {
            say(&format!("no idle CPU figure: {error:#}"));
            None
        }
    };

    let mut figures = request_figures(config, spec, setup, now, say).await?;
    say("PostgreSQL's share of each figure (statement log on)");
    if let Err(error) = postgres_shares(platform, setup, &mut figures, Duration::from_secs(config.figure_secs)).await {
        say(&format!("no statement log figures: {error:#}"));
    }
    say("EXPLAIN ANALYZE of the relay's and KEDA's queries");
    let queries = explain_queries(platform)?;
    for q in &queries {
        match &q.runs {
            Ok(runs) => say(&format!(
                "{}: {:.1} ms ({})",
                q.name,
                median(&runs.iter().map(|r| r.execution_ms).collect::<Vec<_>>()),
                runs.first().map(|r| r.scans.join(", ")).unwrap_or_default()
            )),
            Err(error) => say(&format!("{}: failed: {error}", q.name)),
        }
    }
    Ok(ScaleRun {
        spec: *spec,
        started: now,
        commit: commit_line(),
        machine: crate::machine(),
        versions: crate::platform_versions(),
        postgres_settings,
        speeds: vec![],
        users_light: (0, 0),
        rows,
        indexes_after,
        indexes_sql,
        indexes_dropped: dropped,
        steps,
        table_sizes,
        functions_start_secs,
        idle_postgres_cpu,
        figures,
        queries,
        total_secs: 0.0,
    })
}

/// PostgreSQL's CPU (the postmaster and every backend, as `/proc` counts them) over
/// [`IDLE_SECS`] while nothing is asked of the system, in % of one core: what the background
/// queries (the outbox relay every 2 s) cost at this scale.
async fn idle_cpu(platform: &Platform) -> anyhow::Result<f64> {
    let pid = *platform.pids().get("postgres").context("no postgres process")?;
    let cpu = || -> anyhow::Result<f64> {
        let mut total = system_tests::procfs::cpu_seconds(pid, system_tests::procfs::Cpu::WithReapedChildren)?;
        for child in system_tests::host::children_of(pid)? {
            // A backend may exit between the listing and the read.
            total +=
                system_tests::procfs::cpu_seconds(child, system_tests::procfs::Cpu::WithReapedChildren).unwrap_or(0.0);
        }
        Ok(total)
    };
    let (before, started) = (cpu()?, Instant::now());
    tokio::time::sleep(Duration::from_secs(IDLE_SECS)).await;
    Ok((cpu()? - before).max(0.0) / started.elapsed().as_secs_f64() * 100.0)
}

/// The commit measured, and the commit of main in it.
pub(crate) fn commit_line() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(workspace_root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let head = git(&["log", "-1", "--format=`%h` (%s)"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    let main = git(&["merge-base", "HEAD", "main"])
        .and_then(|base| git(&["log", "-1", "--format=`%h` (%s)", &base]))
        .filter(|m| *m != head);
    let mut line = head;
    if dirty {
        line.push_str(" with uncommitted changes");
    }
    if let Some(main) = main {
        line.push_str(&format!(", which has main up to {main}"));
    }
    line
}

/// The bulk load: one `COPY` per table, rows generated as they are sent.
fn load(spec: &Spec, now: DateTime<Utc>, psql: &Path, url: &str) -> anyhow::Result<(Vec<Copied>, Rows)> {
    let mut rows = Rows::default();
    let mut copies = Vec::new();

    let mut copy = CopyIn::start(psql, url, "todo_tasks")?;
    data::for_each_user(spec, now, |_, tasks| {
        let started = Instant::now();
        let lines = tasks
            .iter()
            .map(|task| {
                let item = TaskStore::item(task)?;
                let updated = (task.version > 1).then_some(task.updated_at);
                Ok(copy::row("tasks", &item, task.created_at, updated))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        copy.generating += started.elapsed();
        for line in &lines {
            copy.write(line)?;
        }
        rows.tasks += tasks.len() as u64;
        Ok(())
    })?;
    copies.push(copy.finish()?);

    let mut copy = CopyIn::start(psql, url, "todo_audit")?;
    data::for_each_user(spec, now, |_, tasks| {
        let started = Instant::now();
        let mut lines = Vec::new();
        for entry in tasks.iter().flat_map(data::trail) {
            let item = SaveItem::new(entry.key(), &entry)?;
            lines.push(copy::row("audit", &item, entry.recorded_at, None));
        }
        copy.generating += started.elapsed();
        for line in &lines {
            copy.write(line)?;
        }
        rows.audit += lines.len() as u64;
        Ok(())
    })?;
    copies.push(copy.finish()?);

    let mut copy = CopyIn::start(psql, url, "todo_state")?;
    let mut deliveries = CopyIn::start(psql, url, "todo_deliveries")?;
    data::for_each_user(spec, now, |_, tasks| {
        let started = Instant::now();
        let mut lines = Vec::new();
        let mut delivery_lines = Vec::new();
        for task in &tasks {
            let Some(record) = data::reminder_record(task, now) else { continue };
            match record.status {
                ReminderStatus::Scheduled => rows.reminders_scheduled += 1,
                ReminderStatus::Fired => rows.reminders_fired += 1,
                _ => rows.reminders_cancelled += 1,
            }
            let item = SaveItem::new(reminder_key(task.id), &record)?;
            let updated = (record.status != ReminderStatus::Scheduled).then_some(record.updated_at);
            lines.push(copy::row("state", &item, task.created_at, updated));
            if let Some(delivery) = data::delivery_record(&record) {
                rows.deliveries += 1;
                rows.deliveries_retrying += u64::from(delivery.status == DeliveryStatus::Retrying);
                let item = SaveItem::new(delivery_key(&delivery.event_id, delivery.channel), &delivery)?;
                let done = delivery.delivered_at.unwrap_or(delivery.attempted_at);
                delivery_lines.push(copy::row("deliveries", &item, delivery.attempted_at, Some(done)));
            }
        }
        copy.generating += started.elapsed();
        for line in &lines {
            copy.write(line)?;
        }
        for line in &delivery_lines {
            deliveries.write(line)?;
        }
        Ok(())
    })?;
    copies.push(copy.finish()?);
    copies.push(deliveries.finish()?);
    Ok((copies, rows))
}

fn psql_file(psql: &Path, url: &str, file: &Path) -> anyhow::Result<()> {
    let output = std::process::Command::new(psql)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f"])
        .arg(file)
        .output()
        .context("running psql")?;
    if !output.status.success() {
        bail!("applying {}: {}", file.display(), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// A figure to measure: its name, its requests and their target.
struct Plan {
    name: String,
    /// Whose requests (the first one's, when they are several users').
    user: String,
    requests: Result<Vec<Request>, String>,
    target: Option<f64>,
}

async fn request_figures(
    config: &Config,
    spec: &Spec,
    setup: &Setup,
    now: DateTime<Utc>,
    say: &impl Fn(&str),
) -> anyhow::Result<Vec<Figure>> {
    let heavy = spec.user(0);
    let api = setup.api(&heavy)?;
    let client = Client::new(api.base(), api.token(), Duration::from_secs(120))?;
    let budget = Duration::from_secs(config.figure_secs);
    let mut plans = Vec::new();
    let list = |name: String, pairs: &[(&str, &str)], expect: Expect| Plan {
        name,
        user: heavy.clone(),
        requests: Ok(vec![Request::new(measure::list_path(pairs), expect)]),
        target: Some(LIST_FIRST_P95_MS),
    };
    for sort in SORTS {
        let pairs: Vec<(&str, &str)> = if sort == "-created" { vec![] } else { vec![("sort", sort)] };
        let label = if sort == "-created" { "`-created` (default)".to_owned() } else { format!("`{sort}`") };
        plans.push(list(format!("list page 1, sort {label}"), &pairs, Expect::Items(PAGE_SIZE)));
    }
    for sort in SORTS {
        let pairs: Vec<(&str, &str)> = if sort == "-created" { vec![] } else { vec![("sort", sort)] };
        let label = if sort == "-created" { "`-created` (default)".to_owned() } else { format!("`{sort}`") };
        say(&format!("following the cursor to page {DEEP_PAGE}, sort {sort}"));
        let path = measure::page_path(&client, &pairs, DEEP_PAGE, PAGE_SIZE, budget * 2).await;
        plans.push(Plan {
            name: format!("list page {DEEP_PAGE}, sort {label}"),
            user: heavy.clone(),
            requests: path.map(|path| vec![Request::new(path, Expect::Items(PAGE_SIZE))]).map_err(|e| format!("{e:#}")),
            target: Some(LIST_PAGE_50_P95_MS),
        });
    }
    plans.push(list(
        format!("list page 1, `q={}` (in ~1 task in 10)", data::Q_HIT),
        &[("q", data::Q_HIT)],
        Expect::SomeItems,
    ));
    plans.push(list(format!("list page 1, `q={}` (in none)", data::Q_MISS), &[("q", data::Q_MISS)], Expect::NoItems));
    // A search reads at most SEARCH_SCAN_LIMIT tasks per request and answers a short page with
    // a cursor: what reading it to its end costs, request by request.
    say("following the cursors of the search without hits to its end");
    let chain = measure::cursor_chain(&client, &[("q", data::Q_MISS)], budget * 2).await;
    plans.push(Plan {
        name: match &chain {
            Ok(paths) => format!("the same search, each of its {} pages to the end", paths.len()),
            Err(_) => "the same search, each of its pages to the end".to_owned(),
        },
        user: heavy.clone(),
        requests: chain
            .map(|paths| paths.into_iter().map(|path| Request::new(path, Expect::NoItems)).collect())
            .map_err(|e| format!("{e:#}")),
        target: Some(LIST_FIRST_P95_MS),
    });
    plans.push(list(format!("list page 1, `tag={}`", data::TAG), &[("tag", data::TAG)], Expect::SomeItems));
    let (after, before) = (
        (now + chrono::Duration::days(30)).to_rfc3339_opts(SecondsFormat::Secs, true),
        (now + chrono::Duration::days(60)).to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    plans.push(list(
        "list page 1, `due_after` + `due_before` (a 30-day window)".to_owned(),
        &[("due_after", &after), ("due_before", &before)],
        Expect::SomeItems,
    ));
    // GET: the heavy user's tasks in turn, a few hundred of them.
    let tasks = data::user_tasks(spec, now, 0, spec.heavy_tasks);
    let step = (tasks.len() / config.requests.max(1)).max(1);
    let gets: Vec<Request> =
        tasks.iter().step_by(step).map(|t| Request::new(format!("/v1/tasks/{}", t.id), Expect::Task)).collect();
    plans.push(Plan {
        user: heavy.clone(),
        name: format!("`GET /v1/tasks/{{id}}` ({} different tasks in turn)", gets.len()),
        requests: Ok(gets),
        target: Some(GET_P95_MS),
    });
    let trail = data::long_trail_task(spec, now).context("no task with the long trail")?;
    plans.push(Plan {
        name: format!("audit trail of a task with {} entries", spec.trail),
        user: heavy.clone(),
        requests: Ok(vec![Request::new(
            format!("/v1/tasks/{}/audit", trail.id),
            Expect::Items(usize::try_from(spec.trail)?),
        )]),
        target: Some(AUDIT_P95_MS),
    });
    // The same first page of several users in turn: fewer of the pages each reads are the ones
    // the request before it read.
    let as_users = |users: std::ops::Range<u64>, expect: Expect| -> anyhow::Result<Vec<Request>> {
        users
            .map(|n| {
                let api = setup.api(&spec.user(n))?;
                Ok(Request { path: measure::list_path(&[]), expect, token: Some(api.token().to_owned()) })
            })
            .collect()
    };
    plans.push(Plan {
        name: format!("list page 1, the {} users with {} tasks in turn", spec.heavy_users, thousands(spec.heavy_tasks)),
        user: heavy.clone(),
        requests: Ok(as_users(0..spec.heavy_users, Expect::Items(PAGE_SIZE))?),
        target: Some(LIST_FIRST_P95_MS),
    });
    let typical = spec.heavy_users..spec.users.min(spec.heavy_users + config.requests as u64);
    plans.push(Plan {
        name: format!(
            "list page 1, {} users with a typical number of tasks (about {}) in turn",
            typical.end - typical.start,
            (spec.tasks - spec.heavy_users * spec.heavy_tasks) / (spec.users - spec.heavy_users).max(1)
        ),
        user: spec.user(typical.start),
        requests: Ok(as_users(typical, Expect::SomeItems)?),
        target: None,
    });

    let mut figures = Vec::new();
    for plan in plans {
        let request = plan.requests.as_ref().ok().and_then(|r| r.first()).map(|r| r.path.clone()).unwrap_or_default();
        let samples = match &plan.requests {
            Ok(requests) => {
                measure::sample(&client, requests, config.requests, budget).await.map_err(|e| format!("{e:#}"))
            }
            Err(error) => Err(error.clone()),
        };
        match &samples {
            Ok(s) => say(&format!(
                "{}: {} samples, p50 {:.1} ms, p95 {:.1} ms",
                plan.name,
                s.values_ms.len(),
                crate::stats::percentile(&s.values_ms, 50.0).unwrap_or(f64::NAN),
                crate::stats::percentile(&s.values_ms, 95.0).unwrap_or(f64::NAN)
            )),
            Err(error) => say(&format!("{}: failed: {error}", plan.name)),
        }
        figures.push(Figure {
            name: plan.name,
            user: plan.user,
            request,
            target_p95_ms: plan.target,
            samples,
            in_postgres: None,
        });
    }
    Ok(figures)
}

/// PostgreSQL's share of one request of each figure: its statement log on
/// (`log_min_duration_statement = 0`), a few requests of each figure, the log read between
/// them, the log off again. The relay's own statements (`outbox_record`) are left out.
async fn postgres_shares(
    platform: &Platform,
    setup: &Setup,
    figures: &mut [Figure],
    budget: Duration,
) -> anyhow::Result<()> {
    let sql = |sql: &str| -> anyhow::Result<String> {
        platform.psql("postgres", sql)?.map_err(|e| anyhow::anyhow!("{sql}: {e}"))
    };
    let log = platform.logs().join("postgres.log");
    sql("ALTER SYSTEM SET log_min_duration_statement = 0")?;
    sql("SELECT pg_reload_conf()")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcome = async {
        for figure in figures.iter_mut() {
            if figure.samples.is_err() || figure.request.is_empty() {
                continue;
            }
            let api = setup.api(&figure.user)?;
            let client = Client::new(api.base(), api.token(), Duration::from_secs(120))?;
            let mut shares = Vec::new();
            let started = Instant::now();
            for _ in 0..LOGGED_REQUESTS {
                if !shares.is_empty() && started.elapsed() > budget / 2 {
                    break;
                }
                let from = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
                client.get(&figure.request).await?;
                let text = read_from(&log, from)?;
                shares.push(render::statements(&text));
            }
            shares.sort_by(|a, b| a.ms.total_cmp(&b.ms));
            figure.in_postgres = shares.get(shares.len() / 2).cloned();
        }
        anyhow::Ok(())
    }
    .await;
    sql("ALTER SYSTEM RESET log_min_duration_statement")?;
    sql("SELECT pg_reload_conf()")?;
    outcome
}

fn read_from(path: &Path, offset: u64) -> anyhow::Result<String> {
    use std::io::{Read as _, Seek as _};
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    file.seek(std::io::SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The outbox relay's query as daprd sends it for task-api's relay (components-contrib v1.18.3,
/// `common/component/postgresql/v1/postgresql_query.go`: `EQ` becomes `value->>'f'=$1`, the sort
/// `value->>'f' ASC`, the page a `LIMIT`; `dapr_fn::outbox`'s relay query with the default batch).
fn relay_sql() -> String {
    let batch = dapr_fn::outbox::OutboxConfig::default().outbox_relay_batch;
    format!(
        "SELECT key, value, xmin as etag FROM todo_tasks WHERE value->>'{}'='{}' ORDER BY value->>'written_at' ASC LIMIT {batch}",
        dapr_fn::outbox::MARKER_FIELD,
        dapr_fn::outbox::MARKER_VALUE
    )
}

/// The `query` of the `postgresql` trigger of `keda/<file>`.
fn keda_sql(file: &str) -> anyhow::Result<String> {
    let path = workspace_root().join("keda").join(file);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let object: serde_norway::Value =
        serde_norway::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    object["spec"]["triggers"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|t| t["type"].as_str() == Some("postgresql"))
        .and_then(|t| t["metadata"]["query"].as_str())
        .map(|q| q.trim().to_owned())
        .with_context(|| format!("{} has no postgresql trigger with a query", path.display()))
}

fn explain_queries(platform: &Platform) -> anyhow::Result<Vec<Query>> {
    let mut queries = vec![Query {
        name: "outbox relay (task-api, every 2 s ± 25 %)".to_owned(),
        sql: relay_sql(),
        role: "postgres".to_owned(),
        result: None,
        runs: Ok(vec![]),
    }];
    for (file, name) in [
        ("fire-reminder.yaml", "KEDA trigger `reminders-due` (fire-reminder)"),
        ("notifier.yaml", "KEDA trigger `deliveries-due` (notifier)"),
    ] {
        queries.push(Query {
            name: name.to_owned(),
            sql: keda_sql(file)?,
            role: "keda_reminders".to_owned(),
            result: None,
            runs: Ok(vec![]),
        });
    }
    for query in &mut queries {
        let run = |sql: &str| -> Result<String, String> {
            platform.psql(&query.role, sql).map_err(|e| format!("{e:#}")).and_then(|r| r)
        };
        if query.role == "keda_reminders" {
            query.result = run(&query.sql).ok().map(|count| format!("count {}", count.trim()));
        }
        let explain = explain::statement(&query.sql);
        query.runs = (0..=EXPLAIN_RUNS)
            .map(|_| run(&explain).and_then(|out| explain::parse(&out).map_err(|e| format!("{e:#}"))))
            .skip(1)
            .collect();
    }
    Ok(queries)
}

fn median(values: &[f64]) -> f64 {
    crate::stats::percentile(values, 50.0).unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_indexes_of_indexes_sql_are_read_by_name() {
        let sql = "-- CREATE INDEX CONCURRENTLY IF NOT EXISTS commented\n\
                   CREATE INDEX CONCURRENTLY IF NOT EXISTS todo_tasks_owner_created\n    ON public.todo_tasks (x);\n\
                   CREATE STATISTICS IF NOT EXISTS public.s ON (a), (b) FROM t;\n\
                   CREATE INDEX CONCURRENTLY IF NOT EXISTS todo_audit_task ON public.todo_audit ((value->>'task_id'));\n";
        assert_eq!(created_indexes(sql), ["todo_tasks_owner_created", "todo_audit_task"]);
        let real =
            std::fs::read_to_string(workspace_root().join("manifests/base/postgres/indexes.sql")).unwrap_or_default();
        if !real.is_empty() {
            assert!(created_indexes(&real).iter().any(|i| i == "todo_tasks_owner_created"));
        }
    }

    #[test]
    fn the_relay_query_is_daprds() {
        assert_eq!(
            relay_sql(),
            "SELECT key, value, xmin as etag FROM todo_tasks WHERE value->>'outbox_record'='v1' ORDER BY value->>'written_at' ASC LIMIT 100"
        );
        assert!(keda_sql("fire-reminder.yaml").is_ok_and(|q| q.contains("todo_state")));
        assert!(keda_sql("notifier.yaml").is_ok_and(|q| q.contains("todo_deliveries")));
    }
}
