//! The one way a request reaches the coordinator of its key, for every
//! kind of coordinator (Redpanda's `group_router`): key -> partition of the
//! internal topic (Kafka's hash) -> the shard owning it -> `invoke_on`.
//!
//! A coordinator's state lives only on that shard, so every request for
//! the key is shipped there over the channel mesh, even when this shard is
//! the owner (the local call is direct).
//!
//! Lives on: the shard serving the request; the work runs on the owner.

use std::future::Future;
use std::rc::Rc;

use rafka_proto::error::ErrorCode;
use rafka_shard::coordinator::InternalTopic;
use rafka_shard::shard::Shard;

use super::RequestContext;

/// Runs `work` on the shard coordinating `key` in `topic` and returns its
/// result, or the error to answer instead: COORDINATOR_NOT_AVAILABLE when
/// no shard owns the key's partition yet, or when the owner stopped before
/// answering.
pub(crate) async fn on_coordinator<F, Fut, R>(
    ctx: &RequestContext,
    topic: InternalTopic,
    key: &str,
    work: F,
) -> Result<R, ErrorCode>
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
    R: Send + 'static,
{
    let owner = ctx.shard().coordinator_shard(topic, key)?;
    ctx.shard()
        .router
        .invoke_on(owner, work)
        .await
        .map_err(|error| {
            tracing::debug!(%error, topic = topic.name, key, "coordinator unreachable");
            ErrorCode::COORDINATOR_NOT_AVAILABLE
        })
}

/// [`on_coordinator`] for the coordinator of group `group_id`.
pub(crate) async fn on_group_coordinator<F, Fut, R>(
    ctx: &RequestContext,
    group_id: &str,
    work: F,
) -> Result<R, ErrorCode>
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
    R: Send + 'static,
{
    on_coordinator(ctx, ctx.shard().offsets_topic(), group_id, work).await
}

/// [`on_coordinator`] for the transaction coordinator of `transactional_id`.
pub(crate) async fn on_txn_coordinator<F, Fut, R>(
    ctx: &RequestContext,
    transactional_id: &str,
    work: F,
) -> Result<R, ErrorCode>
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
    R: Send + 'static,
{
    on_coordinator(ctx, ctx.shard().transaction_topic(), transactional_id, work).await
}
