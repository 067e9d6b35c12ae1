//! DeleteRecords (key 21), v0-v2: raises partitions' log start offsets
//! (the low watermark) and deletes the segments wholly below them.
//!
//! Top-down: decode -> resolve each partition on the shard that read the
//! request -> split by owning shard -> raise on every owner at once ->
//! gather -> encode.
//!
//! Answers, as Kafka's `ReplicaManager.deleteRecords`:
//! - DELETE on the topic is required (TOPIC_AUTHORIZATION_FAILED).
//! - Internal topics (`__consumer_offsets`, `__transaction_state`) are
//!   never trimmed: INVALID_TOPIC_EXCEPTION, as Kafka.
//! - An unknown topic or partition is UNKNOWN_TOPIC_OR_PARTITION; one named
//!   twice is INVALID_REQUEST (each mention).
//! - Offset -1 deletes up to the high watermark; an offset past the high
//!   watermark (or below -1) is OFFSET_OUT_OF_RANGE; one at or below the
//!   current start changes nothing and answers the current start.
//! - The new start is durable (fsync'd) before the answer, unlike Kafka,
//!   which checkpoints it within a minute: a kill -9 right after does not
//!   bring the records back.
//! - `timeout_ms` bounds waiting for replicas, which a single node has
//!   none of.

use std::collections::HashMap;
use std::rc::Rc;

use futures_util::future::join_all;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use rafka_core::acl::{AclOperation, Resource};
use rafka_proto::error::ErrorCode;
use rafka_shard::partition::PartitionError;
use rafka_shard::shard::Shard;

use super::fanout::{scatter, Grid, Slot, Split};
use super::{HandlerError, RequestContext, INTERNAL_TOPICS};

/// One partition to raise on its owner. Crosses shards: `Send` data only.
struct Deletion {
    topic: String,
    partition: i32,
    offset: i64,
}

/// One partition's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answer {
    error_code: ErrorCode,
    low_watermark: i64,
}

impl Answer {
    fn error(error_code: ErrorCode) -> Self {
        Answer {
            error_code,
            low_watermark: -1,
        }
    }
}

pub async fn handle(
    ctx: &RequestContext,
    request: DeleteRecordsRequest,
) -> Result<DeleteRecordsResponse, HandlerError> {
    let mut answers: Grid<Answer> = Grid::new(request.topics.iter().map(|t| t.partitions.len()));
    let split = split(ctx, &request, &mut answers);
    let deleted = scatter(ctx.shard(), split, delete_on_owner, || {
        Answer::error(ErrorCode::NOT_LEADER_OR_FOLLOWER)
    })
    .await;
    for (slot, answer) in deleted {
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
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(partition.partition_index)
                        .with_low_watermark(answer.low_watermark)
                        .with_error_code(answer.error_code.code())
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    Ok(DeleteRecordsResponse::default().with_topics(topics))
}

/// Answers what this shard can (unauthorized topics, unknown partitions,
/// duplicates) and groups the rest by owning shard.
fn split(
    ctx: &RequestContext,
    request: &DeleteRecordsRequest,
    answers: &mut Grid<Answer>,
) -> Split<Slot, Deletion> {
    let image = ctx.image();
    let mut mentions: HashMap<(&str, i32), u32> = HashMap::new();
    for topic in &request.topics {
        for partition in &topic.partitions {
            *mentions
                .entry((topic.name.as_str(), partition.partition_index))
                .or_default() += 1;
        }
    }
    let mut split = Split::new();
    for (t, topic) in request.topics.iter().enumerate() {
        let name = topic.name.as_str();
        if !ctx.authorize(AclOperation::Delete, Resource::Topic(name)) {
            answers.fill_row(t, &Answer::error(ErrorCode::TOPIC_AUTHORIZATION_FAILED));
            continue;
        }
        if INTERNAL_TOPICS.contains(&name) {
            answers.fill_row(t, &Answer::error(ErrorCode::INVALID_TOPIC_EXCEPTION));
            continue;
        }
        let found = image.topic(name);
        for (p, partition) in topic.partitions.iter().enumerate() {
            let index = partition.partition_index;
            let owner = found.map_or(Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION), |topic| {
                super::cluster_view::leader_shard(ctx, topic, index)
            });
            match owner {
                _ if mentions[&(name, index)] > 1 => {
                    answers.set((t, p), Answer::error(ErrorCode::INVALID_REQUEST));
                }
                Err(code) => answers.set((t, p), Answer::error(code)),
                Ok(owner) => {
                    let deletion = Deletion {
                        topic: name.to_string(),
                        partition: index,
                        offset: partition.offset,
                    };
                    split.push(owner, (t, p), deletion);
                }
            }
        }
    }
    split
}

/// On the owner: its partitions' answers, raised concurrently.
async fn delete_on_owner(shard: Rc<Shard>, deletions: Vec<Deletion>) -> Vec<Answer> {
    join_all(deletions.iter().map(|deletion| delete(&shard, deletion))).await
}

async fn delete(shard: &Shard, deletion: &Deletion) -> Answer {
    let raised = match shard.partition(&deletion.topic, deletion.partition) {
        Some(partition) => partition.delete_records(deletion.offset).await,
        None => Err(PartitionError::Closed),
    };
    match raised {
        Ok(low_watermark) => Answer {
            error_code: ErrorCode::NONE,
            low_watermark,
        },
        Err(error) => {
            tracing::debug!(
                topic = %deletion.topic,
                partition = deletion.partition,
                %error,
                "delete records"
            );
            Answer::error(error.error_code())
        }
    }
}
