//! [`Reply`]: what a handler answers, as the driver stamps and encodes it.
//!
//! Every served API's kafka-protocol response is a reply (encoded whole
//! with its response header, [`message_reply`], from the handler table); `Option<R>` is a reply that may be nothing
//! (Produce acks=0); [`FetchReply`] keeps its records as file regions for
//! zero-copy sending.

use kafka_protocol::messages::FetchResponse;

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

/// Makes a kafka-protocol response a [`Reply`]: encoded whole with its
/// response header. The handler table invokes it for every served API's
/// response type.
macro_rules! message_reply {
    ($response:ty) => {
        impl $crate::handlers::reply::Reply for $response {
            fn set_throttle_time_ms(&mut self, throttle_time_ms: i32) {
                self.throttle_time_ms = throttle_time_ms;
            }

            fn into_response(
                self,
                ctx: &$crate::handlers::RequestContext,
            ) -> Result<$crate::service::Response, $crate::handlers::HandlerError> {
                $crate::handlers::reply::whole_message(ctx, &self)
            }
        }
    };
}
pub(crate) use message_reply;

/// A kafka-protocol response encoded whole, after its response header.
pub(crate) fn whole_message<M: kafka_protocol::protocol::Encodable>(
    ctx: &RequestContext,
    message: &M,
) -> Result<Response, HandlerError> {
    let bytes = rafka_proto::api::encode_response(
        ctx.correlation_id(),
        ctx.response_header_version(),
        message,
        ctx.version(),
    )?;
    Ok(Response::Reply(bytes))
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
