//! AlterClientQuotas (key 49), v0-1 (KIP-546): sets and removes the
//! quotas of users, client ids, their pairs, their defaults and IPs, as
//! `kafka-configs.sh --alter --add-config producer_byte_rate=...` and the
//! admin clients' `alterClientQuotas` do.
//!
//! Top-down: decode -> authorize (ALTER_CONFIGS on the cluster) -> the
//! whole request to the controller in one call (one commit, published to
//! every shard before the answer) -> encode one entry per distinct entity.
//!
//! Answers, as Kafka's `ControllerApis.handleAlterClientQuotas` and
//! `ClientQuotaControlManager` (see `rafka_core::metadata::quota_control`
//! for the checks and the few deliberate differences):
//! - Without ALTER_CONFIGS on the cluster: every request entry, as sent,
//!   CLUSTER_AUTHORIZATION_FAILED with Kafka's message for the code
//!   (Kafka's `AlterClientQuotasRequest.getErrorResponse`); nothing changes.
//! - Per entity: error 0 and a null message, or INVALID_REQUEST (bad
//!   entity, unknown key, bad value, repeated key or entity) with Kafka's
//!   message; the other entities go ahead.
//! - `validate_only`: the same answers, nothing written.
//! - The controller not answering: every request entry gets its error
//!   (NOT_CONTROLLER while it stops, as for AlterUserScramCredentials).

use kafka_protocol::messages::alter_client_quotas_request;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::metadata::quota_control::{QuotaAlterationEntry, QuotaOp, WireEntity};
use rafka_proto::error::ErrorCode;
use rafka_shard::controller::TopicFailure;

use super::describe_client_quotas::CLUSTER_AUTHORIZATION_FAILED_MESSAGE;
use super::{HandlerError, RequestContext};

pub async fn handle(
    ctx: &RequestContext,
    request: AlterClientQuotasRequest,
) -> Result<AlterClientQuotasResponse, HandlerError> {
    let entries: Vec<QuotaAlterationEntry> = request.entries.iter().map(alteration).collect();
    if !ctx.authorize(AclOperation::AlterConfigs, Resource::Cluster) {
        let failure = TopicFailure::new(
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
            CLUSTER_AUTHORIZATION_FAILED_MESSAGE,
        );
        return Ok(every_entry_failed(&entries, &failure));
    }
    let outcomes = match ctx
        .controller()
        .alter_client_quotas(entries.clone(), request.validate_only)
        .await
    {
        Ok(outcomes) => outcomes,
        Err(error) => return Ok(every_entry_failed(&entries, &error.topic_failure())),
    };
    let results = outcomes
        .iter()
        .map(|(entity, outcome)| result(entity, outcome.as_ref().map(|_| ())))
        .collect();
    Ok(AlterClientQuotasResponse::default().with_entries(results))
}

fn alteration(entry: &alter_client_quotas_request::EntryData) -> QuotaAlterationEntry {
    QuotaAlterationEntry {
        entity: entry
            .entity
            .iter()
            .map(|e| {
                let name = e.entity_name.as_ref().map(|n| n.to_string());
                (e.entity_type.to_string(), name)
            })
            .collect(),
        ops: entry
            .ops
            .iter()
            .map(|op| QuotaOp {
                key: op.key.to_string(),
                value: op.value,
                remove: op.remove,
            })
            .collect(),
    }
}

/// One entry per request entry, each entity as sent (Kafka's
/// `getErrorResponse`).
fn every_entry_failed(
    entries: &[QuotaAlterationEntry],
    failure: &TopicFailure,
) -> AlterClientQuotasResponse {
    let results = entries
        .iter()
        .map(|entry| result(&entry.entity, Err(failure)))
        .collect();
    AlterClientQuotasResponse::default().with_entries(results)
}

fn result(entity: &WireEntity, outcome: Result<(), &TopicFailure>) -> EntryData {
    let (code, message) = match outcome {
        Ok(()) => (ErrorCode::NONE.code(), None),
        Err(failure) => (
            failure.code.code(),
            Some(StrBytes::from_string(failure.message.clone())),
        ),
    };
    let entity = entity
        .iter()
        .map(|(entity_type, name)| {
            EntityData::default()
                .with_entity_type(StrBytes::from_string(entity_type.clone()))
                .with_entity_name(name.clone().map(StrBytes::from_string))
        })
        .collect();
    EntryData::default()
        .with_error_code(code)
        .with_error_message(message)
        .with_entity(entity)
}
