//! ListGroups (key 16), v0-v5: every group of this broker, gathered from
//! the coordinators of all shards at once, optionally filtered by state
//! (v4+) and type (v5+).
//!
//! Top-down: gather from every shard -> keep the groups the principal may
//! DESCRIBE (all of them with DESCRIBE on the cluster, as Kafka) -> filter.
//!
//! A shard that cannot answer (stopping) leaves its groups out and makes
//! the answer COORDINATOR_NOT_AVAILABLE with the groups the others gave,
//! as Kafka answers a partial list with the error of the partition it
//! could not read.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::group::GroupListing;
use rafka_proto::error::ErrorCode;

use super::{HandlerError, RequestContext};

/// Every group here speaks the classic protocol.
const CLASSIC_GROUP_TYPE: &str = "classic";

pub async fn handle(
    ctx: &RequestContext,
    request: ListGroupsRequest,
) -> Result<ListGroupsResponse, HandlerError> {
    let listed = ctx
        .shard()
        .router
        .invoke_on_all(|shard| async move { shard.groups().list() })
        .await;
    let describe_all = ctx.authorize(AclOperation::Describe, Resource::Cluster);
    let mut response = ListGroupsResponse::default();
    for shard_groups in listed {
        match shard_groups {
            Ok(groups) => response.groups.extend(
                groups
                    .into_iter()
                    .filter(|g| matches(&request, g))
                    .filter(|g| {
                        describe_all
                            || ctx.authorize(AclOperation::Describe, Resource::Group(&g.group_id))
                    })
                    .map(listed_group),
            ),
            Err(error) => {
                tracing::debug!(%error, "a shard did not list its groups");
                response.error_code = ErrorCode::COORDINATOR_NOT_AVAILABLE.code();
            }
        }
    }
    Ok(response)
}

/// The request's filters: states match case-insensitively (as Kafka);
/// an empty filter matches every group.
fn matches(request: &ListGroupsRequest, group: &GroupListing) -> bool {
    let state_ok = request.states_filter.is_empty()
        || request
            .states_filter
            .iter()
            .any(|s| s.eq_ignore_ascii_case(group.state));
    let type_ok = request.types_filter.is_empty()
        || request
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case(CLASSIC_GROUP_TYPE));
    state_ok && type_ok
}

fn listed_group(group: GroupListing) -> ListedGroup {
    ListedGroup::default()
        .with_group_id(GroupId(StrBytes::from_string(group.group_id)))
        .with_protocol_type(StrBytes::from_string(group.protocol_type))
        .with_group_state(StrBytes::from_static_str(group.state))
        .with_group_type(StrBytes::from_static_str(CLASSIC_GROUP_TYPE))
}
