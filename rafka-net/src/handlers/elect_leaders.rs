//! ElectLeaders (key 43), v0-v2: a preferred (or, v1+, unclean) leader
//! election, decided and committed by the active controller.
//!
//! Top-down: decode -> authorize -> the controller elects and commits
//! (Kafka's `ReplicationControlManager.electLeaders`, see
//! `rafka_core::metadata::partition_control`) -> encode.
//!
//! Answers, as Kafka's KRaft controller (`ControllerApis
//! .handleElectLeaders`):
//! - ALTER on the cluster is required: CLUSTER_AUTHORIZATION_FAILED on
//!   every partition named (and at the top, v1+).
//! - An election type other than 0 (PREFERRED) or 1 (UNCLEAN) is
//!   INVALID_REQUEST the same way.
//! - Per partition: NONE when its leader moved; ELECTION_NOT_NEEDED when
//!   the preferred replica leads (PREFERRED) or it has a leader (UNCLEAN);
//!   PREFERRED_LEADER_NOT_AVAILABLE when the first replica is out of the
//!   ISR, fenced or shutting down; ELIGIBLE_LEADERS_NOT_AVAILABLE when no
//!   replica is alive (UNCLEAN); UNKNOWN_TOPIC_OR_PARTITION with Kafka's
//!   messages.
//! - `topic_partitions` null means every partition, and answers only those
//!   that needed an election: every topic is listed, with those.
//! - A node that is not the active controller answers NOT_CONTROLLER (at
//!   the top, v1+, and on every partition named): Metadata names the
//!   active controller, where admin clients send ElectLeaders.
//! - `timeout_ms` bounds the wait for the controller (REQUEST_TIMED_OUT).
//! - A single node (no quorum): every partition is led by its only and
//!   preferred replica, so no election is ever needed.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::metadata::{ElectionType, MetadataImage};
use rafka_proto::error::ErrorCode;
use rafka_shard::controller_handle::request_timeout;
use rafka_shard::quorum::ElectionAnswer;

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
    let election = match request.election_type {
        PREFERRED => ElectionType::Preferred,
        _ => ElectionType::Unclean,
    };
    let named = request.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|topic| {
                let name = topic.topic.to_string();
                topic
                    .partitions
                    .iter()
                    .map(move |&index| (name.clone(), index))
            })
            .collect::<Vec<_>>()
    });
    let timeout = request_timeout(request.timeout_ms);
    match ctx
        .controller()
        .elect_leaders(election, named, timeout)
        .await
    {
        Ok(Some(Ok(answers))) => Ok(answered(ctx, &request, answers)),
        Ok(Some(Err(code))) => Ok(refused(ctx, &request, code, code.message())),
        Ok(None) if !ctx.config().quorum_configured() => Ok(single_node(ctx, &request)),
        // A broker-only node: the controller is elsewhere.
        Ok(None) => {
            let code = ErrorCode::NOT_CONTROLLER;
            Ok(refused(ctx, &request, code, code.message()))
        }
        Err(error) => {
            let code = error.error_code();
            Ok(refused(ctx, &request, code, error.to_string()))
        }
    }
}

/// The controller's answers, grouped by topic in the request's order (or,
/// for every partition, every topic of the image).
fn answered(
    ctx: &RequestContext,
    request: &ElectLeadersRequest,
    answers: Vec<ElectionAnswer>,
) -> ElectLeadersResponse {
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for ((topic, index), outcome) in answers {
        let result = match outcome {
            Ok(()) => partition_result(index, ErrorCode::NONE, None),
            Err((code, message)) => partition_result(index, code, Some(message)),
        };
        by_topic.entry(topic).or_default().push(result);
    }
    let names: Vec<String> = match &request.topic_partitions {
        Some(topics) => {
            let mut seen = BTreeSet::new();
            topics
                .iter()
                .map(|t| t.topic.to_string())
                .filter(|name| seen.insert(name.clone()))
                .collect()
        }
        None => ctx.image().topics().map(|t| t.name.to_string()).collect(),
    };
    let results = names
        .into_iter()
        .map(|name| {
            let partitions = by_topic.remove(&name).unwrap_or_default();
            ReplicaElectionResult::default()
                .with_topic(topic_name(&name))
                .with_partition_result(partitions)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}

/// A single node's answer: nothing ever needs an election.
fn single_node(ctx: &RequestContext, request: &ElectLeadersRequest) -> ElectLeadersResponse {
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
    ElectLeadersResponse::default().with_replica_election_results(results)
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
