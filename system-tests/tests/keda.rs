//! Scale to zero, proven on one machine (`make test-keda`, after its dry run; issue 15): the
//! real KEDA operator on a real kube-apiserver scales the function Deployments on the real
//! consumer lag of a real Kafka broker, and `system_tests::kubelet` runs as many (function +
//! daprd) pairs as the Deployments ask for on the real platform. The setup and the first phase
//! are in `system_tests::keda` (shared with `make bench`).
//!
//! Phases on one platform: a request published to `task-create` wakes create-task and then the
//! `task-events` consumers, and all go back to 0; then a reminder due in a few minutes wakes
//! fire-reminder from zero through its postgresql trigger (reminders due within 3 minutes)
//! before it is due, and it fires on time. At idle the HPAs KEDA creates are checked against the
//! ScaledObjects (bounds, metric, target).

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use system_tests::host::Setup;
use system_tests::keda::{ControlPlane, USER, all_asleep, drive, prepare, secs, wake_once};
use system_tests::kubelet::Kubelet;
use system_tests::platform::{Options, Platform};
use system_tests::workspace_root;

const NAMESPACE: &str = system_tests::keda::NAMESPACE;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_wakes_the_functions_from_zero_on_lag_and_on_due_reminders() -> anyhow::Result<()> {
    let setup = Setup::new(&[])?;
    let dir = Platform::fresh_dir("keda")?;
    std::fs::create_dir_all(dir.join("logs"))?;
    let control = ControlPlane::start(&dir)?;
    let mut platform =
        Platform::start(&setup.run_file, &dir, Options { no_functions: true, ..Options::default() }).await?;
    let mut kubelet = Kubelet::new(&control.kubectl, &control.kubeconfig, NAMESPACE);
    let outcome = async {
        let idle = prepare(&setup, &mut platform, &mut kubelet, &dir).await?;
        println!("idle: every worker at 0 replicas, every ScaledObject Ready, after {:.1} s", idle.idle_after);
        for line in &idle.hpas {
            println!("  HPA {line}");
        }
        let timings = wake_once(&setup, &mut platform, &mut kubelet, &idle).await?;
        let reminder = reminder_wakes_fire_reminder(&setup, &mut platform, &mut kubelet, &idle.workers).await?;
        anyhow::Ok((timings, reminder))
    }
    .await;
    if outcome.is_err() {
        eprintln!(
            "deployments:\n{}",
            kubelet.kubectl(&["get", "deploy,scaledobjects", "-n", NAMESPACE]).unwrap_or_default()
        );
        let keda = std::fs::read_to_string(&control.keda_log).unwrap_or_default();
        let tail: Vec<&str> = keda.lines().rev().take(30).collect();
        eprintln!("the end of the KEDA operator's log:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    let stopped = kubelet.stop_all(&mut platform);
    let logs = platform.logs().to_owned();
    platform.stop()?;
    drop(control);
    stopped?;
    let (t, r) = outcome.with_context(|| format!("logs in {}", logs.display()))?;
    let versions = std::fs::read_to_string(workspace_root().join("manifests/platform/versions.env"))?;
    let version =
        |name: &str| versions.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix('=')).unwrap_or("?").to_owned();
    println!(
        "\nbackend: real platform (daprd {}, Kafka {}, KEDA {}), pollingInterval 1 s, cooldownPeriod 5 s",
        version("DAPR_VERSION"),
        version("KAFKA_VERSION"),
        version("KEDA_VERSION")
    );
    println!("  first message -> create-task spec.replicas 1 (seen): {:.1} s", t.publish_to_replicas);
    println!("  create-task pair start (function + daprd healthy):   {:.1} s", t.pair_start);
    println!("  first message -> first processed (task readable):   {:.1} s", t.first_processed);
    println!("  first message -> audit entry written:                {:.1} s", t.audited);
    for (app, woke, healthy) in &t.woken {
        println!("  {app}: spec.replicas 1 seen at +{woke:.1} s, healthy at +{healthy:.1} s");
    }
    println!("  audit entry -> every worker back at 0 replicas:     {:.1} s", t.all_zero_after_audit);
    println!("reminder due {:.0} s after its creation (postgresql trigger: due within 180 s):", r.due_in);
    println!("  fire-reminder scheduled it, every worker back at 0 after: {:.1} s", r.back_to_zero);
    println!(
        "  woken by the postgresql trigger {:.1} s before it was due ({:.1} s after it entered the window)",
        r.woken_before_due, r.woken_after_window
    );
    println!("  fired {} ms late; fire-reminder back at 0 {:.1} s after it fired", r.late_by_ms, r.zero_after_fired);
    Ok(())
}

/// What the reminder phase measured (seconds).
#[derive(Debug)]
struct ReminderTimings {
    due_in: f64,
    back_to_zero: f64,
    woken_before_due: f64,
    woken_after_window: f64,
    late_by_ms: u64,
    zero_after_fired: f64,
}

/// The shipped wake-up window of fire-reminder's postgresql trigger (keda/fire-reminder.yaml:
/// reminders due within 3 minutes).
const REMINDER_WINDOW: Duration = Duration::from_secs(180);
/// How long before the window opens fire-reminder has to schedule the reminder and go back to
/// zero (a few seconds with a 5 s cooldown).
const REMINDER_LEAD: Duration = Duration::from_secs(40);

/// Phase 2, everything at 0: a task with a reminder due in REMINDER_WINDOW + REMINDER_LEAD.
/// fire-reminder wakes on the task event, schedules the reminder and goes back to 0; once the
/// reminder is due within the window the postgresql trigger alone (no lag anywhere) wakes it
/// again, before the reminder is due, and the reminder fires on time; then it goes back to 0.
async fn reminder_wakes_fire_reminder(
    setup: &Setup,
    platform: &mut Platform,
    kubelet: &mut Kubelet,
    workers: &[String],
) -> anyhow::Result<ReminderTimings> {
    const APP: &str = "fire-reminder";
    let (base, base_utc) = (Instant::now(), Utc::now());
    let utc = move |at: Instant| {
        base_utc + chrono::Duration::from_std(at.saturating_duration_since(base)).unwrap_or_default()
    };
    let api = setup.api(USER)?;
    let due_in = REMINDER_WINDOW + REMINDER_LEAD;
    let remind_at = Utc::now() + chrono::Duration::from_std(due_in)?;
    let window_opens = remind_at - chrono::Duration::from_std(REMINDER_WINDOW)?;
    let body = serde_json::json!({
        "title": "wake fire-reminder",
        "reminder": { "at": remind_at.to_rfc3339_opts(SecondsFormat::Millis, true) },
    });
    let created = api.post("/v1/tasks", Some(&body), StatusCode::CREATED).await?;
    let task_id = created["id"].as_str().context("the created task's id")?.to_owned();
    let path = format!("/v1/tasks/{task_id}/reminder");
    drive(kubelet, platform, "the reminder scheduled by fire-reminder", Duration::from_secs(60), async |_, _| {
        Ok((api.get(&path).await?["status"] == "scheduled").then_some(()))
    })
    .await?;
    // The task event woke every task-events consumer: all of them back at 0 and stopped.
    let asleep = all_asleep(kubelet, platform, workers, "every worker back at 0 after scheduling").await?;
    ensure!(
        utc(asleep) < window_opens,
        "the workers were not back at 0 before the reminder entered the trigger's window (raise REMINDER_LEAD)"
    );
    ensure!(api.get(&path).await?["status"] == "scheduled", "the reminder is no longer scheduled");
    let lags = platform.lag().await?;
    ensure!(lags.iter().filter(|l| l.group == APP).all(|l| l.lag == 0), "fire-reminder still has lag: {lags:?}");
    let stops = kubelet.history().len();

    // Only the postgresql trigger can wake it now.
    let wake_timeout = due_in + Duration::from_secs(30);
    let woke =
        drive(kubelet, platform, "fire-reminder woken by the reminder coming due", wake_timeout, async |k, _| {
            Ok(k.history()[stops..].iter().find(|c| c.app == APP && c.started).cloned())
        })
        .await?;
    let others: Vec<String> =
        kubelet.history()[stops..].iter().filter(|c| c.app != APP).map(|c| c.app.clone()).collect();
    ensure!(others.is_empty(), "other functions woke while only the reminder was pending: {others:?}");
    let woke_at = utc(woke.seen);
    ensure!(woke_at < remind_at, "fire-reminder woke at {woke_at}, after the reminder was due ({remind_at})");
    // Not before the window opened (one polling interval of slack for the clocks' conversion).
    ensure!(
        woke_at >= window_opens - chrono::Duration::seconds(1),
        "fire-reminder woke at {woke_at}, before the reminder entered the window ({window_opens}): not the postgresql trigger"
    );

    let fired = drive(kubelet, platform, "the reminder to fire", due_in + Duration::from_secs(60), async |_, _| {
        let reminder = api.get(&path).await?;
        Ok((reminder["status"] == "fired").then(|| (reminder, Instant::now())))
    })
    .await?;
    let late_by_ms = fired.0["late_by_ms"].as_u64().context("late_by_ms of the fired reminder")?;
    // On time: the Scheduler fires the job at its time to the sidecar that is already up.
    ensure!(late_by_ms <= 2_000, "the reminder fired {late_by_ms} ms late");
    let zero =
        drive(kubelet, platform, "fire-reminder back at 0 after firing", Duration::from_secs(60), async |k, p| {
            Ok((k.replicas()?.get(APP) == Some(&0) && p.replicas(APP)? == 0).then(Instant::now))
        })
        .await?;
    Ok(ReminderTimings {
        due_in: due_in.as_secs_f64(),
        back_to_zero: secs(base, asleep),
        woken_before_due: (remind_at - woke_at).num_milliseconds() as f64 / 1000.0,
        woken_after_window: (woke_at - window_opens).num_milliseconds() as f64 / 1000.0,
        late_by_ms,
        zero_after_fired: secs(fired.1, zero),
    })
}
