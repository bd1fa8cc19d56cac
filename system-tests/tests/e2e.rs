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
//! - deleting an occurrence skips it and the series goes on, until `?series=end`;
//! - a reminder reaches its owner's webhook (signed) and mailbox once each; a webhook down for
//!   20 s gets it once it is back; one answering 410 fails at once, into the dead-letter topic.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::api::{client, eventually};
use system_tests::host::{Setup, TASK_CREATE_PUBLISHER};
use system_tests::scenarios::{Create, publish_create};
use system_tests::system::TestSystem;
use system_tests::{notify, scenario, scenarios};
use todo_core::events::{task_id_for_request, topics, types};
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
        // Every event (and every duplicate) processed before looking.
        setup.settle(SETTLE).await?;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_loses_and_doubles_nothing() -> anyhow::Result<()> {
    let setup = Setup::new(&[])?;
    let api = setup.api(USER)?;
    let sidecar = setup.sidecar(TASK_CREATE_PUBLISHER)?.to_owned();
    let http = client()?;

    let mut devhost = setup.spawn()?;
    api.wait_healthy(SETTLE).await.with_context(|| setup.log_tail(40))?;

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
                let round: Vec<Create> = (n..n + 4)
                    .map(|i| Create { owner: USER.to_owned(), key: format!("burst-{i}"), via_api: i % 2 == 0 })
                    .collect();
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
    // The kill lands mid-burst: after enough creates were accepted to prove something, and the
    // burst goes on until it has seen the system stop answering.
    let accepted = |sent: &[(Create, bool)]| sent.iter().filter(|(_, ok)| *ok).count();
    eventually("eight creates of the burst accepted", SETTLE, || async {
        Ok((accepted(&sent.lock().await) >= 8).then_some(()))
    })
    .await?;
    let killed = devhost.kill_all()?;
    assert_eq!(killed, setup.sidecars.len(), "devhost started every function of the run file");
    eventually("the burst to see the kill (a create not answered)", SETTLE, || async {
        Ok(sent.lock().await.iter().any(|(_, ok)| !*ok).then_some(()))
    })
    .await?;
    stop.store(true, Ordering::Relaxed);
    burst.await??;
    let sent = std::mem::take(&mut *sent.lock().await);
    assert!(sent.iter().any(|(_, ok)| !*ok), "the kill did not interrupt the burst");
    let accepted = accepted(&sent);
    assert!(accepted >= 8, "the burst got {accepted} creates accepted before the kill: too few to prove anything");
    assert!(Utc::now() < remind_at, "the burst outlasted the reminder: it must come due while the system is down");

    // Down until well after the reminder was due.
    let down_until = remind_at + chrono::Duration::seconds(2);
    tokio::time::sleep((down_until - Utc::now()).to_std().unwrap_or_default()).await;
    let restarted_at = Utc::now();
    let devhost = setup.spawn()?;
    api.wait_healthy(SETTLE).await.with_context(|| setup.log_tail(40))?;

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
            let changes = api.audit_changes(&id).await?;
            Ok((!changes.is_empty()).then_some(changes))
        })
        .await
        .with_context(|| format!("{create:?}"))?;
        assert_eq!(changes, ["created"], "audit trail of {create:?}");
    }
    let mut listed = BTreeMap::new();
    for task in api.list_all(&[("tag", "burst"), ("limit", "100")]).await? {
        *listed.entry(task["title"].as_str().unwrap_or_default().to_owned()).or_insert(0) += 1;
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
    let sidecar = setup.sidecar(TASK_CREATE_PUBLISHER)?;

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
            let status = publish_create(&http, sidecar, &valid(n), &[("partitionKey", "one-key")]).await?;
            assert_eq!(status, StatusCode::NO_CONTENT);
            let status =
                publish_create(&http, sidecar, body, &[("partitionKey", "one-key"), ("cloudevent.id", id)]).await?;
            assert_eq!(status, StatusCode::NO_CONTENT);
        }
        publish_create(&http, sidecar, &valid(99), &[("partitionKey", "one-key")]).await?;
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

// The scenarios below are `system_tests::scenarios`, shared with the same tests on the real
// platform (`tests/platform.rs`).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doubly_completed_recurring_task_has_one_next_instance() -> anyhow::Result<()> {
    // Every event delivered twice besides (the platform replays the topics instead).
    TestSystem::in_process(true).await?.play(scenarios::a_doubly_completed_recurring_task_has_one_next_instance).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_an_occurrence_never_doubles_the_next() -> anyhow::Result<()> {
    // Every event delivered twice besides.
    TestSystem::in_process(true).await?.play(scenarios::reopening_an_occurrence_never_doubles_the_next).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_granted_apps_may_publish() -> anyhow::Result<()> {
    TestSystem::in_process(false).await?.play(scenarios::only_the_granted_apps_may_publish).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_delivered_before_its_creation_is_applied_once() -> anyhow::Result<()> {
    TestSystem::in_process(false)
        .await?
        .play(scenarios::a_completion_delivered_before_its_creation_is_applied_once)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_moved_three_times_fires_once_at_the_last_time() -> anyhow::Result<()> {
    TestSystem::in_process(false).await?.play(scenarios::a_reminder_moved_three_times_fires_once_at_the_last_time).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_occurrence_skips_it_until_the_series_is_ended() -> anyhow::Result<()> {
    TestSystem::in_process(false)
        .await?
        .play(scenarios::deleting_an_occurrence_skips_it_until_the_series_is_ended)
        .await
}

/// The mailbox of `system`: an SMTP sink on the port its `email` binding sends to.
async fn mailbox(system: &TestSystem) -> anyhow::Result<system_tests::smtp::SmtpSink> {
    system_tests::smtp::SmtpSink::bind(([127, 0, 0, 1], system.setup().smtp_port).into()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_reaches_the_webhook_and_the_mailbox_once() -> anyhow::Result<()> {
    let system = TestSystem::in_process(false).await?;
    let mailbox = mailbox(&system).await?;
    system.play(async |s| notify::a_reminder_reaches_the_webhook_and_the_mailbox_once(s, &mailbox).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_20_seconds_gets_the_reminder_once_it_is_back() -> anyhow::Result<()> {
    TestSystem::in_process(false)
        .await?
        .play(notify::a_receiver_down_for_20_seconds_gets_the_reminder_once_it_is_back)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_gone_fails_without_retries_into_the_dead_letter_topic() -> anyhow::Result<()> {
    TestSystem::in_process(false)
        .await?
        .play(notify::a_receiver_that_is_gone_fails_without_retries_into_the_dead_letter_topic)
        .await
}
