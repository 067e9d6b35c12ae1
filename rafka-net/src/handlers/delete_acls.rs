//! DeleteAcls (key 31), v1-v3: removes the ACLs each filter matches, as
//! `kafka-acls.sh --remove` does.
//!
//! Top-down: decode -> authorize (ALTER on the cluster) -> check each
//! filter -> the valid ones to the controller in one call (one commit)
//! -> encode one result per filter, in order, with the ACLs it deleted.
//!
//! Answers, as Kafka's `AclApis.handleDeleteAcls` and
//! `AclControlManager.deleteAcls`:
//! - Without ALTER on the cluster: every result
//!   CLUSTER_AUTHORIZATION_FAILED; without an authorizer, every result
//!   SECURITY_DISABLED.
//! - A filter with an UNKNOWN (or unheard-of) code: INVALID_REQUEST; the
//!   other filters still delete.
//! - An ACL two filters match is deleted once and listed under both.

use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclBinding, AclBindingFilter, AclCodes, AclOperation, Resource};
use rafka_proto::error::ErrorCode;
use rafka_shard::controller::TopicFailure;

use super::{HandlerError, RequestContext};

/// Kafka's message when no authorizer is configured.
const SECURITY_DISABLED_MESSAGE: &str = "No Authorizer is configured.";

pub async fn handle(
    ctx: &RequestContext,
    request: DeleteAclsRequest,
) -> Result<DeleteAclsResponse, HandlerError> {
    let count = request.filters.len();
    if !ctx.authorize(AclOperation::Alter, Resource::Cluster) {
        let failure = TopicFailure::new(ErrorCode::CLUSTER_AUTHORIZATION_FAILED, "");
        return Ok(all_failed(&failure, count));
    }
    if ctx.authorizer().is_none() {
        let failure = TopicFailure::new(ErrorCode::SECURITY_DISABLED, SECURITY_DISABLED_MESSAGE);
        return Ok(all_failed(&failure, count));
    }
    let checked: Vec<Result<AclBindingFilter, TopicFailure>> = request
        .filters
        .iter()
        .map(|filter| {
            AclBindingFilter::from_codes(&codes(filter)).map_err(|invalid| {
                TopicFailure::new(ErrorCode::INVALID_REQUEST, invalid.to_string())
            })
        })
        .collect();
    let valid: Vec<AclBindingFilter> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok())
        .cloned()
        .collect();
    let mut deleted = if valid.is_empty() {
        Ok(Vec::new())
    } else {
        match ctx.controller().delete_acls(valid).await {
            Ok(outcome) => outcome,
            Err(error) => Err(error.topic_failure()),
        }
    }
    .map(Vec::into_iter);
    let results = checked
        .into_iter()
        .map(|c| match (c, &mut deleted) {
            (Err(failure), _) => failed(failure),
            (Ok(_), Err(failure)) => failed(failure.clone()),
            (Ok(_), Ok(per_filter)) => matched(per_filter.next().unwrap_or_default()),
        })
        .collect();
    Ok(DeleteAclsResponse::default().with_filter_results(results))
}

fn codes(filter: &DeleteAclsFilter) -> AclCodes<'_> {
    AclCodes {
        resource_type: filter.resource_type_filter,
        resource_name: filter.resource_name_filter.as_deref(),
        pattern_type: filter.pattern_type_filter,
        principal: filter.principal_filter.as_deref(),
        host: filter.host_filter.as_deref(),
        operation: filter.operation,
        permission: filter.permission_type,
    }
}

fn matched(acls: Vec<AclBinding>) -> DeleteAclsFilterResult {
    let matching = acls
        .into_iter()
        .map(|acl| {
            DeleteAclsMatchingAcl::default()
                .with_error_code(ErrorCode::NONE.code())
                .with_resource_type(acl.resource_type.code())
                .with_resource_name(StrBytes::from_string(acl.resource_name))
                .with_pattern_type(acl.pattern_type.code())
                .with_principal(StrBytes::from_string(acl.principal))
                .with_host(StrBytes::from_string(acl.host))
                .with_operation(acl.operation.code())
                .with_permission_type(acl.permission.code())
        })
        .collect();
    DeleteAclsFilterResult::default()
        .with_error_code(ErrorCode::NONE.code())
        .with_matching_acls(matching)
}

fn failed(failure: TopicFailure) -> DeleteAclsFilterResult {
    let message = (!failure.message.is_empty()).then(|| StrBytes::from_string(failure.message));
    DeleteAclsFilterResult::default()
        .with_error_code(failure.code.code())
        .with_error_message(message)
}

fn all_failed(failure: &TopicFailure, count: usize) -> DeleteAclsResponse {
    DeleteAclsResponse::default().with_filter_results(vec![failed(failure.clone()); count])
}
