//! DescribeTransactions (key 65), v0: the state of each transactional id,
//! from its coordinator: state name, timeout, start time, producer id
//! and epoch, and the partitions of the open transaction.
//!
//! Authorization as Kafka: DESCRIBE on each transactional id
//! (TRANSACTIONAL_ID_AUTHORIZATION_FAILED otherwise); partitions of topics
//! the caller may not DESCRIBE are left out.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_proto::error::ErrorCode;

use super::coordinator_call::on_txn_coordinator;
use super::{HandlerError, RequestContext};

pub async fn handle(
    ctx: &RequestContext,
    request: DescribeTransactionsRequest,
) -> Result<DescribeTransactionsResponse, HandlerError> {
    let mut states = Vec::with_capacity(request.transactional_ids.len());
    for id in request.transactional_ids {
        let key = id.to_string();
        let state = TransactionState::default()
            .with_transactional_id(id.clone())
            .with_transaction_state(StrBytes::from_static_str(""))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
            .with_transaction_start_time_ms(-1);
        if !ctx.authorize(AclOperation::Describe, Resource::TransactionalId(&key)) {
            states.push(
                state.with_error_code(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code()),
            );
            continue;
        }
        let lookup = key.clone();
        let described = on_txn_coordinator(ctx, &key, move |shard| async move {
            shard.txns().describe(&lookup)
        })
        .await;
        let described = match described {
            Ok(Ok(described)) => described,
            Ok(Err(code)) | Err(code) => {
                states.push(state.with_error_code(code.code()));
                continue;
            }
        };
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in &described.partitions {
            if ctx.authorize(AclOperation::Describe, Resource::Topic(topic)) {
                by_topic.entry(topic).or_default().push(*partition);
            }
        }
        let topics = by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                TopicData::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(partitions)
            })
            .collect();
        states.push(
            state
                .with_error_code(ErrorCode::NONE.code())
                .with_transaction_state(StrBytes::from_static_str(described.state.name()))
                .with_transaction_timeout_ms(described.timeout_ms)
                .with_transaction_start_time_ms(described.start_ms)
                .with_producer_id(ProducerId(described.producer_id))
                .with_producer_epoch(described.producer_epoch)
                .with_topics(topics),
        );
    }
    Ok(DescribeTransactionsResponse::default().with_transaction_states(states))
}
