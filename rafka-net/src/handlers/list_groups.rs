//! ListGroups (key 16), v0-v5: every group of this broker, gathered from
//! the coordinators of all shards at once, optionally filtered by state
//! (v4+) and type (v5+).
//!
//! A shard that cannot answer (stopping) leaves its groups out and makes
//! the answer COORDINATOR_NOT_AVAILABLE with the groups the others gave,
//! as Kafka answers a partial list with the error of the partition it
//! could not read.

use kafka_protocol::messages::{ListGroupsRequest, ListGroupsResponse};
use rafka_proto::api::decode_request;

use super::group_call::{caller, COORDINATOR_NOT_AVAILABLE};
use super::{reply, HandlerContext, HandlerError};
use crate::service::{Request, Response};

pub async fn handle(ctx: &HandlerContext, request: Request) -> Result<Response, HandlerError> {
    let version = request.header.api_version;
    let caller = caller(&request);
    let mut body = request.body;
    let decoded: ListGroupsRequest = decode_request(&mut body, version)?;
    let listed = ctx
        .shard
        .router
        .invoke_on_all(
            move |shard| async move { shard.groups().list_groups(caller, decoded).await },
        )
        .await;
    let mut response = ListGroupsResponse::default();
    for shard_groups in listed {
        match shard_groups {
            Ok(groups) => response.groups.extend(groups),
            Err(error) => {
                tracing::debug!(%error, "a shard did not list its groups");
                response.error_code = COORDINATOR_NOT_AVAILABLE;
            }
        }
    }
    reply(
        &request.header,
        request.response_header_version,
        &response,
        version,
    )
}
