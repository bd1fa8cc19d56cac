//! The end-to-end and fault scenarios that run on both backends: each takes a
//! [`TestSystem`] and asserts through what both offer (task-api, a sidecar, the topics,
//! settling, SIGKILL). `tests/e2e.rs` and `tests/faults.rs` play them on devhost,
//! `tests/platform.rs` on the real platform; a failed check is an error naming the backend.
//!
//! - [`a_doubly_completed_recurring_task_has_one_next_instance`]
//! - [`a_completion_delivered_before_its_creation_is_applied_once`]
//! - [`a_reminder_moved_three_times_fires_once_at_the_last_time`]
//! - [`deleting_an_occurrence_skips_it_until_the_series_is_ended`]
//! - [`random_kills`]: SIGKILL of everything at random moments during a mixed load;
//! - [`store_outage`]: the store unavailable for a while during a mixed load.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use chrono::{SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use todo_core::events::{occurrence_request_id, task_id_for_request, topics, types};

use crate::api::{Api, client, eventually, json_body};
use crate::system::TestSystem;

/// The user of the end-to-end scenarios.
const USER: &str = "alice";

/// Generous: the tests share two cores with every other test of the workspace, and a platform
/// with its own JVM, database and ten processes.
const SETTLE: Duration = Duration::from_secs(60);

/// `todo.reminder.due` events of `task_id` in the `reminders` topic.
async fn reminder_events(system: &TestSystem, task_id: &str) -> anyhow::Result<Vec<Value>> {
    Ok(system.messages(topics::REMINDERS).await?.into_iter().filter(|e| e["data"]["task_id"] == task_id).collect())
}

/// Two clients complete a recurring task at once, and every event is delivered twice besides
/// (devhost: `--duplicate-delivery`; the platform: every message of `task-create` and
/// `task-events` replayed once the next instance is there, see [`TestSystem::deliver_twice`]):
/// both completions answer the one completed version, and the series has exactly one next
/// instance, created once.
pub async fn a_doubly_completed_recurring_task_has_one_next_instance(system: &mut TestSystem) -> anyhow::Result<()> {
    let api = system.api(USER)?;
    let due = Utc::now() + chrono::Duration::hours(1);
    let body = json!({
        "title": "Water the plants", "tags": ["twice"], "time_zone": "America/New_York",
        "due": due.to_rfc3339_opts(SecondsFormat::Secs, true),
        "recurrence": {"rule": "FREQ=DAILY;INTERVAL=2"},
    });
    let task = api.post("/v1/tasks", Some(&body), StatusCode::CREATED).await?;
    let id = task["id"].as_str().context("id")?.to_owned();
    let path = format!("/v1/tasks/{id}/complete");
    let (a, b) = tokio::join!(api.post(&path, None, StatusCode::OK), api.post(&path, None, StatusCode::OK));
    let (a, b) = (a?, b?);
    let versions: BTreeSet<u64> = [&a, &b].iter().filter_map(|t| t["version"].as_u64()).collect();
    ensure!(versions.len() == 1, "both completions answer the one completed version: {a} {b}");
    let next = eventually("the next instance", SETTLE, || async {
        let page = api.get_query("/v1/tasks", &[("tag", "twice"), ("status", "open")]).await?;
        Ok(page["items"].as_array().and_then(|items| items.first().cloned()))
    })
    .await?;
    ensure!(next["series"]["index"] == 1, "the next instance: {next}");
    // Every duplicate processed, then look again: still one.
    system.deliver_twice(&[topics::TASK_CREATE, topics::TASK_EVENTS], SETTLE).await?;
    let all = api.get_query("/v1/tasks", &[("tag", "twice")]).await?;
    let items = all["items"].as_array().cloned().unwrap_or_default();
    ensure!(items.len() == 2, "the completed task and one next instance: {all}");
    let trail = api.get(&format!("/v1/tasks/{}/audit", next["id"].as_str().unwrap_or_default())).await?;
    ensure!(trail["items"].as_array().map_or(0, Vec::len) == 1, "one creation: {trail}");
    Ok(())
}

/// An occurrence completed, reopened and completed again (the second time in `after_completion`
/// mode, so the next due date it computes differs): the series still has exactly one next
/// occurrence, the one the first completion asked for, and the trail of the reopened task has
/// all four changes in order.
pub async fn reopening_an_occurrence_never_doubles_the_next(system: &mut TestSystem) -> anyhow::Result<()> {
    let api = system.api(USER)?;
    let due = Utc::now() + chrono::Duration::hours(1);
    let body = json!({
        "title": "Stretch", "tags": ["reopened"], "time_zone": "Europe/Berlin",
        "due": due.to_rfc3339_opts(SecondsFormat::Secs, true),
        "recurrence": {"rule": "FREQ=DAILY", "mode": "after_completion"},
    });
    let task = api.post("/v1/tasks", Some(&body), StatusCode::CREATED).await?;
    let id = task["id"].as_str().context("id")?.to_owned();
    let next_of = || async {
        let page = api.get_query("/v1/tasks", &[("tag", "reopened"), ("status", "open")]).await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        anyhow::Ok(items.into_iter().find(|t| t["id"].as_str() != Some(id.as_str())))
    };
    api.post(&format!("/v1/tasks/{id}/complete"), None, StatusCode::OK).await?;
    let next = eventually("the next occurrence", SETTLE, next_of).await?;
    let reopened = api.post(&format!("/v1/tasks/{id}/reopen"), None, StatusCode::OK).await?;
    ensure!(reopened["status"] == "open" && reopened["completed_at"].is_null(), "reopened: {reopened}");
    api.post(&format!("/v1/tasks/{id}/complete"), None, StatusCode::OK).await?;
    eventually("the trail of the reopened task", SETTLE, || async {
        let changes = api.audit_changes(&id).await?;
        Ok((changes == ["created", "completed", "reopened", "completed"]).then_some(()))
    })
    .await?;
    // Every event of the flow processed: still one next occurrence, the first one.
    system.deliver_twice(&[topics::TASK_CREATE, topics::TASK_EVENTS], SETTLE).await?;
    let all = api.get_query("/v1/tasks", &[("tag", "reopened")]).await?;
    let items = all["items"].as_array().cloned().unwrap_or_default();
    ensure!(items.len() == 2, "the reopened task and one next occurrence: {all}");
    ensure!(next_of().await?.map(|t| t["id"].clone()) == Some(next["id"].clone()), "the same next occurrence: {all}");
    Ok(())
}

/// A live writer publishes a task's events in version order, but after a crash the outbox
/// relay may publish an older event after a newer one (and two replicas changing one task may
/// publish out of order), so consumers order by version, never by arrival. Here a recurring
/// task's `completed` event is delivered before its `created` event, on one partition so that
/// the order is certain: the audit trail still has both, in version order; the series gets
/// exactly one next occurrence; the late `created` does not bring back the reminder the
/// completion cancelled; nothing is dead-lettered.
pub async fn a_completion_delivered_before_its_creation_is_applied_once(system: &mut TestSystem) -> anyhow::Result<()> {
    use todo_core::events::{components, task_event_id};
    use todo_core::validate::{NewTask, new_task};

    let api = system.api(USER)?;
    let sidecar = system.sidecar("task-api")?;
    let http = client()?;
    let id = task_id_for_request(USER, "reordered");
    let input: NewTask = serde_json::from_value(json!({
        "title": "Water the plants", "tags": ["reordered"],
        "due": (Utc::now() + chrono::Duration::days(2)).to_rfc3339_opts(SecondsFormat::Secs, true),
        "reminder": {"before_due_seconds": 3600},
        "recurrence": {"rule": "FREQ=WEEKLY"},
    }))?;
    let created = new_task(id, USER, input, None, Utc::now())?;
    let mut completed = created.clone();
    ensure!(completed.complete(Utc::now()), "a new task can be completed");
    // The store holds what task-api's transaction wrote: the completed version.
    let saved = json_body(
        http.post(format!("{sidecar}/v1.0/state/{}", components::TASKS_STORE)),
        &json!([{"key": completed.key(), "value": todo_store::TaskStore::item(&completed)?.value}]),
    )
    .send()
    .await?;
    ensure!(saved.status() == StatusCode::NO_CONTENT, "saving the completed task answered {}", saved.status());
    // Its two events, with the ids the outbox gives them, in the wrong order.
    for (event_type, task) in [(types::TASK_COMPLETED, &completed), (types::TASK_CREATED, &created)] {
        let url = reqwest::Url::parse_with_params(
            &format!("{sidecar}/v1.0/publish/{}/{}", components::PUBSUB, topics::TASK_EVENTS),
            [
                ("metadata.cloudevent.type", event_type),
                ("metadata.cloudevent.id", &task_event_id(id, task.version)),
                ("metadata.cloudevent.subject", &id.to_string()),
                ("metadata.partitionKey", &id.to_string()),
            ],
        )?;
        let status = json_body(http.post(url), &serde_json::to_value(task)?).send().await?.status();
        ensure!(status == StatusCode::NO_CONTENT, "publishing {event_type} answered {status}");
    }
    system.settle(SETTLE).await?;

    let changes = api.audit_changes(&id.to_string()).await?;
    ensure!(changes == ["created", "completed"], "audit trail {changes:?}");
    let next = task_id_for_request(USER, &occurrence_request_id(id, 1));
    let next = eventually("the next occurrence", SETTLE, || async {
        let answer = api.call(Method::GET, &format!("/v1/tasks/{next}"), None).await?;
        Ok((answer.status == StatusCode::OK).then_some(answer.body))
    })
    .await?;
    ensure!(
        (next["status"].as_str(), next["series"]["index"].as_u64()) == (Some("open"), Some(1)),
        "the next occurrence: {next}"
    );
    let all = api.get_query("/v1/tasks", &[("tag", "reordered")]).await?;
    ensure!(all["items"].as_array().map_or(0, Vec::len) == 2, "the completed task and one next occurrence: {all}");
    let reminder = api.get(&format!("/v1/tasks/{id}/reminder")).await?;
    ensure!(reminder["status"] == "cancelled", "the late creation must not revive the reminder: {reminder}");
    for app in ["create-task", "on-task-completed", "fire-reminder", "audit-writer"] {
        let dead = system.messages(&topics::dead_letter(app)).await?;
        ensure!(dead.is_empty(), "{app} dead-lettered an event: {dead:?}");
    }
    Ok(())
}

/// A reminder moved earlier twice and later once fires once, at the last time it was given:
/// every earlier job is gone, not just the last one.
/// The pub/sub trust boundary as the sidecars enforce it with the repository's components:
/// every publish an app is not granted (`todo_core::events::authority`) is refused with 403 before
/// it reaches the broker, above all a `task-create` request (which names the owner it acts for)
/// from any app but on-task-completed, and a forged task event from the consumers. The forged
/// request creates nothing.
pub async fn only_the_granted_apps_may_publish(system: &mut TestSystem) -> anyhow::Result<()> {
    use todo_core::events::authority;
    let api = system.api(USER)?;
    let http = client()?;
    let mut topics: Vec<String> = authority::TOPICS.iter().map(|t| t.name.to_owned()).collect();
    topics.extend(
        authority::APPS.iter().filter(|app| !authority::subscribes(app).is_empty()).map(|app| topics::dead_letter(app)),
    );
    let forged = json!({ "request_id": "forged", "owner": USER, "task": {"title": "forged"} });
    let mut refused = 0;
    for app in authority::APPS {
        let sidecar = system.sidecar(app)?;
        for topic in topics.iter().filter(|topic| !authority::may_publish(app, topic)) {
            let url = reqwest::Url::parse_with_params(
                &format!("{sidecar}/v1.0/publish/pubsub/{topic}"),
                [("metadata.cloudevent.type", types::TASK_CREATE)],
            )?;
            let answer = json_body(http.post(url), &forged).send().await?;
            let status = answer.status();
            let body = answer.text().await.unwrap_or_default();
            ensure!(status == StatusCode::FORBIDDEN, "{app} publishing to {topic} answered {status}: {body}");
            ensure!(body.contains("ERR_PUBSUB_FORBIDDEN"), "{app} publishing to {topic}: {body}");
            refused += 1;
        }
    }
    // 6 apps x 8 topics (3 and 5 dead-letter topics), less the 9 grants.
    ensure!(refused == 39, "{refused} forbidden publishes checked, not 39");
    // A legitimate change still flows, and the forged request created nothing.
    let task = api.post("/v1/tasks", Some(&json!({"title": "after the forgeries"})), StatusCode::CREATED).await?;
    let id = task["id"].as_str().context("id")?.to_owned();
    eventually("the legitimate creation audited", SETTLE, || async {
        Ok((api.audit_changes(&id).await? == ["created"]).then_some(()))
    })
    .await?;
    let forged_id = task_id_for_request(USER, "forged");
    let answer = api.call(Method::GET, &format!("/v1/tasks/{forged_id}"), None).await?;
    ensure!(answer.status == StatusCode::NOT_FOUND, "the forged request created a task: {}", answer.status);
    Ok(())
}

pub async fn a_reminder_moved_three_times_fires_once_at_the_last_time(system: &mut TestSystem) -> anyhow::Result<()> {
    let api = system.api(USER)?;
    let start = Utc::now();
    let at = |secs: i64| (start + chrono::Duration::seconds(secs)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let body = json!({ "title": "Call the dentist", "reminder": {"at": at(12)} });
    let task = api.post("/v1/tasks", Some(&body), StatusCode::CREATED).await?;
    let id = task["id"].as_str().context("id")?.to_owned();
    for secs in [9, 15, 5] {
        let patch = json!({ "reminder": {"at": at(secs)} });
        let answer = api.call(Method::PATCH, &format!("/v1/tasks/{id}"), Some(&patch)).await?;
        if answer.status != StatusCode::OK {
            bail!("PATCH answered {}: {}", answer.status, answer.body);
        }
    }
    let last = chrono::DateTime::parse_from_rfc3339(&at(5))?;
    let fired = eventually("the reminder to fire", SETTLE, || async {
        let r = api.get(&format!("/v1/tasks/{id}/reminder")).await?;
        Ok((r["status"] == "fired").then_some(r))
    })
    .await?;
    let remind_at = chrono::DateTime::parse_from_rfc3339(fired["remind_at"].as_str().context("remind_at")?)?;
    ensure!(remind_at == last, "fired for {remind_at}, the last time given was {last}");
    // Past every earlier time (the latest was +15 s): nothing else fired.
    let quiet_until = start + chrono::Duration::seconds(17);
    tokio::time::sleep((quiet_until - Utc::now()).to_std().unwrap_or_default()).await;
    let events = reminder_events(system, &id).await?;
    ensure!(events.len() == 1, "one reminder event: {events:?}");
    let remind_at = events[0]["data"]["remind_at"].as_str().context("remind_at")?;
    ensure!(chrono::DateTime::parse_from_rfc3339(remind_at)? == last, "the event is for {remind_at}, not {last}");
    Ok(())
}

/// Deleting an open occurrence of a series skips it (the next one appears); deleting with
/// `?series=end` ends the series: no third occurrence, one next-occurrence request in all.
pub async fn deleting_an_occurrence_skips_it_until_the_series_is_ended(system: &mut TestSystem) -> anyhow::Result<()> {
    let api = system.api(USER)?;
    let due = (Utc::now() + chrono::Duration::days(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let body = json!({ "title": "Stand-up", "tags": ["skip"], "due": due, "recurrence": {"rule": "FREQ=DAILY"} });
    let first = api.post("/v1/tasks", Some(&body), StatusCode::CREATED).await?;
    let open = || async {
        let page = api.get_query("/v1/tasks", &[("tag", "skip"), ("status", "open")]).await?;
        anyhow::Ok(page["items"].as_array().cloned().unwrap_or_default())
    };
    let delete = |id: String, query: &'static str| {
        let api = api.clone();
        async move {
            let answer = api.call(Method::DELETE, &format!("/v1/tasks/{id}{query}"), None).await?;
            if answer.status != StatusCode::NO_CONTENT {
                bail!("DELETE answered {}: {}", answer.status, answer.body);
            }
            anyhow::Ok(())
        }
    };
    delete(first["id"].as_str().context("id")?.to_owned(), "").await?;
    let second = eventually("the occurrence after the deleted one", SETTLE, || async {
        Ok(open().await?.into_iter().find(|t| t["series"]["index"] == 1))
    })
    .await?;
    delete(second["id"].as_str().context("id")?.to_owned(), "?series=end").await?;
    // Once every consumer has caught up, a third one would exist: the end of the series went
    // through on-task-completed, which would have asked create-task for it before moving on.
    system.settle(SETTLE).await?;
    let left = open().await?;
    ensure!(left.is_empty(), "the series was ended, yet: {left:?}");
    let requests = system.messages(topics::TASK_CREATE).await?;
    ensure!(requests.len() == 1, "one next-occurrence request in all: {requests:?}");
    Ok(())
}

// --- The fault suite's mixed load and checks --------------------------------------------------
//
// Clients behave as real ones do: a command whose answer was lost (connection reset, 5xx) is
// sent again after the restart, before anything else is done to that task; creates carry an
// `Idempotency-Key`. Checked per task: it exists unless deleted; its audit trail has one entry
// per version, no version missing or doubled, and exactly the changes accepted (one `created`,
// one `updated` per rename, at most one `completed` and `deleted`); a recurring task that was
// completed or deleted while open has exactly one next occurrence; an open task's reminder is
// scheduled, a completed one's cancelled.

/// The user of the fault scenarios.
const FAULTY: &str = "faulty";
const WORKERS: usize = 4;
/// How long the fault scenarios wait for a system to settle.
pub const FAULT_SETTLE: Duration = Duration::from_secs(90);

/// A small deterministic generator (xorshift64*), so a failing run can be replayed by seed.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// `FAULT_SEED`, or a fresh seed.
pub fn seed() -> u64 {
    std::env::var("FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        u64::from(std::process::id()) << 20 | u64::from(chrono::Utc::now().timestamp_subsec_micros())
    }) | 1
}

/// `FAULT_KILLS`, or `default`.
pub fn kills(default: u32) -> u32 {
    std::env::var("FAULT_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(default)
}

/// What the client knows of one task it asked for.
#[derive(Debug, Clone, Default)]
struct Model {
    key: String,
    id: String,
    /// The due time of its create request, fixed once: a retried create must send the same
    /// body, or task-api refuses the reused Idempotency-Key (422).
    due: String,
    recurring: bool,
    created: bool,
    renames: u32,
    completed: bool,
    deleted: bool,
    /// Deleted while still open (a recurring one then gets its next occurrence).
    deleted_open: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Rename(u32),
    Complete,
    Delete,
}

/// The answer to a command: taken, or unknown (to be sent again).
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Done,
    Unknown,
}

async fn send(api: &Api, http: &reqwest::Client, task: &Model, op: Op) -> anyhow::Result<Outcome> {
    let path = format!("/v1/tasks/{}", task.id);
    let request = match op {
        Op::Create => {
            let mut body = json!({
                "title": format!("{} v0", task.key), "tags": ["faults"],
                "due": task.due,
                "reminder": {"before_due_seconds": 3600},
            });
            if task.recurring {
                body["recurrence"] = json!({"rule": "FREQ=DAILY"});
            }
            json_body(http.post(format!("{}/v1/tasks", api.base())).header("idempotency-key", &task.key), &body)
        }
        Op::Rename(n) => http
            .patch(format!("{}{path}", api.base()))
            .header("content-type", "application/merge-patch+json")
            .body(json!({ "title": format!("{} v{n}", task.key) }).to_string()),
        Op::Complete => http.post(format!("{}{path}/complete", api.base())),
        Op::Delete => http.delete(format!("{}{path}", api.base())),
    };
    let status = match request.bearer_auth(api.token()).send().await {
        Ok(response) => response.status(),
        Err(_) => return Ok(Outcome::Unknown),
    };
    Ok(match (op, status) {
        (_, s) if s.is_server_error() => Outcome::Unknown,
        (Op::Create, StatusCode::CREATED | StatusCode::OK)
        | (Op::Rename(_) | Op::Complete, StatusCode::OK)
        | (Op::Delete, StatusCode::NO_CONTENT) => Outcome::Done,
        // A repeated delete whose first attempt went through.
        (Op::Delete, StatusCode::NOT_FOUND) => Outcome::Done,
        (op, status) => bail!("{op:?} on {} answered {status}", task.key),
    })
}

fn apply(task: &mut Model, op: Op) {
    match op {
        Op::Create => task.created = true,
        Op::Rename(_) => task.renames += 1,
        Op::Complete => task.completed = true,
        Op::Delete => {
            task.deleted_open = !task.completed;
            task.deleted = true;
        }
    }
}

/// One worker's share: its own tasks, so commands on one task are never concurrent.
#[derive(Debug, Default)]
struct Worker {
    tasks: Vec<Model>,
    /// The command whose answer was lost, with its task's index.
    pending: Option<(usize, Op)>,
    commands: u64,
}

impl Worker {
    fn choose(&self, rng: &mut Rng) -> (usize, Op) {
        let live: Vec<usize> =
            (0..self.tasks.len()).filter(|i| self.tasks[*i].created && !self.tasks[*i].deleted).collect();
        if live.is_empty() || rng.below(10) < 4 {
            return (self.tasks.len(), Op::Create);
        }
        let i = live[rng.below(live.len() as u64) as usize];
        let task = &self.tasks[i];
        let op = match (task.completed, rng.below(4)) {
            (false, 0 | 1) => Op::Rename(task.renames + 1),
            (false, 2) => Op::Complete,
            (true, 0 | 1) => Op::Rename(task.renames + 1),
            _ => Op::Delete,
        };
        (i, op)
    }

    /// Sends commands until `until`, or until one's answer is lost (the system is down).
    async fn run(
        &mut self,
        api: &Api,
        http: &reqwest::Client,
        rng: &mut Rng,
        worker: usize,
        until: Instant,
    ) -> anyhow::Result<()> {
        if let Some((i, op)) = self.pending.take() {
            match send(api, http, &self.tasks[i], op).await? {
                Outcome::Done => apply(&mut self.tasks[i], op),
                Outcome::Unknown => {
                    self.pending = Some((i, op));
                    return Ok(());
                }
            }
        }
        while Instant::now() < until {
            let (i, op) = self.choose(rng);
            if i == self.tasks.len() {
                let key = format!("w{worker}-t{i}");
                let id = task_id_for_request(FAULTY, &key).to_string();
                let due = (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339();
                self.tasks.push(Model { recurring: rng.below(3) == 0, key, id, due, ..Model::default() });
            }
            self.commands += 1;
            match send(api, http, &self.tasks[i], op).await? {
                Outcome::Done => apply(&mut self.tasks[i], op),
                Outcome::Unknown => {
                    self.pending = Some((i, op));
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Runs every worker on its own task, with its own generator, until `until` (or until its
/// command's answer is lost); puts the workers back with what they learnt.
async fn run_workers(
    workers: &mut Vec<Worker>,
    api: &Api,
    http: &reqwest::Client,
    rng: &mut Rng,
    until: Instant,
) -> anyhow::Result<()> {
    let handles: Vec<_> = std::mem::take(workers)
        .into_iter()
        .enumerate()
        .map(|(w, mut worker)| {
            let (api, http, mut rng) = (api.clone(), http.clone(), Rng(rng.next() | 1));
            tokio::spawn(async move {
                let result = worker.run(&api, &http, &mut rng, w, until).await;
                (worker, result)
            })
        })
        .collect();
    let mut first_error = Ok(());
    for handle in handles {
        let (worker, result) = handle.await?;
        workers.push(worker);
        if first_error.is_ok() {
            first_error = result;
        }
    }
    first_error
}

/// What a fault scenario survived and checked.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Kills survived ([`random_kills`]).
    pub kills: u32,
    pub commands: u64,
    /// Commands whose answer was lost and that were sent again.
    pub lost: usize,
    pub tasks: usize,
    pub audit_entries: usize,
}

/// Checks every task the workers created; returns how many tasks and audit entries it checked.
async fn check_all(api: &Api, workers: &[Worker]) -> anyhow::Result<(usize, usize)> {
    let mut checked_entries = 0;
    let tasks: Vec<&Model> = workers.iter().flat_map(|w| &w.tasks).filter(|t| t.created).collect();
    for task in &tasks {
        checked_entries += check(api, task).await.with_context(|| format!("{task:?}"))?;
    }
    Ok((tasks.len(), checked_entries))
}

/// SIGKILL at random moments during a mixed load of creates, renames, completions and deletes
/// ([`TestSystem::kill_all`]: every function and sidecar at once), restart, repeat `kills`
/// times; at the end every accepted command has exactly one effect. `system` is running; the
/// commands come from `seed`. With `redeliver`, every request and event is delivered once more
/// before the checks ([`TestSystem::deliver_twice`]): duplicates on top of crashes, for a
/// backend that cannot deliver everything twice as it goes (devhost's `--duplicate-delivery`).
pub async fn random_kills(system: &mut TestSystem, kills: u32, seed: u64, redeliver: bool) -> anyhow::Result<Report> {
    let mut rng = Rng(seed);
    let api = system.api(FAULTY)?;
    let http = client()?;
    let mut workers: Vec<Worker> = (0..WORKERS).map(|_| Worker::default()).collect();

    let mut report = Report::default();
    for round in 0..=kills {
        if round > 0 {
            system.revive_all().await.with_context(|| format!("round {round}: {}", system.logs()))?;
        }
        let last = round == kills;
        // Load for a random 0.5 to 2.5 s, then kill in the middle of it; the last round only
        // sends what is still pending and lets the system settle.
        let load_for = if last { Duration::ZERO } else { Duration::from_millis(500 + rng.below(2000)) };
        // Past the kill, so that every worker is cut off by it; the last round sends no new commands.
        let until = if last { Instant::now() } else { Instant::now() + load_for + Duration::from_secs(3) };
        let load = run_workers(&mut workers, &api, &http, &mut rng, until);
        if last {
            load.await?;
            let still = workers.iter().filter(|w| w.pending.is_some()).count();
            if still > 0 {
                bail!("{still} commands still without an answer after the last restart");
            }
            system.settle(FAULT_SETTLE).await?;
            if redeliver {
                system.deliver_twice(&[topics::TASK_CREATE, topics::TASK_EVENTS], FAULT_SETTLE).await?;
            }
            break;
        }
        let killer = async {
            tokio::time::sleep(load_for).await;
            system.kill_all().await
        };
        let (loaded, killed) = tokio::join!(load, killer);
        loaded?;
        report.lost += workers.iter().filter(|w| w.pending.is_some()).count();
        let killed = killed.with_context(|| system.logs())?;
        let apps = system.setup().sidecars.len();
        if killed != apps {
            bail!("the kill found {killed} of the {apps} apps running: {}", system.logs());
        }
        report.kills += 1;
    }

    (report.tasks, report.audit_entries) = check_all(&api, &workers).await?;
    report.commands = workers.iter().map(|w| w.commands).sum();
    ensure!(report.kills == kills, "survived {} of {kills} kills", report.kills);
    ensure!(report.tasks >= 5, "too few tasks to prove anything: {}", report.tasks);
    Ok(report)
}

/// The store unavailable for `outage` in the middle of a mixed load (`fault` makes it so, on
/// the system's backend, and returns once the store is back): handlers answer RETRY, clients
/// get 5xx and send again, and once the store is back every accepted command has exactly one
/// effect, nothing went to a dead-letter topic, and every function and sidecar is still
/// running (checked by killing them: the system is down afterwards).
pub async fn store_outage(
    system: &mut TestSystem,
    seed: u64,
    outage: Duration,
    fault: impl AsyncFnOnce(&mut TestSystem, Duration) -> anyhow::Result<()>,
) -> anyhow::Result<Report> {
    let mut rng = Rng(seed);
    let api = system.api(FAULTY)?;
    let http = client()?;
    let mut workers: Vec<Worker> = (0..WORKERS).map(|_| Worker::default()).collect();
    let load_for = Duration::from_millis(1000 + rng.below(1000));
    let until = Instant::now() + load_for + outage + Duration::from_secs(2);
    let outage_fault = async {
        tokio::time::sleep(load_for).await;
        fault(system, outage).await
    };
    let (loaded, faulted) = tokio::join!(run_workers(&mut workers, &api, &http, &mut rng, until), outage_fault);
    loaded?;
    faulted?;
    let lost = workers.iter().filter(|w| w.pending.is_some()).count();
    // The store is back: what was lost is sent again, and nothing new.
    run_workers(&mut workers, &api, &http, &mut rng, Instant::now()).await?;
    if let Some(still) = workers.iter().position(|w| w.pending.is_some()) {
        bail!("worker {still}'s command still has no answer after the outage");
    }
    system.settle(FAULT_SETTLE).await.with_context(|| system.logs())?;

    let (tasks, audit_entries) = check_all(&api, &workers).await?;
    for app in todo_core::events::authority::APPS
        .into_iter()
        .filter(|app| !todo_core::events::authority::subscribes(app).is_empty())
    {
        let dead = system.messages(&topics::dead_letter(app)).await?;
        ensure!(dead.is_empty(), "{app} dead-lettered {} messages during the outage: {dead:?}", dead.len());
    }
    let alive = system.kill_all().await.with_context(|| system.logs())?;
    let apps = system.setup().sidecars.len();
    ensure!(alive == apps, "every function and its sidecar outlive the outage: {alive} of {apps} apps running");
    ensure!(lost > 0, "no command met the outage: it proved nothing");
    ensure!(tasks >= 5, "too few tasks to prove anything: {tasks}");
    let commands = workers.iter().map(|w| w.commands).sum();
    Ok(Report { kills: 0, commands, lost, tasks, audit_entries })
}

/// Checks one task's effects; returns how many audit entries it checked.
async fn check(api: &Api, task: &Model) -> anyhow::Result<usize> {
    let answer = api.call(Method::GET, &format!("/v1/tasks/{}", task.id), None).await?;
    let expected = if task.deleted { StatusCode::NOT_FOUND } else { StatusCode::OK };
    if answer.status != expected {
        bail!("GET answered {}, expected {expected}", answer.status);
    }
    let trail = api.get(&format!("/v1/tasks/{}/audit", task.id)).await?;
    let entries = trail["items"].as_array().cloned().unwrap_or_default();
    let versions: Vec<u64> = entries.iter().filter_map(|e| e["task_version"].as_u64()).collect();
    let contiguous: Vec<u64> = (1..=entries.len() as u64).collect();
    if versions != contiguous {
        bail!("audit versions {versions:?}: one entry per version, none missing or doubled");
    }
    let count = |change: &str| entries.iter().filter(|e| e["change"] == change).count();
    let want = [
        ("created", 1),
        ("updated", task.renames as usize),
        ("completed", usize::from(task.completed)),
        ("deleted", usize::from(task.deleted)),
    ];
    for (change, n) in want {
        if count(change) != n {
            bail!("{} {change} entries, expected {n}", count(change));
        }
    }
    if task.recurring {
        let next = task_id_for_request(FAULTY, &occurrence_request_id(task.id.parse()?, 1));
        // 404: no such task, so no audit trail either.
        let next_trail = api.call(Method::GET, &format!("/v1/tasks/{next}/audit"), None).await?;
        let created = match next_trail.status {
            StatusCode::NOT_FOUND => 0,
            StatusCode::OK => {
                next_trail.body["items"].as_array().map_or(0, |i| i.iter().filter(|e| e["change"] == "created").count())
            }
            other => bail!("the next occurrence's audit trail answered {other}"),
        };
        let should = usize::from(task.completed || task.deleted_open);
        if created != should {
            bail!("{created} next occurrences, expected {should}");
        }
    }
    if !task.deleted {
        let reminder = api.get(&format!("/v1/tasks/{}/reminder", task.id)).await?;
        let should = if task.completed { "cancelled" } else { "scheduled" };
        if reminder["status"] != should {
            bail!("reminder {reminder}, expected {should}");
        }
    }
    Ok(entries.len())
}

/// A create, through task-api (with an `Idempotency-Key`) or published to `task-create` (with
/// a request id), as a client that retries after an unknown outcome would make it.
#[derive(Debug, Clone)]
pub struct Create {
    pub owner: String,
    pub key: String,
    pub via_api: bool,
}

impl Create {
    /// The id the task gets: derived from (owner, key) either way.
    pub fn task_id(&self) -> String {
        task_id_for_request(&self.owner, &self.key).to_string()
    }

    fn body(&self) -> Value {
        json!({ "title": format!("burst {}", self.key), "tags": ["burst"] })
    }

    /// `Ok(true)` when the system accepted it, `Ok(false)` when the outcome is unknown (the
    /// connection failed or a 5xx: the system may or may not have it).
    pub async fn send(&self, api: &Api, http: &reqwest::Client, sidecar: &str) -> anyhow::Result<bool> {
        if self.via_api {
            let request = http
                .post(format!("{}/v1/tasks", api.base()))
                .bearer_auth(api.token())
                .header("idempotency-key", &self.key);
            return match json_body(request, &self.body()).send().await {
                Ok(r) if matches!(r.status(), StatusCode::CREATED | StatusCode::OK) => Ok(true),
                Ok(r) if r.status().is_server_error() => Ok(false),
                Ok(r) => bail!("create {} answered {}: {}", self.key, r.status(), r.text().await.unwrap_or_default()),
                Err(_) => Ok(false),
            };
        }
        let request = json!({ "request_id": self.key, "owner": self.owner, "task": self.body() });
        let published = publish_create(http, sidecar, &request, &[("partitionKey", &self.owner)]).await;
        Ok(matches!(published, Ok(StatusCode::NO_CONTENT)))
    }
}

/// Publishes `data` to `task-create` as a `todo.task.create` request through a sidecar, with
/// `metadata.*` settings.
pub async fn publish_create(
    http: &reqwest::Client,
    sidecar: &str,
    data: &Value,
    metadata: &[(&str, &str)],
) -> anyhow::Result<StatusCode> {
    Ok(json_body(http.post(crate::host::task_create_url(sidecar, metadata)?), data).send().await?.status())
}
