//! DescribeAcls (key 29), v1-v3: the ACLs one filter matches, grouped by
//! resource pattern, as `kafka-acls.sh --list` shows them.
//!
//! Top-down: decode -> authorize (DESCRIBE on the cluster) -> match the
//! filter against the shard's image -> group -> encode. No cross-core
//! call: every shard's image holds every ACL.
//!
//! Answers, as Kafka's `AclApis.handleDescribeAcls`:
//! - Without DESCRIBE on the cluster: CLUSTER_AUTHORIZATION_FAILED.
//! - Without an authorizer (`authorizer.class.name` unset):
//!   SECURITY_DISABLED.
//! - A filter with an UNKNOWN (or unheard-of) code: INVALID_REQUEST.
//! - Resources in (type, name, pattern type) order, each ACL once, in
//!   (principal, host, operation, permission) order.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclBinding, AclBindingFilter, AclCodes, AclOperation, Resource};
use rafka_proto::error::ErrorCode;

use super::{HandlerError, RequestContext};

/// Kafka's message when no authorizer is configured.
pub const SECURITY_DISABLED_MESSAGE: &str = "No Authorizer is configured on the broker";

pub async fn handle(
    ctx: &RequestContext,
    request: DescribeAclsRequest,
) -> Result<DescribeAclsResponse, HandlerError> {
    if !ctx.authorize(AclOperation::Describe, Resource::Cluster) {
        return Ok(error(ErrorCode::CLUSTER_AUTHORIZATION_FAILED, None));
    }
    if ctx.authorizer().is_none() {
        let message = SECURITY_DISABLED_MESSAGE.to_string();
        return Ok(error(ErrorCode::SECURITY_DISABLED, Some(message)));
    }
    let codes = AclCodes {
        resource_type: request.resource_type_filter,
        resource_name: request.resource_name_filter.as_deref(),
        pattern_type: request.pattern_type_filter,
        principal: request.principal_filter.as_deref(),
        host: request.host_filter.as_deref(),
        operation: request.operation,
        permission: request.permission_type,
    };
    let filter = match AclBindingFilter::from_codes(&codes) {
        Ok(filter) => filter,
        Err(invalid) => return Ok(error(ErrorCode::INVALID_REQUEST, Some(invalid.to_string()))),
    };
    let image = ctx.image();
    let mut found: Vec<&AclBinding> = image.acls().matching(&filter).map(|(_, acl)| acl).collect();
    // Ids are random: list in the ACLs' own order, the same on every run.
    found.sort();
    Ok(DescribeAclsResponse::default()
        .with_error_code(ErrorCode::NONE.code())
        .with_resources(resources(found)))
}

fn error(code: ErrorCode, message: Option<String>) -> DescribeAclsResponse {
    DescribeAclsResponse::default()
        .with_error_code(code.code())
        .with_error_message(message.map(StrBytes::from_string))
}

/// Kafka's `DescribeAclsResponse.aclsResources`: one entry per pattern.
fn resources(acls: Vec<&AclBinding>) -> Vec<DescribeAclsResource> {
    let mut by_pattern: BTreeMap<(i8, &str, i8), Vec<AclDescription>> = BTreeMap::new();
    for acl in acls {
        let key = (
            acl.resource_type.code(),
            acl.resource_name.as_str(),
            acl.pattern_type.code(),
        );
        by_pattern.entry(key).or_default().push(
            AclDescription::default()
                .with_principal(StrBytes::from_string(acl.principal.clone()))
                .with_host(StrBytes::from_string(acl.host.clone()))
                .with_operation(acl.operation.code())
                .with_permission_type(acl.permission.code()),
        );
    }
    by_pattern
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_pattern_type(pattern_type)
                .with_acls(acls)
        })
        .collect()
}
