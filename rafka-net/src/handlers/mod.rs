//! The broker's [`Service`]: one handler per Kafka API, routed by a single
//! `match` on the api key.
//!
//! Every handler is a plain async fn with the same signature,
//! `handle(&HandlerContext, Request) -> Result<Response, HandlerError>`, and
//! reads top-down: decode -> authorize -> split by owning shard -> apply on
//! the owner -> gather -> encode. An `Err` closes the connection (Kafka
//! closes on a body it cannot parse); errors the protocol can express go
//! back as error codes inside `Ok(Response::Reply(..))`.
//!
//! Adding an API: write `handlers/<api>.rs`, then replace its
//! `not_implemented` arm in [`dispatch`] with a call to its `handle`.
//!
//! Lives on: one `Handlers` per shard.

pub mod api_versions;
pub mod controller_call;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_groups;
pub mod fetch;
pub mod find_coordinator;
mod group_call;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;

use std::rc::Rc;

use kafka_protocol::messages::ApiKey;
use rafka_proto::api::{ApiTable, DecodeError, EncodeError};
use rafka_shard::shard::Shard;
use thiserror::Error;

use crate::service::{Request, Response, Service};

/// Why a request closes its connection.
#[derive(Debug, Error)]
pub enum HandlerError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A response the broker built but cannot encode: a broker bug, but one
    /// that only this connection pays for.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("{api_key:?} is in the API table but has no handler yet")]
    NotImplemented { api_key: ApiKey },
    /// Produce with acks=0 failed on some partition: Kafka closes the
    /// connection, the only sign such a producer gets to refresh metadata.
    #[error("produce with acks=0 failed on {failed_partitions} partition(s), first error code {error_code}")]
    UnacknowledgedProduceFailed {
        failed_partitions: usize,
        error_code: i16,
    },
}

/// What every handler may use: the shard's view of the broker.
#[derive(Clone)]
pub struct HandlerContext {
    /// The table the connection parsed the request header against.
    pub table: Rc<ApiTable>,
    /// This core's shard: metadata image, owned partitions, router.
    pub shard: Rc<Shard>,
    /// How clients reach this broker (Metadata, FindCoordinator, ...).
    pub node: NodeInfo,
}

impl std::fmt::Debug for HandlerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerContext")
            .field("shard", &self.shard.id())
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// This broker as clients see it: the advertised endpoint and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
    /// Kafka's cluster id (22-char base64 of a UUID), from meta.properties.
    pub cluster_id: String,
}

/// The broker's [`Service`]: routes each request to its API's handler.
#[derive(Debug)]
pub struct Handlers {
    ctx: HandlerContext,
}

impl Handlers {
    pub fn new(ctx: HandlerContext) -> Self {
        Handlers { ctx }
    }
}

impl Service for Handlers {
    async fn call(&self, request: Request) -> Response {
        let timer = crate::metrics_shard::RequestTimer::start(request.header.api_key as i16);
        let response = match dispatch(&self.ctx, request).await {
            Ok(response) => response,
            Err(error) => Response::Close(error),
        };
        timer.finish(matches!(response, Response::Close(_)));
        response
    }
}

/// The one place a request meets its handler.
pub async fn dispatch(ctx: &HandlerContext, request: Request) -> Result<Response, HandlerError> {
    match request.header.api_key {
        ApiKey::ApiVersions => api_versions::handle(ctx, request).await,
        ApiKey::Produce => produce::handle(ctx, request).await,
        ApiKey::Fetch => fetch::handle(ctx, request).await,
        ApiKey::ListOffsets => list_offsets::handle(ctx, request).await,
        ApiKey::Metadata => metadata::handle(ctx, request).await,
        ApiKey::OffsetCommit => offset_commit::handle(ctx, request).await,
        ApiKey::OffsetFetch => offset_fetch::handle(ctx, request).await,
        ApiKey::FindCoordinator => find_coordinator::handle(ctx, request).await,
        ApiKey::JoinGroup => join_group::handle(ctx, request).await,
        ApiKey::Heartbeat => heartbeat::handle(ctx, request).await,
        ApiKey::LeaveGroup => leave_group::handle(ctx, request).await,
        ApiKey::SyncGroup => sync_group::handle(ctx, request).await,
        ApiKey::DescribeGroups => describe_groups::handle(ctx, request).await,
        ApiKey::ListGroups => list_groups::handle(ctx, request).await,
        ApiKey::CreateTopics => create_topics::handle(ctx, request).await,
        ApiKey::DeleteTopics => delete_topics::handle(ctx, request).await,
        ApiKey::InitProducerId => init_producer_id::handle(ctx, request).await,
        ApiKey::DescribeCluster => describe_cluster::handle(ctx, request).await,
        ApiKey::OffsetDelete => offset_delete::handle(ctx, request).await,
        ApiKey::DeleteGroups => delete_groups::handle(ctx, request).await,
        // Only reachable with a table serving more than BROKER_APIS.
        _ => not_implemented(request),
    }
}

/// Encodes `body` as the reply to the request with `header`: the one way
/// every handler answers.
pub(crate) fn reply<T: kafka_protocol::protocol::Encodable>(
    header: &rafka_proto::header::RequestHeader,
    header_version: rafka_proto::header::ResponseHeaderVersion,
    body: &T,
    version: i16,
) -> Result<Response, HandlerError> {
    let bytes =
        rafka_proto::api::encode_response(header.correlation_id, header_version, body, version)?;
    Ok(Response::Reply(bytes))
}

/// An API the table serves but no handler answers yet: closing is what a
/// client can recover from (it reconnects and the request fails), where a
/// made-up answer could be taken for real.
fn not_implemented(request: Request) -> Result<Response, HandlerError> {
    Err(HandlerError::NotImplemented {
        api_key: request.header.api_key,
    })
}
