//! What the group API handlers share: who is calling ([`caller`]) and the
//! one way a request reaches the coordinator of its group
//! ([`on_coordinator`]).
//!
//! A group's state lives only on the shard owning its `__consumer_offsets`
//! partition, so every group request is shipped there over the channel
//! mesh, even when this shard is the owner (the local call is direct).
//!
//! Lives on: the shard serving the request; the work runs on the owner.

use std::future::Future;
use std::rc::Rc;

use kafka_protocol::ResponseError;
use rafka_shard::group::GroupCaller;
use rafka_shard::shard::Shard;

use super::HandlerContext;
use crate::service::Request;

/// The coordinator is gone (its shard stopped) or does not exist yet.
pub(crate) const COORDINATOR_NOT_AVAILABLE: i16 = ResponseError::CoordinatorNotAvailable.code();
/// Kafka refuses an empty group id for the APIs that coordinate members.
pub(crate) const INVALID_GROUP_ID: i16 = ResponseError::InvalidGroupId.code();

/// The member's identity as Kafka's coordinator records it: the client id
/// of the request header, and the peer address in Java's
/// `InetAddress.toString()` form (`/127.0.0.1`), which Kafka tools print.
pub(crate) fn caller(request: &Request) -> GroupCaller {
    let client_id = request
        .header
        .client_id
        .as_deref()
        .map(|raw| String::from_utf8_lossy(raw).into_owned())
        .unwrap_or_default();
    GroupCaller {
        api_version: request.header.api_version,
        client_id,
        client_host: format!("/{}", request.peer.ip()),
    }
}

/// Runs `work` on the shard coordinating `group_id` and returns its
/// result, or the Kafka error code to answer instead: the code
/// `group_coordinator_shard` gives when no shard owns the group, and
/// COORDINATOR_NOT_AVAILABLE when the owner stopped before answering.
pub(crate) async fn on_coordinator<F, Fut, R>(
    ctx: &HandlerContext,
    group_id: &str,
    work: F,
) -> Result<R, i16>
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
    R: Send + 'static,
{
    let owner = ctx.shard.group_coordinator_shard(group_id)?;
    ctx.shard
        .router
        .invoke_on(owner, work)
        .await
        .map_err(|error| {
            tracing::debug!(%error, group_id, "group coordinator unreachable");
            COORDINATOR_NOT_AVAILABLE
        })
}
