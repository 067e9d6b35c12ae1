//! DescribeTopicPartitions (key 75), v0 (KIP-966): Metadata's topic and
//! partition answer, paged, which the Java admin client's `describeTopics`
//! uses when the broker offers it.
//!
//! Top-down: decode -> pick and authorize the topics -> page through them
//! from the cursor in the shard's image -> encode. No fan-out: everything
//! comes from the image.
//!
//! Answers, as Kafka's `DescribeTopicPartitionsRequestHandler` and
//! `KRaftMetadataCache.getTopicMetadataForDescribeTopicResponse`:
//! - No topics named means every topic; named ones are answered once
//!   each. Topics come by name, from the cursor's topic on.
//! - A cursor whose topic is not among the named ones, or whose partition
//!   is negative, is INVALID_REQUEST on every named topic.
//! - Topics the principal may not DESCRIBE: TOPIC_AUTHORIZATION_FAILED
//!   with a nil id, after the others (named), or left out (all topics).
//!   Every other topic carries its authorized-operations set.
//! - A named topic that does not exist is UNKNOWN_TOPIC_OR_PARTITION
//!   (INVALID_TOPIC_EXCEPTION if the name is not valid), nil id.
//! - At most `response_partition_limit` partitions (clamped to 1..=2000,
//!   Kafka's `max.request.partition.size.limit` default) per answer. A
//!   topic cut short sets `next_cursor` to its first partition left out;
//!   a limit reached exactly at a topic's end points the cursor at the
//!   next topic's partition 0 (Kafka does the same, and that topic need
//!   not exist).
//! - Every partition: its leader, epoch, replicas, ISR and offline
//!   replicas as Metadata shows them (`cluster_view`; a single node leads
//!   everything, epoch 0); eligible leader replicas and last known ELR
//!   empty (no replication yet, so no ELR).

use std::collections::BTreeSet;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::config::topic_name::validate_topic_name;
use rafka_core::metadata::TopicImage;
use rafka_proto::error::ErrorCode;
use uuid::Uuid;

use super::{HandlerError, RequestContext, INTERNAL_TOPICS};

/// Kafka's `max.request.partition.size.limit` default: the most
/// partitions one answer carries, whatever the client asks.
pub const RESPONSE_PARTITIONS_MAX: i32 = 2000;

pub async fn handle(
    ctx: &RequestContext,
    request: DescribeTopicPartitionsRequest,
) -> Result<DescribeTopicPartitionsResponse, HandlerError> {
    let all_topics = request.topics.is_empty();
    let cursor_topic = request
        .cursor
        .as_ref()
        .map_or("", |cursor| cursor.topic_name.as_str());
    let image = ctx.image();
    let names: BTreeSet<&str> = if all_topics {
        image.topics().map(|topic| topic.name.as_str()).collect()
    } else {
        request
            .topics
            .iter()
            .map(|topic| topic.name.as_str())
            .collect()
    };
    let names: Vec<&str> = names
        .into_iter()
        .filter(|name| *name >= cursor_topic)
        .collect();
    if let Some(cursor) = &request.cursor {
        let named = all_topics || names.contains(&cursor.topic_name.as_str());
        if !named || cursor.partition_index < 0 {
            return Ok(invalid_request(&request));
        }
    }
    let (authorized, denied): (Vec<&str>, Vec<&str>) = names
        .into_iter()
        .partition(|name| ctx.authorize(AclOperation::Describe, Resource::Topic(name)));
    let mut page = Page::new(request.response_partition_limit);
    let mut topics = Vec::new();
    for name in authorized {
        let start = match &request.cursor {
            Some(cursor) if cursor.topic_name.as_str() == name => cursor.partition_index,
            _ => 0,
        };
        if !page.has_room(name) {
            break;
        }
        let mut entry = match image.topic(name) {
            Some(topic) => page.topic(ctx, topic, start),
            None if all_topics => continue,
            None => missing_topic(name),
        };
        entry.topic_authorized_operations = ctx.authorized_operations(Resource::Topic(name));
        topics.push(entry);
        if page.next_cursor.is_some() {
            break;
        }
    }
    if !all_topics {
        topics.extend(
            denied
                .into_iter()
                .map(|name| topic_entry(name, ErrorCode::TOPIC_AUTHORIZATION_FAILED, Uuid::nil())),
        );
    }
    Ok(DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(page.next_cursor))
}

/// The partitions an answer may still carry, and where the next one
/// starts once it is full.
struct Page {
    remaining: i64,
    next_cursor: Option<Cursor>,
}

impl Page {
    fn new(limit: i32) -> Self {
        Page {
            remaining: i64::from(limit.clamp(1, RESPONSE_PARTITIONS_MAX)),
            next_cursor: None,
        }
    }

    /// Whether topic `name` starts in this answer; once the page is full
    /// it does not, and the cursor points at its start.
    fn has_room(&mut self, name: &str) -> bool {
        if self.remaining > 0 {
            return true;
        }
        self.next_cursor = Some(cursor(name, 0));
        false
    }

    /// `topic`'s partitions from `start`, as many as fit; sets the cursor
    /// if some are left out.
    fn topic(
        &mut self,
        ctx: &RequestContext,
        topic: &TopicImage,
        start: i32,
    ) -> DescribeTopicPartitionsResponseTopic {
        let count = i64::from(topic.partition_count());
        let start = i64::from(start);
        let upper = count.min(start.saturating_add(self.remaining));
        let image = ctx.image();
        let partitions: Vec<_> = (start..upper)
            .filter_map(|index| i32::try_from(index).ok())
            .map(|index| {
                partition_entry(
                    index,
                    super::cluster_view::partition(ctx, &image, topic, index),
                )
            })
            .collect();
        if upper < count {
            self.next_cursor = i32::try_from(upper)
                .ok()
                .map(|next| cursor(&topic.name, next));
        }
        self.remaining -= partitions.len() as i64;
        topic_entry(&topic.name, ErrorCode::NONE, topic.id).with_partitions(partitions)
    }
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(topic_name(topic))
        .with_partition_index(partition)
}

fn partition_entry(
    index: i32,
    view: super::cluster_view::PartitionView,
) -> DescribeTopicPartitionsResponsePartition {
    let ids = |ids: Vec<i32>| ids.into_iter().map(BrokerId).collect::<Vec<_>>();
    DescribeTopicPartitionsResponsePartition::default()
        .with_error_code(view.error_code().code())
        .with_partition_index(index)
        .with_leader_id(BrokerId(view.leader))
        .with_leader_epoch(view.leader_epoch)
        .with_replica_nodes(ids(view.replicas))
        .with_isr_nodes(ids(view.isr))
        .with_eligible_leader_replicas(Some(ids(view.elr)))
        .with_last_known_elr(Some(Vec::new()))
        .with_offline_replicas(ids(view.offline))
}

fn topic_entry(name: &str, error: ErrorCode, id: Uuid) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(error.code())
        .with_name(Some(topic_name(name)))
        .with_topic_id(id)
        .with_is_internal(INTERNAL_TOPICS.contains(&name))
}

fn missing_topic(name: &str) -> DescribeTopicPartitionsResponseTopic {
    let error = match validate_topic_name(name) {
        Ok(()) => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
        Err(_) => ErrorCode::INVALID_TOPIC_EXCEPTION,
    };
    topic_entry(name, error, Uuid::nil())
}

/// Kafka's `getErrorResponse`: every named topic answers the error.
fn invalid_request(request: &DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| topic_entry(topic.name.as_str(), ErrorCode::INVALID_REQUEST, Uuid::nil()))
        .collect();
    DescribeTopicPartitionsResponse::default().with_topics(topics)
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}
