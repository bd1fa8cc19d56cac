//! The `## 1M tasks` section of `BENCHMARKS.md`, and the reading of PostgreSQL's statement log.

use std::fmt::Write as _;

use super::{Figure, InPostgres, Query, ScaleRun};
use crate::report;
use crate::stats::percentile;

/// Thousands separated by commas: `1,000,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What PostgreSQL logged (`log_min_duration_statement = 0`) in `log`: the statements (an
/// `execute` of the extended protocol, or a simple `statement`) and the milliseconds of every
/// phase (parse, bind, execute), the outbox relay's own statements left out.
pub fn statements(log: &str) -> InPostgres {
    let mut total = InPostgres { statements: 0, ms: 0.0, slowest: String::new() };
    let mut slowest = -1.0;
    let mut lines = log.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.split_once("LOG:  duration: ").map(|(_, r)| r) else { continue };
        let Some((ms, what)) = rest.split_once(" ms") else { continue };
        let Ok(ms) = ms.trim().parse::<f64>() else { continue };
        // A statement of several lines goes on in lines that start with a tab.
        let mut what = what.trim().to_owned();
        while let Some(more) = lines.next_if(|l| l.starts_with('\t')) {
            what.push(' ');
            what.push_str(more.trim());
        }
        if what.contains("outbox_record") {
            continue;
        }
        let sql = what.split_once(": ").map_or(what.as_str(), |(_, sql)| sql);
        if what.starts_with("execute") || what.starts_with("statement") {
            total.statements += 1;
        }
        total.ms += ms;
        if ms > slowest {
            slowest = ms;
            total.slowest = sql.chars().take(200).collect();
        }
    }
    total
}

fn cell(values: &[f64], p: f64) -> String {
    percentile(values, p).map_or("–".to_owned(), |v| format!("{v:.1}"))
}

fn figure_row(f: &Figure) -> Vec<String> {
    let target = f.target_p95_ms.map_or("none".to_owned(), |t| format!("≤ {t:.0}"));
    let in_postgres = f.in_postgres.as_ref().map_or("–".to_owned(), |p| format!("{:.1} ({})", p.ms, p.statements));
    match &f.samples {
        Ok(s) => {
            let p95 = percentile(&s.values_ms, 95.0);
            let verdict = match (f.target_p95_ms, p95) {
                (Some(t), Some(p95)) => report::verdict(Some(p95 <= t)).to_owned(),
                (None, _) => "–".to_owned(),
                (Some(_), None) => report::verdict(None).to_owned(),
            };
            let mut samples = s.values_ms.len().to_string();
            if s.cut_short {
                samples.push_str(" (time budget)");
            }
            let mut name = f.name.clone();
            if s.truncated {
                name.push_str(" (**scan truncated**: `X-Scan-Truncated`)");
            }
            vec![
                name,
                samples,
                cell(&s.values_ms, 50.0),
                cell(&s.values_ms, 95.0),
                cell(&s.values_ms, 99.0),
                cell(&s.values_ms, 100.0),
                target,
                verdict,
                in_postgres,
            ]
        }
        Err(error) => vec![
            f.name.clone(),
            crate::error_cell(error),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            target,
            report::verdict(None).to_owned(),
            in_postgres,
        ],
    }
}

fn query_row(q: &Query) -> Vec<String> {
    match &q.runs {
        Ok(runs) if !runs.is_empty() => {
            let exec: Vec<f64> = runs.iter().map(|r| r.execution_ms).collect();
            let plan: Vec<f64> = runs.iter().map(|r| r.planning_ms).collect();
            let scans = runs[0].scans.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ");
            vec![
                q.name.clone(),
                format!("`{}`", q.role),
                q.result.clone().unwrap_or_else(|| format!("{} rows", runs[0].rows)),
                scans,
                percentile(&plan, 50.0).map_or("–".to_owned(), |v| format!("{v:.3}")),
                report::spread_cell(crate::stats::Spread::of(&exec), 3),
            ]
        }
        Ok(_) => {
            vec![q.name.clone(), format!("`{}`", q.role), "not run".into(), String::new(), String::new(), String::new()]
        }
        Err(error) => {
            vec![
                q.name.clone(),
                format!("`{}`", q.role),
                crate::error_cell(error),
                String::new(),
                String::new(),
                String::new(),
            ]
        }
    }
}

/// The whole section, heading included.
pub fn section(run: &ScaleRun) -> String {
    let mut out = String::new();
    let spec = &run.spec;
    let _ = writeln!(out, "{}\n", super::HEADING);
    let speeds: Vec<String> = run.speeds.iter().map(|(when, ms)| format!("{ms:.0} ms {when}")).collect();
    let _ = writeln!(
        out,
        "Written by `make bench-scale` on {} at commit {}, on {}. Machine speed: the fixed loop of the report's \
         header took {} (lower is faster). The whole run took {:.0} min. Issue 17's data-scale figures: a \
         table of {} tasks, and the requests of a user with {} of them.\n",
        run.started.format("%Y-%m-%d %H:%M UTC"),
        run.commit,
        run.machine,
        speeds.join(", "),
        run.total_secs / 60.0,
        thousands(spec.tasks),
        thousands(spec.heavy_tasks),
    );
    let _ = writeln!(
        out,
        "**Backend**: the real platform of `make platform` ({}): every function beside its own daprd, the Dapr \
         Scheduler, one Kafka broker and PostgreSQL ({}, initdb's defaults otherwise), as plain processes on this \
         machine, release binaries, task-api with its default settings. Requests go to task-api over loopback \
         one at a time as the heavy user `{}` (unless the row names other users), each timed from sending it to the last byte of its answer, after up to \
         {} untimed ones, and every answer is checked (a full page, the hits a filter must find, the {} entries \
         of the trail). Page {} is reached by following `next_cursor` {} times; that request is then repeated. A \
         figure stops at {} requests or its time budget, whichever comes first. *In PostgreSQL*: the time \
         PostgreSQL logged for the statements of one such request (parse, bind and execute, median of up to {} \
         requests with `log_min_duration_statement = 0` on briefly after the timed ones), and their number.\n",
        run.versions,
        run.postgres_settings,
        spec.user(0),
        super::measure::WARM_UP,
        spec.trail,
        super::DEEP_PAGE,
        super::DEEP_PAGE - 1,
        run.figures.iter().filter_map(|f| f.samples.as_ref().ok()).map(|s| s.values_ms.len()).max().unwrap_or(0),
        super::LOGGED_REQUESTS,
    );
    let light = spec.users - spec.heavy_users;
    let _ = writeln!(
        out,
        "**Data** (`bench/src/scale/data.rs`, seed {}, built with the project's own types and rules so that \
         every row is what the functions write): {} tasks of {} users, {} of them with {} tasks each and the \
         other {} with {} to {}; titles and descriptions of words from a vocabulary of 120 (`q={}` is in about \
         one task in ten, `q={}` in none), 0 to 3 of 12 tags, four priorities, 60 % with a due time (from a \
         year ago to ten months ahead), 30 % completed, created and updated over the past year. {} audit \
         entries: one per task version as audit-writer records them (most tasks at version 1 or 2; one task of \
         `{}` at version {}). {} reminder records in `todo_state` as fire-reminder keeps them ({} scheduled, {} \
         fired, {} cancelled) and {} webhook delivery records in `todo_deliveries` ({} retrying). No outbox \
         records: every event has been published.\n",
        spec.seed,
        thousands(run.rows.tasks),
        thousands(spec.users),
        spec.heavy_users,
        thousands(spec.heavy_tasks),
        thousands(light),
        run.users_light.0,
        run.users_light.1,
        super::data::Q_HIT,
        super::data::Q_MISS,
        thousands(run.rows.audit),
        spec.user(0),
        spec.trail,
        thousands(run.rows.reminders_scheduled + run.rows.reminders_fired + run.rows.reminders_cancelled),
        thousands(run.rows.reminders_scheduled),
        thousands(run.rows.reminders_fired),
        thousands(run.rows.reminders_cancelled),
        thousands(run.rows.deliveries),
        thousands(run.rows.deliveries_retrying),
    );
    let indexes = |list: &[String]| list.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ");
    if run.indexes_sql {
        let _ = writeln!(
            out,
            "**Indexes**: `manifests/base/postgres/indexes.sql`, applied after the load{}. Present while the \
             figures ran: {}.\n",
            if run.indexes_dropped.is_empty() {
                String::new()
            } else {
                format!(
                    " (the platform's start had built its {} indexes on the empty tables: they were dropped before \
                     the COPY and built again by the file on the loaded tables)",
                    run.indexes_dropped.len()
                )
            },
            indexes(&run.indexes_after),
        );
    } else {
        let _ = writeln!(
            out,
            "**Without indexes**: this commit has no `manifests/base/postgres/indexes.sql`, so the tables have only \
             what `roles.sql` gives them: {}. Every figure below is measured without indexes on the JSON fields.\n",
            indexes(&run.indexes_after)
        );
    }

    let _ = writeln!(out, "### Load: the bulk path\n");
    let _ = writeln!(
        out,
        "Each table is written by one `COPY <table> (key, value, isbinary, insertdate, updatedate) FROM STDIN` \
         through the platform's `psql`, in COPY's text format, while the functions are not yet running \
         (`bench/src/scale/copy.rs`): `key` with the store's prefix (`tasks||task:<id>`, \
         `audit||audit:<task id>:task:<task id>:v<version>`, `state||reminder:<task id>`, \
         `deliveries||delivery:<event id>:webhook`: `keyPrefix: name` in `dapr-components/`), `value` the JSON \
         the functions save (a task through `TaskStore::item`, with its `_order` keys), `isbinary` false, \
         `insertdate` and (for a row changed since) `updatedate` as `state.postgresql` v1 sets them. The rows \
         are generated while they are sent; the generation's share is in the last column.\n"
    );
    let mut rows: Vec<Vec<String>> = run
        .steps
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.rows.map_or(String::new(), thousands),
                s.bytes.map_or(String::new(), |b| format!("{:.0}", b as f64 / 1e6)),
                format!("{:.1}", s.secs),
                s.note.clone(),
            ]
        })
        .collect();
    let total: f64 = run.steps.iter().map(|s| s.secs).sum();
    rows.push(vec![
        "**the whole load**".into(),
        String::new(),
        String::new(),
        format!("**{total:.1}**"),
        String::new(),
    ]);
    report::table(&mut out, &["step", "rows", "MB sent", "s", ""], &rows);
    let sizes: Vec<String> = run.table_sizes.iter().map(|(t, b)| format!("`{t}` {:.2} GB", *b as f64 / 1e9)).collect();
    let idle = run.idle_postgres_cpu.map_or(String::new(), |share| {
        format!(
            " With nothing asked of it, PostgreSQL then used {share:.1} % of one core ({} s read from `/proc`: the \
             outbox relay's query every 2 s, and whatever else runs in the background).",
            super::IDLE_SECS
        )
    });
    let _ = writeln!(
        out,
        "Sizes after the load (heap, TOAST and indexes): {}. The six functions and their sidecars then started \
         on the loaded database in {:.1} s.{idle}\n",
        sizes.join(", "),
        run.functions_start_secs
    );

    let _ = writeln!(
        out,
        "### Requests (ms): `{}`, who has {} tasks, unless the row names other users\n",
        spec.user(0),
        thousands(spec.heavy_tasks)
    );
    let rows: Vec<Vec<String>> = run.figures.iter().map(figure_row).collect();
    report::table(
        &mut out,
        &["request", "samples", "p50", "p95", "p99", "max", "target p95", "", "in PostgreSQL (statements)"],
        &rows,
    );
    let missed: Vec<&str> = run
        .figures
        .iter()
        .filter(|f| match (&f.samples, f.target_p95_ms) {
            (Ok(s), Some(t)) => percentile(&s.values_ms, 95.0).is_some_and(|p| p > t),
            (Err(_), Some(_)) => true,
            _ => false,
        })
        .map(|f| f.name.as_str())
        .collect();
    let with_target = run.figures.iter().filter(|f| f.target_p95_ms.is_some()).count();
    if missed.is_empty() {
        let _ = writeln!(out, "Every target met ({with_target} figures).\n");
    } else {
        let _ = writeln!(out, "**{} of {with_target} targets missed** (or not measured).\n", missed.len());
    }
    let slow: Vec<String> = run
        .figures
        .iter()
        .filter_map(|f| {
            let p = f.in_postgres.as_ref()?;
            (!p.slowest.is_empty()).then(|| format!("- {}: `{}`", f.name, p.slowest.replace('`', "'")))
        })
        .collect();
    if !slow.is_empty() {
        let _ = writeln!(out, "The slowest statement PostgreSQL logged for each (shortened):\n\n{}\n", slow.join("\n"));
    }

    let _ = writeln!(out, "### PostgreSQL queries at this scale (`EXPLAIN (ANALYZE, BUFFERS)`, ms)\n");
    let _ = writeln!(
        out,
        "Run with `psql` beside the running system, as the role that runs them in production (KEDA's \
         `keda_reminders`; the relay as daprd's user), {} times after one untimed run: the median with the range. \
         The relay's query is the one daprd builds for `dapr_fn::outbox`'s relay (components-contrib v1.18.3 \
         `postgresql_query.go`); the KEDA queries are read from `keda/fire-reminder.yaml` and \
         `keda/notifier.yaml`.\n",
        super::EXPLAIN_RUNS
    );
    let rows: Vec<Vec<String>> = run.queries.iter().map(query_row).collect();
    report::table(&mut out, &["query", "as", "returns", "plan", "planning", "execution"], &rows);
    for q in &run.queries {
        let _ = writeln!(
            out,
            "- {}: `{}`",
            q.name,
            q.sql.split_whitespace().collect::<Vec<_>>().join(" ").replace('`', "'")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn run() -> ScaleRun {
        use super::super::explain::Explained;
        use super::super::{Rows, Step};
        let samples = |ms: f64| Ok(super::super::measure::Samples { values_ms: vec![ms; 20], ..Default::default() });
        let figure = |name: &str, target: Option<f64>, ms: f64| Figure {
            name: name.to_owned(),
            user: "heavy-00".to_owned(),
            request: "/v1/tasks".to_owned(),
            target_p95_ms: target,
            samples: samples(ms),
            in_postgres: Some(InPostgres { statements: 2, ms: 3.25, slowest: "SELECT `x`".to_owned() }),
        };
        let explained = |ms: f64| Explained {
            planning_ms: 0.2,
            execution_ms: ms,
            rows: 0,
            scans: vec!["Seq Scan on todo_tasks".to_owned()],
            read_blocks: 0,
            hit_blocks: 0,
        };
        ScaleRun {
            spec: super::super::data::Spec {
                tasks: 1_000_000,
                users: 10_000,
                heavy_users: 10,
                heavy_tasks: 10_000,
                trail: 100,
                seed: 17,
            },
            started: "2026-12-07T10:00:00Z".parse().unwrap(),
            commit: "`abc1234` (list: x)".to_owned(),
            machine: "a machine".to_owned(),
            versions: "Dapr 1.18.2".to_owned(),
            postgres_settings: "PostgreSQL 15".to_owned(),
            speeds: vec![("before".to_owned(), 500.0)],
            users_light: (54, 127),
            rows: Rows { tasks: 1_000_000, audit: 1_250_000, ..Rows::default() },
            indexes_after: vec!["todo_tasks: todo_tasks_pkey".to_owned()],
            indexes_sql: false,
            indexes_dropped: vec![],
            steps: vec![Step {
                name: "`COPY todo_tasks FROM STDIN`".to_owned(),
                rows: Some(1_000_000),
                bytes: Some(900_000_000),
                secs: 61.25,
                note: String::new(),
            }],
            table_sizes: vec![("todo_tasks".to_owned(), 1_500_000_000)],
            functions_start_secs: 2.0,
            idle_postgres_cpu: Some(37.4),
            figures: vec![
                figure("list page 1", Some(50.0), 40.0),
                figure("GET", Some(10.0), 12.0),
                Figure { samples: Err("boom | bang".to_owned()), ..figure("audit", Some(20.0), 0.0) },
                figure("typical", None, 5.0),
            ],
            queries: vec![Query {
                name: "relay".to_owned(),
                sql: "SELECT\n  1".to_owned(),
                role: "postgres".to_owned(),
                result: None,
                runs: Ok(vec![explained(300.0), explained(310.0), explained(290.0)]),
            }],
            total_secs: 900.0,
        }
    }

    #[test]
    fn the_section_has_each_figure_against_its_target() {
        let out = section(&run());
        assert!(
            out.starts_with("## 1M tasks\n\nWritten by `make bench-scale` on 2026-12-07 10:00 UTC at commit `abc1234`"),
            "{out}"
        );
        assert!(out.contains("| list page 1 | 20 | 40.0 | 40.0 | 40.0 | 40.0 | ≤ 50 | met | 3.2 (2) |"), "{out}");
        assert!(out.contains("| GET | 20 | 12.0 | 12.0 | 12.0 | 12.0 | ≤ 10 | **missed** |"), "{out}");
        assert!(out.contains("| audit | failed: boom / bang |"), "{out}");
        assert!(out.contains("| typical | 20 | 5.0 | 5.0 | 5.0 | 5.0 | none | – |"), "{out}");
        assert!(out.contains("**2 of 3 targets missed** (or not measured)."), "{out}");
        assert!(out.contains("**Without indexes**"), "{out}");
        assert!(out.contains("| `COPY todo_tasks FROM STDIN` | 1,000,000 | 900 | 61.2 |"), "{out}");
        assert!(
            out.contains(
                "| relay | `postgres` | 0 rows | `Seq Scan on todo_tasks` | 0.200 | 300.000 (290.000–310.000) |"
            ),
            "{out}"
        );
        assert!(out.contains("- relay: `SELECT 1`"), "{out}");
        assert!(out.contains("PostgreSQL then used 37.4 % of one core"), "{out}");
        assert!(out.contains("- GET: `SELECT 'x'`"), "{out}");
        assert!(out.contains(
            "1,000,000 tasks of 10,000 users, 10 of them with 10,000 tasks each and the other 9,990 with 54 to 127"
        ));
        let mut indexed = run();
        indexed.indexes_sql = true;
        indexed.indexes_dropped = vec!["a".into(), "b".into()];
        assert!(section(&indexed).contains(
            "**Indexes**: `manifests/base/postgres/indexes.sql`, applied after the load (the platform's start had built its 2"
        ));
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }

    #[test]
    fn the_statement_log_is_summed_without_the_relay() {
        let log = "\
2026-12-06 21:00:00.100 UTC [42] LOG:  duration: 0.200 ms  parse stmtcache_1: SELECT key, value FROM todo_tasks WHERE value->>'owner'=$1
2026-12-06 21:00:00.101 UTC [42] LOG:  duration: 0.300 ms  bind stmtcache_1: SELECT key, value FROM todo_tasks WHERE value->>'owner'=$1
2026-12-06 21:00:00.120 UTC [42] LOG:  duration: 12.500 ms  execute stmtcache_1: SELECT key, value FROM todo_tasks WHERE value->>'owner'=$1
2026-12-06 21:00:00.120 UTC [42] DETAIL:  parameters: $1 = 'heavy-00'
2026-12-06 21:00:00.130 UTC [43] LOG:  duration: 400.000 ms  execute <unnamed>: SELECT key FROM todo_tasks WHERE value->>'outbox_record'=$1
2026-12-06 21:00:00.140 UTC [42] LOG:  duration: 0.050 ms  statement: COMMIT
2026-12-06 21:00:00.150 UTC [42] LOG:  duration: 0.900 ms  execute stmtcache_2: SELECT
\t  key, value
\tFROM todo_tasks
2026-12-06 21:00:00.150 UTC [42] DETAIL:  parameters: $1 = 'tasks||task:1'
2026-12-06 21:00:00.150 UTC [42] LOG:  checkpoint starting: time
";
        let p = statements(log);
        assert_eq!(p.statements, 3);
        assert!((p.ms - 13.95).abs() < 1e-9, "{p:?}");
        assert_eq!(p.slowest, "SELECT key, value FROM todo_tasks WHERE value->>'owner'=$1");
        assert_eq!(statements(""), InPostgres { statements: 0, ms: 0.0, slowest: String::new() });
        let get = log.lines().skip(6).collect::<Vec<_>>().join("\n");
        assert_eq!(statements(&get).slowest, "SELECT key, value FROM todo_tasks");
    }
}
