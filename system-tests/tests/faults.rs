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

use std::time::Duration;

use anyhow::Context as _;
use reqwest::StatusCode;
use serde_json::json;
use system_tests::api::{client, json_body};
use system_tests::host::Setup;
use system_tests::scenarios::{self, kills, seed};
use system_tests::system::TestSystem;

const USER: &str = "faulty";
const SETTLE: Duration = Duration::from_secs(90);

// The load, the kills and the checks are `system_tests::scenarios::random_kills` and
// `store_outage`, shared with the same tests on the real platform (`tests/platform.rs`).

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
    let report = TestSystem::spawned(flags)
        .await?
        .play(async |system| scenarios::random_kills(system, kills, seed, false).await)
        .await?;
    eprintln!(
        "faults {flags:?}: {} kills survived, {} commands sent, {} tasks and {} audit entries checked",
        report.kills, report.commands, report.tasks, report.audit_entries
    );
    assert_eq!(report.kills, kills);
    Ok(())
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
    let mut retried = 0;
    let report = TestSystem::spawned(&[])
        .await?
        .play(async |system| {
            let report = scenarios::store_outage(system, seed, OUTAGE, async |system, outage| {
                let database = system.setup().database.clone();
                tokio::task::spawn_blocking(move || hold_write_lock(&database, outage)).await?
            })
            .await?;
            let log = system.devhost_log().context("devhost's log")?;
            retried = std::fs::read_to_string(&log)?
                .lines()
                .filter(|l| l.contains("retrying under the inbound retry policy"))
                .count();
            Ok(report)
        })
        .await?;
    eprintln!(
        "outage: {OUTAGE:?} without writes survived; {} answers lost and sent again, {retried} deliveries \
         retried, {} tasks and {} audit entries checked, no dead letters",
        report.lost, report.tasks, report.audit_entries
    );
    assert!(report.lost > 0, "no command met the outage: it proved nothing");
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
