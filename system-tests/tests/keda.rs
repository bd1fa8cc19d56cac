//! Scale to zero, proven on one machine (`make test-keda`, after its dry run; issue 15): the
//! real KEDA operator on a real kube-apiserver scales the function Deployments on the real
//! consumer lag of a real Kafka broker, and `system_tests::kubelet` runs as many (function +
//! daprd) pairs as the Deployments ask for on the real platform.
//!
//! The ScaledObjects are the shipped ones, rendered through the test-only overlay
//! `system-tests/keda-overlay/` (1 s polling, 5 s cooldown, the Kafka triggers' broker filled in
//! here because its port is chosen at start). The control plane and the operator are
//! `scripts/control-plane.sh --keda`, the same code `make test-keda` runs for its dry run.
//!
//! Two phases on one platform: a request published to `task-create` wakes create-task and then
//! the `task-events` consumers, and all go back to 0; then a reminder due in a few minutes wakes
//! fire-reminder from zero through its postgresql trigger (reminders due within 3 minutes)
//! before it is due, and it fires on time. At idle the HPAs KEDA creates are checked against the
//! ScaledObjects (bounds, metric, target).
//!
//! Not covered: 1 -> N (no kube-controller-manager runs, so those HPAs are never reconciled and
//! KEDA itself only writes 0 or 1).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use chrono::{SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_norway::Value;
use system_tests::api::client;
use system_tests::host::{Setup, TASK_CREATE_PUBLISHER};
use system_tests::kubelet::Kubelet;
use system_tests::platform::{Options, Platform};
use system_tests::scenarios::Create;
use system_tests::workspace_root;

const USER: &str = "alice";
const NAMESPACE: &str = "todo";
/// The test-only overlay, and the placeholder it leaves in the kafka triggers.
const OVERLAY: &str = "system-tests/keda-overlay";
const BROKERS_PLACEHOLDER: &str = "KAFKA_BROKERS_SET_BY_TEST";
/// The consumers of `task-events` (one consumer group each, named after the app).
const TASK_EVENTS_CONSUMERS: [&str; 3] = ["on-task-completed", "fire-reminder", "audit-writer"];

/// `scripts/control-plane.sh --keda`: etcd, kube-apiserver, the CRDs and the KEDA operator, up
/// until this is dropped (SIGTERM: the script's trap stops what it started).
struct ControlPlane {
    child: Child,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    keda_log: PathBuf,
}

impl ControlPlane {
    /// Starts it, its output in `<dir>/logs/control-plane.log`; returns once the script wrote
    /// its env file (every piece ready).
    fn start(dir: &Path) -> anyhow::Result<Self> {
        let env_file = dir.join("control-plane.env");
        let log = std::fs::File::create(dir.join("logs/control-plane.log"))?;
        let mut child = Command::new("bash")
            .arg(workspace_root().join("scripts/control-plane.sh"))
            .args(["--keda", "--env-file"])
            .arg(&env_file)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting scripts/control-plane.sh")?;
        let deadline = Instant::now() + Duration::from_secs(300);
        let text = loop {
            if let Ok(text) = std::fs::read_to_string(&env_file) {
                break text;
            }
            if let Some(status) = child.try_wait()? {
                bail!("control-plane.sh exited ({status}): see {}", dir.join("logs/control-plane.log").display());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("control-plane.sh not ready in 300 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let vars: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let path = |name: &str| vars.get(name).map(PathBuf::from).with_context(|| format!("{name} in {text}"));
        Ok(Self { kubeconfig: path("KUBECONFIG")?, kubectl: path("KUBECTL")?, keda_log: path("KEDA_LOG")?, child })
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The overlay rendered with the pinned kubectl, the broker filled in, as YAML documents.
fn render(kubelet: &Kubelet, brokers: &str) -> anyhow::Result<Vec<Value>> {
    let overlay = workspace_root().join(OVERLAY);
    let text = kubelet.kubectl(&["kustomize", &overlay.display().to_string()])?;
    ensure!(text.contains(BROKERS_PLACEHOLDER), "{OVERLAY} renders no {BROKERS_PLACEHOLDER}");
    let text = text.replace(BROKERS_PLACEHOLDER, brokers);
    let mut docs = Vec::new();
    for doc in text.split("\n---\n") {
        let value: Value = serde_norway::from_str(doc).context("parsing the rendered overlay")?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn kind(doc: &Value) -> &str {
    doc.get("kind").and_then(Value::as_str).unwrap_or_default()
}

/// Every (Secret, key) the documents reference: `secretKeyRef`s (containers' env) and a
/// TriggerAuthentication's `secretTargetRef`s.
fn secret_refs(value: &Value, refs: &mut BTreeSet<(String, String)>) {
    let pair = |v: &Value| Some((v.get("name")?.as_str()?.to_owned(), v.get("key")?.as_str()?.to_owned()));
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                match k.as_str() {
                    Some("secretKeyRef") => refs.extend(pair(v)),
                    Some("secretTargetRef") => refs.extend(v.as_sequence().into_iter().flatten().filter_map(pair)),
                    _ => secret_refs(v, refs),
                }
            }
        }
        Value::Sequence(seq) => seq.iter().for_each(|v| secret_refs(v, refs)),
        _ => {}
    }
}

/// Applies the overlay for real: everything but the ScaledObjects, then the Secrets they and
/// the Deployments need (test values; `keda-postgres` the platform's PostgreSQL as role
/// keda_reminders), then the ScaledObjects (KEDA reconciles one at once, and a Ready=False for a
/// Secret created a moment later would stand until its next retry). Returns the Deployments
/// that scale to zero.
fn apply_overlay(kubelet: &Kubelet, platform: &Platform, dir: &Path) -> anyhow::Result<(Vec<String>, Vec<Value>)> {
    let docs = render(kubelet, &platform.kafka_bootstrap())?;
    let (scaled, rest): (Vec<&Value>, Vec<&Value>) = docs.iter().partition(|d| kind(d) == "ScaledObject");
    let write = |name: &str, docs: &[&Value]| -> anyhow::Result<PathBuf> {
        let mut text = String::new();
        for doc in docs {
            text.push_str("---\n");
            text.push_str(&serde_norway::to_string(doc)?);
        }
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    };
    let apply = |path: &Path| {
        kubelet.kubectl(&["apply", "--server-side", "--field-manager=keda-test", "-f", &path.display().to_string()])
    };
    apply(&write("overlay-rest.yaml", &rest)?)?;

    let mut refs = BTreeSet::new();
    for doc in &docs {
        secret_refs(doc, &mut refs);
    }
    let mut secrets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, key) in refs {
        let value = if (name.as_str(), key.as_str()) == ("keda-postgres", "connectionString") {
            platform.postgres_url_as("keda_reminders")
        } else {
            uuid::Uuid::new_v4().simple().to_string()
        };
        secrets.entry(name).or_default().push(format!("--from-literal={key}={value}"));
    }
    ensure!(secrets.contains_key("keda-postgres"), "the overlay references no Secret keda-postgres");
    for (name, literals) in &secrets {
        let mut args = vec!["create", "secret", "generic", name.as_str(), "-n", NAMESPACE];
        args.extend(literals.iter().map(String::as_str));
        kubelet.kubectl(&args)?;
    }
    apply(&write("overlay-scaledobjects.yaml", &scaled)?)?;

    let workers: Vec<String> = scaled
        .iter()
        .filter(|so| so["spec"].get("minReplicaCount").and_then(Value::as_i64) == Some(0))
        .filter_map(|so| so["spec"]["scaleTargetRef"]["name"].as_str().map(str::to_owned))
        .collect();
    Ok((workers, scaled.into_iter().cloned().collect()))
}

/// The HPA KEDA made for each ScaledObject (`keda-hpa-<name>`) against the ScaledObject:
/// bounds (min 1: KEDA itself does 0 <-> 1; max = maxReplicaCount), one metric per trigger with
/// the trigger's target (kafka: AverageValue lagThreshold; postgresql: AverageValue
/// targetQueryValue; cpu: Utilization value), and the scale-down behaviour. Returns one line per
/// HPA for the report.
fn check_hpas(kubelet: &Kubelet, scaled: &[Value]) -> anyhow::Result<Vec<String>> {
    let list: serde_json::Value =
        serde_json::from_str(&kubelet.kubectl(&["get", "hpa", "-n", NAMESPACE, "-o", "json"])?)?;
    let hpas: BTreeMap<&str, &serde_json::Value> = list["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|h| Some((h["metadata"]["name"].as_str()?, h)))
        .collect();
    let mut report = Vec::new();
    for so in scaled {
        let name = so["metadata"]["name"].as_str().context("a ScaledObject without a name")?;
        let spec = &so["spec"];
        let hpa = hpas.get(format!("keda-hpa-{name}").as_str()).with_context(|| format!("no HPA for {name}"))?;
        let h = &hpa["spec"];
        ensure!(h["scaleTargetRef"]["name"] == name, "{name}: HPA targets {}", h["scaleTargetRef"]);
        let min = spec.get("minReplicaCount").and_then(Value::as_i64).unwrap_or(0).max(1);
        let max = spec.get("maxReplicaCount").and_then(Value::as_i64).context("maxReplicaCount")?;
        ensure!(
            h["minReplicas"] == min && h["maxReplicas"] == max,
            "{name}: HPA bounds {}..{}",
            h["minReplicas"],
            h["maxReplicas"]
        );
        let triggers = spec["triggers"].as_sequence().context("triggers")?;
        let metrics = h["metrics"].as_array().context("HPA metrics")?;
        ensure!(metrics.len() == triggers.len(), "{name}: {} metrics for {} triggers", metrics.len(), triggers.len());
        let mut described = Vec::new();
        for (i, (trigger, metric)) in triggers.iter().zip(metrics).enumerate() {
            let kind = trigger["type"].as_str().context("trigger type")?;
            let meta = &trigger["metadata"];
            let (expected, got) = match kind {
                "kafka" | "postgresql" => {
                    let key = if kind == "kafka" { "lagThreshold" } else { "targetQueryValue" };
                    let want = meta[key].as_str().context("the trigger's target")?;
                    let metric_name = metric["external"]["metric"]["name"].as_str().unwrap_or_default();
                    ensure!(
                        metric["type"] == "External" && metric_name.starts_with(&format!("s{i}-{kind}")),
                        "{name}: metric {i} is {metric}"
                    );
                    (
                        format!("AverageValue {want}"),
                        format!(
                            "{} {}",
                            metric["external"]["target"]["type"].as_str().unwrap_or("?"),
                            metric["external"]["target"]["averageValue"].as_str().unwrap_or("?")
                        ),
                    )
                }
                "cpu" => {
                    // With `containerName` the HPA measures that container alone (ContainerResource).
                    let want = meta["value"].as_str().context("cpu value")?;
                    let (key, container) = match meta.get("containerName").and_then(Value::as_str) {
                        Some(container) => ("containerResource", Some(container)),
                        None => ("resource", None),
                    };
                    let resource = &metric[key];
                    ensure!(
                        resource["name"] == "cpu" && resource["container"].as_str() == container,
                        "{name}: metric {i} is {metric}"
                    );
                    let target = &resource["target"];
                    (
                        format!("Utilization {want}"),
                        format!("{} {}", target["type"].as_str().unwrap_or("?"), target["averageUtilization"]),
                    )
                }
                other => bail!("{name}: a {other} trigger this test does not know"),
            };
            ensure!(expected == got, "{name}: metric {i} ({kind}) targets {got}, the trigger says {expected}");
            described.push(format!("{kind} {got}"));
        }
        let window =
            spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"]
                .as_i64();
        if let Some(window) = window {
            ensure!(
                h["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == window,
                "{name}: HPA scale-down window {}",
                h["behavior"]["scaleDown"]
            );
        }
        report.push(format!("{name}: {min}..{max}, {}", described.join(", ")));
    }
    Ok(report)
}

/// Each ScaledObject's Ready condition (`True`, `False: <message>`, or `none`).
fn readiness(kubelet: &Kubelet) -> anyhow::Result<BTreeMap<String, String>> {
    let list: serde_json::Value =
        serde_json::from_str(&kubelet.kubectl(&["get", "scaledobjects", "-n", NAMESPACE, "-o", "json"])?)?;
    let mut ready = BTreeMap::new();
    for so in list["items"].as_array().context("items")? {
        let name = so["metadata"]["name"].as_str().context("name")?.to_owned();
        let condition = so["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready")
            .map(|c| match c["status"].as_str() {
                Some("True") => "True".to_owned(),
                other => format!("{}: {}", other.unwrap_or("?"), c["message"].as_str().unwrap_or_default()),
            })
            .unwrap_or_else(|| "none".to_owned());
        ready.insert(name, condition);
    }
    Ok(ready)
}

/// Reconciles with the kubelet, then asks `probe`, every 200 ms, until it answers `Some` or
/// `timeout` passes (the error names `what` and the probe's last error).
async fn drive<T>(
    kubelet: &mut Kubelet,
    platform: &mut Platform,
    what: &str,
    timeout: Duration,
    mut probe: impl AsyncFnMut(&Kubelet, &mut Platform) -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        kubelet.reconcile(platform).await?;
        match probe(kubelet, platform).await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => last_error = Some(error),
        }
        if Instant::now() > deadline {
            let error = last_error.unwrap_or_else(|| anyhow::anyhow!("no error"));
            return Err(error.context(format!("{what}: not within {timeout:?}")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Seconds from `from` to `to`, for the report.
fn secs(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64()
}

/// What the scenario measured.
#[derive(Debug)]
struct Timings {
    publish_to_replicas: f64,
    pair_start: f64,
    first_processed: f64,
    audited: f64,
    all_zero_after_audit: f64,
    woken: Vec<(String, f64, f64)>,
    /// The Deployments that scale to zero.
    workers: Vec<String>,
}

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
        let timings = scenario(&setup, &mut platform, &mut kubelet, &dir).await?;
        let reminder = reminder_wakes_fire_reminder(&setup, &mut platform, &mut kubelet, &timings.workers).await?;
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
    let asleep =
        drive(kubelet, platform, "every worker back at 0 after scheduling", Duration::from_secs(60), async |k, p| {
            let replicas = k.replicas()?;
            for w in workers {
                if replicas.get(w) != Some(&0) || p.is_up(w)? {
                    return Ok(None);
                }
            }
            Ok(Some(Instant::now()))
        })
        .await?;
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
            Ok((k.replicas()?.get(APP) == Some(&0) && !p.is_up(APP)?).then(Instant::now))
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

async fn scenario(
    setup: &Setup,
    platform: &mut Platform,
    kubelet: &mut Kubelet,
    dir: &Path,
) -> anyhow::Result<Timings> {
    let publisher = platform.start_publisher(TASK_CREATE_PUBLISHER).await?;
    let (workers, scaled) = apply_overlay(kubelet, platform, dir)?;
    let expected: BTreeSet<&str> = ["create-task", "on-task-completed", "fire-reminder", "audit-writer"].into();
    ensure!(
        workers.iter().map(String::as_str).collect::<BTreeSet<_>>() == expected,
        "the scale-to-zero Deployments are {workers:?}"
    );

    // Idle: no message anywhere, so KEDA scales every worker to 0, and every trigger works
    // against the real broker and database (Ready True). Nothing runs yet.
    let idle = Instant::now();
    system_tests::api::eventually(
        "every worker at 0 and every ScaledObject Ready",
        Duration::from_secs(90),
        || async {
            let replicas = kubelet.replicas()?;
            let at_zero = workers.iter().all(|w| replicas.get(w) == Some(&0));
            let ready = readiness(kubelet)?;
            let all_ready = ready.len() == 5 && ready.values().all(|r| r == "True");
            if !all_ready {
                println!("ScaledObjects: {ready:?}");
            }
            Ok((at_zero && all_ready).then_some(()))
        },
    )
    .await?;
    println!("idle: every worker at 0 replicas, every ScaledObject Ready, after {:.1} s", idle.elapsed().as_secs_f64());
    for line in check_hpas(kubelet, &scaled)? {
        println!("  HPA {line}");
    }

    // The kubelet's first pass starts task-api (minReplicaCount 1) and nothing else.
    let first = kubelet.reconcile(platform).await?;
    let started: Vec<&str> = first.iter().filter(|c| c.started).map(|c| c.app.as_str()).collect();
    ensure!(started == ["task-api"], "the kubelet's first pass started {started:?}");
    let api = setup.api(USER)?;
    api.wait_healthy(Duration::from_secs(30)).await?;
    // Still idle with task-api up: it publishes nothing on its own.
    let replicas = kubelet.replicas()?;
    for w in &workers {
        ensure!(!platform.is_up(w)? && replicas.get(w) == Some(&0), "{w} is awake before any message");
    }

    let create =
        Create { owner: USER.to_owned(), key: format!("keda-{}", uuid::Uuid::new_v4().simple()), via_api: false };
    let task_id = create.task_id();
    let http = client()?;
    let published = Instant::now();
    ensure!(create.send(&api, &http, &publisher).await?, "the create request was not published");

    let path = format!("/v1/tasks/{task_id}");
    let processed =
        drive(kubelet, platform, "the task created by create-task", Duration::from_secs(120), async |_, _| {
            Ok((api.call(Method::GET, &path, None).await?.status == StatusCode::OK).then(Instant::now))
        })
        .await?;
    let audited =
        drive(kubelet, platform, "the audit entry of the new task", Duration::from_secs(120), async |_, _| {
            Ok((api.audit_changes(&task_id).await? == ["created"]).then(Instant::now))
        })
        .await?;
    // Every task-events consumer woke for the event (lag 1 on its group), did its work, and
    // every worker went back to 0 and was stopped.
    let zero = drive(
        kubelet,
        platform,
        "every worker back at 0 replicas and stopped",
        Duration::from_secs(120),
        async |k, p| {
            let replicas = k.replicas()?;
            for w in &workers {
                if replicas.get(w) != Some(&0) || p.is_up(w)? {
                    return Ok(None);
                }
            }
            Ok(Some(Instant::now()))
        },
    )
    .await?;

    let history = kubelet.history().to_vec();
    let woke = |app: &str| history.iter().find(|c| c.app == app && c.started).cloned();
    let stopped = |app: &str| history.iter().any(|c| c.app == app && !c.started);
    let create_task = woke("create-task").context("create-task was never started")?;
    ensure!(create_task.seen >= published, "create-task was started before the message was published");
    let mut woken = Vec::new();
    for app in TASK_EVENTS_CONSUMERS {
        let change = woke(app).with_context(|| format!("{app} was never woken by its lag on task-events"))?;
        ensure!(change.seen >= create_task.seen, "{app} woke before create-task");
        woken.push((app.to_owned(), secs(published, change.seen), secs(published, change.done)));
    }
    for app in &workers {
        ensure!(stopped(app), "{app} was never stopped");
    }
    // The work is done, not dropped: every group consumed its topic to the end.
    let lags = platform.lag().await?;
    let mut groups: BTreeMap<&str, i64> = BTreeMap::new();
    for lag in &lags {
        *groups.entry(lag.group.as_str()).or_default() += lag.lag;
    }
    for group in ["create-task"].into_iter().chain(TASK_EVENTS_CONSUMERS) {
        ensure!(groups.get(group) == Some(&0), "consumer group {group}: lag {:?} (all: {lags:?})", groups.get(group));
    }
    ensure!(processed >= create_task.done, "the task was read before create-task ran");
    Ok(Timings {
        publish_to_replicas: secs(published, create_task.seen),
        pair_start: secs(create_task.seen, create_task.done),
        first_processed: secs(published, processed),
        audited: secs(published, audited),
        all_zero_after_audit: secs(audited, zero),
        woken,
        workers,
    })
}
