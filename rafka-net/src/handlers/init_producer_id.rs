//! InitProducerId (key 22), v0-v5: producer ids for idempotent producers,
//! allocated by the controller on shard 0 from its durable id blocks.
//!
//! Decisions a client can notice:
//! - A null transactional id always gets a fresh id with epoch 0, whatever
//!   producer id and epoch (KIP-360, v3+) it sends: Kafka's coordinator
//!   does the same for non-transactional producers, and a fresh id can
//!   never collide with sequences the broker still holds for the old one.
//! - Transactions are not served yet: a non-null transactional id gets
//!   COORDINATOR_NOT_AVAILABLE, Kafka's answer when its transaction log is
//!   unavailable. Clients retry it until their own timeout and then report
//!   the coordinator as unavailable, which names the cause; a fatal code
//!   such as TRANSACTIONAL_ID_AUTHORIZATION_FAILED would blame ACLs. An
//!   empty transactional id is INVALID_REQUEST, as in Kafka.
//! - When shard 0 cannot be reached (stopping), the answer is the
//!   retriable COORDINATOR_LOAD_IN_PROGRESS, Kafka's answer while it waits
//!   for an id block; it sends neither client to look up a coordinator.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use rafka_core::acl::{AclOperation, Resource};
use rafka_proto::error::ErrorCode;

use super::{HandlerError, RequestContext};

/// Kafka's `RecordBatch.NO_PRODUCER_ID` / `NO_PRODUCER_EPOCH`, sent with
/// every error.
const NO_PRODUCER_ID: i64 = -1;
const NO_PRODUCER_EPOCH: i16 = -1;

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
        Some(_) => Err(ErrorCode::COORDINATOR_NOT_AVAILABLE),
    };
    Ok(match outcome {
        Ok(producer_id) => InitProducerIdResponse::default()
            .with_error_code(ErrorCode::NONE.code())
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(0),
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

/// A fresh producer id from the controller, or the error code to answer.
async fn allocate(ctx: &RequestContext) -> Result<i64, ErrorCode> {
    match ctx.controller().allocate_producer_id().await {
        Ok(outcome) => outcome,
        Err(_) => Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS),
    }
}
