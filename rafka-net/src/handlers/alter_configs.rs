//! AlterConfigs (key 33), v0-v2: the legacy form, whose configs replace
//! every override of the resource. Also the steps IncrementalAlterConfigs
//! shares: authorization, naming, and running the planned changes.
//!
//! Decisions a client can notice, following Kafka (`ConfigAdminManager`,
//! the KRaft controller's `ConfigurationControlManager`):
//! - TOPIC: ALTER_CONFIGS on the topic (TOPIC_AUTHORIZATION_FAILED); an
//!   unknown topic is UNKNOWN_TOPIC_OR_PARTITION; every value is checked
//!   with the topic key's validator (INVALID_CONFIG with a message).
//! - BROKER: ALTER_CONFIGS on the cluster (CLUSTER_AUTHORIZATION_FAILED),
//!   named by a node id or `""` (the cluster-wide default), else
//!   INVALID_REQUEST; only dynamic keys (the topic defaults' first broker
//!   synonyms, e.g. `log.retention.ms`) can be set, any other is
//!   INVALID_CONFIG ("cannot update these configs dynamically").
//! - BROKER_LOGGER is not supported by this legacy API (INVALID_REQUEST),
//!   as in Kafka; IncrementalAlterConfigs changes loggers.
//! - A null value or a key given twice is INVALID_REQUEST; a resource
//!   given twice is INVALID_REQUEST for each entry.
//! - Each resource is committed on its own; an answered change is durable
//!   in the metadata log and already applied by every shard's partitions.
//! - `validate_only` runs every check and changes nothing.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::logger::{self, LoggerChange};
use rafka_proto::error::ErrorCode;
use rafka_shard::controller::{ConfigChange, ConfigTarget};

use super::describe_configs::{Refusal, RESOURCE_BROKER, RESOURCE_BROKER_LOGGER, RESOURCE_TOPIC};
use super::{HandlerError, RequestContext};

pub async fn handle(
    ctx: &RequestContext,
    request: AlterConfigsRequest,
) -> Result<AlterConfigsResponse, HandlerError> {
    let keys: Vec<(i8, &str)> = request
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.as_str()))
        .collect();
    let planned = request
        .resources
        .iter()
        .enumerate()
        .map(|(i, resource)| {
            let name = resource.resource_name.as_str();
            unique(&keys, i).and_then(|()| {
                let mut configs = BTreeMap::new();
                for config in &resource.configs {
                    let key = config.name.to_string();
                    let Some(value) = &config.value else {
                        return Err(null_value(&key));
                    };
                    if configs.insert(key.clone(), value.to_string()).is_some() {
                        return Err(duplicate_key(&key));
                    }
                }
                let target = target(ctx, resource.resource_type, name, false)?;
                match target {
                    Target::Controller(target) => Ok(Alteration::Controller(
                        target,
                        ConfigChange::Replace(configs),
                    )),
                    Target::Loggers => Err((
                        ErrorCode::INVALID_REQUEST,
                        "AlterConfigs does not support the resource type BROKER_LOGGER; use \
                         IncrementalAlterConfigs."
                            .to_string(),
                    )),
                }
            })
        })
        .collect();
    let outcomes = run(ctx, planned, request.validate_only).await;
    let responses = request
        .resources
        .iter()
        .zip(outcomes)
        .map(|(resource, outcome)| {
            let (code, message) = outcome_parts(outcome);
            AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    Ok(AlterConfigsResponse::default().with_responses(responses))
}

/// What one resource entry changes, once authorized and named.
pub(crate) enum Alteration {
    Controller(ConfigTarget, ConfigChange),
    Loggers(Vec<LoggerChange>),
}

/// Where a resource's change goes.
pub(crate) enum Target {
    Controller(ConfigTarget),
    Loggers,
}

/// Authorizes and names the resource `(resource_type, name)`;
/// `loggers` says whether BROKER_LOGGER is acceptable.
pub(crate) fn target(
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
    loggers: bool,
) -> Result<Target, Refusal> {
    match resource_type {
        RESOURCE_TOPIC => {
            if !ctx.authorize(AclOperation::AlterConfigs, Resource::Topic(name)) {
                return Err((
                    ErrorCode::TOPIC_AUTHORIZATION_FAILED,
                    "Authorization failed.".to_string(),
                ));
            }
            if ctx.image().topic(name).is_none() {
                return Err((
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("Topic {name} does not exist."),
                ));
            }
            Ok(Target::Controller(ConfigTarget::Topic(name.to_string())))
        }
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => {
            if !ctx.authorize(AclOperation::AlterConfigs, Resource::Cluster) {
                return Err((
                    ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
                    "Authorization failed.".to_string(),
                ));
            }
            if resource_type == RESOURCE_BROKER {
                return Ok(Target::Controller(ConfigTarget::Broker(name.to_string())));
            }
            let node = ctx.node().node_id.to_string();
            if loggers && name != node {
                return Err(super::describe_configs::unexpected_broker(&node, name));
            }
            Ok(Target::Loggers)
        }
        other => Err((
            ErrorCode::INVALID_REQUEST,
            format!("Unsupported resource type {other} for altering configs."),
        )),
    }
}

/// INVALID_REQUEST unless entry `i` is the only one naming its resource.
pub(crate) fn unique(keys: &[(i8, &str)], i: usize) -> Result<(), Refusal> {
    if keys.iter().filter(|k| **k == keys[i]).count() > 1 {
        return Err((
            ErrorCode::INVALID_REQUEST,
            "Duplicate resource in the request.".to_string(),
        ));
    }
    Ok(())
}

pub(crate) fn null_value(key: &str) -> Refusal {
    (
        ErrorCode::INVALID_REQUEST,
        format!("Null value not supported for: {key}"),
    )
}

pub(crate) fn duplicate_key(key: &str) -> Refusal {
    (
        ErrorCode::INVALID_REQUEST,
        format!("Duplicate config key in the request: {key}"),
    )
}

/// Runs the planned changes: the controller's in one call (each resource
/// committed on its own), loggers here. One outcome per entry, in order.
pub(crate) async fn run(
    ctx: &RequestContext,
    planned: Vec<Result<Alteration, Refusal>>,
    validate_only: bool,
) -> Vec<Result<(), Refusal>> {
    let mut changes = Vec::new();
    for alteration in planned.iter().flatten() {
        if let Alteration::Controller(target, change) = alteration {
            changes.push((target.clone(), change.clone()));
        }
    }
    let count = changes.len();
    let mut committed = if changes.is_empty() {
        Vec::new()
    } else {
        match ctx.controller().alter_configs(changes, validate_only).await {
            Ok(outcomes) => outcomes,
            Err(error) => vec![Err(error.topic_failure()); count],
        }
    }
    .into_iter();
    planned
        .into_iter()
        .map(|alteration| match alteration? {
            Alteration::Controller(..) => match committed.next() {
                Some(Ok(())) => Ok(()),
                Some(Err(failure)) => Err((failure.code, failure.message)),
                None => Err((
                    ErrorCode::UNKNOWN_SERVER_ERROR,
                    "the controller gave no outcome".to_string(),
                )),
            },
            Alteration::Loggers(changes) => {
                let applied = if validate_only {
                    logger::validate(&changes)
                } else {
                    logger::alter(&changes)
                };
                applied.map_err(|error| (ErrorCode::INVALID_CONFIG, error.to_string()))
            }
        })
        .collect()
}

/// The response's error code and message of one outcome.
pub(crate) fn outcome_parts(outcome: Result<(), Refusal>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (ErrorCode::NONE.code(), None),
        Err((code, message)) => (code.code(), Some(StrBytes::from_string(message))),
    }
}
