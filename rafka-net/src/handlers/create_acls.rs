//! CreateAcls (key 30), v1-v3: adds ACLs, as `kafka-acls.sh --add` does.
//!
//! Top-down: decode -> authorize (ALTER on the cluster) -> check each
//! creation -> the valid ones to the controller in one call (one commit)
//! -> encode one result per creation, in order.
//!
//! Answers, as Kafka's `AclApis.handleCreateAcls` and
//! `AclControlManager`:
//! - Without ALTER on the cluster: every result
//!   CLUSTER_AUTHORIZATION_FAILED; without an authorizer, every result
//!   SECURITY_DISABLED.
//! - An invalid creation (UNKNOWN or ANY resource type, operation or
//!   permission, pattern type other than LITERAL/PREFIXED, empty name, a
//!   cluster not named `kafka-cluster`, a principal without `:`):
//!   INVALID_REQUEST with Kafka's message; the others still go ahead.
//! - An ACL that already exists succeeds without a second copy.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclBinding, AclCodes, AclOperation, Resource};
use rafka_proto::error::ErrorCode;
use rafka_shard::controller::TopicFailure;

use super::{HandlerError, RequestContext};

/// Kafka's message when no authorizer is configured.
const SECURITY_DISABLED_MESSAGE: &str = "No Authorizer is configured.";

pub async fn handle(
    ctx: &RequestContext,
    request: CreateAclsRequest,
) -> Result<CreateAclsResponse, HandlerError> {
    let count = request.creations.len();
    if !ctx.authorize(AclOperation::Alter, Resource::Cluster) {
        let failure = TopicFailure::new(ErrorCode::CLUSTER_AUTHORIZATION_FAILED, "");
        return Ok(all_failed(&failure, count));
    }
    if ctx.authorizer().is_none() {
        let failure = TopicFailure::new(ErrorCode::SECURITY_DISABLED, SECURITY_DISABLED_MESSAGE);
        return Ok(all_failed(&failure, count));
    }
    let checked: Vec<Result<AclBinding, TopicFailure>> = request
        .creations
        .iter()
        .map(|creation| {
            AclBinding::from_codes(&codes(creation)).map_err(|invalid| {
                TopicFailure::new(ErrorCode::INVALID_REQUEST, invalid.to_string())
            })
        })
        .collect();
    let valid: Vec<AclBinding> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok())
        .cloned()
        .collect();
    let committed = if valid.is_empty() {
        Ok(())
    } else {
        match ctx.controller().create_acls(valid).await {
            Ok(outcome) => outcome,
            Err(error) => Err(error.topic_failure()),
        }
    };
    let results = checked
        .into_iter()
        .map(|c| match (c.as_ref(), &committed) {
            (Err(failure), _) | (Ok(_), Err(failure)) => failed(failure),
            (Ok(_), Ok(())) => AclCreationResult::default().with_error_code(ErrorCode::NONE.code()),
        })
        .collect();
    Ok(CreateAclsResponse::default().with_results(results))
}

fn codes(creation: &AclCreation) -> AclCodes<'_> {
    AclCodes {
        resource_type: creation.resource_type,
        resource_name: Some(&creation.resource_name),
        pattern_type: creation.resource_pattern_type,
        principal: Some(&creation.principal),
        host: Some(&creation.host),
        operation: creation.operation,
        permission: creation.permission_type,
    }
}

fn failed(failure: &TopicFailure) -> AclCreationResult {
    let message =
        (!failure.message.is_empty()).then(|| StrBytes::from_string(failure.message.clone()));
    AclCreationResult::default()
        .with_error_code(failure.code.code())
        .with_error_message(message)
}

fn all_failed(failure: &TopicFailure, count: usize) -> CreateAclsResponse {
    CreateAclsResponse::default().with_results(vec![failed(failure); count])
}
