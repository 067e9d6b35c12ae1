//! Followers: a broker copies the partitions it is a follower replica of
//! from their leaders, with Kafka's Fetch API as Kafka's replica fetchers
//! do (replica id = this node, read to the leader's log end).
//!
//! Per shard, one fetcher task per leader broker, for the partitions this
//! shard holds that the broker leads (Kafka: a fetcher per source broker;
//! here per source broker and shard, so no partition's bytes cross a
//! core). A round fetches every such partition from its log end and
//! appends what came back byte for byte (`Partition::append_replicated`:
//! offsets, epochs and timestamps are the leader's), then waits for it to
//! be durable (fsync) before the next fetch: a follower's fetch offset is
//! what it holds on disk, so the leader can count only fsync'd copies
//! (issue 15: acknowledged on a quorum of disks).
//!
//! The set of followed partitions is the image's: it is read afresh each
//! round, and the supervisor starts a fetcher when a leader appears
//! (image changes wake it). A fetcher whose leader leads nothing of this
//! shard's any more ends.
//!
//! The leader's answer carries its high watermark; the follower's is the
//! lower of it and its own flushed offset (`partition::replicas`).
//!
//! Divergence (a former leader's tail the new leader never had): each
//! fetch carries the epoch of this log's last batch; the leader answers
//! a diverging epoch (epoch, end offset) when its log ends that epoch
//! below the fetch offset, and the follower truncates there and fetches
//! again (KIP-595's truncation through Fetch, which Kafka's followers use
//! from 2.7 instead of a separate OffsetForLeaderEpoch round trip).
//!
//! A follower whose leader's log starts past everything it holds (a new
//! replica, one away longer than retention) gets OFFSET_OUT_OF_RANGE with
//! the leader's log start and restarts its log there; when that start
//! falls inside a batch, the empty log restarts at the batch (Kafka's
//! `truncateFullyAndStartAt` in both cases).
//!
//! Lives on: every shard of a broker in a cluster.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::{Rc, Weak};
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rafka_core::log::LogError;
use rafka_core::metadata::MetadataImage;
use rafka_proto::error::ErrorCode;

use crate::kafka_client::KafkaLink;
use crate::partition::{FetchedAt, PartitionError};
use crate::runtime::within;
use crate::shard::Shard;
use crate::storage::ShardStorage;

/// The Fetch version followers send (topic names, replica id field).
const FETCH_VERSION: i16 = 12;
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a follower's append may wait to be durable.
const DURABLE_TIMEOUT: Duration = Duration::from_secs(30);
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// How often the supervisor looks again without an image change.
const SUPERVISE_EVERY: Duration = Duration::from_secs(1);

/// A partition this shard follows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Followed {
    topic: String,
    partition: i32,
    leader_epoch: i32,
}

/// Starts the supervisor of this shard's fetchers (a broker in a cluster
/// only).
pub fn spawn<S: ShardStorage>(shard: &Rc<Shard<S>>) {
    if !shard.config.quorum_configured() || !shard.config.process_roles.broker {
        return;
    }
    let running: Rc<RefCell<HashSet<i32>>> = Rc::default();
    let weak = Rc::downgrade(shard);
    glommio::spawn_local(async move {
        loop {
            let Some(shard) = weak.upgrade().filter(|s| !s.is_stopping()) else {
                return;
            };
            let changed = shard.image_view().changed();
            let image = shard.image_view().get();
            for leader in followed_by_leader(&shard, &image).into_keys() {
                if running.borrow_mut().insert(leader) {
                    tracing::info!(shard = shard.id(), leader, "replicating from a leader");
                    let fetcher = fetch_from(Rc::downgrade(&shard), leader, Rc::clone(&running));
                    glommio::spawn_local(fetcher).detach();
                }
            }
            drop(shard);
            within(SUPERVISE_EVERY, changed).await;
        }
    })
    .detach();
}

/// This shard's followed partitions by leader: the ones it holds whose
/// leader is another live broker.
fn followed_by_leader<S: ShardStorage>(
    shard: &Shard<S>,
    image: &MetadataImage,
) -> BTreeMap<i32, Vec<Followed>> {
    let me = shard.config.node_id;
    let mut by_leader: BTreeMap<i32, Vec<Followed>> = BTreeMap::new();
    for partition in shard.registry().all() {
        let Some(topic) = image.topic(&partition.topic) else {
            continue;
        };
        let Some(leadership) = topic.leadership(partition.index) else {
            continue;
        };
        let live = image.broker(leadership.leader).is_some_and(|b| !b.fenced);
        if leadership.leader == me || !leadership.replicas.contains(&me) || !live {
            continue;
        }
        by_leader
            .entry(leadership.leader)
            .or_default()
            .push(Followed {
                topic: partition.topic.to_string(),
                partition: partition.index,
                leader_epoch: leadership.leader_epoch,
            });
    }
    by_leader
}

/// Where this broker reaches `leader`: its first PLAINTEXT listener (the
/// inter-broker listener; TLS/SASL between brokers comes with the
/// controller listener's).
pub(crate) fn address_of(image: &MetadataImage, leader: i32) -> Option<String> {
    let broker = image.broker(leader)?;
    let endpoint = broker.endpoints.iter().find(|e| e.security_protocol == 0)?;
    Some(format!("{}:{}", endpoint.host, endpoint.port))
}

/// One fetcher: rounds of Fetch to `leader` for the partitions this shard
/// follows from it, until there are none (or the broker stops).
async fn fetch_from<S: ShardStorage>(
    shard: Weak<Shard<S>>,
    leader: i32,
    running: Rc<RefCell<HashSet<i32>>>,
) {
    let mut link: Option<(String, KafkaLink)> = None;
    loop {
        let Some(current) = shard.upgrade().filter(|s| !s.is_stopping()) else {
            break;
        };
        let image = current.image_view().get();
        let followed = followed_by_leader(&current, &image)
            .remove(&leader)
            .unwrap_or_default();
        if followed.is_empty() {
            break;
        }
        let Some(address) = address_of(&image, leader) else {
            tracing::warn!(
                leader,
                "the leader has no PLAINTEXT listener to replicate from"
            );
            drop(current);
            glommio::timer::sleep(SUPERVISE_EVERY).await;
            continue;
        };
        if link.as_ref().is_none_or(|(a, _)| *a != address) {
            let response_max = current.config.replica_fetch_response_max_bytes.max(0) as usize;
            link = KafkaLink::open(&address, "rafka-replica", response_max * 2 + (1 << 20))
                .await
                .map(|l| (address.clone(), l));
        }
        let Some((_, connection)) = link.as_mut() else {
            drop(current);
            glommio::timer::sleep(RETRY_BACKOFF).await;
            continue;
        };
        let (request, asked) = fetch_request(&current, &followed).await;
        let wait = Duration::from_millis(current.config.replica_fetch_wait_max_ms.max(0) as u64);
        drop(current);
        let answer = connection
            .call(&request, FETCH_VERSION, wait + ANSWER_TIMEOUT)
            .await;
        let Some(current) = shard.upgrade() else {
            break;
        };
        match answer {
            Ok(response) if response.error_code == 0 => {
                if !append_fetched(&current, leader, &asked, response).await {
                    drop(current);
                    glommio::timer::sleep(RETRY_BACKOFF).await;
                }
            }
            Ok(response) => {
                tracing::debug!(leader, error = response.error_code, "replica fetch refused");
                drop(current);
                glommio::timer::sleep(RETRY_BACKOFF).await;
            }
            Err(error) => {
                tracing::debug!(leader, %error, "replica fetch");
                link = None;
                drop(current);
                glommio::timer::sleep(RETRY_BACKOFF).await;
            }
        }
    }
    running.borrow_mut().remove(&leader);
}

/// What one fetch asked, by (topic, partition).
type Asked = HashMap<(String, i32), FetchedAt>;

/// The fetch for `followed`, and what it asks of each partition.
async fn fetch_request<S: ShardStorage>(
    shard: &Shard<S>,
    followed: &[Followed],
) -> (FetchRequest, Asked) {
    let mut topics: Vec<FetchTopic> = Vec::new();
    let mut asked = Asked::new();
    for f in followed {
        let Some(partition) = shard.partition(&f.topic, f.partition) else {
            continue;
        };
        // The fetch offset tells the leader what is on disk here: a tail
        // whose flush has not completed (a failed or timed-out wait) waits
        // for the flusher first.
        if partition.flushed_offset() < partition.log_end_offset() {
            continue;
        }
        let Ok(last_fetched_epoch) = partition.latest_epoch().await else {
            continue;
        };
        let fetch_offset = partition.log_end_offset();
        asked.insert(
            (f.topic.clone(), f.partition),
            FetchedAt {
                leader_epoch: f.leader_epoch,
                fetch_offset,
            },
        );
        let fetch = FetchPartition::default()
            .with_partition(f.partition)
            .with_current_leader_epoch(f.leader_epoch)
            .with_last_fetched_epoch(last_fetched_epoch)
            .with_fetch_offset(fetch_offset)
            .with_log_start_offset(partition.log_start_offset())
            .with_partition_max_bytes(shard.config.replica_fetch_max_bytes);
        match topics.last_mut() {
            Some(last) if last.topic.0.as_str() == f.topic => last.partitions.push(fetch),
            _ => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(f.topic.clone())))
                    .with_partitions(vec![fetch]),
            ),
        }
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(shard.config.node_id))
        .with_max_wait_ms(shard.config.replica_fetch_wait_max_ms)
        .with_min_bytes(1)
        .with_max_bytes(shard.config.replica_fetch_response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    (request, asked)
}

/// Appends what a fetch brought, partition by partition, each durable
/// before the next fetch; whether the round went without a refusal. A
/// partition whose leadership changed while the fetch was out (it leads
/// now, or follows at another epoch) takes nothing from the answer: not
/// its records, nor its truncation, nor its high watermark.
async fn append_fetched<S: ShardStorage>(
    shard: &Shard<S>,
    leader: i32,
    asked: &Asked,
    response: kafka_protocol::messages::FetchResponse,
) -> bool {
    let mut clean = true;
    for topic in response.responses {
        let name = topic.topic.0.to_string();
        for data in topic.partitions {
            let index = data.partition_index;
            let Some(at) = asked.get(&(name.clone(), index)).copied() else {
                continue;
            };
            let current = shard
                .partition(&name, index)
                .is_some_and(|p| !p.is_leader() && p.leader_epoch() == at.leader_epoch);
            if !current {
                tracing::debug!(
                    leader,
                    topic = name,
                    partition = index,
                    asked_epoch = at.leader_epoch,
                    "fetch answer outlived its leadership: dropped"
                );
                continue;
            }
            if data.error_code == ErrorCode::OFFSET_OUT_OF_RANGE.code() {
                // The leader's log starts past all this log holds: start
                // over there (the leader's answer carries its log start).
                if let Some(partition) = shard.partition(&name, index) {
                    let start = data.log_start_offset;
                    if start > partition.log_end_offset() {
                        match partition.restart_at(start).await {
                            Ok(_) => tracing::info!(
                                leader,
                                topic = name,
                                partition = index,
                                log_start_offset = start,
                                "the leader's log starts past this one's end: restarted there"
                            ),
                            Err(error) => {
                                clean = false;
                                tracing::warn!(leader, topic = name, partition = index, %error, "restarting at the leader's log start");
                            }
                        }
                        continue;
                    }
                }
            }
            if data.error_code != 0 {
                clean = false;
                let error = ErrorCode::from_code(data.error_code);
                tracing::debug!(
                    leader,
                    topic = name,
                    partition = index,
                    ?error,
                    "replica fetch"
                );
                continue;
            }
            if data.diverging_epoch.epoch >= 0 {
                let (epoch, end_offset) =
                    (data.diverging_epoch.epoch, data.diverging_epoch.end_offset);
                if let Err(error) = truncate_diverging(shard, &name, index, epoch, end_offset).await
                {
                    clean = false;
                    tracing::warn!(leader, topic = name, partition = index, %error, "truncating a diverging log");
                }
                continue;
            }
            if let Some(records) = data.records.filter(|r| !r.is_empty()) {
                let mut replicated = shard
                    .registry()
                    .replicate(&name, index, &records, Some(at), DURABLE_TIMEOUT)
                    .await;
                if let Err(PartitionError::Log(LogError::NotContiguous { expected, found })) =
                    &replicated
                {
                    // An empty log (just restarted at the leader's log
                    // start) gets a first batch that starts below it: the
                    // start fell inside that batch. Start at the batch.
                    let (expected, found) = (*expected, *found);
                    let empty = shard
                        .partition(&name, index)
                        .is_some_and(|p| p.log_start_offset() == p.log_end_offset());
                    if empty && found < expected {
                        if let Some(partition) = shard.partition(&name, index) {
                            if let Ok(end) = partition.restart_at(found).await {
                                // Asked at the start this log now has.
                                let at = FetchedAt {
                                    fetch_offset: end,
                                    ..at
                                };
                                replicated = shard
                                    .registry()
                                    .replicate(&name, index, &records, Some(at), DURABLE_TIMEOUT)
                                    .await;
                            }
                        }
                    }
                }
                if let Err(error @ PartitionError::StaleFetch { .. }) = &replicated {
                    tracing::debug!(leader, topic = name, partition = index, %error, "replica fetch");
                    continue;
                }
                if let Err(error) = replicated {
                    clean = false;
                    tracing::warn!(
                        leader,
                        topic = name,
                        partition = index,
                        %error,
                        "appending replicated records"
                    );
                    continue;
                }
            }
            // The leader's log start moved (DeleteRecords, retention):
            // the follower's follows, within what it holds on disk.
            if let Some(partition) = shard.partition(&name, index) {
                if let Err(error) = partition.leader_high_watermark(data.high_watermark).await {
                    tracing::warn!(topic = name, partition = index, %error, "following the leader's high watermark");
                }
                let start = data.log_start_offset.min(partition.high_watermark());
                if start > partition.log_start_offset() {
                    if let Err(error) = partition.delete_records(start).await {
                        tracing::warn!(topic = name, partition = index, %error, "following the leader's log start");
                    }
                }
            }
        }
    }
    clean
}

/// The leader says this log leaves its history after `end_offset` of
/// `epoch` (a diverging epoch): truncate to where both logs end that
/// epoch (Kafka's `truncateOnFetchResponse`). The next fetch carries this
/// log's new last epoch, checked again, until the logs agree.
async fn truncate_diverging<S: ShardStorage>(
    shard: &Shard<S>,
    topic: &str,
    index: i32,
    epoch: i32,
    end_offset: i64,
) -> Result<(), crate::partition::PartitionError> {
    let Some(partition) = shard.partition(topic, index) else {
        return Ok(());
    };
    let (local_epoch, local_end) = partition.end_offset_for_epoch(epoch).await?;
    let offset = match local_epoch {
        -1 => end_offset,
        _ => end_offset.min(local_end),
    };
    let before = partition.log_end_offset();
    let end = partition.truncate_to(offset).await?;
    tracing::info!(
        topic,
        partition = index,
        epoch,
        leader_end_offset = end_offset,
        before,
        after = end,
        "truncated to the leader's history"
    );
    Ok(())
}
