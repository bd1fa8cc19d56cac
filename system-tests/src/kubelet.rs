//! A process runner that plays kubelet for the function Deployments, and for nothing else:
//! it reads each Deployment's `spec.replicas` from a real API server (the pinned `kubectl` of
//! the scripts, with the control plane's kubeconfig) and makes the number of running pairs of
//! that app (its function and its daprd) on the real [`Platform`] match it, starting a pair and
//! waiting for its sidecar to be healthy (a readiness probe) or stopping it gracefully (SIGTERM,
//! as a deleted pod gets).
//!
//! Why a stand-in and what it leaves out: with etcd, kube-apiserver and the KEDA operator but
//! no kubelet, KEDA writes `spec.replicas` and nothing runs pods (`scripts/control-plane.sh`).
//! This runs processes instead of pods; no images, probes beyond the sidecar's health, restarts
//! or Pods.
//!
//! Any number of pairs per app. KEDA itself only writes 0 or 1 (its activation step); above 1
//! the HPA it creates decides, which kube-controller-manager's HPA controller reconciles on the
//! metrics KEDA's metrics adapter serves. The first pair of an app is the run file's, on its
//! fixed ports; every further one gets ports of its own ([`Platform::start_replica`]), so N
//! pairs run side by side on one host as N pods would on their own network namespaces, in one
//! consumer group. Pairs start one at a time, each healthy before the next (a Deployment's
//! surge is not modelled), and stop newest first (as a ReplicaSet picks the youngest pods to
//! delete), the first instance last.
//!
//! It also writes the Deployment's `status` (replicas, ready, available) after every pair that
//! is up or gone, so that `kubectl get deploy` shows what runs, as a kubelet and the Deployment
//! controller together would, and the HPA controller reads the replica count it scales from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::platform::Platform;

/// How long a stopped pair may take to exit before it is SIGKILLed (a pod's default
/// terminationGracePeriodSeconds is 30; daprd's own graceful shutdown is 5 s).
const GRACE: Duration = Duration::from_secs(10);

/// One thing the kubelet did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub app: String,
    /// `spec.replicas` when it acted.
    pub wanted: i64,
    /// `true`: a pair was started (and is healthy); `false`: it was stopped. One [`Change`]
    /// per pair: scaling 0 -> 3 gives three with `started`, `running` 1, 2 and 3.
    pub started: bool,
    /// The app's pairs running once it was done ([`Platform::replicas`]).
    pub running: usize,
    /// When it saw the new `spec.replicas`.
    pub seen: Instant,
    /// When the pair was healthy, or gone.
    pub done: Instant,
}

/// The kubelet of one namespace's function Deployments.
#[derive(Debug)]
pub struct Kubelet {
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    namespace: String,
    history: Vec<Change>,
}

impl Kubelet {
    pub fn new(kubectl: &Path, kubeconfig: &Path, namespace: &str) -> Self {
        Self {
            kubectl: kubectl.to_owned(),
            kubeconfig: kubeconfig.to_owned(),
            namespace: namespace.to_owned(),
            history: Vec::new(),
        }
    }

    /// Everything it did so far, oldest first.
    pub fn history(&self) -> &[Change] {
        &self.history
    }

    /// Runs `kubectl <args>` against the control plane; its standard output, or an error with
    /// its standard error.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .with_context(|| format!("running {}", self.kubectl.display()))?;
        if !output.status.success() {
            bail!("kubectl {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// `spec.replicas` of every Deployment of the namespace, by name (a Deployment without
    /// one counts as 1, the API server's default).
    pub fn replicas(&self) -> anyhow::Result<BTreeMap<String, i64>> {
        let text = self.kubectl(&["get", "deployments", "-n", &self.namespace, "-o", "json"])?;
        let list: Value = serde_json::from_str(&text).context("parsing kubectl get deployments")?;
        let mut replicas = BTreeMap::new();
        for item in list["items"].as_array().context("a deployment list without items")? {
            let name = item["metadata"]["name"].as_str().context("a deployment without a name")?;
            replicas.insert(name.to_owned(), item["spec"]["replicas"].as_i64().unwrap_or(1));
        }
        Ok(replicas)
    }

    /// One pass: for every Deployment named like an app of `platform`, makes the number of
    /// running pairs equal `spec.replicas`: starts the missing ones one at a time (the first
    /// instance when it is not up, else a further replica), each healthy before the next, or
    /// stops the extra ones newest first (the first instance last). A pair that exited on its
    /// own no longer counts, so it is replaced, as a kubelet restarts a failed container.
    /// Returns what it did in this pass, one [`Change`] per pair (also kept in
    /// [`Kubelet::history`]).
    pub async fn reconcile(&mut self, platform: &mut Platform) -> anyhow::Result<Vec<Change>> {
        let seen = Instant::now();
        let wanted = self.replicas()?;
        let mut changes = Vec::new();
        for (app, &replicas) in &wanted {
            if !platform.has_function(app) {
                continue;
            }
            // A negative count is refused by the API server; 0 if one ever came through.
            let target = usize::try_from(replicas).unwrap_or(0);
            let mut running = platform.replicas(app)?;
            while running != target {
                let started = running < target;
                if started {
                    let what = || format!("starting {app} pair {} (spec.replicas {replicas})", running + 1);
                    if platform.is_up(app)? {
                        platform.start_replica(app).await.with_context(what)?;
                    } else {
                        platform.start_app(app).await.with_context(what)?;
                    }
                } else if !platform.stop_replica(app, GRACE)? {
                    platform.stop_app(app, GRACE)?;
                }
                let done = Instant::now();
                let now = platform.replicas(app)?;
                if now == running {
                    bail!("{app}: {running} pairs running after {} one", if started { "starting" } else { "stopping" });
                }
                running = now;
                self.set_status(app, running)?;
                changes.push(Change { app: app.clone(), wanted: replicas, started, running, seen, done });
            }
        }
        self.history.extend(changes.iter().cloned());
        Ok(changes)
    }

    /// Writes the Deployment's status subresource as the Deployment controller would once
    /// `ready` replicas run.
    fn set_status(&self, app: &str, ready: usize) -> anyhow::Result<()> {
        let status = serde_json::json!({ "status": {
            "replicas": ready, "updatedReplicas": ready, "readyReplicas": ready, "availableReplicas": ready,
        }});
        self.kubectl(&[
            "patch",
            "deployment",
            app,
            "-n",
            &self.namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ])
        .map(drop)
    }

    /// Stops every pair it runs (SIGTERM, as at a node's shutdown), newest first.
    pub fn stop_all(&mut self, platform: &mut Platform) -> anyhow::Result<()> {
        let ids: Vec<String> = platform.apps().iter().map(|a| a.id.clone()).collect();
        for id in ids {
            while platform.stop_replica(&id, GRACE)? {}
            if platform.is_up(&id)? {
                platform.stop_app(&id, GRACE)?;
            }
        }
        Ok(())
    }
}
