//! IncrementalAlterConfigs (key 44), v0-v1: SET, DELETE, APPEND and
//! SUBTRACT on topic configs, dynamic broker configs (one broker or the
//! cluster-wide default) and logger levels.
//!
//! Decisions a client can notice, beyond those of AlterConfigs (see
//! [`super::alter_configs`], whose authorization, naming and commit rules
//! apply unchanged):
//! - An operation code outside 0-3 is INVALID_REQUEST; SET, APPEND and
//!   SUBTRACT with a null value are INVALID_REQUEST; a key named twice in
//!   one resource is INVALID_REQUEST (Kafka's "duplicate config keys").
//! - APPEND and SUBTRACT apply only to list configs (`cleanup.policy`,
//!   `log.cleanup.policy`), else INVALID_CONFIG; DELETE of a key not set is
//!   a no-op; DELETE of an unknown key is INVALID_CONFIG.
//! - BROKER_LOGGER must name this node (INVALID_REQUEST otherwise); SET
//!   takes a level (TRACE, DEBUG, INFO, WARN, ERROR, FATAL, OFF), DELETE
//!   returns a logger to the root's level (the root itself cannot be
//!   deleted), APPEND/SUBTRACT are INVALID_REQUEST. Levels apply at once
//!   and, as in Kafka, are not persisted.

use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use rafka_core::logger::LoggerChange;
use rafka_core::metadata::ConfigOp;
use rafka_proto::error::ErrorCode;
use rafka_shard::controller::ConfigChange;

use super::alter_configs::{
    duplicate_key, null_value, outcome_parts, run, target, unique, Alteration, Target,
};
use super::describe_configs::Refusal;
use super::{HandlerError, RequestContext};

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub async fn handle(
    ctx: &RequestContext,
    request: IncrementalAlterConfigsRequest,
) -> Result<IncrementalAlterConfigsResponse, HandlerError> {
    let keys: Vec<(i8, &str)> = request
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.as_str()))
        .collect();
    let planned = request
        .resources
        .iter()
        .enumerate()
        .map(|(i, resource)| unique(&keys, i).and_then(|()| plan(ctx, resource)))
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
    Ok(IncrementalAlterConfigsResponse::default().with_responses(responses))
}

fn plan(ctx: &RequestContext, resource: &AlterConfigsResource) -> Result<Alteration, Refusal> {
    let mut ops = Vec::with_capacity(resource.configs.len());
    for config in &resource.configs {
        let key = config.name.to_string();
        if ops.iter().any(|op: &ConfigOp| op_key(op) == key) {
            return Err(duplicate_key(&key));
        }
        let value = config.value.as_ref().map(|v| v.to_string());
        let op = match (config.config_operation, value) {
            (OP_DELETE, _) => ConfigOp::Delete(key),
            (OP_SET | OP_APPEND | OP_SUBTRACT, None) => return Err(null_value(&key)),
            (OP_SET, Some(value)) => ConfigOp::Set(key, value),
            (OP_APPEND, Some(value)) => ConfigOp::Append(key, value),
            (OP_SUBTRACT, Some(value)) => ConfigOp::Subtract(key, value),
            (other, _) => {
                return Err((
                    ErrorCode::INVALID_REQUEST,
                    format!("Unknown config operation {other} for {key}."),
                ))
            }
        };
        ops.push(op);
    }
    let name = resource.resource_name.as_str();
    match target(ctx, resource.resource_type, name, true)? {
        Target::Controller(target) => Ok(Alteration::Controller(
            target,
            ConfigChange::Incremental(ops),
        )),
        Target::Loggers => ops
            .into_iter()
            .map(logger_change)
            .collect::<Result<Vec<_>, _>>()
            .map(Alteration::Loggers),
    }
}

fn op_key(op: &ConfigOp) -> &str {
    match op {
        ConfigOp::Set(k, _) | ConfigOp::Delete(k) => k,
        ConfigOp::Append(k, _) | ConfigOp::Subtract(k, _) => k,
    }
}

fn logger_change(op: ConfigOp) -> Result<LoggerChange, Refusal> {
    match op {
        ConfigOp::Set(logger, level) => Ok((logger, Some(level))),
        ConfigOp::Delete(logger) => Ok((logger, None)),
        ConfigOp::Append(..) | ConfigOp::Subtract(..) => Err((
            ErrorCode::INVALID_REQUEST,
            "APPEND and SUBTRACT are not allowed for the BROKER_LOGGER resource.".to_string(),
        )),
    }
}
