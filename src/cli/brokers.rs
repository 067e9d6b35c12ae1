//! `Brokers`: the cluster as a client sees it. A command starts from the
//! bootstrap connection, learns the brokers and partition leaders from
//! Metadata, and opens one more connection per broker it must reach:
//! partition requests (Produce, Fetch, ListOffsets, DeleteRecords) go to the
//! leader, group requests to the group's coordinator, a broker's configs to
//! that broker, as Kafka requires. On a single node all of them are the
//! same broker.

use std::collections::BTreeMap;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, GroupId, ListOffsetsRequest, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::cli::client::Connection;
use crate::cli::error::CliError;
use crate::cli::security::Security;
use crate::cli::ClientArgs;

/// ListOffsets' timestamp for the log end offset (high watermark).
pub const LATEST_TIMESTAMP: i64 = -1;
/// ListOffsets' timestamp for the log start offset.
pub const EARLIEST_TIMESTAMP: i64 = -2;

/// ListOffsets v10+: how long a leader may take to answer from remote
/// (tiered) storage.
const LIST_OFFSETS_TIMEOUT_MS: i32 = 30_000;

/// One partition as Metadata lists it.
#[derive(Debug, Clone)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// One topic as Metadata lists it.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    /// The topic id (Kafka's base64 form); all zeros from brokers before
    /// Metadata v10.
    pub id: String,
    pub internal: bool,
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    pub fn partition(&self, partition: i32) -> Result<&PartitionInfo, CliError> {
        self.partitions
            .iter()
            .find(|p| p.partition == partition)
            .ok_or_else(|| CliError::NoSuchPartition {
                topic: self.name.clone(),
                partition,
            })
    }

    /// The leader of `partition`.
    pub fn leader(&self, partition: i32) -> Result<i32, CliError> {
        let info = self.partition(partition)?;
        if info.leader < 0 {
            return Err(CliError::NoLeader {
                topic: self.name.clone(),
                partition,
            });
        }
        Ok(info.leader)
    }

    /// Replication factor as the first partition shows it.
    pub fn replication_factor(&self) -> usize {
        self.partitions.first().map_or(0, |p| p.replicas.len())
    }
}

/// The bootstrap connection plus one connection per broker reached, all
/// opened with the same [`Security`].
pub struct Brokers {
    security: Security,
    bootstrap: Connection,
    /// node id -> `host:port`, from the latest Metadata.
    addresses: BTreeMap<i32, String>,
    links: BTreeMap<i32, Connection>,
}

impl Brokers {
    /// Reads `--command-config` (if given; unknown keys are warned about on
    /// stderr) and connects to `--bootstrap` with it.
    pub fn connect(client: &ClientArgs) -> Result<Brokers, CliError> {
        let security = match &client.command_config {
            None => Security::default(),
            Some(path) => Security::load(path, &mut |warning| {
                eprintln!(
                    "rafka: warning: --command-config {}: {warning}",
                    path.display()
                )
            })
            .map_err(|source| CliError::CommandConfig {
                path: path.clone(),
                source,
            })?,
        };
        Ok(Brokers {
            bootstrap: Connection::open(&client.bootstrap, &security)?,
            security,
            addresses: BTreeMap::new(),
            links: BTreeMap::new(),
        })
    }

    /// The bootstrap broker: for requests any broker answers (Metadata,
    /// topic administration, which a broker forwards to its controller).
    pub fn any(&mut self) -> &mut Connection {
        &mut self.bootstrap
    }

    /// A connection to broker `node_id`, opened on first use.
    pub fn node(&mut self, node_id: i32) -> Result<&mut Connection, CliError> {
        if !self.links.contains_key(&node_id) {
            if !self.addresses.contains_key(&node_id) {
                self.metadata(Some(&[]))?;
            }
            let addr = self
                .addresses
                .get(&node_id)
                .ok_or(CliError::UnknownBroker { node_id })?;
            let connection = Connection::open(addr, &self.security)?;
            self.links.insert(node_id, connection);
        }
        self.links
            .get_mut(&node_id)
            .ok_or(CliError::UnknownBroker { node_id })
    }

    /// The node ids of every broker, from a fresh Metadata.
    pub fn node_ids(&mut self) -> Result<Vec<i32>, CliError> {
        self.metadata(Some(&[]))?;
        Ok(self.addresses.keys().copied().collect())
    }

    /// Metadata for `topics` (`None`: every topic); remembers the brokers.
    pub fn metadata(&mut self, topics: Option<&[String]>) -> Result<MetadataResponse, CliError> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|name| MetadataRequestTopic::default().with_name(Some(topic_name(name))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let response = self.bootstrap.call(&request)?;
        self.addresses = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        Ok(response)
    }

    /// Every topic (internal ones too), sorted by name. A topic with an
    /// error (LEADER_NOT_AVAILABLE while it is being created) is listed as
    /// the broker describes it rather than failing the whole list.
    pub fn topics(&mut self) -> Result<Vec<TopicInfo>, CliError> {
        let response = self.metadata(None)?;
        let mut topics: Vec<TopicInfo> = response.topics.iter().map(topic_info).collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// One topic, or its error (UNKNOWN_TOPIC_OR_PARTITION).
    pub fn topic(&mut self, name: &str) -> Result<TopicInfo, CliError> {
        let response = self.metadata(Some(&[name.to_string()]))?;
        let topic = response
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == name))
            .ok_or_else(|| CliError::MissingEntry {
                addr: self.bootstrap.addr().to_string(),
                api: kafka_protocol::messages::ApiKey::Metadata,
                subject: format!("topic {name}"),
            })?;
        CliError::check(topic.error_code, None, &format!("topic {name}"))?;
        Ok(topic_info(topic))
    }

    /// The connection to `group`'s coordinator.
    pub fn coordinator(&mut self, group: &str) -> Result<&mut Connection, CliError> {
        let version = self.bootstrap.version::<FindCoordinatorRequest>()?;
        let subject = format!("group {group}");
        let mut request = FindCoordinatorRequest::default().with_key_type(0);
        if version >= 4 {
            request = request.with_coordinator_keys(vec![StrBytes::from_string(group.to_string())]);
        } else {
            request = request.with_key(StrBytes::from_string(group.to_string()));
        }
        let response = self.bootstrap.call_at(version, &request)?;
        let node_id = if version >= 4 {
            let coordinator =
                response
                    .coordinators
                    .first()
                    .ok_or_else(|| CliError::MissingEntry {
                        addr: self.bootstrap.addr().to_string(),
                        api: kafka_protocol::messages::ApiKey::FindCoordinator,
                        subject: subject.clone(),
                    })?;
            CliError::check(
                coordinator.error_code,
                coordinator.error_message.as_deref(),
                &subject,
            )?;
            self.addresses.insert(
                coordinator.node_id.0,
                format!("{}:{}", coordinator.host.as_str(), coordinator.port),
            );
            coordinator.node_id.0
        } else {
            CliError::check(
                response.error_code,
                response.error_message.as_deref(),
                &subject,
            )?;
            self.addresses.insert(
                response.node_id.0,
                format!("{}:{}", response.host.as_str(), response.port),
            );
            response.node_id.0
        };
        self.node(node_id)
    }

    /// ListOffsets for `partitions` of `topic` at `timestamp` (latest or
    /// earliest), each asked of its leader: partition -> offset.
    pub fn list_offsets(
        &mut self,
        topic: &TopicInfo,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<BTreeMap<i32, i64>, CliError> {
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for &partition in partitions {
            by_leader
                .entry(topic.leader(partition)?)
                .or_default()
                .push(partition);
        }
        let mut offsets = BTreeMap::new();
        for (leader, partitions) in by_leader {
            let connection = self.node(leader)?;
            let version = connection.version::<ListOffsetsRequest>()?;
            let mut request = ListOffsetsRequest::default();
            if version >= 10 {
                // How long the leader may look in tiered storage.
                request.timeout_ms = LIST_OFFSETS_TIMEOUT_MS;
            }
            let request =
                request
                    .with_replica_id(BrokerId(-1))
                    .with_topics(vec![ListOffsetsTopic::default()
                        .with_name(topic_name(&topic.name))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|&p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(p)
                                        .with_timestamp(timestamp)
                                })
                                .collect(),
                        )]);
            let response = connection.call_at(version, &request)?;
            for topic_response in &response.topics {
                for p in &topic_response.partitions {
                    let subject = format!("{}-{}", topic.name, p.partition_index);
                    CliError::check(p.error_code, None, &subject)?;
                    offsets.insert(p.partition_index, p.offset);
                }
            }
            for partition in partitions {
                if !offsets.contains_key(&partition) {
                    return Err(CliError::MissingEntry {
                        addr: format!("broker {leader}"),
                        api: kafka_protocol::messages::ApiKey::ListOffsets,
                        subject: format!("{}-{}", topic.name, partition),
                    });
                }
            }
        }
        Ok(offsets)
    }
}

/// A topic id as Kafka's tools print it (URL-safe base64, no padding).
pub fn topic_id(id: &uuid::Uuid) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub fn group_id(name: &str) -> GroupId {
    GroupId(StrBytes::from_string(name.to_string()))
}

fn topic_info(
    topic: &kafka_protocol::messages::metadata_response::MetadataResponseTopic,
) -> TopicInfo {
    let mut partitions: Vec<PartitionInfo> = topic
        .partitions
        .iter()
        .map(|p| PartitionInfo {
            partition: p.partition_index,
            leader: p.leader_id.0,
            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    TopicInfo {
        name: topic.name.as_ref().map_or("", |n| n.as_str()).to_string(),
        id: topic_id(&topic.topic_id),
        internal: topic.is_internal,
        partitions,
    }
}
