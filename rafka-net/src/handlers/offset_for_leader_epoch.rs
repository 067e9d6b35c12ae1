//! OffsetForLeaderEpoch (key 23), v2-v4: where a leader epoch ends in a
//! partition's log. Consumers (KIP-320) ask it after a metadata change to
//! detect a log truncated under their position; followers ask it to find
//! where to truncate to.
//!
//! Top-down: decode -> authorize -> resolve each partition and check its
//! current leader epoch on the shard that read the request -> split by
//! owning shard -> read the offsets on every owner at once -> gather ->
//! encode.
//!
//! Answers from the partition log's leader-epoch cache, as Kafka's leader
//! does (`UnifiedLog.endOffsetForEpoch` -> `LeaderEpochFileCache
//! .endOffsetFor`, rafka_core's `log::epoch_cache`). The cache holds
//! (epoch, first offset) for every epoch that wrote batches, and the epoch
//! a partition took over with (epoch 0 from open, while every partition
//! leads epoch 0); a data dir from before the cache existed comes up with
//! one entry (0, log start offset).
//! - CLUSTER_ACTION on the cluster (a follower) or DESCRIBE on the topic (a
//!   consumer) is required: TOPIC_AUTHORIZATION_FAILED otherwise.
//! - The latest epoch requested (the current one): that epoch and the log
//!   end offset, as Kafka answers its current epoch (not the high
//!   watermark: a consumer's position is never above the high watermark,
//!   so either is safe for it, and a follower needs the log end).
//! - An older epoch: the largest epoch at or below it and the start
//!   offset of the next epoch (where it ended).
//! - Requested epoch -1 (undefined) or above the latest (one this log
//!   never had): NONE with leader epoch -1 and end offset -1.
//! - Requested epoch below the first entry: that epoch and the first
//!   entry's start offset (the log start offset once retention or
//!   DeleteRecords moved it).
//! - `current_leader_epoch` -1 skips the check; older than the
//!   partition's leader epoch (its leadership record; 0 on a single node)
//!   is FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH.
//! - An unknown topic or partition is UNKNOWN_TOPIC_OR_PARTITION.
//! - `replica_id` (v3+) names a follower or is -1 for a consumer; Kafka
//!   answers both the same (always from the leader), and so does rafka.

use std::rc::Rc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::log::epoch_cache::{UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
use rafka_proto::error::ErrorCode;
use rafka_shard::shard::Shard;

use super::fanout::{scatter, Grid, Slot, Split};
use super::list_offsets::epoch_error_code;
use super::{HandlerError, RequestContext};

pub async fn handle(
    ctx: &RequestContext,
    request: OffsetForLeaderEpochRequest,
) -> Result<OffsetForLeaderEpochResponse, HandlerError> {
    let mut answers: Grid<Answer> = Grid::new(request.topics.iter().map(|t| t.partitions.len()));
    let split = split(ctx, &request, &mut answers);
    let found = scatter(ctx.shard(), split, end_offsets_on_owner, || {
        Answer::error(ErrorCode::NOT_LEADER_OR_FOLLOWER)
    })
    .await;
    for (slot, answer) in found {
        answers.set(slot, answer);
    }
    let topics = request
        .topics
        .iter()
        .zip(answers.into_rows())
        .map(|(topic, answers)| {
            let partitions = topic
                .partitions
                .iter()
                .zip(answers)
                .map(|(partition, answer)| {
                    EpochEndOffset::default()
                        .with_partition(partition.partition)
                        .with_error_code(answer.error_code.code())
                        .with_leader_epoch(answer.leader_epoch)
                        .with_end_offset(answer.end_offset)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    Ok(OffsetForLeaderEpochResponse::default().with_topics(topics))
}

/// One partition's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answer {
    error_code: ErrorCode,
    leader_epoch: i32,
    end_offset: i64,
}

impl Answer {
    const UNDEFINED: Answer = Answer {
        error_code: ErrorCode::NONE,
        leader_epoch: UNDEFINED_EPOCH,
        end_offset: UNDEFINED_EPOCH_OFFSET,
    };

    fn error(error_code: ErrorCode) -> Self {
        Answer {
            error_code,
            ..Answer::UNDEFINED
        }
    }
}

/// One partition to read on its owner. Crosses shards: `Send` data only.
struct Lookup {
    topic: String,
    partition: i32,
    leader_epoch: i32,
}

/// Answers what this shard can (unauthorized topics, unknown partitions,
/// stale or future current epochs) and groups the rest by owning shard.
fn split(
    ctx: &RequestContext,
    request: &OffsetForLeaderEpochRequest,
    answers: &mut Grid<Answer>,
) -> Split<Slot, Lookup> {
    let image = ctx.image();
    // Kafka: a follower's CLUSTER_ACTION covers every topic; a consumer
    // needs DESCRIBE on each.
    let follower = ctx.authorize(AclOperation::ClusterAction, Resource::Cluster);
    let mut split = Split::new();
    for (t, topic) in request.topics.iter().enumerate() {
        let name = topic.topic.as_str();
        if !follower && !ctx.authorize(AclOperation::Describe, Resource::Topic(name)) {
            answers.fill_row(t, &Answer::error(ErrorCode::TOPIC_AUTHORIZATION_FAILED));
            continue;
        }
        let found = image.topic(name);
        for (p, partition) in topic.partitions.iter().enumerate() {
            let index = partition.partition;
            let owner = found.map_or(Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION), |topic| {
                super::cluster_view::leader_shard(ctx, topic, index)
            });
            let owner = match owner {
                Ok(owner) => owner,
                Err(code) => {
                    answers.set((t, p), Answer::error(code));
                    continue;
                }
            };
            let epoch = found.map_or(0, |t| super::cluster_view::leader_epoch(t, index));
            let fenced = epoch_error_code(partition.current_leader_epoch, epoch);
            if !fenced.is_none() {
                answers.set((t, p), Answer::error(fenced));
                continue;
            }
            let lookup = Lookup {
                topic: name.to_string(),
                partition: index,
                leader_epoch: partition.leader_epoch,
            };
            split.push(owner, (t, p), lookup);
        }
    }
    split
}

/// On the owner: its partitions' answers, from each log's leader-epoch
/// cache (no IO: the entries are in memory).
async fn end_offsets_on_owner(shard: Rc<Shard>, lookups: Vec<Lookup>) -> Vec<Answer> {
    let mut answers = Vec::with_capacity(lookups.len());
    for lookup in &lookups {
        let answer = match shard.partition(&lookup.topic, lookup.partition) {
            Some(partition) => match partition.end_offset_for_epoch(lookup.leader_epoch).await {
                Ok((leader_epoch, end_offset)) => Answer {
                    error_code: ErrorCode::NONE,
                    leader_epoch,
                    end_offset,
                },
                Err(error) => Answer::error(error.error_code()),
            },
            None => Answer::error(ErrorCode::NOT_LEADER_OR_FOLLOWER),
        };
        answers.push(answer);
    }
    answers
}
