//! ElectLeaders (key 43), v0-v2: asks for a preferred (or, v1+, unclean)
//! leader election. On a single node every partition is led by its only
//! and preferred replica, this node, so no election is ever needed and
//! nothing changes.
//!
//! Top-down: decode -> authorize -> answer each partition from the shard's
//! image -> encode.
//!
//! Answers, as Kafka's KRaft controller (`ControllerApis
//! .handleElectLeaders`, `ReplicationControlManager.electLeaders`):
//! - ALTER on the cluster is required: CLUSTER_AUTHORIZATION_FAILED on
//!   every partition named (and at the top, v1+).
//! - An election type other than 0 (PREFERRED) or 1 (UNCLEAN) is
//!   INVALID_REQUEST the same way.
//! - A named partition of an existing topic: ELECTION_NOT_NEEDED (its
//!   leader is already the preferred one, and it has a leader); an unknown
//!   topic or partition: UNKNOWN_TOPIC_OR_PARTITION, with Kafka's messages.
//! - `topic_partitions` null means every partition, and answers only those
//!   that needed an election: every topic is listed with no partitions.
//! - The top-level error (v1+) is NONE otherwise; v0 has none.
//! - `timeout_ms` bounds the wait for elections, which never happen.

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::metadata::MetadataImage;
use rafka_proto::error::ErrorCode;

use super::{HandlerError, RequestContext};

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;
/// First version with a top-level error code.
const ERROR_CODE_VERSION_MIN: i16 = 1;

pub async fn handle(
    ctx: &RequestContext,
    request: ElectLeadersRequest,
) -> Result<ElectLeadersResponse, HandlerError> {
    if !ctx.authorize(AclOperation::Alter, Resource::Cluster) {
        let code = ErrorCode::CLUSTER_AUTHORIZATION_FAILED;
        return Ok(refused(ctx, &request, code, code.message()));
    }
    if request.election_type != PREFERRED && request.election_type != UNCLEAN {
        let message = format!("Unknown election type {}", request.election_type);
        return Ok(refused(ctx, &request, ErrorCode::INVALID_REQUEST, message));
    }
    let image = ctx.image();
    let results = match &request.topic_partitions {
        // Every partition: none needs an election, so none is listed.
        None => image
            .topics()
            .map(|topic| ReplicaElectionResult::default().with_topic(topic_name(&topic.name)))
            .collect(),
        Some(topics) => topics
            .iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|&index| {
                        let (code, message) = elect(&image, topic.topic.as_str(), index);
                        partition_result(index, code, Some(message))
                    })
                    .collect();
                ReplicaElectionResult::default()
                    .with_topic(topic.topic.clone())
                    .with_partition_result(partitions)
            })
            .collect(),
    };
    Ok(ElectLeadersResponse::default().with_replica_election_results(results))
}

/// Kafka's `electLeader` for one partition on a single node.
fn elect(image: &MetadataImage, topic: &str, index: i32) -> (ErrorCode, String) {
    let Some(found) = image.topic(topic) else {
        let message = format!("No such topic as {topic}");
        return (ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, message);
    };
    if found.shard_of(index).is_none() {
        let message = format!("No such partition as {topic}-{index}");
        return (ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, message);
    }
    let code = ErrorCode::ELECTION_NOT_NEEDED;
    (code, code.message())
}

/// Kafka's `ElectLeadersRequest.getErrorResponse`: the error at the top
/// (v1+) and on every partition named.
fn refused(
    ctx: &RequestContext,
    request: &ElectLeadersRequest,
    code: ErrorCode,
    message: String,
) -> ElectLeadersResponse {
    let results = request
        .topic_partitions
        .iter()
        .flatten()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|&index| partition_result(index, code, Some(message.clone())))
                .collect();
            ReplicaElectionResult::default()
                .with_topic(topic.topic.clone())
                .with_partition_result(partitions)
        })
        .collect();
    let response = ElectLeadersResponse::default().with_replica_election_results(results);
    match ctx.version() >= ERROR_CODE_VERSION_MIN {
        true => response.with_error_code(code.code()),
        false => response,
    }
}

fn partition_result(index: i32, code: ErrorCode, message: Option<String>) -> PartitionResult {
    PartitionResult::default()
        .with_partition_id(index)
        .with_error_code(code.code())
        .with_error_message(message.map(StrBytes::from_string))
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}
