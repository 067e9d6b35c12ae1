//! DeleteGroups (key 42), v0-v2: deletes each named group (only an empty
//! one: NON_EMPTY_GROUP otherwise) and its committed offsets, each at its
//! own coordinator, all at once.
//!
//! A name given twice is answered once, as Kafka deduplicates the names.

use futures_util::future::join_all;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId};
use rafka_proto::api::decode_request;
use rafka_shard::group::GroupCaller;

use super::group_call::{caller, on_coordinator};
use super::{reply, HandlerContext, HandlerError};
use crate::service::{Request, Response};

pub async fn handle(ctx: &HandlerContext, request: Request) -> Result<Response, HandlerError> {
    let version = request.header.api_version;
    let caller = caller(&request);
    let mut body = request.body;
    let decoded: DeleteGroupsRequest = decode_request(&mut body, version)?;
    let mut names: Vec<GroupId> = Vec::with_capacity(decoded.groups_names.len());
    for name in decoded.groups_names {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let deletions = names
        .into_iter()
        .map(|group_id| delete(ctx, caller.clone(), group_id));
    let results = join_all(deletions).await;
    let response = DeleteGroupsResponse::default().with_results(results);
    reply(
        &request.header,
        request.response_header_version,
        &response,
        version,
    )
}

async fn delete(
    ctx: &HandlerContext,
    caller: GroupCaller,
    group_id: GroupId,
) -> DeletableGroupResult {
    let id = group_id.clone();
    let deleted = on_coordinator(ctx, group_id.as_str(), move |shard| async move {
        shard.groups().delete_group(caller, id).await
    })
    .await;
    deleted.unwrap_or_else(|code| {
        DeletableGroupResult::default()
            .with_group_id(group_id)
            .with_error_code(code)
    })
}
