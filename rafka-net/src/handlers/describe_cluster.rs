//! DescribeCluster (key 60), v0-v2: the cluster id, this node as the only
//! broker (never fenced) and as the controller id, and the cluster's
//! authorized operations when asked (from the request context's authorizer).
//!
//! As in Kafka, a broker serves only the broker endpoint type (1): asking
//! it for controllers (2) gets MISMATCHED_ENDPOINT_TYPE, any other type
//! UNSUPPORTED_ENDPOINT_TYPE, both INVALID_REQUEST in v0.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::Resource;
use rafka_proto::error::ErrorCode;

use super::cluster_view::{self, BrokerView};
use super::context::AUTHORIZED_OPERATIONS_OMITTED;
use super::{HandlerError, NodeInfo, RequestContext};

/// Kafka's `EndpointType` codes.
const ENDPOINT_TYPE_BROKER: i8 = 1;
const ENDPOINT_TYPE_CONTROLLER: i8 = 2;

pub async fn handle(
    ctx: &RequestContext,
    request: DescribeClusterRequest,
) -> Result<DescribeClusterResponse, HandlerError> {
    if let Some(error) = endpoint_error(request.endpoint_type, ctx.version()) {
        return Ok(error);
    }
    let operations = if request.include_cluster_authorized_operations {
        ctx.authorized_operations(Resource::Cluster)
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    let brokers = cluster_view::brokers(ctx, &ctx.image());
    Ok(describe(
        ctx.node(),
        brokers,
        cluster_view::controller_id(ctx),
        operations,
    ))
}

fn describe(
    node: &NodeInfo,
    brokers: Vec<BrokerView>,
    controller_id: i32,
    operations: i32,
) -> DescribeClusterResponse {
    let brokers = brokers
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.node_id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.map(StrBytes::from_string))
                .with_is_fenced(false)
        })
        .collect();
    DescribeClusterResponse::default()
        .with_error_code(ErrorCode::NONE.code())
        .with_error_message(None)
        .with_endpoint_type(ENDPOINT_TYPE_BROKER)
        .with_cluster_id(StrBytes::from_string(node.cluster_id.clone()))
        .with_controller_id(BrokerId(controller_id))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(operations)
}

/// The answer to an endpoint type a broker does not serve. v0 requests
/// carry no type (it reads as broker), so only v1+ can get here.
fn endpoint_error(endpoint_type: i8, version: i16) -> Option<DescribeClusterResponse> {
    let code = match endpoint_type {
        ENDPOINT_TYPE_BROKER => return None,
        _ if version == 0 => ErrorCode::INVALID_REQUEST,
        ENDPOINT_TYPE_CONTROLLER => ErrorCode::MISMATCHED_ENDPOINT_TYPE,
        _ => ErrorCode::UNSUPPORTED_ENDPOINT_TYPE,
    };
    let message = match endpoint_type {
        ENDPOINT_TYPE_CONTROLLER => {
            "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of \
             type CONTROLLER"
                .to_string()
        }
        other => format!("Unsupported endpoint type {other}"),
    };
    Some(
        DescribeClusterResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(message))),
    )
}
