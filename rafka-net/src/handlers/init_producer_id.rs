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
use kafka_protocol::ResponseError;
use rafka_proto::api::decode_request;

use super::controller_call::call_controller;
use super::{reply, HandlerContext, HandlerError};
use crate::service::{Request, Response};

/// Kafka's `RecordBatch.NO_PRODUCER_ID` / `NO_PRODUCER_EPOCH`, sent with
/// every error.
const NO_PRODUCER_ID: i64 = -1;
const NO_PRODUCER_EPOCH: i16 = -1;

pub async fn handle(ctx: &HandlerContext, request: Request) -> Result<Response, HandlerError> {
    let version = request.header.api_version;
    let mut body = request.body;
    let decoded: InitProducerIdRequest = decode_request(&mut body, version)?;
    let outcome = match &decoded.transactional_id {
        None => allocate(ctx).await,
        Some(id) if id.is_empty() => Err(ResponseError::InvalidRequest.code()),
        Some(_) => Err(ResponseError::CoordinatorNotAvailable.code()),
    };
    let response = match outcome {
        Ok(producer_id) => InitProducerIdResponse::default()
            .with_error_code(0)
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(0),
        Err(code) => InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(NO_PRODUCER_ID))
            .with_producer_epoch(NO_PRODUCER_EPOCH),
    };
    reply(
        &request.header,
        request.response_header_version,
        &response,
        version,
    )
}

/// A fresh producer id from the controller, or the error code to answer.
async fn allocate(ctx: &HandlerContext) -> Result<i64, i16> {
    let allocated = call_controller(&ctx.shard, None, |shard| async move {
        let controller = shard.controller.as_ref()?;
        Some(controller.allocate_producer_id().await.map_err(|error| {
            tracing::error!(%error, "allocating a producer id");
            error.error_code().code()
        }))
    })
    .await;
    match allocated {
        Ok(outcome) => outcome,
        Err(_) => Err(ResponseError::CoordinatorLoadInProgress.code()),
    }
}
