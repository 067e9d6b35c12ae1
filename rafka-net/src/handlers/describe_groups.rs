//! DescribeGroups (key 15), v0-v6: state, protocol and members of each
//! named group, each asked of its own coordinator, all at once; answers
//! keep the request's order.
//!
//! Top-down: authorize DESCRIBE on each group -> run each on its
//! coordinator -> convert at the request's version.
//!
//! Decisions a client can notice:
//! - A group no coordinator can answer for gets that error with an empty
//!   state, as Kafka's `DescribeGroupsResponse.groupError`.
//! - From v6 an unknown group is GROUP_ID_NOT_FOUND (KIP-1043); older
//!   versions get a Dead group without error.
//! - Authorized operations (v3+) are filled only when asked for, from the
//!   request context's authorizer; unasked, they are Kafka's "omitted"
//!   marker, `i32::MIN`.

use futures_util::future::join_all;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::group::GroupDescription;
use rafka_proto::error::ErrorCode;

use super::context::AUTHORIZED_OPERATIONS_OMITTED;
use super::coordinator_call::on_group_coordinator;
use super::{HandlerError, RequestContext};

/// First version with authorized operations.
const AUTHORIZED_OPERATIONS_VERSION_MIN: i16 = 3;
/// First version with a per-group error message.
const ERROR_MESSAGE_VERSION_MIN: i16 = 6;
/// First version answering GROUP_ID_NOT_FOUND for an unknown group.
const GROUP_ID_NOT_FOUND_VERSION_MIN: i16 = 6;
/// The state Kafka reports for a group it does not know.
const DEAD: &str = "Dead";

pub async fn handle(
    ctx: &RequestContext,
    request: DescribeGroupsRequest,
) -> Result<DescribeGroupsResponse, HandlerError> {
    let operations_wanted =
        ctx.version() >= AUTHORIZED_OPERATIONS_VERSION_MIN && request.include_authorized_operations;
    let descriptions = request
        .groups
        .into_iter()
        .map(|group_id| describe(ctx, group_id, operations_wanted));
    let groups = join_all(descriptions).await;
    Ok(DescribeGroupsResponse::default().with_groups(groups))
}

async fn describe(
    ctx: &RequestContext,
    group_id: GroupId,
    operations_wanted: bool,
) -> DescribedGroup {
    let described = if ctx.authorize(AclOperation::Describe, Resource::Group(&group_id)) {
        let id = group_id.to_string();
        on_group_coordinator(ctx, &group_id, move |shard| async move {
            shard.groups().describe(&id)
        })
        .await
        .unwrap_or_else(Err)
    } else {
        Err(ErrorCode::GROUP_AUTHORIZATION_FAILED)
    };
    let mut group = match described {
        Ok(description) => described_group(group_id, description, ctx.version()),
        Err(code) => DescribedGroup::default()
            .with_group_id(group_id)
            .with_error_code(code.code()),
    };
    group.authorized_operations = if operations_wanted {
        ctx.authorized_operations(Resource::Group(&group.group_id))
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    if ctx.version() < ERROR_MESSAGE_VERSION_MIN {
        group.error_message = None;
    }
    group
}

fn described_group(group_id: GroupId, d: GroupDescription, version: i16) -> DescribedGroup {
    let mut error_code = d.error_code;
    if d.state == DEAD && d.members.is_empty() && version >= GROUP_ID_NOT_FOUND_VERSION_MIN {
        error_code = ErrorCode::GROUP_ID_NOT_FOUND;
    }
    let members = d
        .members
        .into_iter()
        .map(|m| {
            DescribedGroupMember::default()
                .with_member_id(StrBytes::from_string(m.member_id))
                .with_group_instance_id(m.group_instance_id.map(StrBytes::from_string))
                .with_client_id(StrBytes::from_string(m.client_id))
                .with_client_host(StrBytes::from_string(m.client_host))
                .with_member_metadata(m.metadata)
                .with_member_assignment(m.assignment)
        })
        .collect();
    DescribedGroup::default()
        .with_group_id(group_id)
        .with_error_code(error_code.code())
        .with_group_state(StrBytes::from_static_str(d.state))
        .with_protocol_type(StrBytes::from_string(d.protocol_type))
        .with_protocol_data(StrBytes::from_string(d.protocol))
        .with_members(members)
}
