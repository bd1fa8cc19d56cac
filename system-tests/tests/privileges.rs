//! Least privilege for data, on the real platform (`make test-platform`, after `make platform`):
//! `manifests/base/postgres/roles.sql` applied to the harness's PostgreSQL, and every daprd
//! logging in as its own app's role, as the Kubernetes Deployments do.
//!
//! - the whole flow (create → audited, reminder fired by the Scheduler, completion → next
//!   occurrence) works on those roles: what each role was granted is enough for what daprd
//!   v1.18.2's `state.postgresql` v1 does at init and per operation;
//! - the grants are exactly the designed ones (a matrix read back from PostgreSQL), so "enough"
//!   is not bought with more;
//! - audit entries cannot be rewritten or deleted with audit-writer's credentials, neither in
//!   SQL nor through its daprd, while its insert-if-absent still answers "already there";
//! - on-task-completed's role reads tasks and writes nothing (its daprd's save is refused);
//! - KEDA's role runs the trigger queries of fire-reminder and the notifier and nothing else
//!   (not the channels' table, where people's addresses and webhook secrets are); the function
//!   they call, `public.todo_instant`, is executable by KEDA's role and the two writers of the
//!   rows its indexes hold, not by everyone;
//! - people's channels (`notify`) are written by task-api alone: the notifier's role reads them
//!   and writes only its delivery records (`deliveries`), which task-api only reads;
//! - why the function roles need CREATE on `dapr_metadata`: without it daprd does not start.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};
use system_tests::api::client;
use system_tests::host::Setup;
use system_tests::platform::{Options, Platform, postgres_role};
use system_tests::scenario;

const USER: &str = "alice";
const APPS: [&str; 6] = ["task-api", "create-task", "on-task-completed", "fire-reminder", "audit-writer", "notifier"];
const KEDA: &str = "keda_reminders";

async fn start(name: &str) -> anyhow::Result<(Setup, Platform)> {
    let setup = Setup::new(&[])?;
    let dir = std::env::temp_dir().join("todo-platform-tests").join(name);
    Platform::kill_leftovers(&dir)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let options = Options { postgres_roles: true, ..Options::default() };
    let platform = Platform::start(&setup.run_file, &dir, options).await?;
    Ok((setup, platform))
}

/// `sql` as `role` must be refused by PostgreSQL with a message containing `because`.
fn refused(platform: &Platform, role: &str, sql: &str, because: &str) {
    match platform.psql(role, sql).unwrap() {
        Ok(out) => panic!("{role} was allowed `{sql}` (output {out:?})"),
        Err(message) => {
            assert!(message.contains(because), "{role}: `{sql}` refused, but not for {because:?}: {message}")
        }
    }
}

fn allowed(platform: &Platform, role: &str, sql: &str) -> String {
    platform.psql(role, sql).unwrap().unwrap_or_else(|message| panic!("{role} was refused `{sql}`: {message}"))
}

/// Every (role, relation, privilege) the function and KEDA roles hold on the tables, as
/// PostgreSQL answers it (column-level grants count as the privilege), plus CREATE on schemas
/// and EXECUTE on `public.todo_instant` (not PUBLIC's).
fn privileges(platform: &Platform) -> BTreeSet<String> {
    let roles: Vec<String> = APPS.iter().map(|a| postgres_role(a)).chain([KEDA.to_owned()]).collect();
    let roles = roles.iter().map(|r| format!("'{r}'")).collect::<Vec<_>>().join(",");
    let sql = format!(
        "SELECT r || ' ' || t || ' ' || p FROM unnest(ARRAY[{roles}]) r, \
           unnest(ARRAY['public.todo_tasks','public.todo_state','public.todo_audit', \
                        'public.todo_notify','public.todo_deliveries', \
                        'dapr_metadata.todo_tasks_metadata','dapr_metadata.todo_state_metadata', \
                        'dapr_metadata.todo_audit_metadata','dapr_metadata.todo_notify_metadata', \
                        'dapr_metadata.todo_deliveries_metadata']) t, \
           unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) p \
         WHERE CASE WHEN p IN ('SELECT','INSERT','UPDATE','REFERENCES') THEN has_any_column_privilege(r, t, p) \
                    ELSE has_table_privilege(r, t, p) END \
         UNION ALL \
         SELECT r || ' ' || s || ' CREATE' FROM unnest(ARRAY[{roles}]) r, unnest(ARRAY['public','dapr_metadata']) s \
         WHERE has_schema_privilege(r, s, 'CREATE') \
         UNION ALL \
         SELECT r || ' public.todo_instant(text) EXECUTE' FROM unnest(ARRAY[{roles}]) r \
         WHERE has_function_privilege(r, 'public.todo_instant(text)', 'EXECUTE') ORDER BY 1"
    );
    allowed(platform, "postgres", &sql).lines().map(str::to_owned).collect()
}

/// The designed grants (manifests/base/postgres/roles.sql): each row is why the flow works.
fn designed() -> BTreeSet<String> {
    let mut expected = BTreeSet::new();
    let mut grant = |roles: &[&str], table: &str, privileges: &[&str]| {
        for role in roles {
            for p in privileges {
                expected.insert(format!("{role} {table} {p}"));
            }
        }
    };
    const RW: &[&str] = &["SELECT", "INSERT", "UPDATE", "DELETE"];
    // INSERT ... ON CONFLICT DO UPDATE needs UPDATE even for first-write inserts.
    const INSERT: &[&str] = &["SELECT", "INSERT", "UPDATE"];
    // daprd's start: lock row insert, SELECT ... FOR UPDATE, migration level.
    const META: &[&str] = &["SELECT", "INSERT", "UPDATE"];
    grant(&["task_api", "create_task"], "public.todo_tasks", RW);
    grant(&["on_task_completed", "fire_reminder"], "public.todo_tasks", &["SELECT"]);
    grant(
        &["task_api", "create_task", "on_task_completed", "fire_reminder"],
        "dapr_metadata.todo_tasks_metadata",
        META,
    );
    grant(&["fire_reminder"], "public.todo_state", INSERT);
    grant(&["task_api", KEDA], "public.todo_state", &["SELECT"]);
    grant(&["task_api", "fire_reminder"], "dapr_metadata.todo_state_metadata", META);
    grant(&["audit_writer"], "public.todo_audit", INSERT);
    grant(&["task_api"], "public.todo_audit", &["SELECT"]);
    grant(&["task_api", "audit_writer"], "dapr_metadata.todo_audit_metadata", META);
    grant(&["task_api"], "public.todo_notify", INSERT);
    grant(&["notifier"], "public.todo_notify", &["SELECT"]);
    grant(&["task_api", "notifier"], "dapr_metadata.todo_notify_metadata", META);
    grant(&["notifier"], "public.todo_deliveries", INSERT);
    grant(&["task_api", KEDA], "public.todo_deliveries", &["SELECT"]);
    grant(&["task_api", "notifier"], "dapr_metadata.todo_deliveries_metadata", META);
    let apps: Vec<String> = APPS.iter().map(|a| postgres_role(a)).collect();
    let apps: Vec<&str> = apps.iter().map(String::as_str).collect();
    grant(&apps, "dapr_metadata", &["CREATE"]);
    // KEDA's wake-up queries call it; the writers of the rows its indexes hold need it too
    // (PostgreSQL checks EXECUTE on an index expression's function as the writing role).
    grant(&["fire_reminder", "notifier", KEDA], "public.todo_instant(text)", &["EXECUTE"]);
    expected
}

/// A state API call to `app`'s sidecar: (status, body).
async fn sidecar(
    platform: &Platform,
    app: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let url = format!("{}{path}", platform.sidecar(app).unwrap());
    let mut request = client().unwrap().request(method, &url);
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_string());
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// A function's `postgresql` trigger query, as keda/<function>.yaml has it.
fn keda_query(function: &str) -> String {
    system_tests::keda::trigger_query(function).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_works_on_its_own_postgres_role_and_can_do_no_more() -> anyhow::Result<()> {
    let (setup, mut platform) = start("privileges").await?;
    let logs = platform.logs().to_owned();

    // (a) The whole flow on the restricted roles: every sidecar started (init as its role), the
    // task created and audited, the reminder fired, the completion audited and the next
    // occurrence created by create-task from on-task-completed's request.
    let api = setup.api(USER)?;
    let outcome = scenario::run(&api, Duration::from_secs(5), |line| println!("{line}"))
        .await
        .with_context(|| format!("the demo flow on per-app roles; logs in {}", logs.display()))?;
    assert_ne!(outcome.next_task_id, outcome.task_id);
    assert_eq!(outcome.audit_changes, ["created", "completed"], "the first task's audit trail");
    let reminder = allowed(
        &platform,
        "postgres",
        &format!("SELECT value->>'status' FROM todo_state WHERE key = 'state||reminder:{}'", outcome.task_id),
    );
    assert!(["fired", "cancelled"].contains(&reminder.as_str()), "fire-reminder wrote its record: {reminder:?}");
    let as_who = allowed(
        &platform,
        "postgres",
        "SELECT string_agg(DISTINCT usename, ',' ORDER BY usename) FROM pg_stat_activity WHERE usename <> 'postgres'",
    );
    // Every app the run file starts (the notifier once dapr.yaml has it); task-api's daprd loads
    // `notify` and `deliveries` too, so its start proves their metadata grants.
    for app in APPS.iter().filter(|app| platform.apps().iter().any(|spec| spec.id == **app)) {
        assert!(as_who.contains(&postgres_role(app)), "{app}'s daprd is connected as its role: {as_who}");
    }

    // Exactly the designed grants, nothing more.
    assert_eq!(privileges(&platform), designed(), "the grants read back from PostgreSQL");

    // (b) Audit entries: audit-writer's credentials cannot rewrite or delete one...
    let key = allowed(&platform, "postgres", "SELECT key FROM todo_audit ORDER BY row_id LIMIT 1");
    assert!(key.starts_with("audit||audit:"), "an audit entry of the flow: {key:?}");
    let before = allowed(&platform, "postgres", &format!("SELECT value::text FROM todo_audit WHERE key = '{key}'"));
    let writer = postgres_role("audit-writer");
    refused(&platform, &writer, &format!("UPDATE todo_audit SET value = '{{}}' WHERE key = '{key}'"), "immutable");
    refused(&platform, &writer, &format!("DELETE FROM todo_audit WHERE key = '{key}'"), "permission denied");
    refused(&platform, &writer, "TRUNCATE todo_audit", "permission denied");
    refused(&platform, &writer, &format!("UPDATE todo_audit SET key = 'x' WHERE key = '{key}'"), "permission denied");
    refused(&platform, &writer, "UPDATE todo_state SET value = '{}'", "permission denied");
    refused(&platform, &postgres_role("fire-reminder"), "UPDATE todo_audit SET value = '{}'", "permission denied");
    refused(&platform, &postgres_role("task-api"), "UPDATE todo_audit SET value = '{}'", "permission denied");
    // ... nor through its daprd: an overwrite (upsert) and a delete fail in PostgreSQL, and
    // the insert-if-absent of an entry that exists answers an error the function reads as
    // AlreadyExists ("no item was updated"), without touching the row.
    let dapr_key = key.trim_start_matches("audit||");
    let post = reqwest::Method::POST;
    let (status, body) = sidecar(
        &platform,
        "audit-writer",
        post.clone(),
        "/v1.0/state/audit",
        Some(json!([{"key": dapr_key, "value": {"forged": true}}])),
    )
    .await;
    assert!(status >= 400 && body.contains("immutable"), "an overwrite through daprd: {status} {body}");
    let first_write = json!([{"key": dapr_key, "value": {"forged": true}, "options": {"concurrency": "first-write"}}]);
    let (status, body) = sidecar(&platform, "audit-writer", post.clone(), "/v1.0/state/audit", Some(first_write)).await;
    assert!(status >= 400 && !body.contains("immutable"), "a first-write insert of an existing key: {status} {body}");
    let (status, body) =
        sidecar(&platform, "audit-writer", reqwest::Method::DELETE, &format!("/v1.0/state/audit/{dapr_key}"), None)
            .await;
    assert!(status >= 400 && body.contains("permission denied"), "a delete through daprd: {status} {body}");
    let after = allowed(&platform, "postgres", &format!("SELECT value::text FROM todo_audit WHERE key = '{key}'"));
    assert_eq!(after, before, "the audit entry is unchanged");
    // A new entry still goes in (insert-if-absent on a free key).
    let fresh =
        json!([{"key": "audit:privileges-test:1", "value": {"n": 1}, "options": {"concurrency": "first-write"}}]);
    let (status, body) = sidecar(&platform, "audit-writer", post.clone(), "/v1.0/state/audit", Some(fresh)).await;
    assert_eq!(status, 204, "a first-write insert of a new key: {body}");

    // (c) on-task-completed reads tasks and writes nothing.
    let reader = postgres_role("on-task-completed");
    let task_key = format!("tasks||task:{}", outcome.next_task_id);
    assert_eq!(allowed(&platform, &reader, &format!("SELECT count(*) FROM todo_tasks WHERE key = '{task_key}'")), "1");
    refused(
        &platform,
        &reader,
        "INSERT INTO todo_tasks (key, value, isbinary) VALUES ('x', '{}', false)",
        "permission denied",
    );
    refused(
        &platform,
        &reader,
        &format!("UPDATE todo_tasks SET value = '{{}}' WHERE key = '{task_key}'"),
        "permission denied",
    );
    refused(&platform, &reader, &format!("DELETE FROM todo_tasks WHERE key = '{task_key}'"), "permission denied");
    refused(&platform, &reader, "SELECT count(*) FROM todo_state", "permission denied");
    refused(&platform, &reader, "SELECT count(*) FROM todo_audit", "permission denied");
    refused(&platform, &reader, "CREATE TABLE public.squat (x int)", "permission denied");
    // The metadata row every sidecar reads at its start is not theirs to change.
    refused(
        &platform,
        &reader,
        "INSERT INTO dapr_metadata.todo_tasks_metadata (key, value) VALUES ('last-cleanup', 'x')",
        "row-level security",
    );
    assert_eq!(
        allowed(
            &platform,
            &reader,
            "UPDATE dapr_metadata.todo_tasks_metadata SET value = '0' WHERE key = 'migrations' RETURNING key"
        ),
        "",
        "row-level security hides the migration level from updates"
    );
    let (status, body) = sidecar(
        &platform,
        "on-task-completed",
        post.clone(),
        "/v1.0/state/tasks",
        Some(json!([{"key": "task:forged", "value": {"id": "forged"}}])),
    )
    .await;
    assert!(
        status >= 400 && body.contains("permission denied"),
        "a save through on-task-completed's daprd: {status} {body}"
    );
    let (status, _) = sidecar(
        &platform,
        "on-task-completed",
        reqwest::Method::GET,
        &format!("/v1.0/state/tasks/task:{}", outcome.next_task_id),
        None,
    )
    .await;
    assert_eq!(status, 200, "its daprd reads tasks");

    // (d) KEDA's role runs the trigger query and nothing else.
    allowed(
        &platform,
        "postgres",
        "INSERT INTO todo_state (key, value, isbinary) VALUES ('state||reminder:privileges-test', \
         jsonb_build_object('status', 'scheduled', 'remind_at', to_char(now() AT TIME ZONE 'UTC' + interval '1 minute', \
         'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')), false)",
    );
    let count: u64 =
        allowed(&platform, KEDA, &keda_query("fire-reminder")).parse().context("the trigger query's count")?;
    assert!(count >= 1, "the trigger query sees the reminder due in a minute: {count}");
    // The notifier's: a delivery retry due in a minute counts, one already delivered does not.
    allowed(
        &platform,
        "postgres",
        "INSERT INTO todo_deliveries (key, value, isbinary) VALUES \
         ('deliveries||delivery:privileges-test:webhook', jsonb_build_object('status', 'retrying', 'next_attempt_at', \
         to_char(now() AT TIME ZONE 'UTC' + interval '1 minute', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')), false), \
         ('deliveries||delivery:privileges-test:email', jsonb_build_object('status', 'delivered', \
         'next_attempt_at', null), false)",
    );
    let count: u64 =
        allowed(&platform, KEDA, &keda_query("notifier")).parse().context("the notifier's trigger query's count")?;
    assert_eq!(count, 1, "the notifier's trigger query sees the one retry due in a minute");
    refused(&platform, KEDA, "SELECT * FROM todo_deliveries", "permission denied");
    refused(&platform, KEDA, "SELECT key FROM todo_notify", "permission denied");
    refused(&platform, KEDA, "SELECT * FROM todo_state", "permission denied");
    refused(&platform, KEDA, "SELECT key FROM todo_tasks", "permission denied");
    refused(&platform, KEDA, "SELECT key FROM todo_audit", "permission denied");
    refused(&platform, KEDA, "SELECT key FROM dapr_metadata.todo_state_metadata", "permission denied");
    refused(&platform, KEDA, "SELECT key FROM todo_notify", "permission denied");
    refused(&platform, KEDA, "SELECT insertdate FROM todo_deliveries", "permission denied");
    let retries =
        allowed(&platform, KEDA, "SELECT count(key) FROM todo_deliveries WHERE value->>'status' = 'retrying'");
    assert!(retries.parse::<u64>().is_ok(), "KEDA counts retries coming due: {retries:?}");
    refused(&platform, KEDA, "UPDATE todo_deliveries SET value = '{}'", "permission denied");
    refused(
        &platform,
        KEDA,
        "INSERT INTO todo_state (key, value, isbinary) VALUES ('x', '{}', false)",
        "permission denied",
    );
    refused(&platform, KEDA, "UPDATE todo_state SET value = '{}'", "permission denied");
    refused(&platform, KEDA, "DELETE FROM todo_state", "permission denied");
    refused(&platform, KEDA, "CREATE TABLE public.squat (x int)", "permission denied");
    // The function behind both wake-up queries is not everyone's.
    refused(
        &platform,
        &postgres_role("task-api"),
        "SELECT public.todo_instant('2026-01-01T00:00:00Z')",
        "permission denied for function todo_instant",
    );

    // (e) People's channels: task-api writes them through its daprd (an ETag-less save, a
    // first-write insert); the notifier's role reads them and can neither change nor add one,
    // so a compromised notifier cannot redirect anyone's reminders.
    let channels = json!([{"key": "channels:privileges-test", "value": {"email": {"address": "a@example.com"}}}]);
    let (status, body) = sidecar(&platform, "task-api", post.clone(), "/v1.0/state/notify", Some(channels)).await;
    assert_eq!(status, 204, "task-api saves channels: {body}");
    let first = json!([{"key": "channels:privileges-new", "value": {}, "options": {"concurrency": "first-write"}}]);
    let (status, body) = sidecar(&platform, "task-api", post.clone(), "/v1.0/state/notify", Some(first)).await;
    assert_eq!(status, 204, "task-api inserts channels first-write: {body}");
    let notifier = postgres_role("notifier");
    assert_eq!(
        allowed(
            &platform,
            &notifier,
            "SELECT value->'email'->>'address' FROM todo_notify WHERE key = 'notify||channels:privileges-test'"
        ),
        "a@example.com"
    );
    refused(&platform, &notifier, "UPDATE todo_notify SET value = '{}'", "permission denied");
    refused(
        &platform,
        &notifier,
        "INSERT INTO todo_notify (key, value, isbinary) VALUES ('notify||channels:x', '{}', false)",
        "permission denied",
    );
    refused(&platform, &notifier, "DELETE FROM todo_notify", "permission denied");
    refused(&platform, &postgres_role("fire-reminder"), "SELECT count(*) FROM todo_notify", "permission denied");
    refused(&platform, &postgres_role("audit-writer"), "SELECT count(*) FROM todo_deliveries", "permission denied");
    // The notifier writes delivery records (insert, ETag update) and touches no task.
    allowed(
        &platform,
        &notifier,
        "INSERT INTO todo_deliveries (key, value, isbinary) VALUES ('deliveries||delivery:privileges-test:email', \
         '{\"status\": \"sending\"}', false) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    );
    assert_eq!(
        allowed(
            &platform,
            &notifier,
            "UPDATE todo_deliveries SET value = '{\"status\": \"delivered\"}' WHERE key = 'deliveries||delivery:privileges-test:email' RETURNING key"
        ),
        "deliveries||delivery:privileges-test:email"
    );
    // A retry coming due: the row goes into the index of KEDA's wake-up query, whose function
    // PostgreSQL runs as the notifier's role (fire-reminder's `scheduled` reminder records of
    // the flow above did the same for its role).
    allowed(
        &platform,
        &notifier,
        "INSERT INTO todo_deliveries (key, value, isbinary) VALUES ('deliveries||delivery:privileges-retry:email', \
         '{\"status\": \"retrying\", \"next_attempt_at\": \"2026-01-01T00:00:00Z\"}', false)",
    );
    refused(&platform, &notifier, "DELETE FROM todo_deliveries", "permission denied");
    refused(&platform, &notifier, "SELECT count(*) FROM todo_tasks", "permission denied");
    refused(&platform, &notifier, "SELECT count(*) FROM todo_state", "permission denied");
    refused(&platform, &notifier, "CREATE TABLE public.squat (x int)", "permission denied");
    // task-api reads delivery records (the reminder view) and cannot forge one.
    let (status, body) = sidecar(
        &platform,
        "task-api",
        reqwest::Method::GET,
        "/v1.0/state/deliveries/delivery:privileges-test:email",
        None,
    )
    .await;
    assert!(status == 200 && body.contains("delivered"), "task-api reads a delivery record: {status} {body}");
    let forged = json!([{"key": "delivery:privileges-test:email", "value": {"status": "failed"}}]);
    let (status, body) = sidecar(&platform, "task-api", post.clone(), "/v1.0/state/deliveries", Some(forged)).await;
    assert!(status >= 400 && body.contains("permission denied"), "a save through task-api's daprd: {status} {body}");

    // Why CREATE on dapr_metadata: daprd runs CREATE TABLE IF NOT EXISTS on each metadata table
    // at every start, and PostgreSQL checks CREATE on the schema before looking whether the
    // table exists. Without it on-task-completed's sidecar does not start.
    allowed(&platform, "postgres", &format!("REVOKE CREATE ON SCHEMA dapr_metadata FROM {reader}"));
    platform.kill_daprd("on-task-completed")?;
    platform.start_daprd("on-task-completed")?;
    let without = platform.wait_app("on-task-completed").await;
    let message = format!("{without:?}");
    assert!(without.is_err() && message.contains("permission denied for schema dapr_metadata"), "{message}");
    allowed(&platform, "postgres", &format!("GRANT CREATE ON SCHEMA dapr_metadata TO {reader}"));
    platform.kill_daprd("on-task-completed")?;
    platform.start_daprd("on-task-completed")?;
    platform.wait_app("on-task-completed").await.context("on-task-completed's daprd with CREATE given back")?;

    platform.stop()?;
    Ok(())
}
