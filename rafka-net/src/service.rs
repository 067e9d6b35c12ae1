//! The dispatch contract between the connection layer and whatever answers
//! requests: a [`Request`] goes in, a [`Response`] comes out.
//!
//! The broker's implementation is [`crate::handlers::Handlers`]; tests plug
//! in fakes. `Service` futures are not `Send`: a request is served on the
//! shard that read it (thread-per-core), and reaches other shards only
//! through the router's messages.

use std::future::Future;
use std::rc::Rc;

use bytes::Bytes;
use rafka_proto::header::{RequestHeader, ResponseHeaderVersion};

use crate::handlers::HandlerError;
use crate::session::Session;
use crate::zero_copy::ChunkedReply;

/// One request as the connection hands it over: header parsed and checked
/// against the API table, body still encoded.
#[derive(Debug, Clone)]
pub struct Request {
    /// The API key and version in it are served by the table.
    pub header: RequestHeader,
    /// The header layout the response to this request must use.
    pub response_header_version: ResponseHeaderVersion,
    /// The request body (after the header), sharing the frame's memory.
    pub body: Bytes,
    /// Size of the whole frame without its 4-byte prefix; the request holds
    /// this much of the connection's and the shard's in-flight byte budgets
    /// until its response is written.
    pub frame_bytes: usize,
    /// The connection's identity, shared by its requests.
    pub session: Rc<Session>,
}

/// What the connection does once a request is served. Responses are written
/// in request order whatever order they complete in.
#[derive(Debug)]
pub enum Response {
    /// A complete response: response header + body, *without* the 4-byte
    /// size prefix, which the connection writes.
    Reply(Bytes),
    /// The same as chunks whose file regions are sent with `sendfile`
    /// (Fetch); the prefix is their total length.
    Chunks(ChunkedReply),
    /// Nothing is sent back (Produce with acks=0).
    NoReply,
    /// The request broke the protocol: responses to earlier requests are
    /// written, then the connection is closed and the reason logged.
    Close(HandlerError),
    /// This answer is written, then the connection closes (a failed SASL
    /// exchange: the client reads why before the close), after the
    /// listener's `connection.failed.authentication.delay.ms` on a SASL
    /// listener.
    ReplyThenClose(Bytes, HandlerError),
}

/// Serves requests of one shard.
pub trait Service: 'static {
    /// Serves one request. Several calls for one connection may run at once;
    /// the connection orders their responses.
    fn call(&self, request: Request) -> impl Future<Output = Response>;

    /// Serves one raw SASL token (a frame without a Kafka header, after
    /// SaslHandshake v0, KIP-43): a `Reply` is written as a size-prefixed
    /// token. A service without SASL closes the connection.
    fn raw_sasl_token(&self, session: Rc<Session>, token: Bytes) -> impl Future<Output = Response> {
        let _ = (session, token);
        std::future::ready(Response::Close(HandlerError::RawTokenNotServed))
    }
}
