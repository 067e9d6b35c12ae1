//! The controller's metadata: a deterministic state machine over records,
//! its durable log, and the decisions that produce records.
//!
//! - `record`: [`MetadataRecord`] (Kafka KRaft names) and its encoding.
//! - `frame`: a record's CRC'd frame in log and snapshot files.
//! - `image`: [`MetadataImage`], `apply(record) -> MetadataDelta`.
//! - `placement`: least-loaded shard choice and rebalancing.
//! - `controller`: [`Controller`], admin operations -> records, with
//!   Kafka error codes.
//! - `log`: [`MetadataLog`], append + fsync, replay, torn-tail repair.
//! - `snapshot`: snapshot file format and its crash-safe write.
//! - `store`: [`MetadataStore`], log + image committed together.
//!
//! Flow on shard 0: `Controller::create_topic(&image, ..)` validates and
//! returns records; `MetadataStore::commit(records)` checks them against a
//! copy of the image, appends and syncs them, then publishes the new
//! `Arc<MetadataImage>` with the deltas for the other shards.

pub mod controller;
pub mod frame;
pub mod image;
pub mod log;
pub mod placement;
pub mod record;
pub mod snapshot;
pub mod store;

pub use controller::{new_topic_id, ConfigOp, Controller, ControllerError, NewTopic};
pub use image::{ApplyError, MetadataDelta, MetadataImage, TopicImage};
pub use log::{MetadataLog, MetadataLogError, Replayed, METADATA_DIR_NAME};
pub use record::{
    ConfigRecord, ConfigResource, MetadataRecord, PartitionPlacementRecord, PartitionRecord,
    RemoveTopicRecord, ShardId, TopicRecord,
};
pub use store::{CommitError, Committed, MetadataStore};

// Kafka's error codes for the errors this module reports.
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
pub const INVALID_REQUEST: i16 = 42;
pub const POLICY_VIOLATION: i16 = 44;
pub const KAFKA_STORAGE_ERROR: i16 = 56;
pub const TOPIC_DELETION_DISABLED: i16 = 73;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
