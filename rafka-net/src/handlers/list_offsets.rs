//! ListOffsets (key 2), v1-v10: the offset a consumer should start from for
//! a timestamp, or for one of Kafka's special timestamps.
//!
//! Top-down: decode -> resolve each partition and check its leader epoch on
//! the shard that read the request -> split by owning shard -> look up on
//! every owner at once -> gather -> encode.
//!
//! Answers, as a single-replica Kafka broker without tiered storage gives
//! them (leader epoch 0 wherever an offset is found, -1 otherwise):
//! - -2 EARLIEST and -4 EARLIEST_LOCAL (v8+): the log start offset.
//! - -1 LATEST: the high watermark; with read_committed (v2+) the last
//!   stable offset (the start of the earliest transaction not yet decided
//!   and durable).
//! - -3 MAX_TIMESTAMP (v7+): the first record with the largest timestamp.
//! - -5 LATEST_TIERED (v9+): nothing is tiered, so offset -1.
//! - any other value: the first record whose timestamp is at or after it.
//!
//! Only records below the high watermark (read_committed: the last stable
//! offset) count, so a consumer is never sent to an offset it cannot fetch
//! yet; nothing found answers offset -1 and
//! timestamp -1. The request's `timeout_ms` (v10) bounds remote-storage
//! lookups, which rafka does not make.

use std::collections::HashMap;

use futures_util::future::join_all;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::log::TimestampOffset;
use rafka_proto::error::ErrorCode;
use rafka_shard::partition::{IsolationLevel, PartitionError};
use rafka_shard::shard::Shard;

use super::fanout::{scatter, Grid, Slot, Split};
use super::{HandlerError, RequestContext};

pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
pub const LATEST_TIERED_TIMESTAMP: i64 = -5;

/// "The client knows no epoch": the epoch check is skipped.
const NO_LEADER_EPOCH: i32 = -1;
/// Versions whose partition responses carry the leader epoch (encoding one
/// into an older version is refused).
const LEADER_EPOCH_VERSION_MIN: i16 = 4;

pub async fn handle(
    ctx: &RequestContext,
    list: ListOffsetsRequest,
) -> Result<ListOffsetsResponse, HandlerError> {
    let mut answers: Grid<Answer> = Grid::new(list.topics.iter().map(|t| t.partitions.len()));
    let split = split(ctx, &list, &mut answers);
    let looked_up = scatter(ctx.shard(), split, look_up_on_owner, || {
        Answer::error(ErrorCode::NOT_LEADER_OR_FOLLOWER)
    })
    .await;
    for (slot, answer) in looked_up {
        answers.set(slot, answer);
    }
    Ok(response(&list, answers, ctx.version()))
}

/// One partition to look up on its owner. Crosses shards: `Send` data only.
struct Lookup {
    topic: String,
    partition: i32,
    timestamp: i64,
    isolation: IsolationLevel,
}

/// One partition's answer: an error code, or what was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answer {
    error_code: ErrorCode,
    timestamp: i64,
    offset: i64,
    leader_epoch: i32,
}

impl Answer {
    const NOT_FOUND: Answer = Answer {
        error_code: ErrorCode::NONE,
        timestamp: -1,
        offset: -1,
        leader_epoch: -1,
    };

    fn error(error_code: ErrorCode) -> Self {
        Answer {
            error_code,
            ..Answer::NOT_FOUND
        }
    }

    fn found(found: Option<TimestampOffset>, leader_epoch: i32) -> Self {
        found.map_or(Answer::NOT_FOUND, |found| Answer {
            error_code: ErrorCode::NONE,
            timestamp: found.timestamp,
            offset: found.offset,
            leader_epoch,
        })
    }
}

fn response(list: &ListOffsetsRequest, answers: Grid<Answer>, version: i16) -> ListOffsetsResponse {
    let topics = list
        .topics
        .iter()
        .zip(answers.into_rows())
        .map(|(topic, answers)| {
            let partitions = topic
                .partitions
                .iter()
                .zip(answers)
                .map(|(partition, answer)| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(answer.error_code.code())
                        .with_timestamp(answer.timestamp)
                        .with_offset(answer.offset);
                    if version >= LEADER_EPOCH_VERSION_MIN {
                        response.with_leader_epoch(answer.leader_epoch)
                    } else {
                        response
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// Answers what this shard can (unauthorized topics, unknown partitions,
/// duplicates, stale epochs) and groups the rest by owning shard.
fn split(
    ctx: &RequestContext,
    list: &ListOffsetsRequest,
    answers: &mut Grid<Answer>,
) -> Split<Slot, Lookup> {
    let image = ctx.image();
    let duplicates = duplicate_partitions(list);
    let mut split = Split::new();
    for (t, topic) in list.topics.iter().enumerate() {
        let name = topic.name.as_str();
        if !ctx.authorize(AclOperation::Describe, Resource::Topic(name)) {
            answers.fill_row(t, &Answer::error(ErrorCode::TOPIC_AUTHORIZATION_FAILED));
            continue;
        }
        let found = image.topic(name);
        for (p, partition) in topic.partitions.iter().enumerate() {
            let index = partition.partition_index;
            let led = found.map(|topic| super::cluster_view::leader_shard(ctx, topic, index));
            let owner = match led {
                Some(Ok(shard)) => Some(shard),
                _ => None,
            };
            let error_code = if duplicates.contains_key(&(name, index)) {
                ErrorCode::INVALID_REQUEST
            } else if let Some(Err(code)) = led {
                code
            } else if owner.is_none() {
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                let epoch = found.map_or(0, |t| super::cluster_view::leader_epoch(t, index));
                epoch_error_code(partition.current_leader_epoch, epoch)
            };
            match owner {
                Some(owner) if error_code.is_none() => {
                    let lookup = Lookup {
                        topic: name.to_string(),
                        partition: index,
                        timestamp: partition.timestamp,
                        isolation: IsolationLevel::from_i8(list.isolation_level),
                    };
                    split.push(owner, (t, p), lookup);
                }
                _ => answers.set((t, p), Answer::error(error_code)),
            }
        }
    }
    split
}

/// Partitions named more than once: Kafka answers each mention with
/// INVALID_REQUEST rather than pick one.
fn duplicate_partitions(list: &ListOffsetsRequest) -> HashMap<(&str, i32), u32> {
    let mut seen: HashMap<(&str, i32), u32> = HashMap::new();
    for topic in &list.topics {
        for partition in &topic.partitions {
            *seen
                .entry((topic.name.as_str(), partition.partition_index))
                .or_default() += 1;
        }
    }
    seen.retain(|_, count| *count > 1);
    seen
}

/// Kafka's leader epoch check of a client's `current_leader_epoch`
/// against the partition's `epoch` (the leadership this broker applied;
/// 0 on a single node): an older epoch is fenced, a newer one is unknown
/// here (the client saw metadata this broker has not applied yet).
pub(crate) fn epoch_error_code(current_leader_epoch: i32, epoch: i32) -> ErrorCode {
    if current_leader_epoch == NO_LEADER_EPOCH || current_leader_epoch == epoch {
        ErrorCode::NONE
    } else if current_leader_epoch < epoch {
        ErrorCode::FENCED_LEADER_EPOCH
    } else {
        ErrorCode::UNKNOWN_LEADER_EPOCH
    }
}

/// On the owner: its partitions' answers, looked up concurrently.
async fn look_up_on_owner(shard: std::rc::Rc<Shard>, lookups: Vec<Lookup>) -> Vec<Answer> {
    join_all(lookups.iter().map(|lookup| look_up(&shard, lookup))).await
}

/// On the owner: one partition's answer.
async fn look_up(shard: &Shard, lookup: &Lookup) -> Answer {
    match find(shard, lookup).await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::debug!(topic = %lookup.topic, partition = lookup.partition, %error, "list offsets");
            Answer::error(error.error_code())
        }
    }
}

async fn find(shard: &Shard, lookup: &Lookup) -> Result<Answer, PartitionError> {
    let partition = shard
        .partition(&lookup.topic, lookup.partition)
        .ok_or(PartitionError::Closed)?;
    // What a consumer of this isolation level may read.
    let readable_end = partition.readable_end(lookup.isolation);
    let at = |offset| {
        Some(TimestampOffset {
            timestamp: -1,
            offset,
        })
    };
    let found = match lookup.timestamp {
        EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => at(partition.log_start_offset()),
        LATEST_TIMESTAMP => at(readable_end),
        LATEST_TIERED_TIMESTAMP => None,
        MAX_TIMESTAMP => partition
            .max_timestamp()
            .await?
            .filter(|found| found.offset < readable_end),
        timestamp => {
            partition
                .offset_for_timestamp(timestamp, lookup.isolation)
                .await?
        }
    };
    // The epoch the offset was found in: the current one (the log's
    // epoch cache answers per offset once leadership moves).
    Ok(Answer::found(found, partition.leader_epoch()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_epochs_are_checked_against_the_partitions() {
        let fenced = ErrorCode::FENCED_LEADER_EPOCH.code();
        let unknown = ErrorCode::UNKNOWN_LEADER_EPOCH.code();
        let cases = [(-1, 0), (0, 0), (1, unknown), (7, unknown), (-2, fenced)];
        for (epoch, code) in cases {
            assert_eq!(epoch_error_code(epoch, 0).code(), code, "epoch {epoch}");
        }
        let cases = [(-1, 0), (3, 0), (2, fenced), (0, fenced), (4, unknown)];
        for (epoch, code) in cases {
            assert_eq!(
                epoch_error_code(epoch, 3).code(),
                code,
                "epoch {epoch} of 3"
            );
        }
    }
}
