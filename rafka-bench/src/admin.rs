//! Setup calls before a run: make sure the topic exists with the asked
//! partition count (CreateTopics), learn its partitions (Metadata), and
//! read each partition's end offset or last stable offset (ListOffsets,
//! latest, read_uncommitted or read_committed).

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, ListOffsetsRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rafka_proto::error::ErrorCode;

use crate::client::{ClientError, Wire};

/// Kafka error codes the setup treats as expected.
const NONE: i16 = ErrorCode::NONE.code();
const TOPIC_ALREADY_EXISTS: i16 = ErrorCode::TOPIC_ALREADY_EXISTS.code();
const UNKNOWN_TOPIC_OR_PARTITION: i16 = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code();
/// ListOffsets' timestamp meaning "the log end offset".
const LATEST_TIMESTAMP: i64 = -1;
/// ListOffsets' isolation levels: the high watermark, or the last stable
/// offset.
const READ_UNCOMMITTED: i8 = 0;
const READ_COMMITTED: i8 = 1;

const METADATA_VERSION: i16 = 12;
const CREATE_TOPICS_VERSION: i16 = 7;
const LIST_OFFSETS_VERSION: i16 = 7;

pub fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// Creates `topic` with `partitions` partitions unless it exists, then
/// returns its partition ids in order.
pub fn ensure_topic(
    wire: &mut Wire,
    topic: &str,
    partitions: i32,
) -> Result<Vec<i32>, ClientError> {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
    let response = wire.call(&request, CREATE_TOPICS_VERSION)?;
    for result in &response.topics {
        if result.error_code != NONE && result.error_code != TOPIC_ALREADY_EXISTS {
            return Err(ClientError::ErrorCode {
                api_key: ApiKey::CreateTopics,
                error_code: result.error_code,
            });
        }
    }
    partitions_of(wire, topic)
}

/// The topic's partition ids, sorted.
pub fn partitions_of(wire: &mut Wire, topic: &str) -> Result<Vec<i32>, ClientError> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
        ]))
        .with_allow_auto_topic_creation(false);
    let response = wire.call(&request, METADATA_VERSION)?;
    let found = response
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|name| name.0.as_str() == topic));
    let Some(found) = found else {
        return Err(ClientError::ErrorCode {
            api_key: ApiKey::Metadata,
            error_code: UNKNOWN_TOPIC_OR_PARTITION,
        });
    };
    if found.error_code != NONE {
        return Err(ClientError::ErrorCode {
            api_key: ApiKey::Metadata,
            error_code: found.error_code,
        });
    }
    let mut ids: Vec<i32> = found.partitions.iter().map(|p| p.partition_index).collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Each partition's log end offset, in the order of `partitions`.
pub fn end_offsets(
    wire: &mut Wire,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<i64>, ClientError> {
    latest_offsets(wire, topic, partitions, READ_UNCOMMITTED)
}

/// Each partition's last stable offset (what a read_committed consumer
/// may read up to), in the order of `partitions`.
pub fn stable_offsets(
    wire: &mut Wire,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<i64>, ClientError> {
    latest_offsets(wire, topic, partitions, READ_COMMITTED)
}

fn latest_offsets(
    wire: &mut Wire,
    topic: &str,
    partitions: &[i32],
    isolation_level: i8,
) -> Result<Vec<i64>, ClientError> {
    let request = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_isolation_level(isolation_level)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p)
                            .with_timestamp(LATEST_TIMESTAMP)
                    })
                    .collect(),
            )]);
    let response = wire.call(&request, LIST_OFFSETS_VERSION)?;
    let answered: Vec<_> = response.topics.iter().flat_map(|t| &t.partitions).collect();
    partitions
        .iter()
        .map(|&p| {
            let found = answered.iter().find(|r| r.partition_index == p);
            match found {
                Some(r) if r.error_code == NONE => Ok(r.offset),
                other => Err(ClientError::ErrorCode {
                    api_key: ApiKey::ListOffsets,
                    error_code: other.map_or(UNKNOWN_TOPIC_OR_PARTITION, |r| r.error_code),
                }),
            }
        })
        .collect()
}
