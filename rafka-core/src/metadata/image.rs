//! The metadata image: every topic, its partitions' owning shards and its
//! config overrides, the users' SCRAM credentials, the ACLs and the client
//! quotas, as of some point in the metadata log.
//!
//! Lives on every shard: shard 0 (the controller) applies records to its
//! copy and shares the result as `Arc<MetadataImage>` with the others,
//! together with the [`MetadataDelta`]s that say what changed. `apply` is
//! deterministic (no clock, no randomness, ordered maps only): the same
//! records in the same order always give the same image, which is what lets
//! a replicated log drive it later.

use rafka_proto::error::ErrorCode;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use uuid::Uuid;

use super::record::{
    AccessControlEntryRecord, BrokerEndpoint, BrokerFencingRecord, ClientQuotaRecord, ConfigRecord,
    ConfigResource, MetadataRecord, PartitionLeadershipRecord, PartitionPlacementRecord,
    PartitionRecord, ProposerRecord, RegisterBrokerRecord, RemoveAccessControlEntryRecord,
    RemovePartitionsRecord, RemoveTopicRecord, RemoveUserScramCredentialRecord, ShardId,
    TopicRecord, UserScramCredentialRecord,
};
use crate::acl::AclSet;
use crate::config::topic_name::{collision_key, has_collision_chars};
use crate::config::TopicDefaults;
use crate::quota::{EntityError, QuotaEntity, QuotaKey, QuotaTable, QuotaValue};
use crate::sasl::{CredentialError, ScramCredential, ScramCredentials, ScramMechanism};

/// One topic as of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    /// Owning shard of partition `i` at index `i`.
    pub partitions: Vec<ShardId>,
    /// Config overrides exactly as the client sent them.
    pub configs: BTreeMap<String, String>,
    /// Leadership of partition `i` at index `i`; `None`: never assigned
    /// (a single node's partition, led by the node itself).
    pub leadership: Vec<Option<Leadership>>,
}

/// Which brokers hold a partition and which one leads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    /// -1 ([`NO_LEADER`]): no live in-sync replica to lead it.
    pub leader: i32,
    /// Bumped by every change of leader.
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Kafka's partition epoch: bumped by every change of the leader or
    /// the ISR (AlterPartition names the one it changes).
    pub partition_epoch: i32,
    /// A reassignment in progress: the replicas it adds (out of the ISR
    /// until they caught up) and those it removes once they have. Both
    /// are in `replicas`; both empty when none is in progress.
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
    /// KIP-966's eligible leader replicas (see
    /// [`crate::metadata::partition_control`]); empty outside a cluster.
    pub elr: Vec<i32>,
}

/// The leader of a partition no live in-sync replica can lead.
pub const NO_LEADER: i32 = -1;

impl Leadership {
    /// The record that sets partition `partition` of `topic_id` to this.
    pub fn to_record(&self, topic_id: Uuid, partition: i32) -> PartitionLeadershipRecord {
        PartitionLeadershipRecord {
            topic_id,
            partition,
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            replicas: self.replicas.clone(),
            isr: self.isr.clone(),
            partition_epoch: self.partition_epoch,
            adding: self.adding.clone(),
            removing: self.removing.clone(),
            elr: self.elr.clone(),
        }
    }

    /// The leadership a record sets.
    pub fn from_record(record: &PartitionLeadershipRecord) -> Leadership {
        Leadership {
            leader: record.leader,
            leader_epoch: record.leader_epoch,
            replicas: record.replicas.clone(),
            isr: record.isr.clone(),
            partition_epoch: record.partition_epoch,
            adding: record.adding.clone(),
            removing: record.removing.clone(),
            elr: record.elr.clone(),
        }
    }

    /// Whether a reassignment is in progress.
    pub fn reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }
}

/// A registered broker as the image knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerImage {
    pub node_id: i32,
    pub epoch: i64,
    pub incarnation_id: Uuid,
    pub rack: Option<String>,
    pub endpoints: Vec<BrokerEndpoint>,
    /// Fenced by the active controller (not alive): gets no new
    /// partitions, is not shown to clients, leads nothing.
    pub fenced: bool,
    /// Registered again on a new disk ([`RegisterBrokerRecord::
    /// fresh_data_dir`]) and not let in since: the active controller takes
    /// it out of every eligible leader replica set as it unfences it.
    pub fresh_data_dir: bool,
}

impl TopicImage {
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }

    pub fn shard_of(&self, partition: i32) -> Option<ShardId> {
        let index = usize::try_from(partition).ok()?;
        self.partitions.get(index).copied()
    }

    /// The partition's leadership, if the cluster assigned one.
    pub fn leadership(&self, partition: i32) -> Option<&Leadership> {
        let index = usize::try_from(partition).ok()?;
        self.leadership.get(index)?.as_ref()
    }

    /// Whether node `node_id` holds partition `partition` (a partition
    /// without assigned replicas is held by every node: a single node).
    pub fn is_replica(&self, partition: i32, node_id: i32) -> bool {
        self.leadership(partition)
            .is_none_or(|l| l.replicas.contains(&node_id))
    }
}

/// What one applied record changed, for the shards that mirror the image
/// (open a partition's log, drop a deleted topic's data, reload configs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataDelta {
    TopicCreated {
        topic_id: Uuid,
        name: String,
    },
    PartitionCreated {
        topic_id: Uuid,
        name: String,
        partition: i32,
        shard: ShardId,
    },
    /// Partitions `first..` removed again (a rolled-back CreatePartitions);
    /// `shards[i]` owned partition `first + i`.
    PartitionsRemoved {
        topic_id: Uuid,
        name: String,
        first: i32,
        shards: Vec<ShardId>,
    },
    /// `partitions[i]` is the shard that owned partition `i`.
    TopicRemoved {
        topic_id: Uuid,
        name: String,
        partitions: Vec<ShardId>,
    },
    ConfigChanged {
        topic_id: Uuid,
        name: String,
        key: String,
        old: Option<String>,
        new: Option<String>,
    },
    /// A dynamic broker config changed: `broker` is a node id, or `""`
    /// for the cluster-wide default.
    BrokerConfigChanged {
        broker: String,
        key: String,
        old: Option<String>,
        new: Option<String>,
    },
    PartitionMoved {
        topic_id: Uuid,
        name: String,
        partition: i32,
        from: ShardId,
        to: ShardId,
    },
    /// A user's credential for `mechanism` was set (created or replaced);
    /// the credential itself is read from the image.
    ScramCredentialSet {
        user: String,
        mechanism: ScramMechanism,
    },
    ScramCredentialRemoved {
        user: String,
        mechanism: ScramMechanism,
    },
    /// An ACL was added or removed: the image's [`AclSet`] is all a shard
    /// needs, so nothing else follows from it.
    AclChanged {
        id: Uuid,
    },
    /// A client quota was set (`new`) or removed (`None`); shards re-read
    /// the image's [`QuotaTable`] for the quotas their clients get.
    ClientQuotaChanged {
        entity: QuotaEntity,
        key: QuotaKey,
        old: Option<QuotaValue>,
        new: Option<QuotaValue>,
    },
    /// A broker registered (again): `epoch` is its new broker epoch.
    BrokerRegistered {
        node_id: i32,
        epoch: i64,
    },
    /// A proposer's dedupe window was restored (from a snapshot).
    ProposerNoted {
        incarnation: u64,
    },
    /// A partition's leader, replicas or ISR changed (boxed: by far the
    /// largest change).
    LeadershipChanged {
        topic_id: Uuid,
        name: String,
        partition: i32,
        old: Option<Box<Leadership>>,
        new: Box<Leadership>,
    },
}

/// A record that does not fit the image it is applied to. The controller
/// validates before writing, so on replay this means a corrupt or foreign
/// log; on commit, a race between two operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("topic name {0:?} already exists")]
    NameTaken(String),
    #[error("topic id {0} already exists")]
    IdTaken(Uuid),
    #[error("unknown topic id {0}")]
    UnknownTopicId(Uuid),
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("topic {topic_id} partition {got} out of order (next is {expected})")]
    PartitionOutOfOrder {
        topic_id: Uuid,
        expected: i32,
        got: i32,
    },
    #[error("topic {topic_id} has no partition {partition}")]
    UnknownPartition { topic_id: Uuid, partition: i32 },
    #[error("SCRAM credential of user {user:?}: {error}")]
    InvalidScramCredential {
        user: String,
        error: CredentialError,
    },
    #[error("SCRAM credential with an empty user name")]
    EmptyScramUser,
    #[error("user {user:?} has no {mechanism} credential")]
    UnknownScramCredential {
        user: String,
        mechanism: ScramMechanism,
    },
    #[error("ACL id {0} already exists")]
    AclIdTaken(Uuid),
    #[error("unknown ACL id {0}")]
    UnknownAclId(Uuid),
    #[error("client quota entity {entity}: {error}")]
    InvalidClientQuotaEntity {
        entity: QuotaEntity,
        error: EntityError,
    },
    #[error("client quota key {key} does not apply to entity {entity}")]
    ClientQuotaKeyMismatch { entity: QuotaEntity, key: QuotaKey },
    #[error("entity {entity} has no client quota {key}")]
    UnknownClientQuota { entity: QuotaEntity, key: QuotaKey },
    #[error("broker {node_id} registration epoch {epoch} is not above its current {current}")]
    StaleBrokerEpoch {
        node_id: i32,
        epoch: i64,
        current: i64,
    },
    #[error("broker {node_id} has no registration of epoch {epoch}")]
    UnknownBrokerEpoch { node_id: i32, epoch: i64 },
    #[error(
        "leader epoch {epoch} of topic {topic_id} partition {partition} is not above {current}"
    )]
    StaleLeaderEpoch {
        topic_id: Uuid,
        partition: i32,
        epoch: i32,
        current: i32,
    },
    #[error(
        "partition epoch {epoch} of topic {topic_id} partition {partition} is not above {current}"
    )]
    StalePartitionEpoch {
        topic_id: Uuid,
        partition: i32,
        epoch: i32,
        current: i32,
    },
}

impl ApplyError {
    /// The Kafka error a client sees when a commit loses a race.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            ApplyError::NameTaken(_) => ErrorCode::TOPIC_ALREADY_EXISTS,
            ApplyError::UnknownTopicId(_) => ErrorCode::UNKNOWN_TOPIC_ID,
            ApplyError::UnknownTopic(_) | ApplyError::UnknownPartition { .. } => {
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            }
            ApplyError::InvalidScramCredential { .. } | ApplyError::EmptyScramUser => {
                ErrorCode::UNACCEPTABLE_CREDENTIAL
            }
            ApplyError::UnknownScramCredential { .. } => ErrorCode::RESOURCE_NOT_FOUND,
            ApplyError::InvalidClientQuotaEntity { .. }
            | ApplyError::ClientQuotaKeyMismatch { .. } => ErrorCode::INVALID_REQUEST,
            ApplyError::StaleLeaderEpoch { .. } => ErrorCode::FENCED_LEADER_EPOCH,
            ApplyError::StalePartitionEpoch { .. } => ErrorCode::INVALID_UPDATE_VERSION,
            _ => ErrorCode::UNKNOWN_SERVER_ERROR,
        }
    }
}

/// All topics. Cloning copies the maps but shares each topic (`Arc`), and
/// `apply` copies only the topic it changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    topics: BTreeMap<Uuid, Arc<TopicImage>>,
    ids_by_name: BTreeMap<String, Uuid>,
    /// Names containing `.` or `_`, by their collision key.
    collisions: BTreeMap<String, BTreeSet<String>>,
    partition_count: u64,
    /// Dynamic broker configs by broker name (`""` = cluster default).
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// SCRAM credentials by user, then mechanism (never an empty inner map).
    scram_credentials: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    acls: AclSet,
    client_quotas: QuotaTable,
    /// Registered brokers by node id.
    brokers: BTreeMap<i32, BrokerImage>,
    /// Per proposer incarnation, which of its proposals were applied (a
    /// cluster's quorum entries; see [`MetadataImage::note_proposal`]).
    proposers: BTreeMap<u64, ProposerWindow>,
    /// The order the next new proposer window gets.
    next_proposer_order: u64,
}

/// Applied sequences of one proposer incarnation: every one below `low`,
/// and those in `seen`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ProposerWindow {
    node_id: i32,
    order: u64,
    low: u64,
    seen: BTreeSet<u64>,
}

/// Applied sequences a window remembers above its `low`.
const PROPOSER_WINDOW_SEQUENCES: usize = 1024;
/// Proposer incarnations remembered (the oldest window goes first).
const PROPOSER_WINDOWS: usize = 64;

impl MetadataImage {
    pub fn new() -> Self {
        MetadataImage::default()
    }

    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topic_by_id(self.ids_by_name.get(name)?)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicImage> {
        self.topics.get(id).map(|t| t.as_ref())
    }

    /// Topics in name order.
    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.ids_by_name
            .values()
            .filter_map(|id| self.topics.get(id).map(|t| t.as_ref()))
    }

    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    pub fn partition_count(&self) -> u64 {
        self.partition_count
    }

    pub fn partition_shard(&self, topic: &str, partition: i32) -> Option<ShardId> {
        self.topic(topic)?.shard_of(partition)
    }

    /// An existing topic that `name` would collide with (`.` vs `_`).
    pub fn colliding_topic(&self, name: &str) -> Option<&str> {
        if !has_collision_chars(name) {
            return None;
        }
        let names = self.collisions.get(&collision_key(name))?;
        names
            .iter()
            .find(|n| n.as_str() != name)
            .map(String::as_str)
    }

    /// Partitions owned by `shard`, as (topic, partition), in name order.
    pub fn partitions_on_shard(&self, shard: ShardId) -> impl Iterator<Item = (&TopicImage, i32)> {
        self.topics().flat_map(move |t| {
            t.partitions
                .iter()
                .enumerate()
                .filter(move |(_, s)| **s == shard)
                .map(move |(i, _)| (t, i32::try_from(i).unwrap_or(i32::MAX)))
        })
    }

    /// Partition count per shard for shards `0..shard_count`; partitions on
    /// shards outside that range are not counted.
    pub fn shard_loads(&self, shard_count: u32) -> Vec<u64> {
        let mut loads = vec![0u64; shard_count as usize];
        for t in self.topics.values() {
            for s in &t.partitions {
                if let Some(load) = loads.get_mut(*s as usize) {
                    *load += 1;
                }
            }
        }
        loads
    }

    /// The dynamic broker configs of `broker` (a node id, or `""` for
    /// the cluster-wide default); empty when none is set.
    pub fn broker_configs(&self, broker: &str) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.broker_configs.get(broker).unwrap_or(&EMPTY)
    }

    /// The topic defaults broker `node_id` applies: its static `defaults`
    /// with the cluster-wide and its own dynamic broker configs on top.
    pub fn topic_defaults<'a>(
        &self,
        defaults: &'a TopicDefaults,
        node_id: i32,
    ) -> Cow<'a, TopicDefaults> {
        if self.broker_configs.is_empty() {
            return Cow::Borrowed(defaults);
        }
        let cluster = self.broker_configs("");
        let broker = self.broker_configs(&node_id.to_string());
        Cow::Owned(defaults.with_dynamic(cluster, broker))
    }

    /// Every ACL of the cluster.
    pub fn acls(&self) -> &AclSet {
        &self.acls
    }

    /// Every client quota of the cluster.
    pub fn client_quotas(&self) -> &QuotaTable {
        &self.client_quotas
    }

    /// Whether any dynamic broker config is set (anywhere).
    pub fn has_broker_configs(&self) -> bool {
        !self.broker_configs.is_empty()
    }

    /// A user's SCRAM credential for one mechanism.
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<&ScramCredential> {
        self.scram_credentials.get(user)?.get(&mechanism)
    }

    /// Users with SCRAM credentials, in name order, with their mechanisms
    /// (what DescribeUserScramCredentials lists).
    pub fn scram_users(
        &self,
    ) -> impl Iterator<Item = (&str, &BTreeMap<ScramMechanism, ScramCredential>)> {
        self.scram_credentials.iter().map(|(u, c)| (u.as_str(), c))
    }

    /// Notes that proposal `sequence` of proposer `incarnation` (on node
    /// `node_id`) reached the log; false if it already had (a copy proposed
    /// again after a leader change), which the applier then skips. Kept in
    /// the image, so every node (and every snapshot) decides alike. A
    /// window remembers its last 1,024 sequences and 64 incarnations are
    /// remembered: a copy older than that counts as seen, and its
    /// proposer gave up on it long before.
    pub fn note_proposal(&mut self, node_id: i32, incarnation: u64, sequence: u64) -> bool {
        if !self.proposers.contains_key(&incarnation) {
            if self.proposers.len() >= PROPOSER_WINDOWS {
                let oldest = self
                    .proposers
                    .iter()
                    .min_by_key(|(_, w)| w.order)
                    .map(|(i, _)| *i);
                if let Some(oldest) = oldest {
                    self.proposers.remove(&oldest);
                }
            }
            let order = self.next_proposer_order;
            self.next_proposer_order += 1;
            self.proposers.insert(
                incarnation,
                ProposerWindow {
                    node_id,
                    order,
                    ..ProposerWindow::default()
                },
            );
        }
        let window = self
            .proposers
            .get_mut(&incarnation)
            .expect("inserted above");
        if sequence < window.low || !window.seen.insert(sequence) {
            return false;
        }
        while window.seen.len() > PROPOSER_WINDOW_SEQUENCES {
            if let Some(first) = window.seen.pop_first() {
                window.low = first + 1;
            }
        }
        true
    }

    fn apply_proposer(&mut self, r: &ProposerRecord) -> MetadataDelta {
        self.next_proposer_order = self.next_proposer_order.max(r.order + 1);
        self.proposers.insert(
            r.incarnation,
            ProposerWindow {
                node_id: r.node_id,
                order: r.order,
                low: r.low,
                seen: r.seen.iter().copied().collect(),
            },
        );
        MetadataDelta::ProposerNoted {
            incarnation: r.incarnation,
        }
    }

    /// Registered brokers in node id order.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.values()
    }

    pub fn broker(&self, node_id: i32) -> Option<&BrokerImage> {
        self.brokers.get(&node_id)
    }

    /// The image as records that rebuild it from empty (a snapshot): the
    /// ACLs in id order, the dynamic broker configs, the SCRAM credentials
    /// (user, then mechanism order), the client quotas (entity, then key
    /// order), then per topic in name order, its
    /// TopicRecord, PartitionRecords and ConfigRecords.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        for (incarnation, window) in &self.proposers {
            out.push(MetadataRecord::Proposer(ProposerRecord {
                incarnation: *incarnation,
                node_id: window.node_id,
                order: window.order,
                low: window.low,
                seen: window.seen.iter().copied().collect(),
            }));
        }
        for broker in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                node_id: broker.node_id,
                epoch: broker.epoch,
                incarnation_id: broker.incarnation_id,
                rack: broker.rack.clone(),
                endpoints: broker.endpoints.clone(),
                fresh_data_dir: broker.fresh_data_dir,
            }));
            if broker.fenced {
                out.push(MetadataRecord::BrokerFencing(BrokerFencingRecord {
                    node_id: broker.node_id,
                    epoch: broker.epoch,
                    fenced: true,
                }));
            }
        }
        for (id, acl) in self.acls.iter() {
            out.push(MetadataRecord::AccessControlEntry(
                AccessControlEntryRecord {
                    id: *id,
                    acl: acl.clone(),
                },
            ));
        }
        for (broker, configs) in &self.broker_configs {
            for (key, value) in configs {
                out.push(MetadataRecord::Config(ConfigRecord {
                    resource: ConfigResource::Broker(broker.clone()),
                    name: key.clone(),
                    value: Some(value.clone()),
                }));
            }
        }
        for (user, credentials) in &self.scram_credentials {
            for credential in credentials.values() {
                out.push(MetadataRecord::UserScramCredential(
                    UserScramCredentialRecord::new(user.clone(), credential),
                ));
            }
        }
        for (entity, quotas) in self.client_quotas.iter() {
            for (key, value) in quotas {
                out.push(MetadataRecord::ClientQuota(ClientQuotaRecord {
                    entity: entity.clone(),
                    key: *key,
                    value: Some(*value),
                }));
            }
        }
        for t in self.topics() {
            out.push(MetadataRecord::Topic(TopicRecord {
                name: t.name.clone(),
                topic_id: t.id,
            }));
            for (i, shard) in t.partitions.iter().enumerate() {
                out.push(MetadataRecord::Partition(PartitionRecord {
                    topic_id: t.id,
                    partition: i32::try_from(i).unwrap_or(i32::MAX),
                    shard: *shard,
                }));
            }
            for (i, leadership) in t.leadership.iter().enumerate() {
                if let Some(l) = leadership {
                    let partition = i32::try_from(i).unwrap_or(i32::MAX);
                    out.push(MetadataRecord::PartitionLeadership(
                        l.to_record(t.id, partition),
                    ));
                }
            }
            for (key, value) in &t.configs {
                out.push(MetadataRecord::Config(ConfigRecord {
                    resource: ConfigResource::Topic(t.name.clone()),
                    name: key.clone(),
                    value: Some(value.clone()),
                }));
            }
        }
        out
    }

    /// Applies one record; on error the image is unchanged.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<MetadataDelta, ApplyError> {
        match record {
            MetadataRecord::Topic(r) => self.apply_topic(r),
            MetadataRecord::Partition(r) => self.apply_partition(r),
            MetadataRecord::RemoveTopic(r) => self.apply_remove(r),
            MetadataRecord::Config(r) => self.apply_config(r),
            MetadataRecord::PartitionPlacement(r) => self.apply_placement(r),
            MetadataRecord::RemovePartitions(r) => self.apply_remove_partitions(r),
            MetadataRecord::UserScramCredential(r) => self.apply_scram_credential(r),
            MetadataRecord::RemoveUserScramCredential(r) => self.apply_remove_scram_credential(r),
            MetadataRecord::AccessControlEntry(r) => self.apply_acl(r),
            MetadataRecord::RemoveAccessControlEntry(r) => self.apply_remove_acl(r),
            MetadataRecord::ClientQuota(r) => self.apply_client_quota(r),
            MetadataRecord::RegisterBroker(r) => self.apply_register_broker(r),
            MetadataRecord::PartitionLeadership(r) => self.apply_leadership(r),
            MetadataRecord::BrokerFencing(r) => self.apply_fencing(r),
            MetadataRecord::Proposer(r) => Ok(self.apply_proposer(r)),
        }
    }

    fn apply_register_broker(
        &mut self,
        r: &RegisterBrokerRecord,
    ) -> Result<MetadataDelta, ApplyError> {
        if let Some(current) = self.brokers.get(&r.node_id) {
            if r.epoch <= current.epoch {
                return Err(ApplyError::StaleBrokerEpoch {
                    node_id: r.node_id,
                    epoch: r.epoch,
                    current: current.epoch,
                });
            }
        }
        // A broker registering again is a new process on the old disk: it
        // starts fenced, so the active controller first moves what it led
        // and takes it out of the ISRs (it may restart with a log tail no
        // other replica has and a high watermark it cannot vouch for), then
        // unfences it as a follower that catches up. A first registration
        // holds nothing yet.
        let fenced = self.brokers.contains_key(&r.node_id);
        self.brokers.insert(
            r.node_id,
            BrokerImage {
                node_id: r.node_id,
                epoch: r.epoch,
                incarnation_id: r.incarnation_id,
                rack: r.rack.clone(),
                endpoints: r.endpoints.clone(),
                fenced,
                fresh_data_dir: r.fresh_data_dir,
            },
        );
        Ok(MetadataDelta::BrokerRegistered {
            node_id: r.node_id,
            epoch: r.epoch,
        })
    }

    fn apply_fencing(&mut self, r: &BrokerFencingRecord) -> Result<MetadataDelta, ApplyError> {
        let broker = self
            .brokers
            .get_mut(&r.node_id)
            .filter(|b| b.epoch == r.epoch)
            .ok_or(ApplyError::UnknownBrokerEpoch {
                node_id: r.node_id,
                epoch: r.epoch,
            })?;
        broker.fenced = r.fenced;
        if !r.fenced {
            // Let in: what its new disk cost was settled before (the
            // active controller commits that with the unfencing).
            broker.fresh_data_dir = false;
        }
        Ok(MetadataDelta::BrokerRegistered {
            node_id: r.node_id,
            epoch: r.epoch,
        })
    }

    /// A partition's new leadership. Every change after the first is
    /// computed from the image as of some point and must carry a partition
    /// epoch above the current one: a change computed before another one
    /// committed (the active controller's AlterPartition racing its own
    /// election, a controller that lost its leadership) no longer applies.
    fn apply_leadership(
        &mut self,
        r: &PartitionLeadershipRecord,
    ) -> Result<MetadataDelta, ApplyError> {
        let topic = self.topic_mut(&r.topic_id)?;
        let slot = usize::try_from(r.partition)
            .ok()
            .and_then(|i| topic.leadership.get_mut(i))
            .ok_or(ApplyError::UnknownPartition {
                topic_id: r.topic_id,
                partition: r.partition,
            })?;
        if let Some(current) = slot {
            if r.leader_epoch < current.leader_epoch {
                return Err(ApplyError::StaleLeaderEpoch {
                    topic_id: r.topic_id,
                    partition: r.partition,
                    epoch: r.leader_epoch,
                    current: current.leader_epoch,
                });
            }
            if r.partition_epoch <= current.partition_epoch {
                return Err(ApplyError::StalePartitionEpoch {
                    topic_id: r.topic_id,
                    partition: r.partition,
                    epoch: r.partition_epoch,
                    current: current.partition_epoch,
                });
            }
        }
        let new = Leadership::from_record(r);
        let old = slot.replace(new.clone());
        Ok(MetadataDelta::LeadershipChanged {
            topic_id: r.topic_id,
            name: topic.name.clone(),
            partition: r.partition,
            old: old.map(Box::new),
            new: Box::new(new),
        })
    }

    fn apply_client_quota(&mut self, r: &ClientQuotaRecord) -> Result<MetadataDelta, ApplyError> {
        r.entity
            .check()
            .map_err(|error| ApplyError::InvalidClientQuotaEntity {
                entity: r.entity.clone(),
                error,
            })?;
        if !r.key.applies_to(&r.entity) {
            return Err(ApplyError::ClientQuotaKeyMismatch {
                entity: r.entity.clone(),
                key: r.key,
            });
        }
        let old = match r.value {
            Some(value) => self.client_quotas.set(r.entity.clone(), r.key, value),
            None => Some(self.client_quotas.remove(&r.entity, r.key).ok_or_else(|| {
                ApplyError::UnknownClientQuota {
                    entity: r.entity.clone(),
                    key: r.key,
                }
            })?),
        };
        Ok(MetadataDelta::ClientQuotaChanged {
            entity: r.entity.clone(),
            key: r.key,
            old,
            new: r.value,
        })
    }

    fn apply_acl(&mut self, r: &AccessControlEntryRecord) -> Result<MetadataDelta, ApplyError> {
        if self.acls.get(&r.id).is_some() {
            return Err(ApplyError::AclIdTaken(r.id));
        }
        self.acls.insert(r.id, r.acl.clone());
        Ok(MetadataDelta::AclChanged { id: r.id })
    }

    fn apply_remove_acl(
        &mut self,
        r: &RemoveAccessControlEntryRecord,
    ) -> Result<MetadataDelta, ApplyError> {
        match self.acls.remove(&r.id) {
            Some(_) => Ok(MetadataDelta::AclChanged { id: r.id }),
            None => Err(ApplyError::UnknownAclId(r.id)),
        }
    }

    fn apply_scram_credential(
        &mut self,
        r: &UserScramCredentialRecord,
    ) -> Result<MetadataDelta, ApplyError> {
        if r.name.is_empty() {
            return Err(ApplyError::EmptyScramUser);
        }
        let credential = ScramCredential::new(
            r.mechanism,
            r.salt.clone(),
            r.stored_key.clone(),
            r.server_key.clone(),
            r.iterations,
        )
        .map_err(|error| ApplyError::InvalidScramCredential {
            user: r.name.clone(),
            error,
        })?;
        let credentials = self.scram_credentials.entry(r.name.clone()).or_default();
        credentials.insert(r.mechanism, credential);
        Ok(MetadataDelta::ScramCredentialSet {
            user: r.name.clone(),
            mechanism: r.mechanism,
        })
    }

    fn apply_remove_scram_credential(
        &mut self,
        r: &RemoveUserScramCredentialRecord,
    ) -> Result<MetadataDelta, ApplyError> {
        let unknown = || ApplyError::UnknownScramCredential {
            user: r.name.clone(),
            mechanism: r.mechanism,
        };
        let credentials = self
            .scram_credentials
            .get_mut(&r.name)
            .ok_or_else(unknown)?;
        credentials.remove(&r.mechanism).ok_or_else(unknown)?;
        if credentials.is_empty() {
            self.scram_credentials.remove(&r.name);
        }
        Ok(MetadataDelta::ScramCredentialRemoved {
            user: r.name.clone(),
            mechanism: r.mechanism,
        })
    }

    fn apply_topic(&mut self, r: &TopicRecord) -> Result<MetadataDelta, ApplyError> {
        if self.ids_by_name.contains_key(&r.name) {
            return Err(ApplyError::NameTaken(r.name.clone()));
        }
        if self.topics.contains_key(&r.topic_id) {
            return Err(ApplyError::IdTaken(r.topic_id));
        }
        let topic = TopicImage {
            name: r.name.clone(),
            id: r.topic_id,
            partitions: Vec::new(),
            configs: BTreeMap::new(),
            leadership: Vec::new(),
        };
        self.topics.insert(r.topic_id, Arc::new(topic));
        self.ids_by_name.insert(r.name.clone(), r.topic_id);
        if has_collision_chars(&r.name) {
            let names = self.collisions.entry(collision_key(&r.name)).or_default();
            names.insert(r.name.clone());
        }
        Ok(MetadataDelta::TopicCreated {
            topic_id: r.topic_id,
            name: r.name.clone(),
        })
    }

    fn topic_mut(&mut self, id: &Uuid) -> Result<&mut TopicImage, ApplyError> {
        let topic = self
            .topics
            .get_mut(id)
            .ok_or(ApplyError::UnknownTopicId(*id))?;
        Ok(Arc::make_mut(topic))
    }

    fn apply_partition(&mut self, r: &PartitionRecord) -> Result<MetadataDelta, ApplyError> {
        let topic = self.topic_mut(&r.topic_id)?;
        let expected = topic.partition_count();
        if r.partition != expected || expected == i32::MAX {
            return Err(ApplyError::PartitionOutOfOrder {
                topic_id: r.topic_id,
                expected,
                got: r.partition,
            });
        }
        topic.partitions.push(r.shard);
        topic.leadership.push(None);
        let name = topic.name.clone();
        self.partition_count += 1;
        Ok(MetadataDelta::PartitionCreated {
            topic_id: r.topic_id,
            name,
            partition: r.partition,
            shard: r.shard,
        })
    }

    fn apply_remove_partitions(
        &mut self,
        r: &RemovePartitionsRecord,
    ) -> Result<MetadataDelta, ApplyError> {
        let topic = self.topic_mut(&r.topic_id)?;
        let count = topic.partition_count();
        if r.first < 1 || r.first >= count {
            return Err(ApplyError::PartitionOutOfOrder {
                topic_id: r.topic_id,
                expected: count,
                got: r.first,
            });
        }
        let removed = topic.partitions.split_off(r.first as usize);
        topic.leadership.truncate(r.first as usize);
        let name = topic.name.clone();
        self.partition_count -= removed.len() as u64;
        Ok(MetadataDelta::PartitionsRemoved {
            topic_id: r.topic_id,
            name,
            first: r.first,
            shards: removed,
        })
    }

    fn apply_remove(&mut self, r: &RemoveTopicRecord) -> Result<MetadataDelta, ApplyError> {
        let topic = self
            .topics
            .remove(&r.topic_id)
            .ok_or(ApplyError::UnknownTopicId(r.topic_id))?;
        self.ids_by_name.remove(&topic.name);
        let key = collision_key(&topic.name);
        if let Some(names) = self.collisions.get_mut(&key) {
            names.remove(&topic.name);
            if names.is_empty() {
                self.collisions.remove(&key);
            }
        }
        self.partition_count -= topic.partitions.len() as u64;
        let topic = Arc::unwrap_or_clone(topic);
        Ok(MetadataDelta::TopicRemoved {
            topic_id: r.topic_id,
            name: topic.name,
            partitions: topic.partitions,
        })
    }

    fn apply_config(&mut self, r: &ConfigRecord) -> Result<MetadataDelta, ApplyError> {
        let name = match &r.resource {
            ConfigResource::Topic(name) => name,
            ConfigResource::Broker(broker) => return Ok(self.apply_broker_config(broker, r)),
        };
        let id = *self
            .ids_by_name
            .get(name)
            .ok_or_else(|| ApplyError::UnknownTopic(name.clone()))?;
        let topic = self.topic_mut(&id)?;
        let old = match &r.value {
            Some(v) => topic.configs.insert(r.name.clone(), v.clone()),
            None => topic.configs.remove(&r.name),
        };
        Ok(MetadataDelta::ConfigChanged {
            topic_id: id,
            name: name.clone(),
            key: r.name.clone(),
            old,
            new: r.value.clone(),
        })
    }

    fn apply_broker_config(&mut self, broker: &str, r: &ConfigRecord) -> MetadataDelta {
        let configs = self.broker_configs.entry(broker.to_string()).or_default();
        let old = match &r.value {
            Some(v) => configs.insert(r.name.clone(), v.clone()),
            None => configs.remove(&r.name),
        };
        if configs.is_empty() {
            self.broker_configs.remove(broker);
        }
        MetadataDelta::BrokerConfigChanged {
            broker: broker.to_string(),
            key: r.name.clone(),
            old,
            new: r.value.clone(),
        }
    }

    fn apply_placement(
        &mut self,
        r: &PartitionPlacementRecord,
    ) -> Result<MetadataDelta, ApplyError> {
        let topic = self.topic_mut(&r.topic_id)?;
        let slot = usize::try_from(r.partition)
            .ok()
            .and_then(|i| topic.partitions.get_mut(i))
            .ok_or(ApplyError::UnknownPartition {
                topic_id: r.topic_id,
                partition: r.partition,
            })?;
        let from = std::mem::replace(slot, r.shard);
        Ok(MetadataDelta::PartitionMoved {
            topic_id: r.topic_id,
            name: topic.name.clone(),
            partition: r.partition,
            from,
            to: r.shard,
        })
    }
}

impl MetadataImage {
    /// The deltas that take a mirror of `self` to `next`: what a shard
    /// must do when a whole image replaces its own (a leader's snapshot
    /// installed on a node that fell behind). Topics are matched by id, so
    /// a topic deleted and re-created under its name is a removal and a
    /// creation; SCRAM, ACL and quota changes need no delta (shards read
    /// them from the image).
    pub fn deltas_to(&self, next: &MetadataImage) -> Vec<MetadataDelta> {
        let mut deltas = Vec::new();
        for (id, old) in &self.topics {
            let Some(new) = next.topics.get(id) else {
                deltas.push(MetadataDelta::TopicRemoved {
                    topic_id: *id,
                    name: old.name.clone(),
                    partitions: old.partitions.clone(),
                });
                continue;
            };
            if new.partitions.len() < old.partitions.len() {
                let first = new.partition_count();
                deltas.push(MetadataDelta::PartitionsRemoved {
                    topic_id: *id,
                    name: old.name.clone(),
                    first,
                    shards: old.partitions[new.partitions.len()..].to_vec(),
                });
            }
            for (index, (from, to)) in old.partitions.iter().zip(&new.partitions).enumerate() {
                if from != to {
                    deltas.push(MetadataDelta::PartitionMoved {
                        topic_id: *id,
                        name: old.name.clone(),
                        partition: i32::try_from(index).unwrap_or(i32::MAX),
                        from: *from,
                        to: *to,
                    });
                }
            }
            let keys: BTreeSet<&String> = old.configs.keys().chain(new.configs.keys()).collect();
            for key in keys {
                let (before, after) = (old.configs.get(key), new.configs.get(key));
                if before != after {
                    deltas.push(MetadataDelta::ConfigChanged {
                        topic_id: *id,
                        name: old.name.clone(),
                        key: key.clone(),
                        old: before.cloned(),
                        new: after.cloned(),
                    });
                }
            }
        }
        for (id, new) in &next.topics {
            let first = match self.topics.get(id) {
                Some(old) => old.partitions.len(),
                None => {
                    deltas.push(MetadataDelta::TopicCreated {
                        topic_id: *id,
                        name: new.name.clone(),
                    });
                    0
                }
            };
            for (index, shard) in new.partitions.iter().enumerate().skip(first) {
                deltas.push(MetadataDelta::PartitionCreated {
                    topic_id: *id,
                    name: new.name.clone(),
                    partition: i32::try_from(index).unwrap_or(i32::MAX),
                    shard: *shard,
                });
            }
            let old_leadership = self.topics.get(id).map(|t| t.leadership.as_slice());
            for (index, leadership) in new.leadership.iter().enumerate() {
                let before = old_leadership.and_then(|l| l.get(index)).cloned().flatten();
                if let Some(after) = leadership {
                    if before.as_ref() != Some(after) {
                        deltas.push(MetadataDelta::LeadershipChanged {
                            topic_id: *id,
                            name: new.name.clone(),
                            partition: i32::try_from(index).unwrap_or(i32::MAX),
                            old: before.map(Box::new),
                            new: Box::new(after.clone()),
                        });
                    }
                }
            }
        }
        for (node_id, broker) in &next.brokers {
            if self.brokers.get(node_id) != Some(broker) {
                deltas.push(MetadataDelta::BrokerRegistered {
                    node_id: *node_id,
                    epoch: broker.epoch,
                });
            }
        }
        let brokers: BTreeSet<&String> = self
            .broker_configs
            .keys()
            .chain(next.broker_configs.keys())
            .collect();
        for broker in brokers {
            let (old, new) = (self.broker_configs(broker), next.broker_configs(broker));
            let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
            for key in keys {
                if old.get(key) != new.get(key) {
                    deltas.push(MetadataDelta::BrokerConfigChanged {
                        broker: broker.clone(),
                        key: key.clone(),
                        old: old.get(key).cloned(),
                        new: new.get(key).cloned(),
                    });
                }
            }
        }
        deltas
    }
}

impl ScramCredentials for MetadataImage {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<&ScramCredential> {
        MetadataImage::scram_credential(self, user, mechanism)
    }
}
