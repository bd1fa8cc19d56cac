//! The event flows end to end on the real platform: the function binaries beside real daprd,
//! with the Dapr Scheduler, an Apache Kafka broker and PostgreSQL (`make test-platform`, after
//! `make platform`). Each test runs a private platform (its own folder, ports, database and
//! topics), one test at a time: a platform takes most of the machine's two cores.
//!
//! - the demo scenario (`make demo`) as a test, its reminder on `reminders` exactly once;
//! - a create replayed with its `Idempotency-Key` does not hold up later events (it stopped
//!   Dapr's own outbox for good);
//! - SIGKILL of functions and of their daprd, a Kafka broker restart and a PostgreSQL restart,
//!   each in the middle of a burst of creates: every create has exactly one effect;
//! - poison messages go to the dead-letter topic without blocking the messages behind them;
//! - every event delivered twice (replayed onto its topic) changes nothing a user sees: the
//!   real-broker form of devhost's `--duplicate-delivery`;
//! - the scenarios of `tests/e2e.rs` and `tests/faults.rs` that are written once for both
//!   backends (`system_tests::scenarios`), under the same names: a doubly completed recurring
//!   task, a completion delivered before its creation, a reminder moved three times, deleting
//!   an occurrence, SIGKILL at random moments during a mixed load, a store outage.
//! - a second replica of create-task (`Platform::start_replica`, what `src/kubelet.rs` runs for
//!   `spec.replicas` 2) shares the consumer group with the first: both process creates, each
//!   create has exactly one effect, and the replica stops gracefully.
//! - the notifier (`system_tests::notify`): webhook and mail once each through the real
//!   `bindings.smtp`, a receiver down for 20 s, a receiver that answers 410.
//! - live updates with two task-api replicas, each in its own consumer group of `pubsub-live`:
//!   a change made through replica 1 reaches a stream on replica 2; after replica 2 is killed,
//!   a reconnect to replica 1 with `Last-Event-ID` gets every change made meanwhile.

mod live_streams;

use std::time::Duration;

use anyhow::Context as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::api::{client, eventually, json_body};
use system_tests::host::{Setup, TASK_CREATE_PUBLISHER};
use system_tests::platform::{Options, Platform};
use system_tests::scenarios::{Create, publish_create};
use system_tests::system::{TestSystem, replay};
use system_tests::{notify, scenario, scenarios};
use todo_core::events::topics;

const USER: &str = "alice";

/// A private copy of the system on the real platform, in `$TMPDIR/todo-platform-tests/<name>`:
/// kept after the test (logs of every process in `logs/`), replaced by the next run of it.
async fn start(name: &str, options: Options) -> anyhow::Result<(Setup, Platform)> {
    let setup = Setup::new(&[])?;
    let dir = Platform::fresh_dir(name)?;
    let platform = Platform::start(&setup.run_file, &dir, options).await?;
    Ok((setup, platform))
}

/// The CloudEvents of `topic` whose data has `task_id`.
async fn events_of(platform: &Platform, topic: &str, task_id: &str) -> anyhow::Result<Vec<Value>> {
    let messages = platform.kafka().await?.messages(topic).await?;
    Ok(messages
        .into_iter()
        .filter_map(|m| serde_json::from_slice::<Value>(m.value.as_deref()?).ok())
        .filter(|event| event["data"]["task_id"] == task_id || event["data"]["id"] == task_id)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_scenario_on_the_real_platform() -> anyhow::Result<()> {
    let (setup, platform) = start("demo", Options::default()).await?;
    let api = setup.api(USER)?;
    let outcome = scenario::run(&api, Duration::from_secs(5), |line| println!("{line}")).await;
    let fired = match &outcome {
        Ok(outcome) => events_of(&platform, topics::REMINDERS, &outcome.task_id).await,
        Err(_) => Ok(Vec::new()),
    };
    let logs = platform.logs().to_owned();
    platform.stop()?;
    let outcome = outcome.with_context(|| format!("logs in {}", logs.display()))?;

    assert_ne!(outcome.next_task_id, outcome.task_id);
    assert_eq!(outcome.audit_changes, ["created", "completed"], "the first task's audit trail");
    let fired = fired?;
    assert_eq!(fired.len(), 1, "the reminder reached `reminders` once: {fired:?}");
    assert_eq!(fired[0]["data"]["owner"], USER);
    Ok(())
}

/// A client that lost the answer to a create retries it with the same `Idempotency-Key`: an
/// ordinary at-least-once event. On Dapr 1.18's own outbox the replay's failed transaction has
/// published its first phase already, and the relay then spins on the missing marker forever
/// (`../shared/reference/dapr-keda.md`, Appendix C): every later event of task-api's internal
/// partition is stuck. The project-owned outbox (issue 12) publishes nothing for a failed
/// transaction, so the task created after the replay is audited as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_create_does_not_hold_up_later_events() -> anyhow::Result<()> {
    let (setup, platform) = start("replayed-create", Options::default()).await?;
    let api = setup.api(USER)?;
    let http = client()?;
    let create = |key: &str, title: &str| {
        let request = http
            .post(format!("{}/v1/tasks", api.base()))
            .bearer_auth(api.token())
            .header("idempotency-key", key.to_owned());
        json_body(request, &json!({ "title": title }))
    };
    let first = create("replay-1", "first").send().await?;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = serde_json::from_slice(&first.bytes().await?)?;
    let replay = create("replay-1", "first").send().await?;
    assert_eq!(replay.status(), StatusCode::OK, "the replay answers the task it created");
    let first_id = first["id"].as_str().context("id")?.to_owned();
    // Later events: the same task's completion (same partition key as the replay), and more
    // creations spread over every partition.
    api.post(&format!("/v1/tasks/{first_id}/complete"), None, StatusCode::OK).await?;
    let mut later = Vec::new();
    for n in 0..6 {
        let answer = create(&format!("later-{n}"), "later").send().await?;
        assert_eq!(answer.status(), StatusCode::CREATED);
        let task: Value = serde_json::from_slice(&answer.bytes().await?)?;
        later.push(task["id"].as_str().context("id")?.to_owned());
    }
    let audited = eventually("every later event audited", Duration::from_secs(30), || async {
        let mut all = api.audit_changes(&first_id).await? == ["created", "completed"];
        for id in &later {
            all &= api.audit_changes(id).await? == ["created"];
        }
        Ok(all.then_some(()))
    })
    .await;
    let logs = platform.logs().to_owned();
    platform.stop()?;
    audited.with_context(|| format!("logs in {}", logs.display()))
}

/// Sends creates four at a time for as long as `fault` runs against the platform, then retries
/// every create whose outcome the client did not hear (same key), and checks that each create
/// had exactly one effect: one task, one `created` entry in its audit trail. Returns how many
/// creates were sent.
async fn creates_survive(
    setup: &Setup,
    platform: &mut Platform,
    fault: impl AsyncFnOnce(&mut Platform) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let api = setup.api(USER)?;
    let sidecar = platform.sidecar(TASK_CREATE_PUBLISHER)?;
    let http = client()?;
    let stop = Arc::new(AtomicBool::new(false));
    let burst = tokio::spawn({
        let (stop, api, http, sidecar) = (stop.clone(), api.clone(), http.clone(), sidecar.clone());
        async move {
            let mut sent = Vec::new();
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
                for request in requests {
                    let (create, accepted) = request.await?;
                    sent.push((create, accepted?));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            anyhow::Ok(sent)
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let faulted = fault(platform).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let sent = burst.await??;
    faulted?;
    let accepted = sent.iter().filter(|(_, ok)| *ok).count();
    assert!(accepted >= 8, "only {accepted} creates were accepted: too few to prove anything");

    for (create, ok) in &sent {
        if !*ok {
            eventually("a retried create to be accepted", SETTLE, || async {
                Ok(create.send(&api, &http, &sidecar).await?.then_some(()))
            })
            .await
            .with_context(|| format!("{create:?}"))?;
        }
    }
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
    // Settled: no audit entry is still on its way to double one of those just read.
    platform.settle(SETTLE).await?;
    let mut titles = std::collections::BTreeMap::new();
    for task in api.list_all(&[("tag", "burst"), ("limit", "100")]).await? {
        *titles.entry(task["title"].as_str().unwrap_or_default().to_owned()).or_insert(0) += 1;
    }
    assert_eq!(titles.len(), sent.len(), "one task per create");
    assert!(titles.values().all(|n| *n == 1), "{titles:?}");
    for (create, _) in &sent {
        assert_eq!(api.audit_changes(&create.task_id()).await?, ["created"], "after settling: {create:?}");
    }
    // After the crash, every request and event once more, on every partition at once: still
    // one effect each, and nothing valid in a dead-letter topic (no expected outcome, such as
    // a create that finds its task, is retried as a failure until it is dead-lettered).
    let replayed = replay(platform, &[topics::TASK_CREATE, topics::TASK_EVENTS]).await?;
    assert!(replayed >= sent.len(), "replayed {replayed} messages for {} creates", sent.len());
    platform.settle(SETTLE).await?;
    for (create, _) in &sent {
        assert_eq!(api.audit_changes(&create.task_id()).await?, ["created"], "after the replay: {create:?}");
    }
    assert_no_dead_letters(platform).await?;
    Ok(sent.len())
}

/// Generous: a platform shares the two cores with its own JVM, database and ten processes.
const SETTLE: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_functions_and_sidecars_mid_load_loses_and_doubles_nothing() -> anyhow::Result<()> {
    let (setup, mut platform) = start("sigkill", Options::default()).await?;
    let result = creates_survive(&setup, &mut platform, async |platform| {
        // A kill loop on the two writers (task-api, create-task: a kill can land between a
        // commit and its publish, leaving the event to the relay), then the sidecars of a writer
        // and of a consumer.
        let mut kills = Vec::new();
        for _ in 0..3 {
            kills.extend([("function", "task-api"), ("function", "create-task")]);
        }
        kills.extend([("daprd", "task-api"), ("daprd", "audit-writer"), ("daprd", "create-task")]);
        for (what, id) in kills {
            match what {
                "daprd" => platform.kill_daprd(id)?,
                _ => platform.kill_function(id)?,
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            platform.revive(id).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(())
    })
    .await;
    let logs = platform.logs().to_owned();
    platform.stop()?;
    let sent = result.with_context(|| format!("logs in {}", logs.display()))?;
    println!("{sent} creates, each with exactly one effect across nine kills");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_restart_mid_load_loses_and_doubles_nothing() -> anyhow::Result<()> {
    let (setup, mut platform) = start("kafka-restart", Options::default()).await?;
    let result =
        creates_survive(&setup, &mut platform, async |platform| platform.restart_kafka(Duration::from_secs(2)).await)
            .await;
    let logs = platform.logs().to_owned();
    platform.stop()?;
    result.with_context(|| format!("logs in {}", logs.display()))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_load_loses_and_doubles_nothing() -> anyhow::Result<()> {
    let (setup, mut platform) = start("postgres-restart", Options::default()).await?;
    let result = creates_survive(&setup, &mut platform, async |platform| {
        platform.restart_postgres(Duration::from_secs(2)).await
    })
    .await;
    let logs = platform.logs().to_owned();
    platform.stop()?;
    result.with_context(|| format!("logs in {}", logs.display()))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_to_the_dead_letter_topic_without_blocking() -> anyhow::Result<()> {
    let (setup, platform) = start("poison", Options::default()).await?;
    let api = setup.api(USER)?;
    let http = client()?;
    let sidecar = platform.sidecar(TASK_CREATE_PUBLISHER)?;
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
    let result = async {
        // One partition key for all: a partition blocked by poison would hold the valid ones.
        for (n, (id, body)) in poison.iter().enumerate() {
            let n = u32::try_from(n)?;
            assert_eq!(
                publish_create(&http, &sidecar, &valid(n), &[("partitionKey", "one-key")]).await?,
                StatusCode::NO_CONTENT
            );
            let metadata = [("partitionKey", "one-key"), ("cloudevent.id", *id)];
            assert_eq!(publish_create(&http, &sidecar, body, &metadata).await?, StatusCode::NO_CONTENT);
        }
        publish_create(&http, &sidecar, &valid(99), &[("partitionKey", "one-key")]).await?;
        for n in [0, 1, 2, 3, 99] {
            let id = todo_core::events::task_id_for_request(USER, &format!("valid-{n}"));
            eventually("a valid request behind poison to be processed", SETTLE, || async {
                let answer = api.call(reqwest::Method::GET, &format!("/v1/tasks/{id}"), None).await?;
                Ok((answer.status == StatusCode::OK).then_some(()))
            })
            .await?;
        }
        let dlq = topics::dead_letter("create-task");
        let expected: std::collections::BTreeSet<String> = poison.iter().map(|(id, _)| (*id).to_owned()).collect();
        eventually("every poison message in the dead-letter topic, once", SETTLE, || async {
            let messages = platform.kafka().await?.messages(&dlq).await?;
            let ids: Vec<String> = messages
                .iter()
                .filter_map(|m| serde_json::from_slice::<Value>(m.value.as_deref()?).ok())
                .filter_map(|event| event["id"].as_str().map(str::to_owned))
                .collect();
            let unique: std::collections::BTreeSet<String> = ids.iter().cloned().collect();
            Ok((unique == expected && ids.len() == expected.len()).then_some(()))
        })
        .await
    }
    .await;
    let logs = platform.logs().to_owned();
    platform.stop()?;
    result.with_context(|| format!("logs in {}", logs.display()))
}

/// devhost's `--duplicate-delivery` has no equivalent on a real broker; the same property is
/// held by replaying: after the demo scenario, every message of `task-create` and
/// `task-events` is published again exactly as it was (the same CloudEvent, id included, as
/// `application/cloudevents+json`, which Dapr forwards without a new envelope), so every
/// consumer sees every event twice. Nothing a user sees may change: the audit trails, the
/// tasks of the series, the reminder that fired once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_every_event_changes_nothing_a_user_sees() -> anyhow::Result<()> {
    let (setup, platform) = start("replay-all", Options::default()).await?;
    let api = setup.api(USER)?;
    let result = async {
        let outcome = scenario::run(&api, Duration::from_secs(3), |_| {}).await?;
        platform.settle(SETTLE).await?;
        let look = async || -> anyhow::Result<Value> {
            let tasks = api.get_query("/v1/tasks", &[("tag", "demo"), ("limit", "100")]).await?;
            let mut titles: Vec<String> = tasks["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| format!("{} {} v{}", t["id"], t["status"], t["version"]))
                .collect();
            titles.sort();
            Ok(json!({
                "tasks": titles,
                "first": api.audit_changes(&outcome.task_id).await?,
                "next": api.audit_changes(&outcome.next_task_id).await?,
                "reminder": api.get(&format!("/v1/tasks/{}/reminder", outcome.task_id)).await?,
            }))
        };
        let before = look().await?;
        let replayed = replay(&platform, &[topics::TASK_CREATE, topics::TASK_EVENTS]).await?;
        // created, completed and the next occurrence's created on task-events; its request on task-create.
        assert!(replayed >= 4, "only {replayed} messages to replay");
        platform.settle(SETTLE).await?;
        // Let any late effect land (a second next instance would be created after settling).
        tokio::time::sleep(Duration::from_secs(3)).await;
        platform.settle(SETTLE).await?;
        let after = look().await?;
        assert_eq!(after, before, "what a user sees after every event was delivered twice");
        assert_no_dead_letters(&platform).await?;
        let fired = events_of(&platform, topics::REMINDERS, &outcome.task_id).await?;
        let ids: std::collections::BTreeSet<&str> = fired.iter().filter_map(|e| e["id"].as_str()).collect();
        assert_eq!(ids.len(), 1, "one reminder event id: {fired:?}");
        anyhow::Ok(())
    }
    .await;
    let logs = platform.logs().to_owned();
    platform.stop()?;
    result.with_context(|| format!("logs in {}", logs.display()))
}

/// No dead-letter topic holds anything: every message sent was valid, so one there means an
/// expected outcome (a duplicate, a conflict) was treated as a failure and retried out.
async fn assert_no_dead_letters(platform: &Platform) -> anyhow::Result<()> {
    let kafka = platform.kafka().await?;
    for topic in kafka.topics().await?.keys().filter(|t| t.ends_with("-dlq")) {
        let messages = kafka.messages(topic).await?;
        let bodies: Vec<String> = messages
            .iter()
            .map(|m| String::from_utf8_lossy(m.value.as_deref().unwrap_or_default()).into_owned())
            .collect();
        assert!(bodies.is_empty(), "{topic} holds {} messages: {bodies:?}", bodies.len());
    }
    Ok(())
}

/// With `DAPR_API_TOKEN` and `APP_API_TOKEN` set, as Kubernetes sets them from a Secret: each
/// function's calls carry the sidecar token and real daprd sends the app token on every
/// delivery, so the whole flow works; a caller without a token gets 401 from both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_honoured_by_real_daprd_and_the_functions() -> anyhow::Result<()> {
    let options = Options {
        dapr_api_token: Some(format!("dapr-{}", uuid::Uuid::new_v4().simple())),
        app_api_token: Some(format!("app-{}", uuid::Uuid::new_v4().simple())),
        ..Options::default()
    };
    let (setup, platform) = start("tokens", options.clone()).await?;
    let api = setup.api(USER)?;
    let http = client()?;
    let result = async {
        let task = api.post("/v1/tasks", Some(&json!({ "title": "behind tokens" })), StatusCode::CREATED).await?;
        let id = task["id"].as_str().context("id")?.to_owned();
        eventually("the creation audited through token-guarded sidecars", SETTLE, || async {
            Ok((api.audit_changes(&id).await? == ["created"]).then_some(()))
        })
        .await?;
        let sidecar = platform.sidecar("task-api")?;
        let state = format!("{sidecar}/v1.0/state/tasks/task:{id}");
        assert_eq!(http.get(&state).send().await?.status(), StatusCode::UNAUTHORIZED, "sidecar without token");
        let with = http.get(&state).header("dapr-api-token", options.dapr_api_token.as_deref().unwrap_or_default());
        assert_eq!(with.send().await?.status(), StatusCode::OK, "sidecar with its token");
        // An event route of a function, called directly without the app token.
        let audit_writer = platform.app("audit-writer")?.app_port;
        let subscribe = http.get(format!("http://127.0.0.1:{audit_writer}/dapr/subscribe")).send().await?;
        assert_eq!(subscribe.status(), StatusCode::UNAUTHORIZED, "an app's Dapr route without the app token");
        anyhow::Ok(())
    }
    .await;
    let logs = platform.logs().to_owned();
    platform.stop()?;
    result.with_context(|| format!("logs in {}", logs.display()))
}

// --- The scenarios shared with devhost (`system_tests::scenarios`) -------------------------

/// devhost runs this with every event delivered twice as it goes (`--duplicate-delivery`); a
/// real broker has no such switch, so once the next instance is there every message of
/// `task-create` and `task-events` is replayed (`TestSystem::deliver_twice`): the completion
/// and the next-occurrence request reach their consumers a second time, and still there is one
/// next instance, created once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doubly_completed_recurring_task_has_one_next_instance() -> anyhow::Result<()> {
    TestSystem::platform("doubly-completed", Options::default())
        .await?
        .play(scenarios::a_doubly_completed_recurring_task_has_one_next_instance)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_an_occurrence_never_doubles_the_next() -> anyhow::Result<()> {
    TestSystem::platform("reopened", Options::default())
        .await?
        .play(scenarios::reopening_an_occurrence_never_doubles_the_next)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_granted_apps_may_publish() -> anyhow::Result<()> {
    TestSystem::platform("scopes", Options::default()).await?.play(scenarios::only_the_granted_apps_may_publish).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_delivered_before_its_creation_is_applied_once() -> anyhow::Result<()> {
    TestSystem::platform("reordered", Options::default())
        .await?
        .play(scenarios::a_completion_delivered_before_its_creation_is_applied_once)
        .await
}

/// The jobs are the real Scheduler's: moving the reminder overwrites one job of the same name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_moved_three_times_fires_once_at_the_last_time() -> anyhow::Result<()> {
    TestSystem::platform("reminder-moved", Options::default())
        .await?
        .play(scenarios::a_reminder_moved_three_times_fires_once_at_the_last_time)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_occurrence_skips_it_until_the_series_is_ended() -> anyhow::Result<()> {
    TestSystem::platform("skip-occurrence", Options::default())
        .await?
        .play(scenarios::deleting_an_occurrence_skips_it_until_the_series_is_ended)
        .await
}

/// devhost's fault suite, on the platform: each kill SIGKILLs all five functions and all five
/// daprds at once in the middle of the mixed load (Kafka, PostgreSQL and the Scheduler stay, as
/// a cluster's would), then starts them again. Two kills by default rather than devhost's four
/// (`FAULT_KILLS` sets it): a restart of ten processes, and the consumer groups' rebalance
/// after it, take tens of seconds on two cores, and `make test-platform` must stay short.
/// devhost's second run of it with `--duplicate-delivery` has no broker equivalent: here every
/// request and event is replayed once more after the last restart, before the checks, so the
/// same run also holds duplicates on top of crashes; and no dead-letter topic may hold anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_leaves_every_command_with_exactly_one_effect() -> anyhow::Result<()> {
    let (kills, seed) = (scenarios::kills(2), scenarios::seed());
    eprintln!("platform faults: seed {seed} (FAULT_SEED={seed} replays this run)");
    let report = TestSystem::platform("random-kills", Options::default())
        .await?
        .play(async |system| {
            let report = scenarios::random_kills(system, kills, seed, true).await?;
            assert_no_dead_letters(system.platform_mut()?).await?;
            Ok(report)
        })
        .await?;
    eprintln!(
        "platform faults: {} kills of every function and daprd survived, {} commands sent ({} answers lost and \
         sent again), {} tasks and {} audit entries checked after every message was delivered twice",
        report.kills, report.commands, report.lost, report.tasks, report.audit_entries
    );
    assert_eq!(report.kills, kills);
    Ok(())
}

/// How long PostgreSQL is down: past the client's 5 s timeout, well inside the 8 retries of
/// the `pubsubInbound` policy (about 25 s).
const PG_OUTAGE: Duration = Duration::from_secs(6);

/// devhost's store outage (SQLite's write lock held from outside) is, on the platform,
/// PostgreSQL itself gone: stopped immediately (SIGQUIT, crash recovery on restart) in the
/// middle of the mixed load and started again [`PG_OUTAGE`] later. Both state stores and the
/// outbox are unavailable meanwhile; afterwards every accepted command has exactly one effect,
/// nothing is dead-lettered, and every function and daprd is still running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_delays_work_and_loses_nothing() -> anyhow::Result<()> {
    let seed = scenarios::seed();
    eprintln!("platform outage: seed {seed} (FAULT_SEED={seed} replays this run)");
    let report = TestSystem::platform("store-outage", Options::default())
        .await?
        .play(async |system| {
            scenarios::store_outage(system, seed, PG_OUTAGE, async |system, outage| {
                system.platform_mut()?.restart_postgres(outage).await
            })
            .await
        })
        .await?;
    eprintln!(
        "platform outage: PostgreSQL down {PG_OUTAGE:?} survived; {} answers lost and sent again, {} tasks and {} \
         audit entries checked, no dead letters",
        report.lost, report.tasks, report.audit_entries
    );
    assert!(report.lost > 0, "no command met the outage: it proved nothing");
    Ok(())
}

/// Two instances of create-task side by side, as a Deployment at 2 replicas (`src/kubelet.rs`):
/// the second on ports of its own, the same app-id and so the same consumer group, which splits
/// `task-create`'s partitions between them. Creates are published on many partition keys until
/// both have handled one (a rebalance after the second joins takes a moment); each create then
/// has exactly one effect. Stopped, the replica's partitions go back to the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_shares_the_consumer_group_and_doubles_nothing() -> anyhow::Result<()> {
    // `info`: each function logs every request it handles ("task request" for create-task),
    // which is how the test tells which replica handled one.
    let setup = Setup::new(&[("RUST_LOG", "info")])?;
    let dir = Platform::fresh_dir("replicas")?;
    let mut platform = Platform::start(&setup.run_file, &dir, Options::default()).await?;
    let outcome = replicas_share(&setup, &mut platform).await;
    let logs = platform.logs().to_owned();
    platform.stop()?;
    outcome.with_context(|| format!("logs in {}", logs.display()))
}

async fn replicas_share(setup: &Setup, platform: &mut Platform) -> anyhow::Result<()> {
    use anyhow::ensure;
    const APP: &str = "create-task";
    let n = platform.start_replica(APP).await?;
    ensure!(n == 2, "the first replica beyond the first instance is number {n}");
    ensure!(platform.replicas(APP)? == 2, "{} replicas of {APP} run", platform.replicas(APP)?);
    let (first, second) = (platform.replica(APP, 1)?.clone(), platform.replica(APP, 2)?.clone());
    ensure!(first.app_port != second.app_port && first.http_port != second.http_port, "the replica shares ports");
    let running = platform.running()?;
    ensure!(running.contains("create-task-2") && running.contains("daprd-create-task-2"), "running: {running:?}");
    ensure!(platform.pids().contains_key("daprd-create-task-2"), "the replica is not in pids()");

    let logs = platform.logs().to_owned();
    let handled = |name: &str| -> anyhow::Result<usize> {
        let path = logs.join(format!("{name}.log"));
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(text.lines().filter(|l| l.contains("task request")).count())
    };
    let api = setup.api(USER)?;
    let http = client()?;
    let publisher = platform.sidecar(TASK_CREATE_PUBLISHER)?;
    let mut sent: Vec<Create> = Vec::new();
    let publish = async |key: String, sent: &mut Vec<Create>| -> anyhow::Result<()> {
        let body = json!({ "title": format!("burst {key}"), "tags": ["burst"] });
        let request = json!({ "request_id": key, "owner": USER, "task": body });
        // One partition key per create: spread over the partitions of both replicas.
        let status = publish_create(&http, &publisher, &request, &[("partitionKey", &key)]).await?;
        ensure!(status == StatusCode::NO_CONTENT, "publishing {key}: {status}");
        sent.push(Create { owner: USER.to_owned(), key, via_api: false });
        Ok(())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        for _ in 0..12 {
            publish(format!("replica-{}", sent.len()), &mut sent).await?;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (by_first, by_second) = (handled(APP)?, handled("create-task-2")?);
        if by_first > 0 && by_second > 0 {
            println!("{} creates: {by_first} handled by {APP}, {by_second} by {APP}-2 so far", sent.len());
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "after {} creates, not both replicas handled one: {by_first} by {APP}, {by_second} by {APP}-2",
            sent.len()
        );
    }

    platform.settle(SETTLE).await?;
    for create in &sent {
        assert_eq!(api.audit_changes(&create.task_id()).await?, ["created"], "audit trail of {create:?}");
    }
    let mut titles = std::collections::BTreeMap::new();
    for task in api.list_all(&[("tag", "burst"), ("limit", "100")]).await? {
        *titles.entry(task["title"].as_str().unwrap_or_default().to_owned()).or_insert(0) += 1;
    }
    assert_eq!(titles.len(), sent.len(), "one task per create");
    assert!(titles.values().all(|n| *n == 1), "{titles:?}");

    ensure!(platform.stop_replica(APP, Duration::from_secs(10))?, "no replica of {APP} was running to stop");
    ensure!(platform.replicas(APP)? == 1, "{} replicas of {APP} run after stopping one", platform.replicas(APP)?);
    ensure!(!platform.running()?.iter().any(|name| name.ends_with("create-task-2")), "the replica still runs");
    ensure!(!platform.stop_replica(APP, Duration::from_secs(10))?, "a second replica was stopped");
    // Its partitions went back to the first: creates on every key are handled again.
    let before = sent.len();
    for i in 0..12 {
        publish(format!("after-stop-{i}"), &mut sent).await?;
    }
    for create in &sent[before..] {
        let id = create.task_id();
        let changes = eventually("a create after the replica stopped", SETTLE, || async {
            let changes = api.audit_changes(&id).await?;
            Ok((!changes.is_empty()).then_some(changes))
        })
        .await
        .with_context(|| format!("{create:?}"))?;
        assert_eq!(changes, ["created"], "audit trail of {create:?}");
    }
    Ok(())
}

/// The notifier on the real platform, its three scenarios on one system (a platform start is
/// most of a scenario's time): the reminder reaches a webhook and an SMTP sink once each through
/// the real daprd's `bindings.smtp`; a webhook down for 20 s gets it once it is back, the
/// retries being real Scheduler jobs; a webhook answering 410 fails at once, into `notifier-dlq`
/// on the real broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notifier_delivers_once_retries_while_down_and_dead_letters_what_is_gone() -> anyhow::Result<()> {
    let system = TestSystem::platform("notifier", Options::default()).await?;
    let mailbox = system_tests::smtp::SmtpSink::bind(([127, 0, 0, 1], system.setup().smtp_port).into()).await?;
    system
        .play(async |s| {
            notify::a_reminder_reaches_the_webhook_and_the_mailbox_once(s, &mailbox).await?;
            notify::a_receiver_down_for_20_seconds_gets_the_reminder_once_it_is_back(s).await?;
            notify::a_receiver_that_is_gone_fails_without_retries_into_the_dead_letter_topic(s).await
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_changes_reach_a_client_of_another_replica_and_resume_after_its_kill() -> anyhow::Result<()> {
    let (setup, mut platform) = start("live", Options::default()).await?;
    let outcome = live_across_replicas(&setup, &mut platform).await;
    let logs = platform.logs().to_owned();
    platform.stop()?;
    outcome.with_context(|| format!("logs in {}", logs.display()))
}

async fn live_across_replicas(setup: &Setup, platform: &mut Platform) -> anyhow::Result<()> {
    use anyhow::ensure;
    use live_streams::{change_of, next_change, open, until_streaming};
    const WITHIN: Duration = Duration::from_secs(30);
    let api = setup.api(USER)?;
    platform.start_replica("task-api").await?;
    let second = format!("http://127.0.0.1:{}", platform.replica("task-api", 2)?.app_port);
    let mut on_first = open(api.base(), api.token(), None).await?;
    let mut on_second = open(&second, api.token(), None).await?;
    // Each replica's group joins at the newest offset once its sidecar has subscribed.
    until_streaming(&api, &mut on_first, Duration::from_secs(120)).await?;
    until_streaming(&api, &mut on_second, Duration::from_secs(120)).await?;

    // A change through the first replica reaches the stream on the second.
    let sent = std::time::Instant::now();
    let task = api.post("/v1/tasks", Some(&json!({"title": "seen everywhere"})), StatusCode::CREATED).await?;
    let id = task["id"].as_str().context("id")?.to_owned();
    let (event, data) = change_of(&mut on_second, &id, WITHIN).await?;
    println!("platform: create through replica 1 -> a stream on replica 2: {:?}", sent.elapsed());
    ensure!(
        event.event.as_deref() == Some(todo_core::events::types::TASK_CREATED) && data["version"] == 1,
        "{event:?}"
    );
    change_of(&mut on_first, &id, WITHIN).await?;
    let last = event.id.context("an id")?;

    // The second replica dies; changes go on through the first; the client reconnects there.
    ensure!(platform.stop_replica("task-api", Duration::ZERO)?, "replica 2 was running");
    drop(on_second);
    let mut meanwhile = Vec::new();
    for n in 0..3 {
        let task =
            api.post("/v1/tasks", Some(&json!({"title": format!("meanwhile {n}")})), StatusCode::CREATED).await?;
        meanwhile.push(task["id"].as_str().context("id")?.to_owned());
    }
    // The first replica has them once its own stream does.
    for id in &meanwhile {
        change_of(&mut on_first, id, WITHIN).await?;
    }
    let mut resumed = open(api.base(), api.token(), Some(&last)).await?;
    let mut got = Vec::new();
    while got.len() < meanwhile.len() {
        let (event, data) = next_change(&mut resumed, WITHIN).await?;
        ensure!(event.event.as_deref() != Some("resync"), "asked to resync: {event:?}");
        let id = data["id"].as_str().unwrap_or_default().to_owned();
        if meanwhile.contains(&id) && !got.contains(&id) {
            got.push(id);
        }
    }
    Ok(())
}
