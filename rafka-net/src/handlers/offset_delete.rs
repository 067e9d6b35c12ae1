//! OffsetDelete (key 47), v0: deletes a group's committed offsets of some
//! partitions; refused per partition (GROUP_SUBSCRIBED_TO_TOPIC) while
//! members of the group consume the topic.
//!
//! An empty group id is INVALID_GROUP_ID without asking a coordinator, as
//! in Kafka; a coordinator that cannot answer makes the top-level error.

use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use rafka_proto::api::decode_request;

use super::group_call::{caller, on_coordinator, INVALID_GROUP_ID};
use super::{reply, HandlerContext, HandlerError};
use crate::service::{Request, Response};

pub async fn handle(ctx: &HandlerContext, request: Request) -> Result<Response, HandlerError> {
    let version = request.header.api_version;
    let caller = caller(&request);
    let mut body = request.body;
    let decoded: OffsetDeleteRequest = decode_request(&mut body, version)?;
    let mut response = if decoded.group_id.is_empty() {
        OffsetDeleteResponse::default().with_error_code(INVALID_GROUP_ID)
    } else {
        let group_id = decoded.group_id.to_string();
        let deleted = on_coordinator(ctx, &group_id, move |shard| async move {
            shard.groups().offset_delete(caller, decoded).await
        })
        .await;
        deleted.unwrap_or_else(|code| OffsetDeleteResponse::default().with_error_code(code))
    };
    response.throttle_time_ms = 0;
    reply(
        &request.header,
        request.response_header_version,
        &response,
        version,
    )
}
