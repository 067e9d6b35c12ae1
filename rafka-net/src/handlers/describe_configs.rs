//! DescribeConfigs (key 32), v1-v4: the configs of topics, of this broker,
//! of the cluster-wide dynamic default and of this broker's loggers.
//!
//! Decisions a client can notice, following Kafka's `ConfigHelper`:
//! - TOPIC: every topic key (rafka-core's `config::describe`), value and
//!   source from the highest-precedence layer (topic override, dynamic
//!   broker, dynamic cluster default, properties file, built-in default);
//!   an unknown topic is UNKNOWN_TOPIC_OR_PARTITION for that resource.
//!   DESCRIBE_CONFIGS on the topic, else TOPIC_AUTHORIZATION_FAILED.
//! - BROKER named by this node's id: every broker key rafka honours; only
//!   the topic defaults' first broker synonyms are writable (`read_only`
//!   false). Named `""`: the cluster-wide dynamic defaults set. Another
//!   id is INVALID_REQUEST, as Kafka's broker answers.
//! - BROKER_LOGGER named by this node's id: one entry per logger
//!   ([`rafka_core::logger`]), source DYNAMIC_BROKER_LOGGER_CONFIG.
//!   BROKER and BROKER_LOGGER need DESCRIBE_CONFIGS on the cluster
//!   (CLUSTER_AUTHORIZATION_FAILED).
//! - `configuration_keys` filters; a key that does not exist is left out.
//! - Synonyms only when `include_synonyms`; documentation (v3+) only when
//!   `include_documentation`; sensitive values are null.
//! - Any other resource type: INVALID_REQUEST for that resource.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::config::describe::{
    describe_broker, describe_broker_default, describe_topic, DescribedConfig, DynamicLayers,
};
use rafka_core::logger;
use rafka_core::metadata::MetadataImage;
use rafka_proto::error::ErrorCode;

use super::{HandlerError, RequestContext};

/// Kafka's `ConfigResource.Type` codes.
pub(crate) const RESOURCE_TOPIC: i8 = 2;
pub(crate) const RESOURCE_BROKER: i8 = 4;
pub(crate) const RESOURCE_BROKER_LOGGER: i8 = 8;

/// A resource's refusal: the code and its message.
pub(crate) type Refusal = (ErrorCode, String);

pub async fn handle(
    ctx: &RequestContext,
    request: DescribeConfigsRequest,
) -> Result<DescribeConfigsResponse, HandlerError> {
    let image = ctx.image();
    let options = Options {
        synonyms: request.include_synonyms,
        documentation: request.include_documentation && ctx.version() >= 3,
    };
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let described = describe(ctx, &image, resource).map(|configs| {
                let wanted = resource.configuration_keys.as_ref();
                configs
                    .into_iter()
                    .filter(|c| wanted.is_none_or(|keys| keys.iter().any(|k| **k == *c.name)))
                    .map(|c| entry(c, options))
                    .collect()
            });
            result(resource, described)
        })
        .collect();
    Ok(DescribeConfigsResponse::default().with_results(results))
}

#[derive(Debug, Clone, Copy)]
struct Options {
    synonyms: bool,
    documentation: bool,
}

fn describe(
    ctx: &RequestContext,
    image: &MetadataImage,
    resource: &DescribeConfigsResource,
) -> Result<Vec<DescribedConfig>, Refusal> {
    let name = resource.resource_name.as_str();
    let node = ctx.node().node_id.to_string();
    let layers = DynamicLayers {
        cluster: image.broker_configs(""),
        broker: image.broker_configs(&node),
    };
    match resource.resource_type {
        RESOURCE_TOPIC => {
            if !ctx.authorize(AclOperation::DescribeConfigs, Resource::Topic(name)) {
                return Err((
                    ErrorCode::TOPIC_AUTHORIZATION_FAILED,
                    "Authorization failed.".to_string(),
                ));
            }
            let topic = image.topic(name).ok_or_else(|| {
                (
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("Topic {name} does not exist."),
                )
            })?;
            Ok(describe_topic(ctx.config(), layers, &topic.configs))
        }
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => {
            if !ctx.authorize(AclOperation::DescribeConfigs, Resource::Cluster) {
                return Err((
                    ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
                    "Authorization failed.".to_string(),
                ));
            }
            let logger = resource.resource_type == RESOURCE_BROKER_LOGGER;
            if name.is_empty() && !logger {
                return Ok(describe_broker_default(layers.cluster));
            }
            if name != node {
                return Err(unexpected_broker(&node, name));
            }
            if logger {
                return Ok(logger::describe());
            }
            Ok(describe_broker(ctx.config(), layers))
        }
        other => Err((
            ErrorCode::INVALID_REQUEST,
            format!("Unsupported resource type {other} for DescribeConfigs."),
        )),
    }
}

/// Kafka's refusal of a broker resource naming another broker.
pub(crate) fn unexpected_broker(node: &str, name: &str) -> Refusal {
    (
        ErrorCode::INVALID_REQUEST,
        format!("Unexpected broker id, expected {node} or empty string, but received {name}"),
    )
}

fn entry(config: DescribedConfig, options: Options) -> DescribeConfigsResourceResult {
    let value = if config.sensitive {
        None
    } else {
        config.value.map(StrBytes::from_string)
    };
    let synonyms = if options.synonyms {
        config
            .synonyms
            .into_iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(s.name))
                    .with_value(if config.sensitive {
                        None
                    } else {
                        s.value.map(StrBytes::from_string)
                    })
                    .with_source(s.source as i8)
            })
            .collect()
    } else {
        Vec::new()
    };
    let documentation = options
        .documentation
        .then(|| StrBytes::from_static_str(config.doc));
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(config.name))
        .with_value(value)
        .with_read_only(config.read_only)
        .with_config_source(config.source as i8)
        .with_is_sensitive(config.sensitive)
        .with_synonyms(synonyms)
        .with_config_type(config.kind as i8)
        .with_documentation(documentation)
}

fn result(
    resource: &DescribeConfigsResource,
    described: Result<Vec<DescribeConfigsResourceResult>, Refusal>,
) -> DescribeConfigsResult {
    let result = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    match described {
        Ok(configs) => result
            .with_error_code(ErrorCode::NONE.code())
            .with_error_message(None)
            .with_configs(configs),
        Err((code, message)) => result
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(message))),
    }
}
