//! OffsetFetch (key 9), v1-v9: the committed offsets of groups, read from
//! each group's coordinator.
//!
//! The coordinator answers one group at a time in the v8+ form
//! (`OffsetFetchRequestGroup` -> `OffsetFetchResponseGroup`):
//! - v8+ batch groups; each is routed to its own coordinator, all at
//!   once, and the answers come back in request order.
//! - v1-v7 ask for one group: the request becomes a group of one and the
//!   answer is unfolded back. A group-level error goes in the top-level
//!   error code from v2; v1 has none, so, as Kafka does, every requested
//!   partition carries it instead.
//!
//! A null topic list (v2+) asks for every committed offset of the group.

use futures_util::future::join_all;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::group::FetchedOffset;
use rafka_proto::error::ErrorCode;
use uuid::Uuid;

use super::coordinator_call::on_group_coordinator;
use super::{HandlerError, RequestContext};

/// First version with a top-level error code.
const TOP_LEVEL_ERROR_VERSION_MIN: i16 = 2;
/// First version batching groups.
const BATCHED_VERSION_MIN: i16 = 8;
/// Kafka's `OffsetFetchResponse.INVALID_OFFSET`, answered with an error.
const INVALID_OFFSET: i64 = -1;
/// Kafka's `RecordBatch.NO_PARTITION_LEADER_EPOCH`.
const NO_LEADER_EPOCH: i32 = -1;

pub async fn handle(
    ctx: &RequestContext,
    request: OffsetFetchRequest,
) -> Result<OffsetFetchResponse, HandlerError> {
    let version = ctx.version();
    Ok(if version >= BATCHED_VERSION_MIN {
        let require_stable = request.require_stable;
        let fetches = request
            .groups
            .into_iter()
            .map(|group| fetch_group(ctx, group, require_stable));
        OffsetFetchResponse::default().with_groups(join_all(fetches).await)
    } else {
        let require_stable = request.require_stable;
        let (group, requested) = single_group(request);
        let answer = fetch_group(ctx, group, require_stable).await;
        unbatched(answer, requested.as_deref(), version)
    })
}

/// One group's committed offsets from its coordinator, or the group-level
/// error that kept it from answering. With `require_stable` (v7+), a
/// partition with an offset pending in an open transaction answers
/// UNSTABLE_OFFSET_COMMIT (retriable: the client asks again), as Kafka.
async fn fetch_group(
    ctx: &RequestContext,
    group: OffsetFetchRequestGroup,
    require_stable: bool,
) -> OffsetFetchResponseGroup {
    let group_id = group.group_id.clone();
    if !ctx.authorize(AclOperation::Describe, Resource::Group(&group_id)) {
        return group_error(group_id, ErrorCode::GROUP_AUTHORIZATION_FAILED);
    }
    let requested: Option<Vec<(String, Vec<i32>)>> = group.topics.as_ref().map(|topics| {
        topics
            .iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let ids: Vec<(String, Uuid)> = group
        .topics
        .iter()
        .flatten()
        .map(|t| (t.name.to_string(), t.topic_id))
        .collect();
    let id = group_id.to_string();
    let fetched = on_group_coordinator(ctx, &group_id, move |shard| async move {
        match require_stable {
            true => shard
                .groups()
                .fetch_stable_offsets(&id, requested.as_deref()),
            false => shard.groups().fetch_offsets(&id, requested.as_deref()),
        }
    })
    .await
    .unwrap_or_else(Err);
    match fetched {
        Ok(topics) => {
            let topics = authorized_topics(ctx, topics, group.topics.is_some());
            group_response(group_id, topics, &ids)
        }
        Err(code) => group_error(group_id, code),
    }
}

/// Offsets of topics the principal may not DESCRIBE are withheld: named
/// ones answer TOPIC_AUTHORIZATION_FAILED, and a listing of all the
/// group's offsets leaves them out, as Kafka does.
fn authorized_topics(
    ctx: &RequestContext,
    topics: Vec<(String, Vec<FetchedOffset>)>,
    named: bool,
) -> Vec<(String, Vec<FetchedOffset>)> {
    topics
        .into_iter()
        .filter_map(|(topic, partitions)| {
            if ctx.authorize(AclOperation::Describe, Resource::Topic(&topic)) {
                return Some((topic, partitions));
            }
            let denied = partitions
                .into_iter()
                .map(|p| FetchedOffset {
                    offset: INVALID_OFFSET,
                    leader_epoch: NO_LEADER_EPOCH,
                    metadata: String::new(),
                    error_code: ErrorCode::TOPIC_AUTHORIZATION_FAILED,
                    ..p
                })
                .collect();
            named.then_some((topic, denied))
        })
        .collect()
}

fn group_error(
    group_id: kafka_protocol::messages::GroupId,
    code: ErrorCode,
) -> OffsetFetchResponseGroup {
    OffsetFetchResponseGroup::default()
        .with_group_id(group_id)
        .with_error_code(code.code())
}

/// The v8+ answer of one group; topic ids are echoed back by name.
fn group_response(
    group_id: kafka_protocol::messages::GroupId,
    topics: Vec<(String, Vec<FetchedOffset>)>,
    ids: &[(String, Uuid)],
) -> OffsetFetchResponseGroup {
    let topics = topics
        .into_iter()
        .map(|(name, partitions)| {
            let topic_id = ids
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, id)| *id)
                .unwrap_or_default();
            let partitions = partitions
                .into_iter()
                .map(|f| {
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(f.partition)
                        .with_committed_offset(f.offset)
                        .with_committed_leader_epoch(f.leader_epoch)
                        .with_metadata(Some(StrBytes::from_string(f.metadata)))
                        .with_error_code(f.error_code.code())
                })
                .collect();
            OffsetFetchResponseTopics::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_topic_id(topic_id)
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponseGroup::default()
        .with_group_id(group_id)
        .with_topics(topics)
}

/// A v1-v7 request as a group of one, and the topics it named (`None`:
/// all of the group's).
pub(crate) fn single_group(
    request: OffsetFetchRequest,
) -> (
    OffsetFetchRequestGroup,
    Option<Vec<OffsetFetchRequestTopic>>,
) {
    let topics = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .map(|topic| {
                OffsetFetchRequestTopics::default()
                    .with_name(topic.name.clone())
                    .with_topic_id(Uuid::nil())
                    .with_partition_indexes(topic.partition_indexes.clone())
            })
            .collect()
    });
    let group = OffsetFetchRequestGroup::default()
        .with_group_id(request.group_id)
        .with_member_id(None)
        .with_topics(topics);
    (group, request.topics)
}

/// A group's answer in the v1-v7 form.
pub(crate) fn unbatched(
    group: OffsetFetchResponseGroup,
    requested: Option<&[OffsetFetchRequestTopic]>,
    version: i16,
) -> OffsetFetchResponse {
    if ErrorCode::from_code(group.error_code).is_err() && version < TOP_LEVEL_ERROR_VERSION_MIN {
        let topics = requested.unwrap_or_default();
        return OffsetFetchResponse::default()
            .with_topics(partition_errors(topics, group.error_code));
    }
    let topics = group.topics.into_iter().map(unbatched_topic).collect();
    OffsetFetchResponse::default()
        .with_topics(topics)
        .with_error_code(group.error_code)
}

fn unbatched_topic(topic: OffsetFetchResponseTopics) -> OffsetFetchResponseTopic {
    let partitions = topic
        .partitions
        .into_iter()
        .map(|p: OffsetFetchResponsePartitions| {
            OffsetFetchResponsePartition::default()
                .with_partition_index(p.partition_index)
                .with_committed_offset(p.committed_offset)
                .with_committed_leader_epoch(p.committed_leader_epoch)
                .with_metadata(p.metadata)
                .with_error_code(p.error_code)
        })
        .collect();
    OffsetFetchResponseTopic::default()
        .with_name(topic.name)
        .with_partitions(partitions)
}

/// Every requested partition answering `error_code`, no offset.
fn partition_errors(
    topics: &[OffsetFetchRequestTopic],
    error_code: i16,
) -> Vec<OffsetFetchResponseTopic> {
    topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|index| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(*index)
                        .with_committed_offset(INVALID_OFFSET)
                        .with_committed_leader_epoch(NO_LEADER_EPOCH)
                        .with_metadata(Some(StrBytes::new()))
                        .with_error_code(error_code)
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;

    fn topic(name: &str, partitions: &[i32]) -> OffsetFetchRequestTopic {
        OffsetFetchRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_partition_indexes(partitions.to_vec())
    }

    #[test]
    fn a_v1_group_error_goes_to_every_requested_partition() {
        let requested = vec![topic("a", &[0, 2]), topic("b", &[1])];
        let failed =
            OffsetFetchResponseGroup::default().with_error_code(COORDINATOR_LOAD_IN_PROGRESS);
        let v1 = unbatched(failed.clone(), Some(&requested), 1);
        assert_eq!(v1.error_code, 0);
        let answered: Vec<(&str, i32, i64, i16)> = v1
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        t.name.as_str(),
                        p.partition_index,
                        p.committed_offset,
                        p.error_code,
                    )
                })
            })
            .collect();
        assert_eq!(
            answered,
            vec![
                ("a", 0, -1, COORDINATOR_LOAD_IN_PROGRESS),
                ("a", 2, -1, COORDINATOR_LOAD_IN_PROGRESS),
                ("b", 1, -1, COORDINATOR_LOAD_IN_PROGRESS),
            ]
        );
        let v2 = unbatched(failed, Some(&requested), 2);
        assert_eq!(v2.error_code, COORDINATOR_LOAD_IN_PROGRESS);
        assert!(v2.topics.is_empty());
    }

    #[test]
    fn a_single_group_keeps_its_topics_or_asks_for_all() {
        let request = OffsetFetchRequest::default()
            .with_group_id(kafka_protocol::messages::GroupId(
                StrBytes::from_static_str("g"),
            ))
            .with_topics(Some(vec![topic("a", &[3])]));
        let (group, requested) = single_group(request);
        assert_eq!(group.group_id.as_str(), "g");
        let topics = group.topics.expect("named topics");
        assert_eq!(topics[0].name.as_str(), "a");
        assert_eq!(topics[0].partition_indexes, vec![3]);
        assert_eq!(requested.map(|t| t.len()), Some(1));
        let all = OffsetFetchRequest::default().with_topics(None);
        assert_eq!(single_group(all).0.topics, None);
    }
}
