//! InitProducerId (key 22), v0-v5: producer ids for idempotent producers,
//! allocated by the controller on shard 0 from its durable id blocks.
//!
//! Decisions a client can notice:
//! - A null transactional id always gets a fresh id with epoch 0, whatever
//!   producer id and epoch (KIP-360, v3+) it sends: Kafka's coordinator
//!   does the same for non-transactional producers, and a fresh id can
//!   never collide with sequences the broker still holds for the old one.
//! - A transactional id goes to its transaction coordinator (the shard
//!   owning its `__transaction_state` partition): a new id gets a fresh
//!   producer id with epoch 0, a known one its epoch bumped (fencing the
//!   previous producer); an open transaction of the previous incarnation
//!   is aborted first (CONCURRENT_TRANSACTIONS until it is, which clients
//!   retry); v3+ carry the current producer id and epoch for KIP-360
//!   recovery. Before v4, PRODUCER_FENCED is answered as
//!   INVALID_PRODUCER_EPOCH, as Kafka does. An empty transactional id is
//!   INVALID_REQUEST, as in Kafka.
//! - When shard 0 cannot be reached (stopping), the answer is the
//!   retriable COORDINATOR_LOAD_IN_PROGRESS, Kafka's answer while it waits
//!   for an id block; it sends neither client to look up a coordinator.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use rafka_core::acl::{AclOperation, Resource};
use rafka_proto::error::ErrorCode;

use super::coordinator_call::on_txn_coordinator;
use super::{HandlerError, RequestContext};

/// Kafka's `RecordBatch.NO_PRODUCER_ID` / `NO_PRODUCER_EPOCH`, sent with
/// every error.
const NO_PRODUCER_ID: i64 = -1;
const NO_PRODUCER_EPOCH: i16 = -1;
/// v3 carries the producer's current id and epoch (KIP-360).
const KIP_360_VERSION_MIN: i16 = 3;
/// v4 may answer PRODUCER_FENCED; older versions get INVALID_PRODUCER_EPOCH.
const PRODUCER_FENCED_VERSION_MIN: i16 = 4;

pub async fn handle(
    ctx: &RequestContext,
    request: InitProducerIdRequest,
) -> Result<InitProducerIdResponse, HandlerError> {
    let outcome = match &request.transactional_id {
        None if !may_write_idempotently(ctx) => Err(ErrorCode::CLUSTER_AUTHORIZATION_FAILED),
        None => allocate(ctx).await,
        Some(id) if !ctx.authorize(AclOperation::Write, Resource::TransactionalId(id)) => {
            Err(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        }
        Some(id) if id.is_empty() => Err(ErrorCode::INVALID_REQUEST),
        Some(id) => init_transactional(ctx, id, &request).await,
    };
    Ok(match outcome {
        Ok((producer_id, epoch)) => InitProducerIdResponse::default()
            .with_error_code(ErrorCode::NONE.code())
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch),
        Err(ErrorCode::PRODUCER_FENCED) if ctx.version() < PRODUCER_FENCED_VERSION_MIN => {
            InitProducerIdResponse::default()
                .with_error_code(ErrorCode::INVALID_PRODUCER_EPOCH.code())
                .with_producer_id(ProducerId(NO_PRODUCER_ID))
                .with_producer_epoch(NO_PRODUCER_EPOCH)
        }
        Err(code) => InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(NO_PRODUCER_ID))
            .with_producer_epoch(NO_PRODUCER_EPOCH),
    })
}

/// Kafka 3.x (KIP-679): IDEMPOTENT_WRITE on the cluster, or WRITE on any
/// topic.
fn may_write_idempotently(ctx: &RequestContext) -> bool {
    ctx.authorize(AclOperation::IdempotentWrite, Resource::Cluster)
        || ctx
            .image()
            .topics()
            .any(|topic| ctx.authorize(AclOperation::Write, Resource::Topic(&topic.name)))
}

/// A fresh producer id from the controller (epoch 0), or the error code
/// to answer.
async fn allocate(ctx: &RequestContext) -> Result<(i64, i16), ErrorCode> {
    match ctx.controller().allocate_producer_id().await {
        Ok(outcome) => outcome.map(|producer_id| (producer_id, 0)),
        Err(_) => Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS),
    }
}

/// The producer id and epoch the transaction coordinator of `id` gives.
async fn init_transactional(
    ctx: &RequestContext,
    id: &str,
    request: &InitProducerIdRequest,
) -> Result<(i64, i16), ErrorCode> {
    let expected = (ctx.version() >= KIP_360_VERSION_MIN
        && request.producer_id.0 != NO_PRODUCER_ID)
        .then_some((request.producer_id.0, request.producer_epoch));
    let timeout_ms = request.transaction_timeout_ms;
    let key = id.to_string();
    on_txn_coordinator(ctx, id, move |shard| async move {
        shard
            .txns()
            .init_producer_id(&key, timeout_ms, expected)
            .await
    })
    .await?
}
