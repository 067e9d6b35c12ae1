//! OffsetCommit (key 8), v2-v9: a consumer stores its position in each
//! partition; the coordinator answers once the offsets are durable in
//! `__consumer_offsets` (as an acks=all produce).
//!
//! Top-down: authorize READ on the group, then READ on each topic ->
//! answer what only this shard can (unknown partitions) -> the rest as one
//! `CommitRequest` to the group's coordinator -> every partition's code in
//! request order.
//!
//! Decisions a client can notice:
//! - An empty group id is accepted, as Kafka does for backward
//!   compatibility: it names a group like any other.
//! - v2-v4 carry a retention time; it is ignored, as in Kafka since 2.1
//!   (offsets expire per `offsets.retention.minutes`).
//! - When the coordinator cannot be reached, every partition it would have
//!   committed carries the error, as in Kafka.
//! - A partition of a topic that does not exist is answered
//!   UNKNOWN_TOPIC_OR_PARTITION and not committed, as in Kafka; the rest
//!   of the request is.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::group::{CommitPartition, CommitRequest};
use rafka_proto::error::ErrorCode;

use super::coordinator_call::on_group_coordinator;
use super::fanout::{Grid, Slot};
use super::{HandlerError, RequestContext};
use rafka_shard::group::PartitionCodes;

pub async fn handle(
    ctx: &RequestContext,
    request: OffsetCommitRequest,
) -> Result<OffsetCommitResponse, HandlerError> {
    let mut codes: Grid<ErrorCode> = Grid::new(request.topics.iter().map(|t| t.partitions.len()));
    if ctx.authorize(AclOperation::Read, Resource::Group(&request.group_id)) {
        let (commit, slots) = split(ctx, &request, &mut codes);
        if !commit.topics.is_empty() {
            commit_on_coordinator(ctx, commit, slots, &mut codes).await;
        }
    } else {
        codes.fill_all(&ErrorCode::GROUP_AUTHORIZATION_FAILED);
    }
    Ok(response(&request, codes))
}

/// The commit of `request`'s partitions the coordinator may see, and
/// where each sits in the request.
fn split(
    ctx: &RequestContext,
    request: &OffsetCommitRequest,
    codes: &mut Grid<ErrorCode>,
) -> (CommitRequest, Vec<Slot>) {
    let commit = CommitRequest {
        group_id: request.group_id.to_string(),
        generation_id: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        topics: Vec::new(),
    };
    let requested = request.topics.iter().map(|topic| {
        let partitions = topic.partitions.iter().map(|p| CommitPartition {
            partition: p.partition_index,
            offset: p.committed_offset,
            leader_epoch: p.committed_leader_epoch,
            metadata: p.committed_metadata.as_ref().map(|s| s.to_string()),
        });
        (topic.name.to_string(), partitions.collect())
    });
    split_commit(ctx, commit, requested, codes)
}

/// Answers the partitions the coordinator must not see (unauthorized
/// topics, unknown partitions); returns `commit` with the rest and where
/// each of its partitions sits in the request. Shared with
/// TxnOffsetCommit.
pub(super) fn split_commit(
    ctx: &RequestContext,
    mut commit: CommitRequest,
    requested: impl Iterator<Item = (String, Vec<CommitPartition>)>,
    codes: &mut Grid<ErrorCode>,
) -> (CommitRequest, Vec<Slot>) {
    let image = ctx.image();
    let mut slots = Vec::new();
    for (t, (topic, requested)) in requested.enumerate() {
        if !ctx.authorize(AclOperation::Read, Resource::Topic(&topic)) {
            codes.fill_row(t, &ErrorCode::TOPIC_AUTHORIZATION_FAILED);
            continue;
        }
        let count = image.topic(&topic).map_or(0, |t| t.partitions.len());
        let mut partitions = Vec::new();
        for (p, partition) in requested.into_iter().enumerate() {
            if usize::try_from(partition.partition).is_ok_and(|index| index < count) {
                partitions.push(partition);
                slots.push((t, p));
            } else {
                codes.set((t, p), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
            }
        }
        if !partitions.is_empty() {
            commit.topics.push((topic, partitions));
        }
    }
    (commit, slots)
}

/// The coordinator's code for each committed partition (it answers every
/// partition of the commit, in order).
async fn commit_on_coordinator(
    ctx: &RequestContext,
    commit: CommitRequest,
    slots: Vec<Slot>,
    codes: &mut Grid<ErrorCode>,
) {
    let group_id = commit.group_id.clone();
    let committed = on_group_coordinator(ctx, &group_id, move |shard| async move {
        shard.groups().commit_offsets(commit).await
    })
    .await;
    place_answers(committed, slots, codes, |code| code);
}

/// Puts the coordinator's answers (one per committed partition, in
/// order), or the one error that kept it from answering, into `codes`.
pub(super) fn place_answers(
    committed: Result<PartitionCodes, ErrorCode>,
    slots: Vec<Slot>,
    codes: &mut Grid<ErrorCode>,
    map: impl Fn(ErrorCode) -> ErrorCode,
) {
    let answers: Vec<ErrorCode> = match committed {
        Ok(topics) => topics
            .into_iter()
            .flat_map(|(_, partitions)| partitions.into_iter().map(|(_, code)| map(code)))
            .collect(),
        Err(code) => vec![code; slots.len()],
    };
    assert_eq!(
        answers.len(),
        slots.len(),
        "one code per committed partition"
    );
    for (slot, code) in slots.into_iter().zip(answers) {
        codes.set(slot, code);
    }
}

fn response(request: &OffsetCommitRequest, codes: Grid<ErrorCode>) -> OffsetCommitResponse {
    let topics = request
        .topics
        .iter()
        .zip(codes.into_rows())
        .map(|(topic, codes)| {
            let partitions = topic
                .partitions
                .iter()
                .zip(codes)
                .map(|(p, code)| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code.code())
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
