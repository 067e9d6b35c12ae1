//! DescribeGroups (key 15), v0-v6: state, protocol and members of each
//! named group, each asked of its own coordinator, all at once; answers
//! keep the request's order.
//!
//! Decisions a client can notice:
//! - A group no coordinator can answer for gets that error with an empty
//!   state, as Kafka's `DescribeGroupsResponse.groupError`.
//! - Authorized operations (v3+) are filled only when asked for; without
//!   an authorizer every operation Kafka's ACLs know on a group is allowed.
//!   Unasked, they are Kafka's "omitted" marker, `i32::MIN`.

use futures_util::future::join_all;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};
use rafka_proto::api::decode_request;
use rafka_shard::group::GroupCaller;

use super::group_call::{caller, on_coordinator};
use super::{reply, HandlerContext, HandlerError};
use crate::service::{Request, Response};

/// First version with authorized operations.
const AUTHORIZED_OPERATIONS_VERSION_MIN: i16 = 3;
/// First version with a per-group error message.
const ERROR_MESSAGE_VERSION_MIN: i16 = 6;
/// Kafka's `MetadataResponse.AUTHORIZED_OPERATIONS_OMITTED`.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Kafka's `AclOperation` codes an ACL can grant on a group.
const READ: u32 = 3;
const DELETE: u32 = 6;
const DESCRIBE: u32 = 8;
/// Every operation Kafka's ACLs define on a group.
pub const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << READ) | (1 << DELETE) | (1 << DESCRIBE);

pub async fn handle(ctx: &HandlerContext, request: Request) -> Result<Response, HandlerError> {
    let version = request.header.api_version;
    let caller = caller(&request);
    let mut body = request.body;
    let decoded: DescribeGroupsRequest = decode_request(&mut body, version)?;
    let operations =
        if version >= AUTHORIZED_OPERATIONS_VERSION_MIN && decoded.include_authorized_operations {
            GROUP_AUTHORIZED_OPERATIONS
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        };
    let descriptions = decoded
        .groups
        .into_iter()
        .map(|group_id| describe(ctx, caller.clone(), group_id));
    let groups = join_all(descriptions)
        .await
        .into_iter()
        .map(|group| encodable(group, operations, version))
        .collect();
    let response = DescribeGroupsResponse::default().with_groups(groups);
    reply(
        &request.header,
        request.response_header_version,
        &response,
        version,
    )
}

async fn describe(ctx: &HandlerContext, caller: GroupCaller, group_id: GroupId) -> DescribedGroup {
    let id = group_id.clone();
    let described = on_coordinator(ctx, group_id.as_str(), move |shard| async move {
        shard.groups().describe_group(caller, id).await
    })
    .await;
    described.unwrap_or_else(|code| {
        DescribedGroup::default()
            .with_group_id(group_id)
            .with_error_code(code)
    })
}

/// The coordinator's description with what `version` cannot carry
/// cleared and the authorized operations the request asked for.
fn encodable(mut group: DescribedGroup, operations: i32, version: i16) -> DescribedGroup {
    group.authorized_operations = operations;
    if version < ERROR_MESSAGE_VERSION_MIN {
        group.error_message = None;
    }
    group
}
