//! The kafka-topics Job's committed offsets, on real Kafka (issue 15, part 4).
//!
//! For a consumer group with no committed offset on a partition, KEDA's Kafka scaler
//! (`offsetResetPolicy: earliest`) counts the partition's log-end offset as lag, including
//! messages retention already deleted; the function wakes, finds nothing, commits nothing and
//! stays awake (reproduced on this platform: docs/deploy.md). The Job
//! (`manifests/base/kafka-topics/create-topics.sh`, run here as the deploy runs it, with Kafka's
//! own command-line tools) gives every group of `consumers.txt` the earliest retained offset on
//! each partition where it has none, so KEDA's lag is what is really left to read. This test
//! shows, against a real broker:
//! - a group whose offsets are gone (never committed, or expired after
//!   `offsets.retention.minutes`) on a partition that retention emptied lags by the whole log
//!   end before the Job, and by nothing after it;
//! - a partition the group has committed on keeps its offset (nothing is skipped or replayed);
//! - a second run changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, ensure};
use system_tests::host::Setup;
use system_tests::platform::{Options, Paths, Platform};
use system_tests::workspace_root;

/// Kafka's command-line tools as the Job's image has them (`kafka-topics.sh`, ...), as scripts
/// that run the tools' classes from the platform's jars.
fn kafka_bin(dir: &Path, libs: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, class) in [
        ("kafka-topics.sh", "org.apache.kafka.tools.TopicCommand"),
        ("kafka-consumer-groups.sh", "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"),
        ("kafka-console-producer.sh", "org.apache.kafka.tools.ConsoleProducer"),
        ("kafka-delete-records.sh", "org.apache.kafka.tools.DeleteRecordsCommand"),
    ] {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nexec java -Xshare:auto -XX:TieredStopAtLevel=1 -cp '{}/*' {class} \"$@\"\n",
                libs.display()
            ),
        )?;
        Command::new("chmod").arg("+x").arg(&path).status()?;
    }
    Ok(())
}

/// Runs one of the tools; its stdout, or an error with its output.
fn tool(bin: &Path, name: &str, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    use std::io::Write as _;
    let mut child = Command::new(bin.join(name))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {name}"))?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.unwrap_or_default().as_bytes())?;
    }
    let output = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(output.status.success(), "{name} {args:?} failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    Ok(stdout)
}

/// The Job's script, as the deploy runs it, against `bootstrap`; its output.
fn run_job(bin: &Path, bootstrap: &str) -> anyhow::Result<String> {
    let script = workspace_root().join("manifests/base/kafka-topics/create-topics.sh");
    let output = Command::new("sh")
        .arg(&script)
        .env("KAFKA_BIN", bin)
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .env("KAFKA_REPLICATION_FACTOR", "1")
        .output()
        .context("running create-topics.sh")?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(output.status.success(), "create-topics.sh failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    Ok(stdout)
}

/// Per partition of `topic`: (committed offset of `group`, or None, log-end offset), from
/// `kafka-consumer-groups --describe` (whose rows list only partitions the group knows).
fn offsets(bin: &Path, bootstrap: &str, group: &str, topic: &str) -> anyhow::Result<BTreeMap<u32, (Option<i64>, i64)>> {
    let out =
        tool(bin, "kafka-consumer-groups.sh", &["--bootstrap-server", bootstrap, "--describe", "--group", group], None)
            .unwrap_or_default();
    Ok(out
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() >= 5 && f[1] == topic).then(|| {
                let partition = f[2].parse().ok()?;
                let end = f[4].parse().ok()?;
                Some((partition, (f[3].parse().ok(), end)))
            })?
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topics_job_gives_every_group_a_committed_offset_so_expired_messages_wake_nothing() -> anyhow::Result<()> {
    let setup = Setup::new(&[])?;
    let dir = Platform::fresh_dir("kafka-offsets")?;
    let platform = Platform::start(&setup.run_file, &dir, Options { no_functions: true, ..Options::default() }).await?;
    let bootstrap = platform.kafka_bootstrap();
    let bin = dir.join("kafka-bin");
    kafka_bin(&bin, &Paths::load()?.kafka_libs)?;

    // task-create: four requests, then deleted as retention would delete them. create-task never
    // ran, so its group has no offset there: KEDA would count the log end, 4 in all.
    let lines = (0..4).map(|i| format!("request-{i}")).collect::<Vec<_>>().join("\n");
    tool(
        &bin,
        "kafka-console-producer.sh",
        &["--bootstrap-server", &bootstrap, "--topic", "task-create"],
        Some(&lines),
    )?;
    let ends = platform.kafka().await?.end_offsets("task-create").await?;
    let written: i64 = ends.values().sum();
    ensure!(written == 4, "4 records written to task-create, the ends say {ends:?}");
    let deletions: Vec<String> = ends
        .iter()
        .filter(|(_, end)| **end > 0)
        .map(|(p, end)| format!(r#"{{"topic": "task-create", "partition": {p}, "offset": {end}}}"#))
        .collect();
    let offsets_file = dir.join("delete.json");
    std::fs::write(&offsets_file, format!(r#"{{"version": 1, "partitions": [{}]}}"#, deletions.join(", ")))?;
    tool(
        &bin,
        "kafka-delete-records.sh",
        &["--bootstrap-server", &bootstrap, "--offset-json-file", offsets_file.to_str().unwrap()],
        None,
    )?;

    // task-events: audit-writer has read everything (committed the log end of every partition,
    // past the earliest offset where records were written); that must stay as it is.
    tool(
        &bin,
        "kafka-console-producer.sh",
        &["--bootstrap-server", &bootstrap, "--topic", "task-events"],
        Some("a\nb\nc"),
    )?;
    tool(
        &bin,
        "kafka-consumer-groups.sh",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--group",
            "audit-writer",
            "--topic",
            "task-events",
            "--reset-offsets",
            "--to-latest",
            "--execute",
        ],
        None,
    )?;
    let audit_before = offsets(&bin, &bootstrap, "audit-writer", "task-events")?;
    ensure!(
        audit_before.values().any(|(committed, _)| committed.is_some_and(|c| c > 0)),
        "audit-writer has read past the start of some partition: {audit_before:?}"
    );
    let before = offsets(&bin, &bootstrap, "create-task", "task-create")?;
    ensure!(
        before.values().all(|(committed, _)| committed.is_none()),
        "create-task has committed nothing yet: {before:?}"
    );

    let first = run_job(&bin, &bootstrap)?;
    let create_task = offsets(&bin, &bootstrap, "create-task", "task-create")?;
    ensure!(
        create_task.len() == ends.len(),
        "create-task has an offset on every partition of task-create: {create_task:?}\n{first}"
    );
    for (partition, (committed, end)) in &create_task {
        // KEDA's lag for the partition is now end - committed: nothing, although the log end is 4.
        ensure!(
            *committed == Some(*end),
            "create-task on task-create:{partition}: committed {committed:?}, log end {end}\n{first}"
        );
    }
    let audit = offsets(&bin, &bootstrap, "audit-writer", "task-events")?;
    ensure!(audit == audit_before, "audit-writer keeps its committed offsets: {audit_before:?} -> {audit:?}");
    for group in ["on-task-completed", "fire-reminder"] {
        let got = offsets(&bin, &bootstrap, group, "task-events")?;
        ensure!(
            got.len() == 6 && got.values().all(|(c, _)| *c == Some(0)),
            "{group} starts at the earliest offset: {got:?}"
        );
    }

    let second = run_job(&bin, &bootstrap)?;
    ensure!(
        second.contains("group create-task: committed on every partition of task-create"),
        "a second run finds everything committed:\n{second}"
    );
    ensure!(offsets(&bin, &bootstrap, "create-task", "task-create")? == create_task, "a second run changes nothing");
    Ok(())
}
