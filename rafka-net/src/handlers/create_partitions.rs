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
//! - Manual assignments, when given, must be one per new partition, each
//!   as wide as the topic's partitions, of distinct registered brokers with
//!   one of them active; on a single node each is exactly this node
//!   (INVALID_REPLICA_ASSIGNMENT otherwise, checked by the controller).
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
use rafka_shard::controller::{GrowTopic, TopicFailure};
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
    let mut planned: Vec<(&str, Result<GrowTopic, TopicFailure>)> = Vec::new();
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
    let grow: Vec<GrowTopic> = planned
        .iter()
        .filter_map(|(_, checked)| checked.as_ref().ok().cloned())
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

/// Authorization, the one check the controller cannot make; the new
/// total and the manual assignment, if any, for the controller.
fn check(ctx: &RequestContext, topic: &CreatePartitionsTopic) -> Result<GrowTopic, TopicFailure> {
    let name = topic.name.as_str();
    if !ctx.authorize(AclOperation::Alter, Resource::Topic(name)) {
        return Err(TopicFailure::new(
            ErrorCode::TOPIC_AUTHORIZATION_FAILED,
            "Authorization failed.",
        ));
    }
    let assignments = topic.assignments.as_ref().map(|lists| {
        lists
            .iter()
            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
            .collect()
    });
    Ok(GrowTopic {
        name: name.to_string(),
        total: topic.count,
        assignments,
    })
}

/// The controller's outcome for each topic to grow, in order.
async fn create(
    ctx: &RequestContext,
    topics: Vec<GrowTopic>,
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
