//! The event flows end to end: devhost and the real function binaries, each test on a private
//! system (its own ports, database and JWT secret). `make test` builds the binaries first.
//!
//! - the demo scenario (`make demo`) as a test;
//! - duplicate delivery changes nothing a user can see;
//! - SIGKILL of devhost and every function in the middle of a burst of creates loses and
//!   doubles nothing, and a reminder that came due while down fires after the restart;
//! - poison messages go to the dead-letter topic without blocking the messages behind them;
//! - a recurring task completed twice, with every event delivered twice, has one next instance;
//! - a reminder moved three times fires once, at the last time;
//! - a completion delivered before its creation is applied once, by every consumer;
//! - deleting an occurrence skips it and the series goes on, until `?series=end`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::events::{task_id_for_request, topics, types};
use system_tests::api::{Api, client, eventually, json_body};
use system_tests::host::{Setup, task_create_url};
use system_tests::scenario;
use tokio::sync::Mutex;

const USER: &str = "alice";

/// Generous: these tests share two cores with every other test of the workspace.
const SETTLE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_scenario_end_to_end() -> anyhow::Result<()> {
    let setup = Setup::new(&[])?;
    let system = setup.start(false).await?;
    let api = setup.api(USER)?;
    let outcome = scenario::run(&api, Duration::from_secs(3), |_| {}).await;
    system.stop().await;
    let outcome = outcome?;

    assert_ne!(outcome.next_task_id, outcome.task_id);
    assert_eq!(outcome.audit_changes, ["created", "completed"], "the first task's audit trail");
    // The next occurrence's reminder keeps the first one's distance to its due date: one month on.
    assert!(outcome.next_reminder_at > Utc::now() + chrono::Duration::days(25), "{outcome:?}");
    // The reminder event reached the `reminders` topic for a notifier, once.
    let fired = reminder_events(&setup, &outcome.task_id)?;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0]["type"], types::REMINDER_DUE);
    assert_eq!(fired[0]["data"]["owner"], USER);
    Ok(())
}

/// What a user can see of a scenario run, without what differs between two runs by nature
/// (ids, timestamps, the random label).
fn projection(trails: &[Value], tasks: &[Value]) -> Value {
    let tasks: Vec<Value> = tasks
        .iter()
        .map(|t| {
            json!({
                "index": t["series"]["index"], "status": t["status"], "version": t["version"],
                "priority": t["priority"], "tags": t["tags"], "recurrence": t["recurrence"],
            })
        })
        .collect();
    let trails: Vec<Value> = trails
        .iter()
        .map(|trail| {
            let items = trail["items"].as_array().cloned().unwrap_or_default();
            Value::Array(items.iter().map(|e| json!([e["change"], e["task_version"]])).collect())
        })
        .collect();
    json!({ "tasks": tasks, "audit": trails })
}

/// Plays the scenario, waits for the system to be quiet, and returns what the user sees.
async fn play_and_look(setup: &Setup, duplicate_delivery: bool) -> anyhow::Result<(scenario::Outcome, Value)> {
    let system = setup.start(duplicate_delivery).await?;
    let api = setup.api(USER)?;
    let result = async {
        let outcome = scenario::run(&api, Duration::from_secs(3), |_| {}).await?;
        // Let every duplicate land before looking.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut tasks = Vec::new();
        let mut trails = Vec::new();
        for id in [&outcome.task_id, &outcome.next_task_id] {
            tasks.push(api.get(&format!("/v1/tasks/{id}")).await?);
            let trail = api.get(&format!("/v1/tasks/{id}/audit")).await?;
            let ids: Vec<&str> =
                trail["items"].as_array().into_iter().flatten().filter_map(|e| e["event_id"].as_str()).collect();
            let distinct: BTreeSet<&str> = ids.iter().copied().collect();
            if distinct.len() != ids.len() {
                bail!("an event was audited twice: {ids:?}");
            }
            trails.push(trail);
        }
        let series = api.get_query("/v1/tasks", &[("tag", "demo"), ("status", "open")]).await?;
        let open = series["items"].as_array().map_or(0, Vec::len);
        if open != 1 {
            bail!("{open} open occurrences, expected exactly one: {series}");
        }
        Ok((outcome, projection(&trails, &tasks)))
    }
    .await;
    system.stop().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_delivery_changes_nothing_a_user_sees() -> anyhow::Result<()> {
    let (normal, twice) = (Setup::new(&[])?, Setup::new(&[])?);
    let (normal_run, twice_run) = tokio::join!(play_and_look(&normal, false), play_and_look(&twice, true));
    let ((_, normal_view), (twice_outcome, twice_view)) = (normal_run?, twice_run?);

    assert_eq!(twice_view, normal_view, "state and audit trail with every message delivered twice");
    assert_eq!(twice_outcome.audit_changes, ["created", "completed"]);
    // One reminder event, however often its triggers were delivered.
    let fired = reminder_events(&twice, &twice_outcome.task_id)?;
    let ids: BTreeSet<&str> = fired.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), 1, "reminder events published: {fired:?}");
    Ok(())
}

/// `todo.reminder.due` events of `task_id` in the `reminders` topic.
fn reminder_events(setup: &Setup, task_id: &str) -> anyhow::Result<Vec<Value>> {
    Ok(setup
        .peek(topics::REMINDERS)?
        .into_iter()
        .map(|m| m.body)
        .filter(|body| body["data"]["task_id"] == task_id)
        .collect())
}

/// A create, through task-api (with an `Idempotency-Key`) or published to `task-create`
/// (with a request id), as a client that retries after an unknown outcome would make it.
#[derive(Debug, Clone)]
struct Create {
    key: String,
    via_api: bool,
}

impl Create {
    fn task_id(&self) -> String {
        task_id_for_request(USER, &self.key).to_string()
    }

    fn body(&self) -> Value {
        json!({ "title": format!("burst {}", self.key), "tags": ["burst"] })
    }

    /// `Ok(true)` when the system accepted it, `Ok(false)` when the outcome is unknown (the
    /// connection failed: the system may or may not have it).
    async fn send(&self, api: &Api, http: &reqwest::Client, sidecar: &str) -> anyhow::Result<bool> {
        if self.via_api {
            let request = http
                .post(format!("{}/v1/tasks", api.base()))
                .bearer_auth(api.token())
                .header("idempotency-key", &self.key);
            let request = json_body(request, &self.body());
            return match request.send().await {
                Ok(r) if matches!(r.status(), StatusCode::CREATED | StatusCode::OK) => Ok(true),
                Ok(r) if r.status().is_server_error() => Ok(false),
                Ok(r) => bail!("create {} answered {}: {}", self.key, r.status(), r.text().await.unwrap_or_default()),
                Err(_) => Ok(false),
            };
        }
        let request = json!({ "request_id": self.key, "owner": USER, "task": self.body() });
        Ok(matches!(publish(http, sidecar, &request, &[("partitionKey", USER)]).await, Ok(StatusCode::NO_CONTENT)))
    }
}

/// Publishes `data` to `task-create` as a `todo.task.create` request through a sidecar.
async fn publish(
    http: &reqwest::Client,
    sidecar: &str,
    data: &Value,
    metadata: &[(&str, &str)],
) -> anyhow::Result<StatusCode> {
    Ok(json_body(http.post(task_create_url(sidecar, metadata)?), data).send().await?.status())
}

/// `GET path`, tolerating a system that is not back yet.
async fn audit_of(api: &Api, task_id: &str) -> anyhow::Result<Vec<String>> {
    let trail = api.get(&format!("/v1/tasks/{task_id}/audit")).await?;
    Ok(trail["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["change"].as_str().map(str::to_owned))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_loses_and_doubles_nothing() -> anyhow::Result<()> {
    let setup = Setup::new(&[])?;
    let api = setup.api(USER)?;
    let sidecar = setup.sidecar("task-api")?.to_owned();
    let http = client()?;

    let mut devhost = setup.spawn()?;
    api.wait_healthy(SETTLE).await?;

    // A reminder that will come due while everything is down.
    let remind_at = Utc::now() + chrono::Duration::seconds(12);
    let body = json!({ "title": "reminded across a crash", "reminder": {"at": remind_at.to_rfc3339_opts(SecondsFormat::Millis, true)} });
    let reminded = api.post("/v1/tasks", Some(&body), StatusCode::CREATED).await?;
    let reminded_id = reminded["id"].as_str().context("id")?.to_owned();
    eventually("the reminder to be scheduled", SETTLE, || async {
        Ok((api.get(&format!("/v1/tasks/{reminded_id}/reminder")).await?["status"] == "scheduled").then_some(()))
    })
    .await?;

    // The burst: creates through task-api and through the topic, four at a time, until stopped.
    let stop = Arc::new(AtomicBool::new(false));
    let sent: Arc<Mutex<Vec<(Create, bool)>>> = Arc::default();
    let burst = tokio::spawn({
        let (stop, sent, api, http, sidecar) = (stop.clone(), sent.clone(), api.clone(), http.clone(), sidecar.clone());
        async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let round: Vec<Create> =
                    (n..n + 4).map(|i| Create { key: format!("burst-{i}"), via_api: i % 2 == 0 }).collect();
                n += 4;
                let requests: Vec<_> = round
                    .into_iter()
                    .map(|create| {
                        let (api, http, sidecar) = (api.clone(), http.clone(), sidecar.clone());
                        tokio::spawn(async move {
                            let accepted = create.send(&api, &http, &sidecar).await;
                            (create, accepted)
                        })
                    })
                    .collect();
                let mut all_accepted = true;
                for request in requests {
                    let (create, accepted) = request.await?;
                    let accepted = accepted?;
                    all_accepted &= accepted;
                    sent.lock().await.push((create, accepted));
                }
                // Like a real client, stop sending once the system stops answering.
                if !all_accepted {
                    break;
                }
            }
            anyhow::Ok(())
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed = devhost.kill_all()?;
    assert_eq!(killed, 5, "devhost started five functions");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    burst.await??;
    let sent = std::mem::take(&mut *sent.lock().await);
    assert!(sent.iter().any(|(_, ok)| !*ok), "the kill did not interrupt the burst");
    let accepted = sent.iter().filter(|(_, ok)| *ok).count();
    assert!(accepted >= 8, "the burst got {accepted} creates accepted before the kill: too few to prove anything");
    assert!(Utc::now() < remind_at, "the burst outlasted the reminder: it must come due while the system is down");

    // Down until well after the reminder was due.
    let down_until = remind_at + chrono::Duration::seconds(2);
    tokio::time::sleep((down_until - Utc::now()).to_std().unwrap_or_default()).await;
    let restarted_at = Utc::now();
    let devhost = setup.spawn()?;
    api.wait_healthy(SETTLE).await?;

    // Clients retry what they did not hear back about, with the same key.
    for (create, ok) in &sent {
        if !*ok {
            let accepted = eventually("a retried create to be accepted", SETTLE, || async {
                Ok(create.send(&api, &http, &sidecar).await?.then_some(()))
            })
            .await;
            accepted.with_context(|| format!("{create:?}"))?;
        }
    }

    // Every create has exactly one effect: the task, and one `created` entry in its audit trail.
    for (create, _) in &sent {
        let id = create.task_id();
        let changes = eventually("the task and its audit entry", SETTLE, || async {
            let changes = audit_of(&api, &id).await?;
            Ok((!changes.is_empty()).then_some(changes))
        })
        .await
        .with_context(|| format!("{create:?}"))?;
        assert_eq!(changes, ["created"], "audit trail of {create:?}");
    }
    let mut listed = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("tag", "burst".to_owned()), ("limit", "100".to_owned())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = api.get_query("/v1/tasks", &query).await?;
        for task in page["items"].as_array().into_iter().flatten() {
            *listed.entry(task["title"].as_str().unwrap_or_default().to_owned()).or_insert(0) += 1;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(listed.len(), sent.len(), "one task per create");
    assert!(listed.values().all(|n| *n == 1), "{listed:?}");

    // The reminder that came due while down fires after the restart, saying how late it is.
    let reminder = eventually("the missed reminder to fire after the restart", SETTLE, || async {
        let r = api.get(&format!("/v1/tasks/{reminded_id}/reminder")).await?;
        Ok((r["status"] == "fired").then_some(r))
    })
    .await?;
    let fired_at = chrono::DateTime::parse_from_rfc3339(reminder["fired_at"].as_str().context("fired_at")?)?;
    assert!(fired_at >= restarted_at, "fired at {fired_at}, before the restart at {restarted_at}");
    let late_by_ms = reminder["late_by_ms"].as_u64().context("late_by_ms")?;
    assert!(late_by_ms >= 2000, "late by {late_by_ms} ms, though the system was down for 2 s past due");
    assert_eq!(reminder_events(&setup, &reminded_id)?.len(), 1);

    drop(devhost);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_to_the_dead_letter_topic_without_blocking() -> anyhow::Result<()> {
    let setup = Setup::new(&[])?;
    let system = setup.start(false).await?;
    let api = setup.api(USER)?;
    let http = client()?;
    let sidecar = setup.sidecar("task-api")?;

    let valid =
        |n: u32| json!({ "request_id": format!("valid-{n}"), "owner": USER, "task": {"title": format!("valid {n}")} });
    let poison = [
        ("not-a-request", json!({"hello": "world"})),
        ("empty-title", json!({ "request_id": "poison-title", "owner": USER, "task": {"title": "  "} })),
        (
            "bad-zone",
            json!({ "request_id": "poison-zone", "owner": USER, "task": {"title": "x", "time_zone": "Mars/Olympus"} }),
        ),
        ("not-json-object", json!("just a string")),
    ];
    // All on one partition key, so that a blocked partition would block the valid ones.
    let result = async {
        for (n, (id, body)) in poison.iter().enumerate() {
            let n = u32::try_from(n)?;
            let status = publish(&http, sidecar, &valid(n), &[("partitionKey", "one-key")]).await?;
            assert_eq!(status, StatusCode::NO_CONTENT);
            let status = publish(&http, sidecar, body, &[("partitionKey", "one-key"), ("cloudevent.id", id)]).await?;
            assert_eq!(status, StatusCode::NO_CONTENT);
        }
        publish(&http, sidecar, &valid(99), &[("partitionKey", "one-key")]).await?;
        for n in [0, 1, 2, 3, 99] {
            let id = task_id_for_request(USER, &format!("valid-{n}"));
            eventually("a valid request behind poison to be processed", SETTLE, || async {
                let answer = api.call(reqwest::Method::GET, &format!("/v1/tasks/{id}"), None).await?;
                Ok((answer.status == StatusCode::OK).then_some(()))
            })
            .await?;
        }
        let dlq = topics::dead_letter("create-task");
        eventually("every poison message in the dead-letter topic", SETTLE, || async {
            let ids: BTreeSet<String> =
                setup.peek(&dlq)?.iter().filter_map(|m| m.body["id"].as_str().map(str::to_owned)).collect();
            let expected: BTreeSet<String> = poison.iter().map(|(id, _)| (*id).to_owned()).collect();
            Ok((ids == expected).then_some(()))
        })
        .await
    }
    .await;
    system.stop().await;
    result?;
    // Nothing of the poison was created.
    let dlq = setup.peek(&topics::dead_letter("create-task"))?;
    assert_eq!(dlq.len(), poison.len(), "{dlq:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doubly_completed_recurring_task_has_one_next_instance() -> anyhow::Result<()> {
    let setup = Setup::new(&[])?;
    let system = setup.start(true).await?;
    let api = setup.api(USER)?;
    let result = async {
        let due = Utc::now() + chrono::Duration::hours(1);
        let body = json!({
            "title": "Water the plants", "tags": ["twice"], "time_zone": "America/New_York",
            "due": due.to_rfc3339_opts(SecondsFormat::Secs, true),
            "recurrence": {"rule": "FREQ=DAILY;INTERVAL=2"},
        });
        let task = api.post("/v1/tasks", Some(&body), StatusCode::CREATED).await?;
        let id = task["id"].as_str().context("id")?.to_owned();
        // Two clients complete it at once; every event is delivered twice besides.
        let path = format!("/v1/tasks/{id}/complete");
        let (a, b) = tokio::join!(api.post(&path, None, StatusCode::OK), api.post(&path, None, StatusCode::OK));
        let (a, b) = (a?, b?);
        let versions: BTreeSet<u64> = [&a, &b].iter().filter_map(|t| t["version"].as_u64()).collect();
        assert_eq!(versions.len(), 1, "both completions answer the one completed version: {a} {b}");
        let next = eventually("the next instance", SETTLE, || async {
            let page = api.get_query("/v1/tasks", &[("tag", "twice"), ("status", "open")]).await?;
            Ok(page["items"].as_array().and_then(|items| items.first().cloned()))
        })
        .await?;
        assert_eq!(next["series"]["index"], 1);
        // Wait out every duplicate, then look again: still one.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let all = api.get_query("/v1/tasks", &[("tag", "twice")]).await?;
        let items = all["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 2, "the completed task and one next instance: {all}");
        let trail = api.get(&format!("/v1/tasks/{}/audit", next["id"].as_str().unwrap_or_default())).await?;
        assert_eq!(trail["items"].as_array().map_or(0, Vec::len), 1, "one creation: {trail}");
        anyhow::Ok(())
    }
    .await;
    system.stop().await;
    result
}

/// A live writer publishes a task's events in version order, but after a crash the outbox
/// relay may publish an older event after a newer one (and two replicas changing one task may
/// publish out of order), so consumers order by version, never by arrival. Here a recurring
/// task's `completed` event is delivered before its `created` event, on one partition so that
/// the order is certain: the audit trail still has both, in version order; the series gets
/// exactly one next occurrence; the late `created` does not bring back the reminder the
/// completion cancelled; nothing is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_delivered_before_its_creation_is_applied_once() -> anyhow::Result<()> {
    use shared::domain::validate::{NewTask, new_task};
    use shared::events::{components, occurrence_request_id, task_event_id};

    let setup = Setup::new(&[])?;
    let system = setup.start(false).await?;
    let api = setup.api(USER)?;
    let sidecar = setup.sidecar("task-api")?.to_owned();
    let http = client()?;
    let result = async {
        let id = task_id_for_request(USER, "reordered");
        let input: NewTask = serde_json::from_value(json!({
            "title": "Water the plants", "tags": ["reordered"],
            "due": (Utc::now() + chrono::Duration::days(2)).to_rfc3339_opts(SecondsFormat::Secs, true),
            "reminder": {"before_due_seconds": 3600},
            "recurrence": {"rule": "FREQ=WEEKLY"},
        }))?;
        let created = new_task(id, USER, input, None, Utc::now())?;
        let mut completed = created.clone();
        assert!(completed.complete(Utc::now()));
        // The store holds what task-api's transaction wrote: the completed version.
        let saved = json_body(
            http.post(format!("{sidecar}/v1.0/state/{}", components::TASKS_STORE)),
            &json!([{"key": completed.key(), "value": completed}]),
        )
        .send()
        .await?;
        assert_eq!(saved.status(), StatusCode::NO_CONTENT);
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
            assert_eq!(
                json_body(http.post(url), &serde_json::to_value(task)?).send().await?.status(),
                StatusCode::NO_CONTENT
            );
        }
        setup.settle(SETTLE).await?;

        assert_eq!(audit_of(&api, &id.to_string()).await?, ["created", "completed"]);
        let next = task_id_for_request(USER, &occurrence_request_id(id, 1));
        let next = eventually("the next occurrence", SETTLE, || async {
            let answer = api.call(reqwest::Method::GET, &format!("/v1/tasks/{next}"), None).await?;
            Ok((answer.status == StatusCode::OK).then_some(answer.body))
        })
        .await?;
        assert_eq!((next["status"].as_str(), next["series"]["index"].as_u64()), (Some("open"), Some(1)));
        let all = api.get_query("/v1/tasks", &[("tag", "reordered")]).await?;
        assert_eq!(all["items"].as_array().map_or(0, Vec::len), 2, "the completed task and one next occurrence: {all}");
        let reminder = api.get(&format!("/v1/tasks/{id}/reminder")).await?;
        assert_eq!(reminder["status"], "cancelled", "the late creation must not revive the reminder: {reminder}");
        for app in ["create-task", "on-task-completed", "fire-reminder", "audit-writer"] {
            assert!(setup.peek(&topics::dead_letter(app))?.is_empty(), "{app} dead-lettered an event");
        }
        anyhow::Ok(())
    }
    .await;
    system.stop().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_moved_three_times_fires_once_at_the_last_time() -> anyhow::Result<()> {
    let setup = Setup::new(&[])?;
    let system = setup.start(false).await?;
    let api = setup.api(USER)?;
    let result = async {
        let start = Utc::now();
        let at = |secs: i64| (start + chrono::Duration::seconds(secs)).to_rfc3339_opts(SecondsFormat::Millis, true);
        let body = json!({ "title": "Call the dentist", "reminder": {"at": at(12)} });
        let task = api.post("/v1/tasks", Some(&body), StatusCode::CREATED).await?;
        let id = task["id"].as_str().context("id")?.to_owned();
        // Moved earlier twice and later once: every earlier job must be gone, not just the last.
        for secs in [9, 15, 5] {
            let patch = json!({ "reminder": {"at": at(secs)} });
            let answer = api.call(reqwest::Method::PATCH, &format!("/v1/tasks/{id}"), Some(&patch)).await?;
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
        assert_eq!(chrono::DateTime::parse_from_rfc3339(fired["remind_at"].as_str().context("remind_at")?)?, last);
        // Past every earlier time (the latest was +15 s): nothing else fired.
        let quiet_until = start + chrono::Duration::seconds(17);
        tokio::time::sleep((quiet_until - Utc::now()).to_std().unwrap_or_default()).await;
        let events = reminder_events(&setup, &id)?;
        assert_eq!(events.len(), 1, "{events:?}");
        let remind_at = events[0]["data"]["remind_at"].as_str().context("remind_at")?;
        assert_eq!(chrono::DateTime::parse_from_rfc3339(remind_at)?, last);
        anyhow::Ok(())
    }
    .await;
    system.stop().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_occurrence_skips_it_until_the_series_is_ended() -> anyhow::Result<()> {
    let setup = Setup::new(&[])?;
    let system = setup.start(false).await?;
    let api = setup.api(USER)?;
    let result = async {
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
                let answer = api.call(reqwest::Method::DELETE, &format!("/v1/tasks/{id}{query}"), None).await?;
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
        // Give the system time to (wrongly) create a third one.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let left = open().await?;
        assert!(left.is_empty(), "the series was ended, yet: {left:?}");
        let requests = setup.peek(topics::TASK_CREATE)?;
        assert_eq!(requests.len(), 1, "one next-occurrence request in all: {requests:?}");
        anyhow::Ok(())
    }
    .await;
    system.stop().await;
    result
}
