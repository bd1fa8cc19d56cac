//! Fault suite, end to end: SIGKILL devhost and every function at random moments during a
//! mixed load of creates, renames, completions and deletes, restart, repeat; at the end every
//! accepted command has exactly one effect. Clients behave as real ones do: a command whose
//! answer was lost (connection reset, 5xx) is sent again after the restart, before anything
//! else is done to that task; creates carry an `Idempotency-Key`.
//!
//! Checked per task: it exists unless deleted; its audit trail has one entry per version, no
//! version missing or doubled, and exactly the changes accepted (one `created`, one `updated`
//! per rename, at most one `completed` and `deleted`); a recurring task that was completed or
//! deleted while open has exactly one next occurrence; an open task's reminder is scheduled,
//! a completed one's cancelled. The test prints what it survived and checked.
//!
//! Run twice: as is, and with every message delivered twice. `FAULT_KILLS` sets the number of
//! kills (default 4, and 2 with duplicates); `FAULT_SEED` replays a run's commands.
//!
//! The same load and checks also meet a store outage instead of kills: SQLite's write lock is
//! held from outside for longer than every timeout involved, and nothing may be dead-lettered.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use reqwest::{Method, StatusCode};
use serde_json::json;
use shared::events::{occurrence_request_id, task_id_for_request, topics};
use system_tests::api::{Api, client, json_body};
use system_tests::host::Setup;
use system_tests::outbox_support;

const USER: &str = "faulty";
const WORKERS: usize = 4;
const SETTLE: Duration = Duration::from_secs(90);

/// A small deterministic generator (xorshift64*), so a failing run can be replayed by seed.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What the client knows of one task it asked for.
#[derive(Debug, Clone, Default)]
struct Model {
    key: String,
    id: String,
    recurring: bool,
    created: bool,
    renames: u32,
    completed: bool,
    deleted: bool,
    /// Deleted while still open (a recurring one then gets its next occurrence).
    deleted_open: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Rename(u32),
    Complete,
    Delete,
}

/// The answer to a command: taken, or unknown (to be sent again).
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Done,
    Unknown,
}

async fn send(api: &Api, http: &reqwest::Client, task: &Model, op: Op) -> anyhow::Result<Outcome> {
    let path = format!("/v1/tasks/{}", task.id);
    let request = match op {
        Op::Create => {
            let mut body = json!({
                "title": format!("{} v0", task.key), "tags": ["faults"],
                "due": (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339(),
                "reminder": {"before_due_seconds": 3600},
            });
            if task.recurring {
                body["recurrence"] = json!({"rule": "FREQ=DAILY"});
            }
            json_body(http.post(format!("{}/v1/tasks", api.base())).header("idempotency-key", &task.key), &body)
        }
        Op::Rename(n) => http
            .patch(format!("{}{path}", api.base()))
            .header("content-type", "application/merge-patch+json")
            .body(json!({ "title": format!("{} v{n}", task.key) }).to_string()),
        Op::Complete => http.post(format!("{}{path}/complete", api.base())),
        Op::Delete => http.delete(format!("{}{path}", api.base())),
    };
    let status = match request.bearer_auth(api.token()).send().await {
        Ok(response) => response.status(),
        Err(_) => return Ok(Outcome::Unknown),
    };
    Ok(match (op, status) {
        (_, s) if s.is_server_error() => Outcome::Unknown,
        (Op::Create, StatusCode::CREATED | StatusCode::OK)
        | (Op::Rename(_) | Op::Complete, StatusCode::OK)
        | (Op::Delete, StatusCode::NO_CONTENT) => Outcome::Done,
        // A repeated delete whose first attempt went through.
        (Op::Delete, StatusCode::NOT_FOUND) => Outcome::Done,
        (op, status) => bail!("{op:?} on {} answered {status}", task.key),
    })
}

fn apply(task: &mut Model, op: Op) {
    match op {
        Op::Create => task.created = true,
        Op::Rename(_) => task.renames += 1,
        Op::Complete => task.completed = true,
        Op::Delete => {
            task.deleted_open = !task.completed;
            task.deleted = true;
        }
    }
}

/// One worker's share: its own tasks, so commands on one task are never concurrent.
#[derive(Debug, Default)]
struct Worker {
    tasks: Vec<Model>,
    /// The command whose answer was lost, with its task's index.
    pending: Option<(usize, Op)>,
    commands: u64,
}

impl Worker {
    fn choose(&self, rng: &mut Rng) -> (usize, Op) {
        let live: Vec<usize> =
            (0..self.tasks.len()).filter(|i| self.tasks[*i].created && !self.tasks[*i].deleted).collect();
        if live.is_empty() || rng.below(10) < 4 {
            return (self.tasks.len(), Op::Create);
        }
        let i = live[rng.below(live.len() as u64) as usize];
        let task = &self.tasks[i];
        let op = match (task.completed, rng.below(4)) {
            (false, 0 | 1) => Op::Rename(task.renames + 1),
            (false, 2) => Op::Complete,
            (true, 0 | 1) => Op::Rename(task.renames + 1),
            _ => Op::Delete,
        };
        (i, op)
    }

    /// Sends commands until `until`, or until one's answer is lost (the system is down).
    async fn run(
        &mut self,
        api: &Api,
        http: &reqwest::Client,
        rng: &mut Rng,
        worker: usize,
        until: Instant,
    ) -> anyhow::Result<()> {
        if let Some((i, op)) = self.pending.take() {
            match send(api, http, &self.tasks[i], op).await? {
                Outcome::Done => apply(&mut self.tasks[i], op),
                Outcome::Unknown => {
                    self.pending = Some((i, op));
                    return Ok(());
                }
            }
        }
        while Instant::now() < until {
            let (i, op) = self.choose(rng);
            if i == self.tasks.len() {
                let key = format!("w{worker}-t{i}");
                let id = task_id_for_request(USER, &key).to_string();
                self.tasks.push(Model { recurring: rng.below(3) == 0, key, id, ..Model::default() });
            }
            self.commands += 1;
            match send(api, http, &self.tasks[i], op).await? {
                Outcome::Done => apply(&mut self.tasks[i], op),
                Outcome::Unknown => {
                    self.pending = Some((i, op));
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// `FAULT_SEED`, or a fresh seed.
fn seed() -> u64 {
    std::env::var("FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        u64::from(std::process::id()) << 20 | u64::from(chrono::Utc::now().timestamp_subsec_micros())
    }) | 1
}

fn kills(default: u32) -> u32 {
    std::env::var("FAULT_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_leaves_every_command_with_exactly_one_effect() -> anyhow::Result<()> {
    random_kills(kills(4), &[]).await
}

/// The same with every message delivered twice: duplicates on top of crashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_message_delivered_twice_too() -> anyhow::Result<()> {
    random_kills(kills(2), &["--duplicate-delivery"]).await
}

async fn random_kills(kills: u32, flags: &[&str]) -> anyhow::Result<()> {
    let seed = seed();
    eprintln!("faults {flags:?}: seed {seed} (FAULT_SEED={seed} replays this run)");
    let mut rng = Rng(seed);
    let setup = Setup::new(&[])?;
    let api = setup.api(USER)?;
    let http = client()?;
    let mut workers: Vec<Worker> = (0..WORKERS).map(|_| Worker::default()).collect();

    let mut survived = 0;
    for round in 0..=kills {
        let log = setup.path().join(format!("devhost-{round}.log"));
        let mut devhost = setup.spawn_with(flags, &[], Some(&log))?;
        api.wait_healthy(SETTLE)
            .await
            .with_context(|| format!("round {round}: devhost's log ends with:\n{}", tail(&log)))?;
        let last = round == kills;
        // Load for a random 0.5 to 2.5 s, then kill in the middle of it; the last round only
        // sends what is still pending and lets the system settle.
        let load_for = if last { Duration::ZERO } else { Duration::from_millis(500 + rng.below(2000)) };
        // Past the kill, so that every worker is cut off by it; the last round sends no new commands.
        let until = if last { Instant::now() } else { Instant::now() + load_for + Duration::from_secs(3) };
        let load = run_workers(&mut workers, &api, &http, &mut rng, until);
        if last {
            load.await?;
            let still = workers.iter().filter(|w| w.pending.is_some()).count();
            if still > 0 {
                bail!("{still} commands still without an answer after the last restart");
            }
            // The outbox too: a kill between a commit and its publish leaves the event to
            // task-api's relay, which the consumer lag alone does not show.
            outbox_support::settle(&setup, SETTLE).await?;
            drop(devhost);
            break;
        }
        let killer = async {
            tokio::time::sleep(load_for).await;
            devhost.kill_all()
        };
        let (loaded, killed) = tokio::join!(load, killer);
        loaded?;
        if killed.with_context(|| format!("devhost's log ends with:\n{}", tail(&log)))? != 5 {
            bail!("the kill did not find the five functions");
        }
        survived += 1;
    }

    // Started again to check (the last round dropped it after settling).
    let devhost = setup.spawn_with(flags, &[], None)?;
    api.wait_healthy(SETTLE).await?;
    let mut checked_entries = 0;
    let tasks: Vec<&Model> = workers.iter().flat_map(|w| &w.tasks).filter(|t| t.created).collect();
    for task in &tasks {
        checked_entries += check(&api, task).await.with_context(|| format!("{task:?}"))?;
    }
    drop(devhost);
    let commands: u64 = workers.iter().map(|w| w.commands).sum();
    eprintln!(
        "faults {flags:?}: {survived} kills survived, {commands} commands sent, {} tasks and {checked_entries} audit entries checked",
        tasks.len()
    );
    assert_eq!(survived, kills);
    assert!(tasks.len() >= 5, "too few tasks to prove anything: {}", tasks.len());
    Ok(())
}

/// Runs every worker on its own task, with its own generator, until `until` (or until its
/// command's answer is lost); puts the workers back with what they learnt.
async fn run_workers(
    workers: &mut Vec<Worker>,
    api: &Api,
    http: &reqwest::Client,
    rng: &mut Rng,
    until: Instant,
) -> anyhow::Result<()> {
    let handles: Vec<_> = std::mem::take(workers)
        .into_iter()
        .enumerate()
        .map(|(w, mut worker)| {
            let (api, http, mut rng) = (api.clone(), http.clone(), Rng(rng.next() | 1));
            tokio::spawn(async move {
                let result = worker.run(&api, &http, &mut rng, w, until).await;
                (worker, result)
            })
        })
        .collect();
    let mut first_error = Ok(());
    for handle in handles {
        let (worker, result) = handle.await?;
        workers.push(worker);
        if first_error.is_ok() {
            first_error = result;
        }
    }
    first_error
}

/// How long the store refuses writes: longer than devhost's 5 s busy timeout (so calls fail
/// rather than wait) and than the client's 5 s timeout, well inside the 8 retries of the
/// `pubsubInbound` policy (about 25 s).
const OUTAGE: Duration = Duration::from_secs(8);

/// The state store and the log refuse every write for [`OUTAGE`] in the middle of a mixed
/// load (another process holds SQLite's write lock: to devhost, what a Postgres outage is to
/// Dapr). Handlers answer RETRY, clients get 503 and send again, and once the store is back
/// every accepted command has exactly one effect, nothing went to a dead-letter topic, and
/// devhost and all five functions are still running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_delays_work_and_loses_nothing() -> anyhow::Result<()> {
    let seed = seed();
    eprintln!("outage: seed {seed} (FAULT_SEED={seed} replays this run)");
    let mut rng = Rng(seed);
    let setup = Setup::new(&[])?;
    let api = setup.api(USER)?;
    let http = client()?;
    let log = setup.path().join("devhost.log");
    let mut devhost = setup.spawn_with(&[], &[], Some(&log))?;
    api.wait_healthy(SETTLE).await?;

    let mut workers: Vec<Worker> = (0..WORKERS).map(|_| Worker::default()).collect();
    let load_for = Duration::from_millis(1000 + rng.below(1000));
    let until = Instant::now() + load_for + OUTAGE + Duration::from_secs(2);
    let database = setup.database.clone();
    let outage = tokio::task::spawn_blocking(move || {
        std::thread::sleep(load_for);
        hold_write_lock(&database, OUTAGE)
    });
    let (loaded, locked) = tokio::join!(run_workers(&mut workers, &api, &http, &mut rng, until), outage);
    loaded?;
    locked??;
    let lost = workers.iter().filter(|w| w.pending.is_some()).count();
    // The store is back: what was lost is sent again, and nothing new.
    run_workers(&mut workers, &api, &http, &mut rng, Instant::now()).await?;
    if let Some(still) = workers.iter().position(|w| w.pending.is_some()) {
        bail!("worker {still}'s command still has no answer after the outage");
    }
    // A publish that met the outage left its event in the outbox for task-api's relay.
    outbox_support::settle(&setup, SETTLE)
        .await
        .with_context(|| format!("devhost's log ends with:\n{}", tail(&log)))?;

    let mut checked_entries = 0;
    let tasks: Vec<&Model> = workers.iter().flat_map(|w| &w.tasks).filter(|t| t.created).collect();
    for task in &tasks {
        checked_entries += check(&api, task).await.with_context(|| format!("{task:?}"))?;
    }
    for app in ["create-task", "on-task-completed", "fire-reminder", "audit-writer"] {
        let dead = setup.peek(&topics::dead_letter(app))?;
        assert!(dead.is_empty(), "{app} dead-lettered {} messages during the outage", dead.len());
    }
    let retried = std::fs::read_to_string(&log)?
        .lines()
        .filter(|l| l.contains("retrying under the inbound retry policy"))
        .count();
    let alive = devhost.kill_all().with_context(|| format!("devhost's log ends with:\n{}", tail(&log)))?;
    eprintln!(
        "outage: {OUTAGE:?} without writes survived; {lost} answers lost and sent again, {retried} deliveries \
         retried, {} tasks and {checked_entries} audit entries checked, no dead letters",
        tasks.len()
    );
    assert_eq!(alive, 5, "devhost and every function outlive the outage");
    assert!(lost > 0, "no command met the outage: it proved nothing");
    assert!(tasks.len() >= 5, "too few tasks to prove anything: {}", tasks.len());
    Ok(())
}

/// Holds SQLite's write lock on `database` for `how_long`: every writer (devhost) gets
/// `SQLITE_BUSY` after its busy timeout; readers go on (WAL).
fn hold_write_lock(database: &str, how_long: Duration) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(database).context("opening devhost's database")?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.execute_batch("BEGIN EXCLUSIVE").context("taking the write lock")?;
    std::thread::sleep(how_long);
    conn.execute_batch("ROLLBACK").context("releasing the write lock")?;
    Ok(())
}

/// Checks one task's effects; returns how many audit entries it checked.
async fn check(api: &Api, task: &Model) -> anyhow::Result<usize> {
    let answer = api.call(Method::GET, &format!("/v1/tasks/{}", task.id), None).await?;
    let expected = if task.deleted { StatusCode::NOT_FOUND } else { StatusCode::OK };
    if answer.status != expected {
        bail!("GET answered {}, expected {expected}", answer.status);
    }
    let trail = api.get(&format!("/v1/tasks/{}/audit", task.id)).await?;
    let entries = trail["items"].as_array().cloned().unwrap_or_default();
    let versions: Vec<u64> = entries.iter().filter_map(|e| e["task_version"].as_u64()).collect();
    let contiguous: Vec<u64> = (1..=entries.len() as u64).collect();
    if versions != contiguous {
        bail!("audit versions {versions:?}: one entry per version, none missing or doubled");
    }
    let count = |change: &str| entries.iter().filter(|e| e["change"] == change).count();
    let want = [
        ("created", 1),
        ("updated", task.renames as usize),
        ("completed", usize::from(task.completed)),
        ("deleted", usize::from(task.deleted)),
    ];
    for (change, n) in want {
        if count(change) != n {
            bail!("{} {change} entries, expected {n}", count(change));
        }
    }
    if task.recurring {
        let next = task_id_for_request(USER, &occurrence_request_id(task.id.parse()?, 1));
        // 404: no such task, so no audit trail either.
        let next_trail = api.call(Method::GET, &format!("/v1/tasks/{next}/audit"), None).await?;
        let created = match next_trail.status {
            StatusCode::NOT_FOUND => 0,
            StatusCode::OK => {
                next_trail.body["items"].as_array().map_or(0, |i| i.iter().filter(|e| e["change"] == "created").count())
            }
            other => bail!("the next occurrence's audit trail answered {other}"),
        };
        let should = usize::from(task.completed || task.deleted_open);
        if created != should {
            bail!("{created} next occurrences, expected {should}");
        }
    }
    if !task.deleted {
        let reminder = api.get(&format!("/v1/tasks/{}/reminder", task.id)).await?;
        let should = if task.completed { "cancelled" } else { "scheduled" };
        if reminder["status"] != should {
            bail!("reminder {reminder}, expected {should}");
        }
    }
    Ok(entries.len())
}

/// Security through the whole system, with both tokens configured and debug logging: the
/// system works, every guarded door refuses a missing or wrong token, a forged or foreign JWT
/// gets nothing, and no secret appears anywhere in the logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_enforced_and_no_secret_is_logged() -> anyhow::Result<()> {
    let setup = Setup::new(&[("RUST_LOG", "debug")])?;
    let (api_token, app_token) = (format!("sidecar-{}", uuid::Uuid::new_v4()), format!("app-{}", uuid::Uuid::new_v4()));
    let log = setup.path().join("devhost.log");
    let devhost =
        setup.spawn_with(&[], &[("DAPR_API_TOKEN", &api_token), ("APP_API_TOKEN", &app_token)], Some(&log))?;
    let api = setup.api(USER)?;
    let http = client()?;
    api.wait_healthy(SETTLE).await?;

    // The whole flow works with the tokens on.
    system_tests::scenario::run(&api, Duration::from_secs(2), |_| {}).await?;

    // The sidecar API needs DAPR_API_TOKEN; health does not.
    let sidecar = setup.sidecar("task-api")?;
    let publish = format!("{sidecar}/v1.0/publish/pubsub/task-create");
    let status = |r: reqwest::RequestBuilder| async move { anyhow::Ok(r.send().await?.status()) };
    assert_eq!(status(json_body(http.post(&publish), &json!({}))).await?, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status(json_body(http.post(&publish).header("dapr-api-token", "wrong"), &json!({}))).await?,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(http.get(format!("{sidecar}/v1.0/healthz"))).await?, StatusCode::NO_CONTENT);
    // The Dapr channel of an app needs APP_API_TOKEN; its health and public API do not.
    let subscribe = format!("{}/dapr/subscribe", api.base());
    assert_eq!(status(http.get(&subscribe)).await?, StatusCode::UNAUTHORIZED);
    assert_eq!(status(http.get(&subscribe).header("dapr-api-token", "wrong")).await?, StatusCode::UNAUTHORIZED);
    assert_eq!(status(http.get(&subscribe).header("dapr-api-token", &app_token)).await?, StatusCode::OK);
    assert_eq!(status(http.get(format!("{}/healthz", api.base()))).await?, StatusCode::OK);

    // JWTs: another secret's, and another user's view of a task.
    let task = api.post("/v1/tasks", Some(&json!({"title": "mine"})), StatusCode::CREATED).await?;
    let path = format!("{}/v1/tasks/{}", api.base(), task["id"].as_str().context("id")?);
    let forged = task_api::auth::mint(b"not-the-secret-not-the-secret-not-the", USER, Duration::from_secs(600))?;
    assert_eq!(status(http.get(&path).bearer_auth(&forged)).await?, StatusCode::UNAUTHORIZED);
    // (Expiry beyond the clock-skew leeway is tested on task-api itself, tests/auth.rs.)
    assert_eq!(status(http.get(&path).bearer_auth(setup.api("mallory")?.token())).await?, StatusCode::NOT_FOUND);
    assert_eq!(status(http.get(&path).bearer_auth(api.token())).await?, StatusCode::OK);
    drop(devhost);

    let logs = std::fs::read_to_string(&log)?;
    assert!(logs.contains("[task-api]") && logs.lines().count() > 20, "the apps' logs were captured:\n{logs}");
    for (what, secret) in [
        ("JWT secret", setup.jwt_secret.as_str()),
        ("sidecar token", &api_token),
        ("app token", &app_token),
        ("bearer token", api.token()),
    ] {
        assert!(!logs.contains(secret), "the {what} appears in the logs");
    }
    // Written to a file, not a terminal: devhost's lines and the apps' carry no colour codes.
    assert!(!logs.contains('\u{1b}'), "ANSI escape codes in a log file");
    eprintln!("faults: {} log lines checked for 4 secrets", logs.lines().count());
    Ok(())
}

/// The last lines of a log file, for an error message.
fn tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
