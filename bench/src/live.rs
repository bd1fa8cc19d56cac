//! `bench live` (`make bench-live`): live updates under load, on devhost and on the real
//! platform, written to the `## Live updates` section of `BENCHMARKS.md` (the rest of the file
//! kept; `make bench` keeps this section as it is).
//!
//! [`USERS`] users each hold [`STREAMS_PER_USER`] open `GET /v1/events` streams on task-api
//! ([`USERS`] × [`STREAMS_PER_USER`] = 1,000 streams, one connection each, as browser tabs would).
//! Then changes are made through the REST API at [`RATE`] per second for [`SECS`] seconds,
//! round-robin over the users; every stream of a change's owner must receive it. A delivery's
//! latency is from the write's `201` answer (the change committed and, normally, published) to
//! the event arriving at the client, over a loopback connection. Target (issue 19): p99 ≤ 200 ms.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::load::{Backend, Bench};
use crate::stats::percentile;

pub const HEADING: &str = "## Live updates";

const USERS: usize = 100;
const STREAMS_PER_USER: usize = 10;
const RATE: u64 = 100;
const SECS: u64 = 30;
const TARGET_P99_MS: f64 = 200.0;
/// How long deliveries may still arrive after the last write.
const GRACE: Duration = Duration::from_secs(10);

/// What one backend measured.
#[derive(Debug, Clone)]
struct Figure {
    streams: usize,
    changes: usize,
    expected: usize,
    received: usize,
    /// Write answered → event at the client, per delivery.
    latencies_ms: Vec<f64>,
    /// Writes per second achieved.
    rate: f64,
}

/// One event at a client: the task and version it is about, and when it arrived.
type Arrival = (String, u64, Instant);

pub async fn run() -> anyhow::Result<()> {
    let say = |s: &str| eprintln!("bench live: {s}");
    let mut rows = Vec::new();
    for backend in [Backend::Devhost, Backend::Platform] {
        say(&format!("{}: {} streams, {RATE} changes/s for {SECS} s", backend.name(), USERS * STREAMS_PER_USER));
        let result = Bench::run(backend, "live", async |bench| measure(bench, &say).await).await;
        match &result {
            Ok(f) => say(&format!(
                "{}: {}/{} deliveries, p50 {:.1} ms, p99 {:.1} ms",
                backend.name(),
                f.received,
                f.expected,
                percentile(&f.latencies_ms, 50.0).unwrap_or(f64::NAN),
                percentile(&f.latencies_ms, 99.0).unwrap_or(f64::NAN)
            )),
            Err(error) => say(&format!("{}: failed: {error:#}", backend.name())),
        }
        rows.push((backend, result.map_err(|e| format!("{e:#}"))));
    }
    let out = system_tests::workspace_root().join("BENCHMARKS.md");
    let doc = std::fs::read_to_string(&out).unwrap_or_default();
    let section = render(&rows);
    std::fs::write(&out, crate::report::replace_section(&doc, HEADING, &section))
        .with_context(|| format!("writing {}", out.display()))?;
    say("wrote the \"## Live updates\" section of BENCHMARKS.md");
    if rows.iter().any(|(_, r)| r.is_err()) {
        bail!("a backend failed (see above)");
    }
    Ok(())
}

async fn measure(bench: &Bench, say: &impl Fn(&str)) -> anyhow::Result<Figure> {
    let apis = (0..USERS).map(|u| bench.setup.api(&format!("live-{u}"))).collect::<anyhow::Result<Vec<_>>>()?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let (arrivals, mut received) = mpsc::unbounded_channel::<Arrival>();
    let opened = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for api in &apis {
        for _ in 0..STREAMS_PER_USER {
            let (http, url, token) = (http.clone(), format!("{}/v1/events", api.base()), api.token().to_owned());
            let (arrivals, opened) = (arrivals.clone(), opened.clone());
            readers.push(tokio::spawn(async move { read(&http, &url, &token, &opened, &arrivals).await }));
        }
    }
    drop(arrivals);
    let streams = USERS * STREAMS_PER_USER;
    let started = Instant::now();
    while opened.load(Ordering::Relaxed) < streams {
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "{} of {streams} streams open after 60 s",
            opened.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    say(&format!("{streams} streams open"));
    // The live group joins at the newest offset: write until one change arrives.
    let started = Instant::now();
    loop {
        ensure!(started.elapsed() < Duration::from_secs(120), "no change reached a stream within 120 s");
        apis[0].post("/v1/tasks", Some(&json!({"title": "warm-up"})), StatusCode::CREATED).await?;
        if tokio::time::timeout(Duration::from_secs(2), received.recv()).await.is_ok() {
            break;
        }
    }
    // Let the warm-up's other deliveries arrive, then forget them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while received.try_recv().is_ok() {}

    // The writes: one every 1/RATE s, each on its own task so that a slow answer does not
    // delay the next.
    let (answers, mut answered) = mpsc::unbounded_channel::<(String, Instant)>();
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let load = Instant::now();
    let total = usize::try_from(RATE * SECS)?;
    for n in 0..total {
        ticks.tick().await;
        let (api, answers) = (apis[n % USERS].clone(), answers.clone());
        tokio::spawn(async move {
            let body = json!({ "title": format!("live {n}") });
            if let Ok(task) = api.post("/v1/tasks", Some(&body), StatusCode::CREATED).await
                && let Some(id) = task["id"].as_str()
            {
                let _ = answers.send((id.to_owned(), Instant::now()));
            }
        });
    }
    let rate = total as f64 / load.elapsed().as_secs_f64();
    drop(answers);
    let mut written: HashMap<String, Instant> = HashMap::new();
    let expected = total * STREAMS_PER_USER;
    let mut arrivals: Vec<Arrival> = Vec::new();
    let deadline = Instant::now() + GRACE;
    loop {
        while let Ok((id, at)) = answered.try_recv() {
            written.insert(id, at);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if arrivals.len() >= expected || left.is_zero() {
            break;
        }
        match tokio::time::timeout(left.min(Duration::from_millis(100)), received.recv()).await {
            Ok(Some(arrival)) => arrivals.push(arrival),
            Ok(None) => break,
            Err(_) => {}
        }
    }
    while let Ok((id, at)) = answered.try_recv() {
        written.insert(id, at);
    }
    for reader in readers {
        reader.abort();
    }
    ensure!(written.len() == total, "{} of {total} writes answered 201", written.len());
    // Deliveries of the measured writes (version 1: each write creates a task).
    let latencies_ms: Vec<f64> = arrivals
        .iter()
        .filter(|(_, version, _)| *version == 1)
        .filter_map(|(id, _, at)| Some(at.saturating_duration_since(*written.get(id)?).as_secs_f64() * 1000.0))
        .collect();
    Ok(Figure { streams, changes: total, expected, received: latencies_ms.len(), latencies_ms, rate })
}

/// Reads one stream until it ends, sending each change's task id, version and arrival time.
async fn read(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    opened: &AtomicUsize,
    arrivals: &mpsc::UnboundedSender<Arrival>,
) -> anyhow::Result<()> {
    let mut response = http.get(url).bearer_auth(token).send().await?.error_for_status()?;
    opened.fetch_add(1, Ordering::Relaxed);
    let mut pending = String::new();
    while let Some(chunk) = response.chunk().await? {
        let at = Instant::now();
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find("\n\n") {
            let block: String = pending.drain(..end + 2).collect();
            let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) else { continue };
            if !block.lines().any(|l| l.starts_with("id: ")) {
                continue;
            }
            let data: Value = serde_json::from_str(data).unwrap_or_default();
            if let (Some(id), Some(version)) = (data["id"].as_str(), data["version"].as_u64()) {
                let _ = arrivals.send((id.to_owned(), version, at));
            }
        }
    }
    Ok(())
}

fn render(rows: &[(Backend, Result<Figure, String>)]) -> String {
    let mut out = format!(
        "{HEADING}\n\nWritten by `make bench-live` at commit {}. {USERS} users with {STREAMS_PER_USER} open `GET \
         /v1/events` streams each ({} streams on one task-api), then changes (creates through the REST API) at {RATE} \
         per second for {SECS} s, round-robin over the users: each change must reach all {STREAMS_PER_USER} streams of \
         its owner. Latency: from the create's `201` answer to the event at the client (loopback). Target (issue 19): \
         p99 ≤ {TARGET_P99_MS:.0} ms.\n\n\
         | backend | streams | changes (rate achieved) | deliveries received | p50 | p95 | p99 | max | target |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        crate::scale::commit_line(),
        USERS * STREAMS_PER_USER
    );
    for (backend, row) in rows {
        match row {
            Ok(f) => {
                let p = |q: f64| percentile(&f.latencies_ms, q).map_or("n/a".to_owned(), |v| format!("{v:.1} ms"));
                let met =
                    percentile(&f.latencies_ms, 99.0).is_some_and(|v| v <= TARGET_P99_MS) && f.received == f.expected;
                out.push_str(&format!(
                    "| {} | {} | {} ({:.0}/s) | {} of {} | {} | {} | {} | {} | {} |\n",
                    backend.name(),
                    f.streams,
                    f.changes,
                    f.rate,
                    f.received,
                    f.expected,
                    p(50.0),
                    p(95.0),
                    p(99.0),
                    p(100.0),
                    if met { "met" } else { "**missed**" }
                ));
            }
            Err(error) => {
                out.push_str(&format!("| {} | failed: {} | | | | | | | |\n", backend.name(), error.replace('|', "/")))
            }
        }
    }
    out
}
