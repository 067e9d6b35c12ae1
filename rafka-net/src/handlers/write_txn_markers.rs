//! WriteTxnMarkers (key 27), v1: a transaction coordinator asks the
//! partitions' leader to write COMMIT/ABORT markers. rafka's own
//! coordinator writes the markers of partitions led on its node over the
//! shard mesh (rafka-shard's `txn`), through the same function this
//! handler calls, and sends this API to the leaders on other brokers of
//! a cluster. Each marker is answered once it is durable.
//!
//! Authorization as Kafka: CLUSTER_ACTION on the cluster (brokers only),
//! else every partition answers CLUSTER_AUTHORIZATION_FAILED.

use futures_util::future::join_all;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use rafka_core::acl::{AclOperation, Resource};
use rafka_proto::error::ErrorCode;
use rafka_shard::txn::{write_marker_on_owner, TxnMarker};

use super::{HandlerError, RequestContext};

pub async fn handle(
    ctx: &RequestContext,
    request: WriteTxnMarkersRequest,
) -> Result<WriteTxnMarkersResponse, HandlerError> {
    let allowed = ctx.authorize(AclOperation::ClusterAction, Resource::Cluster);
    let mut markers = Vec::with_capacity(request.markers.len());
    for marker in &request.markers {
        let written = TxnMarker {
            producer_id: marker.producer_id.0,
            producer_epoch: marker.producer_epoch,
            coordinator_epoch: marker.coordinator_epoch,
            commit: marker.transaction_result,
        };
        let mut topics = Vec::with_capacity(marker.topics.len());
        for topic in &marker.topics {
            let writes = topic.partition_indexes.iter().map(|partition| async move {
                if !allowed {
                    return ErrorCode::CLUSTER_AUTHORIZATION_FAILED;
                }
                match write_marker_on_owner(ctx.shard(), &topic.name, *partition, written).await {
                    Ok(_) => ErrorCode::NONE,
                    Err(code) => code,
                }
            });
            let codes = join_all(writes).await;
            let partitions = topic
                .partition_indexes
                .iter()
                .zip(codes)
                .map(|(partition, code)| {
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(*partition)
                        .with_error_code(code.code())
                })
                .collect();
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions),
            );
        }
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics),
        );
    }
    Ok(WriteTxnMarkersResponse::default().with_markers(markers))
}

/// The one response without a throttle time (brokers are not throttled).
impl super::Reply for WriteTxnMarkersResponse {
    fn set_throttle_time_ms(&mut self, _throttle_time_ms: i32) {}

    fn into_response(self, ctx: &RequestContext) -> Result<crate::service::Response, HandlerError> {
        super::reply::whole_message(ctx, &self)
    }
}
