//! DescribeCluster (key 60), v0-v2: the cluster id, this node as the only
//! broker (never fenced) and as the controller id, and the cluster's
//! authorized operations when asked (all of them: there is no authorizer).
//!
//! As in Kafka, a broker serves only the broker endpoint type (1): asking
//! it for controllers (2) gets MISMATCHED_ENDPOINT_TYPE, any other type
//! UNSUPPORTED_ENDPOINT_TYPE, both INVALID_REQUEST in v0.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rafka_proto::api::decode_request;

use super::metadata::{CLUSTER_AUTHORIZED_OPERATIONS, OPERATIONS_NOT_REQUESTED};
use super::{reply, HandlerContext, HandlerError, NodeInfo};
use crate::service::{Request, Response};

/// Kafka's `EndpointType` codes.
const ENDPOINT_TYPE_BROKER: i8 = 1;
const ENDPOINT_TYPE_CONTROLLER: i8 = 2;

pub async fn handle(ctx: &HandlerContext, request: Request) -> Result<Response, HandlerError> {
    let version = request.header.api_version;
    let mut body = request.body;
    let decoded: DescribeClusterRequest = decode_request(&mut body, version)?;
    let response = match endpoint_error(decoded.endpoint_type, version) {
        Some(error) => error,
        None => describe(&ctx.node, decoded.include_cluster_authorized_operations),
    };
    reply(
        &request.header,
        request.response_header_version,
        &response,
        version,
    )
}

fn describe(node: &NodeInfo, include_operations: bool) -> DescribeClusterResponse {
    let broker = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(node.node_id))
        .with_host(StrBytes::from_string(node.host.clone()))
        .with_port(i32::from(node.port))
        .with_rack(None)
        .with_is_fenced(false);
    let operations = if include_operations {
        CLUSTER_AUTHORIZED_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    DescribeClusterResponse::default()
        .with_error_code(0)
        .with_error_message(None)
        .with_endpoint_type(ENDPOINT_TYPE_BROKER)
        .with_cluster_id(StrBytes::from_string(node.cluster_id.clone()))
        .with_controller_id(BrokerId(node.node_id))
        .with_brokers(vec![broker])
        .with_cluster_authorized_operations(operations)
}

/// The answer to an endpoint type a broker does not serve. v0 requests
/// carry no type (it reads as broker), so only v1+ can get here.
fn endpoint_error(endpoint_type: i8, version: i16) -> Option<DescribeClusterResponse> {
    let code = match endpoint_type {
        ENDPOINT_TYPE_BROKER => return None,
        _ if version == 0 => ResponseError::InvalidRequest.code(),
        ENDPOINT_TYPE_CONTROLLER => ResponseError::MismatchedEndpointType.code(),
        _ => ResponseError::UnsupportedEndpointType.code(),
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
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message))),
    )
}
