//! AddOffsetsToTxn (key 25), v0-v4: the producer will commit a group's
//! offsets in its transaction (TxnOffsetCommit follows), so the group's
//! `__consumer_offsets` partition joins the transaction and gets its
//! marker.
//!
//! Authorization as Kafka: WRITE on the transactional id, READ on the
//! group.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::group::GROUP_METADATA_TOPIC;
use rafka_proto::error::ErrorCode;

use super::coordinator_call::on_txn_coordinator;
use super::{txn_errors, HandlerError, RequestContext};

/// v2 may answer PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION_MIN: i16 = 2;

pub async fn handle(
    ctx: &RequestContext,
    request: AddOffsetsToTxnRequest,
) -> Result<AddOffsetsToTxnResponse, HandlerError> {
    let id = request.transactional_id.to_string();
    let group = request.group_id.to_string();
    let code = if !ctx.authorize(AclOperation::Write, Resource::TransactionalId(&id)) {
        ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    } else if !ctx.authorize(AclOperation::Read, Resource::Group(&group)) {
        ErrorCode::GROUP_AUTHORIZATION_FAILED
    } else {
        let offsets_partition = ctx.shard().offsets_topic().partition_for(&group);
        let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
        let key = id.clone();
        let added = on_txn_coordinator(ctx, &id, move |shard| async move {
            let partitions = vec![(GROUP_METADATA_TOPIC.to_string(), offsets_partition)];
            shard
                .txns()
                .add_partitions(&key, producer_id, epoch, partitions)
                .await
        })
        .await;
        match added {
            Ok(Ok(())) => ErrorCode::NONE,
            Ok(Err(code)) | Err(code) => code,
        }
    };
    let code = txn_errors::for_version(code, ctx.version(), PRODUCER_FENCED_VERSION_MIN);
    Ok(AddOffsetsToTxnResponse::default().with_error_code(code.code()))
}
