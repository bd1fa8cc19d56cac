//! Scale to zero on a real control plane (issue 15): what `tests/keda.rs` (`make test-keda`) and
//! `make bench` share. `scripts/control-plane.sh --keda` runs etcd, kube-apiserver, the CRDs,
//! the KEDA operator, its metrics API server and kube-controller-manager's HPA controller; the
//! minikube overlay is applied for real through the test-only overlay `system-tests/keda-overlay/`
//! (1 s polling, 5 s cooldown, the Kafka triggers' broker filled in here because its port is
//! chosen at start); [`Kubelet`] runs the (function + daprd) pairs the Deployments ask for on the
//! real [`Platform`].
//!
//! [`prepare`] brings the system to idle (every worker at 0, every ScaledObject Ready, task-api
//! up) and [`wake_once`] measures one wake-up from zero: a create request published to
//! `task-create` wakes create-task, its event the `task-events` consumers, and all go back to 0.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use reqwest::{Method, StatusCode};
use serde_norway::Value;

use crate::api::client;
use crate::host::{Setup, TASK_CREATE_PUBLISHER};
use crate::kubelet::Kubelet;
use crate::platform::Platform;
use crate::scenarios::Create;
use crate::workspace_root;

/// The user whose tasks the scenarios create.
pub const USER: &str = "alice";
/// The namespace of the function Deployments and ScaledObjects.
pub const NAMESPACE: &str = "todo";
/// The test-only overlay, and the placeholder it leaves in the kafka triggers.
const OVERLAY: &str = "system-tests/keda-overlay";
const BROKERS_PLACEHOLDER: &str = "KAFKA_BROKERS_SET_BY_TEST";
/// The consumers of `task-events` (one consumer group each, named after the app).
pub const TASK_EVENTS_CONSUMERS: [&str; 3] = ["on-task-completed", "fire-reminder", "audit-writer"];
/// The Deployments that scale to zero (every ScaledObject but task-api's, which keeps one
/// replica): the topic consumers, the notifier among them (woken by lag on `reminders` and by
/// its delivery retries coming due).
pub const SCALE_TO_ZERO: [&str; 5] = ["create-task", "on-task-completed", "fire-reminder", "audit-writer", "notifier"];

/// `scripts/control-plane.sh --keda`: etcd, kube-apiserver, the CRDs, the KEDA operator, its
/// metrics API server and the HPA controller, up until this is dropped (SIGTERM: the script's trap stops what it started).
#[derive(Debug)]
pub struct ControlPlane {
    child: Child,
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    pub keda_log: PathBuf,
    /// Where the script keeps the logs of everything it started.
    pub log_dir: PathBuf,
}

impl ControlPlane {
    /// Starts it, its output in `<dir>/logs/control-plane.log`; returns once the script wrote
    /// its env file (every piece ready).
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
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
        Ok(Self {
            kubeconfig: path("KUBECONFIG")?,
            kubectl: path("KUBECTL")?,
            keda_log: path("KEDA_LOG")?,
            log_dir: path("LOG_DIR")?,
            child,
        })
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

/// The query of `function`'s `postgresql` trigger, as `keda/<function>.yaml` has it (the SQL
/// KEDA sends PostgreSQL as it is: no parameters).
pub fn trigger_query(function: &str) -> anyhow::Result<String> {
    let path = workspace_root().join(format!("keda/{function}.yaml"));
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let doc: Value = serde_norway::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let triggers = doc["spec"]["triggers"].as_sequence().with_context(|| format!("{}: no triggers", path.display()))?;
    triggers
        .iter()
        .find(|t| t["type"].as_str() == Some("postgresql"))
        .and_then(|t| t["metadata"]["query"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("{}: no postgresql trigger with a query", path.display()))
}

/// Applies the overlay for real: everything but the ScaledObjects, then the Secrets they and
/// the Deployments need (test values; `keda-postgres` the platform's PostgreSQL as role
/// keda_reminders), then the ScaledObjects (KEDA reconciles one at once, and a Ready=False for a
/// Secret created a moment later would stand until its next retry). Returns the Deployments
/// that scale to zero, the ScaledObjects, and every document applied (as rendered, the broker
/// filled in).
pub fn apply_overlay(
    kubelet: &Kubelet,
    platform: &Platform,
    dir: &Path,
) -> anyhow::Result<(Vec<String>, Vec<Value>, Vec<Value>)> {
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
    let scaled = scaled.into_iter().cloned().collect();
    Ok((workers, scaled, docs))
}

/// The HPA KEDA made for each ScaledObject (`keda-hpa-<name>`) against the ScaledObject:
/// bounds (min 1: KEDA itself does 0 <-> 1; max = maxReplicaCount), one metric per trigger with
/// the trigger's target (kafka: AverageValue lagThreshold; postgresql: AverageValue
/// targetQueryValue; cpu: Utilization value), and the scale-down behaviour. Returns one line per
/// HPA for the report.
pub fn check_hpas(kubelet: &Kubelet, scaled: &[Value]) -> anyhow::Result<Vec<String>> {
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
pub fn readiness(kubelet: &Kubelet) -> anyhow::Result<BTreeMap<String, String>> {
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
pub async fn drive<T>(
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
pub fn secs(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64()
}

/// The system at idle, as [`prepare`] leaves it.
#[derive(Debug)]
pub struct Idle {
    /// The sidecar URL of a publisher-only daprd with create requests' publishing scope.
    pub publisher: String,
    /// The Deployments that scale to zero.
    pub workers: Vec<String>,
    /// The rendered ScaledObjects.
    pub scaled: Vec<Value>,
    /// Every document of the overlay as applied (ScaledObjects, Deployments, ...), for a replay
    /// of the same settings (`cost::settings::functions_from_documents`).
    pub documents: Vec<Value>,
    /// One line per HPA, checked against its ScaledObject ([`check_hpas`]).
    pub hpas: Vec<String>,
    /// Seconds from the overlay applied to every worker at 0 and every ScaledObject Ready.
    pub idle_after: f64,
}

/// Applies the overlay and waits for idle: no message anywhere, so KEDA scales every worker to
/// 0, and every trigger works against the real broker and database (Ready True). Then the
/// kubelet's first pass starts task-api (minReplicaCount 1) and nothing else, and task-api up
/// publishes nothing on its own: every worker stays at 0.
pub async fn prepare(
    setup: &Setup,
    platform: &mut Platform,
    kubelet: &mut Kubelet,
    dir: &Path,
) -> anyhow::Result<Idle> {
    let publisher = platform.start_publisher(TASK_CREATE_PUBLISHER).await?;
    let (workers, scaled, documents) = apply_overlay(kubelet, platform, dir)?;
    let expected: BTreeSet<&str> = SCALE_TO_ZERO.into();
    ensure!(
        workers.iter().map(String::as_str).collect::<BTreeSet<_>>() == expected,
        "the scale-to-zero Deployments are {workers:?}"
    );
    let idle = Instant::now();
    crate::api::eventually("every worker at 0 and every ScaledObject Ready", Duration::from_secs(90), || async {
        let replicas = kubelet.replicas()?;
        let at_zero = workers.iter().all(|w| replicas.get(w) == Some(&0));
        let ready = readiness(kubelet)?;
        let all_ready = ready.len() == SCALE_TO_ZERO.len() + 1 && ready.values().all(|r| r == "True");
        if !all_ready {
            println!("ScaledObjects: {ready:?}");
        }
        Ok((at_zero && all_ready).then_some(()))
    })
    .await?;
    let idle_after = idle.elapsed().as_secs_f64();
    let hpas = check_hpas(kubelet, &scaled)?;

    let first = kubelet.reconcile(platform).await?;
    let started: BTreeSet<&str> = first.iter().filter(|c| c.started).map(|c| c.app.as_str()).collect();
    ensure!(started == BTreeSet::from(["task-api"]), "the kubelet's first pass started {started:?}");
    setup.api(USER)?.wait_healthy(Duration::from_secs(30)).await?;
    let replicas = kubelet.replicas()?;
    for w in &workers {
        ensure!(platform.replicas(w)? == 0 && replicas.get(w) == Some(&0), "{w} is awake before any message");
    }
    Ok(Idle { publisher, workers, scaled, documents, hpas, idle_after })
}

/// What one wake-up from zero measured, in seconds from the publish unless said otherwise.
#[derive(Debug, Clone)]
pub struct Timings {
    /// KEDA's poll saw the lag and wrote create-task's `spec.replicas: 1` (as the kubelet saw it).
    pub publish_to_replicas: f64,
    /// From that to create-task's pair healthy (function and daprd).
    pub pair_start: f64,
    /// The first message processed: the task is readable through task-api.
    pub first_processed: f64,
    /// Its audit entry is written (audit-writer woken from zero by the task event).
    pub audited: f64,
    /// From the audit entry to every worker back at 0 and stopped (cooldown, polling, graceful stop).
    pub all_zero_after_audit: f64,
    /// Each `task-events` consumer: when its `spec.replicas: 1` was seen and when it was healthy.
    pub woken: Vec<(String, f64, f64)>,
}

/// One create request published with every worker at 0: create-task wakes and creates the
/// task, its event wakes on-task-completed, fire-reminder and audit-writer (the audit entry is
/// written), every consumer group ends with lag 0, and every worker goes back to 0 and is
/// stopped. Checks each of those and returns the timings.
pub async fn wake_once(
    setup: &Setup,
    platform: &mut Platform,
    kubelet: &mut Kubelet,
    idle: &Idle,
) -> anyhow::Result<Timings> {
    let workers = &idle.workers;
    let api = setup.api(USER)?;
    let since = kubelet.history().len();
    let create =
        Create { owner: USER.to_owned(), key: format!("keda-{}", uuid::Uuid::new_v4().simple()), via_api: false };
    let task_id = create.task_id();
    let http = client()?;
    let published = Instant::now();
    ensure!(create.send(&api, &http, &idle.publisher).await?, "the create request was not published");

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
    let zero = all_asleep(kubelet, platform, workers, "every worker back at 0 replicas and stopped").await?;

    let history = kubelet.history()[since..].to_vec();
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
    // The notifier consumes `reminders` only: a task without a reminder must not wake it.
    ensure!(woke("notifier").is_none(), "the notifier was woken by a task without a reminder");
    for app in workers.iter().filter(|app| woke(app).is_some()) {
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
    })
}

/// Drives the kubelet until every worker is at 0 replicas and stopped; when that was.
pub async fn all_asleep(
    kubelet: &mut Kubelet,
    platform: &mut Platform,
    workers: &[String],
    what: &str,
) -> anyhow::Result<Instant> {
    drive(kubelet, platform, what, Duration::from_secs(120), async |k, p| {
        let replicas = k.replicas()?;
        for w in workers {
            if replicas.get(w) != Some(&0) || p.replicas(w)? > 0 {
                return Ok(None);
            }
        }
        Ok(Some(Instant::now()))
    })
    .await
}
