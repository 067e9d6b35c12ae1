//! FindCoordinator (key 10), v0-v6: where the coordinator of each key is.
//! v0-v3 ask for one key; v4+ batch them in `coordinator_keys`, one answer
//! each.
//!
//! - Groups (key type 0): the first lookup creates `__consumer_offsets`
//!   (offsets.topic.num.partitions partitions, compacted) as Kafka does.
//!   Then this node, the only broker, once some shard owns
//!   the key's `__consumer_offsets` partition; until then the error
//!   `group_coordinator_shard` gives (COORDINATOR_NOT_AVAILABLE while the
//!   topic does not exist), which clients retry. Which shard owns the
//!   group does not show: every shard routes group requests to the owner.
//! - Transactions (key type 1): this node. InitProducerId answers
//!   transactional ids until the transaction coordinator exists.
//! - Any other key type (share groups, v6) gets INVALID_REQUEST with no
//!   node, as Kafka answers a type it does not know.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rafka_proto::api::decode_request;

use rafka_shard::group::GROUP_METADATA_TOPIC;

use super::controller_call::call_controller;
use super::metadata::AUTO_CREATE_WAIT;
use super::{reply, HandlerContext, HandlerError, NodeInfo};
use crate::service::{Request, Response};

/// First version batching keys in `coordinator_keys`.
const BATCHED_VERSION_MIN: i16 = 4;

/// Kafka's `CoordinatorType` codes this broker serves.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Where a key's coordinator is, or why there is none.
struct Answer {
    error_code: i16,
    error_message: Option<StrBytes>,
    node_id: i32,
    host: StrBytes,
    port: i32,
}

pub async fn handle(ctx: &HandlerContext, request: Request) -> Result<Response, HandlerError> {
    let version = request.header.api_version;
    let mut body = request.body;
    let decoded: FindCoordinatorRequest = decode_request(&mut body, version)?;
    if decoded.key_type == KEY_TYPE_GROUP {
        ensure_offsets_topic(ctx).await;
    }
    let response = if version >= BATCHED_VERSION_MIN {
        let coordinators = decoded
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let answer = coordinator(ctx, decoded.key_type, &key);
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(answer.node_id))
                    .with_host(answer.host)
                    .with_port(answer.port)
                    .with_error_code(answer.error_code)
                    .with_error_message(answer.error_message)
            })
            .collect();
        FindCoordinatorResponse::default()
            .with_error_message(None)
            .with_coordinators(coordinators)
    } else {
        let answer = coordinator(ctx, decoded.key_type, &decoded.key);
        FindCoordinatorResponse::default()
            .with_error_code(answer.error_code)
            .with_error_message(answer.error_message)
            .with_node_id(BrokerId(answer.node_id))
            .with_host(answer.host)
            .with_port(answer.port)
    };
    reply(
        &request.header,
        request.response_header_version,
        &response,
        version,
    )
}

fn coordinator(ctx: &HandlerContext, key_type: i8, key: &str) -> Answer {
    match key_type {
        KEY_TYPE_GROUP => match ctx.shard.group_coordinator_shard(key) {
            Ok(_) => this_node(&ctx.node),
            Err(code) => no_node(code, error_message(code)),
        },
        KEY_TYPE_TRANSACTION => this_node(&ctx.node),
        other => no_node(
            ResponseError::InvalidRequest.code(),
            format!("Unknown coordinator type {other}"),
        ),
    }
}

/// Creates `__consumer_offsets` on the first group lookup, as Kafka does.
/// A failure or timeout only logs: the keys then answer
/// COORDINATOR_NOT_AVAILABLE and the client asks again.
async fn ensure_offsets_topic(ctx: &HandlerContext) {
    if ctx.shard.image().topic(GROUP_METADATA_TOPIC).is_some() {
        return;
    }
    let created = call_controller(&ctx.shard, Some(AUTO_CREATE_WAIT), |shard| async move {
        let controller = shard.controller.as_ref()?;
        Some(
            controller
                .ensure_offsets_topic(&shard)
                .await
                .map_err(|e| e.to_string()),
        )
    })
    .await;
    match created {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "creating {GROUP_METADATA_TOPIC}"),
        Err(error) => tracing::warn!(%error, "creating {GROUP_METADATA_TOPIC}"),
    }
}

fn this_node(node: &NodeInfo) -> Answer {
    Answer {
        error_code: 0,
        error_message: None,
        node_id: node.node_id,
        host: StrBytes::from_string(node.host.clone()),
        port: i32::from(node.port),
    }
}

/// Kafka's `Node.noNode()` with the reason.
fn no_node(error_code: i16, message: String) -> Answer {
    Answer {
        error_code,
        error_message: Some(StrBytes::from_string(message)),
        node_id: -1,
        host: StrBytes::new(),
        port: -1,
    }
}

/// Kafka's text for an error code (`Errors.message()`), which clients log.
fn error_message(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(error) => error.to_string(),
        None => format!("error code {code}"),
    }
}
