//! Kafka message structs (kafka-protocol) to and from the plain types of
//! rafka-core's group coordinator. Every field Kafka fills is filled here;
//! making a response encodable at the request's version is the handler's
//! job.

use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::describe_groups_response::DescribedGroupMember;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    GroupId, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    ListGroupsRequest, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rafka_core::group::{
    CommitPartition, CommitRequest, FetchedOffset, GroupDescription, GroupListing, JoinRequest,
    JoinResult, LeaveResult, LeavingMember, SyncRequest, SyncResult,
};
use rafka_proto::error::ErrorCode;
use uuid::Uuid;

use crate::group::GroupCaller;

/// Per topic, per partition error code.
type PartitionCodes = Vec<(String, Vec<(i32, ErrorCode)>)>;
/// Per topic, the partitions asked for.
type TopicPartitions = Vec<(String, Vec<i32>)>;

fn text(s: String) -> StrBytes {
    StrBytes::from_string(s)
}

pub(crate) fn join_request(caller: &GroupCaller, req: JoinGroupRequest) -> JoinRequest {
    JoinRequest {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|s| s.to_string()),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        client_id: caller.client_id.clone(),
        client_host: caller.client_host.clone(),
        require_known_member_id: caller.api_version >= 4,
    }
}

pub(crate) fn join_error(code: ErrorCode, member_id: &str) -> JoinGroupResponse {
    join_response(JoinResult::error(code, member_id))
}

pub(crate) fn join_response(r: JoinResult) -> JoinGroupResponse {
    let mut response = JoinGroupResponse::default();
    response.error_code = r.error_code.code();
    response.generation_id = r.generation_id;
    response.protocol_type = r.protocol_type.map(text);
    response.protocol_name = r.protocol_name.map(text);
    response.leader = text(r.leader);
    response.skip_assignment = r.skip_assignment;
    response.member_id = text(r.member_id);
    response.members = r
        .members
        .into_iter()
        .map(|m| {
            let mut member = JoinGroupResponseMember::default();
            member.member_id = text(m.member_id);
            member.group_instance_id = m.group_instance_id.map(text);
            member.metadata = m.metadata;
            member
        })
        .collect();
    response
}

pub(crate) fn sync_request(req: SyncGroupRequest) -> SyncRequest {
    SyncRequest {
        group_id: req.group_id.to_string(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|s| s.to_string()),
        protocol_type: req.protocol_type.map(|s| s.to_string()),
        protocol_name: req.protocol_name.map(|s| s.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    }
}

pub(crate) fn sync_error(code: ErrorCode) -> SyncGroupResponse {
    sync_response(SyncResult::error(code))
}

pub(crate) fn sync_response(r: SyncResult) -> SyncGroupResponse {
    let mut response = SyncGroupResponse::default();
    response.error_code = r.error_code.code();
    response.protocol_type = r.protocol_type.map(text);
    response.protocol_name = r.protocol_name.map(text);
    response.assignment = r.assignment;
    response
}

/// v0-2 name one member in `member_id`; v3+ list them.
pub(crate) fn leaving_members(req: LeaveGroupRequest) -> Vec<LeavingMember> {
    if req.members.is_empty() {
        return vec![LeavingMember {
            member_id: req.member_id.to_string(),
            group_instance_id: None,
        }];
    }
    req.members
        .into_iter()
        .map(|m| LeavingMember {
            member_id: m.member_id.to_string(),
            group_instance_id: m.group_instance_id.map(|s| s.to_string()),
        })
        .collect()
}

pub(crate) fn leave_response(r: LeaveResult) -> LeaveGroupResponse {
    let mut response = LeaveGroupResponse::default();
    response.error_code = r.error_code.code();
    response.members = r
        .members
        .into_iter()
        .map(|(m, code)| {
            let mut member = MemberResponse::default();
            member.member_id = text(m.member_id);
            member.group_instance_id = m.group_instance_id.map(text);
            member.error_code = code.code();
            member
        })
        .collect();
    response
}

pub(crate) fn commit_topic_ids(req: &OffsetCommitRequest) -> Vec<Uuid> {
    req.topics.iter().map(|t| t.topic_id).collect()
}

pub(crate) fn commit_request(req: OffsetCommitRequest) -> CommitRequest {
    CommitRequest {
        group_id: req.group_id.to_string(),
        generation_id: req.generation_id_or_member_epoch,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|s| s.to_string()),
        topics: req
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| CommitPartition {
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.map(|s| s.to_string()),
                    })
                    .collect();
                (t.name.to_string(), partitions)
            })
            .collect(),
    }
}

pub(crate) fn commit_error(req: &OffsetCommitRequest, code: ErrorCode) -> OffsetCommitResponse {
    let results = req
        .topics
        .iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|p| (p.partition_index, code))
                .collect();
            (t.name.to_string(), parts)
        })
        .collect();
    commit_response(results, &commit_topic_ids(req), true)
}

/// `written: false` (the records did not become durable) fails every
/// partition the machine accepted.
pub(crate) fn commit_response(
    results: PartitionCodes,
    topic_ids: &[Uuid],
    written: bool,
) -> OffsetCommitResponse {
    let mut response = OffsetCommitResponse::default();
    response.topics = results
        .into_iter()
        .enumerate()
        .map(|(i, (name, parts))| {
            let mut topic = OffsetCommitResponseTopic::default();
            topic.name = TopicName(text(name));
            topic.topic_id = topic_ids.get(i).copied().unwrap_or_default();
            topic.partitions = parts
                .into_iter()
                .map(|(index, code)| {
                    let mut p = OffsetCommitResponsePartition::default();
                    p.partition_index = index;
                    p.error_code = if code == ErrorCode::NONE && !written {
                        ErrorCode::COORDINATOR_NOT_AVAILABLE.code()
                    } else {
                        code.code()
                    };
                    p
                })
                .collect();
            topic
        })
        .collect();
    response
}

/// The requested topics (None = all) and their ids by name (v10 names
/// topics by id; the handler resolves names, ids are echoed back).
pub(crate) fn fetch_topics(
    req: &OffsetFetchRequestGroup,
) -> (Option<TopicPartitions>, Vec<(String, Uuid)>) {
    let Some(topics) = &req.topics else {
        return (None, Vec::new());
    };
    let wanted = topics
        .iter()
        .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
        .collect();
    let ids = topics
        .iter()
        .map(|t| (t.name.to_string(), t.topic_id))
        .collect();
    (Some(wanted), ids)
}

pub(crate) fn fetch_error(group_id: GroupId, code: ErrorCode) -> OffsetFetchResponseGroup {
    let mut response = OffsetFetchResponseGroup::default();
    response.group_id = group_id;
    response.error_code = code.code();
    response
}

pub(crate) fn fetch_response(
    group_id: GroupId,
    fetched: Vec<(String, Vec<FetchedOffset>)>,
    ids: &[(String, Uuid)],
) -> OffsetFetchResponseGroup {
    let mut response = OffsetFetchResponseGroup::default();
    response.group_id = group_id;
    response.topics = fetched
        .into_iter()
        .map(|(name, parts)| {
            let mut topic = OffsetFetchResponseTopics::default();
            topic.topic_id = ids
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, id)| *id)
                .unwrap_or_default();
            topic.name = TopicName(text(name));
            topic.partitions = parts
                .into_iter()
                .map(|f| {
                    let mut p = OffsetFetchResponsePartitions::default();
                    p.partition_index = f.partition;
                    p.committed_offset = f.offset;
                    p.committed_leader_epoch = f.leader_epoch;
                    p.metadata = Some(text(f.metadata));
                    p.error_code = f.error_code.code();
                    p
                })
                .collect();
            topic
        })
        .collect();
    response
}

pub(crate) fn describe_error(group_id: GroupId, code: ErrorCode) -> DescribedGroup {
    let mut group = DescribedGroup::default();
    group.group_id = group_id;
    group.error_code = code.code();
    group
}

/// DescribeGroups v6+ answers GROUP_ID_NOT_FOUND for an unknown group
/// (KIP-1043); older versions a Dead group without error.
pub(crate) fn describe_response(
    caller: &GroupCaller,
    group_id: GroupId,
    d: GroupDescription,
) -> DescribedGroup {
    let mut group = DescribedGroup::default();
    group.group_id = group_id;
    group.error_code = d.error_code.code();
    if d.state == "Dead" && d.members.is_empty() && caller.api_version >= 6 {
        group.error_code = ErrorCode::GROUP_ID_NOT_FOUND.code();
    }
    group.group_state = StrBytes::from_static_str(d.state);
    group.protocol_type = text(d.protocol_type);
    group.protocol_data = text(d.protocol);
    group.authorized_operations = i32::MIN;
    group.members = d
        .members
        .into_iter()
        .map(|m| {
            let mut member = DescribedGroupMember::default();
            member.member_id = text(m.member_id);
            member.group_instance_id = m.group_instance_id.map(text);
            member.client_id = text(m.client_id);
            member.client_host = text(m.client_host);
            member.member_metadata = m.metadata;
            member.member_assignment = m.assignment;
            member
        })
        .collect();
    group
}

/// ListGroups filters: states match case-insensitively (as Kafka);
/// every group here is a "classic" group.
pub(crate) fn listed_groups(
    listed: Vec<GroupListing>,
    req: &ListGroupsRequest,
) -> Vec<ListedGroup> {
    let state_ok = |state: &str| {
        req.states_filter.is_empty()
            || req
                .states_filter
                .iter()
                .any(|s| s.eq_ignore_ascii_case(state))
    };
    let type_ok = req.types_filter.is_empty()
        || req
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case("classic"));
    listed
        .into_iter()
        .filter(|g| type_ok && state_ok(g.state))
        .map(|g| {
            let mut group = ListedGroup::default();
            group.group_id = GroupId(text(g.group_id));
            group.protocol_type = text(g.protocol_type);
            group.group_state = StrBytes::from_static_str(g.state);
            group.group_type = StrBytes::from_static_str("classic");
            group
        })
        .collect()
}

pub(crate) fn offset_delete_topics(req: &OffsetDeleteRequest) -> Vec<(String, Vec<i32>)> {
    req.topics
        .iter()
        .map(|t| {
            let parts = t.partitions.iter().map(|p| p.partition_index).collect();
            (t.name.to_string(), parts)
        })
        .collect()
}

pub(crate) fn offset_delete_error(code: ErrorCode) -> OffsetDeleteResponse {
    let mut response = OffsetDeleteResponse::default();
    response.error_code = code.code();
    response
}

pub(crate) fn offset_delete_response(
    results: PartitionCodes,
    written: bool,
) -> OffsetDeleteResponse {
    let mut response = OffsetDeleteResponse::default();
    if !written {
        response.error_code = ErrorCode::COORDINATOR_NOT_AVAILABLE.code();
        return response;
    }
    response.topics = results
        .into_iter()
        .map(|(name, parts)| {
            let mut topic = OffsetDeleteResponseTopic::default();
            topic.name = TopicName(text(name));
            topic.partitions = parts
                .into_iter()
                .map(|(index, code)| {
                    let mut p = OffsetDeleteResponsePartition::default();
                    p.partition_index = index;
                    p.error_code = code.code();
                    p
                })
                .collect();
            topic
        })
        .collect();
    response
}
