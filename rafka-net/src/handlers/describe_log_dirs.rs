//! DescribeLogDirs (key 35), v1-v4: the broker's log dirs, the partitions
//! each holds with their sizes, and (v4) the dir's filesystem size and
//! free space, as `kafka-log-dirs.sh --describe` shows them.
//!
//! Top-down: decode -> authorize -> pick the partitions from the shard's
//! image -> split by owning shard -> measure on every owner at once (and
//! `statvfs` every dir meanwhile) -> gather -> encode.
//!
//! Answers, as Kafka's `ReplicaManager.describeLogDirs`:
//! - DESCRIBE on the cluster is required: v3+ answers
//!   CLUSTER_AUTHORIZATION_FAILED at the top, v1-2 (no error field) an
//!   empty list.
//! - One result per configured log dir (`log.dirs`), by its path. rafka
//!   keeps every partition in the first; the others are listed with no
//!   partitions. A dir that cannot be measured (missing, unreadable) is
//!   KAFKA_STORAGE_ERROR with no partitions, as Kafka answers an offline
//!   dir.
//! - `topics` null lists every partition; otherwise the named partitions
//!   that exist (an unknown topic or partition is just absent, and a
//!   topic none of whose partitions are listed is left out).
//! - A partition's size is the bytes of its segment files (`.log`, as
//!   Kafka's `UnifiedLog.size`; indexes not counted); offset lag 0 (the
//!   leader's own log), never a future replica. Topics by name, partitions
//!   by index.
//! - v4: total bytes and usable bytes (`f_bavail`, what an unprivileged
//!   writer may still use) of the dir's filesystem.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::rc::Rc;

use futures_util::future::{join, join_all};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::metadata::MetadataImage;
use rafka_proto::error::ErrorCode;
use rafka_shard::disk::{measure_offloaded, Space};
use rafka_shard::shard::Shard;

use super::fanout::{scatter, Split};
use super::{HandlerError, RequestContext};

/// First version with a top-level error code.
const ERROR_CODE_VERSION_MIN: i16 = 3;
/// Kafka's `UNKNOWN_VOLUME_BYTES`: total/usable bytes not known.
const UNKNOWN_VOLUME_BYTES: i64 = -1;

/// (topic, partition).
type TopicPartition = (String, i32);

pub async fn handle(
    ctx: &RequestContext,
    request: DescribeLogDirsRequest,
) -> Result<DescribeLogDirsResponse, HandlerError> {
    if !ctx.authorize(AclOperation::Describe, Resource::Cluster) {
        let response = DescribeLogDirsResponse::default();
        if ctx.version() < ERROR_CODE_VERSION_MIN {
            return Ok(response);
        }
        return Ok(response.with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code()));
    }
    let wanted = wanted_partitions(&ctx.image(), &request);
    let mut split = Split::new();
    for (tp, owner) in wanted {
        split.push(owner, tp.clone(), tp);
    }
    let dirs = ctx.config().log_dirs.clone();
    let (sizes, spaces) = join(
        scatter(ctx.shard(), split, sizes_on_owner, || None),
        join_all(dirs.iter().map(|dir| measure_offloaded(dir))),
    )
    .await;
    let mut by_topic: BTreeMap<String, BTreeMap<i32, u64>> = BTreeMap::new();
    for ((topic, partition), size) in sizes {
        if let Some(size_bytes) = size {
            by_topic
                .entry(topic)
                .or_default()
                .insert(partition, size_bytes);
        }
    }
    let none = BTreeMap::new();
    let results = dirs
        .iter()
        .zip(spaces)
        .enumerate()
        .map(|(index, (dir, space))| {
            // Every partition lives in the first dir (the data dir).
            let holds = if index == 0 { &by_topic } else { &none };
            dir_result(dir, space, holds)
        })
        .collect();
    Ok(DescribeLogDirsResponse::default().with_results(results))
}

/// The partitions asked for that exist, with their owning shards.
fn wanted_partitions(
    image: &MetadataImage,
    request: &DescribeLogDirsRequest,
) -> BTreeMap<TopicPartition, usize> {
    let mut wanted = BTreeMap::new();
    match &request.topics {
        None => {
            for topic in image.topics() {
                for (index, &owner) in (0..).zip(&topic.partitions) {
                    wanted.insert((topic.name.clone(), index), owner as usize);
                }
            }
        }
        Some(topics) => {
            for asked in topics {
                let Some(topic) = image.topic(asked.topic.as_str()) else {
                    continue;
                };
                let indexes: BTreeSet<i32> = asked.partitions.iter().copied().collect();
                for index in indexes {
                    if let Some(owner) = topic.shard_of(index) {
                        wanted.insert((topic.name.clone(), index), owner as usize);
                    }
                }
            }
        }
    }
    wanted
}

fn dir_result(
    dir: &Path,
    space: std::io::Result<Space>,
    holds: &BTreeMap<String, BTreeMap<i32, u64>>,
) -> DescribeLogDirsResult {
    let log_dir = StrBytes::from_string(dir.display().to_string());
    let space = match space {
        Ok(space) => space,
        Err(error) => {
            tracing::warn!(dir = %dir.display(), %error, "describe log dirs: cannot measure");
            return DescribeLogDirsResult::default()
                .with_log_dir(log_dir)
                .with_error_code(ErrorCode::KAFKA_STORAGE_ERROR.code())
                .with_total_bytes(UNKNOWN_VOLUME_BYTES)
                .with_usable_bytes(UNKNOWN_VOLUME_BYTES);
        }
    };
    let topics = holds
        .iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .iter()
                .map(|(&index, &size_bytes)| {
                    DescribeLogDirsPartition::default()
                        .with_partition_index(index)
                        .with_partition_size(i64::try_from(size_bytes).unwrap_or(i64::MAX))
                        .with_offset_lag(0)
                        .with_is_future_key(false)
                })
                .collect();
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.clone())))
                .with_partitions(partitions)
        })
        .collect();
    // Kafka's `adjustForLargeFileSystems`: a size past i64 is i64::MAX.
    let bytes = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    DescribeLogDirsResult::default()
        .with_log_dir(log_dir)
        .with_error_code(ErrorCode::NONE.code())
        .with_topics(topics)
        .with_total_bytes(bytes(space.total_bytes))
        .with_usable_bytes(bytes(space.free_bytes))
}

/// On the owner: each partition's size, None if it is not open here (it
/// was deleted meanwhile, or the owner is stopping): then it is left out.
async fn sizes_on_owner(shard: Rc<Shard>, partitions: Vec<TopicPartition>) -> Vec<Option<u64>> {
    let sizes = partitions.iter().map(|(topic, index)| {
        let partition = shard.partition(topic, *index);
        async move { partition?.size_bytes().await.ok() }
    });
    join_all(sizes).await
}
