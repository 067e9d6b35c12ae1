//! The controller's metadata: a deterministic state machine over records,
//! its durable log, and the decisions that produce records.
//!
//! - `record`: [`MetadataRecord`] (Kafka KRaft names) and its encoding.
//! - `frame`: a record's CRC'd frame in log and snapshot files.
//! - `image`: [`MetadataImage`], `apply(record) -> MetadataDelta`.
//! - `placement`: least-loaded shard choice and rebalancing.
//! - `controller`: [`Controller`], admin operations -> records, with
//!   Kafka error codes.
//! - `partition_control`: AlterPartition and leader elections from the
//!   ISR -> records (Kafka's `ReplicationControlManager`,
//!   `PartitionChangeBuilder`).
//! - `acl_control`: CreateAcls / DeleteAcls -> records (Kafka's
//!   `AclControlManager`).
//! - `scram_control`: AlterUserScramCredentials -> records, and
//!   DescribeUserScramCredentials' view (Kafka's `ScramControlManager`,
//!   `ScramImage.describe`).
//! - `quota_control`: AlterClientQuotas -> records, and
//!   DescribeClientQuotas' view (Kafka's `ClientQuotaControlManager`,
//!   `ClientQuotasImage.describe`).
//! - `log`: [`MetadataLog`], append + fsync, replay, torn-tail repair.
//! - `snapshot`: snapshot file format and its crash-safe write.
//! - `store`: [`MetadataStore`], log + image committed together.
//!
//! Flow on shard 0: `Controller::create_topic(&image, ..)` validates and
//! returns records; `MetadataStore::commit(records)` checks them against a
//! copy of the image, appends and syncs them, then publishes the new
//! `Arc<MetadataImage>` with the deltas for the other shards.

pub mod acl_control;
pub mod controller;
pub mod frame;
pub mod image;
pub mod log;
pub mod partition_control;
pub mod placement;
pub mod quota_control;
pub mod record;
pub mod replicas;
pub mod scram_control;
pub mod snapshot;
pub mod store;

pub use acl_control::{AclControlError, AclDeletion};
pub use controller::{new_topic_id, ConfigOp, Controller, ControllerError, NewTopic};
pub use image::{
    ApplyError, BrokerImage, Leadership, MetadataDelta, MetadataImage, TopicImage, NO_LEADER,
};
pub use log::{MetadataLog, MetadataLogError, Replayed, METADATA_DIR_NAME};
pub use partition_control::{
    reassignments, AlterPartition, AlterPartitionOutcome, ElectionRefusal, ElectionType,
    IneligibleReason, IsrError, IsrMember, Reassignment, ReassignmentRefusal,
};
pub use quota_control::{
    QuotaAlterError, QuotaAlteration, QuotaAlterationEntry, QuotaDescription, QuotaOp,
};
pub use record::{
    AccessControlEntryRecord, BrokerEndpoint, BrokerFencingRecord, ClientQuotaRecord, ConfigRecord,
    ConfigResource, MetadataRecord, PartitionLeadershipRecord, PartitionPlacementRecord,
    PartitionRecord, ProposerRecord, RegisterBrokerRecord, RemoveAccessControlEntryRecord,
    RemovePartitionsRecord, RemoveTopicRecord, RemoveUserScramCredentialRecord, ShardId,
    TopicRecord, UserScramCredentialRecord,
};
pub use scram_control::{
    ScramAlterError, ScramAlteration, ScramDeletion, ScramDescribeError, ScramDescription,
    ScramUpsertion,
};
pub use store::{CommitError, Committed, MetadataStore};
