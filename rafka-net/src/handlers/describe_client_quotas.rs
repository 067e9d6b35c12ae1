//! DescribeClientQuotas (key 48), v0-1 (KIP-546): the quotas of the
//! entities a filter matches, as `kafka-configs.sh --describe
//! --entity-type users` and the admin clients' `describeClientQuotas` ask.
//!
//! Top-down: decode -> authorize (DESCRIBE_CONFIGS on the cluster) -> read
//! the shard's image (every shard holds every quota; no cross-core call)
//! -> encode.
//!
//! Answers, as Kafka's `KafkaApis.handleDescribeClientQuotasRequest` and
//! `ClientQuotasImage.describe` (see `rafka_core::metadata::quota_control`):
//! - Without DESCRIBE_CONFIGS on the cluster: CLUSTER_AUTHORIZATION_FAILED
//!   with Kafka's message and null entries (Kafka's `getErrorResponse`).
//! - A filter Kafka refuses: its error (INVALID_REQUEST, or
//!   UNSUPPORTED_VERSION for an unknown entity type) and message, null
//!   entries, as the exception Kafka throws becomes `getErrorResponse`.
//! - Otherwise error 0 with the schema's default message, `""` (Kafka's
//!   `ClientQuotasImage.describe` builds a fresh response data), and one
//!   entry per matching entity, in entity order (Kafka's follow a hash
//!   map), each component `(type, name | null)` and each value
//!   `(key, value)`. `strict`: the entity has exactly the filter's types.

use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::metadata::quota_control::{describe_client_quotas, QuotaDescription};
use rafka_core::quota::FilterComponent;
use rafka_proto::error::ErrorCode;

use super::{HandlerError, RequestContext};

/// Kafka's text for CLUSTER_AUTHORIZATION_FAILED (`Errors.message()`),
/// which both quota APIs' refusals carry.
pub(super) const CLUSTER_AUTHORIZATION_FAILED_MESSAGE: &str = "Cluster authorization failed.";

pub async fn handle(
    ctx: &RequestContext,
    request: DescribeClientQuotasRequest,
) -> Result<DescribeClientQuotasResponse, HandlerError> {
    if !ctx.authorize(AclOperation::DescribeConfigs, Resource::Cluster) {
        let message = CLUSTER_AUTHORIZATION_FAILED_MESSAGE.to_string();
        return Ok(failed(ErrorCode::CLUSTER_AUTHORIZATION_FAILED, message));
    }
    let components: Vec<FilterComponent> = request
        .components
        .into_iter()
        .map(|c| FilterComponent {
            entity_type: c.entity_type.to_string(),
            match_type: c.match_type,
            match_name: c._match.map(|m| m.to_string()),
        })
        .collect();
    let image = ctx.image();
    match describe_client_quotas(&image, &components, request.strict) {
        Ok(described) => Ok(DescribeClientQuotasResponse::default()
            .with_error_code(ErrorCode::NONE.code())
            .with_error_message(Some(StrBytes::from_static_str("")))
            .with_entries(Some(described.into_iter().map(entry).collect()))),
        Err(error) => Ok(failed(error.error_code(), error.to_string())),
    }
}

fn failed(code: ErrorCode, message: String) -> DescribeClientQuotasResponse {
    DescribeClientQuotasResponse::default()
        .with_error_code(code.code())
        .with_error_message(Some(StrBytes::from_string(message)))
        .with_entries(None)
}

fn entry(described: QuotaDescription) -> EntryData {
    let entity = described
        .entity
        .into_iter()
        .map(|(entity_type, name)| {
            EntityData::default()
                .with_entity_type(StrBytes::from_string(entity_type))
                .with_entity_name(name.map(StrBytes::from_string))
        })
        .collect();
    let values = described
        .values
        .into_iter()
        .map(|(key, value)| {
            ValueData::default()
                .with_key(StrBytes::from_string(key))
                .with_value(value)
        })
        .collect();
    EntryData::default().with_entity(entity).with_values(values)
}
