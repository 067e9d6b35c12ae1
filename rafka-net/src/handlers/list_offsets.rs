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
//! - -1 LATEST: the high watermark. read_committed asks for the last stable
//!   offset, which equals the high watermark while rafka has no
//!   transactions.
//! - -3 MAX_TIMESTAMP (v7+): the first record with the largest timestamp.
//! - -5 LATEST_TIERED (v9+): nothing is tiered, so offset -1.
//! - any other value: the first record whose timestamp is at or after it.
//!
//! Only records below the high watermark count, so a consumer is never sent
//! to an offset it cannot fetch yet; nothing found answers offset -1 and
//! timestamp -1. The request's `timeout_ms` (v10) bounds remote-storage
//! lookups, which rafka does not make.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use futures_util::future::join_all;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;
use rafka_core::log::TimestampOffset;
use rafka_core::metadata::MetadataImage;
use rafka_proto::api::{decode_request, encode_response};
use rafka_shard::partition::PartitionError;
use rafka_shard::shard::Shard;

use super::{HandlerContext, HandlerError};
use crate::service::{Request, Response};

pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
pub const LATEST_TIERED_TIMESTAMP: i64 = -5;

/// The leader epoch of every partition: a single broker that never changes
/// leadership stays in epoch 0 (batches are stamped with it too).
const LEADER_EPOCH: i32 = 0;
/// "The client knows no epoch": the epoch check is skipped.
const NO_LEADER_EPOCH: i32 = -1;
/// Versions whose partition responses carry the leader epoch (encoding one
/// into an older version is refused).
const LEADER_EPOCH_VERSION_MIN: i16 = 4;

pub async fn handle(ctx: &HandlerContext, request: Request) -> Result<Response, HandlerError> {
    let version = request.header.api_version;
    let correlation_id = request.header.correlation_id;
    let mut body = request.body;
    let list: ListOffsetsRequest = decode_request(&mut body, version)?;
    let mut answers = Answers::shaped_like(&list);
    let by_owner = split(&ctx.shard.image(), &list, &mut answers);
    for (slot, answer) in apply(ctx, by_owner).await {
        answers.set(slot, answer);
    }
    let response = answers.into_response(&list, version);
    let reply = encode_response(
        correlation_id,
        request.response_header_version,
        &response,
        version,
    )?;
    Ok(Response::Reply(reply))
}

/// A partition's place in the request: (topic position, partition position).
type Slot = (usize, usize);

/// One partition to look up on its owner. Crosses shards: `Send` data only.
struct Lookup {
    slot: Slot,
    topic: String,
    partition: i32,
    timestamp: i64,
}

/// One partition's answer: an error code, or what was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answer {
    error_code: i16,
    timestamp: i64,
    offset: i64,
    leader_epoch: i32,
}

impl Answer {
    const NOT_FOUND: Answer = Answer {
        error_code: 0,
        timestamp: -1,
        offset: -1,
        leader_epoch: -1,
    };

    fn error(error_code: i16) -> Self {
        Answer {
            error_code,
            ..Answer::NOT_FOUND
        }
    }

    fn found(found: Option<TimestampOffset>) -> Self {
        found.map_or(Answer::NOT_FOUND, |found| Answer {
            error_code: 0,
            timestamp: found.timestamp,
            offset: found.offset,
            leader_epoch: LEADER_EPOCH,
        })
    }
}

/// Every partition's answer, in request order. Slots sent to an owner hold
/// a placeholder until [`apply`] reports on them.
struct Answers {
    topics: Vec<Vec<Answer>>,
}

impl Answers {
    fn shaped_like(list: &ListOffsetsRequest) -> Self {
        let unanswered = Answer::error(ResponseError::UnknownServerError.code());
        let topics = list
            .topics
            .iter()
            .map(|topic| vec![unanswered; topic.partitions.len()])
            .collect();
        Answers { topics }
    }

    fn set(&mut self, (topic, partition): Slot, answer: Answer) {
        if let Some(slot) = self
            .topics
            .get_mut(topic)
            .and_then(|partitions| partitions.get_mut(partition))
        {
            *slot = answer;
        }
    }

    fn into_response(self, list: &ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
        let topics = list
            .topics
            .iter()
            .zip(self.topics)
            .map(|(topic, answers)| {
                let partitions = topic
                    .partitions
                    .iter()
                    .zip(answers)
                    .map(|(partition, answer)| {
                        let response = ListOffsetsPartitionResponse::default()
                            .with_partition_index(partition.partition_index)
                            .with_error_code(answer.error_code)
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
        ListOffsetsResponse::default()
            .with_throttle_time_ms(0)
            .with_topics(topics)
    }
}

/// Answers what this shard can (unknown partitions, duplicates, stale
/// epochs) and groups the rest by owning shard.
fn split(
    image: &MetadataImage,
    list: &ListOffsetsRequest,
    answers: &mut Answers,
) -> BTreeMap<usize, Vec<Lookup>> {
    let duplicates = duplicate_partitions(list);
    let mut by_owner: BTreeMap<usize, Vec<Lookup>> = BTreeMap::new();
    for (t, topic) in list.topics.iter().enumerate() {
        let name = topic.name.as_str();
        let found = image.topic(name);
        for (p, partition) in topic.partitions.iter().enumerate() {
            let index = partition.partition_index;
            let owner = found.and_then(|topic| topic.shard_of(index));
            let error_code = if duplicates.contains_key(&(name, index)) {
                ResponseError::InvalidRequest.code()
            } else if owner.is_none() {
                ResponseError::UnknownTopicOrPartition.code()
            } else {
                epoch_error_code(partition.current_leader_epoch)
            };
            match owner {
                Some(owner) if error_code == 0 => {
                    by_owner.entry(owner as usize).or_default().push(Lookup {
                        slot: (t, p),
                        topic: name.to_string(),
                        partition: index,
                        timestamp: partition.timestamp,
                    });
                }
                _ => answers.set((t, p), Answer::error(error_code)),
            }
        }
    }
    by_owner
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

/// Kafka's leader epoch check against this broker's epoch 0: an older epoch
/// is fenced, a newer one is unknown here (the client saw metadata this
/// broker has not).
fn epoch_error_code(current_leader_epoch: i32) -> i16 {
    if current_leader_epoch == NO_LEADER_EPOCH || current_leader_epoch == LEADER_EPOCH {
        0
    } else if current_leader_epoch < LEADER_EPOCH {
        ResponseError::FencedLeaderEpoch.code()
    } else {
        ResponseError::UnknownLeaderEpoch.code()
    }
}

/// Looks up on every owner at once; one answer per lookup.
async fn apply(
    ctx: &HandlerContext,
    by_owner: BTreeMap<usize, Vec<Lookup>>,
) -> Vec<(Slot, Answer)> {
    let calls = by_owner.into_iter().map(|(owner, lookups)| async move {
        let slots: Vec<Slot> = lookups.iter().map(|lookup| lookup.slot).collect();
        let answers = ctx
            .shard
            .router
            .invoke_on(owner, move |shard: Rc<Shard>| async move {
                let answers = lookups.iter().map(|lookup| look_up(&shard, lookup));
                join_all(answers).await
            })
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(%error, owner, "list offsets could not reach the partition owner");
                let moved = Answer::error(ResponseError::NotLeaderOrFollower.code());
                vec![moved; slots.len()]
            });
        slots.into_iter().zip(answers).collect::<Vec<_>>()
    });
    join_all(calls).await.into_iter().flatten().collect()
}

/// On the owner: one partition's answer.
async fn look_up(shard: &Shard, lookup: &Lookup) -> Answer {
    match find(shard, lookup).await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::debug!(topic = %lookup.topic, partition = lookup.partition, %error, "list offsets");
            Answer::error(error.error_code().code())
        }
    }
}

async fn find(shard: &Shard, lookup: &Lookup) -> Result<Answer, PartitionError> {
    let partition = shard
        .partition(&lookup.topic, lookup.partition)
        .ok_or(PartitionError::Closed)?;
    let high_watermark = partition.high_watermark();
    let at = |offset| {
        Some(TimestampOffset {
            timestamp: -1,
            offset,
        })
    };
    let found = match lookup.timestamp {
        EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => at(partition.log_start_offset()),
        LATEST_TIMESTAMP => at(high_watermark),
        LATEST_TIERED_TIMESTAMP => None,
        MAX_TIMESTAMP => partition
            .max_timestamp()
            .await?
            .filter(|found| found.offset < high_watermark),
        timestamp => partition.offset_for_timestamp(timestamp).await?,
    };
    Ok(Answer::found(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_epochs_are_checked_against_epoch_zero() {
        let fenced = ResponseError::FencedLeaderEpoch.code();
        let unknown = ResponseError::UnknownLeaderEpoch.code();
        let cases = [(-1, 0), (0, 0), (1, unknown), (7, unknown), (-2, fenced)];
        for (epoch, code) in cases {
            assert_eq!(epoch_error_code(epoch), code, "epoch {epoch}");
        }
    }
}
