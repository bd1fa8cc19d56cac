//! `make bench`: measures todo-functions on this machine and writes `BENCHMARKS.md` and
//! `BENCHMARKS.svg` (next to it). Every figure is held against its target, and a missed target
//! is reported as missed: the benchmark is never tuned to the target.
//!
//! The system figures run on two backends in one run, each on its own fresh system per figure
//! and run, one system at a time: **devhost** (the embedded host, in this process, as every
//! function's sidecar) and the **platform** (`make platform`: a real daprd beside each function,
//! the Dapr Scheduler, one Kafka broker, PostgreSQL). The platform is the reference (devhost is
//! our reading of Dapr); each backend is held to its own targets: devhost to the ones it always
//! had, the platform to issue 12's. Every figure in the report names its backend.
//!
//! # Layout
//!
//! - [`process`]: per-function start time, idle memory and binary size (release binaries, no
//!   sidecar: the same on either backend).
//! - [`load`]: system figures on a private system of either [`load::Backend`]: sustained
//!   creations (with memory of every process, on the platform each function's daprd and the
//!   platform's own), create-to-audit latency, reminder lateness, list latency, and MCP tool
//!   calls (`list_tasks`, `add_task`) through Streamable HTTP at task-api's `/mcp`.
//! - [`wake`]: scale from zero with KEDA, on the platform only: first message → first
//!   processed from a fully idle system, with the real KEDA operator on a real kube-apiserver
//!   (`system_tests::keda`, as `make test-keda` runs it), repeated from idle.
//! - [`stats`]: percentiles, median and spread.
//! - [`report`]: the Markdown tables and the SVG plot.
//! - [`scale`]: `bench scale` (`make bench-scale`), apart from the rest: the data-scale figures
//!   (1,000,000 tasks bulk-loaded into the real platform's PostgreSQL, then list, `GET` and
//!   audit trail latencies and the relay's and KEDA's queries), written to the `## 1M tasks`
//!   section of `BENCHMARKS.md`, which `make bench` keeps as it is.
//!
//! Everything runs on loopback and is bounded in time and count. A run of a figure that fails
//! (a system that does not start, a figure that cannot complete) is reported with its error, the
//! other figures still run, and the bench exits non-zero after writing the report.
//! Configuration (environment): `BENCH_BACKENDS` (comma-separated, default `devhost,platform`),
//! `BENCH_RUNS` (repeats of each system figure per backend, default 3), `BENCH_STARTS` (starts
//! per function, 20), `BENCH_RATE` (creations per second offered to devhost, 1000: its target),
//! `BENCH_PLATFORM_RATE` (offered to the platform, 500: its target), `BENCH_LOAD_SECS` (60),
//! `BENCH_LATENCY_RATE` (200), `BENCH_LATENCY_SECS` (20), `BENCH_REMINDERS` (1000),
//! `BENCH_LIST_TASKS` (10000), `BENCH_MCP_TASKS` (the MCP user's tasks, 1000: a heavy user of a
//! todo list, where the list figure's 10000 is a stress of the list), `BENCH_MCP_CALLS` (timed
//! calls of each tool, 500), `BENCH_WAKES` (wake-ups from zero with KEDA, on one platform, 10),
//! `BENCH_OUT` (`BENCHMARKS.md`), `BENCH_ONLY` (a comma-separated subset of
//! `process,throughput,audit,reminders,list,mcp,wake`; the others show as not measured).

/// The allocator devhost's own binary runs with (devhost/src/main.rs), since devhost runs in
/// this process: its figures should be the ones `make run` gets.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod live;
mod load;
mod process;
mod report;
mod scale;
mod stats;
mod wake;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context as _;
use load::{Backend, Latencies};
use serde::Deserialize;
use stats::{Spread, percentile};
use system_tests::workspace_root;

pub const FUNCTIONS: [&str; 6] =
    ["task-api", "create-task", "on-task-completed", "fire-reminder", "audit-writer", "notifier"];

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Config {
    /// The backends of the system figures (comma-separated: devhost, platform).
    backends: String,
    runs: usize,
    starts: usize,
    rate: u32,
    platform_rate: u32,
    load_secs: u64,
    latency_rate: u32,
    latency_secs: u64,
    reminders: u64,
    list_tasks: u64,
    /// Tasks of the user whose agent makes the MCP tool calls.
    mcp_tasks: u64,
    /// Timed calls of each MCP tool, sequential, from one session.
    mcp_calls: usize,
    /// Wake-ups from zero with KEDA (platform only), each from a fully idle system.
    wakes: usize,
    out: String,
    /// Only these figures (comma-separated: process, throughput, audit, reminders, list, mcp,
    /// wake).
    only: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            backends: "devhost,platform".to_owned(),
            runs: 3,
            starts: 20,
            rate: 1000,
            platform_rate: 500,
            load_secs: 60,
            latency_rate: 200,
            latency_secs: 20,
            reminders: 1000,
            list_tasks: 10_000,
            mcp_tasks: 1000,
            mcp_calls: 500,
            wakes: 10,
            out: "BENCHMARKS.md".to_owned(),
            only: None,
        }
    }
}

impl Config {
    /// The creations per second offered to `backend` in the throughput figure.
    fn rate(&self, backend: Backend) -> u32 {
        match backend {
            Backend::Devhost => self.rate,
            Backend::Platform => self.platform_rate,
        }
    }
}

// Per-process targets on a 2-core machine (issue "Measured, not assumed"), either backend: the
// process figures run without a sidecar.
const START_MS: f64 = 10.0;
const IDLE_MIB: f64 = 8.0;
const LOADED_MIB: f64 = 16.0;
const SIZE_BYTES: f64 = 8_000_000.0;

/// A backend's targets for the system figures.
#[derive(Debug, Clone, Copy)]
struct Targets {
    /// Creations per second accepted, sustained for the whole load.
    rate_per_sec: f64,
    /// Backlog drained within this after the load stops.
    drain_secs: f64,
    audit_p99_ms: f64,
    reminder_p99_ms: f64,
    /// Issue 16: a reminder's due time to its webhook received, on both backends.
    webhook_p99_ms: f64,
    list_p95_ms: f64,
    /// MCP tool calls: issue 22's targets for devhost; issue 12 sets none for the platform.
    mcp_list_p95_ms: Option<f64>,
    mcp_add_p95_ms: Option<f64>,
}

impl Targets {
    /// devhost: its targets from issue "Measured, not assumed"; the platform: issue 12's.
    fn of(backend: Backend) -> Self {
        match backend {
            Backend::Devhost => Self {
                rate_per_sec: 1000.0,
                drain_secs: 2.0,
                audit_p99_ms: 100.0,
                reminder_p99_ms: 1000.0,
                webhook_p99_ms: 1000.0,
                list_p95_ms: 50.0,
                mcp_list_p95_ms: Some(20.0),
                mcp_add_p95_ms: Some(30.0),
            },
            Backend::Platform => Self {
                rate_per_sec: 500.0,
                drain_secs: 5.0,
                audit_p99_ms: 250.0,
                reminder_p99_ms: 1000.0,
                webhook_p99_ms: 1000.0,
                list_p95_ms: 50.0,
                mcp_list_p95_ms: None,
                mcp_add_p95_ms: None,
            },
        }
    }
}

/// A latency figure's runs on a backend.
type Pick = fn(&Figures) -> &[Run<Latencies>];
/// A latency figure's target on a backend (ms), if it has one.
type Target = fn(Targets) -> Option<f64>;

/// One run of a figure: what it measured, or why it could not.
pub type Run<T> = Result<T, String>;

/// A backend's system figures, run by run.
struct Figures {
    backend: Backend,
    throughputs: Vec<Run<load::Throughput>>,
    audit: Vec<Run<Latencies>>,
    reminders: Vec<Run<Latencies>>,
    /// Due → webhook received, from the same runs as `reminders` (a failed run fails both).
    webhooks: Vec<Run<Latencies>>,
    lists: Vec<Run<Latencies>>,
    /// The MCP figure's runs, split by tool: each run measures both tools on one system, so a
    /// run that failed is an error in both.
    mcp_list: Vec<Run<Latencies>>,
    mcp_add: Vec<Run<Latencies>>,
}

impl Figures {
    /// How many runs of any figure failed.
    fn failed(&self) -> usize {
        fn count<T>(runs: &[Run<T>]) -> usize {
            runs.iter().filter(|r| r.is_err()).count()
        }
        // `mcp_add` holds the same runs' errors as `mcp_list`.
        count(&self.throughputs)
            + count(&self.audit)
            + count(&self.reminders)
            + count(&self.lists)
            + count(&self.mcp_list)
    }
}

/// Keeps a run's error for the report (and says it now), instead of ending the bench: the
/// other figures, and the other backend, are still worth measuring.
fn record<T>(say: &impl Fn(&str), result: anyhow::Result<T>) -> Run<T> {
    result.map_err(|error| {
        let error = format!("{error:#}");
        say(&format!("failed: {error}"));
        error
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `bench scale` (`make bench-scale`): the data-scale figures, their own section.
    if std::env::args().nth(1).as_deref() == Some("scale") {
        return scale::run().await;
    }
    // `bench live` (`make bench-live`): live streams under load, their own section.
    if std::env::args().nth(1).as_deref() == Some("live") {
        return live::run().await;
    }
    let config: Config = envy::prefixed("BENCH_").from_env().context("BENCH_* settings")?;
    let backends = Backend::parse_list(&config.backends).context("BENCH_BACKENDS")?;
    // Quiet by default; `RUST_LOG=warn` shows what devhost (in this process) reports, such as
    // deliveries retried.
    if std::env::var_os("RUST_LOG").is_some() {
        dapr_fn::runtime::init_tracing(dapr_fn::runtime::LogFormat::Text);
    }
    let say = |s: &str| eprintln!("bench: {s}");

    let want = |figure: &str| config.only.as_deref().is_none_or(|only| only.split(',').any(|f| f.trim() == figure));
    let mut processes = Vec::new();
    if want("process") {
        say("process figures (release binaries)");
        for function in FUNCTIONS {
            processes.push(process::measure(function, config.starts, config.starts.min(5))?);
        }
    }

    let mut speeds = vec![("before the figures".to_owned(), process::calibration_ms())];
    // KEDA scales the platform's functions only: devhost has none.
    let wake_wanted = want("wake") && config.wakes > 0 && backends.contains(&Backend::Platform);
    let mut figures = Vec::new();
    for backend in backends {
        let name = backend.name();
        let mut f = Figures {
            backend,
            throughputs: vec![],
            audit: vec![],
            reminders: vec![],
            webhooks: vec![],
            lists: vec![],
            mcp_list: vec![],
            mcp_add: vec![],
        };
        for run in 1..=config.runs {
            if want("throughput") {
                let rate = config.rate(backend);
                say(&format!("{name} run {run}/{}: {rate} creations/s for {} s", config.runs, config.load_secs));
                let result = record(&say, load::throughput(backend, rate, config.load_secs).await);
                if let Ok(t) = &result {
                    let timeline: Vec<String> = t.timeline.iter().map(|(_, backlog)| backlog.to_string()).collect();
                    say(&format!("backlog each second: {}", timeline.join(" ")));
                }
                f.throughputs.push(result);
            }
            if want("audit") {
                say(&format!("{name} run {run}: create → audit latency at {}/s", config.latency_rate));
                f.audit
                    .push(record(&say, load::audit_latency(backend, config.latency_rate, config.latency_secs).await));
            }
            if want("reminders") {
                say(&format!("{name} run {run}: {} reminders due in one minute", config.reminders));
                let run = record(&say, load::reminder_lateness(backend, config.reminders).await);
                f.reminders.push(run.clone().map(|r| r.lateness));
                f.webhooks.push(run.map(|r| r.webhook));
            }
            if want("list") {
                say(&format!("{name} run {run}: list over {} tasks", config.list_tasks));
                f.lists.push(record(&say, load::list_latency(backend, config.list_tasks, 200).await));
            }
            if want("mcp") {
                say(&format!(
                    "{name} run {run}: {} MCP calls of list_tasks and of add_task, {} tasks",
                    config.mcp_calls, config.mcp_tasks
                ));
                let result = record(&say, load::mcp_latency(backend, config.mcp_tasks, config.mcp_calls).await);
                f.mcp_list.push(result.clone().map(|m| m.list_tasks));
                f.mcp_add.push(result.map(|m| m.add_task));
            }
        }
        speeds.push((format!("after {}", backend.name()), process::calibration_ms()));
        figures.push(f);
    }
    let wakes = if wake_wanted {
        say(&format!("platform: {} wake-ups from zero with KEDA (release binaries)", config.wakes));
        let wakes = record(&say, wake::measure(config.wakes, &say).await);
        speeds.push(("after wake".to_owned(), process::calibration_ms()));
        Some(wakes)
    } else {
        None
    };

    let mut markdown = render(&config, &processes, &figures, wakes.as_ref(), &speeds)?;
    let out = workspace_root().join(&config.out);
    // `make bench-scale` and `make bench-live` write their own sections: kept as they are.
    let previous = std::fs::read_to_string(&out).unwrap_or_default();
    for heading in [scale::HEADING, live::HEADING] {
        if let Some(kept) = report::section(&previous, heading) {
            markdown = report::replace_section(&markdown, heading, kept);
        }
    }
    std::fs::write(&out, markdown).with_context(|| format!("writing {}", out.display()))?;
    // Each latency figure's bars side by side for the backends, so they compare at a glance.
    let latency_figures: [(&str, Pick, Target); 6] = [
        ("create → audit", |f| f.audit.as_slice(), |t| Some(t.audit_p99_ms)),
        ("reminder lateness", |f| f.reminders.as_slice(), |t| Some(t.reminder_p99_ms)),
        ("due → webhook", |f| f.webhooks.as_slice(), |t| Some(t.webhook_p99_ms)),
        ("list", |f| f.lists.as_slice(), |t| Some(t.list_p95_ms)),
        ("MCP list_tasks", |f| f.mcp_list.as_slice(), |t| t.mcp_list_p95_ms),
        ("MCP add_task", |f| f.mcp_add.as_slice(), |t| t.mcp_add_p95_ms),
    ];
    let mut bars = Vec::new();
    for (label, pick, target) in latency_figures {
        // The plot shows latencies relative to their target: a figure without one is in the
        // report's tables only.
        for (f, target_ms) in
            figures.iter().filter(|f| !pick(f).is_empty()).filter_map(|f| Some((f, target(Targets::of(f.backend))?)))
        {
            bars.push(report::LatencyBars {
                label: label.into(),
                backend: f.backend.name().to_owned(),
                target_ms,
                values_ms: pick(f).iter().flatten().flat_map(|l| l.values_ms.iter().copied()).collect(),
            });
        }
    }
    let timelines: Vec<(String, Vec<(u64, i64)>)> = figures
        .iter()
        .filter_map(|f| Some((f.backend.name().to_owned(), f.throughputs.iter().flatten().next()?.timeline.clone())))
        .collect();
    let plot = out.with_extension("svg");
    std::fs::write(&plot, report::plot(&bars, &timelines)).with_context(|| format!("writing {}", plot.display()))?;
    say(&format!("wrote {} and {}", out.display(), plot.display()));
    let failed_wakes = match &wakes {
        Some(Ok(w)) => w.runs.iter().filter(|r| r.is_err()).count(),
        Some(Err(_)) => 1,
        None => 0,
    };
    let failed: usize = figures.iter().map(Figures::failed).sum::<usize>() + failed_wakes;
    if failed > 0 {
        anyhow::bail!("{failed} run(s) of a system figure failed: their errors are in {}", out.display());
    }
    Ok(())
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned());
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|m| m.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!(
        "{}, {cores} cores, {mem_gib:.0} GiB, {} {}",
        model.unwrap_or_else(|| "unknown CPU".into()),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// The pinned versions of the platform (`manifests/platform/versions.env`) and the PostgreSQL
/// that `make platform` found, for the report's header; what cannot be read is left out.
fn platform_versions() -> String {
    let vars = pinned_versions();
    let mut parts = Vec::new();
    if let Some(v) = vars.get("DAPR_VERSION") {
        parts.push(format!("Dapr {v}"));
    }
    if let Some(v) = vars.get("KAFKA_VERSION") {
        parts.push(format!("Kafka {v}"));
    }
    let postgres = system_tests::platform::Paths::load().ok().and_then(|paths| {
        let output = std::process::Command::new(paths.postgres_bin.join("postgres")).arg("--version").output().ok()?;
        // `postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)`
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.split_whitespace().nth(2).map(str::to_owned)
    });
    if let Some(v) = postgres {
        parts.push(format!("PostgreSQL {v}"));
    }
    parts.join(", ")
}

/// The pinned versions of `manifests/platform/versions.env` (`DAPR_VERSION`, `KEDA_VERSION`,
/// ...); empty if it cannot be read.
fn pinned_versions() -> BTreeMap<String, String> {
    let env = std::fs::read_to_string(workspace_root().join("manifests/platform/versions.env")).unwrap_or_default();
    env.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect()
}

/// A table cell from an error: one line, no column separators, bounded.
fn error_cell(error: &str) -> String {
    let line: String = error.replace('|', "/").replace(['\n', '\r'], " ");
    let mut cell: String = line.chars().take(300).collect();
    if line.chars().count() > 300 {
        cell.push('…');
    }
    format!("failed: {cell}")
}

/// `k of n runs failed` when some did, for a verdict line.
fn failures_note<T>(runs: &[Run<T>]) -> String {
    let failed = runs.iter().filter(|r| r.is_err()).count();
    if failed == 0 { String::new() } else { format!(" ({failed} of {} runs failed)", runs.len()) }
}

fn render(
    config: &Config,
    processes: &[process::ProcessFigures],
    figures: &[Figures],
    wakes: Option<&Run<wake::Wakes>>,
    speeds: &[(String, f64)],
) -> anyhow::Result<String> {
    let measured = |backend: Backend| figures.iter().any(|f| f.backend == backend);
    let mut out = String::new();
    writeln!(out, "# Benchmarks\n")?;
    writeln!(
        out,
        "Written by `make bench` on {} at commit `{}`, on {}. Release binaries, loopback only, everything on \
         this one machine. Cells are the median with the range (min–max) over repeated measurements: {} \
         starts per function, {} run(s) of each system figure on each backend. A missed target is reported \
         as missed; a run that could not be measured says why.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        commit(),
        machine(),
        config.starts,
        config.runs
    )?;
    let speed_cells: Vec<String> = speeds.iter().map(|(when, ms)| format!("{ms:.0} ms {when}")).collect();
    writeln!(
        out,
        "Machine speed: a fixed single-thread loop took {} (lower is faster). This machine shares its host: \
         the same loop has varied by a third within one session, and every figure below moves with it, so \
         compare figures of one report, and prefer CPU per creation (below the throughput table) to rates \
         when comparing reports.\n",
        speed_cells.join(", ")
    )?;
    writeln!(
        out,
        "The system figures run on two backends, each figure on a fresh system of its own, one system at a \
         time, and every row names its backend:\n"
    )?;
    let status = |backend: Backend| if measured(backend) { "" } else { " *Not measured in this run.*" };
    writeln!(
        out,
        "- **devhost**: the embedded host, in the bench's own process, as the sidecar of every function. \
         Targets: its own, as before.{}",
        status(Backend::Devhost)
    )?;
    writeln!(
        out,
        "- **platform**: the real platform of `make platform`{}: each function beside its own daprd, the \
         Dapr Scheduler, one Kafka broker (KRaft) and PostgreSQL, as plain processes. It is the reference; \
         its targets are issue 12's.{}\n",
        Some(platform_versions()).filter(|v| !v.is_empty()).map(|v| format!(" ({v})")).unwrap_or_default(),
        status(Backend::Platform)
    )?;
    writeln!(
        out,
        "Before a figure starts, each system gets one creation and waits until it is audited: on the \
         platform a consumer group joins Kafka only once its daprd is up, and the first messages would \
         otherwise measure the joins. What a figure reads besides task-api (backlog, audit entries, reminder \
         records) is read beside the functions, never through them: on devhost from its SQLite file, on the \
         platform from the broker's committed offsets and from PostgreSQL (`psql`).\n"
    )?;
    let plot = std::path::Path::new(&config.out).with_extension("svg");
    writeln!(out, "![latency percentiles and throughput]({})\n", plot.display())?;

    writeln!(out, "## Start to first 200 on /healthz (ms, target ≤ {START_MS} median)\n")?;
    writeln!(
        out,
        "Each function alone, nothing on its sidecar port (how a pod starts beside its sidecar): the same \
         on either backend.\n"
    )?;
    let rows: Vec<Vec<String>> = processes
        .iter()
        .map(|p| {
            let s = Spread::of(&p.startup_ms);
            vec![p.function.clone(), report::spread_cell(s, 2), report::verdict(s.map(|s| s.median <= START_MS)).into()]
        })
        .collect();
    report::table(&mut out, &["function", "start (ms)", "target"], &rows);

    render_memory(&mut out, config, processes, figures)?;

    writeln!(out, "## Stripped release binary (MB, target ≤ 8)\n")?;
    let rows: Vec<Vec<String>> = processes
        .iter()
        .map(|p| {
            let size = p.size_bytes as f64;
            vec![p.function.clone(), format!("{:.2}", size / 1e6), report::verdict(Some(size <= SIZE_BYTES)).into()]
        })
        .collect();
    report::table(&mut out, &["function", "size (MB)", "target"], &rows);

    render_throughput(&mut out, config, figures)?;

    let targets_of = |field: Target| targets_of(figures, field);
    writeln!(
        out,
        "## Create request published → audit entry written, at {}/s for {} s (ms; target p99: {})\n",
        config.latency_rate,
        config.latency_secs,
        targets_of(|t| Some(t.audit_p99_ms))
    )?;
    writeln!(
        out,
        "From the publish of the `todo.task.create` request to the `recorded_at` audit-writer gives the \
         entry of the task's `created` event. Not audited: accepted creations without their entry once the \
         backlog drained.\n"
    )?;
    latency_section(&mut out, figures, |f| f.audit.as_slice(), Some("not audited"), 99.0, |t| Some(t.audit_p99_ms));

    writeln!(
        out,
        "## Reminder lateness, {} reminders due in the same minute (ms; target p99: {})\n",
        config.reminders,
        targets_of(|t| Some(t.reminder_p99_ms))
    )?;
    writeln!(
        out,
        "As fire-reminder records it: from the reminder's time to the moment it fired. Not fired: reminders \
         that had not fired a minute after their minute.\n"
    )?;
    latency_section(
        &mut out,
        figures,
        |f| f.reminders.as_slice(),
        Some("not fired"),
        99.0,
        |t| Some(t.reminder_p99_ms),
    );

    writeln!(
        out,
        "## Reminder due → webhook received, the same reminders (ms; target p99: {})\n",
        targets_of(|t| Some(t.webhook_p99_ms))
    )?;
    writeln!(
        out,
        "From each reminder's due time to its signed webhook request at a receiver on loopback (fire-reminder's \
         job, `reminders`, the notifier's claim, the call and its record). Not received: fired reminders whose \
         webhook had not arrived 15 s after the last fired.\n"
    )?;
    latency_section(
        &mut out,
        figures,
        |f| f.webhooks.as_slice(),
        Some("not received"),
        99.0,
        |t| Some(t.webhook_p99_ms),
    );

    writeln!(
        out,
        "## task-api list with search + filter + sort over {} tasks of one user (ms; target p95: {})\n",
        config.list_tasks,
        targets_of(|t| Some(t.list_p95_ms))
    )?;
    writeln!(out, "`GET /v1/tasks?q=report&status=open&priority=high&tag=work&sort=-due&limit=50`, sequential.\n")?;
    latency_section(&mut out, figures, |f| f.lists.as_slice(), None, 95.0, |t| Some(t.list_p95_ms));
    render_mcp(&mut out, config, figures)?;
    render_wake(&mut out, config, wakes)?;
    // Figures of a design this tree no longer has, kept beside the current ones they led to.
    out.push_str(BEFORE_PROJECT_OUTBOX);
    Ok(out)
}

/// Each backend's target of a latency figure, for its heading: `devhost ≤ 50, platform none`.
fn targets_of(figures: &[Figures], field: Target) -> String {
    figures
        .iter()
        .map(|f| match field(Targets::of(f.backend)) {
            Some(target) => format!("{} ≤ {target}", f.backend.name()),
            None => format!("{} none", f.backend.name()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// MCP tool calls: a table per tool, each backend held to its target for that tool (devhost:
/// issue 22's; the platform: none, issue 12 sets none).
fn render_mcp(out: &mut String, config: &Config, figures: &[Figures]) -> anyhow::Result<()> {
    writeln!(out, "## MCP tool calls (ms)\n")?;
    writeln!(
        out,
        "An agent's calls through Streamable HTTP at task-api's `/mcp`, as a client speaking the protocol \
         itself over HTTP/1.1 (`system_tests::mcp`): one session (`initialize` at protocol {}, \
         `Mcp-Session-Id`, a bearer JWT), a user with {} tasks, {} sequential calls of each tool after {} \
         untimed ones, `list_tasks` first. Each call is timed from its request sent to its JSON-RPC result \
         read (rmcp answers as SSE); a tool error fails the run, and every `add_task` must have made its task, \
         counted through REST afterwards. `list_tasks` asks what the list figure above asks \
         (`q=report`, `open`, `high`, `work`, `-due`, 50) over fewer tasks (`BENCH_MCP_TASKS`; the list \
         figure's are a stress of the list, not one user's todo list); `add_task` is a task with a priority, \
         a tag and a fresh `request_id` (its idempotency key).\n",
        system_tests::mcp::PROTOCOL,
        config.mcp_tasks,
        config.mcp_calls,
        load::WARM_UP_REQUESTS
    )?;
    let tools: [(&str, Pick, Target); 2] = [
        ("list_tasks", |f| f.mcp_list.as_slice(), |t| t.mcp_list_p95_ms),
        ("add_task", |f| f.mcp_add.as_slice(), |t| t.mcp_add_p95_ms),
    ];
    for (tool, pick, target) in tools {
        writeln!(out, "### `{tool}` (target p95: {})\n", targets_of(figures, target))?;
        latency_section(out, figures, pick, None, 95.0, target);
    }
    Ok(())
}

/// Scale from zero with KEDA (platform only, no target): the median and range over the wake-ups
/// of each step, and each wake-up that failed with its error.
fn render_wake(out: &mut String, config: &Config, wakes: Option<&Run<wake::Wakes>>) -> anyhow::Result<()> {
    writeln!(out, "## Scale from zero with KEDA, first message → first processed (s; platform only, no target)\n")?;
    let Some(wakes) = wakes else {
        writeln!(out, "Not measured in this run (`BENCH_ONLY=wake`, with the platform among `BENCH_BACKENDS`).\n")?;
        return Ok(());
    };
    let keda = pinned_versions().get("KEDA_VERSION").map(|v| format!(" {v}")).unwrap_or_default();
    let applied = wakes.as_ref().ok();
    let secs = |v: Option<i64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
    let polling = applied.and_then(|w| w.polling_secs);
    let shipped = wake::shipped_polling_secs();
    let more = match (shipped, polling) {
        (Some(s), Some(p)) if s > p => format!(": expect up to {} s more of waiting for the poll there", s - p),
        _ => String::new(),
    };
    writeln!(
        out,
        "Backend: the real platform (a daprd beside each function, one Kafka broker, PostgreSQL, the Dapr \
         Scheduler) with the real KEDA operator{keda}, its metrics API server and kube-controller-manager's HPA \
         controller on a real kube-apiserver and etcd (`scripts/control-plane.sh --keda`, as `make test-keda` \
         runs them). The minikube overlay is applied through the test-only overlay `system-tests/keda-overlay`: \
         pollingInterval {} s and cooldownPeriod {} s on the workers (the shipped ScaledObjects poll every {} s{more}). \
         Release binaries. Pods are processes the kubelet stand-in (`system_tests::kubelet`) starts when a \
         Deployment's `spec.replicas` asks: no image pull, no container runtime, no scheduling, which a cluster \
         adds to the pair start.\n",
        secs(polling),
        secs(applied.and_then(|w| w.cooldown_secs)),
        secs(shipped),
    )?;
    writeln!(
        out,
        "{} wake-ups on one control plane and platform, each from a fully idle system (every worker at 0 \
         replicas and stopped, every consumer group without lag): one `todo.task.create` request published to \
         `task-create` wakes create-task, its `created` event wakes on-task-completed, fire-reminder and \
         audit-writer, and the next wake-up starts once all are back at 0. Times are read by the loop that also \
         drives the kubelet stand-in: about every 0.2 s plus its `kubectl` calls, later when its pass started a \
         pair, so each has a few tenths of a second of resolution (the pair start is timed within the pass). \
         No target: issue 15 sets none.\n",
        config.wakes
    )?;
    let wakes = match wakes {
        Ok(wakes) => wakes,
        Err(error) => {
            writeln!(out, "{}\n", error_cell(error))?;
            return Ok(());
        }
    };
    writeln!(
        out,
        "This run: idle {:.0} s after the start (control plane, platform, overlay), {:.0} s for the whole \
         figure.\n",
        wakes.setup_secs, wakes.total_secs
    )?;
    let measured: Vec<&system_tests::keda::Timings> = wakes.runs.iter().flatten().collect();
    type Pick = fn(&system_tests::keda::Timings) -> f64;
    let cell = |pick: Pick, digits: usize| {
        report::spread_cell(stats::Spread::of(&measured.iter().map(|t| pick(t)).collect::<Vec<_>>()), digits)
    };
    // The pair start is timed within the kubelet's pass: two decimals.
    let steps: [(&str, Pick, usize); 5] = [
        ("publish → create-task `spec.replicas` 1 (KEDA's poll saw the lag)", |t| t.publish_to_replicas, 1),
        ("create-task pair start: from `spec.replicas` 1 to function and daprd healthy", |t| t.pair_start, 2),
        ("**first message → first processed** (the task readable through task-api)", |t| t.first_processed, 1),
        ("first message → audit entry written (audit-writer woken by the task event)", |t| t.audited, 1),
        (
            "audit entry → every worker back at 0 and stopped (cooldown, polls, graceful stop)",
            |t| t.all_zero_after_audit,
            1,
        ),
    ];
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|(what, pick, digits)| vec![(*what).to_owned(), cell(*pick, *digits), "no target".to_owned()])
        .collect();
    report::table(out, &["step", "median (min–max), s", "target"], &rows);
    let failed: Vec<String> = wakes
        .runs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| format!("- wake-up {}: {}", i + 1, error_cell(e))))
        .collect();
    let not_run = wakes.asked.saturating_sub(wakes.runs.len());
    let mut notes = Vec::new();
    if !failed.is_empty() {
        notes.push(format!("{} failed", failed.len()));
    }
    if not_run > 0 {
        notes.push(format!("{not_run} not run"));
    }
    writeln!(
        out,
        "**platform + KEDA**: first message → first processed {} s over {} of {} wake-ups; no target{}.\n",
        cell(|t| t.first_processed, 1),
        measured.len(),
        wakes.asked,
        if notes.is_empty() { String::new() } else { format!(" ({})", notes.join(", ")) }
    )?;
    if !failed.is_empty() {
        writeln!(out, "{}\n", failed.join("\n"))?;
    }
    Ok(())
}

/// Issue 12's "before": the real platform with Dapr's own outbox, measured once at the last
/// commit that used it (it cannot be measured from this tree).
const BEFORE_PROJECT_OUTBOX: &str = include_str!("../before-dapr-outbox.md");

/// A latency figure's table (a row per backend and run) and a verdict line per backend:
/// percentile `p` of each run, its median over the runs against the backend's `target`.
/// `missing` names the samples that never arrived (a column, when the figure has them).
fn latency_section(out: &mut String, figures: &[Figures], pick: Pick, missing: Option<&str>, p: f64, target: Target) {
    let mut rows = Vec::new();
    for f in figures {
        for (i, run) in pick(f).iter().enumerate() {
            let mut row = vec![f.backend.name().to_owned(), format!("{}", i + 1)];
            match run {
                Ok(l) => {
                    let q = |q| percentile(&l.values_ms, q).map_or("–".into(), |v| format!("{v:.1}"));
                    row.push(l.values_ms.len().to_string());
                    if missing.is_some() {
                        row.push(l.missing.to_string());
                    }
                    row.extend([q(50.0), q(90.0), q(95.0), q(99.0), q(100.0)]);
                }
                Err(error) => {
                    row.push(error_cell(error));
                    row.extend(std::iter::repeat_n(String::new(), 5 + usize::from(missing.is_some())));
                }
            }
            rows.push(row);
        }
    }
    let mut header = vec!["backend", "run", "samples"];
    header.extend(missing);
    header.extend(["p50", "p90", "p95", "p99", "max"]);
    report::table(out, &header, &rows);
    for f in figures {
        let runs = pick(f);
        if runs.is_empty() {
            continue;
        }
        let per_run: Vec<f64> = runs.iter().flatten().filter_map(|l| percentile(&l.values_ms, p)).collect();
        let lost: usize = runs.iter().flatten().map(|l| l.missing).sum();
        let s = Spread::of(&per_run);
        let verdict = match target(Targets::of(f.backend)) {
            Some(target) => {
                // A sample that never arrived misses any latency target.
                let met = s.map(|s| s.median <= target && lost == 0);
                format!("target p{p} ≤ {target} ms: {}", report::verdict(met))
            }
            None => "no target".to_owned(),
        };
        let lost = missing.map(|m| format!(", {lost} {m}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "**{}**: p{p} over runs {} ms{lost}; {verdict}{}.\n",
            f.backend.name(),
            report::spread_cell(s, 1),
            failures_note(runs)
        );
    }
}

/// Resident memory: devhost's functions (held to the per-process targets), and on the platform
/// each function with its daprd, and the platform's own processes (no target: issue 12 sets
/// none).
fn render_memory(
    out: &mut String,
    config: &Config,
    processes: &[process::ProcessFigures],
    figures: &[Figures],
) -> anyhow::Result<()> {
    let throughputs = |backend: Backend| {
        figures.iter().filter(move |f| f.backend == backend).flat_map(|f| f.throughputs.iter().flatten())
    };
    let spread_of = |backend: Backend, after: bool, name: &str| {
        let values: Vec<f64> = throughputs(backend)
            .filter_map(|t| if after { &t.rss_after_mib } else { &t.rss_idle_mib }.get(name).copied())
            .collect();
        Spread::of(&values)
    };
    let together = |backend: Backend, after: bool, function: &str| {
        let values: Vec<f64> = throughputs(backend)
            .filter_map(|t| {
                let rss = if after { &t.rss_after_mib } else { &t.rss_idle_mib };
                Some(rss.get(function)? + rss.get(&format!("daprd-{function}"))?)
            })
            .collect();
        Spread::of(&values)
    };
    writeln!(out, "## Resident memory (MiB)\n")?;
    writeln!(out, "### devhost: each function (targets ≤ {IDLE_MIB} idle, ≤ {LOADED_MIB} after load)\n")?;
    writeln!(
        out,
        "Idle: the function alone (the start figure's processes, half a second after `/healthz` answered). \
         After load: at the end of each devhost throughput run ({} creations offered, each one event to every \
         `task-events` consumer). devhost itself runs in the bench's process and is not counted.\n",
        u64::from(config.rate(Backend::Devhost)) * config.load_secs
    )?;
    let rows: Vec<Vec<String>> = processes
        .iter()
        .map(|p| {
            let idle = Spread::of(&p.idle_rss_mib);
            let loaded = spread_of(Backend::Devhost, true, &p.function);
            vec![
                p.function.clone(),
                report::spread_cell(idle, 1),
                report::verdict(idle.map(|s| s.median <= IDLE_MIB)).into(),
                report::spread_cell(loaded, 1),
                report::verdict(loaded.map(|s| s.median <= LOADED_MIB)).into(),
            ]
        })
        .collect();
    report::table(out, &["function", "idle", "target", "after load", "target"], &rows);

    writeln!(out, "### platform: each function and its daprd (no target)\n")?;
    if throughputs(Backend::Platform).next().is_none() {
        writeln!(out, "Not measured in this run (it is measured in the platform's throughput runs).\n")?;
        return Ok(());
    }
    writeln!(
        out,
        "Idle: on the throughput run's platform after its start and warm-up creation, before the load. After \
         load: at the end of each platform throughput run ({} creations offered). Issue 12 sets no memory \
         target; the per-process targets above are devhost's.\n",
        u64::from(config.rate(Backend::Platform)) * config.load_secs
    )?;
    let cell = |s: Option<Spread>| report::spread_cell(s, 1);
    let rows: Vec<Vec<String>> = FUNCTIONS
        .iter()
        .map(|function| {
            let daprd = format!("daprd-{function}");
            let p = Backend::Platform;
            vec![
                (*function).to_owned(),
                cell(spread_of(p, false, function)),
                cell(spread_of(p, false, &daprd)),
                cell(together(p, false, function)),
                cell(spread_of(p, true, function)),
                cell(spread_of(p, true, &daprd)),
                cell(together(p, true, function)),
            ]
        })
        .collect();
    report::table(
        out,
        &[
            "function",
            "idle",
            "its daprd idle",
            "together idle",
            "after load",
            "its daprd after load",
            "together after load",
        ],
        &rows,
    );
    writeln!(out, "### platform: its own processes (no target)\n")?;
    let rows: Vec<Vec<String>> = [
        ("kafka", "Kafka broker (one JVM, `-Xmx512m`)"),
        ("postgres", "PostgreSQL (the postmaster and every process it forked, summed)"),
        ("scheduler", "Dapr Scheduler (embedded etcd)"),
    ]
    .iter()
    .map(|(name, what)| {
        vec![
            (*what).to_owned(),
            cell(spread_of(Backend::Platform, false, name)),
            cell(spread_of(Backend::Platform, true, name)),
        ]
    })
    .collect();
    report::table(out, &["process", "idle", "after load"], &rows);
    writeln!(
        out,
        "PostgreSQL's sum counts its shared buffers once for every process that touched them, so it is an \
         upper bound.\n"
    )?;
    Ok(())
}

fn render_throughput(out: &mut String, config: &Config, figures: &[Figures]) -> anyhow::Result<()> {
    let targets: Vec<String> = figures
        .iter()
        .map(|f| {
            let t = Targets::of(f.backend);
            format!("{} ≥ {}/s drained within {} s", f.backend.name(), t.rate_per_sec, t.drain_secs)
        })
        .collect();
    writeln!(
        out,
        "## Sustained creations through create-task, {} s (targets: {})\n",
        config.load_secs,
        targets.join("; ")
    )?;
    let rates: Vec<String> =
        figures.iter().map(|f| format!("{} {}/s", f.backend.name(), config.rate(f.backend))).collect();
    writeln!(
        out,
        "Offered: `todo.task.create` requests published to `task-create` through on-task-completed's sidecar, at \
         each backend's target rate ({}) for {} s. Accepted: answered 204 by the sidecar. Rates are over the \
         run's duration, longer than nominal only if the driver fell behind its schedule. Backlog: messages \
         not yet processed by create-task, on-task-completed, fire-reminder and audit-writer together, \
         sampled each second; on the platform the consumer groups' lag as the broker has it, from offsets \
         daprd's consumer commits once a second, so it reads high by up to a second's worth of messages per \
         group and a drain there has about a second of resolution. The tasks have a title, a priority and a tag but no reminder or recurrence, so \
         each `created` event costs create-task a transaction, audit-writer an insert and fire-reminder \
         nothing (the first version of a task without a reminder needs no record); reminders have their own \
         figure below.\n",
        rates.join(", "),
        config.load_secs
    )?;
    let mut rows = Vec::new();
    for f in figures {
        for (i, run) in f.throughputs.iter().enumerate() {
            let mut row = vec![f.backend.name().to_owned(), format!("{}", i + 1)];
            match run {
                Ok(t) => row.extend([
                    format!("{:.1}", t.offered_per_sec),
                    format!("{:.1}", t.accepted_per_sec),
                    t.failed.to_string(),
                    t.max_backlog.to_string(),
                    t.drain.map_or_else(|| "did not drain".into(), |d| format!("{:.2}", d.as_secs_f64())),
                    t.events.to_string(),
                ]),
                Err(error) => {
                    row.push(error_cell(error));
                    row.extend(std::iter::repeat_n(String::new(), 5));
                }
            }
            rows.push(row);
        }
    }
    report::table(
        out,
        &["backend", "run", "offered/s", "accepted/s", "failed", "max backlog", "drain (s)", "task events"],
        &rows,
    );
    for f in figures {
        if f.throughputs.is_empty() {
            continue;
        }
        let t = Targets::of(f.backend);
        let measured: Vec<&load::Throughput> = f.throughputs.iter().flatten().collect();
        let accepted = Spread::of(&measured.iter().map(|t| t.accepted_per_sec).collect::<Vec<_>>());
        let drains: Vec<Option<f64>> = measured.iter().map(|t| t.drain.map(|d| d.as_secs_f64())).collect();
        let drain = drain_median(&drains);
        let met = accepted.zip(drain).map(|(a, d)| a.median >= t.rate_per_sec && d.is_some_and(|d| d <= t.drain_secs));
        let drained: Vec<f64> = drains.iter().flatten().copied().collect();
        let drain_cell = match drain {
            None => "–".to_owned(),
            Some(None) => format!("did not drain ({} of {} runs did not)", drains.len() - drained.len(), drains.len()),
            Some(Some(_)) if drained.len() < drains.len() => format!(
                "{} s ({} of {} runs did not drain)",
                report::spread_cell(Spread::of(&drained), 2),
                drains.len() - drained.len(),
                drains.len()
            ),
            Some(Some(_)) => format!("{} s", report::spread_cell(Spread::of(&drained), 2)),
        };
        writeln!(
            out,
            "**{}**: median accepted rate {}/s, drain {drain_cell}; target ≥ {}/s drained within {} s: {}{}.\n",
            f.backend.name(),
            report::spread_cell(accepted, 1),
            t.rate_per_sec,
            t.drain_secs,
            report::verdict(met),
            failures_note(&f.throughputs)
        )?;
    }
    cpu_section(out, figures, config)
}

/// Where the CPU of the throughput runs went: milliseconds per accepted creation, by process,
/// against what the machine has per creation at each backend's target rate.
fn cpu_section(out: &mut String, figures: &[Figures], config: &Config) -> anyhow::Result<()> {
    let measured: Vec<(&Figures, Vec<&load::Throughput>)> = figures
        .iter()
        .map(|f| (f, f.throughputs.iter().flatten().collect::<Vec<_>>()))
        .filter(|(_, runs)| !runs.is_empty())
        .collect();
    if measured.is_empty() {
        return Ok(());
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    writeln!(
        out,
        "### CPU per creation (ms, median over runs)\n\nCPU time (user + system, `/proc/<pid>/stat`) each process \
         used from the load's start until its backlog drained, over the creations accepted. The budget is \
         what {cores} cores give one creation at the backend's target rate: above it, the target cannot be met \
         on this machine whatever the latency of any one step.\n"
    )?;
    let mut names: Vec<String> =
        measured.iter().flat_map(|(_, runs)| runs.iter().flat_map(|t| t.cpu_ms_per_creation.keys().cloned())).collect();
    names.sort();
    names.dedup();
    let median_of = |runs: &[&load::Throughput], name: &str| {
        Spread::of(&runs.iter().filter_map(|t| t.cpu_ms_per_creation.get(name).copied()).collect::<Vec<_>>())
            .map(|s| s.median)
    };
    let mut rows = Vec::new();
    for name in &names {
        let mut row = vec![name.clone()];
        row.extend(measured.iter().map(|(_, runs)| median_of(runs, name).map_or("–".into(), |m| format!("{m:.3}"))));
        rows.push(row);
    }
    let mut total = vec!["**all processes**".to_owned()];
    total.extend(measured.iter().map(|(_, runs)| {
        let sums: Vec<f64> = runs.iter().map(|t| t.cpu_ms_per_creation.values().sum()).collect();
        Spread::of(&sums).map_or("–".into(), |s| format!("**{:.3}**", s.median))
    }));
    rows.push(total);
    let mut budget = vec!["budget at the target rate".to_owned()];
    budget.extend(
        measured.iter().map(|(f, _)| format!("{:.3}", cores as f64 * 1000.0 / f64::from(config.rate(f.backend)))),
    );
    rows.push(budget);
    let mut header = vec!["process".to_owned()];
    header.extend(measured.iter().map(|(f, _)| f.backend.name().to_owned()));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    report::table(out, &header, &rows);
    Ok(())
}

/// The median drain of the runs, a run that did not drain counting as longer than any that did
/// (`Some(None)`: the median run did not drain); `None` without runs.
fn drain_median(drains: &[Option<f64>]) -> Option<Option<f64>> {
    let mut sorted: Vec<f64> = drains.iter().map(|d| d.unwrap_or(f64::INFINITY)).collect();
    sorted.sort_by(f64::total_cmp);
    let median = *sorted.get(sorted.len().checked_sub(1)? / 2)?;
    Some(median.is_finite().then_some(median))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_did_not_drain_counts_as_the_slowest() {
        assert_eq!(drain_median(&[]), None);
        assert_eq!(drain_median(&[Some(0.5), None, Some(0.1)]), Some(Some(0.5)));
        assert_eq!(drain_median(&[None, None, Some(0.1)]), Some(None));
        assert_eq!(drain_median(&[Some(2.0)]), Some(Some(2.0)));
    }

    #[test]
    fn the_wake_section_has_medians_of_the_wake_ups_and_each_failure() {
        let timings = |first_processed: f64| system_tests::keda::Timings {
            publish_to_replicas: 1.0,
            pair_start: 2.0,
            first_processed,
            audited: first_processed + 1.0,
            all_zero_after_audit: 9.0,
            woken: vec![],
            cold_path: None,
        };
        let wakes = wake::Wakes {
            runs: vec![Ok(timings(3.0)), Err("a | b".into()), Ok(timings(5.0)), Ok(timings(4.0))],
            asked: 5,
            polling_secs: Some(1),
            cooldown_secs: Some(5),
            setup_secs: 20.0,
            total_secs: 60.0,
        };
        let mut out = String::new();
        render_wake(&mut out, &Config::default(), Some(&Ok(wakes))).unwrap();
        assert!(out.contains("| **first message → first processed** (the task readable through task-api) | 4.0 (3.0–5.0) | no target |"), "{out}");
        assert!(out.contains("pollingInterval 1 s and cooldownPeriod 5 s"), "{out}");
        assert!(out.contains("over 3 of 5 wake-ups; no target (1 failed, 1 not run)."), "{out}");
        assert!(out.contains("- wake-up 2: failed: a / b"), "{out}");

        let mut out = String::new();
        render_wake(&mut out, &Config::default(), Some(&Err("no control plane".into()))).unwrap();
        assert!(out.contains("failed: no control plane"), "{out}");
        let mut out = String::new();
        render_wake(&mut out, &Config::default(), None).unwrap();
        assert!(out.contains("Not measured in this run"), "{out}");
    }

    #[test]
    fn the_mcp_section_holds_devhost_to_its_targets_and_the_platform_to_none() {
        let runs = |ms: f64| vec![Ok(Latencies { values_ms: vec![ms; 20], missing: 0 })];
        let figures = |backend, list_ms, add_ms| Figures {
            backend,
            throughputs: vec![],
            audit: vec![],
            reminders: vec![],
            webhooks: vec![],
            lists: vec![],
            mcp_list: runs(list_ms),
            mcp_add: runs(add_ms),
        };
        let mut failed = figures(Backend::Platform, 0.0, 0.0);
        (failed.mcp_list, failed.mcp_add) = (vec![Err("no session".into())], vec![Err("no session".into())]);
        let figures = [figures(Backend::Devhost, 5.0, 45.0), figures(Backend::Platform, 60.0, 70.0)];
        let mut out = String::new();
        render_mcp(&mut out, &Config::default(), &figures).unwrap();
        assert!(out.contains("### `list_tasks` (target p95: devhost ≤ 20, platform none)"), "{out}");
        assert!(out.contains("**devhost**: p95 over runs 5.0 ms; target p95 ≤ 20 ms: met."), "{out}");
        assert!(out.contains("**devhost**: p95 over runs 45.0 ms; target p95 ≤ 30 ms: **missed**."), "{out}");
        assert!(out.contains("**platform**: p95 over runs 70.0 ms; no target."), "{out}");
        assert!(out.contains("| platform | 1 | 20 | 60.0 |"), "{out}");
        assert_eq!(failed.failed(), 1, "one run, both tools");
    }

    #[test]
    fn error_cells_are_one_bounded_line() {
        assert_eq!(error_cell("a | b\nc"), "failed: a / b c");
        assert_eq!(error_cell(&"x".repeat(400)).chars().count(), "failed: ".len() + 301);
    }
}
