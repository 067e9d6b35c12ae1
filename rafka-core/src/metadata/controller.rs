//! The controller's decisions (lives on shard 0): validates an admin
//! operation against the current image and turns it into the records that
//! carry it out. Pure: it reads the image and writes nothing; the caller
//! commits the records (metadata log, then image) and must not interleave
//! two operations between validation and commit.

use rafka_proto::error::ErrorCode;
use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::image::{Leadership, MetadataImage};
use super::placement::{place_partitions, rebalance};
use super::record::{
    ConfigRecord, ConfigResource, MetadataRecord, PartitionLeadershipRecord, PartitionRecord,
    RemovePartitionsRecord, RemoveTopicRecord, ShardId, TopicRecord,
};
use super::replicas::{assign_replicas, Candidate};
use crate::config::describe::is_known_broker_key;
use crate::config::topic::topic_key_for_dynamic_broker_key;
use crate::config::topic_name::{validate_topic_name, TopicNameError};
use crate::config::value::split_list;
use crate::config::{BrokerConfig, TopicConfigError, TopicDefaults};

/// Kafka refuses operations that would write more records than this at
/// once (its controller's batch limit), so one request cannot stall the
/// controller or blow up the log; rafka keeps the same bound.
pub const RECORDS_PER_OPERATION_MAX: usize = 10_000;

/// Why an admin operation was refused; `error_code` gives Kafka's code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    InvalidTopic(#[from] TopicNameError),
    #[error("topic {0:?} already exists")]
    TopicAlreadyExists(String),
    #[error("number of partitions must be at least 1, got {0}")]
    PartitionsBelowOne(i32),
    #[error("topic {topic:?} already has {current} partitions, cannot set {requested}")]
    PartitionsNotIncreased {
        topic: String,
        current: i32,
        requested: i32,
    },
    #[error("replication factor {0} is not possible on a single broker (use 1 or -1)")]
    InvalidReplicationFactor(i16),
    #[error(
        "Unable to replicate the partition {factor} time(s): The target replication factor of \
         {factor} cannot be reached because only {brokers} broker(s) are registered."
    )]
    NotEnoughBrokers { factor: i16, brokers: usize },
    #[error(transparent)]
    InvalidConfig(#[from] TopicConfigError),
    #[error("config {0} appears more than once in the request")]
    DuplicateConfigKey(String),
    #[error("{0} is not a list config; APPEND and SUBTRACT do not apply")]
    NotAListConfig(String),
    /// A manual replica assignment Kafka's controller refuses, with its
    /// message.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("unknown topic id {0}")]
    UnknownTopicId(Uuid),
    #[error("topic deletion is disabled (delete.topic.enable=false)")]
    TopicDeletionDisabled,
    #[error("operation would write {0} records, more than {RECORDS_PER_OPERATION_MAX}")]
    TooManyRecords(usize),
    #[error("invalid broker name {0:?}: expected a node id or \"\" for the cluster default")]
    InvalidBrokerName(String),
    /// KIP-966: the controller and every leader must agree on a topic's
    /// min.insync.replicas, so a cluster takes it per topic or as the
    /// cluster-wide default, not per broker (Kafka's rule with ELR on).
    #[error(
        "broker-level min.insync.replicas cannot be altered in a cluster (eligible leader \
         replicas are on): set it per topic or as the cluster default"
    )]
    PerBrokerMinInsyncReplicas,
    #[error("unknown broker config: {0}")]
    UnknownBrokerConfig(String),
    #[error("cannot update these configs dynamically: {0}")]
    NotDynamic(String),
}

impl ControllerError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            ControllerError::InvalidTopic(e) => e.error_code(),
            ControllerError::TopicAlreadyExists(_) => ErrorCode::TOPIC_ALREADY_EXISTS,
            ControllerError::PartitionsBelowOne(_)
            | ControllerError::PartitionsNotIncreased { .. } => ErrorCode::INVALID_PARTITIONS,
            ControllerError::InvalidReplicationFactor(_)
            | ControllerError::NotEnoughBrokers { .. } => ErrorCode::INVALID_REPLICATION_FACTOR,
            ControllerError::InvalidConfig(e) => e.error_code(),
            ControllerError::NotAListConfig(_) => ErrorCode::INVALID_CONFIG,
            ControllerError::DuplicateConfigKey(_) => ErrorCode::INVALID_REQUEST,
            ControllerError::InvalidReplicaAssignment(_) => ErrorCode::INVALID_REPLICA_ASSIGNMENT,
            ControllerError::UnknownTopic(_) => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            ControllerError::UnknownTopicId(_) => ErrorCode::UNKNOWN_TOPIC_ID,
            ControllerError::TopicDeletionDisabled => ErrorCode::TOPIC_DELETION_DISABLED,
            ControllerError::TooManyRecords(_) => ErrorCode::POLICY_VIOLATION,
            ControllerError::InvalidBrokerName(_) => ErrorCode::INVALID_REQUEST,
            ControllerError::PerBrokerMinInsyncReplicas => ErrorCode::INVALID_CONFIG,
            ControllerError::UnknownBrokerConfig(_) | ControllerError::NotDynamic(_) => {
                ErrorCode::INVALID_CONFIG
            }
        }
    }
}

/// A CreateTopics entry. `-1` asks for the broker default, as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    /// A manual assignment: partition i's replicas, in preference order
    /// (empty: placed by the controller, `partitions` and
    /// `replication_factor` say how many).
    pub assignments: Vec<Vec<i32>>,
}

/// One IncrementalAlterConfigs operation (Kafka's op codes 0-3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    Set(String, String),
    Delete(String),
    /// Adds items to a list config (`cleanup.policy`).
    Append(String, String),
    /// Removes items from a list config.
    Subtract(String, String),
}

impl ConfigOp {
    fn key(&self) -> &str {
        match self {
            ConfigOp::Set(k, _) | ConfigOp::Delete(k) => k,
            ConfigOp::Append(k, _) | ConfigOp::Subtract(k, _) => k,
        }
    }
}

/// Topic configs whose value is a comma-separated list.
const LIST_CONFIGS: &[&str] = &["cleanup.policy"];

/// Settings the controller decides with.
#[derive(Debug, Clone, PartialEq)]
pub struct Controller {
    /// The node deciding: its own dynamic broker configs count for the
    /// topic defaults (`unclean.leader.election.enable`), as Kafka's
    /// controller reads its own.
    pub node_id: i32,
    pub shard_count: u32,
    /// Part of a cluster (`controller.quorum.voters` set): new partitions
    /// get replicas among the registered brokers and a leader.
    pub cluster: bool,
    pub delete_topic_enable: bool,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub topic_defaults: TopicDefaults,
}

/// A fresh random topic id, drawn before any record is written so that
/// applying records stays deterministic. Like Kafka it never returns the
/// nil id, nor one whose base64 form starts with '-' (tools would read it
/// as a command-line flag).
pub fn new_topic_id() -> Uuid {
    loop {
        let id = Uuid::new_v4();
        // '-' is base64url index 62: the top six bits of the first byte.
        if !id.is_nil() && id.as_bytes()[0] >> 2 != 62 {
            return id;
        }
    }
}

/// Replicas and a leader for partitions `first..first + count` of a topic
/// (Kafka's assignment, started and shifted by the random topic id). As in
/// Kafka, every replica starts in the ISR (all are empty, so all are in
/// sync) and the first one leads, leader and partition epochs 0.
fn leadership_records(
    image: &MetadataImage,
    topic_id: Uuid,
    first: usize,
    count: usize,
    factor: usize,
) -> impl Iterator<Item = MetadataRecord> {
    let brokers: Vec<Candidate> = image
        .brokers()
        .filter(|b| !b.fenced)
        .map(|b| Candidate {
            node_id: b.node_id,
            rack: b.rack.clone(),
        })
        .collect();
    let (start, shift) = topic_id.as_u64_pair();
    let assigned = assign_replicas(&brokers, count, first, factor, start, shift);
    assigned.into_iter().enumerate().map(move |(i, replicas)| {
        MetadataRecord::PartitionLeadership(PartitionLeadershipRecord {
            topic_id,
            partition: i32::try_from(first + i).unwrap_or(i32::MAX),
            leader: replicas[0],
            leader_epoch: 0,
            isr: replicas.clone(),
            replicas,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
            elr: Vec::new(),
        })
    })
}

fn config_record(topic: &str, key: &str, value: Option<&str>) -> MetadataRecord {
    resource_config_record(ConfigResource::Topic(topic.to_string()), key, value)
}

fn resource_config_record(
    resource: ConfigResource,
    key: &str,
    value: Option<&str>,
) -> MetadataRecord {
    MetadataRecord::Config(ConfigRecord {
        resource,
        name: key.to_string(),
        value: value.map(str::to_string),
    })
}

impl Controller {
    pub fn new(broker: &BrokerConfig, shard_count: u32) -> Controller {
        assert!(shard_count > 0, "a broker has at least one shard");
        Controller {
            node_id: broker.node_id,
            shard_count,
            cluster: broker.quorum_configured(),
            delete_topic_enable: broker.delete_topic_enable,
            num_partitions: broker.num_partitions,
            default_replication_factor: broker.default_replication_factor,
            topic_defaults: broker.topic_defaults.clone(),
        }
    }

    /// Records creating `topic` with id `topic_id` (see [`new_topic_id`]).
    pub fn create_topic(
        &self,
        image: &MetadataImage,
        topic: &NewTopic,
        topic_id: Uuid,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        validate_topic_name(&topic.name)?;
        if image.topic(&topic.name).is_some() {
            return Err(ControllerError::TopicAlreadyExists(topic.name.clone()));
        }
        if let Some(existing) = image.colliding_topic(&topic.name) {
            return Err(TopicNameError::Collides {
                name: topic.name.clone(),
                existing: existing.to_string(),
            }
            .into());
        }
        let manual = (!topic.assignments.is_empty())
            .then(|| self.check_assignments(image, 0, &topic.assignments))
            .transpose()?;
        let partitions = match topic.partitions {
            _ if !topic.assignments.is_empty() => {
                i32::try_from(topic.assignments.len()).unwrap_or(i32::MAX)
            }
            -1 => self.num_partitions,
            n if n < 1 => return Err(ControllerError::PartitionsBelowOne(n)),
            n => n,
        };
        let factor = match manual {
            Some(_) => 1,
            None => self.check_replication_factor(image, topic.replication_factor)?,
        };
        self.topic_defaults.validate(&topic.configs)?;
        let count = partitions as usize;
        let leaderships = if self.cluster { count } else { 0 };
        let total = 1 + count + leaderships + topic.configs.len();
        if total > RECORDS_PER_OPERATION_MAX {
            return Err(ControllerError::TooManyRecords(total));
        }
        let mut records = vec![MetadataRecord::Topic(TopicRecord {
            name: topic.name.clone(),
            topic_id,
        })];
        let shards = place_partitions(&mut image.shard_loads(self.shard_count), count);
        records.extend(partition_records(topic_id, 0, &shards));
        match manual {
            Some(leaderships) if self.cluster => {
                records.extend(leaderships.into_iter().enumerate().map(|(i, l)| {
                    let partition = i32::try_from(i).unwrap_or(i32::MAX);
                    MetadataRecord::PartitionLeadership(l.to_record(topic_id, partition))
                }))
            }
            None if self.cluster => {
                records.extend(leadership_records(image, topic_id, 0, count, factor))
            }
            _ => {}
        }
        for (key, value) in &topic.configs {
            records.push(config_record(&topic.name, key, Some(value)));
        }
        Ok(records)
    }

    /// A manual replica assignment, checked as Kafka's controller does
    /// (`ReplicationControlManager.createTopic`): every partition with the
    /// same number of distinct, registered brokers, at least one of them
    /// active; on a single node, every partition on this node alone. Each
    /// partition's first leadership: its active replicas in sync, the
    /// first of them leading. `assignments[0]` is partition `first`.
    fn check_assignments(
        &self,
        image: &MetadataImage,
        first: usize,
        assignments: &[Vec<i32>],
    ) -> Result<Vec<Leadership>, ControllerError> {
        let refuse = |message: String| Err(ControllerError::InvalidReplicaAssignment(message));
        let width = assignments[0].len();
        let mut leaderships = Vec::with_capacity(assignments.len());
        for (partition, replicas) in (first..).zip(assignments) {
            if replicas.is_empty() {
                return refuse(format!("partition {partition} has an empty replica list"));
            }
            if !self.cluster {
                if replicas.as_slice() != [self.node_id] {
                    return refuse(format!(
                        "partition {partition} is assigned to brokers {replicas:?}; this \
                         cluster is the single broker {}",
                        self.node_id
                    ));
                }
                continue;
            }
            if replicas.len() != width {
                return refuse(format!(
                    "The manual partition assignment includes a partition with {} \
                     replica(s), but this is not consistent with previous partitions, which \
                     have {width} replica(s).",
                    replicas.len()
                ));
            }
            let distinct: BTreeSet<i32> = replicas.iter().copied().collect();
            if distinct.len() != replicas.len() {
                return refuse(
                    "The manual partition assignment specifies the same node id more than once."
                        .to_string(),
                );
            }
            let mut isr = Vec::new();
            for &id in replicas {
                match image.broker(id) {
                    None => {
                        return refuse(format!(
                            "The manual partition assignment includes broker {id}, but no such \
                             broker is registered."
                        ))
                    }
                    Some(broker) if !broker.fenced => isr.push(id),
                    Some(_) => {}
                }
            }
            let Some(&leader) = isr.first() else {
                return refuse(format!(
                    "All brokers specified in the manual partition assignment for partition \
                     {partition} are fenced or in controlled shutdown."
                ));
            };
            leaderships.push(Leadership {
                leader,
                leader_epoch: 0,
                replicas: replicas.clone(),
                isr,
                partition_epoch: 0,
                adding: Vec::new(),
                removing: Vec::new(),
                elr: Vec::new(),
            });
        }
        Ok(leaderships)
    }

    /// The replication factor a new topic gets: 1 on a single node; in a
    /// cluster, at least 1 and at most the registered brokers (Kafka's
    /// INVALID_REPLICATION_FACTOR otherwise).
    fn check_replication_factor(
        &self,
        image: &MetadataImage,
        factor: i16,
    ) -> Result<usize, ControllerError> {
        let effective = if factor == -1 {
            self.default_replication_factor
        } else {
            factor
        };
        if !self.cluster {
            if effective != 1 {
                return Err(ControllerError::InvalidReplicationFactor(factor));
            }
            return Ok(1);
        }
        let brokers = image.brokers().filter(|b| !b.fenced).count();
        match usize::try_from(effective) {
            Ok(n) if n >= 1 && n <= brokers => Ok(n),
            Ok(n) if n >= 1 => Err(ControllerError::NotEnoughBrokers {
                factor: effective,
                brokers,
            }),
            _ => Err(ControllerError::InvalidReplicationFactor(factor)),
        }
    }

    pub fn delete_topic(
        &self,
        image: &MetadataImage,
        name: &str,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let topic = image
            .topic(name)
            .ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))?;
        self.delete_topic_by_id(image, topic.id)
    }

    pub fn delete_topic_by_id(
        &self,
        image: &MetadataImage,
        topic_id: Uuid,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        if image.topic_by_id(&topic_id).is_none() {
            return Err(ControllerError::UnknownTopicId(topic_id));
        }
        if !self.delete_topic_enable {
            return Err(ControllerError::TopicDeletionDisabled);
        }
        Ok(vec![MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id,
        })])
    }

    /// Removes a topic whose creation some shard could not apply, whatever
    /// `delete.topic.enable` says: it was never created for the client.
    pub fn roll_back_created_topic(
        &self,
        image: &MetadataImage,
        name: &str,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let topic = image
            .topic(name)
            .ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))?;
        Ok(vec![MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: topic.id,
        })])
    }

    /// Takes partitions `first..` of `name` away again: a CreatePartitions
    /// some shard could not open is undone whole.
    pub fn roll_back_created_partitions(
        &self,
        image: &MetadataImage,
        name: &str,
        first: i32,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let topic = image
            .topic(name)
            .ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))?;
        Ok(vec![MetadataRecord::RemovePartitions(
            RemovePartitionsRecord {
                topic_id: topic.id,
                first,
            },
        )])
    }

    /// Grows `name` to `total` partitions (CreatePartitions), placed by
    /// the controller or, with `assignments`, on the replicas given for
    /// each new partition (checked as Kafka's `createPartitions`: one list
    /// per new partition, each as wide as the topic's partitions, of
    /// distinct registered brokers, one of them active).
    pub fn create_partitions(
        &self,
        image: &MetadataImage,
        name: &str,
        total: i32,
        assignments: Option<&[Vec<i32>]>,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let topic = image
            .topic(name)
            .ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))?;
        let current = topic.partition_count();
        if total <= current {
            return Err(ControllerError::PartitionsNotIncreased {
                topic: name.to_string(),
                current,
                requested: total,
            });
        }
        let added = (total - current) as usize;
        if added > RECORDS_PER_OPERATION_MAX {
            return Err(ControllerError::TooManyRecords(added));
        }
        let manual = match assignments {
            None => None,
            Some(lists) if lists.len() != added => {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "Attempted to add {added} additional partitions, but only {} assignments \
                     were supplied.",
                    lists.len()
                )))
            }
            Some(lists) => {
                let width = topic.leadership(0).map(|l| l.replicas.len());
                match (self.cluster, width) {
                    (true, Some(width)) if lists[0].len() != width => {
                        return Err(ControllerError::InvalidReplicaAssignment(format!(
                            "The manual partition assignment includes a partition with {} \
                             replica(s), but this is not consistent with previous \
                             partitions, which have {width} replica(s).",
                            lists[0].len()
                        )))
                    }
                    _ => Some(self.check_assignments(image, current as usize, lists)?),
                }
            }
        };
        let shards = place_partitions(&mut image.shard_loads(self.shard_count), added);
        let mut records: Vec<MetadataRecord> =
            partition_records(topic.id, current, &shards).collect();
        if let (true, Some(leaderships)) = (self.cluster, manual) {
            records.extend(
                leaderships
                    .into_iter()
                    .zip(current..)
                    .map(|(l, partition)| {
                        MetadataRecord::PartitionLeadership(l.to_record(topic.id, partition))
                    }),
            );
        } else if self.cluster {
            // New partitions keep the topic's replication factor.
            let alive = image.brokers().filter(|b| !b.fenced).count();
            let factor = topic
                .leadership(0)
                .map_or(1, |l| l.replicas.len())
                .min(alive)
                .max(1);
            if alive == 0 {
                return Err(ControllerError::NotEnoughBrokers {
                    factor: 1,
                    brokers: 0,
                });
            }
            records.extend(leadership_records(
                image,
                topic.id,
                current as usize,
                added,
                factor,
            ));
        }
        Ok(records)
    }

    /// IncrementalAlterConfigs on one topic.
    pub fn alter_topic_config(
        &self,
        image: &MetadataImage,
        name: &str,
        ops: &[ConfigOp],
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let topic = image
            .topic(name)
            .ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))?;
        let mut seen = std::collections::BTreeSet::new();
        let mut next = topic.configs.clone();
        for op in ops {
            if !seen.insert(op.key()) {
                return Err(ControllerError::DuplicateConfigKey(op.key().to_string()));
            }
            self.apply_op(&mut next, op)?;
        }
        self.config_changes(image, name, next)
    }

    /// Legacy AlterConfigs: `configs` replaces every override of the topic.
    pub fn replace_topic_config(
        &self,
        image: &MetadataImage,
        name: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        if image.topic(name).is_none() {
            return Err(ControllerError::UnknownTopic(name.to_string()));
        }
        self.config_changes(image, name, configs.clone())
    }

    fn apply_op(
        &self,
        overrides: &mut BTreeMap<String, String>,
        op: &ConfigOp,
    ) -> Result<(), ControllerError> {
        let (key, value, append) = match op {
            ConfigOp::Set(k, v) => {
                overrides.insert(k.clone(), v.clone());
                return Ok(());
            }
            ConfigOp::Delete(k) => {
                self.known_key(k)?;
                overrides.remove(k);
                return Ok(());
            }
            ConfigOp::Append(k, v) => (k, v, true),
            ConfigOp::Subtract(k, v) => (k, v, false),
        };
        let default = self.known_key(key)?;
        if !LIST_CONFIGS.contains(&key.as_str()) {
            return Err(ControllerError::NotAListConfig(key.clone()));
        }
        let current = overrides.get(key).cloned().unwrap_or(default);
        overrides.insert(key.clone(), edit_list(&current, value, append));
        Ok(())
    }

    /// The default value of `key`, or the error for a key Kafka does not
    /// define for topics.
    fn known_key(&self, key: &str) -> Result<String, ControllerError> {
        let value = self.topic_defaults.config.value_string(key);
        value.ok_or_else(|| {
            TopicConfigError::UnknownKey {
                key: key.to_string(),
            }
            .into()
        })
    }

    /// Validates the topic's complete new override set and emits one record
    /// per key that changes, in key order.
    fn config_changes(
        &self,
        image: &MetadataImage,
        name: &str,
        next: BTreeMap<String, String>,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        self.topic_defaults.validate(&next)?;
        let current = image
            .topic(name)
            .map(|t| t.configs.clone())
            .unwrap_or_default();
        let mut records = Vec::new();
        for (key, value) in &next {
            if current.get(key) != Some(value) {
                records.push(config_record(name, key, Some(value)));
            }
        }
        for key in current.keys().filter(|k| !next.contains_key(*k)) {
            records.push(config_record(name, key, None));
        }
        if records.len() > RECORDS_PER_OPERATION_MAX {
            return Err(ControllerError::TooManyRecords(records.len()));
        }
        records.sort_by(|a, b| record_key(a).cmp(record_key(b)));
        Ok(records)
    }

    /// IncrementalAlterConfigs on a broker resource: `broker` is a node id,
    /// or `""` for the cluster-wide default (Kafka's names).
    pub fn alter_broker_config(
        &self,
        image: &MetadataImage,
        broker: &str,
        ops: &[ConfigOp],
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        check_broker_name(broker)?;
        let mut seen = std::collections::BTreeSet::new();
        let mut next = image.broker_configs(broker).clone();
        for op in ops {
            if !seen.insert(op.key()) {
                return Err(ControllerError::DuplicateConfigKey(op.key().to_string()));
            }
            let topic_key = dynamic_topic_key(op.key())?;
            match op {
                ConfigOp::Set(k, v) => {
                    next.insert(k.clone(), v.clone());
                }
                ConfigOp::Delete(k) => {
                    next.remove(k);
                }
                ConfigOp::Append(k, v) | ConfigOp::Subtract(k, v) => {
                    if !LIST_CONFIGS.contains(&topic_key) {
                        return Err(ControllerError::NotAListConfig(k.clone()));
                    }
                    let default = self.topic_defaults.config.value_string(topic_key);
                    let current = next.get(k).cloned().or(default).unwrap_or_default();
                    let append = matches!(op, ConfigOp::Append(..));
                    next.insert(k.clone(), edit_list(&current, v, append));
                }
            }
        }
        self.broker_config_changes(image, broker, next)
    }

    /// Legacy AlterConfigs on a broker resource: `configs` replaces every
    /// dynamic config of it.
    pub fn replace_broker_config(
        &self,
        image: &MetadataImage,
        broker: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        check_broker_name(broker)?;
        for key in configs.keys() {
            dynamic_topic_key(key)?;
        }
        self.broker_config_changes(image, broker, configs.clone())
    }

    /// Validates a broker resource's complete new dynamic set (each value
    /// with its topic key's validator, then the cross-key rules on the
    /// defaults it yields) and emits one record per key that changes.
    fn broker_config_changes(
        &self,
        image: &MetadataImage,
        broker: &str,
        next: BTreeMap<String, String>,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let mut config = self.topic_defaults.config.clone();
        for (key, value) in &next {
            let topic_key = dynamic_topic_key(key)?;
            config.set(topic_key, value).map_err(|error| match error {
                TopicConfigError::InvalidValue(mut invalid) => {
                    invalid.key = key.clone();
                    TopicConfigError::InvalidValue(invalid)
                }
                other => other,
            })?;
        }
        config.with_overrides(&BTreeMap::new())?;
        let current = image.broker_configs(broker);
        let min_isr = "min.insync.replicas";
        if self.cluster && !broker.is_empty() && next.get(min_isr) != current.get(min_isr) {
            return Err(ControllerError::PerBrokerMinInsyncReplicas);
        }
        let resource = || ConfigResource::Broker(broker.to_string());
        let mut records = Vec::new();
        for (key, value) in &next {
            if current.get(key) != Some(value) {
                records.push(resource_config_record(resource(), key, Some(value)));
            }
        }
        for key in current.keys().filter(|k| !next.contains_key(*k)) {
            records.push(resource_config_record(resource(), key, None));
        }
        if records.len() > RECORDS_PER_OPERATION_MAX {
            return Err(ControllerError::TooManyRecords(records.len()));
        }
        records.sort_by(|a, b| record_key(a).cmp(record_key(b)));
        Ok(records)
    }

    /// Placement records after a restart with `self.shard_count` shards:
    /// partitions on missing shards move, then the load evens out.
    pub fn replace_for_shard_count(&self, image: &MetadataImage) -> Vec<MetadataRecord> {
        rebalance(image, self.shard_count)
            .into_iter()
            .map(MetadataRecord::PartitionPlacement)
            .collect()
    }
}

/// `current` (a comma-separated list) with the items of `value` appended
/// (each once) or removed.
fn edit_list(current: &str, value: &str, append: bool) -> String {
    let mut items: Vec<String> = split_list(current).map(str::to_string).collect();
    for item in split_list(value) {
        if append && !items.iter().any(|i| i == item) {
            items.push(item.to_string());
        } else if !append {
            items.retain(|i| i != item);
        }
    }
    items.join(",")
}

/// A broker resource is named by a node id, or `""` (the cluster default).
fn check_broker_name(broker: &str) -> Result<(), ControllerError> {
    if broker.is_empty() || broker.parse::<u32>().is_ok_and(|id| id <= i32::MAX as u32) {
        return Ok(());
    }
    Err(ControllerError::InvalidBrokerName(broker.to_string()))
}

/// The topic key a dynamic broker key sets the default of, or why `key`
/// cannot be set dynamically.
fn dynamic_topic_key(key: &str) -> Result<&'static str, ControllerError> {
    if let Some(topic_key) = topic_key_for_dynamic_broker_key(key) {
        return Ok(topic_key);
    }
    if is_known_broker_key(key) {
        return Err(ControllerError::NotDynamic(key.to_string()));
    }
    Err(ControllerError::UnknownBrokerConfig(key.to_string()))
}

fn partition_records(
    topic_id: Uuid,
    first: i32,
    shards: &[ShardId],
) -> impl Iterator<Item = MetadataRecord> + '_ {
    let records = shards.iter().zip(first..);
    records.map(move |(shard, partition)| {
        MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition,
            shard: *shard,
        })
    })
}

fn record_key(record: &MetadataRecord) -> &str {
    match record {
        MetadataRecord::Config(c) => &c.name,
        _ => "",
    }
}
