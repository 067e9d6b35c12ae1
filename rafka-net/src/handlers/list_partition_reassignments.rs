//! ListPartitionReassignments (key 46), v0: the partition moves in
//! progress, read from this broker's copy of the metadata image (the
//! replicated log every broker applies; see `alter_partition_reassignments`
//! for how a move goes).
//!
//! Answers, as Kafka's KRaft controller (`ReplicationControlManager
//! .listPartitionReassignments`), which lists only partitions being
//! moved:
//! - DESCRIBE on the cluster is required: CLUSTER_AUTHORIZATION_FAILED at
//!   the top, with Kafka's message.
//! - Otherwise NONE with the partitions being moved, by topic: all of
//!   them when `topics` is null, else those named; unknown topics and
//!   partitions are just absent, as Kafka leaves them out. Each shows
//!   every replica (the target's, then those being removed), the ones
//!   being added and the ones being removed.
//! - A single node never moves a partition: always an empty list.
//!   `timeout_ms` has nothing to bound.

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::metadata::reassignments;
use rafka_proto::error::ErrorCode;

use super::{HandlerError, RequestContext};

pub async fn handle(
    ctx: &RequestContext,
    request: ListPartitionReassignmentsRequest,
) -> Result<ListPartitionReassignmentsResponse, HandlerError> {
    // Kafka's message is null unless the request failed.
    let response = ListPartitionReassignmentsResponse::default().with_error_message(None);
    if !ctx.authorize(AclOperation::Describe, Resource::Cluster) {
        let code = ErrorCode::CLUSTER_AUTHORIZATION_FAILED;
        return Ok(response
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(code.message()))));
    }
    let wanted: Option<Vec<(String, i32)>> = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(|index| (t.name.to_string(), *index))
            })
            .collect()
    });
    let image = ctx.image();
    let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
    for moving in reassignments(&image, wanted.as_deref()) {
        let ids = |ids: &[i32]| ids.iter().map(|id| BrokerId(*id)).collect();
        let partition = OngoingPartitionReassignment::default()
            .with_partition_index(moving.partition)
            .with_replicas(ids(&moving.replicas))
            .with_adding_replicas(ids(&moving.adding))
            .with_removing_replicas(ids(&moving.removing));
        match topics.iter_mut().find(|t| t.name.as_str() == moving.topic) {
            Some(listed) => listed.partitions.push(partition),
            None => topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(moving.topic)))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    Ok(response
        .with_error_code(ErrorCode::NONE.code())
        .with_topics(topics))
}
