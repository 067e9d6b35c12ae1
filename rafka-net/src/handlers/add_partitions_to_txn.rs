//! AddPartitionsToTxn (key 24), v0-v5: partitions join the producer's
//! transaction before it writes to them (so the coordinator knows where
//! to write the markers). v0-v3 carry one transaction, from a client;
//! v4+ batch transactions and may only verify (`verify_only`, KIP-890
//! part 1), which brokers send.
//!
//! Top-down, per transaction: WRITE on the transactional id -> WRITE on
//! each topic, and each partition must exist -> if any partition failed,
//! the others are OPERATION_NOT_ATTEMPTED (all or none, as Kafka) -> the
//! coordinator adds them (one answer for all) or, with `verify_only`,
//! answers per partition whether it is in the open transaction.
//! v4+ without `verify_only` needs CLUSTER_ACTION, as Kafka: only brokers
//! send that form.

use futures_util::future::join_all;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TransactionalId,
};
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::txn::TopicPartition;
use rafka_proto::error::ErrorCode;

use super::coordinator_call::on_txn_coordinator;
use super::{txn_errors, HandlerError, RequestContext};

/// v2 may answer PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION_MIN: i16 = 2;
/// v4 batches transactions (broker to broker).
const BATCHED_VERSION_MIN: i16 = 4;

/// One transaction of the request.
struct Txn<'a> {
    id: &'a TransactionalId,
    producer_id: i64,
    epoch: i16,
    verify_only: bool,
    topics: &'a [AddPartitionsToTxnTopic],
}

pub async fn handle(
    ctx: &RequestContext,
    request: AddPartitionsToTxnRequest,
) -> Result<AddPartitionsToTxnResponse, HandlerError> {
    if ctx.version() < BATCHED_VERSION_MIN {
        let txn = Txn {
            id: &request.v3_and_below_transactional_id,
            producer_id: request.v3_and_below_producer_id.0,
            epoch: request.v3_and_below_producer_epoch,
            verify_only: false,
            topics: &request.v3_and_below_topics,
        };
        let results = add(ctx, &txn).await;
        return Ok(
            AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
        );
    }
    let broker = ctx.authorize(
        AclOperation::ClusterAction,
        rafka_core::acl::Resource::Cluster,
    );
    if !broker && request.transactions.iter().any(|t| !t.verify_only) {
        return Ok(AddPartitionsToTxnResponse::default()
            .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code()));
    }
    let txns: Vec<Txn<'_>> = request
        .transactions
        .iter()
        .map(|t| Txn {
            id: &t.transactional_id,
            producer_id: t.producer_id.0,
            epoch: t.producer_epoch,
            verify_only: t.verify_only,
            topics: &t.topics,
        })
        .collect();
    let results = join_all(txns.iter().map(|txn| add(ctx, txn))).await;
    let results = txns
        .iter()
        .zip(results)
        .map(|(txn, topics)| {
            AddPartitionsToTxnResult::default()
                .with_transactional_id(txn.id.clone())
                .with_topic_results(topics)
        })
        .collect();
    Ok(AddPartitionsToTxnResponse::default().with_results_by_transaction(results))
}

/// The per-partition answers for one transaction, in request order.
async fn add(ctx: &RequestContext, txn: &Txn<'_>) -> Vec<AddPartitionsToTxnTopicResult> {
    let id = txn.id.to_string();
    let partitions: Vec<TopicPartition> = txn
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), *p)))
        .collect();
    let mut codes = vec![ErrorCode::NONE; partitions.len()];
    if !ctx.authorize(AclOperation::Write, Resource::TransactionalId(&id)) {
        codes.fill(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        return results(txn.topics, codes);
    }
    let image = ctx.image();
    for ((topic, partition), code) in partitions.iter().zip(codes.iter_mut()) {
        let exists = image
            .topic(topic)
            .is_some_and(|t| usize::try_from(*partition).is_ok_and(|p| p < t.partitions.len()));
        if !ctx.authorize(AclOperation::Write, Resource::Topic(topic)) {
            *code = ErrorCode::TOPIC_AUTHORIZATION_FAILED;
        } else if !exists {
            *code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION;
        }
    }
    if codes.iter().any(|c| *c != ErrorCode::NONE) {
        for code in codes.iter_mut().filter(|c| **c == ErrorCode::NONE) {
            *code = ErrorCode::OPERATION_NOT_ATTEMPTED;
        }
        return results(txn.topics, codes);
    }
    let (producer_id, epoch, verify_only) = (txn.producer_id, txn.epoch, txn.verify_only);
    let key = id.clone();
    let count = partitions.len();
    let answered = on_txn_coordinator(ctx, &id, move |shard| async move {
        if verify_only {
            shard
                .txns()
                .verify_partitions(&key, producer_id, epoch, &partitions)
        } else {
            let code = match shard
                .txns()
                .add_partitions(&key, producer_id, epoch, partitions)
                .await
            {
                Ok(()) => ErrorCode::NONE,
                Err(code) => code,
            };
            vec![code; count]
        }
    })
    .await;
    let codes = match answered {
        Ok(codes) => codes,
        Err(code) => vec![code; count],
    };
    let codes = codes
        .into_iter()
        .map(|c| txn_errors::for_version(c, ctx.version(), PRODUCER_FENCED_VERSION_MIN))
        .collect();
    results(txn.topics, codes)
}

fn results(
    topics: &[AddPartitionsToTxnTopic],
    codes: Vec<ErrorCode>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut codes = codes.into_iter();
    topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let code = codes.next().unwrap_or(ErrorCode::UNKNOWN_SERVER_ERROR);
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(code.code())
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(partitions)
        })
        .collect()
}
