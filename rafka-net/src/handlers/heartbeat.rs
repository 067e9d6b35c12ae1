//! Heartbeat (key 12), v0-v4: a member tells its coordinator it is alive;
//! the answer says whether a rebalance needs it to rejoin
//! (REBALANCE_IN_PROGRESS) or whether it is no longer a member.
//!
//! An empty group id is INVALID_GROUP_ID without asking a coordinator, as
//! in Kafka.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use rafka_proto::api::decode_request;

use super::group_call::{caller, on_coordinator, INVALID_GROUP_ID};
use super::{reply, HandlerContext, HandlerError};
use crate::service::{Request, Response};

pub async fn handle(ctx: &HandlerContext, request: Request) -> Result<Response, HandlerError> {
    let version = request.header.api_version;
    let caller = caller(&request);
    let mut body = request.body;
    let decoded: HeartbeatRequest = decode_request(&mut body, version)?;
    let error_code = if decoded.group_id.is_empty() {
        INVALID_GROUP_ID
    } else {
        let group_id = decoded.group_id.to_string();
        let beat = on_coordinator(ctx, &group_id, move |shard| async move {
            shard.groups().heartbeat(caller, decoded).await
        })
        .await;
        match beat {
            Ok(response) => response.error_code,
            Err(code) => code,
        }
    };
    let response = HeartbeatResponse::default().with_error_code(error_code);
    reply(
        &request.header,
        request.response_header_version,
        &response,
        version,
    )
}
