//! DeleteGroups (key 42), v0-v2: deletes each named group (only an empty
//! one: NON_EMPTY_GROUP otherwise) and its committed offsets, each at its
//! own coordinator, all at once.
//!
//! Top-down: authorize DELETE on each group -> run each on its
//! coordinator. A name given twice is answered once, as Kafka deduplicates
//! the names.

use futures_util::future::join_all;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId};
use rafka_core::acl::{AclOperation, Resource};
use rafka_proto::error::ErrorCode;

use super::coordinator_call::on_group_coordinator;
use super::{HandlerError, RequestContext};

pub async fn handle(
    ctx: &RequestContext,
    request: DeleteGroupsRequest,
) -> Result<DeleteGroupsResponse, HandlerError> {
    let mut names: Vec<GroupId> = Vec::with_capacity(request.groups_names.len());
    for name in request.groups_names {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let results = join_all(names.into_iter().map(|group_id| delete(ctx, group_id))).await;
    Ok(DeleteGroupsResponse::default().with_results(results))
}

async fn delete(ctx: &RequestContext, group_id: GroupId) -> DeletableGroupResult {
    let code = if ctx.authorize(AclOperation::Delete, Resource::Group(&group_id)) {
        let id = group_id.to_string();
        on_group_coordinator(ctx, &group_id, move |shard| async move {
            shard.groups().delete_group(&id).await
        })
        .await
        .unwrap_or_else(|code| code)
    } else {
        ErrorCode::GROUP_AUTHORIZATION_FAILED
    };
    DeletableGroupResult::default()
        .with_group_id(group_id)
        .with_error_code(code.code())
}
