//! LeaveGroup (key 13), v0-v5: members leave their group (a consumer
//! closing), which starts a rebalance for the others.
//!
//! v0-v2 name one member by `member_id`; v3+ batch members, each by member
//! id or `group.instance.id` (KIP-345). The coordinator speaks only the
//! batched form: an old request becomes a batch of one, and its answer
//! folds back into the single error code (the top-level error if any,
//! else the member's), as Kafka's `LeaveGroupResponse` does.
//!
//! Top-down: authorize READ on the group -> the batched form -> run on
//! the group's coordinator -> fold back at the request's version. An empty
//! group id is INVALID_GROUP_ID without asking a coordinator.

use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::group::{LeaveResult, LeavingMember};
use rafka_proto::error::ErrorCode;

use super::coordinator_call::on_group_coordinator;
use super::{HandlerError, RequestContext};

/// First version batching members.
const BATCHED_VERSION_MIN: i16 = 3;

pub async fn handle(
    ctx: &RequestContext,
    request: LeaveGroupRequest,
) -> Result<LeaveGroupResponse, HandlerError> {
    let version = ctx.version();
    let batched = batched(request, version);
    let failed = |error_code| LeaveResult {
        error_code,
        members: Vec::new(),
    };
    let result = if !ctx.authorize(AclOperation::Read, Resource::Group(&batched.group_id)) {
        failed(ErrorCode::GROUP_AUTHORIZATION_FAILED)
    } else if batched.group_id.is_empty() {
        failed(ErrorCode::INVALID_GROUP_ID)
    } else {
        let group_id = batched.group_id.to_string();
        let members = leaving_members(batched);
        let key = group_id.clone();
        on_group_coordinator(ctx, &key, move |shard| async move {
            shard.groups().leave(&group_id, members).await
        })
        .await
        .unwrap_or_else(failed)
    };
    Ok(encodable(response(result), version))
}

fn leaving_members(request: LeaveGroupRequest) -> Vec<LeavingMember> {
    request
        .members
        .into_iter()
        .map(|m| LeavingMember {
            member_id: m.member_id.to_string(),
            group_instance_id: m.group_instance_id.map(|s| s.to_string()),
        })
        .collect()
}

fn response(result: LeaveResult) -> LeaveGroupResponse {
    let members = result
        .members
        .into_iter()
        .map(|(m, code)| {
            MemberResponse::default()
                .with_member_id(StrBytes::from_string(m.member_id))
                .with_group_instance_id(m.group_instance_id.map(StrBytes::from_string))
                .with_error_code(code.code())
        })
        .collect();
    LeaveGroupResponse::default()
        .with_error_code(result.error_code.code())
        .with_members(members)
}

/// The request in the v3+ form: an old single member becomes a batch of
/// one, without instance id or reason (v0-v2 have neither).
pub(crate) fn batched(mut request: LeaveGroupRequest, version: i16) -> LeaveGroupRequest {
    if version < BATCHED_VERSION_MIN {
        let member_id = std::mem::take(&mut request.member_id);
        request.members = vec![MemberIdentity::default()
            .with_member_id(member_id)
            .with_group_instance_id(None)
            .with_reason(None)];
    }
    request
}

/// The answer in `version`'s form: below v3 the members fold into the one
/// error code.
pub(crate) fn encodable(mut response: LeaveGroupResponse, version: i16) -> LeaveGroupResponse {
    if version < BATCHED_VERSION_MIN {
        let members = std::mem::take(&mut response.members);
        if ErrorCode::from_code(response.error_code).is_none() {
            response.error_code = members
                .iter()
                .map(|m| m.error_code)
                .find(|&code| ErrorCode::from_code(code).is_err())
                .unwrap_or(ErrorCode::NONE.code());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNKNOWN_MEMBER_ID: i16 = 25;

    #[test]
    fn a_single_member_becomes_a_batch_of_one() {
        let request = LeaveGroupRequest::default().with_member_id(StrBytes::from_static_str("m-1"));
        let batched = batched(request, 2);
        assert!(batched.member_id.is_empty());
        assert_eq!(batched.members.len(), 1);
        assert_eq!(batched.members[0].member_id.as_str(), "m-1");
        assert_eq!(batched.members[0].group_instance_id, None);
    }

    #[test]
    fn a_batch_is_kept_from_v3() {
        let member = MemberIdentity::default().with_member_id(StrBytes::from_static_str("m-2"));
        let request = LeaveGroupRequest::default().with_members(vec![member.clone()]);
        assert_eq!(batched(request, 3).members, vec![member]);
    }

    #[test]
    fn old_versions_fold_the_member_error_into_the_top_level() {
        let response = LeaveGroupResponse::default().with_members(vec![MemberResponse::default()
            .with_member_id(StrBytes::from_static_str("m-1"))
            .with_error_code(UNKNOWN_MEMBER_ID)]);
        let old = encodable(response.clone(), 0);
        assert_eq!(old.error_code, UNKNOWN_MEMBER_ID);
        assert!(old.members.is_empty());
        let new = encodable(response, 3);
        assert_eq!(new.error_code, 0);
        assert_eq!(new.members[0].error_code, UNKNOWN_MEMBER_ID);
    }
}
