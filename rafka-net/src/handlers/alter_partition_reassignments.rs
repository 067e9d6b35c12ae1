//! AlterPartitionReassignments (key 45), v0-v1: moves partitions to other
//! replicas, or cancels a move.
//!
//! Top-down: decode -> authorize -> the active controller decides and
//! commits each partition's change (Kafka's `ReplicationControlManager
//! .alterPartitionReassignments`, see `Controller::reassign` in
//! `rafka_core::metadata::partition_control`) -> encode. The move itself
//! happens after the answer, as in Kafka: the new replicas open the
//! partition and fetch it from the leader, the leader brings them into the
//! ISR once caught up, and that ISR change completes the reassignment (the
//! dropped replicas leave and delete their copy; a dropped leader hands
//! over to the first in-sync replica of the target).
//!
//! Answers, as Kafka's KRaft controller:
//! - ALTER on the cluster is required: CLUSTER_AUTHORIZATION_FAILED at the
//!   top and on every partition.
//! - An unknown topic or partition is UNKNOWN_TOPIC_OR_PARTITION.
//! - `replicas` null (cancel) without a reassignment in progress is
//!   NO_REASSIGNMENT_IN_PROGRESS; a cancel that would leave no in-sync
//!   replica is INVALID_REPLICA_ASSIGNMENT unless the topic allows unclean
//!   elections.
//! - A target that is empty, names a broker twice or one not registered is
//!   INVALID_REPLICA_ASSIGNMENT with Kafka's message (sorted ids).
//! - v1 with `allow_replication_factor_change` false: a target of another
//!   width is INVALID_REPLICATION_FACTOR.
//! - A node that is not the active controller answers NOT_CONTROLLER at the
//!   top and on every partition (admin clients then find the controller
//!   in Metadata and retry); `timeout_ms` bounds the wait for it.
//! - A single node (no quorum) has nowhere to move to: the only valid
//!   target is this node, where every partition already is, so nothing
//!   changes and no reassignment is ever in progress.

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
use rafka_shard::controller_handle::request_timeout;
use rafka_shard::quorum::ReassignmentRequest;

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
    let wanted: Vec<ReassignmentRequest> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| {
                let target = p
                    .replicas
                    .as_ref()
                    .map(|ids| ids.iter().map(|id| id.0).collect());
                (topic.name.to_string(), p.partition_index, target)
            })
        })
        .collect();
    let timeout = request_timeout(request.timeout_ms);
    let allow = request.allow_replication_factor_change;
    let failed = |code: ErrorCode, message: String| {
        let outcome = Err((code, message.clone()));
        response
            .clone()
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(message)))
            .with_responses(responses(&request, |_, _| outcome.clone()))
    };
    match ctx
        .controller()
        .alter_reassignments(wanted, allow, timeout)
        .await
    {
        Ok(Some(Ok(outcomes))) => {
            let mut outcomes = outcomes.into_iter();
            let answered = responses(&request, |_, _| {
                outcomes.next().unwrap_or_else(|| {
                    let code = ErrorCode::UNKNOWN_SERVER_ERROR;
                    Err((code, "the controller gave no outcome".to_string()))
                })
            });
            Ok(response.with_responses(answered))
        }
        Ok(Some(Err(code))) => Ok(failed(code, code.message())),
        Ok(None) if !ctx.config().quorum_configured() => {
            let image = ctx.image();
            let node_id = ctx.node().node_id;
            let answered = responses(&request, |topic, partition| {
                reassign(&image, node_id, topic, partition)
            });
            Ok(response.with_responses(answered))
        }
        // A broker-only node: the controller is elsewhere.
        Ok(None) => {
            let code = ErrorCode::NOT_CONTROLLER;
            Ok(failed(code, code.message()))
        }
        Err(error) => Ok(failed(error.error_code(), error.to_string())),
    }
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

/// Kafka's `alterPartitionReassignment` for one partition on a single
/// node (no quorum).
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
