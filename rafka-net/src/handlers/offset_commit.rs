//! OffsetCommit (key 8), v2-v9: a consumer stores its position in each
//! partition; the coordinator answers once the offsets are durable in
//! `__consumer_offsets` (as an acks=all produce).
//!
//! Decisions a client can notice:
//! - An empty group id is accepted, as Kafka does for backward
//!   compatibility: it names a group like any other.
//! - v2-v4 carry a retention time; it is ignored, as in Kafka since 2.1
//!   (offsets expire per `offsets.retention.minutes`).
//! - When the coordinator cannot be reached, every partition of the
//!   request carries the error, as in Kafka.
//! - A partition of a topic that does not exist is answered
//!   UNKNOWN_TOPIC_OR_PARTITION and not committed, as in Kafka; the rest
//!   of the request is.

use std::collections::BTreeSet;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use rafka_core::metadata::MetadataImage;
use rafka_proto::api::decode_request;

use super::group_call::{caller, on_coordinator};
use super::{reply, HandlerContext, HandlerError};
use crate::service::{Request, Response};

/// Kafka's `OffsetCommitRequest.DEFAULT_RETENTION_TIME`.
const DEFAULT_RETENTION_TIME_MS: i64 = -1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const UNKNOWN_SERVER_ERROR: i16 = -1;

pub async fn handle(ctx: &HandlerContext, request: Request) -> Result<Response, HandlerError> {
    let version = request.header.api_version;
    let caller = caller(&request);
    let mut body = request.body;
    let mut decoded: OffsetCommitRequest = decode_request(&mut body, version)?;
    decoded.retention_time_ms = DEFAULT_RETENTION_TIME_MS;
    let group_id = decoded.group_id.to_string();
    let unanswered = every_partition(&decoded);
    let unknown = drop_unknown_partitions(&mut decoded, &ctx.shard.image());
    let mut response = if decoded.topics.is_empty() {
        unanswered.clone()
    } else {
        let committed = on_coordinator(ctx, &group_id, move |shard| async move {
            shard.groups().offset_commit(caller, decoded).await
        })
        .await;
        match committed {
            Ok(committed) => committed,
            Err(code) => with_error(unanswered.clone(), code),
        }
    };
    if !unknown.is_empty() {
        response = in_request_order(unanswered, &response, &unknown);
    }
    response.throttle_time_ms = 0;
    reply(
        &request.header,
        request.response_header_version,
        &response,
        version,
    )
}

/// An answer naming every partition of `request`, each without error.
fn every_partition(request: &OffsetCommitRequest) -> OffsetCommitResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default().with_partition_index(p.partition_index)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// Takes the partitions of topics the broker does not have out of
/// `request`; returns them as (topic, partition).
fn drop_unknown_partitions(
    request: &mut OffsetCommitRequest,
    image: &MetadataImage,
) -> BTreeSet<(String, i32)> {
    let mut unknown = BTreeSet::new();
    for topic in &mut request.topics {
        let name = topic.name.to_string();
        let count = image.topic(&name).map_or(0, |t| t.partitions.len());
        topic.partitions.retain(|p| {
            let known = usize::try_from(p.partition_index).is_ok_and(|index| index < count);
            if !known {
                unknown.insert((name.clone(), p.partition_index));
            }
            known
        });
    }
    request.topics.retain(|topic| !topic.partitions.is_empty());
    unknown
}

/// Every partition of the request (`all`) in its order, with the
/// coordinator's code for the committed ones and UNKNOWN_TOPIC_OR_PARTITION
/// for `unknown`.
fn in_request_order(
    mut all: OffsetCommitResponse,
    committed: &OffsetCommitResponse,
    unknown: &BTreeSet<(String, i32)>,
) -> OffsetCommitResponse {
    for topic in &mut all.topics {
        let name = topic.name.to_string();
        let answered = committed.topics.iter().find(|t| t.name == topic.name);
        for partition in &mut topic.partitions {
            let index = partition.partition_index;
            partition.error_code = if unknown.contains(&(name.clone(), index)) {
                UNKNOWN_TOPIC_OR_PARTITION
            } else {
                answered
                    .and_then(|t| t.partitions.iter().find(|p| p.partition_index == index))
                    .map_or(UNKNOWN_SERVER_ERROR, |p| p.error_code)
            };
        }
    }
    all
}

fn with_error(mut response: OffsetCommitResponse, error_code: i16) -> OffsetCommitResponse {
    for partition in response
        .topics
        .iter_mut()
        .flat_map(|t| t.partitions.iter_mut())
    {
        partition.error_code = error_code;
    }
    response
}
