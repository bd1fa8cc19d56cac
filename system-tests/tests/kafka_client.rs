//! `system_tests::kafka` against a real Apache Kafka broker (KRaft, one node) that the test starts
//! itself from the jars `make platform` fetched, with the console producer and consumer of the same
//! jars as the other side: topics from `topics.txt`, reading a topic back, and consumer lag
//! before and after a real consumer group commits.
//!
//! The broker test is compiled with the `platform` feature only (`make test-platform`), like
//! `tests/platform.rs`; the `topics.txt` parsing tests always run.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;

use system_tests::kafka::{TopicSpec, parse_topics_txt};
use system_tests::workspace_root;

fn topics_txt() -> String {
    let path = workspace_root().join("manifests/base/kafka-topics/topics.txt");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn topics_txt_parses() {
    let specs = parse_topics_txt(&topics_txt()).unwrap();
    let names: BTreeSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names.len(), specs.len(), "a topic is listed twice: {specs:?}");
    let events = specs.iter().find(|s| s.name == "task-events").expect("task-events is in topics.txt");
    assert!(events.partitions >= 1);
    let dlqs: Vec<&TopicSpec> = specs.iter().filter(|s| s.name.ends_with("-dlq")).collect();
    assert!(!dlqs.is_empty(), "no dead-letter topic in topics.txt");
    for dlq in dlqs {
        let retention = dlq.configs.iter().find(|(k, _)| k == "retention.ms");
        let retention = retention.unwrap_or_else(|| panic!("{} has no retention.ms", dlq.name));
        assert!(retention.1.parse::<u64>().is_ok_and(|ms| ms > 0), "{dlq:?}");
    }
}

#[test]
fn topics_txt_format() {
    let text = "# comment\n\n  a 2\nb\t1  x=1,y=a=b \n  # indented comment\nc 3 x=1 z=2\n";
    let spec = |name: &str, partitions, configs: &[(&str, &str)]| TopicSpec {
        name: name.into(),
        partitions,
        configs: configs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
    };
    assert_eq!(
        parse_topics_txt(text).unwrap(),
        [spec("a", 2, &[]), spec("b", 1, &[("x", "1"), ("y", "a=b")]), spec("c", 3, &[("x", "1"), ("z", "2")])]
    );
    for bad in ["a", "a x", "a 0", "a -1", "a 1 retention.ms"] {
        let error = parse_topics_txt(bad).unwrap_err().to_string();
        assert!(error.contains("line 1"), "{bad}: {error}");
    }
}
/// The broker test: needs the jars of `make platform`.
#[cfg(feature = "platform")]
mod broker {
    use std::collections::BTreeMap;
    use std::io::Write as _;
    use std::net::TcpListener;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use anyhow::{Context as _, Result, ensure};
    use system_tests::kafka::{Kafka, Lag, TopicSpec, parse_topics_txt};

    use super::topics_txt;

    const TOPIC: &str = "kafka-client-test";
    const GROUP: &str = "kafka-client-test-group";

    #[tokio::test]
    async fn admin_client_on_a_real_broker() -> Result<()> {
        let started = Instant::now();
        let broker = Broker::start()?;
        let kafka = broker.client().await?;
        eprintln!("broker ready after {:.1?}", started.elapsed());

        // topics.txt, then the same again: creation is idempotent and leaves existing topics as they are.
        let mut specs = parse_topics_txt(&topics_txt())?;
        specs.push(TopicSpec { name: TOPIC.into(), partitions: 3, configs: vec![] });
        kafka.create_topics(&specs).await?;
        kafka.create_topics(&specs).await.context("creating the topics a second time")?;
        let grown = specs.iter().map(|s| TopicSpec { partitions: s.partitions + 1, ..s.clone() }).collect::<Vec<_>>();
        kafka.create_topics(&grown[..1]).await?;
        let expected: BTreeMap<String, i32> = specs.iter().map(|s| (s.name.clone(), s.partitions)).collect();
        assert_eq!(kafka.topics().await?, expected);
        for spec in specs.iter().filter(|s| !s.configs.is_empty()) {
            let configs = kafka.topic_configs(&spec.name).await?;
            for (k, v) in &spec.configs {
                assert_eq!(configs.get(k), Some(v), "config {k} of {}", spec.name);
            }
        }

        // Nothing published yet: no lag, even for a group that does not exist.
        assert_eq!(kafka.lag_of(GROUP, &[TOPIC, "task-events"]).await?, [lag(TOPIC, 0), lag("task-events", 0)]);
        assert_eq!(kafka.messages(TOPIC).await?, []);

        // Seven keyed records with headers, through the Java producer.
        broker.produce(TOPIC, 0..7)?;
        let messages = kafka.messages(TOPIC).await?;
        assert_eq!(messages.len(), 7, "{messages:?}");
        let mut seen = BTreeMap::new();
        for m in &messages {
            let key = String::from_utf8(m.key.clone().context("a record without key")?)?;
            let i = key.strip_prefix("key-").context("unexpected key")?;
            assert_eq!(m.value.as_deref(), Some(format!("value-{i}").as_bytes()), "{m:?}");
            let headers = [("n".to_owned(), i.as_bytes().to_vec()), ("source".to_owned(), b"test".to_vec())];
            assert_eq!(m.headers, headers, "{m:?}");
            seen.entry(m.partition).or_insert_with(Vec::new).push(m.offset);
        }
        assert!(seen.len() > 1, "the keys should spread over the partitions: {seen:?}");
        for offsets in seen.values() {
            assert_eq!(*offsets, (0..offsets.len() as i64).collect::<Vec<_>>(), "offsets per partition: {seen:?}");
        }
        let ends = kafka.end_offsets(TOPIC).await?;
        assert_eq!(ends.keys().copied().collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(ends.values().sum::<i64>(), 7);

        // Before the group exists its lag is the whole log; lag() lists only existing groups.
        assert_eq!(kafka.lag_of(GROUP, &[TOPIC]).await?, [lag(TOPIC, 7)]);
        assert!(kafka.lag().await?.iter().all(|l| l.group != GROUP));

        // A real consumer group reads everything and commits: no lag left.
        broker.consume(TOPIC, GROUP, 7)?;
        assert_eq!(
            kafka.lag().await?.into_iter().filter(|l| l.group == GROUP).collect::<Vec<_>>(),
            [lag(TOPIC, 7 - 7)]
        );
        assert_eq!(kafka.lag_of(GROUP, &[TOPIC]).await?, [lag(TOPIC, 0)]);

        // Three more: the group lags by three; the topic reads ten.
        broker.produce(TOPIC, 7..10)?;
        assert_eq!(kafka.lag().await?.into_iter().filter(|l| l.group == GROUP).collect::<Vec<_>>(), [lag(TOPIC, 3)]);
        assert_eq!(kafka.messages(TOPIC).await?.len(), 10);
        eprintln!("test done after {:.1?}", started.elapsed());
        Ok(())
    }

    fn lag(topic: &str, lag: i64) -> Lag {
        Lag { group: GROUP.into(), topic: topic.into(), lag }
    }

    /// A one-node KRaft broker in a temporary folder, killed when dropped.
    struct Broker {
        libs: PathBuf,
        address: String,
        child: Child,
        dir: tempfile::TempDir,
    }

    impl Broker {
        fn start() -> Result<Broker> {
            let libs = system_tests::platform::Paths::load()?.kafka_libs;
            let dir = tempfile::tempdir()?;
            let (port, controller_port) = (free_port()?, free_port()?);
            let properties = dir.path().join("server.properties");
            std::fs::write(
                &properties,
                format!(
                    "process.roles=broker,controller\nnode.id=1\ncontroller.quorum.voters=1@127.0.0.1:{controller_port}\n\
                     listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}\n\
                     advertised.listeners=PLAINTEXT://127.0.0.1:{port}\ncontroller.listener.names=CONTROLLER\n\
                     inter.broker.listener.name=PLAINTEXT\nlistener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
                     log.dirs={}\noffsets.topic.replication.factor=1\ntransaction.state.log.replication.factor=1\n\
                     transaction.state.log.min.isr=1\nshare.coordinator.state.topic.replication.factor=1\n\
                     share.coordinator.state.topic.min.isr=1\ngroup.initial.rebalance.delay.ms=0\n\
                     auto.create.topics.enable=false\n",
                    dir.path().join("data").display()
                ),
            )?;
            // Any valid cluster id will do (StorageTool random-uuid would cost a JVM start).
            let format = java(&libs, "kafka.tools.StorageTool")
                .args(["format", "-t", "q1Sh-9_ISia_zwGINzRvyQ", "-c"])
                .arg(&properties)
                .output()?;
            ensure!(format.status.success(), "StorageTool format: {}", String::from_utf8_lossy(&format.stderr));
            let log = std::fs::File::create(dir.path().join("kafka.log"))?;
            let child = java(&libs, "kafka.Kafka")
                .arg(&properties)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting kafka.Kafka")?;
            Ok(Broker { libs, address: format!("127.0.0.1:{port}"), child, dir })
        }

        /// A client, once the broker answers Metadata (up to 90 s: a loaded machine is slow).
        async fn client(&self) -> Result<Kafka> {
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                let attempt = async {
                    let kafka = Kafka::connect(&self.address).await?;
                    kafka.topics().await?;
                    anyhow::Ok(kafka)
                };
                match attempt.await {
                    Ok(kafka) => return Ok(kafka),
                    Err(e) if Instant::now() > deadline => return Err(e.context(self.log_tail())),
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }

        /// Publishes record `i` of `range` as key `key-<i>`, value `value-<i>` and headers `n: <i>`,
        /// `source: test`, with the console producer.
        fn produce(&self, topic: &str, range: std::ops::Range<i32>) -> Result<()> {
            let lines: Vec<String> = range.map(|i| format!("n:{i},source:test\tkey-{i}\tvalue-{i}")).collect();
            let mut child = java(&self.libs, "org.apache.kafka.tools.ConsoleProducer")
                .args(["--bootstrap-server", &self.address, "--topic", topic])
                .args(["--property", "parse.key=true", "--property", "parse.headers=true"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            child.stdin.take().context("stdin")?.write_all(format!("{}\n", lines.join("\n")).as_bytes())?;
            let out = child.wait_with_output()?;
            ensure!(out.status.success(), "ConsoleProducer: {}", String::from_utf8_lossy(&out.stderr));
            Ok(())
        }

        /// Reads `count` records of `topic` as consumer group `group` and commits (the console
        /// consumer commits its offsets when it closes).
        fn consume(&self, topic: &str, group: &str, count: usize) -> Result<()> {
            let out = java(&self.libs, "org.apache.kafka.tools.consumer.ConsoleConsumer")
                .args(["--bootstrap-server", &self.address, "--topic", topic, "--group", group, "--from-beginning"])
                .args(["--max-messages", &count.to_string(), "--timeout-ms", "60000"])
                .stdin(Stdio::null())
                .output()?;
            ensure!(out.status.success(), "ConsoleConsumer: {}", String::from_utf8_lossy(&out.stderr));
            let read = String::from_utf8_lossy(&out.stdout).lines().count();
            ensure!(read == count, "ConsoleConsumer read {read} records, not {count}");
            Ok(())
        }

        fn log_tail(&self) -> String {
            let log = std::fs::read_to_string(self.dir.path().join("kafka.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            format!("the broker's log ends with:\n{}", lines[lines.len().saturating_sub(30)..].join("\n"))
        }
    }

    impl Drop for Broker {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn java(libs: &Path, class: &str) -> Command {
        let mut command = Command::new("java");
        command.arg("-Xmx512m").arg("-cp").arg(format!("{}/*", libs.display())).arg(class);
        command
    }

    fn free_port() -> Result<u16> {
        Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
    }
}
