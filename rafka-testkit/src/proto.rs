//! kafka-protocol request pieces that several test files build: names,
//! CreateTopics and Metadata entries, Produce requests and their answers
//! flattened.

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{FetchRequest, GroupId, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

/// Generous: an acks=all produce waits for one fdatasync of a temp dir.
pub const PRODUCE_TIMEOUT_MS: i32 = 30_000;

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(str_bytes(name))
}

pub fn group_id(name: &str) -> GroupId {
    GroupId(str_bytes(name))
}

/// A CreateTopics entry with replication factor -1 (the broker default).
pub fn creatable(name: &str, partitions: i32, configs: &[(&str, &str)]) -> CreatableTopic {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(str_bytes(k))
                .with_value(Some(str_bytes(v)))
        })
        .collect();
    CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
        .with_configs(configs)
}

pub fn metadata_topic(name: &str) -> MetadataRequestTopic {
    MetadataRequestTopic::default().with_name(Some(topic_name(name)))
}

/// A sessionless Fetch (v4-v12: topics by name) of `partitions` of
/// `topic` from offset 0, waiting up to `max_wait_ms` for `min_bytes`.
pub fn long_poll_fetch(
    topic: &str,
    partitions: &[i32],
    max_wait_ms: i32,
    min_bytes: i32,
) -> FetchRequest {
    let partitions = partitions
        .iter()
        .map(|&partition| {
            FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    let topic = FetchTopic::default()
        .with_topic(topic_name(topic))
        .with_partitions(partitions);
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(1 << 20)
        .with_topics(vec![topic])
}

/// Records per partition index, as a Produce request carries them.
pub type PartitionRecords = Vec<(i32, Option<Bytes>)>;

/// A Produce request for topics named by name (v3-v12).
pub fn produce_request(acks: i16, topics: Vec<(&str, PartitionRecords)>) -> ProduceRequest {
    let topic_data = topics
        .into_iter()
        .map(|(name, partitions)| topic_data(partitions).with_name(topic_name(name)))
        .collect();
    produce_of(acks, topic_data)
}

/// A Produce request for topics named by id (v13).
pub fn produce_request_by_id(acks: i16, topics: Vec<(Uuid, PartitionRecords)>) -> ProduceRequest {
    let topic_data = topics
        .into_iter()
        .map(|(id, partitions)| topic_data(partitions).with_topic_id(id))
        .collect();
    produce_of(acks, topic_data)
}

fn produce_of(acks: i16, topic_data: Vec<TopicProduceData>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(PRODUCE_TIMEOUT_MS)
        .with_topic_data(topic_data)
}

fn topic_data(partitions: PartitionRecords) -> TopicProduceData {
    TopicProduceData::default().with_partition_data(partition_data(partitions))
}

fn partition_data(partitions: PartitionRecords) -> Vec<PartitionProduceData> {
    partitions
        .into_iter()
        .map(|(index, records)| {
            PartitionProduceData::default()
                .with_index(index)
                .with_records(records)
        })
        .collect()
}

/// Every partition answer of a Produce response, flattened: (topic name,
/// partition answer).
pub fn produce_answers(response: &ProduceResponse) -> Vec<(String, PartitionProduceResponse)> {
    response
        .responses
        .iter()
        .flat_map(|topic| {
            topic
                .partition_responses
                .iter()
                .map(|p| (topic.name.to_string(), p.clone()))
        })
        .collect()
}
