//! A small Kafka admin client for the tests that run the functions on a real broker: create the
//! topics of `topics.txt`, read the consumer lag that KEDA scales on, and read back what was
//! published. It speaks the wire protocol (`kafka-protocol`'s generated messages) over one plain
//! TCP connection per broker, so the tests need no JVM tool and no librdkafka.
//!
//! The API versions are pinned (see [`VERSIONS`]): requests are built field by field for one
//! version, so choosing a version at run time would need a request builder per version. Every
//! pinned version is supported by Kafka 3.x and 4.x; [`Kafka::connect`] checks them against the
//! broker's ApiVersions and names any it lacks. Record batches are decoded without compression
//! codecs: Dapr's producer (sarama) and the console producer send uncompressed batches by
//! default, and a compressed one fails with an error naming the codec.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use kafka_protocol::error::{ParseResponseErrorCode as _, ResponseError};
use kafka_protocol::messages::{self as m, ApiKey, BrokerId, GroupId, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// The API versions this client speaks. Kafka 4.0 removed the oldest versions (KIP-896); these
/// are all flexible versions that 3.x and 4.x serve. Fetch stays at v12, the last one that names
/// topics (v13+ address them by topic id).
pub const VERSIONS: [(ApiKey, i16); 8] = [
    (ApiKey::Metadata, 12),
    (ApiKey::CreateTopics, 7),
    (ApiKey::DescribeConfigs, 4),
    (ApiKey::ListGroups, 4),
    (ApiKey::FindCoordinator, 4),
    (ApiKey::OffsetFetch, 8),
    (ApiKey::ListOffsets, 7),
    (ApiKey::Fetch, 12),
];
const API_VERSIONS_VERSION: i16 = 3;
/// A call that takes longer has lost its broker; tests should fail, not hang.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a coordinator or a new topic's leader may be unavailable (right after the broker
/// starts, `__consumer_offsets` is created on the first FindCoordinator).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_FRAME: usize = 64 << 20;

/// One line of `topics.txt`: a topic, its partition count and the configs it is created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub configs: Vec<(String, String)>,
}

/// How far a consumer group is behind on one topic, summed over the topic's partitions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lag {
    pub group: String,
    pub topic: String,
    pub lag: i64,
}

/// One record as stored (control records of transactions are left out). Headers with the same
/// key collapse to the last one, and a null header value reads as empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Parses `manifests/base/kafka-topics/topics.txt`: `<name> <partitions> [k=v,k=v]` per line,
/// with `#` comment lines and blank lines, as `create-topics.sh` reads it.
pub fn parse_topics_txt(text: &str) -> Result<Vec<TopicSpec>> {
    let mut specs = Vec::new();
    for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let name = fields.next().unwrap_or_default().to_owned();
        let partitions = fields
            .next()
            .and_then(|p| p.parse::<i32>().ok())
            .filter(|&p| p > 0)
            .with_context(|| format!("topics.txt line {n}: `{line}` has no positive partition count"))?;
        let mut configs = Vec::new();
        for kv in fields.flat_map(|f| f.split(',')).filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').with_context(|| format!("topics.txt line {n}: `{kv}` is not key=value"))?;
            configs.push((k.to_owned(), v.to_owned()));
        }
        specs.push(TopicSpec { name, partitions, configs });
    }
    Ok(specs)
}

/// A client of one cluster, reached through its bootstrap broker. Requests to the same broker
/// are sent one at a time.
#[derive(Debug)]
pub struct Kafka {
    bootstrap: String,
    connections: Mutex<HashMap<String, TcpStream>>,
    correlation: AtomicI32,
}

/// The part of a Metadata response the calls below need.
struct Cluster {
    brokers: HashMap<i32, String>,
    /// Topic → (partition, leader) for every partition, sorted by partition.
    topics: BTreeMap<String, Vec<(i32, i32)>>,
}

impl Cluster {
    fn address(&self, node: i32) -> Result<&str> {
        self.brokers.get(&node).map(String::as_str).with_context(|| format!("broker {node} is not in the metadata"))
    }

    fn partitions(&self, topic: &str) -> Result<&[(i32, i32)]> {
        self.topics.get(topic).map(Vec::as_slice).with_context(|| format!("topic {topic} does not exist"))
    }
}

impl Kafka {
    /// Connects to `bootstrap` (`host:port`) and checks that it serves every version of [`VERSIONS`].
    pub async fn connect(bootstrap: &str) -> Result<Kafka> {
        let kafka =
            Kafka { bootstrap: bootstrap.to_owned(), connections: Mutex::default(), correlation: AtomicI32::new(1) };
        let request = m::ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("todo-system-tests"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response: m::ApiVersionsResponse =
            kafka.call(bootstrap, ApiKey::ApiVersions, API_VERSIONS_VERSION, &request).await?;
        check(response.error_code).with_context(|| format!("ApiVersions from {bootstrap}"))?;
        let missing: Vec<String> = VERSIONS
            .iter()
            .filter(|(key, v)| {
                !response
                    .api_keys
                    .iter()
                    .any(|a| a.api_key == *key as i16 && (a.min_version..=a.max_version).contains(v))
            })
            .map(|(key, v)| format!("{key:?} v{v}"))
            .collect();
        ensure!(missing.is_empty(), "broker {bootstrap} does not serve {}", missing.join(", "));
        Ok(kafka)
    }

    /// Creates the topics with replication factor 1, then waits until every partition has a
    /// leader, so the topics can be used as soon as this returns. Existing topics are left as
    /// they are (not grown, configs not changed), like `create-topics.sh --if-not-exists`.
    pub async fn create_topics(&self, topics: &[TopicSpec]) -> Result<()> {
        let creatable = topics.iter().map(|t| {
            let configs = t.configs.iter().map(|(k, v)| {
                m::create_topics_request::CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_value(Some(StrBytes::from_string(v.clone())))
            });
            m::create_topics_request::CreatableTopic::default()
                .with_name(topic_name(&t.name))
                .with_num_partitions(t.partitions)
                .with_replication_factor(1)
                .with_configs(configs.collect())
        });
        let request = m::CreateTopicsRequest::default().with_topics(creatable.collect()).with_timeout_ms(30_000);
        let response: m::CreateTopicsResponse = self.call_bootstrap(ApiKey::CreateTopics, &request).await?;
        for t in response.topics {
            if t.error_code.err() != Some(ResponseError::TopicAlreadyExists) {
                check(t.error_code).with_context(|| {
                    format!(
                        "creating topic {} on {}: {}",
                        t.name.0,
                        self.bootstrap,
                        t.error_message.unwrap_or_default()
                    )
                })?;
            }
        }
        let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
        settle(|| self.metadata(Some(&names))).await.map(drop)
    }

    /// Every topic that is not internal, with its partition count.
    pub async fn topics(&self) -> Result<BTreeMap<String, i32>> {
        let cluster = self.metadata(None).await?;
        Ok(cluster.topics.into_iter().map(|(name, p)| (name, p.len() as i32)).collect())
    }

    /// The configs of `topic` as the broker reports them (its own and the defaults).
    pub async fn topic_configs(&self, topic: &str) -> Result<BTreeMap<String, String>> {
        let resource = m::describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2) // TOPIC
            .with_resource_name(StrBytes::from_string(topic.to_owned()))
            .with_configuration_keys(None);
        let request = m::DescribeConfigsRequest::default().with_resources(vec![resource]);
        let response: m::DescribeConfigsResponse = self.call_bootstrap(ApiKey::DescribeConfigs, &request).await?;
        let mut configs = BTreeMap::new();
        for r in response.results {
            check(r.error_code).with_context(|| format!("configs of topic {topic}"))?;
            configs
                .extend(r.configs.into_iter().map(|c| (c.name.to_string(), c.value.unwrap_or_default().to_string())));
        }
        Ok(configs)
    }

    /// The latest offset (high watermark) of each partition of `topic`.
    pub async fn end_offsets(&self, topic: &str) -> Result<BTreeMap<i32, i64>> {
        let cluster = self.metadata(Some(&[topic])).await?;
        let bounds = self.log_bounds(&cluster, &[topic]).await?;
        Ok(bounds.into_iter().map(|((_, p), (_, latest))| (p, latest)).collect())
    }

    /// The lag of every consumer group (ListGroups on every broker) on every topic it has
    /// committed offsets for: per partition, latest offset minus committed offset. A partition
    /// of such a topic without a committed offset counts its whole log (latest − earliest): what
    /// a Dapr subscriber with `initialOffset: oldest` has still to read, and what KEDA's Kafka
    /// scaler counts with `offsetResetPolicy: earliest` (KEDA takes the latest offset itself,
    /// the same number until retention deletes the start of the log).
    pub async fn lag(&self) -> Result<Vec<Lag>> {
        let cluster = self.metadata(Some(&[])).await?;
        let mut groups = Vec::new();
        for address in cluster.brokers.values() {
            let response: m::ListGroupsResponse = self
                .call(address, ApiKey::ListGroups, version(ApiKey::ListGroups), &m::ListGroupsRequest::default())
                .await?;
            check(response.error_code).with_context(|| format!("listing the groups of {address}"))?;
            // Consumer groups; "" is a group that only has commits (no members ever joined).
            groups.extend(
                response
                    .groups
                    .into_iter()
                    .filter(|g| matches!(&*g.protocol_type, "consumer" | ""))
                    .map(|g| g.group_id.0),
            );
        }
        let mut lags = Vec::new();
        for group in groups {
            let committed = self.committed(&group).await?;
            let mut topics: Vec<&str> = committed.keys().map(|(t, _)| t.as_str()).collect();
            topics.dedup();
            lags.extend(self.group_lag(&group, &topics, &committed).await?);
        }
        lags.sort();
        Ok(lags)
    }

    /// The lag of `group` on each of `topics`, as in [`Kafka::lag`]; a group that does not
    /// exist yet (or has not committed) lags by the whole log of each topic.
    pub async fn lag_of(&self, group: &str, topics: &[&str]) -> Result<Vec<Lag>> {
        let committed = self.committed(group).await?;
        self.group_lag(group, topics, &committed).await
    }

    /// Every record of `topic`, read once from each partition's earliest offset to its latest
    /// offset at the time of the call, ordered by partition and offset.
    pub async fn messages(&self, topic: &str) -> Result<Vec<Message>> {
        let cluster = self.metadata(Some(&[topic])).await?;
        let bounds = self.log_bounds(&cluster, &[topic]).await?;
        let mut messages = Vec::new();
        for &(partition, leader) in cluster.partitions(topic)? {
            let address = cluster.address(leader)?;
            let (mut offset, latest) = bounds[&(topic.to_owned(), partition)];
            while offset < latest {
                let next = self.fetch(address, topic, partition, offset, latest, &mut messages).await?;
                ensure!(next > offset, "fetching {topic}/{partition} from {address} at offset {offset}: no progress");
                offset = next;
            }
        }
        Ok(messages)
    }

    /// One Fetch of `topic`/`partition` at `offset`: appends the records below `latest` to `out`
    /// and returns the offset to fetch next.
    async fn fetch(
        &self,
        address: &str,
        topic: &str,
        partition: i32,
        offset: i64,
        latest: i64,
        out: &mut Vec<Message>,
    ) -> Result<i64> {
        let what = || format!("fetching {topic}/{partition} from {address} at offset {offset}");
        let fetch_partition = m::fetch_request::FetchPartition::default()
            .with_partition(partition)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(4 << 20);
        let request =
            m::FetchRequest::default().with_max_wait_ms(500).with_min_bytes(1).with_max_bytes(16 << 20).with_topics(
                vec![
                    m::fetch_request::FetchTopic::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(vec![fetch_partition]),
                ],
            );
        let response: m::FetchResponse = self.call(address, ApiKey::Fetch, version(ApiKey::Fetch), &request).await?;
        check(response.error_code).with_context(what)?;
        let data = response.responses.into_iter().flat_map(|t| t.partitions).find(|p| p.partition_index == partition);
        let data = data.with_context(|| format!("{}: no data for the partition", what()))?;
        check(data.error_code).with_context(what)?;
        let mut records: &[u8] = data.records.as_deref().unwrap_or_default();
        let mut next = offset;
        // A batch: base offset (8 bytes), length of the rest (4), leader epoch (4), magic (1),
        // crc (4), attributes (2), last offset delta (4), ... The response may end in a partial
        // batch (cut at max bytes): it is fetched again next time.
        while records.len() >= 12 {
            let base = i64::from_be_bytes(records[0..8].try_into()?);
            let length = usize::try_from(i32::from_be_bytes(records[8..12].try_into()?))?;
            if records.len() < 12 + length || length < 27 - 12 {
                break;
            }
            let (mut batch, rest) = records.split_at(12 + length);
            records = rest;
            let last_delta = i32::from_be_bytes(batch[23..27].try_into()?);
            let set = RecordBatchDecoder::decode(&mut batch).with_context(|| format!("{}: record batch", what()))?;
            for r in set.records.into_iter().filter(|r| !r.control && r.offset >= offset && r.offset < latest) {
                let headers =
                    r.headers.into_iter().map(|(k, v)| (k.to_string(), v.map(|v| v.to_vec()).unwrap_or_default()));
                out.push(Message {
                    partition,
                    offset: r.offset,
                    key: r.key.map(|k| k.to_vec()),
                    value: r.value.map(|v| v.to_vec()),
                    headers: headers.collect(),
                });
            }
            next = next.max(base + i64::from(last_delta) + 1);
        }
        Ok(next)
    }

    /// Sums latest − committed (or latest − earliest without a commit) per topic.
    async fn group_lag(
        &self,
        group: &str,
        topics: &[&str],
        committed: &BTreeMap<(String, i32), i64>,
    ) -> Result<Vec<Lag>> {
        let cluster = self.metadata(Some(topics)).await?;
        let bounds = self.log_bounds(&cluster, topics).await?;
        let mut lags = Vec::new();
        for &topic in topics {
            let mut lag = 0;
            for &(partition, _) in cluster.partitions(topic)? {
                let key = (topic.to_owned(), partition);
                let (earliest, latest) = bounds[&key];
                lag += (latest - committed.get(&key).copied().unwrap_or(earliest)).max(0);
            }
            lags.push(Lag { group: group.to_owned(), topic: topic.to_owned(), lag });
        }
        Ok(lags)
    }

    /// The committed offsets of `group` on all topics, from its coordinator; none for a group
    /// that does not exist.
    async fn committed(&self, group: &str) -> Result<BTreeMap<(String, i32), i64>> {
        let request = m::OffsetFetchRequest::default().with_groups(vec![
            m::offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(str_bytes(group)))
                .with_topics(None),
        ]);
        let response: m::OffsetFetchResponse = settle(|| async {
            let address = self.coordinator(group).await?;
            let response: m::OffsetFetchResponse =
                self.call(&address, ApiKey::OffsetFetch, version(ApiKey::OffsetFetch), &request).await?;
            for g in &response.groups {
                if g.error_code.err() != Some(ResponseError::GroupIdNotFound) {
                    check(g.error_code).with_context(|| format!("committed offsets of group {group} on {address}"))?;
                }
            }
            Ok(response)
        })
        .await?;
        let mut committed = BTreeMap::new();
        for t in response.groups.into_iter().flat_map(|g| g.topics) {
            for p in t.partitions {
                check(p.error_code).with_context(|| format!("committed offset of group {group} on {}", t.name.0))?;
                if p.committed_offset >= 0 {
                    committed.insert((t.name.0.to_string(), p.partition_index), p.committed_offset);
                }
            }
        }
        Ok(committed)
    }

    /// The address of `group`'s coordinator (the bootstrap broker itself on a one-node cluster).
    async fn coordinator(&self, group: &str) -> Result<String> {
        let request =
            m::FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![str_bytes(group)]);
        let response: m::FindCoordinatorResponse = self.call_bootstrap(ApiKey::FindCoordinator, &request).await?;
        let c = response.coordinators.into_iter().next().context("FindCoordinator: empty answer")?;
        check(c.error_code)
            .with_context(|| format!("coordinator of group {group}: {}", c.error_message.unwrap_or_default()))?;
        Ok(format!("{}:{}", c.host, c.port))
    }

    /// (earliest, latest) offset of every partition of `topics`, asked of each partition's leader.
    async fn log_bounds(&self, cluster: &Cluster, topics: &[&str]) -> Result<HashMap<(String, i32), (i64, i64)>> {
        let mut by_leader: HashMap<i32, Vec<(&str, i32)>> = HashMap::new();
        for &topic in topics {
            for &(partition, leader) in cluster.partitions(topic)? {
                by_leader.entry(leader).or_default().push((topic, partition));
            }
        }
        let mut bounds = HashMap::new();
        for (leader, partitions) in by_leader {
            let address = cluster.address(leader)?;
            let mut earliest = HashMap::new();
            for timestamp in [-2, -1] {
                let mut request_topics: BTreeMap<&str, Vec<_>> = BTreeMap::new();
                for &(topic, partition) in &partitions {
                    request_topics.entry(topic).or_default().push(
                        m::list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_timestamp(timestamp),
                    );
                }
                let request_topics = request_topics.into_iter().map(|(topic, ps)| {
                    m::list_offsets_request::ListOffsetsTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(ps)
                });
                let request = m::ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(request_topics.collect());
                let response: m::ListOffsetsResponse =
                    self.call(address, ApiKey::ListOffsets, version(ApiKey::ListOffsets), &request).await?;
                for t in response.topics {
                    for p in t.partitions {
                        check(p.error_code)
                            .with_context(|| format!("offsets of {}/{} on {address}", t.name.0, p.partition_index))?;
                        let key = (t.name.0.to_string(), p.partition_index);
                        match earliest.remove(&key) {
                            None => drop(earliest.insert(key, p.offset)),
                            Some(first) => drop(bounds.insert(key, (first, p.offset))),
                        }
                    }
                }
            }
        }
        for &topic in topics {
            for &(partition, _) in cluster.partitions(topic)? {
                ensure!(bounds.contains_key(&(topic.to_owned(), partition)), "no offsets for {topic}/{partition}");
            }
        }
        Ok(bounds)
    }

    /// Metadata of `topics` (`None`: all; internal topics are left out), failing while a
    /// requested topic is missing or a partition has no leader.
    async fn metadata(&self, topics: Option<&[&str]>) -> Result<Cluster> {
        let request =
            m::MetadataRequest::default().with_allow_auto_topic_creation(false).with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| m::metadata_request::MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                    .collect()
            }));
        let response: m::MetadataResponse = self.call_bootstrap(ApiKey::Metadata, &request).await?;
        let brokers = response.brokers.into_iter().map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port))).collect();
        let mut cluster = Cluster { brokers, topics: BTreeMap::new() };
        for t in response.topics.into_iter().filter(|t| !t.is_internal) {
            let name = t.name.map(|n| n.0.to_string()).unwrap_or_default();
            check(t.error_code).with_context(|| format!("metadata of topic {name} from {}", self.bootstrap))?;
            let mut partitions = Vec::new();
            for p in t.partitions {
                check(p.error_code).with_context(|| format!("metadata of {name}/{}", p.partition_index))?;
                if p.leader_id.0 < 0 {
                    let error = anyhow::Error::from(ResponseError::LeaderNotAvailable);
                    return Err(error.context(format!("{name}/{} has no leader", p.partition_index)));
                }
                partitions.push((p.partition_index, p.leader_id.0));
            }
            partitions.sort();
            cluster.topics.insert(name, partitions);
        }
        Ok(cluster)
    }

    async fn call_bootstrap<Q: Encodable + HeaderVersion, R: Decodable + HeaderVersion>(
        &self,
        key: ApiKey,
        request: &Q,
    ) -> Result<R> {
        self.call(&self.bootstrap, key, version(key), request).await
    }

    /// Sends one request to `address` and reads its response. A connection that failed is
    /// dropped, and the next call opens a new one.
    async fn call<Q: Encodable + HeaderVersion, R: Decodable + HeaderVersion>(
        &self,
        address: &str,
        key: ApiKey,
        version: i16,
        request: &Q,
    ) -> Result<R> {
        let correlation = self.correlation.fetch_add(1, Ordering::Relaxed);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str("todo-system-tests")));
        let mut frame = vec![0; 4];
        header.encode(&mut frame, Q::header_version(version))?;
        request.encode(&mut frame, version)?;
        let length = i32::try_from(frame.len() - 4)?;
        frame[..4].copy_from_slice(&length.to_be_bytes());

        let mut connections = self.connections.lock().await;
        let exchange = async {
            if !connections.contains_key(address) {
                let stream = TcpStream::connect(address).await?;
                stream.set_nodelay(true)?;
                connections.insert(address.to_owned(), stream);
            }
            let stream = connections.get_mut(address).context("connection vanished")?;
            stream.write_all(&frame).await?;
            let length = usize::try_from(stream.read_i32().await?)?;
            ensure!(length <= MAX_FRAME, "response of {length} bytes");
            let mut body = vec![0; length];
            stream.read_exact(&mut body).await?;
            anyhow::Ok(body)
        };
        let body = match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Ok(Ok(body)) => body,
            Ok(Err(error)) => {
                connections.remove(address);
                return Err(error.context(format!("{key:?} v{version} to {address}")));
            }
            Err(_) => {
                connections.remove(address);
                bail!("{key:?} v{version} to {address}: no answer within {CALL_TIMEOUT:?}");
            }
        };
        drop(connections);
        let mut body: &[u8] = &body;
        let response_header = ResponseHeader::decode(&mut body, R::header_version(version))?;
        ensure!(response_header.correlation_id == correlation, "{key:?} to {address}: answer to another request");
        R::decode(&mut body, version).with_context(|| format!("decoding {key:?} v{version} from {address}"))
    }
}

/// Retries `attempt` while it fails with an error Kafka calls retriable (no leader or
/// coordinator yet), for up to [`SETTLE_TIMEOUT`].
async fn settle<T, F: Future<Output = Result<T>>>(mut attempt: impl FnMut() -> F) -> Result<T> {
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    loop {
        match attempt().await {
            Err(e) if tokio::time::Instant::now() < deadline && retriable(&e) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            result => return result,
        }
    }
}

fn retriable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<ResponseError>().is_some_and(ResponseError::is_retriable))
}

fn check(code: i16) -> Result<()> {
    code.err().map_or(Ok(()), |e| Err(e.into()))
}

fn version(key: ApiKey) -> i16 {
    VERSIONS.iter().find(|(k, _)| *k == key).map_or(0, |(_, v)| *v)
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}
