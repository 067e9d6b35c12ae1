//! The broker's [`Service`]: one table of handlers drives both dispatch and
//! the ApiVersions answer, and one driver runs every request the same way.
//!
//! # The path of a request
//! 1. The connection parses the header against [`broker_table`] (built
//!    from [`SERVED_APIS`]), so only served APIs and versions get here.
//! 2. [`Handlers::call`] builds the [`RequestContext`] (session, header,
//!    the shard, throttle time) and [`dispatch`]es on the api key.
//! 3. [`drive`] runs the steps written once: session gate -> decode ->
//!    the API's handler (its shard time measured for `request_percentage`)
//!    -> stamp the throttle time (the max of the byte-rate throttle the
//!    handler added and the request quota's) -> encode -> KIP-219 mute
//!    ([`crate::throttle`]).
//! 4. The handler, `handlers/<api>.rs`, reads top-down: authorize (at the
//!    places Kafka checks) -> split by owning shard ([`fanout`],
//!    [`coordinator_call`], the [`ControllerHandle`]) -> apply on the owner
//!    -> gather -> build the response.
//!
//! A handler is `async fn handle(ctx: &RequestContext, request: XRequest)
//! -> Result<XResponse, HandlerError>`. An `Err` closes the connection
//! (Kafka closes on a body it cannot parse); errors the protocol can
//! express go back as error codes inside the response.
//!
//! # Adding an API
//! One line in `api_spec` of rafka-proto (its request shape, if new), one
//! line in the [`served_apis!`] table below, and `handlers/<api>.rs` with
//! its `handle`. The table line is the ApiVersions entry, the dispatch arm
//! and the response's encoding, so a served API without a handler does not
//! compile.
//!
//! Lives on: one `Handlers` per shard.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_client_quotas;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod cluster_view;
pub mod context;
pub mod coordinator_call;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_client_quotas;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod describe_user_scram_credentials;
pub mod elect_leaders;
pub mod end_txn;
pub mod fanout;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod reply;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod sync_group;
mod txn_errors;
pub mod txn_offset_commit;
pub mod write_txn_markers;

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Request as ProtocolRequest;
use rafka_core::quota::QuotaKey;
use rafka_proto::api::{decode_request, ApiTable, DecodeError, EncodeError, ServedApi};
use rafka_proto::error::ErrorCode;
use thiserror::Error;

pub use context::{AdvertisedListener, BrokerContext, NodeInfo, RequestContext};

/// Kafka's internal topics: listed as internal, written only by the broker
/// (and Kafka's admin tools), never trimmed by DeleteRecords.
pub(crate) const INTERNAL_TOPICS: [&str; 2] = ["__consumer_offsets", "__transaction_state"];
pub use rafka_shard::controller_handle::ControllerHandle;
pub use reply::Reply;

use crate::service::{Request, Response, Service};
use crate::throttle;

/// Declares the served APIs: each line is (API key[(response type)],
/// handler, served versions[, oldest version advertised]). It expands to
/// [`SERVED_APIS`] (the ApiVersions listing), to [`dispatch`]'s match and
/// to the response's [`Reply`] (a kafka-protocol message encoded whole;
/// without a type the handler answers with its own `Reply`, as Fetch's
/// file regions), from the same line, so they cannot disagree.
macro_rules! served_apis {
    ($($api:ident $(($response:ty))? => $handler:path, $min:literal..=$max:literal $(, advertised from $adv:literal)?;)*) => {
        $($(reply::message_reply!($response);)?)*

        /// Every API this broker serves, at the versions its handler
        /// implements: the input of [`broker_table`].
        pub const SERVED_APIS: &[ServedApi] = &[$(
            ServedApi {
                api_key: ApiKey::$api,
                min_version: $min,
                max_version: $max,
                advertised_min_version: served_apis!(@advertised $min $(, $adv)?),
            },
        )*];

        /// The one place a request meets its handler.
        pub async fn dispatch(ctx: &RequestContext, body: Bytes) -> Result<Response, HandlerError> {
            match ctx.api_key() {
                $(ApiKey::$api => drive(ctx, body, $handler).await,)*
                api_key => Err(HandlerError::NotServed { api_key }),
            }
        }
    };
    (@advertised $min:literal) => { $min };
    (@advertised $min:literal, $adv:literal) => { $adv };
}

// The versions are those each handler was written for: upgrading
// kafka-protocol never advertises a version no handler speaks.
//
// Produce is advertised from v0, below the v3 it serves: librdkafka before
// 2.10 (Debian's kcat links 2.0.2) enables gzip and snappy only when the
// broker lists Produce v0, and otherwise silently sends uncompressed
// batches (captured in rafka-proto/tests/fixtures). Every client that can
// write v2 batches picks v3 or newer; a v0-2 request is still refused by
// the header parser (the connection closes, as for any version outside the
// table).
served_apis! {
    Produce(ProduceResponse) => produce::handle, 3..=13, advertised from 0;
    Fetch => fetch::handle, 4..=18;
    ListOffsets(ListOffsetsResponse) => list_offsets::handle, 1..=10;
    Metadata(MetadataResponse) => metadata::handle, 0..=13;
    OffsetCommit(OffsetCommitResponse) => offset_commit::handle, 2..=9;
    OffsetFetch(OffsetFetchResponse) => offset_fetch::handle, 1..=9;
    FindCoordinator(FindCoordinatorResponse) => find_coordinator::handle, 0..=6;
    JoinGroup(JoinGroupResponse) => join_group::handle, 0..=9;
    Heartbeat(HeartbeatResponse) => heartbeat::handle, 0..=4;
    LeaveGroup(LeaveGroupResponse) => leave_group::handle, 0..=5;
    SyncGroup(SyncGroupResponse) => sync_group::handle, 0..=5;
    DescribeGroups(DescribeGroupsResponse) => describe_groups::handle, 0..=6;
    ListGroups(ListGroupsResponse) => list_groups::handle, 0..=5;
    ApiVersions(ApiVersionsResponse) => api_versions::handle, 0..=4;
    CreateTopics(CreateTopicsResponse) => create_topics::handle, 2..=7;
    DeleteTopics(DeleteTopicsResponse) => delete_topics::handle, 1..=6;
    InitProducerId(InitProducerIdResponse) => init_producer_id::handle, 0..=5;
    DeleteGroups(DeleteGroupsResponse) => delete_groups::handle, 0..=2;
    OffsetDelete(OffsetDeleteResponse) => offset_delete::handle, 0..=0;
    DescribeCluster(DescribeClusterResponse) => describe_cluster::handle, 0..=2;
    CreatePartitions(CreatePartitionsResponse) => create_partitions::handle, 0..=3;
    DeleteRecords(DeleteRecordsResponse) => delete_records::handle, 0..=2;
    DescribeAcls(DescribeAclsResponse) => describe_acls::handle, 1..=3;
    CreateAcls(CreateAclsResponse) => create_acls::handle, 1..=3;
    DeleteAcls(DeleteAclsResponse) => delete_acls::handle, 1..=3;
    DescribeConfigs(DescribeConfigsResponse) => describe_configs::handle, 1..=4;
    AlterConfigs(AlterConfigsResponse) => alter_configs::handle, 0..=2;
    IncrementalAlterConfigs(IncrementalAlterConfigsResponse) => incremental_alter_configs::handle, 0..=1;
    OffsetForLeaderEpoch(OffsetForLeaderEpochResponse) => offset_for_leader_epoch::handle, 2..=4;
    DescribeLogDirs(DescribeLogDirsResponse) => describe_log_dirs::handle, 1..=4;
    DescribeProducers(DescribeProducersResponse) => describe_producers::handle, 0..=0;
    DescribeTopicPartitions(DescribeTopicPartitionsResponse) => describe_topic_partitions::handle, 0..=0;
    DescribeQuorum => describe_quorum::handle, 0..=2;
    ElectLeaders(ElectLeadersResponse) => elect_leaders::handle, 0..=2;
    AlterPartitionReassignments(AlterPartitionReassignmentsResponse) => alter_partition_reassignments::handle, 0..=1;
    ListPartitionReassignments(ListPartitionReassignmentsResponse) => list_partition_reassignments::handle, 0..=0;
    DescribeClientQuotas(DescribeClientQuotasResponse) => describe_client_quotas::handle, 0..=1;
    AlterClientQuotas(AlterClientQuotasResponse) => alter_client_quotas::handle, 0..=1;
    DescribeUserScramCredentials(DescribeUserScramCredentialsResponse) => describe_user_scram_credentials::handle, 0..=0;
    AlterUserScramCredentials(AlterUserScramCredentialsResponse) => alter_user_scram_credentials::handle, 0..=0;
    AddPartitionsToTxn(AddPartitionsToTxnResponse) => add_partitions_to_txn::handle, 0..=5;
    AddOffsetsToTxn(AddOffsetsToTxnResponse) => add_offsets_to_txn::handle, 0..=4;
    EndTxn(EndTxnResponse) => end_txn::handle, 0..=4;
    WriteTxnMarkers => write_txn_markers::handle, 1..=1;
    TxnOffsetCommit(TxnOffsetCommitResponse) => txn_offset_commit::handle, 0..=4;
    DescribeTransactions(DescribeTransactionsResponse) => describe_transactions::handle, 0..=0;
    ListTransactions(ListTransactionsResponse) => list_transactions::handle, 0..=2;
    SaslHandshake => sasl_handshake::handle, 0..=1;
    SaslAuthenticate => sasl_authenticate::handle, 0..=2;
}

/// The API table of [`SERVED_APIS`]: what the connection parses headers
/// against and ApiVersions lists.
pub fn broker_table() -> ApiTable {
    // SERVED_APIS is a constant; a version outside what rafka decodes
    // fails every test that starts a broker.
    ApiTable::new(SERVED_APIS).expect("SERVED_APIS is a valid table")
}

/// Why a request closes its connection.
#[derive(Debug, Error)]
pub enum HandlerError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A response the broker built but cannot encode: a broker bug, but one
    /// that only this connection pays for.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Only reachable with a table serving more than [`SERVED_APIS`].
    #[error("{api_key:?} has no handler")]
    NotServed { api_key: ApiKey },
    /// The connection's session does not admit the API yet (SASL).
    #[error("{api_key:?} is not allowed before the connection authenticates")]
    NotAdmitted { api_key: ApiKey },
    /// A request after the SASL session's end (`connections.max.reauth.ms`)
    /// without re-authentication: Kafka closes the connection.
    #[error("{api_key:?} after the SASL session expired")]
    SessionExpired { api_key: ApiKey },
    /// The SASL exchange failed: the answer (with its error) is written,
    /// then the connection closes.
    #[error("SASL authentication failed: {message}")]
    SaslFailed { message: String },
    /// A raw SASL token reached a service that does not take them.
    #[error("raw SASL token not served")]
    RawTokenNotServed,
    /// Produce with acks=0 failed on some partition: Kafka closes the
    /// connection, the only sign such a producer gets to refresh metadata.
    #[error(
        "produce with acks=0 failed on {failed_partitions} partition(s), first error {error_code}"
    )]
    UnacknowledgedProduceFailed {
        failed_partitions: usize,
        error_code: ErrorCode,
    },
}

/// The steps every request takes, written once: session gate -> decode ->
/// handle (timed for the request quota) -> throttle time -> encode ->
/// mute the connection if throttled. The gate comes first so that a
/// connection that may not send an API yet has none of its bodies parsed.
async fn drive<Req, Resp>(
    ctx: &RequestContext,
    mut body: Bytes,
    handler: impl AsyncFnOnce(&RequestContext, Req) -> Result<Resp, HandlerError>,
) -> Result<Response, HandlerError>
where
    Req: ProtocolRequest,
    Resp: Reply,
{
    let api_key = ctx.api_key();
    if !ctx.session().admits(api_key) {
        let expired = ctx
            .session()
            .sasl()
            .is_some_and(|s| s.expired(std::time::Instant::now()));
        return Err(match expired {
            true => HandlerError::SessionExpired { api_key },
            false => HandlerError::NotAdmitted { api_key },
        });
    }
    let request: Req = decode_request(&mut body, ctx.version())?;
    // A client with a request quota: its next request waits for this
    // one's verdict, known after handling.
    let _verdict = (!throttle::request_quota_exempt(api_key)
        && ctx.quota_applies(QuotaKey::RequestPercentage))
    .then(|| ctx.verdict_pending());
    let (reply, busy_nanos) = throttle::busy_nanos(handler(ctx, request)).await;
    let mut reply = reply?;
    record_request_time(ctx, busy_nanos).await;
    let throttle_ms = ctx.throttle_time_ms();
    reply.set_throttle_time_ms(throttle_ms);
    let response = reply.into_response(ctx)?;
    throttle_connection(ctx, throttle_ms).await;
    Ok(response)
}

/// `request_percentage`: the time the shard spent on the handler, as
/// Kafka's `ClientRequestQuotaManager` counts it (nanoseconds to
/// percent-seconds), reported to the sensor's owner after handling; the
/// request's throttle is the larger of it and the byte rate's.
async fn record_request_time(ctx: &RequestContext, busy_nanos: u64) {
    if throttle::request_quota_exempt(ctx.api_key()) || ctx.is_request_quota_exempt() {
        return;
    }
    let value = busy_nanos as f64 * throttle::NANOS_TO_PERCENT;
    let throttle_ms = ctx.record_quota(QuotaKey::RequestPercentage, value).await;
    ctx.add_throttle_ms(throttle_ms);
}

/// KIP-219: a throttled response mutes its connection for the throttle
/// time; for a version whose client does not throttle itself the
/// response is also held back that long (or until the connection ends).
async fn throttle_connection(ctx: &RequestContext, throttle_ms: i32) {
    if throttle_ms <= 0 {
        return;
    }
    ctx.mute_for(throttle_ms);
    if !throttle::client_throttles(ctx.api_key(), ctx.version()) {
        let until_ms = ctx.now_ms() + i64::from(throttle_ms);
        let held = throttle::sleep_until(ctx.shard().clock().as_ref(), until_ms);
        futures_lite::future::or(held, ctx.session().closed()).await;
    }
}

/// The broker's [`Service`]: routes each request to its API's handler.
#[derive(Debug)]
pub struct Handlers {
    broker: Rc<BrokerContext>,
}

impl Handlers {
    pub fn new(broker: Rc<BrokerContext>) -> Self {
        Handlers { broker }
    }

    pub fn broker(&self) -> &Rc<BrokerContext> {
        &self.broker
    }
}

impl Service for Handlers {
    async fn call(&self, request: Request) -> Response {
        serve(&self.broker, request).await
    }

    async fn raw_sasl_token(&self, session: Rc<crate::session::Session>, token: Bytes) -> Response {
        sasl_authenticate::raw_token(&self.broker, &session, &token).await
    }
}

/// Serves one request of the shard `broker` describes: what the
/// connection does, and what in-process tests do without a socket.
pub async fn serve(broker: &Rc<BrokerContext>, request: Request) -> Response {
    let timer = crate::metrics_shard::RequestTimer::start(request.header.api_key as i16);
    let (ctx, body) = RequestContext::new(Rc::clone(broker), request);
    let response = match dispatch(&ctx, body).await {
        Ok(response) => response,
        Err(error) => Response::Close(error),
    };
    timer.finish(matches!(response, Response::Close(_)));
    response
}
