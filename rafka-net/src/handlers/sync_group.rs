//! SyncGroup (key 14), v0-v5: after a join, the leader sends the
//! assignment of every member and each member waits for its own; the
//! coordinator answers once the leader's assignment is stored.
//!
//! An empty group id is INVALID_GROUP_ID without asking a coordinator, as
//! in Kafka. The protocol type and name of the answer exist from v5 only.

use bytes::Bytes;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use rafka_proto::api::decode_request;

use super::group_call::{caller, on_coordinator, INVALID_GROUP_ID};
use super::{reply, HandlerContext, HandlerError};
use crate::service::{Request, Response};

/// First version naming the protocol type and name in the answer.
const PROTOCOL_VERSION_MIN: i16 = 5;

pub async fn handle(ctx: &HandlerContext, request: Request) -> Result<Response, HandlerError> {
    let version = request.header.api_version;
    let caller = caller(&request);
    let mut body = request.body;
    let decoded: SyncGroupRequest = decode_request(&mut body, version)?;
    let response = if decoded.group_id.is_empty() {
        failure(INVALID_GROUP_ID)
    } else {
        let group_id = decoded.group_id.to_string();
        let synced = on_coordinator(ctx, &group_id, move |shard| async move {
            shard.groups().sync_group(caller, decoded).await
        })
        .await;
        synced.unwrap_or_else(failure)
    };
    reply(
        &request.header,
        request.response_header_version,
        &encodable(response, version),
        version,
    )
}

fn failure(error_code: i16) -> SyncGroupResponse {
    SyncGroupResponse::default()
        .with_error_code(error_code)
        .with_assignment(Bytes::new())
}

/// The coordinator's answer with what `version` cannot carry cleared.
fn encodable(mut response: SyncGroupResponse, version: i16) -> SyncGroupResponse {
    response.throttle_time_ms = 0;
    if version < PROTOCOL_VERSION_MIN {
        response.protocol_type = None;
        response.protocol_name = None;
    }
    response
}
