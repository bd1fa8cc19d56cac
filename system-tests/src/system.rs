//! One system under test, on either backend, so that a scenario is written once and runs on
//! both: devhost (the emulator, in this process or as the `devhost` binary) and the real
//! platform (real daprd, the Dapr Scheduler, Kafka and PostgreSQL as processes).
//!
//! A scenario takes a [`TestSystem`] and uses only what both backends offer: task-api as a
//! user ([`TestSystem::api`]), a sidecar ([`TestSystem::sidecar`]), waiting until everything
//! is processed ([`TestSystem::settle`]), the CloudEvents of a topic
//! ([`TestSystem::messages`]), every message delivered twice
//! ([`TestSystem::deliver_twice`]) and, for the fault suite, SIGKILL of everything and a restart
//! ([`TestSystem::kill_all`], [`TestSystem::revive_all`]). What only one backend can do (hold
//! SQLite's write lock, stop PostgreSQL) is passed to the scenario by the test.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::StatusCode;
use serde_json::Value;

use crate::api::{Api, client};
use crate::host::{Setup, Spawned};
use crate::platform::{Options, Platform};

/// How long a (re)started devhost binary may take until task-api answers.
const READY: Duration = Duration::from_secs(90);

/// A private system (its own ports, database, topics and JWT secret) on one backend.
#[derive(Debug)]
pub struct TestSystem {
    setup: Setup,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    /// `devhost::system::System` in this process (`Setup::start`).
    InProcess { system: Option<devhost::system::System>, duplicate_delivery: bool },
    /// The `devhost` binary (`Setup::spawn_with`), which SIGKILL can reach; each start logs to
    /// `devhost-<n>.log` in the setup's folder.
    Spawned { devhost: Option<Spawned>, flags: Vec<String>, starts: u32 },
    /// The real platform, and the sidecar API token it was given.
    Platform { platform: Box<Platform> },
}

impl TestSystem {
    /// devhost in this process; with `duplicate_delivery`, every message is delivered twice.
    pub async fn in_process(duplicate_delivery: bool) -> anyhow::Result<Self> {
        let setup = Setup::new(&[])?;
        let system = setup.start(duplicate_delivery).await?;
        Ok(Self { setup, backend: Backend::InProcess { system: Some(system), duplicate_delivery } })
    }

    /// The `devhost` binary with `flags` (`--duplicate-delivery`); returns once task-api answers.
    pub async fn spawned(flags: &[&str]) -> anyhow::Result<Self> {
        let setup = Setup::new(&[])?;
        let flags = flags.iter().map(|f| (*f).to_owned()).collect();
        let mut system = Self { setup, backend: Backend::Spawned { devhost: None, flags, starts: 0 } };
        system.revive_all().await?;
        Ok(system)
    }

    /// The real platform in `$TMPDIR/todo-platform-tests/<name>`: kept after the test (every
    /// process's log in `logs/`), replaced by the next run of the same name. Returns once every
    /// sidecar is healthy.
    pub async fn platform(name: &str, options: Options) -> anyhow::Result<Self> {
        let setup = Setup::new(&[])?;
        let dir = std::env::temp_dir().join("todo-platform-tests").join(name);
        Platform::kill_leftovers(&dir)?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        let platform = Box::new(Platform::start(&setup.run_file, &dir, options).await?);
        Ok(Self { setup, backend: Backend::Platform { platform } })
    }

    /// Plays `scenario` on this system, stops it whatever the outcome, and returns the
    /// scenario's result; a failure names where the logs are.
    pub async fn play<T>(mut self, scenario: impl AsyncFnOnce(&mut Self) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let result = scenario(&mut self).await;
        let logs = self.logs();
        let stopped = self.stop().await;
        let value = result.with_context(|| format!("logs: {logs}"))?;
        stopped?;
        Ok(value)
    }

    /// `devhost`, `devhost --duplicate-delivery` or `platform`, for messages.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::InProcess { duplicate_delivery: false, .. } => "devhost".to_owned(),
            Backend::InProcess { duplicate_delivery: true, .. } => "devhost --duplicate-delivery".to_owned(),
            Backend::Spawned { flags, .. } => {
                ["devhost".to_owned()].iter().chain(flags).cloned().collect::<Vec<_>>().join(" ")
            }
            Backend::Platform { .. } => "platform".to_owned(),
        }
    }

    /// The run file, database and JWT secret (on the platform: the run file it was started from).
    pub fn setup(&self) -> &Setup {
        &self.setup
    }

    /// The platform, if this system runs on it.
    pub fn platform_mut(&mut self) -> anyhow::Result<&mut Platform> {
        let describe = self.describe();
        match &mut self.backend {
            Backend::Platform { platform, .. } => Ok(platform),
            _ => bail!("{describe} is not the real platform"),
        }
    }

    /// The devhost log of the current start of the `devhost` binary.
    pub fn devhost_log(&self) -> Option<PathBuf> {
        match &self.backend {
            Backend::Spawned { starts, .. } if *starts > 0 => {
                Some(self.setup.path().join(format!("devhost-{}.log", starts - 1)))
            }
            _ => None,
        }
    }

    /// Where to look when something failed: the end of devhost's log, or the platform's folder.
    pub fn logs(&self) -> String {
        match (&self.backend, self.devhost_log()) {
            (Backend::Platform { platform, .. }, _) => format!("every process's log in {}", platform.logs().display()),
            (_, Some(log)) => {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!("{} ends with:\n{}", log.display(), lines[lines.len().saturating_sub(20)..].join("\n"))
            }
            _ => "devhost in this process logs nothing (RUST_LOG=warn)".to_owned(),
        }
    }

    /// A task-api client acting as `user`.
    pub fn api(&self, user: &str) -> anyhow::Result<Api> {
        self.setup.api(user)
    }

    /// The sidecar URL of `app_id`.
    pub fn sidecar(&self, app_id: &str) -> anyhow::Result<String> {
        match &self.backend {
            Backend::Platform { platform, .. } => platform.sidecar(app_id),
            _ => Ok(self.setup.sidecar(app_id)?.to_owned()),
        }
    }

    /// Waits until every outbox record is published and every consumer group has processed
    /// everything: `Setup::settle` on devhost, `Platform::settle` on the platform.
    pub async fn settle(&self, timeout: Duration) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Platform { platform, .. } => platform.settle(timeout).await,
            _ => self.setup.settle(timeout).await,
        }
    }

    /// Every message of `topic` so far, oldest first per partition, as JSON (the CloudEvent); a
    /// message that is not JSON reads as a JSON string of its bytes.
    pub async fn messages(&self, topic: &str) -> anyhow::Result<Vec<Value>> {
        match &self.backend {
            Backend::Platform { platform, .. } => Ok(platform
                .kafka()
                .await?
                .messages(topic)
                .await?
                .into_iter()
                .map(|m| {
                    let bytes = m.value.unwrap_or_default();
                    serde_json::from_slice(&bytes)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
                })
                .collect()),
            _ => Ok(self.setup.peek(topic)?.into_iter().map(|m| m.body).collect()),
        }
    }

    /// Makes sure every message of `topics` so far is delivered twice, and waits until the
    /// copies are processed.
    ///
    /// - devhost with duplicate delivery delivered each twice already as it was published: this
    ///   waits until the system settles, as devhost delivers both copies of a message before its
    ///   offset moves on (`devhost/src/delivery.rs`), so no copy is left on its way;
    /// - a real broker has no such switch: every message is published again as it was
    ///   ([`replay`]), the system settles, 3 s more give a late effect (a second next
    ///   occurrence is created after its request was consumed) time to land, and it settles
    ///   again.
    ///
    /// devhost without duplicate delivery cannot: an error.
    pub async fn deliver_twice(&self, topics: &[&str], settle: Duration) -> anyhow::Result<usize> {
        match &self.backend {
            Backend::Platform { platform, .. } => {
                let replayed = replay(platform, topics).await?;
                self.settle(settle).await?;
                tokio::time::sleep(Duration::from_secs(3)).await;
                self.settle(settle).await?;
                Ok(replayed)
            }
            Backend::InProcess { duplicate_delivery: true, .. } => {
                self.settle(settle).await?;
                Ok(0)
            }
            Backend::Spawned { flags, .. } if flags.iter().any(|f| f == "--duplicate-delivery") => {
                self.settle(settle).await?;
                Ok(0)
            }
            _ => bail!("{} delivers every message once: start it with duplicate delivery", self.describe()),
        }
    }

    /// SIGKILLs every function and what hosts its sidecar, at once, none of them getting to
    /// clean up: devhost and the apps it started; on the platform every function and
    /// every daprd (the broker, the database and the Scheduler stay, as a cluster's would).
    /// Returns how many apps were running, function and sidecar, until the kill; an app that
    /// had exited on its own fails here.
    pub async fn kill_all(&mut self) -> anyhow::Result<usize> {
        match &mut self.backend {
            Backend::Spawned { devhost, .. } => match devhost.take() {
                Some(mut devhost) => devhost.kill_all(),
                None => bail!("devhost is not running"),
            },
            Backend::Platform { platform, .. } => {
                let running = platform.running()?;
                let ids: Vec<String> = platform.apps().iter().map(|a| a.id.clone()).collect();
                let apps = ids
                    .iter()
                    .filter(|id| {
                        running.contains(&format!("daprd-{id}"))
                            && (running.contains(*id) || !platform.has_function(id))
                    })
                    .count();
                for id in &ids {
                    if platform.has_function(id) {
                        platform.kill_function(id)?;
                    }
                    platform.kill_daprd(id)?;
                }
                Ok(apps)
            }
            Backend::InProcess { .. } => bail!("devhost in this process cannot be SIGKILLed: use TestSystem::spawned"),
        }
    }

    /// Starts again what [`TestSystem::kill_all`] killed (the first time: starts the `devhost`
    /// binary), and returns once it answers: task-api's health on devhost (as the devhost fault
    /// tests always waited), every daprd's on the platform.
    pub async fn revive_all(&mut self) -> anyhow::Result<()> {
        let api = self.setup.api("health")?;
        match &mut self.backend {
            Backend::Spawned { devhost, flags, starts } => {
                let log = self.setup.path().join(format!("devhost-{starts}.log"));
                *starts += 1;
                let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
                *devhost = Some(self.setup.spawn_with(&flags, &[], Some(&log))?);
                api.wait_healthy(READY).await.with_context(|| self.logs())
            }
            Backend::Platform { platform, .. } => {
                let ids: Vec<String> = platform.apps().iter().map(|a| a.id.clone()).collect();
                for id in &ids {
                    platform.start_function(id)?;
                    platform.start_daprd(id)?;
                }
                for id in &ids {
                    platform.wait_app(id).await?;
                }
                Ok(())
            }
            Backend::InProcess { .. } => bail!("devhost in this process is never killed"),
        }
    }

    /// Stops everything: devhost in this process gracefully, the `devhost` binary with SIGKILL
    /// (as its tests always did), the platform gracefully.
    pub async fn stop(self) -> anyhow::Result<()> {
        match self.backend {
            Backend::InProcess { system, .. } => {
                if let Some(system) = system {
                    system.stop().await;
                }
                Ok(())
            }
            Backend::Spawned { devhost, .. } => {
                drop(devhost);
                Ok(())
            }
            Backend::Platform { platform, .. } => platform.stop(),
        }
    }
}

/// Publishes every message of `topics` on `platform` again, exactly as it is (the same
/// CloudEvent, id included, as `application/cloudevents+json`, which Dapr forwards without a
/// new envelope; the same partition key), all at once: a burst of duplicates on every
/// partition, the real-broker form of devhost's `--duplicate-delivery`. Returns how many were
/// replayed.
pub async fn replay(platform: &Platform, topics: &[&str]) -> anyhow::Result<usize> {
    let kafka = platform.kafka().await?;
    let http = client()?;
    let mut sends = Vec::new();
    for topic in topics {
        // As the app the pub/sub scopes let publish there.
        let publisher = todo_core::events::authority::publisher_of(topic)
            .with_context(|| format!("no app may publish to {topic}"))?;
        let sidecar = platform.sidecar(publisher)?;
        for message in kafka.messages(topic).await? {
            let Some(value) = message.value else { continue };
            let key = message.key.map(|k| String::from_utf8_lossy(&k).into_owned()).unwrap_or_default();
            let mut url = reqwest::Url::parse(&format!("{sidecar}/v1.0/publish/pubsub/{topic}"))?;
            url.query_pairs_mut().append_pair("metadata.partitionKey", &key);
            let request = http.post(url).header("content-type", "application/cloudevents+json").body(value);
            let topic = (*topic).to_owned();
            sends.push(tokio::spawn(async move { (topic, request.send().await.map(|r| r.status())) }));
        }
    }
    let replayed = sends.len();
    for send in sends {
        let (topic, status) = send.await?;
        let status = status.with_context(|| format!("republishing to {topic}"))?;
        if status != StatusCode::NO_CONTENT {
            bail!("republishing to {topic} answered {status}");
        }
    }
    Ok(replayed)
}
