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
//! - Brokers, the controller id and each partition's leader, replicas and
//!   ISR are the cluster's (`cluster_view`); a single node lists itself and
//!   leads every partition (replicas and ISR `[node_id]`, leader epoch 0).
//! - Topics the principal may not DESCRIBE are answered
//!   TOPIC_AUTHORIZATION_FAILED (named) or left out (all topics), and
//!   requested authorized-operation sets come from the request context's
//!   authorizer (every operation while there are no ACLs).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::config::topic_name::validate_topic_name;
use rafka_core::metadata::{NewTopic, TopicImage};
use rafka_proto::error::ErrorCode;
use rafka_shard::controller::{CreatedTopic, TopicFailure};
use uuid::Uuid;

use super::cluster_view::{self, BrokerView};
use super::context::AUTHORIZED_OPERATIONS_OMITTED;
use super::{HandlerError, RequestContext, INTERNAL_TOPICS};

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

pub async fn handle(
    ctx: &RequestContext,
    decoded: MetadataRequest,
) -> Result<MetadataResponse, HandlerError> {
    let version = ctx.version();
    let topic_operations = decoded.include_topic_authorized_operations;
    let topics = match wanted_topics(&decoded, version) {
        None => all_topics(ctx, topic_operations),
        Some(wanted) => {
            let auto_create = ctx.config().auto_create_topics_enable
                && (version < ALLOW_AUTO_CREATE_VERSION_MIN || decoded.allow_auto_topic_creation);
            let slots = resolve(ctx, wanted, auto_create, topic_operations);
            create_missing(ctx, slots, topic_operations).await
        }
    };
    let node = ctx.node();
    let brokers = cluster_view::brokers(ctx, &ctx.image())
        .into_iter()
        .map(broker)
        .collect();
    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_controller_id(BrokerId(cluster_view::controller_id(ctx)))
        .with_topics(topics);
    if version >= CLUSTER_ID_VERSION_MIN {
        response.cluster_id = Some(StrBytes::from_string(node.cluster_id.clone()));
    }
    if CLUSTER_OPERATIONS_VERSIONS.contains(&version)
        && decoded.include_cluster_authorized_operations
    {
        response.cluster_authorized_operations = ctx.authorized_operations(Resource::Cluster);
    }
    Ok(response)
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
    ctx: &RequestContext,
    wanted: Vec<Wanted>,
    auto_create: bool,
    operations: bool,
) -> Vec<Slot> {
    let image = ctx.image();
    let describable = |name: &str| ctx.authorize(AclOperation::Describe, Resource::Topic(name));
    wanted
        .into_iter()
        .map(|w| match w {
            Wanted::Id(id) => match image.topic_by_id(&id) {
                Some(topic) if describable(&topic.name) => {
                    Slot::Done(topic_entry(ctx, topic, operations))
                }
                // Kafka does not tell an unauthorized client the id exists.
                _ => Slot::Done(unknown_id_entry(id)),
            },
            Wanted::Name(name) if !describable(&name) => {
                Slot::Done(error_entry(name, ErrorCode::TOPIC_AUTHORIZATION_FAILED))
            }
            Wanted::Name(name) => match image.topic(&name) {
                Some(topic) => Slot::Done(topic_entry(ctx, topic, operations)),
                None if validate_topic_name(&name).is_err() => {
                    Slot::Done(error_entry(name, ErrorCode::INVALID_TOPIC_EXCEPTION))
                }
                None if auto_create && !may_create(ctx, &name) => {
                    Slot::Done(error_entry(name, ErrorCode::TOPIC_AUTHORIZATION_FAILED))
                }
                None if auto_create => Slot::Create(name),
                None => Slot::Done(error_entry(name, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)),
            },
        })
        .collect()
}

/// Auto-creation needs CREATE on the cluster or on the topic, as in Kafka.
fn may_create(ctx: &RequestContext, name: &str) -> bool {
    ctx.authorize(AclOperation::Create, Resource::Cluster)
        || ctx.authorize(AclOperation::Create, Resource::Topic(name))
}

/// Creates the topics the slots ask for (one controller call for all) and
/// fills their entries.
async fn create_missing(
    ctx: &RequestContext,
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
                    .unwrap_or(ErrorCode::LEADER_NOT_AVAILABLE);
                created_entry(ctx, name, code, operations).await
            }
        };
        entries.push(entry);
    }
    entries
}

/// Asks the controller to create `names` with the broker's defaults;
/// returns the error code per name (0: the topic exists now).
async fn auto_create(ctx: &RequestContext, names: Vec<String>) -> BTreeMap<String, ErrorCode> {
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
            assignments: Vec::new(),
        })
        .collect();
    let outcomes = ctx
        .controller()
        .create_topics(topics, false, Some(AUTO_CREATE_WAIT))
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
fn creation_code(outcome: &Result<CreatedTopic, TopicFailure>) -> ErrorCode {
    match outcome {
        Ok(_) => ErrorCode::NONE,
        Err(failure) if failure.code == ErrorCode::TOPIC_ALREADY_EXISTS => ErrorCode::NONE,
        Err(failure) => failure.code,
    }
}

/// The entry of an auto-created topic: the controller has broadcast it, so
/// the local image has it unless a shard failed to apply; then wait a
/// bounded time before calling it LEADER_NOT_AVAILABLE.
async fn created_entry(
    ctx: &RequestContext,
    name: String,
    code: ErrorCode,
    operations: bool,
) -> MetadataResponseTopic {
    if code.is_err() {
        return error_entry(name, code);
    }
    if !ctx.shard().wait_for_topic(&name, AUTO_CREATE_WAIT).await {
        return error_entry(name, ErrorCode::LEADER_NOT_AVAILABLE);
    }
    match ctx.image().topic(&name) {
        Some(topic) => topic_entry(ctx, topic, operations),
        // Deleted again between the wait and now.
        None => error_entry(name, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
    }
}

/// Every topic the principal may describe (Kafka leaves the others out).
fn all_topics(ctx: &RequestContext, operations: bool) -> Vec<MetadataResponseTopic> {
    ctx.image()
        .topics()
        .filter(|topic| ctx.authorize(AclOperation::Describe, Resource::Topic(&topic.name)))
        .map(|topic| topic_entry(ctx, topic, operations))
        .collect()
}

/// A broker as Metadata lists it.
fn broker(b: BrokerView) -> MetadataResponseBroker {
    MetadataResponseBroker::default()
        .with_node_id(BrokerId(b.node_id))
        .with_host(StrBytes::from_string(b.host))
        .with_port(i32::from(b.port))
        .with_rack(b.rack.map(StrBytes::from_string))
}

fn topic_entry(
    ctx: &RequestContext,
    topic: &TopicImage,
    operations: bool,
) -> MetadataResponseTopic {
    let ids = |ids: Vec<i32>| ids.into_iter().map(BrokerId).collect::<Vec<_>>();
    let image = ctx.image();
    let partitions = (0..topic.partition_count())
        .map(|index| {
            let view = cluster_view::partition(ctx, &image, topic, index);
            MetadataResponsePartition::default()
                .with_error_code(view.error_code().code())
                .with_partition_index(index)
                .with_leader_id(BrokerId(view.leader))
                .with_leader_epoch(view.leader_epoch)
                .with_replica_nodes(ids(view.replicas))
                .with_isr_nodes(ids(view.isr))
                .with_offline_replicas(ids(view.offline))
        })
        .collect();
    let authorized = if operations {
        ctx.authorized_operations(Resource::Topic(&topic.name))
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    MetadataResponseTopic::default()
        .with_error_code(ErrorCode::NONE.code())
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(topic.id)
        .with_is_internal(INTERNAL_TOPICS.contains(&topic.name.as_str()))
        .with_partitions(partitions)
        .with_topic_authorized_operations(authorized)
}

fn error_entry(name: String, code: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name(Some(TopicName(StrBytes::from_string(name))))
}

fn unknown_id_entry(id: Uuid) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(ErrorCode::UNKNOWN_TOPIC_ID.code())
        .with_name(None)
        .with_topic_id(id)
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}
