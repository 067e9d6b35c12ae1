//! The consumer-group flows of [`WireClient`]: join (with the
//! MEMBER_ID_REQUIRED round trip), sync, heartbeat, leave, commit, fetch
//! offsets, describe; the embedded consumer-protocol bytes (subscription,
//! assignment) and Kafka's range assignor, for tests that play every
//! member of a group themselves.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::{
    join_group_request::JoinGroupRequestProtocol, leave_group_request::MemberIdentity,
    offset_commit_request::OffsetCommitRequestPartition,
    offset_commit_request::OffsetCommitRequestTopic, offset_fetch_request::OffsetFetchRequestGroup,
    offset_fetch_request::OffsetFetchRequestTopic, offset_fetch_request::OffsetFetchRequestTopics,
    sync_group_request::SyncGroupRequestAssignment,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::wire::{WireClient, WireError};

/// Kafka's MEMBER_ID_REQUIRED: a JoinGroup v4+ with an empty member id gets
/// its id back with this code and must join again with it.
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
/// The version of the embedded consumer protocol structs (subscription,
/// assignment) that every client can read.
const CONSUMER_PROTOCOL_VERSION: i16 = 0;

/// The versions the group helpers speak; `Default` is what the Java client
/// 3.9 sends to a broker that serves the classic group protocol.
#[derive(Clone, Copy, Debug)]
pub struct GroupVersions {
    pub join_group: i16,
    pub sync_group: i16,
    pub heartbeat: i16,
    pub leave_group: i16,
    pub offset_commit: i16,
    pub offset_fetch: i16,
    pub describe_groups: i16,
}

impl Default for GroupVersions {
    fn default() -> GroupVersions {
        GroupVersions {
            join_group: 9,
            sync_group: 5,
            heartbeat: 4,
            leave_group: 5,
            offset_commit: 8,
            offset_fetch: 8,
            describe_groups: 5,
        }
    }
}

/// What a member asks for when it joins: the classic consumer protocol with
/// one assignor ("range") over `topics`.
#[derive(Clone, Debug)]
pub struct JoinSpec {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub topics: Vec<String>,
}

impl JoinSpec {
    /// A dynamic member with 30 s session and rebalance timeouts.
    pub fn consumer(group_id: &str, topics: &[&str]) -> JoinSpec {
        JoinSpec {
            group_id: group_id.to_owned(),
            member_id: String::new(),
            group_instance_id: None,
            session_timeout_ms: 30_000,
            rebalance_timeout_ms: 30_000,
            topics: topics.iter().map(|topic| (*topic).to_owned()).collect(),
        }
    }
}

/// A successful join: the member's id and generation, and (for the leader
/// only) every member with its subscribed topics.
#[derive(Clone, Debug)]
pub struct Joined {
    pub member_id: String,
    pub generation_id: i32,
    pub leader: String,
    pub protocol_name: Option<String>,
    /// Member id -> subscribed topics; empty unless this member leads.
    pub members: BTreeMap<String, Vec<String>>,
}

impl Joined {
    pub fn is_leader(&self) -> bool {
        self.leader == self.member_id
    }
}

/// The error code as a `Result`, for the helpers that want "0 or fail".
pub fn check(api: ApiKey, code: i16) -> Result<(), WireError> {
    match code {
        0 => Ok(()),
        code => Err(WireError::ErrorCode { api, code }),
    }
}

fn str_bytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn embedded<T: Encodable>(message: &T) -> Result<Bytes, WireError> {
    let mut out = BytesMut::new();
    out.put_i16(CONSUMER_PROTOCOL_VERSION);
    message
        .encode(&mut out, CONSUMER_PROTOCOL_VERSION)
        .map_err(|e| WireError::ConsumerProtocol { source: e.into() })?;
    Ok(out.freeze())
}

fn decode_embedded<T: Decodable>(mut bytes: Bytes) -> Result<T, WireError> {
    if bytes.remaining() < 2 {
        return Err(WireError::ConsumerProtocol {
            source: format!("{} bytes hold no version", bytes.remaining()).into(),
        });
    }
    let version = bytes.get_i16();
    T::decode(&mut bytes, version).map_err(|e| WireError::ConsumerProtocol { source: e.into() })
}

/// ConsumerProtocolSubscription bytes for a JoinGroup protocol's metadata.
pub fn subscription_bytes(topics: &[String]) -> Result<Bytes, WireError> {
    let subscription = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|topic| str_bytes(topic)).collect())
        .with_owned_partitions(Vec::<OwnedTopic>::new());
    embedded(&subscription)
}

/// The topics a member subscribed to, from its JoinGroup metadata.
pub fn decode_subscription(metadata: Bytes) -> Result<Vec<String>, WireError> {
    let subscription: ConsumerProtocolSubscription = decode_embedded(metadata)?;
    Ok(subscription
        .topics
        .iter()
        .map(|topic| topic.as_str().to_owned())
        .collect())
}

/// ConsumerProtocolAssignment bytes for topic -> partitions.
pub fn assignment_bytes(partitions: &BTreeMap<String, Vec<i32>>) -> Result<Bytes, WireError> {
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        partitions
            .iter()
            .map(|(topic, partitions)| {
                AssignedTopic::default()
                    .with_topic(TopicName(str_bytes(topic)))
                    .with_partitions(partitions.clone())
            })
            .collect(),
    );
    embedded(&assignment)
}

/// Topic -> partitions of a SyncGroup assignment; an empty assignment (a
/// member that got nothing) decodes to an empty map.
pub fn decode_assignment(assignment: Bytes) -> Result<BTreeMap<String, Vec<i32>>, WireError> {
    if assignment.is_empty() {
        return Ok(BTreeMap::new());
    }
    let assignment: ConsumerProtocolAssignment = decode_embedded(assignment)?;
    Ok(assignment
        .assigned_partitions
        .into_iter()
        .map(|topic| (topic.topic.0.as_str().to_owned(), topic.partitions))
        .collect())
}

/// Kafka's range assignor for one topic: members sorted by id, each gets a
/// contiguous run, the first `partitions % members` one partition more.
pub fn range_assignment(
    member_ids: &[String],
    topic: &str,
    partition_count: i32,
) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
    let mut sorted: Vec<&String> = member_ids.iter().collect();
    sorted.sort();
    let member_count = i32::try_from(sorted.len()).unwrap_or(i32::MAX).max(1);
    let per_member = partition_count / member_count;
    let extra = partition_count % member_count;
    let mut next = 0;
    let mut out = BTreeMap::new();
    for (index, member_id) in (0..).zip(sorted) {
        let count = per_member + i32::from(index < extra);
        let partitions: Vec<i32> = (next..next + count).collect();
        next += count;
        let topics = BTreeMap::from([(topic.to_owned(), partitions)]);
        out.insert(member_id.clone(), topics);
    }
    out
}

/// Committed offsets: topic -> partition -> offset.
pub type Offsets = BTreeMap<String, BTreeMap<i32, i64>>;

/// The consumer-group flows, at [`WireClient::versions`].
impl WireClient {
    /// One JoinGroup request, whatever it answers.
    pub fn join_group(&mut self, spec: &JoinSpec) -> Result<JoinGroupResponse, WireError> {
        let protocol = JoinGroupRequestProtocol::default()
            .with_name(str_bytes("range"))
            .with_metadata(subscription_bytes(&spec.topics)?);
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(str_bytes(&spec.group_id)))
            .with_session_timeout_ms(spec.session_timeout_ms)
            .with_rebalance_timeout_ms(spec.rebalance_timeout_ms)
            .with_member_id(str_bytes(&spec.member_id))
            .with_group_instance_id(spec.group_instance_id.as_deref().map(str_bytes))
            .with_protocol_type(str_bytes("consumer"))
            .with_protocols(vec![protocol]);
        self.call(self.versions.join_group, &request)
    }

    /// Joins until the broker accepts: a MEMBER_ID_REQUIRED answer is
    /// followed by a second join with the id it handed out, which is kept in
    /// `spec` for later rejoins.
    pub fn join(&mut self, spec: &mut JoinSpec) -> Result<Joined, WireError> {
        let mut response = self.join_group(spec)?;
        if response.error_code == MEMBER_ID_REQUIRED {
            spec.member_id = response.member_id.as_str().to_owned();
            response = self.join_group(spec)?;
        }
        check(ApiKey::JoinGroup, response.error_code)?;
        spec.member_id = response.member_id.as_str().to_owned();
        joined_from(response)
    }

    /// One SyncGroup request; only the leader passes assignments.
    pub fn sync_group(
        &mut self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        assignments: &BTreeMap<String, BTreeMap<String, Vec<i32>>>,
    ) -> Result<SyncGroupResponse, WireError> {
        let mut encoded = Vec::with_capacity(assignments.len());
        for (member, partitions) in assignments {
            encoded.push(
                SyncGroupRequestAssignment::default()
                    .with_member_id(str_bytes(member))
                    .with_assignment(assignment_bytes(partitions)?),
            );
        }
        let version = self.versions.sync_group;
        // v5 names the protocol so the broker can check it matches the join.
        let (protocol_type, protocol_name) = match version {
            5.. => (Some(str_bytes("consumer")), Some(str_bytes("range"))),
            _ => (None, None),
        };
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(str_bytes(group_id)))
            .with_generation_id(generation_id)
            .with_member_id(str_bytes(member_id))
            .with_protocol_type(protocol_type)
            .with_protocol_name(protocol_name)
            .with_assignments(encoded);
        self.call(version, &request)
    }

    /// SyncGroup that must succeed: this member's topic -> partitions.
    pub fn sync(
        &mut self,
        joined: &Joined,
        group_id: &str,
        assignments: &BTreeMap<String, BTreeMap<String, Vec<i32>>>,
    ) -> Result<BTreeMap<String, Vec<i32>>, WireError> {
        let response = self.sync_group(
            group_id,
            joined.generation_id,
            &joined.member_id,
            assignments,
        )?;
        check(ApiKey::SyncGroup, response.error_code)?;
        decode_assignment(response.assignment)
    }

    pub fn heartbeat(
        &mut self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
    ) -> Result<HeartbeatResponse, WireError> {
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(group_id)))
            .with_generation_id(generation_id)
            .with_member_id(str_bytes(member_id));
        self.call(self.versions.heartbeat, &request)
    }

    /// LeaveGroup for one dynamic member (v0-2 single form, v3+ batch form).
    pub fn leave_group(
        &mut self,
        group_id: &str,
        member_id: &str,
    ) -> Result<LeaveGroupResponse, WireError> {
        let version = self.versions.leave_group;
        let request = LeaveGroupRequest::default().with_group_id(GroupId(str_bytes(group_id)));
        let request = match version {
            3.. => request.with_members(vec![
                MemberIdentity::default().with_member_id(str_bytes(member_id))
            ]),
            _ => request.with_member_id(str_bytes(member_id)),
        };
        self.call(version, &request)
    }

    pub fn commit_offsets(
        &mut self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        offsets: &Offsets,
    ) -> Result<OffsetCommitResponse, WireError> {
        let topics = offsets
            .iter()
            .map(|(topic, partitions)| {
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(str_bytes(topic)))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|(&partition, &offset)| {
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(partition)
                                    .with_committed_offset(offset)
                            })
                            .collect(),
                    )
            })
            .collect();
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(str_bytes(group_id)))
            .with_generation_id_or_member_epoch(generation_id)
            .with_member_id(str_bytes(member_id))
            .with_topics(topics);
        self.call(self.versions.offset_commit, &request)
    }

    /// OffsetCommit where every partition must be accepted.
    pub fn commit(
        &mut self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        offsets: &Offsets,
    ) -> Result<(), WireError> {
        let response = self.commit_offsets(group_id, generation_id, member_id, offsets)?;
        let codes = response.topics.iter().flat_map(|topic| &topic.partitions);
        for partition in codes {
            check(ApiKey::OffsetCommit, partition.error_code)?;
        }
        Ok(())
    }

    /// OffsetFetch of one group; `topics: None` asks for all its offsets.
    pub fn fetch_offsets(
        &mut self,
        group_id: &str,
        topics: Option<&BTreeMap<String, Vec<i32>>>,
    ) -> Result<OffsetFetchResponse, WireError> {
        let version = self.versions.offset_fetch;
        let request = if version >= 8 {
            let topics = topics.map(|topics| {
                topics
                    .iter()
                    .map(|(name, partitions)| {
                        OffsetFetchRequestTopics::default()
                            .with_name(TopicName(str_bytes(name)))
                            .with_partition_indexes(partitions.clone())
                    })
                    .collect()
            });
            let group = OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(str_bytes(group_id)))
                .with_topics(topics);
            OffsetFetchRequest::default().with_groups(vec![group])
        } else {
            let topics = topics.map(|topics| {
                topics
                    .iter()
                    .map(|(name, partitions)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(TopicName(str_bytes(name)))
                            .with_partition_indexes(partitions.clone())
                    })
                    .collect()
            });
            OffsetFetchRequest::default()
                .with_group_id(GroupId(str_bytes(group_id)))
                .with_topics(topics)
        };
        self.call(version, &request)
    }

    /// The committed offsets the broker returns for `topics` (-1 where none
    /// is committed); any error code fails.
    pub fn committed(
        &mut self,
        group_id: &str,
        topics: Option<&BTreeMap<String, Vec<i32>>>,
    ) -> Result<Offsets, WireError> {
        let response = self.fetch_offsets(group_id, topics)?;
        let mut out = Offsets::new();
        if self.versions.offset_fetch >= 8 {
            for group in response.groups {
                check(ApiKey::OffsetFetch, group.error_code)?;
                for topic in group.topics {
                    let entry = out.entry(topic.name.0.as_str().to_owned()).or_default();
                    for partition in topic.partitions {
                        check(ApiKey::OffsetFetch, partition.error_code)?;
                        entry.insert(partition.partition_index, partition.committed_offset);
                    }
                }
            }
            return Ok(out);
        }
        check(ApiKey::OffsetFetch, response.error_code)?;
        for topic in response.topics {
            let entry = out.entry(topic.name.0.as_str().to_owned()).or_default();
            for partition in topic.partitions {
                check(ApiKey::OffsetFetch, partition.error_code)?;
                entry.insert(partition.partition_index, partition.committed_offset);
            }
        }
        Ok(out)
    }

    /// FindCoordinator v3 for one group, as every client asks before its
    /// first group call (the first one creates `__consumer_offsets`).
    /// Returns the answer's error code.
    pub fn find_coordinator(&mut self, group_id: &str) -> Result<i16, WireError> {
        let request = FindCoordinatorRequest::default()
            .with_key(str_bytes(group_id))
            .with_key_type(0);
        let response: FindCoordinatorResponse = self.call(3, &request)?;
        Ok(response.error_code)
    }

    pub fn describe_groups(
        &mut self,
        group_ids: &[&str],
    ) -> Result<DescribeGroupsResponse, WireError> {
        let request = DescribeGroupsRequest::default().with_groups(
            group_ids
                .iter()
                .map(|group_id| GroupId(str_bytes(group_id)))
                .collect(),
        );
        self.call(self.versions.describe_groups, &request)
    }

    /// The state DescribeGroups reports for one group ("Empty", "Stable",
    /// "Dead" for an unknown group, ...); an error code fails.
    pub fn group_state(&mut self, group_id: &str) -> Result<String, WireError> {
        let response = self.describe_groups(&[group_id])?;
        let Some(group) = response.groups.into_iter().next() else {
            return Err(WireError::MissingEntry {
                api: ApiKey::DescribeGroups,
            });
        };
        check(ApiKey::DescribeGroups, group.error_code)?;
        Ok(group.group_state.as_str().to_owned())
    }
}

fn joined_from(response: JoinGroupResponse) -> Result<Joined, WireError> {
    let mut members = BTreeMap::new();
    for member in response.members {
        let topics = decode_subscription(member.metadata)?;
        members.insert(member.member_id.as_str().to_owned(), topics);
    }
    Ok(Joined {
        member_id: response.member_id.as_str().to_owned(),
        generation_id: response.generation_id,
        leader: response.leader.as_str().to_owned(),
        protocol_name: response.protocol_name.map(|name| name.as_str().to_owned()),
        members,
    })
}
