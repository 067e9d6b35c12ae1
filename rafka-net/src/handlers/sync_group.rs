//! SyncGroup (key 14), v0-v5: after a join, the leader sends the
//! assignment of every member and each member waits for its own; the
//! coordinator answers once the leader's assignment is stored.
//!
//! Top-down: authorize READ on the group -> convert to the coordinator's
//! `SyncRequest` -> run on the group's coordinator -> convert back. An
//! empty group id is INVALID_GROUP_ID without asking a coordinator, as in
//! Kafka. The protocol type and name of the answer exist from v5 only.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::group::{SyncRequest, SyncResult};
use rafka_proto::error::ErrorCode;

use super::coordinator_call::on_group_coordinator;
use super::{HandlerError, RequestContext};

/// First version naming the protocol type and name in the answer.
const PROTOCOL_VERSION_MIN: i16 = 5;

pub async fn handle(
    ctx: &RequestContext,
    request: SyncGroupRequest,
) -> Result<SyncGroupResponse, HandlerError> {
    let result = if !ctx.authorize(AclOperation::Read, Resource::Group(&request.group_id)) {
        SyncResult::error(ErrorCode::GROUP_AUTHORIZATION_FAILED)
    } else if request.group_id.is_empty() {
        SyncResult::error(ErrorCode::INVALID_GROUP_ID)
    } else {
        let sync = sync_request(request);
        let group_id = sync.group_id.clone();
        on_group_coordinator(ctx, &group_id, move |shard| async move {
            shard.groups().sync(sync).await
        })
        .await
        .unwrap_or_else(SyncResult::error)
    };
    Ok(encodable(response(result), ctx.version()))
}

fn sync_request(request: SyncGroupRequest) -> SyncRequest {
    SyncRequest {
        group_id: request.group_id.to_string(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|s| s.to_string()),
        protocol_type: request.protocol_type.map(|s| s.to_string()),
        protocol_name: request.protocol_name.map(|s| s.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    }
}

fn response(result: SyncResult) -> SyncGroupResponse {
    SyncGroupResponse::default()
        .with_error_code(result.error_code.code())
        .with_protocol_type(result.protocol_type.map(StrBytes::from_string))
        .with_protocol_name(result.protocol_name.map(StrBytes::from_string))
        .with_assignment(result.assignment)
}

/// The coordinator's answer with what `version` cannot carry cleared.
fn encodable(mut response: SyncGroupResponse, version: i16) -> SyncGroupResponse {
    if version < PROTOCOL_VERSION_MIN {
        response.protocol_type = None;
        response.protocol_name = None;
    }
    response
}
