//! CreateTopics (key 19), v2-v7: checks what only the request can show
//! (repeated names, manual assignments, null config values), has the
//! controller on shard 0 create or validate the rest, and answers with the
//! resolved configs (v5+) and topic ids (v7).
//!
//! Decisions a client can notice, following Kafka's KRaft controller:
//! - A name given twice is answered once, after the others, with
//!   INVALID_REQUEST, and not created.
//! - A manual assignment must name partitions 0..n once each, each with
//!   the same number of distinct registered brokers, one of them unfenced
//!   (on a single node: exactly this node), INVALID_REPLICA_ASSIGNMENT
//!   otherwise with Kafka's messages; it comes without
//!   num_partitions/replication_factor (INVALID_REQUEST). Its unfenced
//!   replicas start in sync, the first of them leading.
//! - `validate_only` answers as a creation would, with a nil topic id: the
//!   id the controller drew is never stored, and a client keeping it would
//!   hold an id that names nothing.
//! - `timeout_ms` bounds the wait (REQUEST_TIMED_OUT after it; the creation
//!   still completes). Zero or less waits for the outcome, see
//!   [`request_timeout`].
//! - Each valid topic's partitions count against the client's
//!   `controller_mutation_rate` (KIP-599, `rafka_core::quota::mutation`),
//!   `validate_only` too: from v6 a topic over the quota is refused with
//!   THROTTLING_QUOTA_EXCEEDED, before it is created; older versions are
//!   only throttled. The response's throttle time says how long to wait.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::config::describe::{describe_topic, DynamicLayers};
use rafka_core::config::BrokerConfig;
use rafka_core::metadata::{ControllerError, NewTopic};
use rafka_proto::error::ErrorCode;
use rafka_shard::controller::{CreatedTopic, TopicFailure};
use rafka_shard::controller_handle::{request_timeout, ControllerCallError};
use uuid::Uuid;

use super::{HandlerError, RequestContext};

/// First version whose results carry partitions, replication and configs.
const RESOLVED_CONFIGS_VERSION_MIN: i16 = 5;

/// First version on which the controller mutation quota refuses topics
/// (THROTTLING_QUOTA_EXCEEDED) rather than only throttling (KIP-599).
const STRICT_MUTATION_QUOTA_VERSION_MIN: i16 = 6;

type Outcome = Result<CreatedTopic, TopicFailure>;

/// A topic named once in the request: what to create, or why not.
type Planned = (String, Result<NewTopic, TopicFailure>);

pub async fn handle(
    ctx: &RequestContext,
    decoded: CreateTopicsRequest,
) -> Result<CreateTopicsResponse, HandlerError> {
    let version = ctx.version();
    let (entries, duplicates) = plan(ctx, &decoded.topics);
    let topics: Vec<NewTopic> = entries
        .iter()
        .filter_map(|(_, planned)| planned.as_ref().ok().cloned())
        .collect();
    let created = create(ctx, topics, decoded.validate_only, decoded.timeout_ms).await;
    let mut created = created.into_iter();
    let image = ctx.image();
    let node = ctx.node().node_id.to_string();
    let described = Described {
        config: ctx.config(),
        layers: DynamicLayers {
            cluster: image.broker_configs(""),
            broker: image.broker_configs(&node),
        },
    };
    let mut results = Vec::with_capacity(entries.len() + duplicates.len());
    for (name, planned) in entries {
        let result = match planned {
            Err(refused) => failure_result(name, &refused),
            Ok(topic) => match created.next() {
                Some(Ok(done)) => {
                    success_result(&topic, &done, decoded.validate_only, described, version)
                }
                Some(Err(failure)) => failure_result(name, &failure),
                None => failure_result(name, &ControllerCallError::Unavailable.topic_failure()),
            },
        };
        results.push(result);
    }
    for name in duplicates {
        let duplicate = TopicFailure::new(ErrorCode::INVALID_REQUEST, "Duplicate topic name.");
        results.push(failure_result(name, &duplicate));
    }
    Ok(CreateTopicsResponse::default().with_topics(results))
}

/// Each name given once, in request order, with the topic to create or
/// why it is refused already; and the names given more than once.
fn plan(ctx: &RequestContext, topics: &[CreatableTopic]) -> (Vec<Planned>, Vec<String>) {
    // Kafka: CREATE on the cluster, or else on each topic.
    let cluster_create = ctx.authorize(AclOperation::Create, Resource::Cluster);
    let mut seen = HashSet::new();
    let mut duplicates = Vec::new();
    for topic in topics {
        let name = topic.name.as_str();
        if !seen.insert(name) && !duplicates.iter().any(|d| d == name) {
            duplicates.push(name.to_string());
        }
    }
    let entries = topics
        .iter()
        .filter(|t| !duplicates.iter().any(|d| d == t.name.as_str()))
        .map(|t| {
            let name = t.name.as_str();
            let planned =
                if cluster_create || ctx.authorize(AclOperation::Create, Resource::Topic(name)) {
                    new_topic(t)
                } else {
                    Err(TopicFailure::new(
                        ErrorCode::TOPIC_AUTHORIZATION_FAILED,
                        "Authorization failed.",
                    ))
                };
            (name.to_string(), planned)
        })
        .collect();
    (entries, duplicates)
}

fn new_topic(topic: &CreatableTopic) -> Result<NewTopic, TopicFailure> {
    let configs = configs(topic)?;
    let (partitions, replication_factor, assignments) = if topic.assignments.is_empty() {
        (topic.num_partitions, topic.replication_factor, Vec::new())
    } else if topic.num_partitions != -1 || topic.replication_factor != -1 {
        return Err(TopicFailure::new(
            ErrorCode::INVALID_REQUEST,
            "Both numPartitions or replicationFactor and replicasAssignments were set. \
             Both cannot be used at the same time.",
        ));
    } else {
        (-1, -1, assigned_replicas(topic)?)
    };
    Ok(NewTopic {
        name: topic.name.as_str().to_string(),
        partitions,
        replication_factor,
        configs,
        assignments,
    })
}

/// A manual assignment's replica lists in partition order, once its
/// partitions are 0..n; the controller checks the brokers
/// (`Controller::create_topic`).
fn assigned_replicas(topic: &CreatableTopic) -> Result<Vec<Vec<i32>>, TopicFailure> {
    let refuse =
        |message: String| TopicFailure::new(ErrorCode::INVALID_REPLICA_ASSIGNMENT, message);
    let mut assignments: Vec<(i32, Vec<i32>)> = topic
        .assignments
        .iter()
        .map(|a| {
            (
                a.partition_index,
                a.broker_ids.iter().map(|b| b.0).collect(),
            )
        })
        .collect();
    assignments.sort_by_key(|(index, _)| *index);
    let consecutive = assignments
        .iter()
        .zip(0..)
        .all(|((index, _), expected): (&(i32, Vec<i32>), i32)| *index == expected);
    if !consecutive {
        return Err(refuse(
            "partitions should be a consecutive 0-based integer sequence".to_string(),
        ));
    }
    Ok(assignments
        .into_iter()
        .map(|(_, replicas)| replicas)
        .collect())
}

/// The topic's config overrides; a null value or a key given twice is
/// refused, as Kafka does.
fn configs(topic: &CreatableTopic) -> Result<BTreeMap<String, String>, TopicFailure> {
    let mut configs = BTreeMap::new();
    for config in &topic.configs {
        let key = config.name.as_str().to_string();
        let Some(value) = &config.value else {
            return Err(TopicFailure::new(
                ErrorCode::INVALID_CONFIG,
                format!("Null value not supported for topic configs: {key}"),
            ));
        };
        if configs.contains_key(&key) {
            let error = ControllerError::DuplicateConfigKey(key);
            return Err(TopicFailure::new(error.error_code(), error.to_string()));
        }
        configs.insert(key, value.as_str().to_string());
    }
    Ok(configs)
}

/// The controller's outcome for each topic, in order.
async fn create(
    ctx: &RequestContext,
    topics: Vec<NewTopic>,
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
        .create_topics_charged(topics, validate_only, timeout, quota)
        .await
    {
        Ok(charged) => {
            ctx.add_throttle_ms(charged.throttle_time_ms);
            charged.outcomes
        }
        Err(error) => vec![Err(error.topic_failure()); count],
    }
}

fn success_result(
    topic: &NewTopic,
    created: &CreatedTopic,
    validate_only: bool,
    described: Described<'_>,
    version: i16,
) -> CreatableTopicResult {
    let topic_id = if validate_only {
        Uuid::nil()
    } else {
        created.topic_id
    };
    let mut result = CreatableTopicResult::default()
        .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
        .with_topic_id(topic_id)
        .with_error_code(ErrorCode::NONE.code())
        .with_error_message(None);
    if version >= RESOLVED_CONFIGS_VERSION_MIN {
        result.num_partitions = created.partitions;
        result.replication_factor = 1;
        let entries = describe_topic(described.config, described.layers, &topic.configs);
        let configs = entries.into_iter().map(|entry| {
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_string(entry.name))
                .with_value(entry.value.map(StrBytes::from_string))
                .with_read_only(entry.read_only)
                .with_config_source(entry.source as i8)
                .with_is_sensitive(entry.sensitive)
        });
        result.configs = Some(configs.collect());
    }
    result
}

/// What the configs in a v5+ answer are described with.
#[derive(Clone, Copy)]
struct Described<'a> {
    config: &'a BrokerConfig,
    layers: DynamicLayers<'a>,
}

fn failure_result(name: String, failure: &TopicFailure) -> CreatableTopicResult {
    CreatableTopicResult::default()
        .with_name(TopicName(StrBytes::from_string(name)))
        .with_error_code(failure.code.code())
        .with_error_message(Some(StrBytes::from_string(failure.message.clone())))
}
