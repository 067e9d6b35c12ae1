//! [`Reply`]: what a handler answers, as the driver stamps and encodes it.
//!
//! Every kafka-protocol response of a served API is a reply (encoded whole
//! with its response header); `Option<R>` is a reply that may be nothing
//! (Produce acks=0); [`FetchReply`] keeps its records as file regions for
//! zero-copy sending.

use kafka_protocol::messages::*;
use rafka_proto::api::encode_response;

use super::{HandlerError, RequestContext};
use crate::fetch_encode::{encode_fetch_response, PartitionRecords};
use crate::service::Response;

/// A handler's answer.
pub trait Reply {
    /// Every response carries the request's throttle time (versions
    /// without the field leave it out when encoding).
    fn set_throttle_time_ms(&mut self, throttle_time_ms: i32);
    /// The response for the connection to write.
    fn into_response(self, ctx: &RequestContext) -> Result<Response, HandlerError>;
}

macro_rules! replies {
    ($($response:ty,)*) => {$(
        impl Reply for $response {
            fn set_throttle_time_ms(&mut self, throttle_time_ms: i32) {
                self.throttle_time_ms = throttle_time_ms;
            }

            fn into_response(self, ctx: &RequestContext) -> Result<Response, HandlerError> {
                let bytes = encode_response(
                    ctx.correlation_id(),
                    ctx.response_header_version(),
                    &self,
                    ctx.version(),
                )?;
                Ok(Response::Reply(bytes))
            }
        }
    )*};
}

replies! {
    ApiVersionsResponse,
    CreateTopicsResponse,
    DeleteGroupsResponse,
    DeleteTopicsResponse,
    DescribeClusterResponse,
    DescribeGroupsResponse,
    FindCoordinatorResponse,
    HeartbeatResponse,
    InitProducerIdResponse,
    JoinGroupResponse,
    LeaveGroupResponse,
    ListGroupsResponse,
    ListOffsetsResponse,
    MetadataResponse,
    OffsetCommitResponse,
    OffsetDeleteResponse,
    OffsetFetchResponse,
    ProduceResponse,
    SyncGroupResponse,
}

/// `None`: no response at all (Produce with acks=0).
impl<R: Reply> Reply for Option<R> {
    fn set_throttle_time_ms(&mut self, throttle_time_ms: i32) {
        if let Some(reply) = self {
            reply.set_throttle_time_ms(throttle_time_ms);
        }
    }

    fn into_response(self, ctx: &RequestContext) -> Result<Response, HandlerError> {
        match self {
            Some(reply) => reply.into_response(ctx),
            None => Ok(Response::NoReply),
        }
    }
}

/// A Fetch response whose records stay file regions until the socket.
pub struct FetchReply {
    pub response: FetchResponse,
    /// Each shown partition's records, in response order.
    pub records: Vec<PartitionRecords>,
}

impl Reply for FetchReply {
    fn set_throttle_time_ms(&mut self, throttle_time_ms: i32) {
        self.response.throttle_time_ms = throttle_time_ms;
    }

    fn into_response(self, ctx: &RequestContext) -> Result<Response, HandlerError> {
        let reply = encode_fetch_response(
            ctx.correlation_id(),
            ctx.response_header_version(),
            &self.response,
            self.records,
            ctx.version(),
        )?;
        Ok(Response::Chunks(reply))
    }
}
