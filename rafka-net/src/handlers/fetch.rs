//! Fetch (key 1), v4-v18: whole record batches from the partitions a
//! consumer names, within its byte limits, waiting up to `max_wait_ms` for
//! `min_bytes`.
//!
//! Path: decode -> session context ([`crate::fetch_session`]) -> resolve
//! each partition's topic and owning shard from the image -> read on the
//! owners (one `invoke_on` per owner) -> apply `max_bytes` in response
//! order -> below `min_bytes`, wait on the owners for a high watermark to
//! move and read again -> filter through the session -> encode.
//!
//! Decisions a client can notice:
//! - Byte limits as Kafka applies them (KIP-74): each partition gets whole
//!   batches up to `partition_max_bytes` and what is left of `max_bytes`
//!   (capped by the broker's `fetch.max.bytes`); the first non-empty
//!   partition gets its first batch even when larger; once the budget is
//!   spent, later partitions answer with their watermarks and no records.
//!   Each owner applies the same budget to its own partitions first, so no
//!   shard reads more than `max_bytes`; in the rare case where a large
//!   first batch on one owner makes it drop a later partition that the
//!   response order would have fitted, the client simply gets that
//!   partition on its next fetch.
//! - An offset in [high watermark, log end] answers empty, no error; one
//!   outside [log start, log end] answers OFFSET_OUT_OF_RANGE with the high
//!   watermark and log start filled (Kafka sends -1; the real bounds cost
//!   nothing and tell the client where the log is).
//! - read_committed reads up to the last stable offset (the start of the
//!   earliest transaction not yet decided and durable, else the high
//!   watermark); every answer carries the real LSO, whatever the isolation
//!   level, as Kafka's does. `aborted_transactions` lists, for
//!   read_committed, the aborted transactions overlapping the range read
//!   ([fetch offset, next offset)), null for read_uncommitted. Records stay
//!   file regions: control batches and aborted records go out as stored,
//!   and the consumer drops them (Kafka's contract).
//! - Long polling without polling: each owner waits on its partitions'
//!   watermark events (for read_committed, until the LSO passes what was
//!   read); the first owner to see data reads its partitions on the spot
//!   and answers with the reads (no second cross-core round trip), which
//!   replace that owner's earlier reads; the others' stay. The deadline
//!   is computed once. Ending the
//!   wait drops the cancel senders, which ends the waits on other shards
//!   at once. A read error answers at once (as
//!   Kafka's delayed fetch does); unknown topics do not stop the wait on
//!   the others.
//! - Client quotas (Kafka's `handleFetchRequest`): with a
//!   `consumer_byte_rate`, `max_bytes` is capped at what one quota
//!   window allows; at the tail the response's size goes to the sensor's
//!   owner, and a throttled fetch is taken back there and answered with
//!   no partitions and the throttle time. A follower's fetch (replica id
//!   0 or above) is exempt.
//! - The wait is bounded twice: by `max_wait_ms` capped at the broker's
//!   `rafka.fetch.max.wait.ms`, and by the connection: when it ends (peer
//!   gone, shutdown, protocol error) the request stops waiting and answers
//!   with what it has, so a parked fetch never holds a socket or a clean
//!   stop.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::oneshot;
use futures_lite::future::or;
use futures_util::future::{select, select_all};
use kafka_protocol::messages::fetch_response::AbortedTransaction;
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::ProducerId;
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::config::BrokerConfig;
use rafka_core::metadata::MetadataImage;
use rafka_proto::error::ErrorCode;
use rafka_shard::partition::{IsolationLevel, Partition};
use rafka_shard::quota;
use rafka_shard::runtime::within;
use rafka_shard::shard::Shard;
use rafka_shard::storage::FileRegion;

use super::fanout::{scatter, Split};
use super::reply::FetchReply;
use super::{HandlerError, RequestContext};
use crate::fetch_budget::{base_offset_at, Budget};
use crate::fetch_encode::PartitionRecords;
use crate::fetch_session::{
    with_shard_sessions, FetchParams, Observed, PartitionKey, SessionContext, SessionRequest,
    TopicKey,
};
use crate::zero_copy::Chunk;

/// First version with fetch sessions and a top-level error code.
const SESSION_VERSION_MIN: i16 = 7;
/// First version naming topics by id.
const TOPIC_ID_VERSION_MIN: i16 = 13;
/// An owner's wait for data ends by cancellation (the request's own
/// deadline, or its connection closing), not by its own timer.
const WAIT_UNBOUNDED: Duration = Duration::from_secs(u32::MAX as u64);

pub async fn handle(ctx: &RequestContext, fetch: FetchRequest) -> Result<FetchReply, HandlerError> {
    let version = ctx.version();
    // A follower's fetch is exempt from client quotas, as in Kafka.
    let follower = is_follower(&fetch, version);
    if follower {
        ctx.exempt_from_request_quota();
    }
    // A broker replicating reads to the log end (Kafka: CLUSTER_ACTION on
    // the cluster, else every partition is TOPIC_AUTHORIZATION_FAILED).
    let replica = follower.then(|| replica_id(&fetch, version));
    let replica_allowed =
        replica.is_some() && ctx.authorize(AclOperation::ClusterAction, Resource::Cluster);
    let (user, client_id) = (ctx.quota_user(), ctx.client_id());
    let requested = requested_partitions(&fetch, version);
    let (listed, end) = match begin_session(ctx, &fetch, version, &requested) {
        SessionContext::Error(code) => {
            return Ok(FetchReply {
                response: session_error(code),
                records: Vec::new(),
            });
        }
        SessionContext::Sessionless => (requested, SessionEnd::Sessionless),
        SessionContext::Full => (requested, SessionEnd::Create),
        SessionContext::Incremental {
            session_id,
            partitions,
        } => (partitions, SessionEnd::Incremental(session_id)),
    };
    let quota_bytes_max = match follower {
        true => None,
        false => quota::fetch_bytes_bound(ctx.shard(), &user, &client_id),
    };
    let mut limits = Limits::of(&fetch, ctx.config(), quota_bytes_max);
    if follower {
        limits.isolation = IsolationLevel::LogEnd;
        limits.replica = replica.filter(|_| replica_allowed);
    } else if version >= FOLLOWER_READS_VERSION_MIN {
        limits.follower_reads = true;
        let rack = fetch.rack_id.as_str();
        if ctx.config().replica_selector_rack_aware && !rack.is_empty() {
            limits.client_rack = Some(Arc::from(rack));
        }
    }
    let mut targets = resolve(ctx, &ctx.image(), listed, limits.follower_reads);
    if let Some(replica_id) = replica {
        check_replica(&ctx.image(), &mut targets, replica_id, replica_allowed);
    }
    let reads = read_until_ready(ctx, &targets, &limits).await;
    if !follower {
        let size_bytes = response_bytes(version, &limits, &targets, &reads);
        let throttle_ms =
            quota::report_fetch(ctx.shard(), &user, &client_id, size_bytes as f64).await;
        if throttle_ms > 0 {
            ctx.add_throttle_ms(throttle_ms);
            ctx.mute_for(throttle_ms);
            return Ok(FetchReply {
                response: throttled_response(version, end),
                records: Vec::new(),
            });
        }
    }
    crate::metrics_shard::fetched(targets.iter().zip(&reads).map(|(target, read)| {
        let batch_bytes = read.records.iter().map(|region| region.len).sum();
        (target.topic.as_str(), batch_bytes, read.offsets_out)
    }));
    let uses_topic_ids = version >= TOPIC_ID_VERSION_MIN;
    let (session_id, shown) = finish_session(ctx, end, uses_topic_ids, &targets, &reads);
    let (mut response, records) =
        build_response(version, &limits, session_id, targets, reads, &shown);
    if version >= CURRENT_LEADER_VERSION_MIN {
        add_leader_hints(ctx, &mut response, version);
    }
    Ok(FetchReply { response, records })
}

/// First version a follower serves consumers on, with the consumer's rack
/// and the preferred read replica (KIP-392).
const FOLLOWER_READS_VERSION_MIN: i16 = 11;

/// First version whose partitions carry the current leader (KIP-951 uses
/// it from v16, with the leaders' endpoints).
const CURRENT_LEADER_VERSION_MIN: i16 = 12;
const NODE_ENDPOINTS_VERSION_MIN: i16 = 16;

/// KIP-951: a partition refused with NOT_LEADER_OR_FOLLOWER carries its
/// current leader and epoch, and (v16+) the response the endpoints of
/// those leaders, so the consumer moves without a Metadata round trip.
fn add_leader_hints(ctx: &RequestContext, response: &mut FetchResponse, version: i16) {
    let image = ctx.image();
    let mut leaders = std::collections::BTreeSet::new();
    for topic in &mut response.responses {
        let found = if topic.topic_id.is_nil() {
            image.topic(topic.topic.as_str())
        } else {
            image.topic_by_id(&topic.topic_id)
        };
        let Some(found) = found else {
            continue;
        };
        for partition in &mut topic.partitions {
            if partition.error_code != ErrorCode::NOT_LEADER_OR_FOLLOWER.code() {
                continue;
            }
            let index = partition.partition_index;
            if let Some((leader, epoch)) =
                super::cluster_view::leader_hint(ctx, &image, found, index)
            {
                partition.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
                leaders.insert(leader);
            }
        }
    }
    if version < NODE_ENDPOINTS_VERSION_MIN || leaders.is_empty() {
        return;
    }
    response.node_endpoints = super::cluster_view::endpoints_of(ctx, &image, &leaders)
        .into_iter()
        .map(|b| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(b.node_id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.map(StrBytes::from_string))
        })
        .collect();
}

/// What to do with the session once the response is known.
#[derive(Debug, Clone, Copy)]
enum SessionEnd {
    Sessionless,
    Create,
    Incremental(i32),
}

/// The request's limits, in the units the read path uses.
#[derive(Debug, Clone)]
struct Limits {
    max_wait: Duration,
    min_bytes: u64,
    max_bytes: u32,
    isolation: IsolationLevel,
    /// The broker id of a follower allowed to replicate.
    replica: Option<i32>,
    /// KIP-392: the consumer's rack, when the broker's
    /// `replica.selector.class` is rack aware (v11+): leaders send it to
    /// an in-sync replica there.
    client_rack: Option<Arc<str>>,
    /// KIP-392: a consumer (v11+) that this broker may serve as a
    /// follower.
    follower_reads: bool,
}

impl Limits {
    /// The request's limits within the broker's (`fetch.max.bytes`,
    /// `rafka.fetch.max.wait.ms`) and, with a consumer quota, within what
    /// one window of it allows (`quota_bytes_max`, Kafka's
    /// `getMaxValueInQuotaWindow`: more would be throttled for sure, so
    /// the consumer could never progress). `min_bytes` stays within
    /// `max_bytes`, as Kafka's.
    fn of(fetch: &FetchRequest, broker: &BrokerConfig, quota_bytes_max: Option<f64>) -> Limits {
        let mut max_bytes = fetch.max_bytes.min(broker.fetch_max_bytes);
        if let Some(quota_bytes_max) = quota_bytes_max {
            // `as` saturates, as Kafka's `toInt` of the double.
            max_bytes = max_bytes.min(quota_bytes_max as i32);
        }
        let max_wait_ms = fetch.max_wait_ms.min(broker.fetch_max_wait_ms);
        Limits {
            max_wait: Duration::from_millis(u64::try_from(max_wait_ms).unwrap_or(0)),
            min_bytes: u64::try_from(fetch.min_bytes.min(max_bytes)).unwrap_or(0),
            max_bytes: u32::try_from(max_bytes).unwrap_or(0),
            isolation: IsolationLevel::from_i8(fetch.isolation_level),
            replica: None,
            client_rack: None,
            follower_reads: false,
        }
    }

    /// Kafka's rule for answering without (further) waiting.
    fn answers_now(&self, targets: &[Target], reads: &[PartitionRead]) -> bool {
        if self.max_wait.is_zero() {
            return true;
        }
        let mut readable = false;
        let mut total_bytes = 0u64;
        for (target, read) in targets.iter().zip(reads) {
            if target.owner.is_err() {
                continue;
            }
            // An error or a diverging epoch answers at once: waiting would
            // only read the same answer again (and a log end already past
            // the fetch offset wakes the wait at once, every time).
            if read.error_code.is_err()
                || read.diverging.is_some()
                || read.preferred_read_replica >= 0
            {
                return true;
            }
            readable = true;
            total_bytes += read.records_bytes();
        }
        !readable || total_bytes >= self.min_bytes
    }
}

/// One partition to answer: the request's (or the session's) view plus
/// what the image says about it.
#[derive(Debug, Clone)]
struct Target {
    key: PartitionKey,
    params: FetchParams,
    /// The topic's name on the shards; empty when the topic is unknown.
    topic: String,
    /// The owning shard, or the error this partition answers with.
    owner: Result<usize, ErrorCode>,
    /// Served by this broker as a follower (KIP-392).
    from_follower: bool,
}

impl Target {
    /// How this partition is read for a request at `isolation`.
    fn isolation(&self, isolation: IsolationLevel) -> IsolationLevel {
        if self.from_follower {
            IsolationLevel::FollowerRead {
                committed: isolation == IsolationLevel::ReadCommitted,
            }
        } else {
            isolation
        }
    }
}

/// One partition's answer, as read on its owner.
#[derive(Debug, Clone)]
struct PartitionRead {
    error_code: ErrorCode,
    /// KIP-392: the replica the consumer should read from instead (no
    /// records then); -1 for none.
    preferred_read_replica: i32,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    /// Whole batches as regions of the segment files, sent with
    /// `sendfile` by the connection.
    records: Vec<FileRegion>,
    /// Offsets these records move the consumer forward by: the records
    /// out (exact for logs without gaps, as compaction leaves).
    offsets_out: u64,
    /// read_committed: (producer id, first offset) of the aborted
    /// transactions overlapping the records.
    aborted: Vec<(i64, i64)>,
    /// (epoch, end offset) where the fetcher's log leaves this one's: it
    /// truncates there before fetching on (no records with it).
    diverging: Option<(i32, i64)>,
}

impl PartitionRead {
    fn failed(error_code: ErrorCode) -> Self {
        PartitionRead {
            error_code,
            preferred_read_replica: -1,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            records: Vec::new(),
            offsets_out: 0,
            aborted: Vec::new(),
            diverging: None,
        }
    }

    fn empty(partition: &Partition) -> Self {
        PartitionRead {
            error_code: ErrorCode::NONE,
            preferred_read_replica: -1,
            high_watermark: partition.high_watermark(),
            last_stable_offset: partition.last_stable_offset(),
            log_start_offset: partition.log_start_offset(),
            records: Vec::new(),
            offsets_out: 0,
            aborted: Vec::new(),
            diverging: None,
        }
    }

    fn out_of_range(partition: &Partition) -> Self {
        PartitionRead {
            error_code: ErrorCode::OFFSET_OUT_OF_RANGE,
            ..PartitionRead::empty(partition)
        }
    }

    fn records_bytes(&self) -> u64 {
        self.records.iter().map(|region| region.len).sum()
    }

    fn observed(&self) -> Observed {
        Observed {
            high_watermark: self.high_watermark,
            last_stable_offset: self.last_stable_offset,
            log_start_offset: self.log_start_offset,
            records_bytes: usize::try_from(self.records_bytes()).unwrap_or(usize::MAX),
            error_code: self.error_code,
            diverging: self.diverging.is_some(),
        }
    }
}

/// The request's partitions in request order, keyed the way its version
/// names topics.
fn requested_partitions(fetch: &FetchRequest, version: i16) -> Vec<(PartitionKey, FetchParams)> {
    let mut requested = Vec::new();
    for topic in &fetch.topics {
        let topic_key = topic_key(&topic.topic, topic.topic_id, version);
        for partition in &topic.partitions {
            let key = PartitionKey {
                topic: topic_key.clone(),
                partition: partition.partition,
            };
            let params = FetchParams {
                fetch_offset: partition.fetch_offset,
                partition_max_bytes: partition.partition_max_bytes,
                current_leader_epoch: partition.current_leader_epoch,
                last_fetched_epoch: partition.last_fetched_epoch,
            };
            requested.push((key, params));
        }
    }
    requested
}

fn topic_key(name: &TopicName, id: uuid::Uuid, version: i16) -> TopicKey {
    if version >= TOPIC_ID_VERSION_MIN {
        TopicKey::Id(id)
    } else {
        TopicKey::Name(name.0.to_string())
    }
}

/// Picks the session context; before v7 every fetch is sessionless.
fn begin_session(
    ctx: &RequestContext,
    fetch: &FetchRequest,
    version: i16,
    requested: &[(PartitionKey, FetchParams)],
) -> SessionContext {
    if version < SESSION_VERSION_MIN {
        return SessionContext::Sessionless;
    }
    let forgotten: Vec<PartitionKey> = fetch
        .forgotten_topics_data
        .iter()
        .flat_map(|topic| {
            let topic_key = topic_key(&topic.topic, topic.topic_id, version);
            topic.partitions.iter().map(move |&partition| PartitionKey {
                topic: topic_key.clone(),
                partition,
            })
        })
        .collect();
    let request = SessionRequest {
        session_id: fetch.session_id,
        epoch: fetch.session_epoch,
        uses_topic_ids: version >= TOPIC_ID_VERSION_MIN,
        partitions: requested,
        forgotten: &forgotten,
    };
    with_shard_sessions(ctx.shard().id(), ctx.shard().count(), |cache| {
        cache.begin(&request)
    })
}

/// Looks each partition's topic and owner up in the image; a topic the
/// principal may not READ answers TOPIC_AUTHORIZATION_FAILED.
fn resolve(
    ctx: &RequestContext,
    image: &MetadataImage,
    listed: Vec<(PartitionKey, FetchParams)>,
    follower_reads: bool,
) -> Vec<Target> {
    listed
        .into_iter()
        .map(|(key, params)| {
            let topic = match &key.topic {
                TopicKey::Name(name) => image
                    .topic(name)
                    .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                TopicKey::Id(id) => image.topic_by_id(id).ok_or(ErrorCode::UNKNOWN_TOPIC_ID),
            };
            let topic = topic.and_then(|topic| {
                if ctx.authorize(AclOperation::Read, Resource::Topic(&topic.name)) {
                    Ok(topic)
                } else {
                    Err(ErrorCode::TOPIC_AUTHORIZATION_FAILED)
                }
            });
            let mut from_follower = false;
            let (topic, owner) = match topic {
                Ok(topic) => {
                    let owner = super::cluster_view::leader_shard(ctx, topic, key.partition)
                        .or_else(|code| {
                            // KIP-392: a replica serves a consumer that
                            // may read from followers.
                            let replica =
                                super::cluster_view::replica_shard(ctx, topic, key.partition);
                            match replica {
                                Some(shard) if follower_reads => {
                                    from_follower = true;
                                    Ok(shard)
                                }
                                _ => Err(code),
                            }
                        })
                        .and_then(|shard| {
                            // Kafka checks the client's epoch (v9+) first:
                            // FENCED_LEADER_EPOCH for an older one,
                            // UNKNOWN_LEADER_EPOCH for one not applied here.
                            let epoch = super::cluster_view::leader_epoch(topic, key.partition);
                            let code = super::list_offsets::epoch_error_code(
                                params.current_leader_epoch,
                                epoch,
                            );
                            if code.is_none() {
                                Ok(shard)
                            } else {
                                Err(code)
                            }
                        });
                    (topic.name.clone(), owner)
                }
                Err(code) => (String::new(), Err(code)),
            };
            Target {
                key,
                params,
                topic,
                owner,
                from_follower,
            }
        })
        .collect()
}

/// Reads, and while the answer is below `min_bytes`, waits for new data
/// and reads again, until `max_wait` has passed (on the shard's timer) or
/// the request's connection has ended (its answer then goes out at once,
/// if it can go out at all).
async fn read_until_ready(
    ctx: &RequestContext,
    targets: &[Target],
    limits: &Limits,
) -> Vec<PartitionRead> {
    let mut reads = read_all(ctx, targets, limits).await;
    if limits.answers_now(targets, &reads) || ctx.session().is_closed() {
        return reads;
    }
    // Each round waits for a watermark to move, then reads again; the whole
    // loop is bounded by max_wait, after which the last read is the answer.
    let rounds = async {
        loop {
            match wait_for_any(ctx, targets, &reads, limits).await {
                Woken::Nothing => return,
                // The owner that woke read its partitions on the spot: one
                // cross-core round trip less than reading everything again.
                // The other owners' reads stay as they were (they had too
                // little to answer), and the budget is applied afresh.
                Woken::Read { indices, fresh } => {
                    for (index, read) in indices.into_iter().zip(fresh) {
                        reads[index] = read;
                    }
                    apply_budget(targets, &mut reads, limits.max_bytes);
                }
                Woken::Unknown => reads = read_all(ctx, targets, limits).await,
            }
            if limits.answers_now(targets, &reads) {
                return;
            }
        }
    };
    // The connection's end wins over any wait: a closed socket must not be
    // held, nor a shutdown's drain delayed, by a long poll.
    within(limits.max_wait, or(rounds, ctx.session().closed())).await;
    reads
}

/// What an owner needs to read one partition.
#[derive(Debug)]
struct ReadSpec {
    topic: String,
    partition: i32,
    params: FetchParams,
    isolation: IsolationLevel,
    /// A follower's fetch: its broker id (its fetch offset is what it
    /// holds on disk, see `Partition::follower_fetched`).
    replica: Option<i32>,
    /// A consumer's rack, for the leader to name a replica there.
    client_rack: Option<Arc<str>>,
}

/// One read of every target (in parallel across owners), then the
/// response's byte budget applied in target order.
async fn read_all(ctx: &RequestContext, targets: &[Target], limits: &Limits) -> Vec<PartitionRead> {
    let max_bytes = limits.max_bytes;
    let mut reads: Vec<PartitionRead> = targets
        .iter()
        .map(|target| PartitionRead::failed(target.owner.err().unwrap_or(ErrorCode::NONE)))
        .collect();
    let mut split = Split::new();
    for (index, target) in targets.iter().enumerate() {
        if let Ok(owner) = target.owner {
            let spec = ReadSpec {
                topic: target.topic.clone(),
                partition: target.key.partition,
                params: target.params,
                isolation: target.isolation(limits.isolation),
                replica: limits.replica,
                client_rack: limits.client_rack.clone(),
            };
            split.push(owner, index, spec);
        }
    }
    let on_owner = move |shard: Rc<Shard>, specs| read_on_owner(shard, specs, max_bytes);
    // An owner that is stopping: a retriable error sends the client back
    // to Metadata.
    let unreachable = || PartitionRead::failed(ErrorCode::NOT_LEADER_OR_FOLLOWER);
    for (index, read) in scatter(ctx.shard(), split, on_owner, unreachable).await {
        reads[index] = read;
    }
    apply_budget(targets, &mut reads, max_bytes);
    reads
}

/// The response's byte budget, applied in target order over reads that
/// each owner budgeted on its own.
fn apply_budget(targets: &[Target], reads: &mut [PartitionRead], max_bytes: u32) {
    let mut budget = Budget::new(max_bytes);
    for (target, read) in targets.iter().zip(reads) {
        let records = std::mem::take(&mut read.records);
        read.records = budget.take(records, target.params.partition_max_bytes);
        if read.records.is_empty() {
            read.aborted.clear();
        }
    }
}

/// Runs on the owner: reads its partitions in request order under one
/// budget of `max_bytes`.
async fn read_on_owner(
    shard: Rc<Shard>,
    specs: Vec<ReadSpec>,
    max_bytes: u32,
) -> Vec<PartitionRead> {
    let mut budget = Budget::new(max_bytes);
    let mut reads = Vec::with_capacity(specs.len());
    for spec in &specs {
        reads.push(read_partition(&shard, spec, &mut budget).await);
    }
    reads
}

async fn read_partition(shard: &Shard, spec: &ReadSpec, budget: &mut Budget) -> PartitionRead {
    let Some(partition) = shard.partition(&spec.topic, spec.partition) else {
        return PartitionRead::failed(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
    };
    let offset = spec.params.fetch_offset;
    if let Some(diverging) = diverging_epoch(&partition, &spec.params).await {
        return PartitionRead {
            diverging: Some(diverging),
            ..PartitionRead::empty(&partition)
        };
    }
    if offset < partition.log_start_offset() || offset > partition.log_end_offset() {
        return PartitionRead::out_of_range(&partition);
    }
    if let Some(rack) = &spec.client_rack {
        if let Some(preferred) = preferred_read_replica(shard, &partition, rack, offset) {
            return PartitionRead {
                preferred_read_replica: preferred,
                ..PartitionRead::empty(&partition)
            };
        }
    }
    if let Some(replica) = spec.replica {
        if let Err(error) = partition.follower_fetched(replica, offset).await {
            tracing::warn!(topic = %spec.topic, partition = spec.partition, replica, %error, "recording a follower's fetch");
        }
    }
    let Some(read_bytes) = budget.read_bytes(spec.params.partition_max_bytes) else {
        return PartitionRead::empty(&partition);
    };
    match partition
        .fetch_regions(offset, read_bytes, spec.isolation)
        .await
    {
        Ok(fetched) => {
            // The owner keeps log start <= high watermark; the answer must
            // say so too, or a consumer would be sent out of the log.
            assert!(
                fetched.log_start_offset <= fetched.high_watermark,
                "{}-{}: log start {} above high watermark {}",
                spec.topic,
                spec.partition,
                fetched.log_start_offset,
                fetched.high_watermark
            );
            let fetched_bytes = fetched.size_bytes();
            let records = budget.take(fetched.regions.clone(), spec.params.partition_max_bytes);
            let kept_bytes: u64 = records.iter().map(|region| region.len).sum();
            let next_offset = if kept_bytes == fetched_bytes {
                Some(fetched.next_offset)
            } else {
                base_offset_at(&fetched.regions, kept_bytes)
            };
            let offsets_out = next_offset.map_or(0, |next| next.saturating_sub(offset).max(0));
            // Only the transactions overlapping what is sent: the budget
            // may have kept fewer batches than were read.
            let upper = next_offset.unwrap_or(offset);
            let aborted = fetched
                .aborted
                .iter()
                .filter(|txn| txn.first_offset < upper)
                .map(|txn| (txn.producer_id, txn.first_offset))
                .collect();
            PartitionRead {
                error_code: ErrorCode::NONE,
                preferred_read_replica: -1,
                high_watermark: fetched.high_watermark,
                last_stable_offset: fetched.last_stable_offset,
                log_start_offset: fetched.log_start_offset,
                records,
                offsets_out: u64::try_from(offsets_out).unwrap_or(0),
                aborted,
                diverging: None,
            }
        }
        // Retention moved the log start between the check and the read.
        Err(error) if error.error_code() == ErrorCode::OFFSET_OUT_OF_RANGE => {
            PartitionRead::out_of_range(&partition)
        }
        Err(error) => {
            tracing::warn!(topic = %spec.topic, partition = spec.partition, %error, "fetch read");
            PartitionRead::failed(error.error_code())
        }
    }
}

/// KIP-392 with Kafka's `RackAwareReplicaSelector`, on the leader: none
/// when the leader is in the consumer's rack or no replica there will do,
/// else of the in-sync replicas in that rack on live brokers that hold
/// the consumer's `offset`, the one furthest ahead (the lowest id of
/// those level).
fn preferred_read_replica(
    shard: &Shard,
    partition: &Partition,
    rack: &str,
    offset: i64,
) -> Option<i32> {
    if shard.config.rack.as_deref() == Some(rack) {
        return None;
    }
    let image = shard.image();
    let in_rack = |id: i32| {
        image
            .broker(id)
            .is_some_and(|b| !b.fenced && b.rack.as_deref() == Some(rack))
    };
    partition
        .in_sync_followers_holding(offset)
        .into_iter()
        .filter(|&(id, _)| in_rack(id))
        .max_by_key(|&(id, held)| (held, std::cmp::Reverse(id)))
        .map(|(id, _)| id)
}

/// Kafka's check of a fetch's last fetched epoch (`Partition
/// .fetchRecords`): where this log's history of that epoch ends; a
/// fetcher whose epoch is unknown here, or whose offset is past that end,
/// gets (epoch, end offset) back to truncate to. None: no divergence (or
/// no epoch sent).
async fn diverging_epoch(partition: &Partition, params: &FetchParams) -> Option<(i32, i64)> {
    if params.last_fetched_epoch < 0 {
        return None;
    }
    let (epoch, end_offset) = partition
        .end_offset_for_epoch(params.last_fetched_epoch)
        .await
        .ok()?;
    if epoch < 0 {
        return None;
    }
    (epoch < params.last_fetched_epoch || end_offset < params.fetch_offset)
        .then_some((epoch, end_offset))
}

/// What an owner waits on for one partition.
#[derive(Debug)]
struct WaitSpec {
    topic: String,
    partition: i32,
    /// Wakes once the readable end (high watermark, or LSO for
    /// read_committed) passes this offset.
    offset: i64,
    isolation: IsolationLevel,
}

/// What ended a wait for data.
enum Woken {
    /// No partition has an owner to wait on.
    Nothing,
    /// One owner saw data arrive and read its partitions at once: the
    /// targets' positions and their fresh reads, in that order.
    Read {
        indices: Vec<usize>,
        fresh: Vec<PartitionRead>,
    },
    /// The owner could not be reached: read everything again.
    Unknown,
}

/// Waits on every owner at once for one of its partitions to pass what
/// was read (the high watermark, or the LSO for read_committed); the first
/// owner to see data reads its partitions there and answers with them.
async fn wait_for_any(
    ctx: &RequestContext,
    targets: &[Target],
    reads: &[PartitionRead],
    limits: &Limits,
) -> Woken {
    let mut groups: BTreeMap<usize, OwnerWait> = BTreeMap::new();
    for (index, (target, read)) in targets.iter().zip(reads).enumerate() {
        if let Ok(owner) = target.owner {
            let isolation = target.isolation(limits.isolation);
            let seen = match isolation {
                IsolationLevel::ReadUncommitted
                | IsolationLevel::FollowerRead { committed: false } => read.high_watermark,
                IsolationLevel::ReadCommitted
                | IsolationLevel::FollowerRead { committed: true } => read.last_stable_offset,
                // A follower waits for the log end to pass its offset.
                IsolationLevel::LogEnd => target.params.fetch_offset,
            };
            let group = groups.entry(owner).or_default();
            group.indices.push(index);
            group.waits.push(WaitSpec {
                topic: target.topic.clone(),
                partition: target.key.partition,
                offset: target.params.fetch_offset.max(seen),
                isolation,
            });
            group.reads.push(ReadSpec {
                topic: target.topic.clone(),
                partition: target.key.partition,
                params: target.params,
                isolation,
                replica: limits.replica,
                client_rack: limits.client_rack.clone(),
            });
        }
    }
    if groups.is_empty() {
        return Woken::Nothing;
    }
    let max_bytes = limits.max_bytes;
    let mut cancels = Vec::with_capacity(groups.len());
    let mut waits = Vec::with_capacity(groups.len());
    let mut positions = Vec::with_capacity(groups.len());
    for (owner, group) in groups {
        let (cancel, cancelled) = oneshot::channel::<()>();
        cancels.push(cancel);
        positions.push(group.indices);
        let (wait_specs, read_specs) = (group.waits, group.reads);
        let work = move |shard: Rc<Shard>| {
            wait_on_owner(shard, wait_specs, read_specs, max_bytes, cancelled)
        };
        waits.push(Box::pin(ctx.shard().router.invoke_on(owner, work)));
    }
    // The first owner to answer wins; dropping `cancels` ends the other
    // owners' waits now.
    let (answer, first, _) = select_all(waits).await;
    drop(cancels);
    match answer {
        Ok(Some(fresh)) => Woken::Read {
            indices: std::mem::take(&mut positions[first]),
            fresh,
        },
        Ok(None) | Err(_) => Woken::Unknown,
    }
}

/// One owner's share of a wait: where its partitions sit in the request,
/// what to wait for and what to read then.
#[derive(Default)]
struct OwnerWait {
    indices: Vec<usize>,
    waits: Vec<WaitSpec>,
    reads: Vec<ReadSpec>,
}

/// Runs on the owner: once one of its partitions gets data (or is gone),
/// reads them all under one budget of `max_bytes` and returns the reads;
/// `None` when the request was cancelled first (answered, timed out, or
/// its connection closed).
async fn wait_on_owner(
    shard: Rc<Shard>,
    waits: Vec<WaitSpec>,
    reads: Vec<ReadSpec>,
    max_bytes: u32,
    cancelled: oneshot::Receiver<()>,
) -> Option<Vec<PartitionRead>> {
    let mut pending = Vec::with_capacity(waits.len());
    let mut gone = false;
    for spec in waits {
        // A partition gone since the read: the read reports it now.
        let Some(partition) = shard.partition(&spec.topic, spec.partition) else {
            gone = true;
            break;
        };
        pending.push(Box::pin(async move {
            partition
                .wait_for_data(spec.offset, WAIT_UNBOUNDED, spec.isolation)
                .await
        }));
    }
    if !gone && !pending.is_empty() {
        let woken = select(select_all(pending), cancelled).await;
        if let futures_util::future::Either::Right(_) = woken {
            return None;
        }
    }
    Some(read_on_owner(shard, reads, max_bytes).await)
}

/// The session's id for the response and which targets it carries.
fn finish_session(
    ctx: &RequestContext,
    end: SessionEnd,
    uses_topic_ids: bool,
    targets: &[Target],
    reads: &[PartitionRead],
) -> (i32, Vec<bool>) {
    let answered = targets.iter().zip(reads);
    let (shard_id, shard_count) = (ctx.shard().id(), ctx.shard().count());
    match end {
        SessionEnd::Sessionless => (0, vec![true; targets.len()]),
        SessionEnd::Create => {
            let cached = answered.map(|(t, r)| (t.key.clone(), t.params, r.observed()));
            let session_id = with_shard_sessions(shard_id, shard_count, |cache| {
                cache.create(uses_topic_ids, cached)
            });
            (session_id, vec![true; targets.len()])
        }
        SessionEnd::Incremental(session_id) => {
            let shown = with_shard_sessions(shard_id, shard_count, |cache| {
                answered
                    .map(|(t, r)| cache.must_respond(session_id, &t.key, &r.observed()))
                    .collect()
            });
            (session_id, shown)
        }
    }
}

/// The response without records, and each shown partition's records in
/// response order (for [`encode_fetch_response`]).
fn build_response(
    version: i16,
    limits: &Limits,
    session_id: i32,
    targets: Vec<Target>,
    reads: Vec<PartitionRead>,
    shown: &[bool],
) -> (FetchResponse, Vec<PartitionRecords>) {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut records: Vec<PartitionRecords> = Vec::new();
    for ((target, read), &show) in targets.into_iter().zip(reads).zip(shown) {
        if !show {
            continue;
        }
        let data = partition_data(target.key.partition, &read, limits.isolation);
        records.push(Some(read.records.into_iter().map(Chunk::File).collect()));
        // Kafka groups consecutive partitions of one topic under one entry.
        match topics.last_mut() {
            Some(last) if names_topic(last, &target.key.topic) => last.partitions.push(data),
            _ => topics.push(topic_response(&target.key.topic).with_partitions(vec![data])),
        }
    }
    let response = FetchResponse::default().with_responses(topics);
    let response = if version >= SESSION_VERSION_MIN {
        response
            .with_error_code(ErrorCode::NONE.code())
            .with_session_id(session_id)
    } else {
        response
    };
    (response, records)
}

fn topic_response(topic: &TopicKey) -> FetchableTopicResponse {
    match topic {
        TopicKey::Name(name) => FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_string(name.clone()))),
        TopicKey::Id(id) => FetchableTopicResponse::default().with_topic_id(*id),
    }
}

fn names_topic(response: &FetchableTopicResponse, topic: &TopicKey) -> bool {
    match topic {
        TopicKey::Name(name) => response.topic.0.as_str() == name,
        TopicKey::Id(id) => response.topic_id == *id,
    }
}

/// A partition's answer but its records, which go out as file regions.
fn partition_data(
    partition: i32,
    read: &PartitionRead,
    isolation: IsolationLevel,
) -> PartitionData {
    let aborted_transactions = (isolation == IsolationLevel::ReadCommitted).then(|| {
        read.aborted
            .iter()
            .map(|&(producer_id, first_offset)| {
                AbortedTransaction::default()
                    .with_producer_id(ProducerId(producer_id))
                    .with_first_offset(first_offset)
            })
            .collect()
    });
    let diverging = read
        .diverging
        .map_or_else(Default::default, |(epoch, end_offset)| {
            EpochEndOffset::default()
                .with_epoch(epoch)
                .with_end_offset(end_offset)
        });
    PartitionData::default()
        .with_partition_index(partition)
        .with_diverging_epoch(diverging)
        .with_error_code(read.error_code.code())
        .with_high_watermark(read.high_watermark)
        .with_last_stable_offset(read.last_stable_offset)
        .with_log_start_offset(read.log_start_offset)
        .with_aborted_transactions(aborted_transactions)
        .with_preferred_read_replica(BrokerId(read.preferred_read_replica))
}

/// Whether a broker sent the fetch (replica id 0 or above; v15+ carry it
/// in the replica state).
fn is_follower(fetch: &FetchRequest, version: i16) -> bool {
    replica_id(fetch, version) >= 0
}

fn replica_id(fetch: &FetchRequest, version: i16) -> i32 {
    match version {
        ..=14 => fetch.replica_id.0,
        _ => fetch.replica_state.replica_id.0,
    }
}

/// A follower's fetch: it must be allowed to replicate (CLUSTER_ACTION)
/// and be one of each partition's replicas (REPLICA_NOT_AVAILABLE for a
/// broker the partition is not assigned to, as Kafka's leader answers).
fn check_replica(image: &MetadataImage, targets: &mut [Target], replica_id: i32, allowed: bool) {
    for target in targets.iter_mut() {
        if target.owner.is_err() {
            continue;
        }
        if !allowed {
            target.owner = Err(ErrorCode::TOPIC_AUTHORIZATION_FAILED);
            continue;
        }
        let assigned = image
            .topic(&target.topic)
            .and_then(|t| t.leadership(target.key.partition))
            .is_none_or(|l| l.replicas.contains(&replica_id));
        if !assigned {
            target.owner = Err(ErrorCode::REPLICA_NOT_AVAILABLE);
        }
    }
}

/// The response's size as the consumer quota counts it (Kafka's
/// `FetchContext.getResponseSize`): the body every partition read would
/// put in it, records included. An incremental session shows fewer
/// partitions; the difference is their few bytes of watermarks, and
/// records always show.
fn response_bytes(
    version: i16,
    limits: &Limits,
    targets: &[Target],
    reads: &[PartitionRead],
) -> u64 {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut records_bytes = 0u64;
    for (target, read) in targets.iter().zip(reads) {
        records_bytes += read.records_bytes();
        let data = partition_data(target.key.partition, read, limits.isolation);
        match topics.last_mut() {
            Some(last) if names_topic(last, &target.key.topic) => last.partitions.push(data),
            _ => topics.push(topic_response(&target.key.topic).with_partitions(vec![data])),
        }
    }
    let response = FetchResponse::default().with_responses(topics);
    let body_bytes = response.compute_size(version).unwrap_or(0);
    u64::try_from(body_bytes).unwrap_or(u64::MAX) + records_bytes
}

/// A throttled fetch's answer (Kafka's `getThrottledResponse`): no
/// partitions, error NONE, the session's id (0 for a sessionless or new
/// one, which is then not created). The bytes it would have carried were
/// taken back from the sensor.
fn throttled_response(version: i16, end: SessionEnd) -> FetchResponse {
    let response = FetchResponse::default();
    if version < SESSION_VERSION_MIN {
        return response;
    }
    let session_id = match end {
        SessionEnd::Incremental(session_id) => session_id,
        SessionEnd::Sessionless | SessionEnd::Create => 0,
    };
    response
        .with_error_code(ErrorCode::NONE.code())
        .with_session_id(session_id)
}

/// A session that cannot serve the request: only the error, session id 0.
fn session_error(error_code: ErrorCode) -> FetchResponse {
    FetchResponse::default()
        .with_error_code(error_code.code())
        .with_session_id(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            key: PartitionKey {
                topic: TopicKey::Name("t".to_string()),
                partition: 0,
            },
            params: FetchParams {
                fetch_offset: 7,
                partition_max_bytes: 1 << 20,
                current_leader_epoch: 1,
                last_fetched_epoch: 0,
            },
            topic: "t".to_string(),
            owner: Ok(0),
            from_follower: false,
        }
    }

    fn empty_read() -> PartitionRead {
        PartitionRead {
            error_code: ErrorCode::NONE,
            preferred_read_replica: -1,
            high_watermark: 10,
            last_stable_offset: 10,
            log_start_offset: 0,
            records: Vec::new(),
            offsets_out: 0,
            aborted: Vec::new(),
            diverging: None,
        }
    }

    #[test]
    fn a_diverging_epoch_answers_without_waiting() {
        let limits = Limits {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 1 << 20,
            isolation: IsolationLevel::LogEnd,
            replica: Some(2),
            client_rack: None,
            follower_reads: false,
        };
        let targets = [target()];
        // Nothing to send and no error: a follower's fetch waits.
        assert!(!limits.answers_now(&targets, &[empty_read()]));
        // A diverging epoch is the answer: re-reading would give it again
        // (and the leader's log end past the fetch offset would end every
        // wait at once: the node spun).
        let diverging = PartitionRead {
            diverging: Some((0, 5)),
            ..empty_read()
        };
        assert!(limits.answers_now(&targets, &[diverging]));
        // So is a preferred read replica (KIP-392).
        let elsewhere = PartitionRead {
            preferred_read_replica: 3,
            ..empty_read()
        };
        assert!(limits.answers_now(&targets, &[elsewhere]));
    }
}
