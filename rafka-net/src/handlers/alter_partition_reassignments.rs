//! AlterPartitionReassignments (key 45), v0-v1: moves partitions to other
//! replicas, or cancels a move. A single node has nowhere to move to: the
//! only valid target is this node, where every partition already is, so
//! nothing changes and no reassignment is ever in progress.
//!
//! Top-down: decode -> authorize -> answer each partition from the shard's
//! image -> encode.
//!
//! Answers, as Kafka's KRaft controller (`ReplicationControlManager
//! .alterPartitionReassignments`):
//! - ALTER on the cluster is required: CLUSTER_AUTHORIZATION_FAILED at the
//!   top and on every partition.
//! - An unknown topic or partition is UNKNOWN_TOPIC_OR_PARTITION.
//! - `replicas` null (cancel) is NO_REASSIGNMENT_IN_PROGRESS.
//! - `replicas` [this node] is NONE: the partition is already there.
//! - Any other list is INVALID_REPLICA_ASSIGNMENT with Kafka's message
//!   (`validateManualPartitionAssignment`, sorted ids): an empty list, a
//!   broker that is not registered (any id but this node's), or this node
//!   named twice. The replication factor check of v1
//!   (`allow_replication_factor_change` false) can never fail after that:
//!   the only valid list has this node once, the factor every partition
//!   has.
//! - The top-level error is NONE otherwise; v1 echoes
//!   `allow_replication_factor_change`. `timeout_ms` bounds the
//!   controller's work, which is none.

use kafka_protocol::messages::alter_partition_reassignments_request::ReassignablePartition;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::metadata::MetadataImage;
use rafka_proto::error::ErrorCode;

use super::{HandlerError, RequestContext};

type Outcome = Result<(), (ErrorCode, String)>;

pub async fn handle(
    ctx: &RequestContext,
    request: AlterPartitionReassignmentsRequest,
) -> Result<AlterPartitionReassignmentsResponse, HandlerError> {
    // Kafka's top-level message is null unless the whole request failed.
    let response = AlterPartitionReassignmentsResponse::default()
        .with_error_message(None)
        .with_allow_replication_factor_change(request.allow_replication_factor_change);
    if !ctx.authorize(AclOperation::Alter, Resource::Cluster) {
        let code = ErrorCode::CLUSTER_AUTHORIZATION_FAILED;
        let refused = Err((code, code.message()));
        return Ok(response
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(code.message())))
            .with_responses(responses(&request, |_, _| refused.clone())));
    }
    let image = ctx.image();
    let node_id = ctx.node().node_id;
    let answered = responses(&request, |topic, partition| {
        reassign(&image, node_id, topic, partition)
    });
    Ok(response.with_responses(answered))
}

/// One response per partition of the request, in its order.
fn responses(
    request: &AlterPartitionReassignmentsRequest,
    mut outcome: impl FnMut(&str, &ReassignablePartition) -> Outcome,
) -> Vec<ReassignableTopicResponse> {
    request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let (code, message) = match outcome(topic.name.as_str(), partition) {
                        Ok(()) => (ErrorCode::NONE, None),
                        Err((code, message)) => (code, Some(StrBytes::from_string(message))),
                    };
                    ReassignablePartitionResponse::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(code.code())
                        .with_error_message(message)
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect()
}

/// Kafka's `alterPartitionReassignment` for one partition on a single node.
fn reassign(
    image: &MetadataImage,
    node_id: i32,
    topic: &str,
    partition: &ReassignablePartition,
) -> Outcome {
    let index = partition.partition_index;
    let unknown = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION;
    let Some(found) = image.topic(topic) else {
        return Err((unknown, format!("Unable to find a topic named {topic}.")));
    };
    if found.shard_of(index).is_none() {
        return Err((
            unknown,
            format!("Unable to find partition {topic}:{index}."),
        ));
    }
    let Some(replicas) = &partition.replicas else {
        let code = ErrorCode::NO_REASSIGNMENT_IN_PROGRESS;
        return Err((code, code.message()));
    };
    let replicas: Vec<i32> = replicas.iter().map(|id| id.0).collect();
    validate_assignment(node_id, replicas)
        .map_err(|message| (ErrorCode::INVALID_REPLICA_ASSIGNMENT, message))
}

/// Kafka's `validateManualPartitionAssignment` with this node the only
/// registered broker.
fn validate_assignment(node_id: i32, mut replicas: Vec<i32>) -> Result<(), String> {
    if replicas.is_empty() {
        return Err("The manual partition assignment includes an empty replica list.".into());
    }
    replicas.sort_unstable();
    let mut previous = None;
    for broker in replicas {
        if broker != node_id {
            return Err(format!(
                "The manual partition assignment includes broker {broker}, but no such \
                 broker is registered."
            ));
        }
        if previous == Some(broker) {
            return Err(format!(
                "The manual partition assignment includes the broker {broker} more than once."
            ));
        }
        previous = Some(broker);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_node_once_is_a_valid_assignment() {
        assert_eq!(validate_assignment(3, vec![3]), Ok(()));
        let refused = |replicas: Vec<i32>| validate_assignment(3, replicas).unwrap_err();
        assert!(refused(vec![]).contains("empty replica list"));
        assert!(refused(vec![3, 4]).contains("includes broker 4, but no such broker"));
        // Sorted first, as Kafka does: the lowest unknown id is named.
        assert!(refused(vec![9, 3, 1]).contains("includes broker 1,"));
        assert!(refused(vec![3, 3]).contains("the broker 3 more than once"));
    }
}
