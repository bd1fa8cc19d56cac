//! The bulk path: rows streamed into `COPY <table> (...) FROM STDIN` through the platform's
//! own `psql` (no PostgreSQL client library in the workspace), in COPY's text format.
//!
//! Each row is what `state.postgresql` v1 writes for a first save: `key` is the store's
//! `keyPrefix: name` (`tasks||task:<id>`), `value` the JSON the sidecar got (stored as jsonb),
//! `isbinary` false, `insertdate` when it was saved; `updatedate` is set by v1 on every save
//! after the first, so a row of a task changed since its creation has one.

use std::io::{BufWriter, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use dapr_fn::dapr::SaveItem;

/// The columns every load writes (`expiredate` stays NULL, `row_id` takes its default).
const COLUMNS: &str = "key, value, isbinary, insertdate, updatedate";

/// Appends `field` to `out` escaped for COPY's text format: backslash, and the tab, newline and
/// carriage return that would end a column or a row. (serde_json escapes control characters in
/// strings, so JSON text has backslashes but never raw newlines; keys have neither.)
pub fn escape_into(out: &mut String, field: &str) {
    for c in field.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// One row of `store`'s table for `item`, newline-terminated.
pub fn row(store: &str, item: &SaveItem, inserted: DateTime<Utc>, updated: Option<DateTime<Utc>>) -> String {
    let value = item.value.to_string();
    let mut out = String::with_capacity(value.len() + item.key.len() + 80);
    escape_into(&mut out, &format!("{store}||{}", item.key));
    out.push('\t');
    escape_into(&mut out, &value);
    out.push_str("\tf\t");
    out.push_str(&inserted.to_rfc3339_opts(SecondsFormat::Micros, true));
    out.push('\t');
    match updated {
        Some(at) => out.push_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true)),
        None => out.push_str("\\N"),
    }
    out.push('\n');
    out
}

/// A `COPY ... FROM STDIN` in progress: rows go to `psql`'s standard input.
#[derive(Debug)]
pub struct CopyIn {
    table: String,
    child: Child,
    stdin: Option<BufWriter<ChildStdin>>,
    rows: u64,
    bytes: u64,
    started: Instant,
    /// Time spent building rows (generation and JSON), inside [`CopyIn::elapsed`].
    pub generating: Duration,
}

/// What one COPY loaded.
#[derive(Debug, Clone)]
pub struct Copied {
    pub table: String,
    pub rows: u64,
    pub bytes: u64,
    /// From starting `psql` to its exit (the COPY committed), generation included.
    pub elapsed: Duration,
    pub generating: Duration,
}

impl CopyIn {
    pub fn start(psql: &Path, url: &str, table: &str) -> anyhow::Result<Self> {
        let sql = format!("COPY {table} ({COLUMNS}) FROM STDIN");
        let child = Command::new(psql)
            .args(["-X", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", &sql])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", psql.display()))?;
        let mut copy = Self {
            table: table.to_owned(),
            child,
            stdin: None,
            rows: 0,
            bytes: 0,
            started: Instant::now(),
            generating: Duration::ZERO,
        };
        let stdin = copy.child.stdin.take().context("psql's standard input")?;
        copy.stdin = Some(BufWriter::with_capacity(1 << 20, stdin));
        Ok(copy)
    }

    pub fn write(&mut self, row: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("the COPY is finished")?;
        if let Err(error) = stdin.write_all(row.as_bytes()) {
            // psql stopped reading: its error says why.
            let stderr = self.stderr();
            bail!("COPY {}: {error}: {stderr}", self.table);
        }
        self.rows += 1;
        self.bytes += row.len() as u64;
        Ok(())
    }

    fn stderr(&mut self) -> String {
        let _ = self.child.kill();
        let mut text = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut text);
        }
        text.trim().to_owned()
    }

    /// Ends the data, waits for the COPY to commit, and checks that PostgreSQL counted every row.
    pub fn finish(mut self) -> anyhow::Result<Copied> {
        if let Some(mut stdin) = self.stdin.take() {
            stdin.flush().with_context(|| format!("COPY {}", self.table))?;
        }
        let output = self.child.wait_with_output().context("waiting for psql")?;
        let elapsed = self.started.elapsed();
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!("COPY {}: {}", self.table, String::from_utf8_lossy(&output.stderr).trim());
        }
        let counted: Option<u64> = stdout.trim().strip_prefix("COPY ").and_then(|n| n.parse().ok());
        if counted != Some(self.rows) {
            bail!("COPY {}: sent {} rows, psql answered {stdout:?}", self.table, self.rows);
        }
        Ok(Copied { table: self.table, rows: self.rows, bytes: self.bytes, elapsed, generating: self.generating })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn text_format_escapes_what_would_end_a_column_or_row() {
        let mut out = String::new();
        escape_into(&mut out, "a\\b\tc\nd\re \"f\"");
        assert_eq!(out, "a\\\\b\\tc\\nd\\re \"f\"");
    }

    #[test]
    fn a_row_is_the_prefixed_key_the_json_and_the_dates() {
        let item = SaveItem::new("task:1", &json!({"title": "a\nb", "path": "c:\\d"})).unwrap();
        let at: DateTime<Utc> = "2026-12-06T12:00:00.5Z".parse().unwrap();
        assert_eq!(
            row("tasks", &item, at, None),
            "tasks||task:1\t{\"path\":\"c:\\\\\\\\d\",\"title\":\"a\\\\nb\"}\tf\t2026-12-06T12:00:00.500000Z\t\\N\n"
        );
        assert!(row("tasks", &item, at, Some(at)).ends_with("\t2026-12-06T12:00:00.500000Z\n"));
    }
}
