//! FindCoordinator (key 10), v0-v6: the group (0) and transaction (1)
//! coordinator of every key is this node, the only broker. v0-v3 ask for
//! one key; v4+ batch them in `coordinator_keys`, one answer each.
//!
//! Coordinator state will live on the shard owning the key's partition of
//! `__consumer_offsets` / `__transaction_state`, but clients only see the
//! node, so the answer does not depend on which shard serves the request.
//! Any other key type (share groups, v6) gets INVALID_REQUEST with no
//! node, as Kafka answers a type it does not know.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rafka_proto::api::decode_request;

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
    let answer = coordinator(&ctx.node, decoded.key_type);
    let response = if version >= BATCHED_VERSION_MIN {
        let coordinators = decoded
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(answer.node_id))
                    .with_host(answer.host.clone())
                    .with_port(answer.port)
                    .with_error_code(answer.error_code)
                    .with_error_message(answer.error_message.clone())
            })
            .collect();
        FindCoordinatorResponse::default()
            .with_error_message(None)
            .with_coordinators(coordinators)
    } else {
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

fn coordinator(node: &NodeInfo, key_type: i8) -> Answer {
    match key_type {
        KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION => Answer {
            error_code: 0,
            error_message: None,
            node_id: node.node_id,
            host: StrBytes::from_string(node.host.clone()),
            port: i32::from(node.port),
        },
        // Kafka's `Node.noNode()`.
        other => Answer {
            error_code: ResponseError::InvalidRequest.code(),
            error_message: Some(StrBytes::from_string(format!(
                "Unknown coordinator type {other}"
            ))),
            node_id: -1,
            host: StrBytes::new(),
            port: -1,
        },
    }
}
