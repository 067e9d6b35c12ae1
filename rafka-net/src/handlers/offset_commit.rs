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

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use rafka_proto::api::decode_request;

use super::group_call::{caller, on_coordinator};
use super::{reply, HandlerContext, HandlerError};
use crate::service::{Request, Response};

/// Kafka's `OffsetCommitRequest.DEFAULT_RETENTION_TIME`.
const DEFAULT_RETENTION_TIME_MS: i64 = -1;

pub async fn handle(ctx: &HandlerContext, request: Request) -> Result<Response, HandlerError> {
    let version = request.header.api_version;
    let caller = caller(&request);
    let mut body = request.body;
    let mut decoded: OffsetCommitRequest = decode_request(&mut body, version)?;
    decoded.retention_time_ms = DEFAULT_RETENTION_TIME_MS;
    let group_id = decoded.group_id.to_string();
    let unanswered = every_partition(&decoded);
    let committed = on_coordinator(ctx, &group_id, move |shard| async move {
        shard.groups().offset_commit(caller, decoded).await
    })
    .await;
    let mut response = committed.unwrap_or_else(|code| with_error(unanswered, code));
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
