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
use crate::procfs::{Cpu, cpu_seconds, rss_mib};
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
            // The API server writes a quantity in its canonical form ("1000" comes back "1k").
            let same = expected == got
                || expected.split_once(' ').zip(got.split_once(' ')).is_some_and(|((ek, ev), (gk, gv))| {
                    ek == gk && quantity(ev).is_some() && quantity(ev) == quantity(gv)
                });
            ensure!(same, "{name}: metric {i} ({kind}) targets {got}, the trigger says {expected}");
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

/// A Kubernetes quantity without a binary suffix (`1000`, `1k`, `500m`, `2M`) as a number.
fn quantity(text: &str) -> Option<f64> {
    let (digits, scale) = match text.char_indices().last()? {
        (i, 'm') => (&text[..i], 1e-3),
        (i, 'k') => (&text[..i], 1e3),
        (i, 'M') => (&text[..i], 1e6),
        (i, 'G') => (&text[..i], 1e9),
        _ => (text, 1.0),
    };
    digits.parse::<f64>().ok().map(|n| n * scale)
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
    /// create-task's cold path, split into its parts, when its daprd runs at
    /// [`COLD_PATH_LOG_LEVEL`] (the keda test; `make bench` leaves it at `info`, whose log has no
    /// consumer steps).
    pub cold_path: Option<ColdPath>,
}

/// create-task's daprd log level in the KEDA test: `debug` shows the Kafka consumer's steps
/// ([`ColdPath`]); the other daprds stay at `info`.
pub const COLD_PATH_LOG_LEVEL: (&str, &str) = ("create-task", "debug");

/// One wake-up's cold path, split into its parts: each a time in seconds from the publish (the
/// test's clock, `Instant` and the wall clock read together at the publish), in the order they
/// happen. Each says what it is read from: [`ColdPath::PARTS`] names them for a table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColdPath {
    /// The kubelet's pass that saw `spec.replicas` 1 began (KEDA's poll saw the lag and wrote it;
    /// the kubelet reads the Deployments every 200 ms).
    pub replicas_seen: f64,
    /// The function and its daprd spawned ([`crate::platform::PairStart::spawned`]).
    pub spawned: f64,
    /// The function's `/healthz` first answered 200 (polled every 100 ms).
    pub function_ready: f64,
    /// daprd's `/v1.0/healthz` first answered 204 (polled every 100 ms).
    pub daprd_ready: f64,
    /// daprd's info line "app is subscribed to the following topics: [task-create]"
    /// (dapr v1.18.2 `pkg/runtime/processor/subscriber/subscriber.go`): the subscription started.
    pub subscribed: f64,
    /// Its debug line "Subscribed and listening to topics: [task-create]" (components-contrib
    /// v1.18.3 `common/component/kafka/subscriber.go`): the consumer-group loop calls sarama's
    /// `Consume`, which sends JoinGroup.
    pub consuming: f64,
    /// sarama's first "consumer/broker/<id> added subscription to task-create/<p>" (its log at
    /// debug through contrib's `sarama_log_bridge.go`; sarama v1.48.1 `consumer.go`): the group
    /// joined and synced, the partitions claimed, their offsets fetched, fetching started.
    pub group_joined: f64,
    /// contrib's first debug "Processing Kafka message: task-create/<p>/<o>" (`consumer.go`):
    /// the first fetch returned the message and daprd hands it to the app.
    pub first_fetch: f64,
    /// create-task's own "task request" line for the task (its log, info): processed.
    pub processed: f64,
    /// The task readable through task-api (the test's GET, every 200 ms).
    pub readable: f64,
}

/// The clocks cold-path parts are read from differ (the test's monotonic clock, the wall-clock
/// stamps of the logs, each written after the step it reports): this much disorder between two
/// parts from different clocks is tolerated.
const CLOCK_SLACK: f64 = 0.01;

impl ColdPath {
    /// Each part for a table: its name, its source, its value.
    pub fn parts(&self) -> [(&'static str, &'static str, f64); 10] {
        [
            ("KEDA poll noticed the lag: spec.replicas 1 seen", "kubelet's kubectl read (200 ms)", self.replicas_seen),
            ("function + daprd spawned", "kubelet's spawn", self.spawned),
            ("function ready (/healthz 200)", "poll, 100 ms", self.function_ready),
            ("daprd ready (/v1.0/healthz 204)", "poll, 100 ms", self.daprd_ready),
            ("subscription started", "daprd info log", self.subscribed),
            ("consumer group loop started (JoinGroup)", "daprd debug log (contrib)", self.consuming),
            ("group joined, partitions claimed, fetching", "daprd debug log (sarama)", self.group_joined),
            ("first fetch returned the message", "daprd debug log (contrib)", self.first_fetch),
            ("first message processed", "create-task's log", self.processed),
            ("task readable through task-api", "test's GET (200 ms)", self.readable),
        ]
    }

    /// Checks the causal order: the poll, the spawn, then on one side the function ready and on
    /// the other the subscription, the group loop, the join, the fetch; the message processed
    /// after both and the task readable after that; daprd ready after the spawn (its place
    /// against the consumer's steps is not fixed: daprd starts its subscriptions before it
    /// reports ready).
    pub fn check_order(&self) -> anyhow::Result<()> {
        let s = CLOCK_SLACK;
        let chains: [&[(&str, f64)]; 3] = [
            &[
                ("publish", 0.0),
                ("replicas seen", self.replicas_seen),
                ("spawned", self.spawned),
                ("function ready", self.function_ready),
                ("processed", self.processed),
                ("readable", self.readable),
            ],
            &[
                ("spawned", self.spawned),
                ("subscribed", self.subscribed),
                ("consuming", self.consuming),
                ("group joined", self.group_joined),
                ("first fetch", self.first_fetch),
                ("processed", self.processed),
            ],
            &[("spawned", self.spawned), ("daprd ready", self.daprd_ready)],
        ];
        for chain in chains {
            for pair in chain.windows(2) {
                let ((a, ta), (b, tb)) = (pair[0], pair[1]);
                ensure!(ta <= tb + s, "cold path out of order: {a} at {ta:.3} s, {b} at {tb:.3} s ({self:?})");
            }
        }
        Ok(())
    }
}

/// The wall-clock stamp of a log line: daprd's `time="<RFC 3339>"`, or the RFC 3339 stamp a
/// function's line starts with.
fn log_time(line: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let stamp = match line.split_once("time=\"") {
        Some((_, rest)) => rest.split('"').next()?,
        None => line.split_whitespace().next()?,
    };
    chrono::DateTime::parse_from_rfc3339(stamp).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// Seconds from `since` to the first line of `logs/<name>.log` stamped at or after `since`
/// that contains every one of `needles`.
fn first_logged(
    logs: &Path,
    name: &str,
    since: chrono::DateTime<chrono::Utc>,
    needles: &[&str],
) -> anyhow::Result<f64> {
    let path = logs.join(format!("{name}.log"));
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|line| needles.iter().all(|n| line.contains(n)))
        .filter_map(log_time)
        .find(|t| *t >= since)
        .map(|t| (t - since).as_seconds_f64())
        .with_context(|| format!("{}: no line with {needles:?} after {since}", path.display()))
}

/// create-task's cold path of the wake-up published at `published` (`wall`: the wall clock then)
/// whose task is `task_id`, processed by the test at `readable`.
fn cold_path(
    platform: &Platform,
    published: Instant,
    wall: chrono::DateTime<chrono::Utc>,
    replicas_seen: Instant,
    task_id: &str,
    readable: Instant,
) -> anyhow::Result<ColdPath> {
    let start = platform
        .starts()
        .iter()
        .rev()
        .find(|s| s.name == "create-task" && s.spawned >= published)
        .context("no start of create-task's first pair after the publish")?;
    let function_ready = start.function_ready.context("create-task's /healthz did not answer before its daprd")?;
    let logs = platform.logs();
    let daprd = |needles: &[&str]| first_logged(logs, "daprd-create-task", wall, needles);
    Ok(ColdPath {
        replicas_seen: secs(published, replicas_seen),
        spawned: secs(published, start.spawned),
        function_ready: secs(published, function_ready),
        daprd_ready: secs(published, start.daprd_ready),
        subscribed: daprd(&["app is subscribed to the following topics", "task-create"])?,
        consuming: daprd(&["Subscribed and listening to topics", "task-create"])?,
        group_joined: daprd(&["added subscription to task-create/"])?,
        first_fetch: daprd(&["Processing Kafka message: task-create/"])?,
        processed: first_logged(logs, "create-task", wall, &["task request", task_id])?,
        readable: secs(published, readable),
    })
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
    let wall = chrono::Utc::now();
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
    let (app, level) = COLD_PATH_LOG_LEVEL;
    let cold_path = if platform.dapr_log_level(app) == level {
        let path = cold_path(platform, published, wall, create_task.seen, &task_id, processed)?;
        path.check_order()?;
        Some(path)
    } else {
        None
    };
    Ok(Timings {
        publish_to_replicas: secs(published, create_task.seen),
        pair_start: secs(create_task.seen, create_task.done),
        first_processed: secs(published, processed),
        audited: secs(published, audited),
        all_zero_after_audit: secs(audited, zero),
        woken,
        cold_path,
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

/// How long [`idle_usage`] averages CPU over.
pub const IDLE_WINDOW: Duration = Duration::from_secs(20);
/// How long after the last start [`idle_usage`] waits before its window opens (past start-up
/// work, the consumer groups joined).
pub const IDLE_SETTLE: Duration = Duration::from_secs(5);

/// One function's pair at idle: resident memory at the end of the window (`VmRSS`) and CPU
/// averaged over it (user + system time of `/proc/<pid>/stat`), the function's and its daprd's.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleUsage {
    pub app: String,
    pub function_rss_mib: f64,
    pub function_millicores: f64,
    pub daprd_rss_mib: f64,
    pub daprd_millicores: f64,
}

/// Every function of the platform up and idle at once, measured over `window`: starts the
/// first pair of each that is not up (directly, not through the kubelet: nothing reconciles
/// meanwhile, so KEDA's 0 does not stop them), waits [`IDLE_SETTLE`], reads each process's CPU
/// time, waits `window` with no traffic, reads it again with the RSS; then stops the pairs it
/// started. The builds are whatever the platform runs (the tests: debug).
pub async fn idle_usage(platform: &mut Platform, window: Duration) -> anyhow::Result<Vec<IdleUsage>> {
    let apps: Vec<String> =
        platform.apps().iter().map(|a| a.id.clone()).filter(|id| platform.has_function(id)).collect();
    let mut started = Vec::new();
    for app in &apps {
        if !platform.is_up(app)? {
            platform.start_app(app).await.with_context(|| format!("starting {app} for the idle figures"))?;
            started.push(app.clone());
        }
    }
    tokio::time::sleep(IDLE_SETTLE).await;
    let pids = platform.pids();
    let pid = |name: &str| pids.get(name).copied().with_context(|| format!("no process {name}"));
    let mut before = BTreeMap::new();
    for app in &apps {
        for name in [app.clone(), format!("daprd-{app}")] {
            before.insert(name.clone(), cpu_seconds(pid(&name)?, Cpu::Own)?);
        }
    }
    let opened = Instant::now();
    tokio::time::sleep(window).await;
    let elapsed = opened.elapsed().as_secs_f64();
    let mut usage = Vec::new();
    for app in &apps {
        let figures = |name: &str| -> anyhow::Result<(f64, f64)> {
            let pid = pid(name)?;
            let cpu = cpu_seconds(pid, Cpu::Own)? - before[name];
            Ok((rss_mib(pid)?, cpu / elapsed * 1000.0))
        };
        let (function_rss_mib, function_millicores) = figures(app)?;
        let (daprd_rss_mib, daprd_millicores) = figures(&format!("daprd-{app}"))?;
        usage.push(IdleUsage {
            app: app.clone(),
            function_rss_mib,
            function_millicores,
            daprd_rss_mib,
            daprd_millicores,
        });
    }
    for app in started {
        platform.stop_app(&app, Duration::from_secs(10))?;
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_compare_in_any_form() {
        assert_eq!(quantity("1000"), quantity("1k"));
        assert_eq!(quantity("500m"), Some(0.5));
        assert_eq!(quantity("20"), Some(20.0));
        assert_ne!(quantity("100"), quantity("1k"));
        assert_eq!(quantity("?"), None);
    }

    #[test]
    fn log_lines_give_their_time() {
        let daprd =
            r#"time="2026-12-07T06:25:58.123456789Z" level=debug msg="Processing Kafka message: task-create/3/17""#;
        let function = "2026-12-07T06:25:58.5Z  INFO create_task: task request task_id=abc";
        assert_eq!(log_time(daprd).unwrap().to_rfc3339(), "2026-12-07T06:25:58.123456789+00:00");
        assert_eq!(log_time(function).unwrap().to_rfc3339(), "2026-12-07T06:25:58.500+00:00");
        assert!(log_time("no time here").is_none());
    }

    #[test]
    fn a_cold_path_out_of_order_fails() {
        let path = ColdPath {
            replicas_seen: 0.3,
            spawned: 0.4,
            function_ready: 0.5,
            daprd_ready: 0.9,
            subscribed: 0.6,
            consuming: 0.6,
            group_joined: 0.8,
            first_fetch: 0.85,
            processed: 0.9,
            readable: 1.0,
        };
        path.check_order().unwrap();
        assert!(ColdPath { first_fetch: 0.7, ..path.clone() }.check_order().is_err());
        assert!(ColdPath { spawned: 0.2, ..path.clone() }.check_order().is_err());
        assert!(ColdPath { daprd_ready: 0.3, ..path }.check_order().is_err());
    }
}
