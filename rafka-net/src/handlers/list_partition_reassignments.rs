//! ListPartitionReassignments (key 46), v0: the partition moves in
//! progress. A single node never moves a partition (see
//! `alter_partition_reassignments`), so the list is always empty.
//!
//! Answers, as Kafka's KRaft controller (`ReplicationControlManager
//! .listPartitionReassignments`), which lists only partitions being
//! moved:
//! - DESCRIBE on the cluster is required: CLUSTER_AUTHORIZATION_FAILED at
//!   the top, with Kafka's message.
//! - Otherwise NONE with no topics, whether `topics` is null (every
//!   partition) or names topics; unknown topics and partitions are just
//!   absent, as Kafka leaves them out. `timeout_ms` has nothing to bound.

use kafka_protocol::messages::{
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_proto::error::ErrorCode;

use super::{HandlerError, RequestContext};

pub async fn handle(
    ctx: &RequestContext,
    request: ListPartitionReassignmentsRequest,
) -> Result<ListPartitionReassignmentsResponse, HandlerError> {
    // Nothing is being moved, whatever the request names.
    let _ = request;
    // Kafka's message is null unless the request failed.
    let response = ListPartitionReassignmentsResponse::default().with_error_message(None);
    if !ctx.authorize(AclOperation::Describe, Resource::Cluster) {
        let code = ErrorCode::CLUSTER_AUTHORIZATION_FAILED;
        return Ok(response
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(code.message()))));
    }
    Ok(response.with_error_code(ErrorCode::NONE.code()))
}
