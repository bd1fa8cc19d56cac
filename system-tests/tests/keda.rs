//! Scale to zero, proven on one machine (`make test-keda`, after its dry run; issue 15): the
//! real KEDA operator on a real kube-apiserver scales the function Deployments on the real
//! consumer lag of a real Kafka broker, and `system_tests::kubelet` runs as many (function +
//! daprd) pairs as the Deployments ask for on the real platform. The setup and the first phase
//! are in `system_tests::keda` (shared with `make bench`).
//!
//! Phases on one platform: a request published to `task-create` wakes create-task and then the
//! `task-events` consumers, and all go back to 0; then a burst of requests from many users
//! makes KEDA's HPA, reconciled by kube-controller-manager's HPA controller, scale create-task
//! from 1 to its `maxReplicaCount`, every replica takes a share of the partitions, every
//! request is done exactly once, and all go back to 0; then a reminder due in a few minutes
//! wakes fire-reminder from zero through its postgresql trigger (reminders due within 3
//! minutes) before it is due, and it fires on time; the fired reminder wakes the notifier on
//! `reminders`, which consumes it and goes back to 0. At idle the HPAs KEDA creates are checked
//! against the ScaledObjects (bounds, metric, target).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use system_tests::api::client;
use system_tests::host::Setup;
use system_tests::keda::{
    ControlPlane, Idle, TASK_EVENTS_CONSUMERS, USER, all_asleep, drive, prepare, secs, wake_once,
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
        let load = scales_out_under_load(&setup, &mut platform, &mut kubelet, &idle).await?;
        let reminder = reminder_wakes_fire_reminder(&setup, &mut platform, &mut kubelet, &idle.workers).await?;
        anyhow::Ok((timings, load, reminder))
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
    let (t, l, r) = outcome.with_context(|| format!("logs in {}", logs.display()))?;
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
    let max = idle
        .scaled
        .iter()
        .find(|so| so["metadata"]["name"].as_str() == Some(APP))
        .and_then(|so| so["spec"]["maxReplicaCount"].as_u64())
        .context("create-task's maxReplicaCount")?;
    let max = usize::try_from(max)?;
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
