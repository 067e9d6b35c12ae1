//! CreatePartitions (key 37), v0-v3: grows topics to a new partition
//! count; the controller on shard 0 places the new partitions on shards and
//! every owning shard opens them before the answer.
//!
//! Decisions a client can notice, following Kafka's KRaft controller
//! (`ReplicationControlManager.createPartitions`):
//! - A name given twice is answered once, after the others, with
//!   INVALID_REQUEST, and not grown.
//! - ALTER on the topic is required (TOPIC_AUTHORIZATION_FAILED).
//! - Only increases: a count at or below the current one is
//!   INVALID_PARTITIONS; an unknown topic UNKNOWN_TOPIC_OR_PARTITION.
//! - Manual assignments, when given, must be one per new partition and each
//!   exactly this node (INVALID_REPLICA_ASSIGNMENT otherwise).
//! - `validate_only` runs every check and changes nothing.
//! - All or nothing per topic: if a shard cannot open a new partition, the
//!   topic keeps its old count and the answer is KAFKA_STORAGE_ERROR.
//! - `timeout_ms` works as in CreateTopics ([`request_timeout`]).
//! - The partitions added count against the client's
//!   `controller_mutation_rate` (KIP-599), `validate_only` too: from v3 a
//!   topic over the quota is refused with THROTTLING_QUOTA_EXCEEDED;
//!   older versions are only throttled.

use std::collections::HashMap;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_proto::error::ErrorCode;
use rafka_shard::controller::TopicFailure;
use rafka_shard::controller_handle::request_timeout;

use super::{HandlerError, RequestContext};

type Outcome = Result<(), TopicFailure>;

/// First version on which the controller mutation quota refuses topics
/// (THROTTLING_QUOTA_EXCEEDED) rather than only throttling (KIP-599).
const STRICT_MUTATION_QUOTA_VERSION_MIN: i16 = 3;

pub async fn handle(
    ctx: &RequestContext,
    request: CreatePartitionsRequest,
) -> Result<CreatePartitionsResponse, HandlerError> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for topic in &request.topics {
        *counts.entry(topic.name.as_str()).or_default() += 1;
    }
    let mut duplicates: Vec<&str> = Vec::new();
    let mut planned: Vec<(&str, Result<i32, TopicFailure>)> = Vec::new();
    for topic in &request.topics {
        let name = topic.name.as_str();
        if counts[name] > 1 {
            if !duplicates.contains(&name) {
                duplicates.push(name);
            }
            continue;
        }
        planned.push((name, check(ctx, topic)));
    }
    let grow: Vec<(String, i32)> = planned
        .iter()
        .filter_map(|(name, checked)| checked.as_ref().ok().map(|c| (name.to_string(), *c)))
        .collect();
    let mut grown = create(ctx, grow, request.validate_only, request.timeout_ms)
        .await
        .into_iter();
    let mut results = Vec::with_capacity(planned.len() + duplicates.len());
    for (name, checked) in planned {
        let outcome = match checked {
            Err(refused) => Err(refused),
            Ok(_) => grown.next().unwrap_or_else(|| {
                Err(TopicFailure::new(
                    ErrorCode::UNKNOWN_SERVER_ERROR,
                    "the controller gave no outcome",
                ))
            }),
        };
        results.push(result(name, outcome));
    }
    for name in duplicates {
        let duplicate = TopicFailure::new(ErrorCode::INVALID_REQUEST, "Duplicate topic name.");
        results.push(result(name, Err(duplicate)));
    }
    Ok(CreatePartitionsResponse::default().with_results(results))
}

/// What only the request and the image can show: authorization and the
/// manual assignment. Returns the new total.
fn check(ctx: &RequestContext, topic: &CreatePartitionsTopic) -> Result<i32, TopicFailure> {
    let name = topic.name.as_str();
    if !ctx.authorize(AclOperation::Alter, Resource::Topic(name)) {
        return Err(TopicFailure::new(
            ErrorCode::TOPIC_AUTHORIZATION_FAILED,
            "Authorization failed.",
        ));
    }
    let Some(assignments) = &topic.assignments else {
        return Ok(topic.count);
    };
    // Without the topic the controller answers UNKNOWN_TOPIC_OR_PARTITION,
    // and a count that does not grow INVALID_PARTITIONS, before any
    // assignment is looked at.
    let Some(current) = ctx.image().topic(name).map(|t| t.partition_count()) else {
        return Ok(topic.count);
    };
    if topic.count <= current {
        return Ok(topic.count);
    }
    let added = i64::from(topic.count) - i64::from(current);
    if assignments.len() as i64 != added {
        return Err(invalid_assignment(format!(
            "Attempted to add {added} additional partitions, but only {} assignments were \
             supplied.",
            assignments.len()
        )));
    }
    let node = ctx.node().node_id;
    for (index, assignment) in assignments.iter().enumerate() {
        let brokers: Vec<i32> = assignment.broker_ids.iter().map(|b| b.0).collect();
        if brokers != [node] {
            return Err(invalid_assignment(format!(
                "The manual partition assignment for new partition {} names brokers {brokers:?}; \
                 this single-node cluster has only broker {node}.",
                i64::from(current) + index as i64
            )));
        }
    }
    Ok(topic.count)
}

fn invalid_assignment(message: String) -> TopicFailure {
    TopicFailure::new(ErrorCode::INVALID_REPLICA_ASSIGNMENT, message)
}

/// The controller's outcome for each topic to grow, in order.
async fn create(
    ctx: &RequestContext,
    topics: Vec<(String, i32)>,
    validate_only: bool,
    timeout_ms: i32,
) -> Vec<Outcome> {
    if topics.is_empty() {
        return Vec::new();
    }
    let count = topics.len();
    let timeout = request_timeout(timeout_ms);
    let quota = ctx.mutation_quota(STRICT_MUTATION_QUOTA_VERSION_MIN);
    match ctx
        .controller()
        .create_partitions(topics, validate_only, timeout, Some(quota))
        .await
    {
        Ok(charged) => {
            ctx.add_throttle_ms(charged.throttle_time_ms);
            charged.outcomes
        }
        Err(error) => vec![Err(error.topic_failure()); count],
    }
}

fn result(name: &str, outcome: Outcome) -> CreatePartitionsTopicResult {
    let result = CreatePartitionsTopicResult::default()
        .with_name(TopicName(StrBytes::from_string(name.to_string())));
    match outcome {
        Ok(()) => result
            .with_error_code(ErrorCode::NONE.code())
            .with_error_message(None),
        Err(failure) => result
            .with_error_code(failure.code.code())
            .with_error_message(Some(StrBytes::from_string(failure.message))),
    }
}
