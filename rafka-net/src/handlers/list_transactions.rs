//! ListTransactions (key 66), v0-v2: the transactional ids of every
//! shard's coordinator, with their producer id and state, filtered by
//! state names, producer ids, (v1) minimum running time and (v2) a regular
//! expression the id must match in full.
//!
//! Decisions a client can notice: a state filter Kafka does not know is
//! returned in `unknown_state_filters` and matches nothing, as Kafka; ids
//! the caller may not DESCRIBE are left out; a bad expression is
//! INVALID_REGULAR_EXPRESSION.

use std::collections::BTreeSet;

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::txn::{ListFilter, TxnState};
use rafka_proto::error::ErrorCode;

use super::{HandlerError, RequestContext};

pub async fn handle(
    ctx: &RequestContext,
    request: ListTransactionsRequest,
) -> Result<ListTransactionsResponse, HandlerError> {
    let mut states = BTreeSet::new();
    let mut unknown = Vec::new();
    for name in &request.state_filters {
        match TxnState::from_name(name) {
            Some(state) => {
                states.insert(state);
            }
            None => unknown.push(name.clone()),
        }
    }
    let response = ListTransactionsResponse::default().with_unknown_state_filters(unknown.clone());
    if !unknown.is_empty() && states.is_empty() {
        // Every filter is unknown: nothing can match.
        return Ok(response);
    }
    let filter = ListFilter {
        states,
        producer_ids: request.producer_id_filters.iter().map(|p| p.0).collect(),
        min_duration_ms: request.duration_filter,
        id_pattern: request
            .transactional_id_pattern
            .as_ref()
            .map(|p| p.to_string()),
    };
    let listed = ctx
        .shard()
        .router
        .invoke_on_all(move |shard| async move { shard.txns().list(&filter) })
        .await;
    let mut found = Vec::new();
    for shard in listed {
        match shard {
            Ok(Ok(listings)) => found.extend(listings),
            Ok(Err(code)) => return Ok(response.with_error_code(code.code())),
            Err(_) => {
                return Ok(response.with_error_code(ErrorCode::COORDINATOR_NOT_AVAILABLE.code()))
            }
        }
    }
    found.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    let transactions = found
        .into_iter()
        .filter(|t| {
            ctx.authorize(
                AclOperation::Describe,
                Resource::TransactionalId(&t.transactional_id),
            )
        })
        .map(|t| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(t.transactional_id)))
                .with_producer_id(ProducerId(t.producer_id))
                .with_transaction_state(StrBytes::from_static_str(t.state.name()))
        })
        .collect();
    Ok(response.with_transaction_states(transactions))
}
