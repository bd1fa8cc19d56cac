//! Scale from zero with KEDA (issue 15): first message → first processed, from a fully idle
//! system, on the real platform with the real KEDA operator. The platform backend only: devhost
//! has no KEDA.
//!
//! One control plane (`scripts/control-plane.sh --keda`: etcd, kube-apiserver, the KEDA operator,
//! its metrics API server, the HPA controller) and one platform (PostgreSQL, Kafka, the Scheduler)
//! for every wake-up, the functions the release builds, run by `system_tests::kubelet` as the
//! Deployments ask. The setup and each wake-up are `system_tests::keda`'s, the same as
//! `make test-keda`'s: [`prepare`] applies the minikube overlay through the test-only overlay
//! (`system-tests/keda-overlay`, polling every second) and waits until every worker is at 0;
//! each [`wake_once`] publishes one create request with every worker at 0, checks the work was
//! done, and returns once every worker is back at 0 and stopped, so the next one starts from
//! idle again.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use serde_norway::Value;
use system_tests::host::{Profile, Setup};
use system_tests::keda::{ControlPlane, NAMESPACE, Timings, all_asleep, prepare, wake_once};
use system_tests::kubelet::Kubelet;
use system_tests::platform::{Options, Platform};
use system_tests::workspace_root;

use crate::Run;

/// What the figure measured.
#[derive(Debug)]
pub struct Wakes {
    /// Each wake-up, in order: its timings, or why it failed.
    pub runs: Vec<Run<Timings>>,
    /// How many were asked for (fewer ran when the system did not come back to idle).
    pub asked: usize,
    /// create-task's `pollingInterval` as applied (s).
    pub polling_secs: Option<i64>,
    /// create-task's `cooldownPeriod` as applied (s).
    pub cooldown_secs: Option<i64>,
    /// From the start to idle: control plane, platform, overlay (s).
    pub setup_secs: f64,
    /// The whole figure, stopping everything included (s).
    pub total_secs: f64,
}

/// `$TMPDIR/todo-bench/wake`: the platform's and the overlay's files, every process's log in
/// `logs/`; removed after a figure that succeeded, kept after one that failed.
fn dir() -> PathBuf {
    std::env::temp_dir().join("todo-bench").join("wake")
}

/// `count` wake-ups from zero on one control plane and platform. An error is the setup's (or
/// the teardown's); a wake-up that fails is kept in [`Wakes::runs`], and the next ones still
/// run once every worker is back at 0.
pub async fn measure(count: usize, say: &impl Fn(&str)) -> anyhow::Result<Wakes> {
    let dir = dir();
    Platform::kill_leftovers(&dir)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let result = run(count, say, &dir).await;
    match &result {
        Ok(wakes) if wakes.runs.iter().all(Result::is_ok) => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        _ => say(&format!("wake: logs kept in {}", logs.display())),
    }
    result.with_context(|| format!("logs in {}", logs.display()))
}

async fn run(count: usize, say: &impl Fn(&str), dir: &std::path::Path) -> anyhow::Result<Wakes> {
    let started = Instant::now();
    let elapsed = || started.elapsed().as_secs_f64();
    let setup = Setup::with_profile(Profile::Release, &[])?;
    say("wake: starting the control plane (etcd, kube-apiserver, KEDA, the HPA controller)");
    let control = ControlPlane::start(dir).context("starting the control plane")?;
    say(&format!(
        "wake: control plane up at {:.0} s; starting the platform (no functions: the kubelet stand-in starts them)",
        elapsed()
    ));
    let mut platform =
        match Platform::start(&setup.run_file, dir, Options { no_functions: true, ..Options::default() }).await {
            Ok(platform) => platform,
            Err(error) => return Err(error.context("starting the platform")),
        };
    let mut kubelet = Kubelet::new(&control.kubectl, &control.kubeconfig, NAMESPACE);
    let outcome = async {
        let idle = prepare(&setup, &mut platform, &mut kubelet, dir).await.context("bringing the system to idle")?;
        say(&format!(
            "wake: idle (every worker at 0, every ScaledObject Ready) {:.1} s after the overlay, at {:.0} s",
            idle.idle_after,
            elapsed()
        ));
        let create_task = idle.scaled.iter().find(|so| so["metadata"]["name"].as_str() == Some("create-task"));
        let spec = |key: &str| create_task.and_then(|so| so["spec"].get(key)).and_then(Value::as_i64);
        let mut wakes = Wakes {
            runs: Vec::new(),
            asked: count,
            polling_secs: spec("pollingInterval"),
            cooldown_secs: spec("cooldownPeriod"),
            setup_secs: elapsed(),
            total_secs: 0.0,
        };
        for i in 1..=count {
            match wake_once(&setup, &mut platform, &mut kubelet, &idle).await {
                Ok(t) => {
                    say(&format!(
                        "wake {i}/{count}: replicas 1 at {:.1} s, pair up {:.1} s later, processed at {:.1} s, \
                         audited at {:.1} s, all at 0 {:.1} s after (at {:.0} s)",
                        t.publish_to_replicas,
                        t.pair_start,
                        t.first_processed,
                        t.audited,
                        t.all_zero_after_audit,
                        elapsed()
                    ));
                    wakes.runs.push(Ok(t));
                }
                Err(error) => {
                    let mut error = format!("{error:#}");
                    say(&format!("wake {i}/{count} failed: {error}"));
                    // The next wake-up must start from idle too: wait for it, or stop here.
                    let asleep = all_asleep(
                        &mut kubelet,
                        &mut platform,
                        &idle.workers,
                        "every worker back at 0 after a failure",
                    )
                    .await;
                    if let Err(e) = asleep {
                        error.push_str(&format!(
                            "; then the system did not come back to idle ({e:#}): the remaining wake-ups were not run"
                        ));
                        wakes.runs.push(Err(error));
                        break;
                    }
                    wakes.runs.push(Err(error));
                }
            }
        }
        anyhow::Ok(wakes)
    }
    .await;
    if outcome.is_err() {
        let keda = std::fs::read_to_string(&control.keda_log).unwrap_or_default();
        let tail: Vec<&str> = keda.lines().rev().take(20).collect();
        say(&format!(
            "wake: the end of the KEDA operator's log:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    let stopped = kubelet.stop_all(&mut platform).context("stopping the functions");
    let platform_stopped = platform.stop().context("stopping the platform");
    drop(control);
    say(&format!("wake: stopped at {:.0} s", elapsed()));
    let mut wakes = outcome?;
    stopped?;
    platform_stopped?;
    wakes.total_secs = elapsed();
    Ok(wakes)
}

/// The `pollingInterval` (s) of create-task's ScaledObject as shipped (`keda/create-task.yaml`),
/// for the report; `None` if it cannot be read.
pub fn shipped_polling_secs() -> Option<i64> {
    let text = std::fs::read_to_string(workspace_root().join("keda/create-task.yaml")).ok()?;
    let doc: Value = serde_norway::from_str(&text).ok()?;
    doc["spec"].get("pollingInterval").and_then(Value::as_i64)
}
