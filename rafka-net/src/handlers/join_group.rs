//! JoinGroup (key 11), v0-v9: a member asks to join its group; the answer
//! comes from the group's coordinator once the join phase of the
//! rebalance ends (so this request may wait up to the rebalance timeout).
//!
//! Top-down: authorize READ on the group -> convert to the coordinator's
//! `JoinRequest` -> run on the group's coordinator -> convert back at the
//! request's version.
//!
//! Decisions a client can notice, following Kafka:
//! - An empty group id is INVALID_GROUP_ID without asking a coordinator.
//! - v0 carries no rebalance timeout: the session timeout stands in for it,
//!   as Kafka's broker does.
//! - From v4 a member without an id is told MEMBER_ID_REQUIRED and given
//!   one (KIP-394).
//! - Below v7 the protocol name is not nullable: an answer without one
//!   (an error) carries the empty string. `skip_assignment` exists from v9
//!   only; an older leader is never told to skip the assignment.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::group::{JoinRequest, JoinResult};
use rafka_proto::error::ErrorCode;

use super::coordinator_call::on_group_coordinator;
use super::{HandlerError, RequestContext};

/// First version with a rebalance timeout of its own.
const REBALANCE_TIMEOUT_VERSION_MIN: i16 = 1;
/// First version that requires a known member id (KIP-394).
const MEMBER_ID_REQUIRED_VERSION_MIN: i16 = 4;
/// First version whose protocol name may be null.
const NULLABLE_PROTOCOL_NAME_VERSION_MIN: i16 = 7;
/// First version carrying `skip_assignment`.
const SKIP_ASSIGNMENT_VERSION_MIN: i16 = 9;

pub async fn handle(
    ctx: &RequestContext,
    mut request: JoinGroupRequest,
) -> Result<JoinGroupResponse, HandlerError> {
    let version = ctx.version();
    if version < REBALANCE_TIMEOUT_VERSION_MIN {
        request.rebalance_timeout_ms = request.session_timeout_ms;
    }
    let member_id = request.member_id.to_string();
    let result = if !ctx.authorize(AclOperation::Read, Resource::Group(&request.group_id)) {
        JoinResult::error(ErrorCode::GROUP_AUTHORIZATION_FAILED, &member_id)
    } else if request.group_id.is_empty() {
        JoinResult::error(ErrorCode::INVALID_GROUP_ID, &member_id)
    } else {
        let join = join_request(ctx, request);
        let group_id = join.group_id.clone();
        on_group_coordinator(ctx, &group_id, move |shard| async move {
            shard.groups().join(join).await
        })
        .await
        .unwrap_or_else(|code| JoinResult::error(code, &member_id))
    };
    Ok(encodable(response(result), version))
}

fn join_request(ctx: &RequestContext, request: JoinGroupRequest) -> JoinRequest {
    JoinRequest {
        group_id: request.group_id.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|s| s.to_string()),
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        client_id: ctx.client_id(),
        client_host: ctx.client_host(),
        require_known_member_id: ctx.version() >= MEMBER_ID_REQUIRED_VERSION_MIN,
    }
}

/// Every field Kafka fills.
fn response(result: JoinResult) -> JoinGroupResponse {
    let members = result
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(StrBytes::from_string(m.member_id))
                .with_group_instance_id(m.group_instance_id.map(StrBytes::from_string))
                .with_metadata(m.metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(result.error_code.code())
        .with_generation_id(result.generation_id)
        .with_protocol_type(result.protocol_type.map(StrBytes::from_string))
        .with_protocol_name(result.protocol_name.map(StrBytes::from_string))
        .with_leader(StrBytes::from_string(result.leader))
        .with_skip_assignment(result.skip_assignment)
        .with_member_id(StrBytes::from_string(result.member_id))
        .with_members(members)
}

/// The coordinator's answer with what `version` cannot carry cleared.
pub(crate) fn encodable(mut response: JoinGroupResponse, version: i16) -> JoinGroupResponse {
    if version < NULLABLE_PROTOCOL_NAME_VERSION_MIN {
        response.protocol_type = None;
        if response.protocol_name.is_none() {
            response.protocol_name = Some(StrBytes::new());
        }
    }
    if version < SKIP_ASSIGNMENT_VERSION_MIN {
        response.skip_assignment = false;
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_versions_get_an_empty_protocol_name_and_no_skip() {
        let response = JoinGroupResponse::default()
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(None)
            .with_skip_assignment(true);
        let old = encodable(response.clone(), 6);
        assert_eq!(old.protocol_type, None);
        assert_eq!(old.protocol_name.as_deref(), Some(""));
        assert!(!old.skip_assignment);
        let new = encodable(response, 9);
        assert_eq!(new.protocol_type.as_deref(), Some("consumer"));
        assert_eq!(new.protocol_name, None);
        assert!(new.skip_assignment);
    }

    #[test]
    fn every_version_encodes_a_failure() {
        for version in 0..=9 {
            let failure = JoinResult::error(ErrorCode::INVALID_GROUP_ID, "");
            let response = encodable(response(failure), version);
            let mut buf = bytes::BytesMut::new();
            kafka_protocol::protocol::Encodable::encode(&response, &mut buf, version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }
}
