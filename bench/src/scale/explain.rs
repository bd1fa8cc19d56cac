//! PostgreSQL's own timing of a query: `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`, read into
//! its planning and execution times and the way it read each table.

use anyhow::{Context as _, bail};
use serde_json::Value;

/// One `EXPLAIN ANALYZE` of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Explained {
    pub planning_ms: f64,
    pub execution_ms: f64,
    /// Rows the top node returned.
    pub rows: u64,
    /// How each table was read: `Seq Scan on todo_tasks`, `Index Scan using x on todo_state`.
    pub scans: Vec<String>,
    /// Blocks read from outside shared buffers (the OS cache or the disk).
    pub read_blocks: u64,
    pub hit_blocks: u64,
}

/// The `EXPLAIN` statement for `sql`.
pub fn statement(sql: &str) -> String {
    format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}")
}

/// Reads the JSON `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` printed.
pub fn parse(output: &str) -> anyhow::Result<Explained> {
    let json: Value = serde_json::from_str(output.trim()).with_context(|| format!("EXPLAIN output: {output}"))?;
    let top = json.get(0).context("EXPLAIN printed no plan")?;
    let plan = top.get("Plan").context("no Plan")?;
    let ms = |name: &str| top.get(name).and_then(Value::as_f64).with_context(|| format!("no {name}"));
    let mut scans = Vec::new();
    collect_scans(plan, &mut scans);
    let blocks = |name: &str| plan.get(name).and_then(Value::as_u64).unwrap_or(0);
    if scans.is_empty() {
        bail!("a plan that reads no table: {plan}");
    }
    Ok(Explained {
        planning_ms: ms("Planning Time")?,
        execution_ms: ms("Execution Time")?,
        rows: plan.get("Actual Rows").and_then(Value::as_u64).unwrap_or(0),
        scans,
        read_blocks: blocks("Shared Read Blocks"),
        hit_blocks: blocks("Shared Hit Blocks"),
    })
}

fn collect_scans(node: &Value, out: &mut Vec<String>) {
    let kind = node.get("Node Type").and_then(Value::as_str).unwrap_or_default();
    if let Some(table) = node.get("Relation Name").and_then(Value::as_str) {
        let scan = match node.get("Index Name").and_then(Value::as_str) {
            Some(index) => format!("{kind} using {index} on {table}"),
            None => format!("{kind} on {table}"),
        };
        if !out.contains(&scan) {
            out.push(scan);
        }
    } else if kind == "Bitmap Index Scan"
        && let Some(index) = node.get("Index Name").and_then(Value::as_str)
    {
        let scan = format!("{kind} on {index}");
        if !out.contains(&scan) {
            out.push(scan);
        }
    }
    for child in node.get("Plans").and_then(Value::as_array).into_iter().flatten() {
        collect_scans(child, out);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn reads_times_rows_and_scans() {
        let output = r#"[
  {
    "Plan": {
      "Node Type": "Aggregate", "Actual Rows": 1, "Shared Hit Blocks": 12, "Shared Read Blocks": 3400,
      "Plans": [
        {"Node Type": "Seq Scan", "Relation Name": "todo_state", "Actual Rows": 7},
        {"Node Type": "Bitmap Heap Scan", "Relation Name": "todo_tasks",
         "Plans": [{"Node Type": "Bitmap Index Scan", "Index Name": "todo_tasks_owner"}]},
        {"Node Type": "Index Scan", "Relation Name": "todo_audit", "Index Name": "todo_audit_pkey"}
      ]
    },
    "Planning Time": 0.123,
    "Triggers": [],
    "Execution Time": 456.789
  }
]"#;
        let e = parse(output).unwrap();
        assert_eq!((e.planning_ms, e.execution_ms, e.rows), (0.123, 456.789, 1));
        assert_eq!((e.hit_blocks, e.read_blocks), (12, 3400));
        assert_eq!(
            e.scans,
            [
                "Seq Scan on todo_state",
                "Bitmap Heap Scan on todo_tasks",
                "Bitmap Index Scan on todo_tasks_owner",
                "Index Scan using todo_audit_pkey on todo_audit"
            ]
        );
        assert!(parse("ERROR").is_err());
        assert!(parse(r#"[{"Plan": {"Node Type": "Result"}, "Planning Time": 1, "Execution Time": 2}]"#).is_err());
    }
}
