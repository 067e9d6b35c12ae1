//! EndTxn (key 26), v0-v4: commit or abort the producer's open transaction.
//! Answered once PrepareCommit / PrepareAbort is durable in
//! `__transaction_state`; the coordinator then writes the markers (see
//! rafka-shard's `txn`). v5 (transaction version 2, KIP-890 part 2) is not
//! served: rafka implements part 1 only.
//!
//! Authorization as Kafka: WRITE on the transactional id.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};
use rafka_core::acl::{AclOperation, Resource};
use rafka_proto::error::ErrorCode;

use super::coordinator_call::on_txn_coordinator;
use super::{txn_errors, HandlerError, RequestContext};

/// v2 may answer PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION_MIN: i16 = 2;

pub async fn handle(
    ctx: &RequestContext,
    request: EndTxnRequest,
) -> Result<EndTxnResponse, HandlerError> {
    let id = request.transactional_id.to_string();
    let code = if !ctx.authorize(AclOperation::Write, Resource::TransactionalId(&id)) {
        ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    } else {
        let (producer_id, epoch, commit) = (
            request.producer_id.0,
            request.producer_epoch,
            request.committed,
        );
        let key = id.clone();
        let ended = on_txn_coordinator(ctx, &id, move |shard| async move {
            shard.txns().end_txn(&key, producer_id, epoch, commit).await
        })
        .await;
        match ended {
            Ok(Ok(())) => ErrorCode::NONE,
            Ok(Err(code)) | Err(code) => code,
        }
    };
    let code = txn_errors::for_version(code, ctx.version(), PRODUCER_FENCED_VERSION_MIN);
    Ok(EndTxnResponse::default().with_error_code(code.code()))
}
