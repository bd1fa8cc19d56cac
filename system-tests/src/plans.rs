//! The SQL daprd really sends to PostgreSQL, read back from PostgreSQL's statement log, and what
//! PostgreSQL's plans for it use (`tests/query_plans.rs`, `manifests/base/postgres/indexes.sql`).
//!
//! The log is the one [`crate::platform::Options::log_statements`] turns on: `log_statement=all`
//! with the line prefix `%m [%p] ` (time, backend pid). daprd's `state.postgresql` v1 runs every
//! query as a prepared statement (pgx's default statement cache), which PostgreSQL logs as
//!
//! ```text
//! 2026-05-01 10:00:00.123 UTC [4242] LOG:  execute stmtcache_3f…: SELECT key, value, xmin as etag FROM todo_audit WHERE (value->>'task_id'=$1 AND value->>'owner'=$2) ORDER BY value->>'event_id' ASC LIMIT 100
//! 2026-05-01 10:00:00.123 UTC [4242] DETAIL:  parameters: $1 = '0199…', $2 = 'alice'
//! ```
//!
//! and a simple query (psql, KEDA) as `LOG:  statement: <sql>`. The lines of one message after
//! its first start with a tab. Everything here is a pure function of text or JSON, tested below.

use serde_json::Value;

/// One statement a backend ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The backend's process id, from the line prefix.
    pub pid: u32,
    /// The prepared statement's name (`stmtcache_…`, `<unnamed>`); `None` for a simple query.
    pub prepared: Option<String>,
    pub sql: String,
    /// `$1`, `$2`, … in order; `None` for NULL.
    pub params: Vec<Option<String>>,
}

/// A line's prefix split off: (pid, severity, message).
fn split_line(line: &str) -> Option<(u32, &str, &str)> {
    let open = line.find(" [")?;
    let rest = &line[open + 2..];
    let close = rest.find("] ")?;
    let pid = rest[..close].parse().ok()?;
    let (severity, message) = rest[close + 2..].split_once(":  ")?;
    if severity.is_empty() || !severity.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
        return None;
    }
    Some((pid, severity, message))
}

/// The statements of a PostgreSQL log, in order, each with the parameters of its `DETAIL` line.
pub fn parse_log(log: &str) -> Vec<Statement> {
    let mut statements: Vec<Statement> = Vec::new();
    // Whether the message being read (and its continuation lines) is the last statement's text.
    let mut continuing = false;
    for line in log.lines() {
        if let Some(more) = line.strip_prefix('\t') {
            if continuing && let Some(last) = statements.last_mut() {
                last.sql.push('\n');
                last.sql.push_str(more);
            }
            continue;
        }
        continuing = false;
        let Some((pid, severity, message)) = split_line(line) else { continue };
        match severity {
            "LOG" => {
                let (prepared, sql) = if let Some(sql) = message.strip_prefix("statement: ") {
                    (None, sql)
                } else if let Some(rest) = message.strip_prefix("execute ") {
                    let Some((name, sql)) = rest.split_once(": ") else { continue };
                    (Some(name.to_owned()), sql)
                } else {
                    continue;
                };
                statements.push(Statement { pid, prepared, sql: sql.to_owned(), params: Vec::new() });
                continuing = true;
            }
            "DETAIL" => {
                let Some(list) = message.strip_prefix("parameters: ") else { continue };
                let Some(params) = parse_parameters(list) else { continue };
                // The execute this DETAIL belongs to: the same backend's latest one.
                if let Some(statement) = statements.iter_mut().rev().find(|s| s.pid == pid)
                    && statement.prepared.is_some()
                    && statement.params.is_empty()
                {
                    statement.params = params;
                }
            }
            _ => {}
        }
    }
    statements
}

/// `$1 = 'a', $2 = NULL, $3 = 'it''s'` → `[Some("a"), None, Some("it's")]`; `None` if the
/// text is not such a list (or numbers the parameters out of order).
pub fn parse_parameters(list: &str) -> Option<Vec<Option<String>>> {
    let mut params = Vec::new();
    let mut rest = list;
    loop {
        let expected = format!("${} = ", params.len() + 1);
        rest = rest.strip_prefix(expected.as_str())?;
        if let Some(after) = rest.strip_prefix("NULL") {
            params.push(None);
            rest = after;
        } else {
            let mut chars = rest.strip_prefix('\'')?.char_indices().peekable();
            let mut value = String::new();
            let end = loop {
                let (at, c) = chars.next()?;
                if c != '\'' {
                    value.push(c);
                } else if chars.peek().is_some_and(|(_, next)| *next == '\'') {
                    chars.next();
                    value.push('\'');
                } else {
                    break at + 1;
                }
            };
            params.push(Some(value));
            rest = &rest[1 + end..];
        }
        if rest.is_empty() {
            return Some(params);
        }
        rest = rest.strip_prefix(", ")?;
    }
}

/// `value` as an SQL literal: `'it''s'`, or `NULL`.
pub fn literal(value: Option<&str>) -> String {
    match value {
        Some(text) => format!("'{}'", text.replace('\'', "''")),
        None => "NULL".to_owned(),
    }
}

/// SQL that plans `sql` with `params` as daprd's prepared statement is planned: PREPARE without
/// parameter types (PostgreSQL infers them from the statement, as for pgx's Parse), then
/// `EXPLAIN (FORMAT JSON) EXECUTE`. Whether the plan is custom (for these values) or generic (for
/// any values, what PostgreSQL may switch to after five executions) is `plan_cache_mode`'s.
pub fn explain_prepared(sql: &str, params: &[Option<String>]) -> String {
    let execute = if params.is_empty() {
        "EXECUTE plan_probe".to_owned()
    } else {
        let args: Vec<String> = params.iter().map(|p| literal(p.as_deref())).collect();
        format!("EXECUTE plan_probe({})", args.join(", "))
    };
    format!("PREPARE plan_probe AS {sql}; EXPLAIN (FORMAT JSON) {execute}")
}

/// The Query API queries the functions send daprd, which must each be served by an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// task-api's GET /v1/tasks (`functions/task-api/src/routes/list.rs`).
    List,
    /// task-api's GET /v1/tasks/{id}/audit.
    Audit,
    /// The outbox relay (`shared/dapr-fn/src/outbox.rs`).
    Relay,
}

/// The table a statement reads: the word after ` FROM `.
fn table(sql: &str) -> Option<&str> {
    let (_, after) = sql.split_once(" FROM ")?;
    after.split_whitespace().next()
}

/// Which of the Query API queries `sql` is (state.postgresql v1 builds every one as
/// `SELECT key, value, <etag> as etag FROM <table> ...`); `None` for anything else.
pub fn classify(sql: &str) -> Option<Kind> {
    if !sql.starts_with("SELECT key, value, ") {
        return None;
    }
    match table(sql)? {
        "todo_tasks" if sql.contains("value->>'outbox_record'") => Some(Kind::Relay),
        "todo_tasks" if sql.contains("value->>'owner'") => Some(Kind::List),
        "todo_audit" if sql.contains("value->>'task_id'") => Some(Kind::Audit),
        _ => None,
    }
}

/// The order keys a task list sorts on (`todo_core::order`; `title` is the title group),
/// each with its index.
pub const ORDER_KEYS: [&str; 5] = ["created", "updated", "due", "priority", "title"];

/// The order key a list query sorts on first (`ORDER BY value->'_order'->>'<key>' ...`);
/// `None` when it sorts on something else (a title group read whole: the tie key and id).
pub fn order_key(sql: &str) -> Option<&'static str> {
    let (_, order) = sql.split_once(" ORDER BY ")?;
    let key = order.strip_prefix("value->'_order'->>'")?;
    let (key, _) = key.split_once('\'')?;
    ORDER_KEYS.into_iter().find(|known| *known == key)
}

/// The order keys a list query's WHERE compares (`value->'_order'->>'<key>' <op> $n`), in
/// [`ORDER_KEYS`] order: a due range, the keyset bound of the sort key.
pub fn filtered_order_keys(sql: &str) -> Vec<&'static str> {
    let Some((_, after_where)) = sql.split_once(" WHERE ") else { return Vec::new() };
    let filter = after_where.split_once(" ORDER BY ").map_or(after_where, |(filter, _)| filter);
    ORDER_KEYS.into_iter().filter(|key| filter.contains(&format!("value->'_order'->>'{key}'"))).collect()
}

/// An index that may serve a query, and what its `Index Cond` must then show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub index: String,
    /// Text the Index Cond must contain: for an owner index of a list, its second column as
    /// PostgreSQL prints it, which proves the query's expression is the index's (the owner
    /// column alone would be served by any of them).
    pub cond: Option<String>,
}

impl Expected {
    fn any(index: &str) -> Self {
        Self { index: index.to_owned(), cond: None }
    }
}

/// How EXPLAIN prints `value->'_order'->>'<key>'`.
pub fn printed_order_key(key: &str) -> String {
    format!("((value -> '_order'::text) ->> '{key}'::text)")
}

/// The indexes of `manifests/base/postgres/indexes.sql` that may serve `sql`: the one of its
/// kind; for a list, the owner index of its sort key or of an order key its WHERE ranges over
/// (a due range, a title group), used on that key; for a list on no order key at all, any
/// owner index (they all lead with the owner).
pub fn expected_indexes(kind: Kind, sql: &str) -> Vec<Expected> {
    match kind {
        Kind::Relay => vec![Expected::any("todo_tasks_outbox")],
        Kind::Audit => vec![Expected::any("todo_audit_task")],
        Kind::List => {
            let mut keys: Vec<&str> = order_key(sql).into_iter().collect();
            for key in filtered_order_keys(sql) {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            if keys.is_empty() {
                return ORDER_KEYS.iter().map(|key| Expected::any(&format!("todo_tasks_owner_{key}"))).collect();
            }
            keys.into_iter()
                .map(|key| Expected { index: format!("todo_tasks_owner_{key}"), cond: Some(printed_order_key(key)) })
                .collect()
        }
    }
}

/// One scan node of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// `Seq Scan`, `Index Scan`, `Index Only Scan`, `Bitmap Index Scan`, ...
    pub node: String,
    pub relation: Option<String>,
    pub index: Option<String>,
    /// The condition the index itself serves (`Index Cond`); `None` when the index is only
    /// read through (for its order, or for the rows of a partial index), every row filtered
    /// after.
    pub index_cond: Option<String>,
    /// An index read from its end (`Scan Direction: Backward`): a descending sort.
    pub backward: bool,
}

/// Every scan node of an `EXPLAIN (FORMAT JSON)` answer (`[{"Plan": {...}}]`), outermost first.
pub fn scans(explain: &Value) -> Vec<Scan> {
    fn walk(plan: &Value, into: &mut Vec<Scan>) {
        let node = plan["Node Type"].as_str().unwrap_or_default();
        if node.ends_with("Scan") {
            into.push(Scan {
                node: node.to_owned(),
                relation: plan["Relation Name"].as_str().map(str::to_owned),
                index: plan["Index Name"].as_str().map(str::to_owned),
                index_cond: plan["Index Cond"].as_str().map(str::to_owned),
                backward: plan["Scan Direction"] == "Backward",
            });
        }
        for child in plan["Plans"].as_array().into_iter().flatten() {
            walk(child, into);
        }
    }
    let mut found = Vec::new();
    for entry in explain.as_array().into_iter().flatten() {
        walk(&entry["Plan"], &mut found);
    }
    found
}

/// The scan of an expected index that serves a condition of the query (an Index, Index Only
/// or Bitmap Index Scan on one of `expected`, with an `Index Cond` showing what that expectation
/// asks), when the plan has one and no sequential scan anywhere; otherwise what the plan does
/// instead. An index only read through does not count: with sequential scans off, the planner
/// reads a whole index (or all the rows of a partial one) rather than the table when nothing
/// better matches. (A partial index whose predicate implied every condition of a query would
/// serve it with no Index Cond; none of `indexes.sql` is such.)
pub fn uses_index(explain: &Value, expected: &[Expected]) -> Result<Scan, String> {
    let scans = scans(explain);
    let seq = scans.iter().any(|s| s.node == "Seq Scan");
    let serves = |scan: &Scan, want: &Expected| {
        scan.index.as_deref() == Some(want.index.as_str())
            && scan.index_cond.as_deref().is_some_and(|cond| want.cond.as_deref().is_none_or(|c| cond.contains(c)))
    };
    match scans.iter().find(|scan| expected.iter().any(|want| serves(scan, want))) {
        Some(scan) if !seq => Ok(scan.clone()),
        _ => Err(format!(
            "expected a scan of {} with an Index Cond, and no Seq Scan; the plan's scans: {}",
            expected
                .iter()
                .map(|e| match &e.cond {
                    Some(cond) => format!("{} (on {cond})", e.index),
                    None => e.index.clone(),
                })
                .collect::<Vec<_>>()
                .join(" or "),
            scans.iter().map(Scan::to_string).collect::<Vec<_>>().join(", ")
        )),
    }
}

impl std::fmt::Display for Scan {
    /// `Index Scan using todo_audit_task on todo_audit (Index Cond: ...)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.node, if self.backward { " Backward" } else { "" })?;
        if let Some(index) = &self.index {
            write!(f, " using {index}")?;
        }
        if let Some(relation) = &self.relation {
            write!(f, " on {relation}")?;
        }
        if let Some(cond) = &self.index_cond {
            write!(f, " (Index Cond: {cond})")?;
        }
        Ok(())
    }
}

/// The JSON of psql's unaligned, tuples-only output of an EXPLAIN (FORMAT JSON): from the first
/// `[` on (anything psql printed before it is skipped).
pub fn explain_json(output: &str) -> Option<Value> {
    let start = output.find('[')?;
    serde_json::from_str(output[start..].trim()).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    const AUDIT: &str = "SELECT key, value, xmin as etag FROM todo_audit WHERE (value->>'task_id'=$1 AND value->>'owner'=$2) ORDER BY value->>'event_id' ASC LIMIT 100";

    #[test]
    fn an_execute_and_its_parameters_are_one_statement() {
        let log = format!(
            "2026-05-01 10:00:00.120 UTC [4242] LOG:  statement: BEGIN\n\
             2026-05-01 10:00:00.123 UTC [4242] LOG:  execute stmtcache_3fa9: {AUDIT}\n\
             2026-05-01 10:00:00.123 UTC [4242] DETAIL:  parameters: $1 = '0199-t', $2 = 'al''ice'\n\
             2026-05-01 10:00:00.200 UTC [77] LOG:  execute <unnamed>: SELECT 1\n"
        );
        let statements = parse_log(&log);
        assert_eq!(statements.len(), 3);
        assert_eq!(statements[0], Statement { pid: 4242, prepared: None, sql: "BEGIN".into(), params: vec![] });
        assert_eq!(statements[1].prepared.as_deref(), Some("stmtcache_3fa9"));
        assert_eq!(statements[1].sql, AUDIT);
        assert_eq!(statements[1].params, [Some("0199-t".to_owned()), Some("al'ice".to_owned())]);
        assert_eq!(statements[2].prepared.as_deref(), Some("<unnamed>"));
        assert!(statements[2].params.is_empty());
    }

    #[test]
    fn parameters_pair_by_backend_when_lines_interleave() {
        let log = "2026-05-01 10:00:00.1 UTC [1] LOG:  execute a: SELECT $1\n\
                   2026-05-01 10:00:00.1 UTC [2] LOG:  execute b: SELECT $1\n\
                   2026-05-01 10:00:00.1 UTC [1] DETAIL:  parameters: $1 = 'one'\n\
                   2026-05-01 10:00:00.1 UTC [2] DETAIL:  parameters: $1 = 'two'\n";
        let statements = parse_log(log);
        assert_eq!(statements[0].params, [Some("one".to_owned())]);
        assert_eq!(statements[1].params, [Some("two".to_owned())]);
    }

    #[test]
    fn continuation_lines_belong_to_the_statement_and_other_messages_are_skipped() {
        let log = "2026-05-01 10:00:00.1 UTC [1] LOG:  statement: SELECT count(*) FROM todo_state\n\
                   \tWHERE true\n\
                   2026-05-01 10:00:00.2 UTC [1] ERROR:  relation \"x\" does not exist\n\
                   \tat character 15\n\
                   2026-05-01 10:00:00.3 UTC [1] LOG:  checkpoint starting: time\n\
                   2026-05-01 10:00:00.4 UTC [1] DETAIL:  parameters: $1 = 'orphan'\n\
                   not a log line at all\n";
        let statements = parse_log(log);
        assert_eq!(statements.len(), 1);
        assert_eq!(statements[0].sql, "SELECT count(*) FROM todo_state\nWHERE true");
        assert!(statements[0].params.is_empty(), "a simple query takes no parameters");
    }

    #[test]
    fn parameter_lists() {
        assert_eq!(parse_parameters("$1 = 'v1'"), Some(vec![Some("v1".to_owned())]));
        assert_eq!(
            parse_parameters("$1 = '', $2 = NULL, $3 = 'a, $4 = ''b'''"),
            Some(vec![Some(String::new()), None, Some("a, $4 = 'b'".to_owned())])
        );
        assert_eq!(parse_parameters("$2 = 'x'"), None, "out of order");
        assert_eq!(parse_parameters("$1 = 'open"), None, "unterminated");
        assert_eq!(parse_parameters("$1 = 'a' $2 = 'b'"), None, "no separator");
    }

    #[test]
    fn literals_and_the_prepared_explain() {
        assert_eq!(literal(Some("it's")), "'it''s'");
        assert_eq!(literal(None), "NULL");
        assert_eq!(
            explain_prepared("SELECT $1, $2", &[Some("a".into()), None]),
            "PREPARE plan_probe AS SELECT $1, $2; EXPLAIN (FORMAT JSON) EXECUTE plan_probe('a', NULL)"
        );
        assert_eq!(
            explain_prepared("SELECT 1", &[]),
            "PREPARE plan_probe AS SELECT 1; EXPLAIN (FORMAT JSON) EXECUTE plan_probe"
        );
    }

    #[test]
    fn the_query_api_queries_are_told_apart() {
        let relay = "SELECT key, value, xmin as etag FROM todo_tasks WHERE value->>'outbox_record'=$1 ORDER BY value->>'written_at' ASC LIMIT 50";
        let list = "SELECT key, value, xmin as etag FROM todo_tasks WHERE (value->>'owner'=$1 AND value->>'status'=$2) ORDER BY value->'_order'->>'due' DESC, value->'_order'->>'tie' ASC, value->>'id' ASC LIMIT 21";
        let title = "SELECT key, value, xmin as etag FROM todo_tasks WHERE value->>'owner'=$1 ORDER BY value->>'id' ASC LIMIT 1000 OFFSET 1000";
        let group = "SELECT key, value, xmin as etag FROM todo_tasks WHERE (value->>'owner'=$1 AND value->'_order'->>'title'=$2) ORDER BY value->'_order'->>'tie' ASC, value->>'id' ASC LIMIT 2000";
        assert_eq!(classify(relay), Some(Kind::Relay));
        assert_eq!(classify(list), Some(Kind::List));
        assert_eq!(classify(title), Some(Kind::List));
        assert_eq!(classify(AUDIT), Some(Kind::Audit));
        assert_eq!(classify("SELECT key, value, xmin as etag FROM todo_state WHERE value->>'owner'=$1"), None);
        assert_eq!(classify("SELECT value FROM dapr_metadata.todo_tasks_metadata WHERE key = $1"), None);
        assert_eq!(classify(&format!("PREPARE plan_probe AS {AUDIT}")), None);

        assert_eq!(order_key(list), Some("due"));
        assert_eq!(order_key(title), None);
        let names = |kind, sql| expected_indexes(kind, sql).into_iter().map(|e| e.index).collect::<Vec<_>>();
        assert_eq!(
            expected_indexes(Kind::List, list),
            [Expected {
                index: "todo_tasks_owner_due".into(),
                cond: Some("((value -> '_order'::text) ->> 'due'::text)".into())
            }]
        );
        assert_eq!(names(Kind::List, title).len(), 5);
        assert_eq!(order_key(group), None, "the tie key is not an order key");
        assert_eq!(
            expected_indexes(Kind::List, group),
            [Expected {
                index: "todo_tasks_owner_title".into(),
                cond: Some("((value -> '_order'::text) ->> 'title'::text)".into())
            }]
        );
        assert!(expected_indexes(Kind::List, title).iter().all(|e| e.cond.is_none()));
        assert_eq!(names(Kind::Relay, relay), ["todo_tasks_outbox"]);
        assert_eq!(names(Kind::Audit, AUDIT), ["todo_audit_task"]);

        // A due range on a list sorted on another key: either index may serve it.
        let ranged = "SELECT key, value, xmin as etag FROM todo_tasks WHERE (value->>'owner'=$1 AND value->'_order'->>'due'>=$2 AND value->'_order'->>'created'>=$3 AND (value->'_order'->>'created'>$4 OR (value->'_order'->>'created'=$5 AND value->'_order'->>'tie'>=$6))) ORDER BY value->'_order'->>'created' ASC, value->'_order'->>'tie' ASC, value->>'id' ASC LIMIT 4";
        assert_eq!(filtered_order_keys(ranged), ["created", "due"], "tie is not an order key");
        assert_eq!(names(Kind::List, ranged), ["todo_tasks_owner_created", "todo_tasks_owner_due"]);
        assert_eq!(filtered_order_keys(title), Vec::<&str>::new());
    }

    fn plan(children: Value) -> Value {
        json!([{"Plan": {"Node Type": "Limit", "Plans": [{"Node Type": "Sort", "Plans": children}]}}])
    }

    #[test]
    fn a_plan_uses_the_expected_index_or_says_what_it_does() {
        let expected = vec![Expected::any("todo_audit_task")];
        let cond = "((value ->> 'task_id'::text) = $1)";
        let bitmap = plan(json!([{"Node Type": "Bitmap Heap Scan", "Relation Name": "todo_audit",
            "Plans": [{"Node Type": "Bitmap Index Scan", "Index Name": "todo_audit_task", "Index Cond": cond}]}]));
        let scan = uses_index(&bitmap, &expected).unwrap();
        assert_eq!((scan.node.as_str(), scan.index.as_deref()), ("Bitmap Index Scan", Some("todo_audit_task")));
        assert_eq!(scan.to_string(), format!("Bitmap Index Scan using todo_audit_task (Index Cond: {cond})"));
        let index = plan(json!([{"Node Type": "Index Scan", "Index Name": "todo_audit_task",
            "Relation Name": "todo_audit", "Index Cond": cond}]));
        assert_eq!(uses_index(&index, &expected).unwrap().relation.as_deref(), Some("todo_audit"));
        let backward = plan(json!([{"Node Type": "Index Scan", "Index Name": "todo_audit_task",
            "Scan Direction": "Backward", "Index Cond": cond}]));
        assert!(uses_index(&backward, &expected).unwrap().to_string().starts_with("Index Scan Backward using"));

        let pkey =
            plan(json!([{"Node Type": "Index Scan", "Index Name": "todo_audit_pkey", "Relation Name": "todo_audit"}]));
        let error = uses_index(&pkey, &expected).unwrap_err();
        assert!(error.contains("Index Scan using todo_audit_pkey on todo_audit"), "{error}");
        let through = plan(json!([{"Node Type": "Index Scan", "Index Name": "todo_audit_task",
            "Relation Name": "todo_audit", "Filter": "((value #>> '{task_id}'::text[]) = $1)"}]));
        assert!(uses_index(&through, &expected).is_err(), "the index read through, every row filtered");
        let seq = plan(json!([{"Node Type": "Seq Scan", "Relation Name": "todo_audit"}]));
        assert!(uses_index(&seq, &expected).unwrap_err().contains("Seq Scan on todo_audit"));
        let both = plan(json!([{"Node Type": "Nested Loop", "Plans": [
            {"Node Type": "Seq Scan", "Relation Name": "todo_audit"},
            {"Node Type": "Index Scan", "Index Name": "todo_audit_task", "Relation Name": "todo_audit",
                "Index Cond": cond}]}]));
        assert!(uses_index(&both, &expected).is_err(), "a sequential scan anywhere fails");
        assert_eq!(scans(&json!([])), []);
    }

    #[test]
    fn an_owner_index_counts_only_used_on_its_own_key() {
        let expected =
            vec![Expected { index: "todo_tasks_owner_created".into(), cond: Some(printed_order_key("created")) }];
        let owner_only = plan(json!([{"Node Type": "Index Scan Backward", "Index Name": "todo_tasks_owner_created",
            "Index Cond": "((value ->> 'owner'::text) = $1)"}]));
        let error = uses_index(&owner_only, &expected).unwrap_err();
        assert!(
            error.contains("todo_tasks_owner_created (on ((value -> '_order'::text) ->> 'created'::text))"),
            "{error}"
        );
        let keyed = plan(json!([{"Node Type": "Index Scan", "Index Name": "todo_tasks_owner_created",
            "Index Cond": "(((value ->> 'owner'::text) = $1) AND (((value -> '_order'::text) ->> 'created'::text) <= $2))"}]));
        assert!(uses_index(&keyed, &expected).is_ok());
    }

    #[test]
    fn explain_output_is_found_after_whatever_psql_printed() {
        assert_eq!(explain_json("[\n  {\"Plan\": {}}\n]"), Some(json!([{"Plan": {}}])));
        assert_eq!(explain_json("SET\n[{\"Plan\": {}}]\n"), Some(json!([{"Plan": {}}])));
        assert_eq!(explain_json("ERROR"), None);
    }
}
