//! TxnOffsetCommit (key 28), v0-v4: a transactional producer commits a
//! group's offsets inside its transaction (`send_offsets_to_transaction`).
//! The group coordinator writes them to `__consumer_offsets` as part of
//! the transaction; they become the group's committed offsets when the
//! COMMIT marker reaches that partition, and never if it aborts.
//!
//! Top-down: WRITE on the transactional id, READ on the group, READ on
//! each topic -> unknown partitions answered here -> the transaction
//! coordinator confirms the group's `__consumer_offsets` partition is in
//! the open transaction (AddOffsetsToTxn came first: KIP-890 part 1, so
//! no offset commit can dangle outside a transaction) -> the group
//! coordinator writes and answers per partition.
//!
//! Decisions a client can notice: membership (generation, member id) is
//! checked only when the request names it (v3+ from a group-managed
//! consumer), as Kafka; PRODUCER_FENCED is answered as
//! INVALID_PRODUCER_EPOCH, the code this API documents.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::group::{CommitPartition, CommitRequest, GROUP_METADATA_TOPIC};
use rafka_proto::error::ErrorCode;

use super::coordinator_call::on_group_coordinator;
use super::fanout::{Grid, Slot};
use super::offset_commit::{place_answers, split_commit};
use super::{txn_errors, HandlerError, RequestContext};

pub async fn handle(
    ctx: &RequestContext,
    request: TxnOffsetCommitRequest,
) -> Result<TxnOffsetCommitResponse, HandlerError> {
    let mut codes: Grid<ErrorCode> = Grid::new(request.topics.iter().map(|t| t.partitions.len()));
    let id = request.transactional_id.to_string();
    if !ctx.authorize(AclOperation::Write, Resource::TransactionalId(&id)) {
        codes.fill_all(&ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    } else if !ctx.authorize(AclOperation::Read, Resource::Group(&request.group_id)) {
        codes.fill_all(&ErrorCode::GROUP_AUTHORIZATION_FAILED);
    } else {
        let (commit, slots) = split(ctx, &request, &mut codes);
        if !commit.topics.is_empty() {
            let verified = verify(ctx, &request).await;
            match verified {
                ErrorCode::NONE => {
                    let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
                    commit_on_coordinator(ctx, commit, producer_id, epoch, slots, &mut codes).await;
                }
                code => {
                    for slot in slots {
                        codes.set(slot, code);
                    }
                }
            }
        }
    }
    Ok(response(&request, codes))
}

/// Whether the group's `__consumer_offsets` partition is in the producer's
/// open transaction, asked of its transaction coordinator wherever it is
/// ([`rafka_shard::txn::verify_in_transaction`]). While that cannot
/// answer, the client retries here (COORDINATOR_LOAD_IN_PROGRESS: this
/// group coordinator is the right one).
async fn verify(ctx: &RequestContext, request: &TxnOffsetCommitRequest) -> ErrorCode {
    let id = request.transactional_id.to_string();
    let shard = ctx.shard();
    let partition = shard.offsets_topic().partition_for(&request.group_id);
    let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
    let verified = rafka_shard::txn::verify_in_transaction(
        shard,
        &id,
        producer_id,
        epoch,
        GROUP_METADATA_TOPIC,
        partition,
    )
    .await;
    let code = verified.unwrap_or(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
    txn_errors::for_version(code, ctx.version(), i16::MAX)
}

/// The commit of `request`'s partitions the coordinator may see, and
/// where each sits in the request.
fn split(
    ctx: &RequestContext,
    request: &TxnOffsetCommitRequest,
    codes: &mut Grid<ErrorCode>,
) -> (CommitRequest, Vec<Slot>) {
    let commit = CommitRequest {
        group_id: request.group_id.to_string(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        topics: Vec::new(),
    };
    let requested = request.topics.iter().map(|topic| {
        let partitions = topic.partitions.iter().map(|p| CommitPartition {
            partition: p.partition_index,
            offset: p.committed_offset,
            leader_epoch: p.committed_leader_epoch,
            metadata: p.committed_metadata.as_ref().map(|s| s.to_string()),
        });
        (topic.name.to_string(), partitions.collect())
    });
    split_commit(ctx, commit, requested, codes)
}

async fn commit_on_coordinator(
    ctx: &RequestContext,
    commit: CommitRequest,
    producer_id: i64,
    epoch: i16,
    slots: Vec<Slot>,
    codes: &mut Grid<ErrorCode>,
) {
    let group_id = commit.group_id.clone();
    let committed = on_group_coordinator(ctx, &group_id, move |shard| async move {
        shard
            .groups()
            .commit_txn_offsets(commit, producer_id, epoch)
            .await
    })
    .await;
    let version = ctx.version();
    place_answers(committed, slots, codes, |code| {
        txn_errors::for_version(code, version, i16::MAX)
    });
}

fn response(request: &TxnOffsetCommitRequest, codes: Grid<ErrorCode>) -> TxnOffsetCommitResponse {
    let topics = request
        .topics
        .iter()
        .zip(codes.into_rows())
        .map(|(topic, codes)| {
            let partitions = topic
                .partitions
                .iter()
                .zip(codes)
                .map(|(p, code)| {
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code.code())
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
