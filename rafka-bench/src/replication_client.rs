//! The client side of `rafka-bench replication`: where a partition is led
//! and who is in sync (Metadata from whichever node answers), topic
//! creation with a replication factor, a producer that follows its
//! partition's leader, and a node's /metrics partition gauges.
//!
//! The producer behaves like a Kafka client with `retries` on: a lost
//! connection or a retriable code (NOT_LEADER_OR_FOLLOWER,
//! NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT, ...) makes it read Metadata
//! again, from a live node, before the next attempt; the caller decides
//! how long to keep trying.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, MetadataRequest, MetadataResponse, ProduceRequest,
};
use kafka_protocol::protocol::{Decodable, Request, StrBytes};
use rafka_proto::error::ErrorCode;
use rafka_proto::record::Compression;

use crate::admin::topic_name;
use crate::client::{ClientError, Wire};
use crate::produce::{now_ms, PRODUCE_TIMEOUT_MS, PRODUCE_VERSION};
use crate::replication::ReplicationError;
use crate::workload::RecordFactory;

const METADATA_VERSION: i16 = 12;
const CREATE_TOPICS_VERSION: i16 = 7;
/// CreateTopics' own timeout: a creation proposed while the controller
/// changes waits for the new one.
const CREATE_TIMEOUT_MS: i32 = 30_000;
/// Between attempts at a refused CreateTopics.
const CREATE_RETRY: Duration = Duration::from_millis(20);
/// A /metrics scrape that takes longer is an error.
const METRICS_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a partition is led, as one node's Metadata says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// None: no leader (-1) or an id that is not a node.
    pub leader: Option<u16>,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    /// Sorted.
    pub isr: Vec<i32>,
}

impl PartitionView {
    /// Every replica in the ISR, and a leader.
    pub fn fully_in_sync(&self) -> bool {
        let mut replicas = self.replicas.clone();
        replicas.sort_unstable();
        self.leader.is_some() && !replicas.is_empty() && replicas == self.isr
    }
}

/// Metadata from the nodes: the first one that answers, starting with the
/// one that answered last. One connection per node, made again after an
/// error.
#[derive(Debug)]
pub struct Lookup {
    /// (node id, client listener).
    nodes: Vec<(u16, String)>,
    wires: Vec<Option<Wire>>,
    next: usize,
}

impl Lookup {
    pub fn new(nodes: Vec<(u16, String)>) -> Lookup {
        let wires = nodes.iter().map(|_| None).collect();
        Lookup {
            nodes,
            wires,
            next: 0,
        }
    }

    pub fn addr(&self, node: u16) -> Option<&str> {
        self.nodes
            .iter()
            .find(|(id, _)| *id == node)
            .map(|(_, addr)| addr.as_str())
    }

    /// Calls `request` on the nodes in turn until one answers; the last
    /// node's error when none does.
    pub fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<(u16, R::Response), ReplicationError>
    where
        R::Response: Decodable,
    {
        let mut last = None;
        for step in 0..self.nodes.len() {
            let at = (self.next + step) % self.nodes.len();
            let (node, addr) = &self.nodes[at];
            match call_on(&mut self.wires[at], addr, request, version) {
                Ok(response) => {
                    self.next = at;
                    return Ok((*node, response));
                }
                Err(source) => last = Some((*node, source)),
            }
        }
        let (node, source) = last.ok_or(ReplicationError::NoNodes)?;
        Err(ReplicationError::Client { node, source })
    }

    /// The topics as the first node that answers has them.
    pub fn metadata(&mut self, topics: &[&str]) -> Result<MetadataResponse, ReplicationError> {
        let topics = topics
            .iter()
            .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
            .collect();
        let request = MetadataRequest::default()
            .with_topics(Some(topics))
            .with_allow_auto_topic_creation(false);
        self.call(&request, METADATA_VERSION).map(|(_, r)| r)
    }

    /// Every partition of `topic` (by index), or None while the node does
    /// not know the topic.
    pub fn partitions(
        &mut self,
        topic: &str,
    ) -> Result<Option<Vec<PartitionView>>, ReplicationError> {
        let metadata = self.metadata(&[topic])?;
        Ok(partitions_of(&metadata, topic))
    }

    /// One partition, or None while the node does not know it.
    pub fn partition(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<PartitionView>, ReplicationError> {
        let partitions = self.partitions(topic)?.unwrap_or_default();
        Ok(usize::try_from(partition)
            .ok()
            .and_then(|at| partitions.get(at).cloned()))
    }
}

fn call_on<R: Request>(
    wire: &mut Option<Wire>,
    addr: &str,
    request: &R,
    version: i16,
) -> Result<R::Response, ClientError>
where
    R::Response: Decodable,
{
    let connected = match wire {
        Some(wire) => wire,
        None => wire.insert(Wire::connect(addr)?),
    };
    let answer = connected.call(request, version);
    if answer.is_err() {
        *wire = None;
    }
    answer
}

/// `topic`'s partitions in index order, if the response has the topic
/// without an error and with every index from 0.
pub fn partitions_of(metadata: &MetadataResponse, topic: &str) -> Option<Vec<PartitionView>> {
    let found = metadata.topics.iter().find(|t| {
        t.error_code == ErrorCode::NONE.code()
            && t.name.as_ref().is_some_and(|n| n.0.as_str() == topic)
    })?;
    let mut views: Vec<(i32, PartitionView)> = found
        .partitions
        .iter()
        .map(|p| {
            let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
            isr.sort_unstable();
            let view = PartitionView {
                leader: u16::try_from(p.leader_id.0).ok().filter(|id| *id > 0),
                leader_epoch: p.leader_epoch,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr,
            };
            (p.partition_index, view)
        })
        .collect();
    views.sort_by_key(|(index, _)| *index);
    let complete = views
        .iter()
        .enumerate()
        .all(|(at, (index, _))| usize::try_from(*index).is_ok_and(|i| i == at));
    (complete && !views.is_empty()).then(|| views.into_iter().map(|(_, v)| v).collect())
}

/// What a topic is created with.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: &'static str,
    pub partitions: i32,
    pub replication_factor: i16,
    /// (key, value) topic configs.
    pub configs: Vec<(&'static str, String)>,
}

/// Creates the topic through any node, retrying NOT_CONTROLLER,
/// REQUEST_TIMED_OUT and lost connections until `deadline_at`.
/// TOPIC_ALREADY_EXISTS after a retry is the earlier attempt's creation.
pub fn create_topic(
    lookup: &mut Lookup,
    spec: &TopicSpec,
    deadline_at: Instant,
) -> Result<(), ReplicationError> {
    let configs = spec
        .configs
        .iter()
        .map(|(key, value)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str(key))
                .with_value(Some(StrBytes::from_string(value.clone())))
        })
        .collect();
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(CREATE_TIMEOUT_MS)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(spec.name))
            .with_num_partitions(spec.partitions)
            .with_replication_factor(spec.replication_factor)
            .with_configs(configs)]);
    let mut retried = false;
    loop {
        let (node, code) = match lookup.call(&request, CREATE_TOPICS_VERSION) {
            Ok((node, response)) => {
                let code = response.topics.first().map_or(0, |t| t.error_code);
                (node, ErrorCode::from_code(code))
            }
            Err(_) => (0, ErrorCode::REQUEST_TIMED_OUT),
        };
        match code {
            ErrorCode::NONE => return Ok(()),
            ErrorCode::TOPIC_ALREADY_EXISTS if retried => return Ok(()),
            ErrorCode::NOT_CONTROLLER | ErrorCode::REQUEST_TIMED_OUT => {}
            code => {
                return Err(ReplicationError::Refused {
                    what: format!("CreateTopics {}", spec.name),
                    node,
                    code,
                })
            }
        }
        if Instant::now() >= deadline_at {
            return Err(ReplicationError::Deadline {
                what: format!("CreateTopics {} (last answer {code})", spec.name),
            });
        }
        retried = true;
        // A client's backoff between refused attempts.
        std::thread::sleep(CREATE_RETRY);
    }
}

/// What one produce attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Acknowledged by this node (the leader it was sent to).
    Acked { leader: u16 },
    /// Not acknowledged, for a reason a client retries: the next attempt
    /// reads Metadata first.
    Retry(Retry),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Metadata names no leader yet (or no node answered).
    NoLeader,
    /// Connecting to the leader, or the connection, failed.
    Connection,
    /// The leader answered a retriable code.
    Code(ErrorCode),
}

/// Produces batches of `batch_records` records to one partition, one
/// request at a time, on a connection to its leader.
#[derive(Debug)]
pub struct PartitionProducer {
    topic: &'static str,
    partition: i32,
    /// 1 or -1 (all).
    acks: i16,
    batch_records: u64,
    factory: RecordFactory,
    /// The leader's id and the connection to it.
    leader: Option<(u16, Wire)>,
    /// Read Metadata before the next attempt.
    stale: bool,
}

impl PartitionProducer {
    pub fn new(
        topic: &'static str,
        partition: i32,
        acks: i16,
        batch_records: u64,
        record_bytes: usize,
    ) -> PartitionProducer {
        PartitionProducer {
            topic,
            partition,
            acks,
            batch_records,
            factory: RecordFactory::new(record_bytes, Compression::None),
            leader: None,
            stale: true,
        }
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The leader the next attempt goes to, as last looked up.
    pub fn leader(&self) -> Option<u16> {
        self.leader.as_ref().map(|(id, _)| *id)
    }

    /// One batch to the leader; a refusal a client would not retry is an
    /// error.
    pub fn send(&mut self, lookup: &mut Lookup) -> Result<Attempt, ReplicationError> {
        if self.stale {
            if let Some(retry) = self.follow_leader(lookup) {
                return Ok(Attempt::Retry(retry));
            }
        }
        let Some((leader, wire)) = self.leader.as_mut() else {
            self.stale = true;
            return Ok(Attempt::Retry(Retry::NoLeader));
        };
        let leader = *leader;
        let batch = self
            .factory
            .producer_batch(self.batch_records, now_ms(), None)?;
        let request = ProduceRequest::default()
            .with_acks(self.acks)
            .with_timeout_ms(PRODUCE_TIMEOUT_MS)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(self.topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(self.partition)
                    .with_records(Some(batch))])]);
        let Ok(response) = wire.call(&request, PRODUCE_VERSION) else {
            self.leader = None;
            self.stale = true;
            return Ok(Attempt::Retry(Retry::Connection));
        };
        let code = response
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .find(|p| p.index == self.partition)
            .map_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, |p| {
                ErrorCode::from_code(p.error_code)
            });
        match code {
            ErrorCode::NONE => Ok(Attempt::Acked { leader }),
            code if code.is_retriable() => {
                self.stale = true;
                Ok(Attempt::Retry(Retry::Code(code)))
            }
            code => Err(ReplicationError::Refused {
                what: format!("Produce {}-{}", self.topic, self.partition),
                node: leader,
                code,
            }),
        }
    }

    /// Reads the partition's leader from Metadata and connects to it
    /// unless already connected; the reason to retry when it cannot.
    fn follow_leader(&mut self, lookup: &mut Lookup) -> Option<Retry> {
        let leader = match lookup.partition(self.topic, self.partition) {
            Ok(Some(view)) => view.leader,
            Ok(None) | Err(_) => None,
        };
        let Some(leader) = leader else {
            return Some(Retry::NoLeader);
        };
        if self.leader() != Some(leader) {
            self.leader = None;
            let Some(addr) = lookup.addr(leader) else {
                return Some(Retry::NoLeader);
            };
            match Wire::connect(addr) {
                Ok(wire) => self.leader = Some((leader, wire)),
                Err(_) => return Some(Retry::Connection),
            }
        }
        self.stale = false;
        None
    }
}

/// A node's /metrics text (HTTP/1.0, the server closes after answering).
pub fn scrape_metrics(addr: &str) -> Result<String, std::io::Error> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(METRICS_TIMEOUT))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text)
}

/// `rafka_partition_log_end_offset` of `topic`-`partition` in a /metrics
/// text, if the node has that partition open.
pub fn log_end_offset(metrics: &str, topic: &str, partition: i32) -> Option<i64> {
    let topic_label = format!("topic=\"{topic}\"");
    let partition_label = format!("partition=\"{partition}\"");
    metrics.lines().find_map(|line| {
        let labels = line.strip_prefix("rafka_partition_log_end_offset{")?;
        let (labels, value) = labels.split_once('}')?;
        let ours = labels.split(',').any(|label| label == topic_label.as_str())
            && labels
                .split(',')
                .any(|label| label == partition_label.as_str());
        ours.then(|| value.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::BrokerId;

    #[test]
    fn the_log_end_offset_of_one_partition_is_read_from_metrics() {
        let text = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n\
            # HELP rafka_partition_log_end_offset Offset the partition's next appended record gets.\n\
            # TYPE rafka_partition_log_end_offset gauge\n\
            rafka_partition_log_end_offset{topic=\"rf3\",partition=\"10\",shard=\"0\"} 7\n\
            rafka_partition_log_end_offset{topic=\"rf1\",partition=\"0\",shard=\"0\"} 5\n\
            rafka_partition_log_end_offset{topic=\"rf3\",partition=\"0\",shard=\"1\"} 123456\n\
            rafka_partition_high_watermark{topic=\"rf3\",partition=\"0\",shard=\"1\"} 99\n";
        assert_eq!(log_end_offset(text, "rf3", 0), Some(123_456));
        assert_eq!(log_end_offset(text, "rf3", 10), Some(7));
        assert_eq!(log_end_offset(text, "rf1", 0), Some(5));
        assert_eq!(log_end_offset(text, "rf1", 1), None);
        assert_eq!(log_end_offset(text, "rf", 0), None);
        assert_eq!(log_end_offset("", "rf3", 0), None);
        let garbled = "rafka_partition_log_end_offset{topic=\"rf3\",partition=\"0\"} x\n";
        assert_eq!(log_end_offset(garbled, "rf3", 0), None);
    }

    fn partition(
        index: i32,
        leader: i32,
        replicas: &[i32],
        isr: &[i32],
    ) -> MetadataResponsePartition {
        MetadataResponsePartition::default()
            .with_partition_index(index)
            .with_leader_id(BrokerId(leader))
            .with_leader_epoch(4)
            .with_replica_nodes(replicas.iter().map(|r| BrokerId(*r)).collect())
            .with_isr_nodes(isr.iter().map(|r| BrokerId(*r)).collect())
    }

    fn metadata(partitions: Vec<MetadataResponsePartition>) -> MetadataResponse {
        MetadataResponse::default().with_topics(vec![MetadataResponseTopic::default()
            .with_name(Some(topic_name("rf3")))
            .with_partitions(partitions)])
    }

    #[test]
    fn partitions_come_in_index_order_with_a_sorted_isr() {
        let response = metadata(vec![
            partition(1, 3, &[3, 1, 2], &[3, 1]),
            partition(0, 2, &[2, 3, 1], &[3, 2, 1]),
        ]);
        let views = partitions_of(&response, "rf3").unwrap();
        assert_eq!(
            views,
            [
                PartitionView {
                    leader: Some(2),
                    leader_epoch: 4,
                    replicas: vec![2, 3, 1],
                    isr: vec![1, 2, 3],
                },
                PartitionView {
                    leader: Some(3),
                    leader_epoch: 4,
                    replicas: vec![3, 1, 2],
                    isr: vec![1, 3],
                },
            ]
        );
        assert!(views[0].fully_in_sync());
        assert!(!views[1].fully_in_sync());
        assert_eq!(partitions_of(&response, "rf1"), None);
    }

    #[test]
    fn a_partition_without_a_leader_or_with_a_gap_is_not_ready() {
        let leaderless = metadata(vec![partition(0, -1, &[1, 2, 3], &[1])]);
        let views = partitions_of(&leaderless, "rf3").unwrap();
        assert_eq!(views[0].leader, None);
        assert!(!views[0].fully_in_sync());
        let gap = metadata(vec![
            partition(0, 1, &[1], &[1]),
            partition(2, 1, &[1], &[1]),
        ]);
        assert_eq!(partitions_of(&gap, "rf3"), None);
        assert_eq!(partitions_of(&metadata(Vec::new()), "rf3"), None);
    }
}
