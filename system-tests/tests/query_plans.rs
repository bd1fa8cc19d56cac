//! Every query the system runs on the state tables is served by its index of
//! `manifests/base/postgres/indexes.sql`, on the real platform (`make test-platform`, after
//! `make platform`; issue 17).
//!
//! An expression index serves a query only when the query's expression is the index's, so the
//! queries are not written down here: PostgreSQL logs every statement (`Options::log_statements`)
//! while real requests go through task-api and its daprd (task lists in every sort, with filters
//! and following cursors; an audit trail) and task-api's outbox relay polls by itself, and the
//! SQL and parameters daprd actually sent are read back from the log (`system_tests::plans`).
//! KEDA's two wake-up queries are taken as `keda/*.yaml` has them. Then, for each, with
//! `enable_seqscan = off`:
//!
//! - daprd's queries are PREPAREd as daprd's statement cache prepares them (parameter types
//!   inferred) and EXPLAINed both as a custom plan (for the logged values) and as a generic plan
//!   (for any values, which PostgreSQL may switch a cached statement to after five executions),
//!   as task-api's role; KEDA's as `keda_reminders`;
//! - the plan must scan the expected index by name with an Index Cond, and nothing
//!   sequentially. For a list that is the owner index of its sort key, or of the order key a
//!   due range filters on (the planner rightly walks the due index when the range is narrow),
//!   and its Index Cond must be on that key's column: the owner column alone is served by any of
//!   the five, so only the second column shows that the query's expression is the index's. The
//!   title sort ranges over title groups and reads one group whole by equality: both on the
//!   title index.
//!
//! Disabling sequential scans makes an index plan win on small tables whenever one is possible,
//! so a plan without the index means the expressions do not match. Small tables alone would still
//! leave the planner free to pick any index that leads with the owner for a list query (sorting a
//! few rows costs nothing), so before planning, the tables get a realistic spread of rows cloned
//! from what the functions wrote (tens of thousands of tasks of 200 other users, audit entries,
//! reminder and delivery records mostly done) and are ANALYZEd: the planner then chooses on the
//! merits, and the index of a list's sort key wins only if its second column is the sort's
//! expression.
//!
//! The check can fail, and does so here on purpose: the audit query with `value#>>'{task_id}'`
//! (the same value, another expression) and fire-reminder's wake-up query with the plain
//! `::timestamptz` cast it used before `public.todo_instant` must both miss their index. (By
//! hand: with `todo_tasks_owner_created` on `value#>>'{_order,created}'` every list sorted on
//! `created` fails, planned on the owner column of another index.)

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::api::{Api, eventually};
use system_tests::host::Setup;
use system_tests::keda::trigger_query;
use system_tests::plans::{self, Expected, Kind, ORDER_KEYS, Statement};
use system_tests::platform::{Options, Platform, postgres_role};

const USER: &str = "alice";
const KEDA: &str = "keda_reminders";
/// Every `sort` GET /v1/tasks takes.
const SORTS: [&str; 10] =
    ["created", "-created", "updated", "-updated", "due", "-due", "priority", "-priority", "title", "-title"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_on_the_state_tables_is_served_by_its_index() -> anyhow::Result<()> {
    let setup = Setup::new(&[])?;
    let dir = Platform::fresh_dir("query-plans")?;
    let options = Options { postgres_roles: true, log_statements: true, ..Options::default() };
    let platform = Platform::start(&setup.run_file, &dir, options).await?;
    let result = check(&setup, &platform).await;
    let logs = platform.logs().to_owned();
    platform.stop()?;
    result.with_context(|| format!("logs in {}", logs.display()))
}

async fn check(setup: &Setup, platform: &Platform) -> anyhow::Result<()> {
    let api = setup.api(USER)?;
    drive(&api, platform).await?;
    legacy_tasks_get_their_order_keys(platform)?;
    let (sent, mut failures) = sent_queries(platform).await?;
    add_realistic_rows(platform)?;

    let mut report = Vec::new();
    let task_api = postgres_role("task-api");
    for ((kind, sql), params) in &sent {
        let expected = plans::expected_indexes(*kind, sql);
        for mode in ["force_custom_plan", "force_generic_plan"] {
            let explain = format!(
                "SET enable_seqscan = off; SET plan_cache_mode = {mode}; {}",
                plans::explain_prepared(sql, params)
            );
            let what = format!("{kind:?} ({}, {mode})", plans::order_key(sql).unwrap_or("a title group read whole"));
            match plan(platform, &task_api, &explain).map(|plan| plans::uses_index(&plan, &expected)) {
                Ok(Ok(scan)) => report.push(format!("{what}: {scan}")),
                Ok(Err(why)) => failures.push(format!("{what}: {why}\n    {sql}\n    parameters {params:?}")),
                Err(error) => failures.push(format!("{what}: {error:#}\n    {sql}")),
            }
        }
    }
    for (function, index) in
        [("fire-reminder", "todo_state_reminders_due"), ("notifier", "todo_deliveries_retries_due")]
    {
        let query = trigger_query(function)?;
        let what = format!("KEDA's wake-up query of {function}");
        // KEDA's role runs it (EXECUTE on public.todo_instant included) and it is served by
        // its partial index.
        platform
            .psql(KEDA, &query)?
            .map_err(|message| anyhow::anyhow!("{what} as {KEDA}: {message}"))?
            .parse::<u64>()
            .with_context(|| format!("{what}: a count"))?;
        let explain = format!("SET enable_seqscan = off; EXPLAIN (FORMAT JSON) {query}");
        let expected = [Expected { index: index.to_owned(), cond: Some("todo_instant(".to_owned()) }];
        match plan(platform, KEDA, &explain).map(|plan| plans::uses_index(&plan, &expected)) {
            Ok(Ok(scan)) => report.push(format!("{what}: {scan}")),
            Ok(Err(why)) => failures.push(format!("{what}: {why}\n    {query}")),
            Err(error) => failures.push(format!("{what}: {error:#}")),
        }
    }
    println!("every query and the index its plan scans:\n  {}", report.join("\n  "));

    // The check is not vacuous: the same value through another expression misses the index.
    let (audit_sql, audit_params) =
        sent.iter().find(|((kind, _), _)| *kind == Kind::Audit).map(|((_, sql), p)| (sql, p)).context("audit")?;
    let respelled = replace_once(audit_sql, "value->>'task_id'", "value#>>'{task_id}'")?;
    let explain = format!(
        "SET enable_seqscan = off; SET plan_cache_mode = force_custom_plan; {}",
        plans::explain_prepared(&respelled, audit_params)
    );
    let missed =
        plans::uses_index(&plan(platform, &task_api, &explain)?, &plans::expected_indexes(Kind::Audit, audit_sql));
    ensure!(missed.is_err(), "the audit query with value#>>'{{task_id}}' still used todo_audit_task: {missed:?}");
    let cast = replace_once(
        &trigger_query("fire-reminder")?,
        "public.todo_instant(value->>'remind_at')",
        "(value->>'remind_at')::timestamptz",
    )?;
    let explain = format!("SET enable_seqscan = off; EXPLAIN (FORMAT JSON) {cast}");
    let expected = [Expected { index: "todo_state_reminders_due".to_owned(), cond: None }];
    let missed = plans::uses_index(&plan(platform, KEDA, &explain)?, &expected);
    ensure!(missed.is_err(), "the wake-up query with a plain ::timestamptz cast used the index: {missed:?}");

    if !failures.is_empty() {
        bail!("{} failure(s):\n{}", failures.len(), failures.join("\n"));
    }
    Ok(())
}

/// Real requests through task-api: a few tasks of every priority, some due, some completed, one
/// with a reminder (so fire-reminder writes a `scheduled` record); their audit trail; the list in
/// every sort, plain and filtered, two tasks a page (so every cursor is followed).
async fn drive(api: &Api, platform: &Platform) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let at = |hours: i64| (now + chrono::Duration::hours(hours)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut ids = Vec::new();
    for (n, priority) in ["low", "medium", "high", "urgent", "high", "low"].into_iter().enumerate() {
        let mut body = json!({ "title": format!("plan {n}"), "priority": priority });
        if n % 2 == 0 {
            body["due"] = json!(at(24 * (i64::try_from(n)? + 1)));
        }
        if n == 0 {
            body["reminder"] = json!({ "at": at(2) });
        }
        let task = api.post("/v1/tasks", Some(&body), StatusCode::CREATED).await?;
        ids.push(task["id"].as_str().context("a created task's id")?.to_owned());
    }
    for id in &ids[..2] {
        api.post(&format!("/v1/tasks/{id}/complete"), None, StatusCode::OK).await?;
    }
    let completed = &ids[1];
    eventually("the completed task's audit trail", Duration::from_secs(60), || async {
        Ok((api.audit_changes(completed).await? == ["created", "completed"]).then_some(()))
    })
    .await?;
    let reminder = format!("SELECT count(*) FROM todo_state WHERE key = 'state||reminder:{}'", ids[0]);
    eventually("fire-reminder's record of the reminder", Duration::from_secs(60), || async {
        Ok((platform.psql("postgres", &reminder)?.map_err(anyhow::Error::msg)? == "1").then_some(()))
    })
    .await?;

    let (after, before) = (at(-24), at(24 * 30));
    for sort in SORTS {
        let plain = api.list_all(&[("sort", sort), ("limit", "2")]).await?;
        ensure!(plain.len() == ids.len(), "sort={sort}: {} tasks listed, {} created", plain.len(), ids.len());
        api.list_all(&[("sort", sort), ("limit", "2"), ("status", "open"), ("priority", "high,urgent")]).await?;
        api.list_all(&[("sort", sort), ("limit", "2"), ("due_after", &after), ("due_before", &before)]).await?;
    }
    Ok(())
}

/// The Query API statements daprd sent, each distinct SQL text once with the parameters of its
/// first execution, and a failure for each query the log should show and does not: the audit
/// trail, the relay, the list sorted on every order key, and a title group read whole.
async fn sent_queries(
    platform: &Platform,
) -> anyhow::Result<(BTreeMap<(Kind, String), Vec<Option<String>>>, Vec<String>)> {
    let log = platform.postgres_log();
    // The relay polls every 2 s (OUTBOX_RELAY_INTERVAL_MS): it is in the log by now or soon.
    let statements = eventually("the outbox relay's query in PostgreSQL's log", Duration::from_secs(30), || async {
        let text = std::fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?;
        let statements = plans::parse_log(&text);
        let relayed = statements.iter().any(|s| plans::classify(&s.sql) == Some(Kind::Relay));
        Ok(relayed.then_some(statements))
    })
    .await?;
    let mut sent = BTreeMap::new();
    for Statement { sql, params, prepared, .. } in statements {
        let Some(kind) = plans::classify(&sql) else { continue };
        ensure!(prepared.is_some(), "daprd sent {kind:?} as a simple query, not a prepared statement: {sql}");
        sent.entry((kind, sql)).or_insert(params);
    }
    let mut missing = Vec::new();
    for kind in [Kind::Audit, Kind::Relay] {
        if !sent.keys().any(|(k, _)| *k == kind) {
            missing.push(format!("{kind:?}"));
        }
    }
    let lists: Vec<Option<&str>> =
        sent.keys().filter(|(kind, _)| *kind == Kind::List).map(|(_, sql)| plans::order_key(sql)).collect();
    for key in ORDER_KEYS {
        if !lists.contains(&Some(key)) {
            missing.push(format!("a list sorted on _order.{key}"));
        }
    }
    let groups = sent.keys().any(|(kind, sql)| {
        *kind == Kind::List && plans::order_key(sql).is_none() && plans::filtered_order_keys(sql) == ["title"]
    });
    if !groups {
        missing.push("a title group read whole".to_owned());
    }
    let mut failures = Vec::new();
    if !missing.is_empty() {
        let lists: Vec<&String> = sent.keys().filter(|(kind, _)| *kind == Kind::List).map(|(_, sql)| sql).collect();
        failures.push(format!("not in PostgreSQL's log: {}; the list queries in it: {lists:#?}", missing.join(", ")));
    }
    Ok((sent, failures))
}

/// Rows like the functions' own, in numbers that make the planner choose on the merits: 40,000
/// tasks of 200 other users (about 200 each), audit trails of 10,000 tasks, 20,000 reminder
/// records (one in ten still scheduled, over the next two weeks) and 20,000 delivery records (one
/// in ten retrying); then ANALYZE. Written as the superuser: no role of the functions may.
fn add_realistic_rows(platform: &Platform) -> anyhow::Result<()> {
    let key = "(101700 + random() * 100)::numeric(15, 9)::text";
    let sql = format!(
        "INSERT INTO todo_tasks (key, value, isbinary) \
         SELECT 'tasks||task:' || f.id, t.value || jsonb_build_object( \
             'id', f.id, 'owner', 'filler-' || (f.g % 200), 'title', 'filler ' || f.g, \
             'status', CASE WHEN f.g % 3 = 0 THEN 'completed' ELSE 'open' END, \
             'priority', (ARRAY['low', 'medium', 'high', 'urgent'])[1 + f.g % 4], \
             '_order', jsonb_build_object('created', f.created, 'updated', f.updated, 'due', f.due, \
                 'priority', (100000 + f.g % 4)::text, 'tie', f.tie)), false \
         FROM (SELECT g, gen_random_uuid()::text AS id, {key} AS created, {key} AS updated, {key} AS due, \
                      {key} AS tie FROM generate_series(1, 40000) g) f \
         CROSS JOIN (SELECT value FROM todo_tasks WHERE key LIKE 'tasks||task:%' LIMIT 1) t; \
         INSERT INTO todo_audit (key, value, isbinary) \
         SELECT 'audit||audit:' || f.task || ':' || f.event, a.value || jsonb_build_object( \
             'task_id', f.task, 'event_id', f.event, 'owner', 'filler-' || (f.g % 200)), false \
         FROM (SELECT g, md5((g / 4)::text)::uuid::text AS task, gen_random_uuid()::text AS event \
               FROM generate_series(1, 40000) g) f \
         CROSS JOIN (SELECT value FROM todo_audit LIMIT 1) a; \
         INSERT INTO todo_state (key, value, isbinary) \
         SELECT 'state||reminder:' || gen_random_uuid(), r.value || jsonb_build_object( \
             'status', CASE WHEN g % 10 = 0 THEN 'scheduled' ELSE 'fired' END, \
             'remind_at', to_char((now() + g * interval '1 minute') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')), false \
         FROM generate_series(1, 20000) g \
         CROSS JOIN (SELECT value FROM todo_state WHERE key LIKE 'state||reminder:%' LIMIT 1) r; \
         INSERT INTO todo_deliveries (key, value, isbinary) \
         SELECT 'deliveries||delivery:' || gen_random_uuid() || ':webhook', jsonb_build_object( \
             'status', CASE WHEN g % 10 = 0 THEN 'retrying' ELSE 'delivered' END, \
             'next_attempt_at', CASE WHEN g % 10 = 0 THEN to_char((now() + g * interval '1 minute') \
                 AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') END), false \
         FROM generate_series(1, 20000) g; \
         ANALYZE todo_tasks, todo_audit, todo_state, todo_deliveries"
    );
    platform.psql("postgres", &sql)?.map_err(|message| anyhow::anyhow!("adding rows: {message}"))?;
    Ok(())
}

/// The plan PostgreSQL answers for `explain` (statements ending in an EXPLAIN (FORMAT JSON)),
/// run as `role`.
fn plan(platform: &Platform, role: &str, explain: &str) -> anyhow::Result<Value> {
    let output = platform.psql(role, explain)?.map_err(|message| anyhow::anyhow!("EXPLAIN as {role}: {message}"))?;
    plans::explain_json(&output).with_context(|| format!("no EXPLAIN JSON in psql's output: {output}"))
}

/// `text` with its one occurrence of `from` replaced (an error if there is none).
fn replace_once(text: &str, from: &str, to: &str) -> anyhow::Result<String> {
    ensure!(text.contains(from), "{from} is not in {text}");
    Ok(text.replacen(from, to, 1))
}

/// Tasks stored before they carried order keys get them from indexes.sql, exactly as
/// `OrderKeys::of` computes them; a tombstone gets none.
fn legacy_tasks_get_their_order_keys(platform: &Platform) -> anyhow::Result<()> {
    use todo_core::order::OrderKeys;
    use todo_core::task::{Priority, Task};
    let at = |s: &str| -> anyhow::Result<chrono::DateTime<chrono::Utc>> { Ok(s.parse()?) };
    let mut tasks = Vec::new();
    for (n, (priority, due)) in [
        (Priority::Low, None),
        (Priority::Medium, Some("2026-12-01T09:00:00.123+01:00")),
        (Priority::High, Some("1970-01-01T00:00:00Z")),
        (Priority::Urgent, Some("9999-12-31T23:59:59.999Z")),
    ]
    .into_iter()
    .enumerate()
    {
        // Titles whose group needs Unicode lower-casing as Rust does it: full mappings (İ),
        // the final sigma, characters beyond the Basic Multilingual Plane.
        let title = ["Legacy ÄRGER", "ΣΟΦΌΣ Σ", "İstanbul 𝔘nicode", "K\u{212a}elvin"][n];
        let mut task: Task = serde_json::from_value(serde_json::json!({
            "id": uuid::Uuid::new_v4(), "owner": "legacy", "title": title,
            "created_at": "2026-11-22T10:00:00.123456Z", "updated_at": "2026-12-06T21:00:00Z", "version": 2,
        }))?;
        task.priority = priority;
        task.due = due.map(chrono::DateTime::parse_from_rfc3339).transpose()?;
        task.created_at = at("2026-11-22T10:00:00.123456Z")? + chrono::Duration::milliseconds(n as i64 * 7);
        tasks.push(task);
    }
    let mut tombstone = tasks[0].clone();
    tombstone.id = uuid::Uuid::new_v4();
    tombstone.deleted_at = Some(at("2026-12-06T21:00:00Z")?);
    tasks.push(tombstone);
    for task in &tasks {
        // As written before order keys existed: the task's fields only.
        let value = serde_json::to_string(task)?.replace('\'', "''");
        platform
            .psql(
                "postgres",
                &format!(
                    "INSERT INTO todo_tasks (key, value, isbinary) VALUES ('tasks||task:{}', '{value}', false)",
                    task.id
                ),
            )?
            .map_err(|message| anyhow::anyhow!("inserting a legacy task: {message}"))?;
    }
    platform.apply_roles()?;
    for task in &tasks {
        let stored = platform
            .psql("postgres", &format!("SELECT value->'_order' FROM todo_tasks WHERE key = 'tasks||task:{}'", task.id))?
            .map_err(|message| anyhow::anyhow!("reading a legacy task: {message}"))?;
        let expected = if task.is_deleted() { String::new() } else { serde_json::to_string(&OrderKeys::of(task))? };
        let (stored, expected): (serde_json::Value, serde_json::Value) = (
            if stored.is_empty() { serde_json::Value::Null } else { serde_json::from_str(&stored)? },
            if expected.is_empty() { serde_json::Value::Null } else { serde_json::from_str(&expected)? },
        );
        ensure!(
            stored == expected,
            "order keys of legacy task {}: indexes.sql made {stored}, OrderKeys::of {expected}",
            task.title
        );
    }
    Ok(())
}
