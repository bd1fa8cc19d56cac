//! Scale to zero, proven on one machine (`make test-keda`, after its dry run; issue 15): the
//! real KEDA operator on a real kube-apiserver scales the function Deployments on the real
//! consumer lag of a real Kafka broker, and `system_tests::kubelet` runs as many (function +
//! daprd) pairs as the Deployments ask for on the real platform. The setup and the first phase
//! are in `system_tests::keda` (shared with `make bench`).
//!
//! Phases on one platform: a request published to `task-create` wakes create-task and then the
//! `task-events` consumers, and all go back to 0 (create-task's cold path is split into its
//! parts, each from a named clock or log line, and their order asserted); then a burst of
//! requests from many users makes KEDA's HPA, reconciled by kube-controller-manager's HPA
//! controller, scale create-task
//! from 1 to its `maxReplicaCount`, every replica takes a share of the partitions, every
//! request is done exactly once, and all go back to 0; then a reminder due in a few minutes
//! wakes fire-reminder from zero through its postgresql trigger (reminders due within 3
//! minutes) before it is due, and it fires on time; the fired reminder wakes the notifier on
//! `reminders`, which consumes it and goes back to 0. At idle the HPAs KEDA creates are checked
//! against the ScaledObjects (bounds, metric, target). Last, every function's pair is started at
//! once and its idle RSS and CPU, and its daprd's, read from `/proc` over a 20 s window (issue
//! 24's measured inputs, docs/cost.md "Measured inputs").
//!
//! Then, on a platform of its own, issue 24's model check: a short trace of create requests
//! (cold bursts and warm ones) played on create-task, its replica timeline and its requests'
//! waits compared with what `cost::replay` predicts for the same trace, the settings read from
//! the overlay this run applied and the cold start and rate measured in this run.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use system_tests::api::client;
use system_tests::host::Setup;
use system_tests::keda::{
    COLD_PATH_LOG_LEVEL, ControlPlane, IDLE_SETTLE, IDLE_WINDOW, Idle, TASK_EVENTS_CONSUMERS, USER, all_asleep, drive,
    idle_usage, prepare, secs, wake_once,
};
use system_tests::kubelet::Kubelet;
use system_tests::platform::{Options, Platform};
use system_tests::scenarios::Create;
use system_tests::workspace_root;

const NAMESPACE: &str = system_tests::keda::NAMESPACE;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_wakes_the_functions_from_zero_on_lag_and_on_due_reminders() -> anyhow::Result<()> {
    // `info`: every function logs each request it handles (create-task: "task request"), which
    // is how the load phase tells what each replica did.
    let setup = Setup::new(&[("RUST_LOG", "info")])?;
    let dir = Platform::fresh_dir("keda")?;
    std::fs::create_dir_all(dir.join("logs"))?;
    let control = ControlPlane::start(&dir)?;
    // create-task's daprd at debug: its log has the Kafka consumer's steps of the cold path.
    let (app, level) = COLD_PATH_LOG_LEVEL;
    let options =
        Options { no_functions: true, dapr_log_levels: vec![(app.into(), level.into())], ..Options::default() };
    let mut platform = Platform::start(&setup.run_file, &dir, options).await?;
    let mut kubelet = Kubelet::new(&control.kubectl, &control.kubeconfig, NAMESPACE);
    let outcome = async {
        let idle = prepare(&setup, &mut platform, &mut kubelet, &dir).await?;
        println!("idle: every worker at 0 replicas, every ScaledObject Ready, after {:.1} s", idle.idle_after);
        for line in &idle.hpas {
            println!("  HPA {line}");
        }
        let timings = wake_once(&setup, &mut platform, &mut kubelet, &idle).await?;
        let load = scales_out_under_load(&setup, &mut platform, &mut kubelet, &idle).await?;
        let reminder = reminder_wakes_fire_reminder(&setup, &mut platform, &mut kubelet, &idle.workers).await?;
        let usage = idle_usage(&mut platform, IDLE_WINDOW).await?;
        anyhow::Ok((timings, load, reminder, usage))
    }
    .await;
    if outcome.is_err() {
        report_failure(&kubelet, &control);
    }
    let stopped = kubelet.stop_all(&mut platform);
    let logs = platform.logs().to_owned();
    platform.stop()?;
    drop(control);
    stopped?;
    let (t, l, r, usage) = outcome.with_context(|| format!("logs in {}", logs.display()))?;
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
    println!(
        "create-task's cold path, seconds from the publish (debug builds; create-task's daprd at log level debug):"
    );
    println!("  {:<48} {:>7}  {:>7}  source", "part", "at (s)", "step (s)");
    let mut last = 0.0;
    let cold_path = t.cold_path.as_ref().context("wake_once split no cold path: create-task's daprd not at debug?")?;
    for (part, source, at) in cold_path.parts() {
        println!("  {part:<48} {at:>7.3}  {:>+7.3}  {source}", at - last);
        last = at;
    }
    println!(
        "idle, every function's pair up at once, {} s window after a {} s settle (debug builds, /proc VmRSS and utime+stime):",
        IDLE_WINDOW.as_secs(),
        IDLE_SETTLE.as_secs()
    );
    println!(
        "  {:<18} {:>12} {:>12} {:>12} {:>12}",
        "function", "fn RSS MiB", "fn mCPU", "daprd RSS MiB", "daprd mCPU"
    );
    for u in &usage {
        println!(
            "  {:<18} {:>12.1} {:>12.1} {:>12.1} {:>12.1}",
            u.app, u.function_rss_mib, u.function_millicores, u.daprd_rss_mib, u.daprd_millicores
        );
    }
    println!(
        "1 -> N under load: {} create requests from {} users published in {:.1} s (HPA controller sync 1 s):",
        LOAD, OWNERS, l.published_in
    );
    println!(
        "  create-task spec.replicas {} (its maxReplicaCount) at +{:.1} s, {} pairs running at +{:.1} s; its HPA then: {}",
        l.max, l.at_max, l.max, l.running_max, l.hpa
    );
    println!("  requests handled per create-task replica: {:?}", l.handled);
    println!("  peak replicas: {:?}", l.peaks);
    println!(
        "  every consumer group at lag 0 at +{:.1} s; every task created once and audited once; every worker back at 0 {:.1} s later",
        l.drained, l.asleep_after
    );
    println!("reminder due {:.0} s after its creation (postgresql trigger: due within 180 s):", r.due_in);
    println!("  fire-reminder scheduled it, every worker back at 0 after: {:.1} s", r.back_to_zero);
    println!(
        "  woken by the postgresql trigger {:.1} s before it was due ({:.1} s after it entered the window)",
        r.woken_before_due, r.woken_after_window
    );
    println!("  fired {} ms late; fire-reminder back at 0 {:.1} s after it fired", r.late_by_ms, r.zero_after_fired);
    println!(
        "  the notifier woken by it on reminders, done and back at 0 {:.1} s after it fired",
        r.notifier_done_after_fired
    );
    Ok(())
}

/// Phase 3's burst: create requests, spread over OWNERS users (the partition key is the owner,
/// so they land on most of task-create's 12 partitions), published as fast as the sidecar takes
/// them. Enough that one replica is still busy when the HPA's extra replicas have joined.
const LOAD: usize = 3000;
const OWNERS: usize = 24;
/// Requests in flight while publishing the burst.
const PUBLISHERS: usize = 32;

/// What the load phase measured (seconds from the first publish unless said otherwise).
#[derive(Debug)]
struct LoadTimings {
    published_in: f64,
    /// create-task's maxReplicaCount.
    max: usize,
    /// spec.replicas reached `max` (as the kubelet saw it), and `max` pairs were running.
    at_max: f64,
    running_max: f64,
    /// The HPA's status once create-task was at `max`: desired replicas and the metric's value.
    hpa: String,
    /// "task request" lines per create-task replica (1..=max) during the phase.
    handled: Vec<usize>,
    /// The most pairs each worker ran at once.
    peaks: BTreeMap<String, usize>,
    drained: f64,
    asleep_after: f64,
}

/// The HPA KEDA made for `app` as the HPA controller sees it: its desired replicas, and the
/// value of its first external metric read the way the controller reads it (through the
/// aggregation layer from KEDA's metrics API server: the trigger's total lag).
fn hpa_reading(kubelet: &Kubelet, app: &str) -> anyhow::Result<String> {
    let hpa: serde_json::Value = serde_json::from_str(&kubelet.kubectl(&[
        "get",
        "hpa",
        &format!("keda-hpa-{app}"),
        "-n",
        NAMESPACE,
        "-o",
        "json",
    ])?)?;
    let metric = &hpa["spec"]["metrics"][0]["external"]["metric"];
    let name = metric["name"].as_str().context("the HPA's external metric")?;
    let selector: Vec<String> = metric["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    let path = format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{NAMESPACE}/{name}?labelSelector={}",
        selector.join(",").replace('/', "%2F").replace('=', "%3D").replace(',', "%2C")
    );
    let values: serde_json::Value = serde_json::from_str(&kubelet.kubectl(&["get", "--raw", &path])?)?;
    Ok(format!(
        "desiredReplicas {}, {name} = {}",
        hpa["status"]["desiredReplicas"],
        values["items"][0]["value"].as_str().unwrap_or("?")
    ))
}

/// "task request" lines in `<logs>/<name>.log` (0 when there is no such file).
fn handled(logs: &Path, name: &str) -> anyhow::Result<usize> {
    match std::fs::read_to_string(logs.join(format!("{name}.log"))) {
        Ok(text) => Ok(text.lines().filter(|l| l.contains("task request")).count()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).with_context(|| format!("reading {name}.log")),
    }
}

/// create-task's log files, replica 1 to `max` (`create-task`, `create-task-2`, ...).
fn replica_logs(max: usize) -> Vec<String> {
    (1..=max).map(|n| if n == 1 { "create-task".to_owned() } else { format!("create-task-{n}") }).collect()
}

/// `app`'s `maxReplicaCount`, as its ScaledObject was applied.
fn max_replicas(idle: &Idle, app: &str) -> anyhow::Result<usize> {
    let max = idle
        .scaled
        .iter()
        .find(|so| so["metadata"]["name"].as_str() == Some(app))
        .and_then(|so| so["spec"]["maxReplicaCount"].as_u64())
        .with_context(|| format!("{app}'s maxReplicaCount"))?;
    Ok(usize::try_from(max)?)
}

/// Phase 3, everything at 0: LOAD create requests from OWNERS users. KEDA wakes create-task
/// (0 -> 1); the HPA it created, reconciled by kube-controller-manager from the lag KEDA's
/// metrics API server reports (lag / lagThreshold 20 per replica), scales it 1 -> N up to its
/// maxReplicaCount; the kubelet runs N pairs; each replica joins the consumer group and
/// handles part of the burst; every request is done exactly once (one task, one audit entry
/// each); all groups drain and every worker goes back to 0.
async fn scales_out_under_load(
    setup: &Setup,
    platform: &mut Platform,
    kubelet: &mut Kubelet,
    idle: &Idle,
) -> anyhow::Result<LoadTimings> {
    const APP: &str = "create-task";
    let max = max_replicas(idle, APP)?;
    ensure!(max > 1, "create-task's maxReplicaCount is {max}: nothing to scale out to");
    let logs = platform.logs().to_owned();
    let before: Vec<usize> = replica_logs(max).iter().map(|n| handled(&logs, n)).collect::<anyhow::Result<_>>()?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let creates: Vec<Create> = (0..LOAD)
        .map(|i| Create { owner: format!("load-{}", i % OWNERS), key: format!("load-{run}-{i}"), via_api: false })
        .collect();

    // Publishing runs beside the kubelet, as a producer would beside the cluster.
    let started = Instant::now();
    let publisher = {
        let (api, http, sidecar, creates) = (setup.api(USER)?, client()?, idle.publisher.clone(), creates.clone());
        tokio::spawn(async move {
            let mut queue = creates.into_iter();
            let mut in_flight = tokio::task::JoinSet::new();
            loop {
                while in_flight.len() < PUBLISHERS {
                    let Some(create) = queue.next() else { break };
                    let (api, http, sidecar) = (api.clone(), http.clone(), sidecar.clone());
                    in_flight.spawn(async move {
                        let key = create.key.clone();
                        match create.send(&api, &http, &sidecar).await {
                            Ok(true) => Ok(()),
                            Ok(false) => bail!("{key}: not accepted by the publisher's sidecar"),
                            Err(e) => Err(e.context(key)),
                        }
                    });
                }
                match in_flight.join_next().await {
                    Some(done) => done.context("a publishing task panicked")??,
                    None => return anyhow::Ok(Instant::now()),
                }
            }
        })
    };

    let workers = idle.workers.clone();
    let mut peaks: BTreeMap<String, usize> = BTreeMap::new();
    let (mut at_max, mut running_max, mut hpa) = (None, None, String::new());
    let mut published = None;
    let drained =
        drive(kubelet, platform, "the burst done and every group drained", Duration::from_secs(300), async |k, p| {
            for w in &workers {
                let peak = peaks.entry(w.clone()).or_default();
                *peak = (*peak).max(p.replicas(w)?);
            }
            if at_max.is_none() && k.replicas()?.get(APP).is_some_and(|&r| r == max as i64) {
                at_max = Some(Instant::now());
                hpa = hpa_reading(k, APP)?;
            }
            if running_max.is_none() && p.replicas(APP)? == max {
                running_max = Some(Instant::now());
            }
            if published.is_none() && publisher.is_finished() {
                published = Some(Instant::now());
            }
            if published.is_none() {
                return Ok(None);
            }
            let lags = p.lag().await?;
            let behind: i64 = lags
                .iter()
                .filter(|l| l.group == APP || TASK_EVENTS_CONSUMERS.contains(&l.group.as_str()))
                .map(|l| l.lag)
                .sum();
            Ok((behind == 0).then(Instant::now))
        })
        .await;
    let published_at = publisher.await.context("the publisher panicked")??;
    let drained = drained?;
    let at_max = at_max.context("create-task's spec.replicas never reached its maxReplicaCount under load")?;
    let running_max = running_max.context("the kubelet never ran maxReplicaCount create-task pairs")?;

    // Every replica took part: each handled some of the burst (the group spread the partitions).
    let mut per_replica = Vec::new();
    for (name, before) in replica_logs(max).iter().zip(&before) {
        per_replica.push(handled(&logs, name)? - before);
    }
    ensure!(per_replica.iter().all(|&n| n > 0), "a create-task replica handled nothing: {per_replica:?}");
    ensure!(
        per_replica.iter().sum::<usize>() >= LOAD,
        "the replicas handled {per_replica:?}, fewer than the {LOAD} requests"
    );
    // Exactly once: each user has exactly their tasks, each audited once as created.
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in &creates {
        expected.entry(c.owner.clone()).or_default().push(c.task_id());
    }
    let mut checks = tokio::task::JoinSet::new();
    for (owner, mut ids) in expected {
        let api = setup.api(&owner)?;
        checks.spawn(async move {
            let tasks = api.list_all(&[("tag", "burst")]).await?;
            let mut got: Vec<String> = tasks.iter().filter_map(|t| t["id"].as_str().map(str::to_owned)).collect();
            got.sort();
            ids.sort();
            ensure!(got == ids, "{owner}: {} tasks listed, {} created", got.len(), ids.len());
            for id in &ids {
                let changes = api.audit_changes(id).await?;
                ensure!(changes == ["created"], "{owner}: task {id} audited {changes:?}");
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = checks.join_next().await {
        done.context("a check panicked")??;
    }
    let asleep = all_asleep(kubelet, platform, &idle.workers, "every worker back at 0 after the burst").await?;
    Ok(LoadTimings {
        published_in: secs(started, published_at),
        max,
        at_max: secs(started, at_max),
        running_max: secs(started, running_max),
        hpa,
        handled: per_replica,
        peaks,
        drained: secs(started, drained),
        asleep_after: secs(drained, asleep),
    })
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
    /// From the reminder fired to the notifier woken by it on `reminders`, done and back at 0.
    notifier_done_after_fired: f64,
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
    // The fired reminder is on `reminders`: its lag wakes the notifier (keda/notifier.yaml),
    // which handles it (alice has set no channels: nothing to send), commits, and goes back to 0.
    const NOTIFIER: &str = "notifier";
    let notified = drive(
        kubelet,
        platform,
        "the notifier woken by the fired reminder, done and back at 0",
        Duration::from_secs(90),
        async |k, p| {
            let woke = k.history()[stops..].iter().any(|c| c.app == NOTIFIER && c.started);
            let lag: i64 = p.lag().await?.iter().filter(|l| l.group == NOTIFIER).map(|l| l.lag).sum();
            let asleep = k.replicas()?.get(NOTIFIER) == Some(&0) && p.replicas(NOTIFIER)? == 0;
            Ok((woke && lag == 0 && asleep).then(Instant::now))
        },
    )
    .await?;
    Ok(ReminderTimings {
        due_in: due_in.as_secs_f64(),
        back_to_zero: secs(base, asleep),
        woken_before_due: (remind_at - woke_at).num_milliseconds() as f64 / 1000.0,
        woken_after_window: (woke_at - window_opens).num_milliseconds() as f64 / 1000.0,
        late_by_ms,
        zero_after_fired: secs(fired.1, zero),
        notifier_done_after_fired: secs(fired.1, notified),
    })
}

// Issue 24, point 3: the cost replay (`cost::replay`) checked once against the real thing.

/// The model check's trace: (second from its start, create requests published then). A cold
/// start; a burst 3 s later, within the overlay's 5 s cooldown (create-task still up: warm);
/// the same pair again after a 17 s gap, longer than the cooldown and the stop (asleep: cold);
/// a last cold burst. 8 requests a burst stay under create-task's lagThreshold of 20, so its HPA
/// keeps 1 replica and the timeline is KEDA's own 0 <-> 1 moves: the HPA's sync period (1 s on
/// the test control plane) is not an input of the replay, which syncs every 15 s as a cluster's
/// controller-manager does by default.
const TRACE: [(u64, usize); 5] = [(0, 8), (3, 8), (20, 8), (23, 8), (40, 8)];

/// How far the replay may be from the real run, and why (each is the model's own resolution,
/// not a fit to one run's numbers):
/// - cold starts: equal. Each is a 0 -> 1 move of KEDA's, decided on cooldown and lag alone.
/// - each scale event within 2 s: the replay puts a poll at every whole second and a move at the
///   start of its second (up to 1 s off the real poll's phase), and the real time is the kubelet
///   loop's reading (every 0.2 s, later while its pass starts or stops a pair: up to about 1 s).
///   A 1 -> 0 move comes `cooldownPeriod` after the last poll that saw lag, and whether a poll
///   sees a warm burst is a matter of phase the replay does not have: its poll comes after the
///   second's arrivals, so it always sees one; the real poll sees one only if it reads the lag
///   before create-task's consumer commits the burst's offsets (daprd marks each message handled
///   and sarama commits every second: components-contrib v1.18.3
///   common/component/kafka/consumer.go, sarama config.go `AutoCommit.Interval`), about one
///   poll in two here. So a 1 -> 0 move may lie anywhere between the replay of the trace as it
///   is and the replay without its warm bursts (no poll sees them), 2 s either side.
/// - replica-seconds within 30 % of that range: each 0 -> 1 -> 0 period of about 7 s (cold start,
///   cooldown, a poll) is off by up to 1 s at each end for the reasons above, and the replay
///   removes a pod at once where the real one stops gracefully (SIGTERM, a few tenths here).
/// - wait p50 and p99 within 1.5 s: the replay polls in a message's own second (the real poll
///   comes up to 1 s later) and rounds the cold start up to whole seconds (up to 1 s the other
///   way), and the real wait includes the kubelet loop's reading of `spec.replicas`.
const EVENT_MARGIN_S: f64 = 2.0;
const REPLICA_SECONDS_MARGIN: f64 = 0.30;
const WAIT_MARGIN_S: f64 = 1.5;

/// What the real run gave for create-task, in seconds from the trace's start.
#[derive(Debug, Clone)]
struct Observed {
    /// Each request: published (before the publish call) and handled (create-task's "task
    /// request" line).
    requests: Vec<(f64, f64)>,
    /// `spec.replicas` each time it was seen to change (the kubelet's passes and the loop's
    /// readings), from (0, 0).
    spec: Vec<(f64, i64)>,
    /// Each pair: asked for (its pass saw `spec.replicas` ask), healthy, gone.
    pods: Vec<(f64, f64, f64)>,
    /// Every request handled and every worker back at 0 and stopped.
    end: f64,
}

/// The figures compared, for the real run and for the replay.
#[derive(Debug, Clone, PartialEq)]
struct Figures {
    cold_starts: u32,
    replica_seconds: f64,
    /// (time, from, to) of each change of `spec.replicas`.
    events: Vec<(f64, i64, i64)>,
    /// When each pod became ready (shown, not compared: it follows from the events and the
    /// cold start, both compared).
    ready: Vec<f64>,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Figures {
    fn observed(o: &Observed) -> Self {
        let events: Vec<(f64, i64, i64)> = o.spec.windows(2).map(|w| (w[1].0, w[0].1, w[1].1)).collect();
        let mut waits: Vec<f64> = o.requests.iter().map(|(p, h)| h - p).collect();
        waits.sort_by(f64::total_cmp);
        // As `cost::replay::WaitStats`: the smallest wait that at least that share did not exceed.
        let percentile = |p: f64| {
            let rank = ((waits.len() as f64) * p).ceil().max(1.0) as usize;
            waits.get(rank - 1).copied().unwrap_or_default()
        };
        Self {
            cold_starts: events.iter().filter(|(_, from, to)| *from == 0 && *to > 0).count() as u32,
            replica_seconds: o.pods.iter().map(|(asked, _, gone)| gone - asked).sum(),
            ready: o.pods.iter().map(|(_, healthy, _)| *healthy).collect(),
            p50: percentile(0.5),
            p99: percentile(0.99),
            max: waits.last().copied().unwrap_or_default(),
            events,
        }
    }

    fn predicted(r: &cost::replay::ReplayResult) -> Self {
        let (mut events, mut ready) = (Vec::new(), Vec::new());
        let (mut before, mut ready_before) = (0, 0);
        for (t, second) in r.timeline.iter().enumerate() {
            if second.replicas != before {
                events.push((t as f64, i64::from(before), i64::from(second.replicas)));
                before = second.replicas;
            }
            for _ in ready_before..second.ready {
                ready.push(t as f64);
            }
            ready_before = second.ready;
        }
        Self {
            cold_starts: r.cold_starts,
            replica_seconds: r.replica_seconds as f64,
            events,
            ready,
            p50: r.waits.p50_s as f64,
            p99: r.waits.p99_s as f64,
            max: r.waits.max_s as f64,
        }
    }

    /// Where the real run (`self`) is outside the margins around the replay's prediction
    /// (empty: they agree).
    fn disagreements(&self, model: &Prediction) -> Vec<String> {
        let (seen, unseen) = (&model.seen, &model.unseen);
        let mut out = Vec::new();
        if self.cold_starts != seen.cold_starts {
            out.push(format!("cold starts: real {}, replay {}", self.cold_starts, seen.cold_starts));
        }
        let moves = |f: &Figures| f.events.iter().map(|e| (e.1, e.2)).collect::<Vec<_>>();
        if moves(self) != moves(seen) {
            out.push(format!("scale events: real {:?}, replay {:?}", moves(self), moves(seen)));
        } else {
            // Without the warm bursts the moves are the same, only the 1 -> 0 ones earlier; if
            // not, the replay of the trace as it is is the only prediction.
            let lower = if moves(unseen) == moves(seen) { &unseen.events } else { &seen.events };
            for ((real, predicted), early) in self.events.iter().zip(&seen.events).zip(lower) {
                let from = if real.2 == 0 { early.0.min(predicted.0) } else { predicted.0 };
                if real.0 < from - EVENT_MARGIN_S || real.0 > predicted.0 + EVENT_MARGIN_S {
                    out.push(format!(
                        "{} -> {}: real at {:.1} s, replay at {:.0} s ({:.0} s if no poll sees the warm bursts)",
                        real.1, real.2, real.0, predicted.0, early.0
                    ));
                }
            }
        }
        let (low, high) =
            (seen.replica_seconds.min(unseen.replica_seconds), seen.replica_seconds.max(unseen.replica_seconds));
        if self.replica_seconds < low * (1.0 - REPLICA_SECONDS_MARGIN)
            || self.replica_seconds > high * (1.0 + REPLICA_SECONDS_MARGIN)
        {
            out.push(format!("replica-seconds: real {:.1}, replay {low:.0} to {high:.0}", self.replica_seconds));
        }
        for (what, real, predicted) in [("p50", self.p50, seen.p50), ("p99", self.p99, seen.p99)] {
            if (real - predicted).abs() > WAIT_MARGIN_S {
                out.push(format!("wait {what}: real {real:.2} s, replay {predicted:.0} s"));
            }
        }
        out
    }
}

/// The replay's prediction for the trace: as it is (the replay's poll sees every burst), and
/// without the bursts that came while a replica was ready in that replay (no poll sees them:
/// they are handled and committed between two polls). The waits are the first one's.
#[derive(Debug, Clone)]
struct Prediction {
    seen: Figures,
    unseen: Figures,
}

impl Prediction {
    fn of(config: &cost::replay::ReplayConfig, trace: &cost::replay::FunctionTrace) -> Self {
        let replay =
            |trace: &cost::replay::FunctionTrace| cost::replay::replay(config, trace, cost::replay::Strategy::Keda);
        let as_is = replay(trace);
        let mut cold_only = trace.clone();
        for t in 1..cold_only.kafka.len() {
            if as_is.timeline.get(t - 1).is_some_and(|s| s.ready > 0) {
                cold_only.kafka[t] = 0;
            }
        }
        Self { seen: Figures::predicted(&as_is), unseen: Figures::predicted(&replay(&cold_only)) }
    }
}

fn show_events(events: &[(f64, i64, i64)], decimals: usize) -> String {
    events.iter().map(|(t, from, to)| format!("{from}->{to} {t:.decimals$}")).collect::<Vec<_>>().join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cost_replay_predicts_a_short_trace_on_the_real_platform() -> anyhow::Result<()> {
    let setup = Setup::new(&[("RUST_LOG", "info")])?;
    let dir = Platform::fresh_dir("keda-model")?;
    std::fs::create_dir_all(dir.join("logs"))?;
    let control = ControlPlane::start(&dir)?;
    let mut platform =
        Platform::start(&setup.run_file, &dir, Options { no_functions: true, ..Options::default() }).await?;
    let mut kubelet = Kubelet::new(&control.kubectl, &control.kubeconfig, NAMESPACE);
    let outcome = async {
        let idle = prepare(&setup, &mut platform, &mut kubelet, &dir).await?;
        let observed = play_trace(&setup, &mut platform, &mut kubelet, &idle).await?;
        anyhow::Ok((idle.documents, observed))
    }
    .await;
    if outcome.is_err() {
        report_failure(&kubelet, &control);
    }
    // The operator's own log of its moves, beside the platform's (the control plane's folder goes with it).
    let _ = std::fs::copy(&control.keda_log, dir.join("logs/keda.log"));
    let stopped = kubelet.stop_all(&mut platform);
    let logs = platform.logs().to_owned();
    platform.stop()?;
    drop(control);
    stopped?;
    let (documents, observed) = outcome.with_context(|| format!("logs in {}", logs.display()))?;

    // The same settings: the documents this run applied, read by the cost library.
    let documents: Vec<serde_json::Value> =
        documents.iter().map(serde_json::to_value).collect::<Result<_, _>>().context("the applied overlay as JSON")?;
    let functions = cost::settings::functions_from_documents(&documents)?;
    let settings = functions
        .iter()
        .find(|f| f.scaled_object.name == "create-task")
        .context("no create-task ScaledObject in the applied overlay")?;
    let so = &settings.scaled_object;
    let gaps_ok = TRACE.windows(2).any(|w| w[1].0 - w[0].0 < u64::from(so.cooldown_period_s))
        && TRACE.windows(2).any(|w| w[1].0 - w[0].0 > 3 * u64::from(so.cooldown_period_s));
    ensure!(gaps_ok, "the trace has no warm and cold gaps for a cooldown of {} s", so.cooldown_period_s);

    // The measured inputs, from this run. Cold start: each wake-up's pair asked for (spec.replicas
    // 1 seen) to its first request handled, the median rounded up to the replay's 1 s step.
    let mut colds: Vec<f64> = observed
        .pods
        .iter()
        .filter_map(|(asked, _, _)| {
            observed
                .requests
                .iter()
                .map(|(_, handled)| *handled)
                .filter(|h| h >= asked)
                .reduce(f64::min)
                .map(|h| h - asked)
        })
        .collect();
    colds.sort_by(f64::total_cmp);
    let cold = colds.get(colds.len() / 2).copied().context("no wake-up in the run")?;
    // Rate: the requests waiting when each pair became healthy, handled one after the other:
    // (n - 1) over the time from the first handled to the last (a lower bound on what one
    // replica does: 8 requests are too few to saturate it).
    let (mut drained, mut drain_s) = (0usize, 0.0f64);
    for (_, healthy, _) in &observed.pods {
        let waiting: Vec<f64> =
            observed.requests.iter().filter(|(p, h)| p < healthy && h >= healthy).map(|(_, h)| *h).collect();
        if let (Some(first), Some(last)) =
            (waiting.iter().copied().reduce(f64::min), waiting.iter().copied().reduce(f64::max))
        {
            drained += waiting.len() - 1;
            drain_s += (last - first).max(0.001);
        }
    }
    ensure!(drained > 0, "no request waited for a pair to start");
    let measured = cost::replay::Measured {
        partitions: cost::measured::partitions("task-create"),
        cold_start_s: (cold.ceil() as u32).max(1),
        rate_per_replica: drained as f64 / drain_s,
    };
    let length = observed.end.ceil() as usize;
    let mut kafka = vec![0u32; length];
    for (published, _) in &observed.requests {
        kafka[(*published as usize).min(length - 1)] += 1;
    }
    let trace = cost::replay::FunctionTrace { kafka, due: vec![] };
    let config = cost::replay::ReplayConfig::new(so, measured);
    let (real, model) = (Figures::observed(&observed), Prediction::of(&config, &trace));

    let trigger = so.triggers.first().map(|t| format!("{t:?}")).unwrap_or_default();
    println!(
        "\ncreate-task, {} requests in bursts at {} s; settings from the applied overlay: pollingInterval {} s, \
         cooldownPeriod {} s, replicas {}..{}, {trigger}",
        observed.requests.len(),
        TRACE.iter().map(|(t, n)| format!("{t} ({n})")).collect::<Vec<_>>().join(", "),
        so.polling_interval_s,
        so.cooldown_period_s,
        so.min_replicas,
        so.max_replicas,
    );
    println!(
        "measured in this run: cold start {:.2} s (median of {:?}, spec.replicas 1 seen -> first request handled) \
         -> {} s; rate {:.0} requests/s per replica ({drained} requests drained by newly started pairs); \
         partitions {} (topics.txt)",
        cold,
        colds.iter().map(|c| format!("{c:.2}")).collect::<Vec<_>>(),
        measured.cold_start_s,
        measured.rate_per_replica,
        measured.partitions,
    );
    println!("{:<36} {:<44} replay", "", "real");
    let (seen, unseen) = (&model.seen, &model.unseen);
    println!("{:<36} {:<44} {}", "cold starts", real.cold_starts, seen.cold_starts);
    println!(
        "{:<36} {:<44} {:.0} ({:.0} if no poll sees the warm bursts)",
        "replica-seconds (pods asked -> gone)",
        format!("{:.1}", real.replica_seconds),
        seen.replica_seconds,
        unseen.replica_seconds
    );
    println!("{:<36} {:<44} {}", "scale events (s)", show_events(&real.events, 1), show_events(&seen.events, 0));
    println!("{:<36} {:<44} {}", "  if no poll sees the warm bursts", "", show_events(&unseen.events, 0));
    let times =
        |ts: &[f64], decimals: usize| ts.iter().map(|t| format!("{t:.decimals$}")).collect::<Vec<_>>().join(", ");
    println!("{:<36} {:<44} {}", "pods ready (s)", times(&real.ready, 1), times(&seen.ready, 0));
    println!(
        "{:<36} {:<44} {:.0} / {:.0} / {:.0}",
        "wait p50 / p99 / max (s)",
        format!("{:.2} / {:.2} / {:.2}", real.p50, real.p99, real.max),
        seen.p50,
        seen.p99,
        seen.max
    );
    println!(
        "margins: cold starts equal, scale events within {EVENT_MARGIN_S} s (1 -> 0: of either replay), \
         replica-seconds within {:.0} % of the replays' range, wait p50 and p99 within {WAIT_MARGIN_S} s; \
         window {:.1} s",
        REPLICA_SECONDS_MARGIN * 100.0,
        observed.end
    );
    let disagreements = real.disagreements(&model);
    ensure!(disagreements.is_empty(), "the replay disagrees with the real run: {disagreements:?}");

    // The check can fail: the same comparison with a wrong model input does.
    for (what, wrong) in [
        ("a cooldown of 20 s", cost::replay::ReplayConfig { cooldown_period_s: 20, ..config.clone() }),
        (
            "a cold start 3 s longer",
            cost::replay::ReplayConfig {
                measured: cost::replay::Measured { cold_start_s: measured.cold_start_s + 3, ..measured },
                ..config.clone()
            },
        ),
    ] {
        let found = real.disagreements(&Prediction::of(&wrong, &trace));
        println!("negative control, {what}: {found:?}");
        ensure!(!found.is_empty(), "the comparison passes with {what}: it does not check the model");
    }
    // Agreed: the logs are of no further use (on a failure they stay for the next run to clear).
    std::fs::remove_dir_all(&dir)?;
    if let Some(parent) = dir.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(())
}

/// On a failure: the Deployments and ScaledObjects, and the end of the KEDA operator's log.
fn report_failure(kubelet: &Kubelet, control: &ControlPlane) {
    eprintln!(
        "deployments:\n{}",
        kubelet.kubectl(&["get", "deploy,scaledobjects", "-n", NAMESPACE]).unwrap_or_default()
    );
    let keda = std::fs::read_to_string(&control.keda_log).unwrap_or_default();
    let tail: Vec<&str> = keda.lines().rev().take(30).collect();
    eprintln!("the end of the KEDA operator's log:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
}

/// Each request of this trace create-task handled, by key: when (its first "task request"
/// line, any replica's log).
fn handled_at(logs: &Path, max: usize, prefix: &str) -> anyhow::Result<BTreeMap<String, DateTime<Utc>>> {
    let mut handled = BTreeMap::new();
    for name in replica_logs(max) {
        let text = match std::fs::read_to_string(logs.join(format!("{name}.log"))) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {name}.log")),
        };
        for line in text.lines().filter(|l| l.contains("task request")) {
            let Some((_, rest)) = line.split_once(prefix) else { continue };
            let key: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect::<String>();
            let stamp = line.split_whitespace().next().unwrap_or_default();
            let at = DateTime::parse_from_rfc3339(stamp)
                .with_context(|| format!("{name}.log: no time at the start of {line:?}"))?
                .with_timezone(&Utc);
            let entry = handled.entry(format!("{prefix}{key}")).or_insert(at);
            *entry = (*entry).min(at);
        }
    }
    Ok(handled)
}

/// Plays [`TRACE`] on create-task from idle, beside the kubelet loop, and records what happened
/// until every request is handled and every worker is back at 0 and stopped.
async fn play_trace(
    setup: &Setup,
    platform: &mut Platform,
    kubelet: &mut Kubelet,
    idle: &Idle,
) -> anyhow::Result<Observed> {
    const APP: &str = "create-task";
    let max = max_replicas(idle, APP)?;
    let logs = platform.logs().to_owned();
    let prefix = format!("trace-{}-", uuid::Uuid::new_v4().simple());
    let total: usize = TRACE.iter().map(|(_, n)| n).sum();
    let since = kubelet.history().len();
    let (t0, t0_utc) = (Instant::now(), Utc::now());
    let mut publisher = {
        let (api, http, sidecar, prefix) = (setup.api(USER)?, client()?, idle.publisher.clone(), prefix.clone());
        tokio::spawn(async move {
            let mut sent = Vec::new();
            for (burst, (at, n)) in TRACE.into_iter().enumerate() {
                tokio::time::sleep_until(tokio::time::Instant::from_std(t0 + Duration::from_secs(at))).await;
                let mut in_flight = tokio::task::JoinSet::new();
                for i in 0..n {
                    // One owner per request of a burst: the partition key spreads them.
                    let create =
                        Create { owner: format!("trace-{i}"), key: format!("{prefix}{burst}-{i}"), via_api: false };
                    let (api, http, sidecar) = (api.clone(), http.clone(), sidecar.clone());
                    in_flight.spawn(async move {
                        let published = Utc::now();
                        ensure!(create.send(&api, &http, &sidecar).await?, "{}: not published", create.key);
                        anyhow::Ok((create, published))
                    });
                }
                while let Some(done) = in_flight.join_next().await {
                    sent.push(done.context("a publishing task panicked")??);
                }
            }
            anyhow::Ok(sent)
        })
    };

    let workers = idle.workers.clone();
    let mut spec: Vec<(f64, i64)> = vec![(0.0, 0)];
    let mut sent = None;
    let end = drive(
        kubelet,
        platform,
        "the trace handled and every worker asleep",
        Duration::from_secs(180),
        async |k, p| {
            let replicas = k.replicas()?;
            let now = replicas.get(APP).copied().unwrap_or(0);
            spec.push((secs(t0, Instant::now()), now));
            if sent.is_none() {
                if !publisher.is_finished() {
                    return Ok(None);
                }
                sent = Some((&mut publisher).await.context("the publisher panicked")??);
            }
            if handled_at(&logs, max, &prefix)?.len() < total {
                return Ok(None);
            }
            for w in &workers {
                if replicas.get(w) != Some(&0) || p.replicas(w)? > 0 {
                    return Ok(None);
                }
            }
            Ok(Some(Instant::now()))
        },
    )
    .await?;
    let sent: Vec<(Create, DateTime<Utc>)> = sent.context("the publisher never finished")?;

    let handled = handled_at(&logs, max, &prefix)?;
    let since_start = |at: DateTime<Utc>| (at - t0_utc).num_microseconds().unwrap_or_default() as f64 / 1e6;
    let mut requests = Vec::new();
    for (create, published) in &sent {
        let at = handled.get(&create.key).with_context(|| format!("{} never handled", create.key))?;
        // And done: the task is readable by its owner.
        let task =
            setup.api(&create.owner)?.call(Method::GET, &format!("/v1/tasks/{}", create.task_id()), None).await?;
        ensure!(task.status == StatusCode::OK, "{}: the task reads {}", create.key, task.status);
        requests.push((since_start(*published), since_start(*at)));
    }
    requests.sort_by(|a, b| a.0.total_cmp(&b.0));

    // The pairs, from the kubelet's history: one start and one stop each, the newest stopped first.
    let mut pods: Vec<(f64, f64, Option<f64>)> = Vec::new();
    for change in kubelet.history()[since..].iter().filter(|c| c.app == APP) {
        spec.push((secs(t0, change.seen), change.wanted));
        if change.started {
            pods.push((secs(t0, change.seen), secs(t0, change.done), None));
        } else {
            let pod = pods.iter_mut().rev().find(|p| p.2.is_none()).context("a stop without a running pair")?;
            pod.2 = Some(secs(t0, change.done));
        }
    }
    let end = secs(t0, end);
    let pods = pods.into_iter().map(|(asked, healthy, gone)| (asked, healthy, gone.unwrap_or(end))).collect();
    spec.sort_by(|a, b| a.0.total_cmp(&b.0));
    spec.dedup_by(|later, earlier| later.1 == earlier.1);
    Ok(Observed { requests, spec, pods, end })
}
