//! DescribeQuorum (key 55), v0-v2 (KIP-595, KIP-836, KIP-853): the
//! metadata quorum as Kafka's `kafka-metadata-quorum describe` shows it.
//!
//! Answers, as Kafka's KafkaRaftClient does for `__cluster_metadata-0`:
//! - Principal without DESCRIBE on the cluster: CLUSTER_AUTHORIZATION_FAILED
//!   at the top level.
//! - Any other topic or partition than `__cluster_metadata-0`:
//!   UNKNOWN_TOPIC_OR_PARTITION on each partition asked.
//! - The leader id and epoch (the raft term), the high watermark (the
//!   commit index), every voter with its log end offset and when it was
//!   last heard from (milliseconds since the epoch). No observers (every
//!   node is a voter).
//! - Kafka's brokers forward the request to the active controller; here
//!   the node answers from its own quorum state, so a follower knows the
//!   log end only of itself (-1 for the other voters). The leader knows
//!   every voter's.
//! - A single node (no voters configured) is a quorum of one: itself,
//!   epoch 1, its metadata log's end.
//! - v2 lists each voter's endpoints (`nodes`) from the registered brokers.

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_proto::error::ErrorCode;
use rafka_shard::quorum::QuorumView;

use super::{HandlerError, RequestContext};

/// The metadata log's topic partition, as Kafka names it.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// First version with error messages and `nodes`.
const NODES_VERSION_MIN: i16 = 2;

pub async fn handle(
    ctx: &RequestContext,
    request: DescribeQuorumRequest,
) -> Result<DescribeQuorumResponse, HandlerError> {
    if !ctx.authorize(AclOperation::Describe, Resource::Cluster) {
        return Ok(DescribeQuorumResponse::default()
            .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code()));
    }
    let view = match ctx.controller().quorum_view().await {
        Ok(view) => view,
        Err(error) => {
            return Ok(DescribeQuorumResponse::default()
                .with_error_code(error.error_code().code())
                .with_error_message(Some(StrBytes::from_string(error.to_string()))));
        }
    };
    let now_ms = now_ms();
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    if topic.topic_name.as_str() == METADATA_TOPIC && p.partition_index == 0 {
                        partition(&view, now_ms)
                    } else {
                        PartitionData::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code())
                    }
                })
                .collect();
            TopicData::default()
                .with_topic_name(topic.topic_name.clone())
                .with_partitions(partitions)
        })
        .collect();
    let mut response = DescribeQuorumResponse::default()
        .with_error_code(ErrorCode::NONE.code())
        .with_topics(topics);
    if ctx.version() >= NODES_VERSION_MIN {
        response.nodes = nodes(ctx, &view);
    }
    Ok(response)
}

fn partition(view: &QuorumView, now_ms: i64) -> PartitionData {
    let voters = view
        .voters
        .iter()
        .map(|voter| {
            let heard = voter
                .last_heard_ms_ago
                .map_or(-1, |ago| now_ms - ago as i64);
            let caught_up = if voter.log_end_offset >= view.high_watermark {
                heard
            } else {
                -1
            };
            ReplicaState::default()
                .with_replica_id(BrokerId(voter.node_id))
                .with_log_end_offset(voter.log_end_offset)
                .with_last_fetch_timestamp(heard)
                .with_last_caught_up_timestamp(caught_up)
        })
        .collect();
    PartitionData::default()
        .with_partition_index(0)
        .with_error_code(ErrorCode::NONE.code())
        .with_leader_id(BrokerId(view.leader_id))
        .with_leader_epoch(view.leader_epoch)
        .with_high_watermark(view.high_watermark)
        .with_current_voters(voters)
        .with_observers(Vec::new())
}

/// Each voter's registered listeners (v2's `nodes`).
fn nodes(ctx: &RequestContext, view: &QuorumView) -> Vec<Node> {
    let image = ctx.image();
    view.voters
        .iter()
        .filter_map(|voter| image.broker(voter.node_id))
        .map(|broker| {
            let listeners = broker
                .endpoints
                .iter()
                .map(|e| {
                    Listener::default()
                        .with_name(StrBytes::from_string(e.listener.clone()))
                        .with_host(StrBytes::from_string(e.host.clone()))
                        .with_port(e.port)
                })
                .collect();
            Node::default()
                .with_node_id(BrokerId(broker.node_id))
                .with_listeners(listeners)
        })
        .collect()
}

/// DescribeQuorum has no throttle time field (Kafka throttles it by
/// muting the connection alone).
impl super::Reply for DescribeQuorumResponse {
    fn set_throttle_time_ms(&mut self, _throttle_time_ms: i32) {}

    fn into_response(self, ctx: &RequestContext) -> Result<crate::service::Response, HandlerError> {
        super::reply::whole_message(ctx, &self)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
