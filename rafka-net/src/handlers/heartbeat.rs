//! Heartbeat (key 12), v0-v4: a member tells its coordinator it is alive;
//! the answer says whether a rebalance needs it to rejoin
//! (REBALANCE_IN_PROGRESS) or whether it is no longer a member.
//!
//! Top-down: authorize READ on the group -> run on the group's
//! coordinator. An empty group id is INVALID_GROUP_ID without asking a
//! coordinator, as in Kafka.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use rafka_core::acl::{AclOperation, Resource};
use rafka_proto::error::ErrorCode;

use super::coordinator_call::on_group_coordinator;
use super::{HandlerError, RequestContext};

pub async fn handle(
    ctx: &RequestContext,
    request: HeartbeatRequest,
) -> Result<HeartbeatResponse, HandlerError> {
    let error_code = if !ctx.authorize(AclOperation::Read, Resource::Group(&request.group_id)) {
        ErrorCode::GROUP_AUTHORIZATION_FAILED
    } else if request.group_id.is_empty() {
        ErrorCode::INVALID_GROUP_ID
    } else {
        let group_id = request.group_id.to_string();
        on_group_coordinator(ctx, &group_id, move |shard| async move {
            shard.groups().heartbeat(
                &request.group_id,
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id,
            )
        })
        .await
        .unwrap_or_else(|code| code)
    };
    Ok(HeartbeatResponse::default().with_error_code(error_code.code()))
}
