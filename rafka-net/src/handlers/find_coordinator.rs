//! FindCoordinator (key 10), v0-v6: where the coordinator of each key is.
//! v0-v3 ask for one key; v4+ batch them in `coordinator_keys`, one answer
//! each.
//!
//! - Groups (key type 0): the first lookup creates `__consumer_offsets`
//!   (offsets.topic.num.partitions partitions, compacted) as Kafka does.
//!   Then this node, the only broker, once some shard owns
//!   the key's `__consumer_offsets` partition; until then
//!   COORDINATOR_NOT_AVAILABLE, which clients retry. Which shard owns the
//!   group does not show: every shard routes group requests to the owner.
//! - Transactions (key type 1): the same for `__transaction_state`
//!   (transaction.state.log.num.partitions partitions, compacted).
//! - Any other key type (share groups, v6) gets INVALID_REQUEST with no
//!   node, as Kafka answers a type it does not know.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_proto::error::ErrorCode;

use rafka_shard::coordinator::InternalTopic;

use super::metadata::AUTO_CREATE_WAIT;
use super::{HandlerError, RequestContext};

/// First version batching keys in `coordinator_keys`.
const BATCHED_VERSION_MIN: i16 = 4;

/// Kafka's `CoordinatorType` codes this broker serves.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Where a key's coordinator is, or why there is none.
struct Answer {
    error_code: ErrorCode,
    error_message: Option<StrBytes>,
    node_id: i32,
    host: StrBytes,
    port: i32,
}

pub async fn handle(
    ctx: &RequestContext,
    request: FindCoordinatorRequest,
) -> Result<FindCoordinatorResponse, HandlerError> {
    match request.key_type {
        KEY_TYPE_GROUP => ensure_internal_topic(ctx, ctx.shard().offsets_topic()).await,
        KEY_TYPE_TRANSACTION => ensure_internal_topic(ctx, ctx.shard().transaction_topic()).await,
        _ => {}
    }
    Ok(if ctx.version() >= BATCHED_VERSION_MIN {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let answer = coordinator(ctx, request.key_type, &key);
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(answer.node_id))
                    .with_host(answer.host)
                    .with_port(answer.port)
                    .with_error_code(answer.error_code.code())
                    .with_error_message(answer.error_message)
            })
            .collect();
        FindCoordinatorResponse::default()
            .with_error_message(None)
            .with_coordinators(coordinators)
    } else {
        let answer = coordinator(ctx, request.key_type, &request.key);
        FindCoordinatorResponse::default()
            .with_error_code(answer.error_code.code())
            .with_error_message(answer.error_message)
            .with_node_id(BrokerId(answer.node_id))
            .with_host(answer.host)
            .with_port(answer.port)
    })
}

fn coordinator(ctx: &RequestContext, key_type: i8, key: &str) -> Answer {
    match key_type {
        KEY_TYPE_GROUP if !ctx.authorize(AclOperation::Describe, Resource::Group(key)) => {
            no_node(ErrorCode::GROUP_AUTHORIZATION_FAILED, None)
        }
        KEY_TYPE_GROUP => located(ctx, ctx.shard().offsets_topic(), key),
        KEY_TYPE_TRANSACTION
            if !ctx.authorize(AclOperation::Describe, Resource::TransactionalId(key)) =>
        {
            no_node(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED, None)
        }
        KEY_TYPE_TRANSACTION => located(ctx, ctx.shard().transaction_topic(), key),
        other => no_node(
            ErrorCode::INVALID_REQUEST,
            Some(format!("Unknown coordinator type {other}")),
        ),
    }
}

/// The broker leading `key`'s internal partition (in a cluster), or this
/// node once one of its shards owns that partition.
fn located(ctx: &RequestContext, topic: InternalTopic, key: &str) -> Answer {
    if let Some(leader) = ctx.shard().coordinator_leader(topic, key) {
        if leader != ctx.node().node_id {
            // A fenced broker is not listed: its groups wait for it.
            let image = ctx.image();
            let brokers = super::cluster_view::brokers(ctx, &image);
            return match brokers.into_iter().find(|b| b.node_id == leader) {
                Some(b) => Answer {
                    error_code: ErrorCode::NONE,
                    error_message: None,
                    node_id: b.node_id,
                    host: StrBytes::from_string(b.host),
                    port: i32::from(b.port),
                },
                None => no_node(
                    ErrorCode::COORDINATOR_NOT_AVAILABLE,
                    Some(ErrorCode::COORDINATOR_NOT_AVAILABLE.message()),
                ),
            };
        }
    }
    match ctx.shard().coordinator_shard(topic, key) {
        Ok(_) => this_node(ctx),
        Err(code) => no_node(code, Some(code.message())),
    }
}

/// Creates `__consumer_offsets` / `__transaction_state` on the first
/// lookup of a group / transactional id, as Kafka does. A failure or
/// timeout only logs: the keys then answer COORDINATOR_NOT_AVAILABLE and
/// the client asks again.
async fn ensure_internal_topic(ctx: &RequestContext, topic: InternalTopic) {
    let created = ctx
        .controller()
        .ensure_internal_topic(topic, Some(AUTO_CREATE_WAIT))
        .await;
    match created {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "creating {}", topic.name),
        Err(error) => tracing::warn!(%error, "creating {}", topic.name),
    }
}

/// This broker, as the client's listener advertises it.
fn this_node(ctx: &RequestContext) -> Answer {
    let (host, port) = ctx.advertised();
    Answer {
        error_code: ErrorCode::NONE,
        error_message: None,
        node_id: ctx.node().node_id,
        host: StrBytes::from_string(host.to_string()),
        port: i32::from(port),
    }
}

/// Kafka's `Node.noNode()` with the reason.
fn no_node(error_code: ErrorCode, message: Option<String>) -> Answer {
    Answer {
        error_code,
        error_message: Some(StrBytes::from_string(
            message.unwrap_or_else(|| error_code.message()),
        )),
        node_id: -1,
        host: StrBytes::new(),
        port: -1,
    }
}
