//! OffsetDelete (key 47), v0: deletes a group's committed offsets of some
//! partitions; refused per partition (GROUP_SUBSCRIBED_TO_TOPIC) while
//! members of the group consume the topic.
//!
//! Top-down: authorize DELETE on the group -> run on the group's
//! coordinator. An empty group id is INVALID_GROUP_ID without asking a
//! coordinator, as in Kafka; a coordinator that cannot answer makes the
//! top-level error.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_proto::error::ErrorCode;
use rafka_shard::group::PartitionCodes;

use super::coordinator_call::on_group_coordinator;
use super::{HandlerError, RequestContext};

pub async fn handle(
    ctx: &RequestContext,
    request: OffsetDeleteRequest,
) -> Result<OffsetDeleteResponse, HandlerError> {
    let deleted = if !ctx.authorize(AclOperation::Delete, Resource::Group(&request.group_id)) {
        Err(ErrorCode::GROUP_AUTHORIZATION_FAILED)
    } else if request.group_id.is_empty() {
        Err(ErrorCode::INVALID_GROUP_ID)
    } else {
        let group_id = request.group_id.to_string();
        let topics: Vec<(String, Vec<i32>)> = request
            .topics
            .iter()
            .map(|t| {
                let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
                (t.name.to_string(), partitions)
            })
            .collect();
        let key = group_id.clone();
        on_group_coordinator(ctx, &key, move |shard| async move {
            shard.groups().delete_offsets(&group_id, &topics).await
        })
        .await
        .unwrap_or_else(Err)
    };
    Ok(match deleted {
        Ok(codes) => response(codes),
        Err(code) => OffsetDeleteResponse::default().with_error_code(code.code()),
    })
}

fn response(codes: PartitionCodes) -> OffsetDeleteResponse {
    let topics = codes
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, code)| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(code.code())
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
