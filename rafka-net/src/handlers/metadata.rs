//! Metadata (key 3), v0-v13: this broker as the whole cluster, and every
//! requested topic with its partitions, all led by this node.
//!
//! Decisions a client can notice:
//! - Topics are named (all versions) or, from v10, given by id; an entry
//!   with a non-nil id is looked up by id whatever its name says (Kafka
//!   too resolves names from ids when ids are given), and one naming no
//!   topic (or with neither) answers UNKNOWN_TOPIC_ID with a null name.
//!   Repeated entries are answered once, in first-seen order.
//! - A missing topic is auto-created when the request allows it (always
//!   before v4) and `auto.create.topics.enable` is on, then answered with
//!   its partitions at once: the controller answers only after every shard
//!   serves the topic, so the client needs no second round trip (Kafka says
//!   LEADER_NOT_AVAILABLE and lets the client ask again). Only when the
//!   topic cannot be confirmed within [`AUTO_CREATE_WAIT`] does it get that
//!   retriable LEADER_NOT_AVAILABLE.
//! - There is no replication: every partition has leader, replicas and ISR
//!   `[node_id]`, leader epoch 0.
//! - Without an authorizer every operation is allowed, so requested
//!   authorized-operation sets list all that Kafka's ACLs know.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rafka_core::config::topic_name::validate_topic_name;
use rafka_core::metadata::{MetadataImage, NewTopic, TopicImage};
use rafka_proto::api::decode_request;
use rafka_proto::error::ErrorCode;
use rafka_shard::controller::{CreatedTopic, TopicFailure};
use uuid::Uuid;

use super::controller_call::call_controller;
use super::{reply, HandlerContext, HandlerError, NodeInfo};
use crate::service::{Request, Response};

/// How long a Metadata request waits for the topics it auto-creates.
/// Shorter than any client's request timeout, so a slow metadata log
/// turns into a retriable error rather than a dropped request.
pub const AUTO_CREATE_WAIT: Duration = Duration::from_secs(5);

/// First version whose `allow_auto_topic_creation` the client sets; before
/// it, a Metadata request always allows auto-creation.
const ALLOW_AUTO_CREATE_VERSION_MIN: i16 = 4;
/// First version carrying `cluster_id`.
const CLUSTER_ID_VERSION_MIN: i16 = 2;
/// Versions carrying `cluster_authorized_operations`.
const CLUSTER_OPERATIONS_VERSIONS: std::ops::RangeInclusive<i16> = 8..=10;

/// Kafka's `AclOperation` codes.
const READ: u32 = 3;
const WRITE: u32 = 4;
const CREATE: u32 = 5;
const DELETE: u32 = 6;
const ALTER: u32 = 7;
const DESCRIBE: u32 = 8;
const CLUSTER_ACTION: u32 = 9;
const DESCRIBE_CONFIGS: u32 = 10;
const ALTER_CONFIGS: u32 = 11;
const IDEMPOTENT_WRITE: u32 = 12;

const fn operation_bits(operations: &[u32]) -> i32 {
    let mut bits = 0;
    let mut i = 0;
    while i < operations.len() {
        bits |= 1 << operations[i];
        i += 1;
    }
    bits
}

/// Every operation Kafka's ACLs define on a topic.
pub const TOPIC_AUTHORIZED_OPERATIONS: i32 = operation_bits(&[
    READ,
    WRITE,
    CREATE,
    DELETE,
    ALTER,
    DESCRIBE,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
]);

/// Every operation Kafka's ACLs define on the cluster.
pub const CLUSTER_AUTHORIZED_OPERATIONS: i32 = operation_bits(&[
    CREATE,
    ALTER,
    DESCRIBE,
    CLUSTER_ACTION,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
    IDEMPOTENT_WRITE,
]);

/// "Not requested" for an authorized-operations field (Kafka's default).
pub const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// Kafka's internal topic names (`Topic.isInternal`).
const INTERNAL_TOPICS: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

/// One topic entry of a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Wanted {
    Name(String),
    Id(Uuid),
}

/// A response entry, or a topic that first needs creating.
enum Slot {
    Done(MetadataResponseTopic),
    Create(String),
}

pub async fn handle(ctx: &HandlerContext, request: Request) -> Result<Response, HandlerError> {
    let version = request.header.api_version;
    let mut body = request.body;
    let decoded: MetadataRequest = decode_request(&mut body, version)?;
    let topic_operations = decoded.include_topic_authorized_operations;
    let topics = match wanted_topics(&decoded, version) {
        None => all_topics(&ctx.shard.image(), ctx.node.node_id, topic_operations),
        Some(wanted) => {
            let auto_create = ctx.shard.config.auto_create_topics_enable
                && (version < ALLOW_AUTO_CREATE_VERSION_MIN || decoded.allow_auto_topic_creation);
            let slots = resolve(ctx, wanted, auto_create, topic_operations);
            create_missing(ctx, slots, topic_operations).await
        }
    };
    let mut response = MetadataResponse::default()
        .with_brokers(vec![broker(&ctx.node)])
        .with_controller_id(BrokerId(ctx.node.node_id))
        .with_topics(topics);
    if version >= CLUSTER_ID_VERSION_MIN {
        response.cluster_id = Some(StrBytes::from_string(ctx.node.cluster_id.clone()));
    }
    if CLUSTER_OPERATIONS_VERSIONS.contains(&version)
        && decoded.include_cluster_authorized_operations
    {
        response.cluster_authorized_operations = CLUSTER_AUTHORIZED_OPERATIONS;
    }
    reply(
        &request.header,
        request.response_header_version,
        &response,
        version,
    )
}

/// The requested topics, deduplicated in first-seen order; `None` for
/// "all topics" (a null list, or an empty one in v0).
fn wanted_topics(request: &MetadataRequest, version: i16) -> Option<Vec<Wanted>> {
    let topics = request.topics.as_ref()?;
    if version == 0 && topics.is_empty() {
        return None;
    }
    let mut seen = HashSet::new();
    let wanted = topics
        .iter()
        .map(|t| match &t.name {
            Some(name) if t.topic_id.is_nil() => Wanted::Name(name.as_str().to_string()),
            _ => Wanted::Id(t.topic_id),
        })
        .filter(|w| seen.insert(w.clone()))
        .collect();
    Some(wanted)
}

/// Answers each wanted topic from the image, marking the missing ones that
/// may be auto-created.
fn resolve(
    ctx: &HandlerContext,
    wanted: Vec<Wanted>,
    auto_create: bool,
    operations: bool,
) -> Vec<Slot> {
    let image = ctx.shard.image();
    let node_id = ctx.node.node_id;
    wanted
        .into_iter()
        .map(|w| match w {
            Wanted::Id(id) => match image.topic_by_id(&id) {
                Some(topic) => Slot::Done(topic_entry(topic, node_id, operations)),
                None => Slot::Done(unknown_id_entry(id)),
            },
            Wanted::Name(name) => match image.topic(&name) {
                Some(topic) => Slot::Done(topic_entry(topic, node_id, operations)),
                None if validate_topic_name(&name).is_err() => Slot::Done(error_entry(
                    name,
                    ResponseError::InvalidTopicException.code(),
                )),
                None if auto_create => Slot::Create(name),
                None => Slot::Done(error_entry(
                    name,
                    ResponseError::UnknownTopicOrPartition.code(),
                )),
            },
        })
        .collect()
}

/// Creates the topics the slots ask for (one controller call for all) and
/// fills their entries.
async fn create_missing(
    ctx: &HandlerContext,
    slots: Vec<Slot>,
    operations: bool,
) -> Vec<MetadataResponseTopic> {
    let names: Vec<String> = slots
        .iter()
        .filter_map(|s| match s {
            Slot::Create(name) => Some(name.clone()),
            Slot::Done(_) => None,
        })
        .collect();
    let mut outcomes = auto_create(ctx, names).await;
    let mut entries = Vec::with_capacity(slots.len());
    for slot in slots {
        let entry = match slot {
            Slot::Done(entry) => entry,
            Slot::Create(name) => {
                let code = outcomes
                    .remove(&name)
                    .unwrap_or(ResponseError::LeaderNotAvailable.code());
                created_entry(ctx, name, code, operations).await
            }
        };
        entries.push(entry);
    }
    entries
}

/// Asks the controller to create `names` with the broker's defaults;
/// returns the error code per name (0: the topic exists now).
async fn auto_create(ctx: &HandlerContext, names: Vec<String>) -> BTreeMap<String, i16> {
    if names.is_empty() {
        return BTreeMap::new();
    }
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|name| NewTopic {
            name: name.clone(),
            partitions: -1,
            replication_factor: -1,
            configs: BTreeMap::new(),
        })
        .collect();
    let outcomes = call_controller(
        &ctx.shard,
        Some(AUTO_CREATE_WAIT),
        move |shard| async move {
            let controller = shard.controller.as_ref()?;
            Some(controller.create_topics(&shard, topics, false).await)
        },
    )
    .await;
    // An unanswered call leaves the names out: LEADER_NOT_AVAILABLE.
    let outcomes = outcomes.unwrap_or_default();
    names
        .into_iter()
        .zip(outcomes)
        .map(|(name, outcome)| (name, creation_code(&outcome)))
        .collect()
}

/// A topic another request created meanwhile counts as created.
fn creation_code(outcome: &Result<CreatedTopic, TopicFailure>) -> i16 {
    match outcome {
        Ok(_) => 0,
        Err(failure) if failure.code == ErrorCode::TOPIC_ALREADY_EXISTS.code() => 0,
        Err(failure) => failure.code,
    }
}

/// The entry of an auto-created topic: the controller has broadcast it, so
/// the local image has it unless a shard failed to apply; then wait a
/// bounded time before calling it LEADER_NOT_AVAILABLE.
async fn created_entry(
    ctx: &HandlerContext,
    name: String,
    code: i16,
    operations: bool,
) -> MetadataResponseTopic {
    if code != 0 {
        return error_entry(name, code);
    }
    if !ctx.shard.wait_for_topic(&name, AUTO_CREATE_WAIT).await {
        return error_entry(name, ResponseError::LeaderNotAvailable.code());
    }
    match ctx.shard.image().topic(&name) {
        Some(topic) => topic_entry(topic, ctx.node.node_id, operations),
        // Deleted again between the wait and now.
        None => error_entry(name, ResponseError::UnknownTopicOrPartition.code()),
    }
}

fn all_topics(image: &MetadataImage, node_id: i32, operations: bool) -> Vec<MetadataResponseTopic> {
    image
        .topics()
        .map(|topic| topic_entry(topic, node_id, operations))
        .collect()
}

/// This node, as Metadata lists brokers.
fn broker(node: &NodeInfo) -> MetadataResponseBroker {
    MetadataResponseBroker::default()
        .with_node_id(BrokerId(node.node_id))
        .with_host(StrBytes::from_string(node.host.clone()))
        .with_port(i32::from(node.port))
        .with_rack(None)
}

fn topic_entry(topic: &TopicImage, node_id: i32, operations: bool) -> MetadataResponseTopic {
    let leader = BrokerId(node_id);
    let partitions = (0..topic.partition_count())
        .map(|index| {
            MetadataResponsePartition::default()
                .with_error_code(0)
                .with_partition_index(index)
                .with_leader_id(leader)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![leader])
                .with_isr_nodes(vec![leader])
                .with_offline_replicas(Vec::new())
        })
        .collect();
    let authorized = if operations {
        TOPIC_AUTHORIZED_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    MetadataResponseTopic::default()
        .with_error_code(0)
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(topic.id)
        .with_is_internal(INTERNAL_TOPICS.contains(&topic.name.as_str()))
        .with_partitions(partitions)
        .with_topic_authorized_operations(authorized)
}

fn error_entry(name: String, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code)
        .with_name(Some(TopicName(StrBytes::from_string(name))))
}

fn unknown_id_entry(id: Uuid) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(ResponseError::UnknownTopicId.code())
        .with_name(None)
        .with_topic_id(id)
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_sets_match_kafkas() {
        // Values a Kafka 3.x broker without an authorizer reports.
        assert_eq!(TOPIC_AUTHORIZED_OPERATIONS, 3576);
        assert_eq!(CLUSTER_AUTHORIZED_OPERATIONS, 8096);
    }
}
