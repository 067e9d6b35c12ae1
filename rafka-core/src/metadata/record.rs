//! Metadata records: the controller's state changes, named after Kafka's
//! KRaft records, and their binary encoding.
//!
//! Encoding (big-endian, like Kafka's wire format): `type u8`, `version u8`,
//! then the fields in declaration order. Strings are `u32` length + UTF-8;
//! an optional string is a `u8` flag (0 absent, 1 present) then the string;
//! a topic id is its 16 raw bytes; a byte string is `u32` length + bytes
//! (at most [`RECORD_BYTES_MAX`]); a SCRAM mechanism is Kafka's `u8` type
//! code; a quota entity is a `u8` kind (1 user, 2 client-id, 3 user and
//! client-id, 4 IP) then per name a `u8` (0 the default, 1 named) and the
//! name; a quota value is an IEEE-754 `f64`'s 8 bytes. Decoding is strict: an unknown type or
//! version, a short field, bad UTF-8 or trailing bytes are errors, so two
//! nodes can never read one record differently. A field added to a record
//! type later is appended to it and read only when its bytes are there
//! (a PartitionLeadership's partition epoch): older records keep decoding,
//! with the field's default.

use std::fmt;

use uuid::Uuid;

use crate::acl::{AclBinding, AclOperation, AclPermission, PatternType, ResourceType};
use crate::quota::{EntityName, QuotaEntity, QuotaKey, QuotaValue};
use crate::sasl::{ScramCredential, ScramMechanism};

/// Index of a shard (one executor core). A `u32` on disk.
pub type ShardId = u32;

/// Kafka's `ConfigResource.Type` code for a topic.
pub const RESOURCE_TYPE_TOPIC: i8 = 2;
/// Kafka's `ConfigResource.Type` code for a broker.
pub const RESOURCE_TYPE_BROKER: i8 = 4;

/// Longest string a record may hold: bounds what one decode can allocate.
pub const RECORD_STRING_BYTES_MAX: u32 = 1024 * 1024;
/// Longest byte string (a salt, a key) a record may hold.
pub const RECORD_BYTES_MAX: u32 = 64 * 1024;

/// The thing a [`ConfigRecord`] configures.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigResource {
    /// A topic, by name (as Kafka's ConfigRecord does).
    Topic(String),
    /// Dynamic broker configs: a node id (`"0"`) for one broker, or `""`
    /// for the cluster-wide default, as Kafka names them.
    Broker(String),
}

/// A new topic; its partitions follow as [`PartitionRecord`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    pub name: String,
    pub topic_id: Uuid,
}

/// Partition `partition` of a topic, owned by `shard`. Partitions of a
/// topic are created in order 0, 1, 2, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecord {
    pub topic_id: Uuid,
    pub partition: i32,
    pub shard: ShardId,
}

/// Deletes a topic, its partitions and its config overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveTopicRecord {
    pub topic_id: Uuid,
}

/// Removes partitions `first..` of a topic again: the rollback of a
/// CreatePartitions some shard could not serve (never below partition 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovePartitionsRecord {
    pub topic_id: Uuid,
    pub first: i32,
}

/// Sets (`Some`) or removes (`None`) one config override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRecord {
    pub resource: ConfigResource,
    pub name: String,
    pub value: Option<String>,
}

/// Moves an existing partition to another shard (core count changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPlacementRecord {
    pub topic_id: Uuid,
    pub partition: i32,
    pub shard: ShardId,
}

/// Sets a user's SCRAM credential for one mechanism (Kafka's
/// UserScramCredentialRecord): the salted keys only, never the password.
/// Decoding checks the format; `MetadataImage::apply` checks the values
/// (key lengths, iterations) through [`ScramCredential::new`].
#[derive(Clone, PartialEq, Eq)]
pub struct UserScramCredentialRecord {
    pub name: String,
    pub mechanism: ScramMechanism,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

impl UserScramCredentialRecord {
    pub fn new(name: String, credential: &ScramCredential) -> UserScramCredentialRecord {
        UserScramCredentialRecord {
            name,
            mechanism: credential.mechanism(),
            salt: credential.salt().to_vec(),
            stored_key: credential.stored_key().to_vec(),
            server_key: credential.server_key().to_vec(),
            iterations: credential.iterations(),
        }
    }
}

/// Keys stay out of logs.
impl fmt::Debug for UserScramCredentialRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserScramCredentialRecord")
            .field("name", &self.name)
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Removes a user's SCRAM credential for one mechanism (Kafka's
/// RemoveUserScramCredentialRecord).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveUserScramCredentialRecord {
    pub name: String,
    pub mechanism: ScramMechanism,
}

/// Adds one ACL under a stable id (KRaft's AccessControlEntryRecord).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessControlEntryRecord {
    pub id: Uuid,
    pub acl: AclBinding,
}

/// Removes the ACL with this id (KRaft's RemoveAccessControlEntryRecord).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveAccessControlEntryRecord {
    pub id: Uuid,
}

/// Sets (`Some`) or removes (`None`) one client quota (KRaft's
/// ClientQuotaRecord). Decoding checks the format and that the value is a
/// valid quota; `MetadataImage::apply` checks the entity's names and that
/// the key belongs to the entity's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientQuotaRecord {
    pub entity: QuotaEntity,
    pub key: QuotaKey,
    pub value: Option<QuotaValue>,
}

/// One of a broker's listeners as clients reach it (Kafka's
/// BrokerEndpoint): name, host, port and `SecurityProtocol` id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub listener: String,
    pub host: String,
    pub port: u16,
    pub security_protocol: i16,
}

/// A broker joined (or rejoined) the cluster (KRaft's
/// RegisterBrokerRecord). `epoch` must exceed the node's previous one: a
/// registration that lost a race, or a stale one, no longer applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBrokerRecord {
    pub node_id: i32,
    pub epoch: i64,
    pub incarnation_id: Uuid,
    pub rack: Option<String>,
    pub endpoints: Vec<BrokerEndpoint>,
    /// A broker the cluster knew registers again on a data dir it had
    /// just created (a lost disk): whatever it held before is gone, so it
    /// is no eligible leader replica (KIP-966's unclean shutdown; a kill -9
    /// loses nothing acknowledged here). False for a first registration.
    /// Written last, only when true.
    pub fresh_data_dir: bool,
}

/// Which brokers hold a partition and which of them leads it (KRaft's
/// PartitionRecord / PartitionChangeRecord fields, the whole state each
/// time). A partition without one (a single node's log) is led by the
/// node itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLeadershipRecord {
    pub topic_id: Uuid,
    pub partition: i32,
    /// -1: no leader (no live in-sync replica).
    pub leader: i32,
    /// Bumped by every leader change.
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Kafka's partition epoch: bumped by every change of the leader or
    /// the ISR. Written last and optional on disk: a record written
    /// before it existed decodes with 0.
    pub partition_epoch: i32,
    /// During a reassignment (Kafka's addingReplicas / removingReplicas):
    /// the replicas it adds and those it removes, all in `replicas`.
    /// Written after the partition epoch only when either is not empty.
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
    /// KIP-966's eligible leader replicas: replicas out of the ISR that
    /// hold everything below the high watermark (they left the ISR while
    /// it was below `min.insync.replicas`, which stops the high watermark).
    /// Written after the reassignment lists (empty ones then) only when
    /// not empty.
    pub elr: Vec<i32>,
}

/// The active controller fences (`true`) or unfences a broker by its
/// liveness (KRaft's BrokerRegistrationChangeRecord's fenced field);
/// applies only to the registration of `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerFencingRecord {
    pub node_id: i32,
    pub epoch: i64,
    pub fenced: bool,
}

/// Which proposals of one proposer process (a node's incarnation) the
/// quorum has applied: a snapshot's copy of the image's dedupe window
/// (see `MetadataImage::note_proposal`). Never proposed, only written to
/// snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposerRecord {
    pub incarnation: u64,
    pub node_id: i32,
    /// The window's age among all proposers: the oldest is dropped first.
    pub order: u64,
    /// Every sequence below it counts as applied.
    pub low: u64,
    /// Applied sequences at or above `low`, ascending.
    pub seen: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    Topic(TopicRecord),
    Partition(PartitionRecord),
    RemoveTopic(RemoveTopicRecord),
    Config(ConfigRecord),
    PartitionPlacement(PartitionPlacementRecord),
    RemovePartitions(RemovePartitionsRecord),
    UserScramCredential(UserScramCredentialRecord),
    RemoveUserScramCredential(RemoveUserScramCredentialRecord),
    AccessControlEntry(AccessControlEntryRecord),
    RemoveAccessControlEntry(RemoveAccessControlEntryRecord),
    ClientQuota(ClientQuotaRecord),
    RegisterBroker(RegisterBrokerRecord),
    PartitionLeadership(PartitionLeadershipRecord),
    BrokerFencing(BrokerFencingRecord),
    Proposer(ProposerRecord),
}

/// Record type codes; never reuse a retired one.
mod code {
    pub const TOPIC: u8 = 1;
    pub const PARTITION: u8 = 2;
    pub const REMOVE_TOPIC: u8 = 3;
    pub const CONFIG: u8 = 4;
    pub const PARTITION_PLACEMENT: u8 = 5;
    pub const REMOVE_PARTITIONS: u8 = 6;
    pub const ACCESS_CONTROL_ENTRY: u8 = 7;
    pub const REMOVE_ACCESS_CONTROL_ENTRY: u8 = 8;
    pub const USER_SCRAM_CREDENTIAL: u8 = 9;
    pub const REMOVE_USER_SCRAM_CREDENTIAL: u8 = 10;
    pub const CLIENT_QUOTA: u8 = 11;
    pub const REGISTER_BROKER: u8 = 12;
    pub const PARTITION_LEADERSHIP: u8 = 13;
    pub const BROKER_FENCING: u8 = 14;
    pub const PROPOSER: u8 = 15;

    pub fn is_known(code: u8) -> bool {
        matches!(
            code,
            TOPIC
                | PARTITION
                | REMOVE_TOPIC
                | CONFIG
                | PARTITION_PLACEMENT
                | REMOVE_PARTITIONS
                | ACCESS_CONTROL_ENTRY
                | REMOVE_ACCESS_CONTROL_ENTRY
                | USER_SCRAM_CREDENTIAL
                | REMOVE_USER_SCRAM_CREDENTIAL
                | CLIENT_QUOTA
                | REGISTER_BROKER
                | PARTITION_LEADERSHIP
                | BROKER_FENCING
                | PROPOSER
        )
    }
}

/// A client quota entity's kind on disk.
mod quota_entity {
    pub const USER: u8 = 1;
    pub const CLIENT_ID: u8 = 2;
    pub const USER_CLIENT_ID: u8 = 3;
    pub const IP: u8 = 4;
}

/// The only version of each record type written so far.
const VERSION: u8 = 0;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record ends early: {needed} more bytes needed at byte {at}")]
    Truncated { at: usize, needed: usize },
    #[error("unknown metadata record type {0}")]
    UnknownType(u8),
    #[error("metadata record type {record_type} version {version} is newer than this broker")]
    UnsupportedVersion { record_type: u8, version: u8 },
    #[error("string at byte {at} is not UTF-8")]
    BadUtf8 { at: usize },
    #[error("string of {length} bytes at byte {at} exceeds the limit")]
    StringTooLong { at: usize, length: u32 },
    #[error("optional flag {flag} at byte {at} is neither 0 nor 1")]
    BadFlag { at: usize, flag: u8 },
    #[error("byte string of {length} bytes at byte {at} exceeds the limit")]
    BytesTooLong { at: usize, length: u32 },
    #[error("unknown SCRAM mechanism type {0}")]
    UnknownScramMechanism(u8),
    #[error("unknown config resource type {0}")]
    UnknownResourceType(i8),
    #[error("ACL field {field} has the invalid code {code}")]
    BadAclCode { field: &'static str, code: i8 },
    #[error("unknown client quota entity kind {0}")]
    UnknownQuotaEntity(u8),
    #[error("unknown client quota key {0:?}")]
    UnknownQuotaKey(String),
    /// The value's `f64` bits (an `f64` would make the error not `Eq`).
    #[error("client quota value {} is not finite and above zero", f64::from_bits(*.0))]
    BadQuotaValue(u64),
    #[error("{field} at byte {at} is out of range")]
    OutOfRange { at: usize, field: &'static str },
    #[error("{0} bytes left after the record")]
    TrailingBytes(usize),
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn uuid(&mut self, v: &Uuid) {
        self.0.extend_from_slice(v.as_bytes());
    }
    fn string(&mut self, s: &str) {
        // Callers bound names and values far below 4 GiB; the assert keeps a
        // bug from writing a length that does not match the bytes.
        let length = u32::try_from(s.len()).unwrap_or(u32::MAX);
        assert!(
            length <= RECORD_STRING_BYTES_MAX,
            "metadata string too long"
        );
        self.u32(length);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        let length = u32::try_from(b.len()).unwrap_or(u32::MAX);
        assert!(length <= RECORD_BYTES_MAX, "metadata byte string too long");
        self.u32(length);
        self.0.extend_from_slice(b);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i32_array(&mut self, values: &[i32]) {
        self.u32(u32::try_from(values.len()).expect("few node ids"));
        for v in values {
            self.i32(*v);
        }
    }
    fn entity_name(&mut self, name: &EntityName) {
        match name {
            EntityName::Default => self.u8(0),
            EntityName::Named(name) => {
                self.u8(1);
                self.string(name);
            }
        }
    }
    fn quota_entity(&mut self, entity: &QuotaEntity) {
        match entity {
            QuotaEntity::User(user) => {
                self.u8(quota_entity::USER);
                self.entity_name(user);
            }
            QuotaEntity::ClientId(client) => {
                self.u8(quota_entity::CLIENT_ID);
                self.entity_name(client);
            }
            QuotaEntity::UserClientId(user, client) => {
                self.u8(quota_entity::USER_CLIENT_ID);
                self.entity_name(user);
                self.entity_name(client);
            }
            QuotaEntity::Ip(ip) => {
                self.u8(quota_entity::IP);
                self.entity_name(ip);
            }
        }
    }
    fn opt_string(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.string(s);
            }
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let rest = &self.buf[self.at..];
        if rest.len() < n {
            return Err(RecordError::Truncated {
                at: self.at,
                needed: n - rest.len(),
            });
        }
        self.at += n;
        Ok(&rest[..n])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.array::<1>()?[0])
    }
    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn uuid(&mut self) -> Result<Uuid, RecordError> {
        Ok(Uuid::from_bytes(self.array()?))
    }
    fn string(&mut self) -> Result<String, RecordError> {
        let at = self.at;
        let length = self.u32()?;
        if length > RECORD_STRING_BYTES_MAX {
            return Err(RecordError::StringTooLong { at, length });
        }
        let bytes = self.take(length as usize)?;
        let s = std::str::from_utf8(bytes).map_err(|_| RecordError::BadUtf8 { at })?;
        Ok(s.to_string())
    }
    fn bytes(&mut self) -> Result<Vec<u8>, RecordError> {
        let at = self.at;
        let length = self.u32()?;
        if length > RECORD_BYTES_MAX {
            return Err(RecordError::BytesTooLong { at, length });
        }
        Ok(self.take(length as usize)?.to_vec())
    }
    fn u64(&mut self) -> Result<u64, RecordError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    /// A count of items of at least `item_bytes` each, bounded by the
    /// bytes left, so a bad count cannot make us allocate.
    fn count(&mut self, item_bytes: usize) -> Result<usize, RecordError> {
        let count = self.u32()? as usize;
        let left = self.buf.len() - self.at;
        if count.saturating_mul(item_bytes) > left {
            return Err(RecordError::Truncated {
                at: self.at,
                needed: count.saturating_mul(item_bytes) - left,
            });
        }
        Ok(count)
    }
    fn i32_array(&mut self) -> Result<Vec<i32>, RecordError> {
        let count = self.count(4)?;
        (0..count).map(|_| self.i32()).collect()
    }
    fn entity_name(&mut self) -> Result<EntityName, RecordError> {
        let at = self.at;
        match self.u8()? {
            0 => Ok(EntityName::Default),
            1 => Ok(EntityName::Named(self.string()?)),
            flag => Err(RecordError::BadFlag { at, flag }),
        }
    }
    fn quota_entity(&mut self) -> Result<QuotaEntity, RecordError> {
        Ok(match self.u8()? {
            quota_entity::USER => QuotaEntity::User(self.entity_name()?),
            quota_entity::CLIENT_ID => QuotaEntity::ClientId(self.entity_name()?),
            quota_entity::USER_CLIENT_ID => {
                QuotaEntity::UserClientId(self.entity_name()?, self.entity_name()?)
            }
            quota_entity::IP => QuotaEntity::Ip(self.entity_name()?),
            kind => return Err(RecordError::UnknownQuotaEntity(kind)),
        })
    }
    fn quota_key(&mut self) -> Result<QuotaKey, RecordError> {
        let name = self.string()?;
        QuotaKey::from_name(&name).ok_or(RecordError::UnknownQuotaKey(name))
    }
    fn quota_value(&mut self) -> Result<Option<QuotaValue>, RecordError> {
        let at = self.at;
        match self.u8()? {
            0 => Ok(None),
            1 => {
                let bits = self.u64()?;
                let value = QuotaValue::new(f64::from_bits(bits));
                value.map(Some).ok_or(RecordError::BadQuotaValue(bits))
            }
            flag => Err(RecordError::BadFlag { at, flag }),
        }
    }
    fn scram_mechanism(&mut self) -> Result<ScramMechanism, RecordError> {
        let code = self.u8()?;
        ScramMechanism::from_type_code(code).ok_or(RecordError::UnknownScramMechanism(code))
    }
    fn opt_string(&mut self) -> Result<Option<String>, RecordError> {
        let at = self.at;
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.string()?)),
            flag => Err(RecordError::BadFlag { at, flag }),
        }
    }
}

impl MetadataRecord {
    fn type_code(&self) -> u8 {
        match self {
            MetadataRecord::Topic(_) => code::TOPIC,
            MetadataRecord::Partition(_) => code::PARTITION,
            MetadataRecord::RemoveTopic(_) => code::REMOVE_TOPIC,
            MetadataRecord::Config(_) => code::CONFIG,
            MetadataRecord::PartitionPlacement(_) => code::PARTITION_PLACEMENT,
            MetadataRecord::RemovePartitions(_) => code::REMOVE_PARTITIONS,
            MetadataRecord::UserScramCredential(_) => code::USER_SCRAM_CREDENTIAL,
            MetadataRecord::RemoveUserScramCredential(_) => code::REMOVE_USER_SCRAM_CREDENTIAL,
            MetadataRecord::AccessControlEntry(_) => code::ACCESS_CONTROL_ENTRY,
            MetadataRecord::RemoveAccessControlEntry(_) => code::REMOVE_ACCESS_CONTROL_ENTRY,
            MetadataRecord::ClientQuota(_) => code::CLIENT_QUOTA,
            MetadataRecord::RegisterBroker(_) => code::REGISTER_BROKER,
            MetadataRecord::PartitionLeadership(_) => code::PARTITION_LEADERSHIP,
            MetadataRecord::BrokerFencing(_) => code::BROKER_FENCING,
            MetadataRecord::Proposer(_) => code::PROPOSER,
        }
    }

    /// Appends the record's encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer(out);
        w.u8(self.type_code());
        w.u8(VERSION);
        match self {
            MetadataRecord::Topic(r) => {
                w.string(&r.name);
                w.uuid(&r.topic_id);
            }
            MetadataRecord::Partition(r) => {
                w.uuid(&r.topic_id);
                w.i32(r.partition);
                w.u32(r.shard);
            }
            MetadataRecord::RemoveTopic(r) => w.uuid(&r.topic_id),
            MetadataRecord::Config(r) => {
                let (resource_type, name) = match &r.resource {
                    ConfigResource::Topic(topic) => (RESOURCE_TYPE_TOPIC, topic),
                    ConfigResource::Broker(broker) => (RESOURCE_TYPE_BROKER, broker),
                };
                w.u8(resource_type as u8);
                w.string(name);
                w.string(&r.name);
                w.opt_string(r.value.as_deref());
            }
            MetadataRecord::PartitionPlacement(r) => {
                w.uuid(&r.topic_id);
                w.i32(r.partition);
                w.u32(r.shard);
            }
            MetadataRecord::RemovePartitions(r) => {
                w.uuid(&r.topic_id);
                w.i32(r.first);
            }
            MetadataRecord::UserScramCredential(r) => {
                w.string(&r.name);
                w.u8(r.mechanism.type_code());
                w.bytes(&r.salt);
                w.bytes(&r.stored_key);
                w.bytes(&r.server_key);
                w.u32(r.iterations);
            }
            MetadataRecord::RemoveUserScramCredential(r) => {
                w.string(&r.name);
                w.u8(r.mechanism.type_code());
            }
            MetadataRecord::AccessControlEntry(r) => {
                w.uuid(&r.id);
                w.u8(r.acl.resource_type.code() as u8);
                w.string(&r.acl.resource_name);
                w.u8(r.acl.pattern_type.code() as u8);
                w.string(&r.acl.principal);
                w.string(&r.acl.host);
                w.u8(r.acl.operation.code() as u8);
                w.u8(r.acl.permission.code() as u8);
            }
            MetadataRecord::RemoveAccessControlEntry(r) => w.uuid(&r.id),
            MetadataRecord::ClientQuota(r) => {
                w.quota_entity(&r.entity);
                w.string(r.key.name());
                match r.value {
                    None => w.u8(0),
                    Some(value) => {
                        w.u8(1);
                        w.u64(value.get().to_bits());
                    }
                }
            }
            MetadataRecord::RegisterBroker(r) => {
                w.i32(r.node_id);
                w.u64(r.epoch as u64);
                w.uuid(&r.incarnation_id);
                w.opt_string(r.rack.as_deref());
                w.u32(u32::try_from(r.endpoints.len()).expect("few endpoints"));
                for endpoint in &r.endpoints {
                    w.string(&endpoint.listener);
                    w.string(&endpoint.host);
                    w.u32(u32::from(endpoint.port));
                    w.i32(i32::from(endpoint.security_protocol));
                }
                if r.fresh_data_dir {
                    w.u8(1);
                }
            }
            MetadataRecord::PartitionLeadership(r) => {
                w.uuid(&r.topic_id);
                w.i32(r.partition);
                w.i32(r.leader);
                w.i32(r.leader_epoch);
                w.i32_array(&r.replicas);
                w.i32_array(&r.isr);
                w.i32(r.partition_epoch);
                if !r.adding.is_empty() || !r.removing.is_empty() || !r.elr.is_empty() {
                    w.i32_array(&r.adding);
                    w.i32_array(&r.removing);
                }
                if !r.elr.is_empty() {
                    w.i32_array(&r.elr);
                }
            }
            MetadataRecord::BrokerFencing(r) => {
                w.i32(r.node_id);
                w.u64(r.epoch as u64);
                w.u8(u8::from(r.fenced));
            }
            MetadataRecord::Proposer(r) => {
                w.u64(r.incarnation);
                w.i32(r.node_id);
                w.u64(r.order);
                w.u64(r.low);
                w.u32(u32::try_from(r.seen.len()).expect("a bounded window"));
                for sequence in &r.seen {
                    w.u64(*sequence);
                }
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes exactly one record spanning all of `buf`.
    pub fn decode(buf: &[u8]) -> Result<MetadataRecord, RecordError> {
        let mut r = Reader { buf, at: 0 };
        let record_type = r.u8()?;
        let version = r.u8()?;
        if !code::is_known(record_type) {
            return Err(RecordError::UnknownType(record_type));
        }
        if version != VERSION {
            return Err(RecordError::UnsupportedVersion {
                record_type,
                version,
            });
        }
        let record = decode_body(record_type, &mut r)?;
        match buf.len() - r.at {
            0 => Ok(record),
            left => Err(RecordError::TrailingBytes(left)),
        }
    }
}

fn decode_body(record_type: u8, r: &mut Reader<'_>) -> Result<MetadataRecord, RecordError> {
    Ok(match record_type {
        code::TOPIC => MetadataRecord::Topic(TopicRecord {
            name: r.string()?,
            topic_id: r.uuid()?,
        }),
        code::PARTITION => MetadataRecord::Partition(PartitionRecord {
            topic_id: r.uuid()?,
            partition: r.i32()?,
            shard: r.u32()?,
        }),
        code::REMOVE_TOPIC => MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: r.uuid()?,
        }),
        code::CONFIG => {
            let resource = match r.u8()? as i8 {
                RESOURCE_TYPE_TOPIC => ConfigResource::Topic(r.string()?),
                RESOURCE_TYPE_BROKER => ConfigResource::Broker(r.string()?),
                other => return Err(RecordError::UnknownResourceType(other)),
            };
            MetadataRecord::Config(ConfigRecord {
                resource,
                name: r.string()?,
                value: r.opt_string()?,
            })
        }
        code::PARTITION_PLACEMENT => MetadataRecord::PartitionPlacement(PartitionPlacementRecord {
            topic_id: r.uuid()?,
            partition: r.i32()?,
            shard: r.u32()?,
        }),
        code::REMOVE_PARTITIONS => MetadataRecord::RemovePartitions(RemovePartitionsRecord {
            topic_id: r.uuid()?,
            first: r.i32()?,
        }),
        code::USER_SCRAM_CREDENTIAL => {
            MetadataRecord::UserScramCredential(UserScramCredentialRecord {
                name: r.string()?,
                mechanism: r.scram_mechanism()?,
                salt: r.bytes()?,
                stored_key: r.bytes()?,
                server_key: r.bytes()?,
                iterations: r.u32()?,
            })
        }
        code::REMOVE_USER_SCRAM_CREDENTIAL => {
            MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
                name: r.string()?,
                mechanism: r.scram_mechanism()?,
            })
        }
        code::ACCESS_CONTROL_ENTRY => {
            MetadataRecord::AccessControlEntry(AccessControlEntryRecord {
                id: r.uuid()?,
                acl: decode_acl(r)?,
            })
        }
        code::REMOVE_ACCESS_CONTROL_ENTRY => {
            MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord {
                id: r.uuid()?,
            })
        }
        code::CLIENT_QUOTA => MetadataRecord::ClientQuota(ClientQuotaRecord {
            entity: r.quota_entity()?,
            key: r.quota_key()?,
            value: r.quota_value()?,
        }),
        code::REGISTER_BROKER => {
            let node_id = r.i32()?;
            let epoch = r.u64()? as i64;
            let incarnation_id = r.uuid()?;
            let rack = r.opt_string()?;
            let count = r.count(16)?;
            let mut endpoints = Vec::with_capacity(count);
            for _ in 0..count {
                let listener = r.string()?;
                let host = r.string()?;
                let at = r.at;
                let port = u16::try_from(r.u32()?)
                    .map_err(|_| RecordError::OutOfRange { at, field: "port" })?;
                let at = r.at;
                let security_protocol =
                    i16::try_from(r.i32()?).map_err(|_| RecordError::OutOfRange {
                        at,
                        field: "security protocol",
                    })?;
                endpoints.push(BrokerEndpoint {
                    listener,
                    host,
                    port,
                    security_protocol,
                });
            }
            MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                node_id,
                epoch,
                incarnation_id,
                rack,
                endpoints,
                // Absent unless set (and from records written before it).
                fresh_data_dir: if r.at == r.buf.len() {
                    false
                } else {
                    let at = r.at;
                    match r.u8()? {
                        0 => false,
                        1 => true,
                        flag => return Err(RecordError::BadFlag { at, flag }),
                    }
                },
            })
        }
        code::PROPOSER => {
            let incarnation = r.u64()?;
            let node_id = r.i32()?;
            let order = r.u64()?;
            let low = r.u64()?;
            let count = r.count(8)?;
            let seen = (0..count).map(|_| r.u64()).collect::<Result<_, _>>()?;
            MetadataRecord::Proposer(ProposerRecord {
                incarnation,
                node_id,
                order,
                low,
                seen,
            })
        }
        code::BROKER_FENCING => MetadataRecord::BrokerFencing(BrokerFencingRecord {
            node_id: r.i32()?,
            epoch: r.u64()? as i64,
            fenced: {
                let at = r.at;
                match r.u8()? {
                    0 => false,
                    1 => true,
                    flag => return Err(RecordError::BadFlag { at, flag }),
                }
            },
        }),
        code::PARTITION_LEADERSHIP => {
            MetadataRecord::PartitionLeadership(PartitionLeadershipRecord {
                topic_id: r.uuid()?,
                partition: r.i32()?,
                leader: r.i32()?,
                leader_epoch: r.i32()?,
                replicas: r.i32_array()?,
                isr: r.i32_array()?,
                // Absent from records written before partition epochs.
                partition_epoch: if r.at == r.buf.len() { 0 } else { r.i32()? },
                // Absent unless a reassignment is in progress.
                adding: if r.at == r.buf.len() {
                    Vec::new()
                } else {
                    r.i32_array()?
                },
                removing: if r.at == r.buf.len() {
                    Vec::new()
                } else {
                    r.i32_array()?
                },
                // Absent unless the partition has eligible leader replicas.
                elr: if r.at == r.buf.len() {
                    Vec::new()
                } else {
                    r.i32_array()?
                },
            })
        }
        _ => return Err(RecordError::UnknownType(record_type)),
    })
}

fn acl_code<T>(
    r: &mut Reader<'_>,
    field: &'static str,
    parse: impl Fn(i8) -> Option<T>,
) -> Result<T, RecordError> {
    let code = r.u8()? as i8;
    parse(code).ok_or(RecordError::BadAclCode { field, code })
}

fn decode_acl(r: &mut Reader<'_>) -> Result<AclBinding, RecordError> {
    Ok(AclBinding {
        resource_type: acl_code(r, "resource_type", ResourceType::from_code)?,
        resource_name: r.string()?,
        pattern_type: acl_code(r, "pattern_type", PatternType::from_code)?,
        principal: r.string()?,
        host: r.string()?,
        operation: acl_code(r, "operation", AclOperation::from_code)?,
        permission: acl_code(r, "permission", AclPermission::from_code)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: Uuid = Uuid::from_bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);

    #[test]
    fn topic_record_bytes() {
        let record = MetadataRecord::Topic(TopicRecord {
            name: "ab".into(),
            topic_id: ID,
        });
        let mut want = vec![1, 0, 0, 0, 0, 2, b'a', b'b'];
        want.extend_from_slice(ID.as_bytes());
        assert_eq!(record.to_bytes(), want);
        assert_eq!(MetadataRecord::decode(&want), Ok(record));
    }

    #[test]
    fn config_record_bytes() {
        let record = MetadataRecord::Config(ConfigRecord {
            resource: ConfigResource::Topic("t".into()),
            name: "k".into(),
            value: None,
        });
        let want = vec![4, 0, 2, 0, 0, 0, 1, b't', 0, 0, 0, 1, b'k', 0];
        assert_eq!(record.to_bytes(), want);
        assert_eq!(MetadataRecord::decode(&want), Ok(record));
    }

    #[test]
    fn broker_config_record_bytes() {
        let record = MetadataRecord::Config(ConfigRecord {
            resource: ConfigResource::Broker(String::new()),
            name: "k".into(),
            value: Some("v".into()),
        });
        let want = vec![4, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, b'k', 1, 0, 0, 0, 1, b'v'];
        assert_eq!(record.to_bytes(), want);
        assert_eq!(MetadataRecord::decode(&want), Ok(record));
        let unknown_resource = [4, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            MetadataRecord::decode(&unknown_resource),
            Err(RecordError::UnknownResourceType(8))
        );
    }

    #[test]
    fn remove_partitions_record_bytes() {
        let record = MetadataRecord::RemovePartitions(RemovePartitionsRecord {
            topic_id: ID,
            first: 3,
        });
        let mut want = vec![6, 0];
        want.extend_from_slice(ID.as_bytes());
        want.extend_from_slice(&[0, 0, 0, 3]);
        assert_eq!(record.to_bytes(), want);
        assert_eq!(MetadataRecord::decode(&want), Ok(record));
    }

    #[test]
    fn user_scram_credential_record_bytes() {
        let record = MetadataRecord::UserScramCredential(UserScramCredentialRecord {
            name: "al".into(),
            mechanism: ScramMechanism::Sha512,
            salt: vec![7, 8],
            stored_key: vec![0xaa],
            server_key: vec![],
            iterations: 8192,
        });
        let want = vec![
            9, 0, // type, version
            0, 0, 0, 2, b'a', b'l', // name
            2,    // SCRAM-SHA-512
            0, 0, 0, 2, 7, 8, // salt
            0, 0, 0, 1, 0xaa, // stored key
            0, 0, 0, 0, // server key
            0, 0, 0x20, 0, // iterations
        ];
        assert_eq!(record.to_bytes(), want);
        assert_eq!(MetadataRecord::decode(&want), Ok(record));
        assert!(!format!("{:?}", MetadataRecord::decode(&want)).contains("key"));
    }

    #[test]
    fn remove_user_scram_credential_record_bytes() {
        let record = MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
            name: "al".into(),
            mechanism: ScramMechanism::Sha256,
        });
        let want = vec![10, 0, 0, 0, 0, 2, b'a', b'l', 1];
        assert_eq!(record.to_bytes(), want);
        assert_eq!(MetadataRecord::decode(&want), Ok(record));
    }

    #[test]
    fn scram_records_decode_strictly() {
        assert_eq!(
            MetadataRecord::decode(&[10, 0, 0, 0, 0, 0, 3]),
            Err(RecordError::UnknownScramMechanism(3))
        );
        assert_eq!(
            MetadataRecord::decode(&[10, 0, 0, 0, 0, 0, 1, 0]),
            Err(RecordError::TrailingBytes(1))
        );
        let huge_salt = [9, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1];
        assert_eq!(
            MetadataRecord::decode(&huge_salt),
            Err(RecordError::BytesTooLong {
                at: 7,
                length: 0x0001_0001
            })
        );
        let short_key = [9, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 5, 0, 0, 0, 4, 1];
        assert_eq!(
            MetadataRecord::decode(&short_key),
            Err(RecordError::Truncated { at: 16, needed: 3 })
        );
        let no_iterations = [
            9, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            MetadataRecord::decode(&no_iterations),
            Err(RecordError::Truncated { at: 19, needed: 2 })
        );
    }

    #[test]
    fn acl_records_bytes() {
        let record = MetadataRecord::AccessControlEntry(AccessControlEntryRecord {
            id: ID,
            acl: AclBinding {
                resource_type: ResourceType::Topic,
                resource_name: "t".to_string(),
                pattern_type: PatternType::Prefixed,
                principal: "User:a".to_string(),
                host: "*".to_string(),
                operation: AclOperation::All,
                permission: AclPermission::Deny,
            },
        });
        let mut want = vec![7, 0];
        want.extend_from_slice(ID.as_bytes());
        want.extend_from_slice(&[2, 0, 0, 0, 1, b't', 4, 0, 0, 0, 6]);
        want.extend_from_slice(b"User:a");
        want.extend_from_slice(&[0, 0, 0, 1, b'*', 2, 2]);
        assert_eq!(record.to_bytes(), want);
        assert_eq!(MetadataRecord::decode(&want), Ok(record));
        let mut bad_operation = want.clone();
        let at = bad_operation.len() - 2;
        bad_operation[at] = 1;
        assert_eq!(
            MetadataRecord::decode(&bad_operation),
            Err(RecordError::BadAclCode {
                field: "operation",
                code: 1
            })
        );
        let remove =
            MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord { id: ID });
        let mut want = vec![8, 0];
        want.extend_from_slice(ID.as_bytes());
        assert_eq!(remove.to_bytes(), want);
        assert_eq!(MetadataRecord::decode(&want), Ok(remove));
    }

    #[test]
    fn client_quota_records_bytes() {
        let record = MetadataRecord::ClientQuota(ClientQuotaRecord {
            entity: QuotaEntity::UserClientId(EntityName::Named("al".into()), EntityName::Default),
            key: QuotaKey::ProducerByteRate,
            value: QuotaValue::new(1024.0),
        });
        let mut want = vec![
            11, 0, // type, version
            3, // user and client-id
            1, 0, 0, 0, 2, b'a', b'l', // user "al"
            0,    // client-id <default>
            0, 0, 0, 18, // key
        ];
        want.extend_from_slice(b"producer_byte_rate");
        want.push(1);
        want.extend_from_slice(&1024f64.to_bits().to_be_bytes());
        assert_eq!(record.to_bytes(), want);
        assert_eq!(MetadataRecord::decode(&want), Ok(record));
        let remove = MetadataRecord::ClientQuota(ClientQuotaRecord {
            entity: QuotaEntity::Ip(EntityName::Default),
            key: QuotaKey::ConnectionCreationRate,
            value: None,
        });
        let mut want = vec![11, 0, 4, 0, 0, 0, 0, 24];
        want.extend_from_slice(b"connection_creation_rate");
        want.push(0);
        assert_eq!(remove.to_bytes(), want);
        assert_eq!(MetadataRecord::decode(&want), Ok(remove));
    }

    #[test]
    fn client_quota_records_decode_strictly() {
        let prefix = [11, 0, 2, 0, 0, 0, 0, 18];
        let with = |tail: &[u8]| {
            let mut bytes = prefix.to_vec();
            bytes.extend_from_slice(b"producer_byte_rate");
            bytes.extend_from_slice(tail);
            MetadataRecord::decode(&bytes)
        };
        for bad in [0.0f64, -1.0, f64::NAN, f64::INFINITY] {
            let mut tail = vec![1];
            tail.extend_from_slice(&bad.to_bits().to_be_bytes());
            assert_eq!(with(&tail), Err(RecordError::BadQuotaValue(bad.to_bits())));
        }
        assert_eq!(with(&[2]), Err(RecordError::BadFlag { at: 26, flag: 2 }));
        assert_eq!(
            with(&[1, 0, 0]),
            Err(RecordError::Truncated { at: 27, needed: 6 })
        );
        assert_eq!(
            MetadataRecord::decode(&[11, 0, 5, 0]),
            Err(RecordError::UnknownQuotaEntity(5))
        );
        assert_eq!(
            MetadataRecord::decode(&[11, 0, 1, 2]),
            Err(RecordError::BadFlag { at: 3, flag: 2 })
        );
        assert_eq!(
            MetadataRecord::decode(&[11, 0, 1, 0, 0, 0, 0, 1, b'x', 0]),
            Err(RecordError::UnknownQuotaKey("x".into()))
        );
    }

    #[test]
    fn partition_leadership_record_bytes_with_and_without_its_partition_epoch() {
        let record = MetadataRecord::PartitionLeadership(PartitionLeadershipRecord {
            topic_id: ID,
            partition: 2,
            leader: 3,
            leader_epoch: 4,
            replicas: vec![3, 1],
            isr: vec![3],
            partition_epoch: 7,
            adding: Vec::new(),
            removing: Vec::new(),
            elr: Vec::new(),
        });
        let mut old = vec![13, 0];
        old.extend_from_slice(ID.as_bytes());
        old.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]);
        old.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 1]);
        old.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 3]);
        let mut want = old.clone();
        want.extend_from_slice(&[0, 0, 0, 7]);
        assert_eq!(record.to_bytes(), want);
        assert_eq!(MetadataRecord::decode(&want), Ok(record.clone()));
        // A reassignment in progress adds its two lists after the epoch.
        let MetadataRecord::PartitionLeadership(mut moving) = record.clone() else {
            unreachable!("built above");
        };
        moving.adding = vec![5];
        moving.removing = vec![1];
        let moving = MetadataRecord::PartitionLeadership(moving);
        let mut with_lists = want.clone();
        with_lists.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(moving.to_bytes(), with_lists);
        assert_eq!(MetadataRecord::decode(&with_lists), Ok(moving));
        // Eligible leader replicas come after the (here empty) lists.
        let MetadataRecord::PartitionLeadership(mut eligible) = record.clone() else {
            unreachable!("built above");
        };
        eligible.elr = vec![1];
        let eligible = MetadataRecord::PartitionLeadership(eligible);
        let mut with_elr = want.clone();
        with_elr.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(eligible.to_bytes(), with_elr);
        assert_eq!(MetadataRecord::decode(&with_elr), Ok(eligible));
        // Written before partition epochs: the epoch is 0.
        let MetadataRecord::PartitionLeadership(mut before) = record else {
            unreachable!("built above");
        };
        before.partition_epoch = 0;
        assert_eq!(
            MetadataRecord::decode(&old),
            Ok(MetadataRecord::PartitionLeadership(before))
        );
        // A partial epoch, or more after it, is refused.
        let mut partial = old.clone();
        partial.extend_from_slice(&[0, 7]);
        assert_eq!(
            MetadataRecord::decode(&partial),
            Err(RecordError::Truncated {
                at: old.len(),
                needed: 2
            })
        );
        let mut longer = with_elr.clone();
        longer.push(0);
        assert_eq!(
            MetadataRecord::decode(&longer),
            Err(RecordError::TrailingBytes(1))
        );
    }

    #[test]
    fn strict_decoding() {
        let mut bytes = MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: ID }).to_bytes();
        bytes.push(0);
        assert_eq!(
            MetadataRecord::decode(&bytes),
            Err(RecordError::TrailingBytes(1))
        );
        assert_eq!(
            MetadataRecord::decode(&bytes[..10]),
            Err(RecordError::Truncated { at: 2, needed: 8 })
        );
        for unknown in [0, 99, 255] {
            assert_eq!(
                MetadataRecord::decode(&[unknown, 0]),
                Err(RecordError::UnknownType(unknown))
            );
        }
        assert_eq!(
            MetadataRecord::decode(&[1, 1]),
            Err(RecordError::UnsupportedVersion {
                record_type: 1,
                version: 1
            })
        );
        let huge = [1, 0, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            MetadataRecord::decode(&huge),
            Err(RecordError::StringTooLong { at: 2, .. })
        ));
        let bad_utf8 = [1, 0, 0, 0, 0, 1, 0xff];
        assert_eq!(
            MetadataRecord::decode(&bad_utf8),
            Err(RecordError::BadUtf8 { at: 2 })
        );
        let bad_flag = [4, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 7];
        assert_eq!(
            MetadataRecord::decode(&bad_flag),
            Err(RecordError::BadFlag { at: 11, flag: 7 })
        );
    }
}
