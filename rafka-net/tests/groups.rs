//! The group APIs end to end on a real broker core (1, 2 and 4 shards):
//! requests encoded with kafka-protocol at several versions, served
//! through `dispatch` on the last shard (so a group owned elsewhere is
//! routed over the mesh), responses decoded and checked field by field,
//! including each version conversion (LeaveGroup v0 vs v3, OffsetFetch v1
//! vs v8 multi-group, FindCoordinator v3 vs v4 batched).

use bytes::Bytes;
use futures_util::future::join;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse,
};
use rafka_core::config::BrokerConfig;
use rafka_testkit::broker::{HOST, NODE_ID, PORT};
use rafka_testkit::proto::{group_id, str_bytes, topic_name};
use rafka_testkit::{Broker, TestBroker};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_GROUP_ID: i16 = 24;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const INVALID_REQUEST: i16 = 42;
const NON_EMPTY_GROUP: i16 = 68;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
/// Read | Delete | Describe, Kafka's ACL operations on a group.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

const TOPIC: &str = "events";

/// A group's answer to OffsetFetch v8: id, error, (partition, offset)s.
type GroupOffsets<'a> = (&'a str, i16, Vec<(i32, i64)>);

fn fast_groups(config: &mut BrokerConfig) {
    config.group_initial_rebalance_delay_ms = 0;
}

/// A broker whose `__consumer_offsets` exists: clients ask FindCoordinator
/// before any group call, and the first one creates the topic.
fn with_group_broker<F, Fut>(shards: usize, scenario: F)
where
    F: FnOnce(Broker) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let broker = TestBroker::builder().shards(shards).config(fast_groups);
    broker.run(move |broker: Broker| async move {
        let lookup = FindCoordinatorRequest::default()
            .with_key(str_bytes("any-group"))
            .with_key_type(0);
        let found: FindCoordinatorResponse = broker.call(3, &lookup).await;
        assert_eq!(found.error_code, 0);
        scenario(broker).await;
    })
}

fn join_request(group: &str, member_id: &str, metadata: &'static [u8]) -> JoinGroupRequest {
    let protocol = JoinGroupRequestProtocol::default()
        .with_name(str_bytes("range"))
        .with_metadata(Bytes::from_static(metadata));
    JoinGroupRequest::default()
        .with_group_id(group_id(group))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_member_id(str_bytes(member_id))
        .with_protocol_type(str_bytes("consumer"))
        .with_protocols(vec![protocol])
}

/// A v5 join: the first answer hands out the member id (v4+ rule), the
/// second joins with it.
async fn join_v5(broker: &Broker, group: &str, metadata: &'static [u8]) -> JoinGroupResponse {
    let first: JoinGroupResponse = broker.call(5, &join_request(group, "", metadata)).await;
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    assert!(!first.member_id.is_empty(), "the broker hands out an id");
    let request = join_request(group, first.member_id.as_str(), metadata);
    let joined: JoinGroupResponse = broker.call(5, &request).await;
    assert_eq!(joined.member_id, first.member_id);
    joined
}

async fn sync(
    broker: &Broker,
    version: i16,
    group: &str,
    joined: &JoinGroupResponse,
    assignments: Vec<(&str, &'static [u8])>,
) -> SyncGroupResponse {
    let assignments = assignments
        .into_iter()
        .map(|(member, bytes)| {
            SyncGroupRequestAssignment::default()
                .with_member_id(str_bytes(member))
                .with_assignment(Bytes::from_static(bytes))
        })
        .collect();
    let request = SyncGroupRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone())
        .with_assignments(assignments);
    broker.call(version, &request).await
}

async fn heartbeat(broker: &Broker, version: i16, group: &str, joined: &JoinGroupResponse) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone());
    let response: HeartbeatResponse = broker.call(version, &request).await;
    response.error_code
}

/// One member alone, at v0: no member id round trip, leader of its own
/// generation, its assignment bytes back from SyncGroup v0.
async fn single_member_v0_scenario(broker: Broker) {
    let joined: JoinGroupResponse = broker.call(0, &join_request("solo", "", b"meta")).await;
    assert_eq!(joined.error_code, 0);
    assert!(!joined.member_id.is_empty());
    assert_eq!(joined.leader, joined.member_id);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    let members: Vec<(&str, &[u8])> = joined
        .members
        .iter()
        .map(|m| (m.member_id.as_str(), &m.metadata[..]))
        .collect();
    assert_eq!(members, vec![(joined.member_id.as_str(), &b"meta"[..])]);
    let member = joined.member_id.to_string();
    let synced = sync(&broker, 0, "solo", &joined, vec![(&member, b"mine")]).await;
    assert_eq!(
        (synced.error_code, &synced.assignment[..]),
        (0, &b"mine"[..])
    );
    assert_eq!(heartbeat(&broker, 0, "solo", &joined).await, 0);
    let described: DescribeGroupsResponse = broker
        .call(
            0,
            &DescribeGroupsRequest::default().with_groups(vec![group_id("solo")]),
        )
        .await;
    let group = &described.groups[0];
    assert_eq!(group.group_state.as_str(), "Stable");
    assert_eq!(group.protocol_data.as_str(), "range");
    assert_eq!(
        group.members[0].member_assignment,
        Bytes::from_static(b"mine")
    );
}

#[test]
fn single_member_v0_one_shard() {
    with_group_broker(1, single_member_v0_scenario);
}

#[test]
fn single_member_v0_two_shards() {
    with_group_broker(2, single_member_v0_scenario);
}

#[test]
fn single_member_v0_four_shards() {
    with_group_broker(4, single_member_v0_scenario);
}

/// Two members at v5: the second join starts a rebalance that the first
/// learns of by heartbeat; both end in one generation with one leader and
/// each gets the assignment the leader sent for it.
async fn two_members_scenario(broker: Broker) {
    let first = join_v5(&broker, "pair", b"a").await;
    assert_eq!((first.error_code, first.generation_id), (0, 1));
    let a = first.member_id.to_string();
    let synced = sync(&broker, 5, "pair", &first, vec![(&a, b"all")]).await;
    assert_eq!(synced.error_code, 0);
    let second_join = join_v5(&broker, "pair", b"b");
    let rejoin = async {
        await_rebalance(&broker, &first).await;
        broker.call(5, &join_request("pair", &a, b"a")).await
    };
    let (second, first) = join(second_join, rejoin).await;
    assert_eq!((first.error_code, second.error_code), (0, 0));
    assert_eq!(first.generation_id, 2);
    assert_eq!(second.generation_id, 2);
    assert_eq!(first.leader, second.leader);
    let (leader, follower) = if first.leader == first.member_id {
        (&first, &second)
    } else {
        (&second, &first)
    };
    let mut metadata: Vec<&[u8]> = leader.members.iter().map(|m| &m.metadata[..]).collect();
    metadata.sort_unstable();
    assert_eq!(metadata, vec![&b"a"[..], &b"b"[..]]);
    assert!(
        follower.members.is_empty(),
        "only the leader sees the members"
    );
    let (leader_id, follower_id) = (leader.member_id.to_string(), follower.member_id.to_string());
    let assignments = vec![
        (leader_id.as_str(), &b"L"[..]),
        (follower_id.as_str(), &b"F"[..]),
    ];
    let (led, followed) = join(
        sync(&broker, 5, "pair", leader, assignments),
        sync(&broker, 3, "pair", follower, Vec::new()),
    )
    .await;
    assert_eq!((led.error_code, &led.assignment[..]), (0, &b"L"[..]));
    assert_eq!(
        (followed.error_code, &followed.assignment[..]),
        (0, &b"F"[..])
    );
    assert_eq!(led.protocol_name.as_deref(), Some("range"));
    leave_v0_and_v3_scenario(&broker, &follower_id, &leader_id).await;
}

/// Heartbeats as `member` until the coordinator says a rebalance started
/// (a second member's join, running concurrently), as a client would.
async fn await_rebalance(broker: &Broker, member: &JoinGroupResponse) {
    const HEARTBEATS_MAX: u32 = 10_000;
    for _ in 0..HEARTBEATS_MAX {
        match heartbeat(broker, 4, "pair", member).await {
            0 => futures_lite::future::yield_now().await,
            code => {
                assert_eq!(code, REBALANCE_IN_PROGRESS);
                return;
            }
        }
    }
    panic!("no rebalance after {HEARTBEATS_MAX} heartbeats");
}

/// LeaveGroup v0 (one member id, one error code) vs v3 (a batch with an
/// answer per member).
async fn leave_v0_and_v3_scenario(broker: &Broker, v0_member: &str, v3_member: &str) {
    let v0 = LeaveGroupRequest::default()
        .with_group_id(group_id("pair"))
        .with_member_id(str_bytes(v0_member));
    let left: LeaveGroupResponse = broker.call(0, &v0).await;
    assert_eq!(left.error_code, 0);
    let again: LeaveGroupResponse = broker.call(0, &v0).await;
    assert_eq!(again.error_code, UNKNOWN_MEMBER_ID);
    let batch = vec![
        MemberIdentity::default().with_member_id(str_bytes(v3_member)),
        MemberIdentity::default().with_member_id(str_bytes(v0_member)),
    ];
    let v3 = LeaveGroupRequest::default()
        .with_group_id(group_id("pair"))
        .with_members(batch);
    let left: LeaveGroupResponse = broker.call(3, &v3).await;
    assert_eq!(left.error_code, 0);
    let members: Vec<(&str, i16)> = left
        .members
        .iter()
        .map(|m| (m.member_id.as_str(), m.error_code))
        .collect();
    assert_eq!(
        members,
        vec![(v3_member, 0), (v0_member, UNKNOWN_MEMBER_ID)]
    );
    let described: DescribeGroupsResponse = broker
        .call(
            5,
            &DescribeGroupsRequest::default().with_groups(vec![group_id("pair")]),
        )
        .await;
    assert_eq!(described.groups[0].group_state.as_str(), "Empty");
    assert_eq!(described.groups[0].authorized_operations, i32::MIN);
}

#[test]
fn two_members_one_shard() {
    with_group_broker(1, two_members_scenario);
}

#[test]
fn two_members_two_shards() {
    with_group_broker(2, two_members_scenario);
}

#[test]
fn two_members_four_shards() {
    with_group_broker(4, two_members_scenario);
}

/// Join, sync, heartbeat and leave refuse an empty group id before any
/// coordinator is asked.
async fn empty_group_id_scenario(broker: Broker) {
    let joined: JoinGroupResponse = broker.call(9, &join_request("", "", b"m")).await;
    assert_eq!(joined.error_code, INVALID_GROUP_ID);
    assert_eq!(joined.generation_id, -1);
    let v6: JoinGroupResponse = broker.call(6, &join_request("", "", b"m")).await;
    assert_eq!(
        (v6.error_code, v6.protocol_name.as_deref()),
        (INVALID_GROUP_ID, Some(""))
    );
    let synced = sync(&broker, 4, "", &joined, Vec::new()).await;
    assert_eq!(synced.error_code, INVALID_GROUP_ID);
    assert_eq!(heartbeat(&broker, 2, "", &joined).await, INVALID_GROUP_ID);
    let left: LeaveGroupResponse = broker
        .call(
            1,
            &LeaveGroupRequest::default().with_member_id(str_bytes("x")),
        )
        .await;
    assert_eq!(left.error_code, INVALID_GROUP_ID);
}

#[test]
fn empty_group_id_one_shard() {
    with_group_broker(1, empty_group_id_scenario);
}

#[test]
fn empty_group_id_two_shards() {
    with_group_broker(2, empty_group_id_scenario);
}

#[test]
fn empty_group_id_four_shards() {
    with_group_broker(4, empty_group_id_scenario);
}

fn commit_request(group: &str, offsets: &[(i32, i64)]) -> OffsetCommitRequest {
    let partitions = offsets
        .iter()
        .map(|(partition, offset)| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset)
                .with_committed_metadata(Some(str_bytes("meta")))
        })
        .collect();
    OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(partitions)])
}

fn committed(response: &OffsetFetchResponse) -> Vec<(i32, i64, i16)> {
    response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.committed_offset, p.error_code))
        .collect()
}

/// Standalone commits (v2 and v8), read back with OffsetFetch v1 (named
/// partitions), v7 (all of the group) and v8 (two groups in one request,
/// answered in request order).
async fn offsets_scenario(broker: Broker) {
    let result = broker.create_topic(TOPIC, 3, &[]).await;
    assert_eq!(result.error_code, 0);
    let v2: OffsetCommitResponse = broker
        .call(2, &commit_request("readers", &[(0, 10), (1, 11)]))
        .await;
    let codes: Vec<(i32, i16)> = v2.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.error_code))
        .collect();
    assert_eq!(codes, vec![(0, 0), (1, 0)]);
    let v8: OffsetCommitResponse = broker.call(8, &commit_request("writers", &[(2, 22)])).await;
    assert_eq!(v8.topics[0].partitions[0].error_code, 0);

    let v1 = OffsetFetchRequest::default()
        .with_group_id(group_id("readers"))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partition_indexes(vec![1, 2])]));
    let fetched: OffsetFetchResponse = broker.call(1, &v1).await;
    assert_eq!(committed(&fetched), vec![(1, 11, 0), (2, -1, 0)]);
    let all = OffsetFetchRequest::default()
        .with_group_id(group_id("readers"))
        .with_topics(None);
    let fetched: OffsetFetchResponse = broker.call(7, &all).await;
    assert_eq!(fetched.error_code, 0);
    let mut offsets = committed(&fetched);
    offsets.sort_unstable();
    assert_eq!(offsets, vec![(0, 10, 0), (1, 11, 0)]);
    assert_eq!(
        fetched.topics[0].partitions[0].metadata.as_deref(),
        Some("meta")
    );

    let groups = ["writers", "readers", "nobody"].map(|name| {
        OffsetFetchRequestGroup::default()
            .with_group_id(group_id(name))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(topic_name(TOPIC))
                .with_partition_indexes(vec![0, 2])]))
    });
    let multi = OffsetFetchRequest::default().with_groups(groups.to_vec());
    let fetched: OffsetFetchResponse = broker.call(8, &multi).await;
    let answered: Vec<GroupOffsets> = fetched
        .groups
        .iter()
        .map(|g| {
            let offsets = g.topics.iter().flat_map(|t| t.partitions.iter());
            let offsets = offsets
                .map(|p| (p.partition_index, p.committed_offset))
                .collect();
            (g.group_id.as_str(), g.error_code, offsets)
        })
        .collect();
    assert_eq!(
        answered,
        vec![
            ("writers", 0, vec![(0, -1), (2, 22)]),
            ("readers", 0, vec![(0, 10), (2, -1)]),
            ("nobody", 0, vec![(0, -1), (2, -1)]),
        ]
    );
    offset_delete_scenario(&broker).await;
    list_and_delete_scenario(&broker).await;
}

/// OffsetDelete v0 removes one committed offset of an empty group and
/// refuses an empty group id.
async fn offset_delete_scenario(broker: &Broker) {
    let topic = OffsetDeleteRequestTopic::default()
        .with_name(topic_name(TOPIC))
        .with_partitions(vec![
            OffsetDeleteRequestPartition::default().with_partition_index(2)
        ]);
    let request = OffsetDeleteRequest::default()
        .with_group_id(group_id("writers"))
        .with_topics(vec![topic.clone()]);
    let deleted: OffsetDeleteResponse = broker.call(0, &request).await;
    assert_eq!(deleted.error_code, 0);
    let codes: Vec<(i32, i16)> = deleted.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.error_code))
        .collect();
    assert_eq!(codes, vec![(2, 0)]);
    let fetch = OffsetFetchRequest::default()
        .with_group_id(group_id("writers"))
        .with_topics(None);
    let fetched: OffsetFetchResponse = broker.call(5, &fetch).await;
    assert_eq!(committed(&fetched), Vec::new());
    let unnamed = OffsetDeleteRequest::default().with_topics(vec![topic]);
    let refused: OffsetDeleteResponse = broker.call(0, &unnamed).await;
    assert_eq!(refused.error_code, INVALID_GROUP_ID);
}

/// ListGroups (v0, and v4 filtered by state) sees the standalone groups;
/// DeleteGroups deletes an empty one and names unknown ones.
async fn list_and_delete_scenario(broker: &Broker) {
    let listed: ListGroupsResponse = broker.call(0, &ListGroupsRequest::default()).await;
    assert_eq!(listed.error_code, 0);
    let mut names: Vec<&str> = listed.groups.iter().map(|g| g.group_id.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, vec!["readers", "writers"]);
    let stable = ListGroupsRequest::default().with_states_filter(vec![str_bytes("Stable")]);
    let listed: ListGroupsResponse = broker.call(4, &stable).await;
    assert!(listed.groups.is_empty(), "no group has members");
    let names = ["readers", "ghost", "readers"].map(group_id).to_vec();
    let deleted: DeleteGroupsResponse = broker
        .call(2, &DeleteGroupsRequest::default().with_groups_names(names))
        .await;
    let results: Vec<(&str, i16)> = deleted
        .results
        .iter()
        .map(|r| (r.group_id.as_str(), r.error_code))
        .collect();
    assert_eq!(results, vec![("readers", 0), ("ghost", GROUP_ID_NOT_FOUND)]);
    let described: DescribeGroupsResponse = broker
        .call(
            3,
            &DescribeGroupsRequest::default()
                .with_groups(vec![group_id("writers"), group_id("readers")])
                .with_include_authorized_operations(true),
        )
        .await;
    let states: Vec<(&str, &str, i32)> = described
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.as_str(),
                g.group_state.as_str(),
                g.authorized_operations,
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            ("writers", "Empty", GROUP_OPERATIONS),
            ("readers", "Dead", GROUP_OPERATIONS)
        ]
    );
}

/// Partitions of topics the broker lacks are answered
/// UNKNOWN_TOPIC_OR_PARTITION and not stored; the rest of the request is.
async fn unknown_topic_commit_scenario(broker: Broker) {
    let result = broker.create_topic(TOPIC, 3, &[]).await;
    assert_eq!(result.error_code, 0);
    let mut request = commit_request("mixed", &[(0, 5), (99, 6)]);
    let mut missing = request.topics[0].clone().with_name(topic_name("missing"));
    missing.partitions.truncate(1);
    request.topics.push(missing);
    let answer: OffsetCommitResponse = broker.call(8, &request).await;
    let codes: Vec<(&str, i32, i16)> = answer
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.as_str(), p.partition_index, p.error_code))
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            (TOPIC, 0, 0),
            (TOPIC, 99, UNKNOWN_TOPIC_OR_PARTITION),
            ("missing", 0, UNKNOWN_TOPIC_OR_PARTITION)
        ]
    );
    let all = OffsetFetchRequest::default()
        .with_group_id(group_id("mixed"))
        .with_topics(None);
    let fetched: OffsetFetchResponse = broker.call(7, &all).await;
    assert_eq!(committed(&fetched), vec![(0, 5, 0)]);
}

#[test]
fn unknown_topic_commit_one_shard() {
    with_group_broker(1, unknown_topic_commit_scenario);
}

#[test]
fn unknown_topic_commit_two_shards() {
    with_group_broker(2, unknown_topic_commit_scenario);
}

#[test]
fn unknown_topic_commit_four_shards() {
    with_group_broker(4, unknown_topic_commit_scenario);
}

#[test]
fn offsets_one_shard() {
    with_group_broker(1, offsets_scenario);
}

#[test]
fn offsets_two_shards() {
    with_group_broker(2, offsets_scenario);
}

#[test]
fn offsets_four_shards() {
    with_group_broker(4, offsets_scenario);
}

/// Deleting `__consumer_offsets` (Kafka allows it) forgets every group and
/// offset it held: the next FindCoordinator re-creates it empty.
async fn offsets_topic_deleted_scenario(broker: Broker) {
    let result = broker.create_topic(TOPIC, 3, &[]).await;
    assert_eq!(result.error_code, 0);
    let commit: OffsetCommitResponse = broker.call(8, &commit_request("readers", &[(0, 10)])).await;
    assert_eq!(commit.topics[0].partitions[0].error_code, 0);
    let all = OffsetFetchRequest::default()
        .with_group_id(group_id("readers"))
        .with_topics(None);
    let before: OffsetFetchResponse = broker.call(7, &all).await;
    assert_eq!(committed(&before), vec![(0, 10, 0)]);

    let delete = DeleteTopicsRequest::default()
        .with_topic_names(vec![topic_name("__consumer_offsets")])
        .with_timeout_ms(30_000);
    let deleted: DeleteTopicsResponse = broker.call(4, &delete).await;
    assert_eq!(deleted.responses[0].error_code, 0);
    assert!(broker.shard.image().topic("__consumer_offsets").is_none());

    let lookup = FindCoordinatorRequest::default()
        .with_key(str_bytes("readers"))
        .with_key_type(0);
    let found: FindCoordinatorResponse = broker.call(3, &lookup).await;
    assert_eq!(found.error_code, 0);
    let after: OffsetFetchResponse = broker.call(7, &all).await;
    assert_eq!(after.error_code, 0);
    assert_eq!(committed(&after), vec![], "no offsets survive the topic");
}

#[test]
fn offsets_topic_deleted_one_shard() {
    with_group_broker(1, offsets_topic_deleted_scenario);
}

#[test]
fn offsets_topic_deleted_two_shards() {
    with_group_broker(2, offsets_topic_deleted_scenario);
}

#[test]
fn offsets_topic_deleted_four_shards() {
    with_group_broker(4, offsets_topic_deleted_scenario);
}

/// A member in a group makes DeleteGroups answer NON_EMPTY_GROUP.
async fn delete_non_empty_scenario(broker: Broker) {
    let joined = join_v5(&broker, "busy", b"m").await;
    assert_eq!(joined.error_code, 0);
    let deleted: DeleteGroupsResponse = broker
        .call(
            0,
            &DeleteGroupsRequest::default().with_groups_names(vec![group_id("busy")]),
        )
        .await;
    assert_eq!(deleted.results[0].error_code, NON_EMPTY_GROUP);
}

#[test]
fn delete_non_empty_one_shard() {
    with_group_broker(1, delete_non_empty_scenario);
}

#[test]
fn delete_non_empty_two_shards() {
    with_group_broker(2, delete_non_empty_scenario);
}

#[test]
fn delete_non_empty_four_shards() {
    with_group_broker(4, delete_non_empty_scenario);
}

/// FindCoordinator v3 (one key) vs v4 (batched keys): every group key is
/// coordinated by this node; an unknown key type is INVALID_REQUEST.
async fn find_coordinator_scenario(broker: Broker) {
    // No group was ever looked up: no `__consumer_offsets` yet, and a group
    // call has no coordinator to go to.
    assert!(broker.shard.image().topic("__consumer_offsets").is_none());
    let early: JoinGroupResponse = broker.call(5, &join_request("g-1", "", b"m")).await;
    assert_eq!(early.error_code, COORDINATOR_NOT_AVAILABLE);
    let single = FindCoordinatorRequest::default()
        .with_key(str_bytes("g-1"))
        .with_key_type(0);
    let v3: FindCoordinatorResponse = broker.call(3, &single).await;
    assert_eq!((v3.error_code, v3.node_id.0), (0, NODE_ID));
    assert_eq!((v3.host.as_str(), v3.port), (HOST, i32::from(PORT)));
    let keys = ["g-1", "g-2", "g-3"].map(str_bytes).to_vec();
    let batched = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(keys);
    let v4: FindCoordinatorResponse = broker.call(4, &batched).await;
    let answers: Vec<(&str, i16, i32)> = v4
        .coordinators
        .iter()
        .map(|c| (c.key.as_str(), c.error_code, c.node_id.0))
        .collect();
    let created = broker
        .shard
        .image()
        .topic("__consumer_offsets")
        .map(|t| t.partitions.len());
    assert_eq!(
        created,
        Some(50),
        "the first lookup created it with the default count"
    );
    assert_eq!(
        answers,
        vec![
            ("g-1", 0, NODE_ID),
            ("g-2", 0, NODE_ID),
            ("g-3", 0, NODE_ID)
        ]
    );
    let unknown = FindCoordinatorRequest::default()
        .with_key_type(2)
        .with_coordinator_keys(vec![str_bytes("s")]);
    let v6: FindCoordinatorResponse = broker.call(6, &unknown).await;
    assert_eq!(
        (v6.coordinators[0].error_code, v6.coordinators[0].node_id.0),
        (INVALID_REQUEST, -1)
    );
}

#[test]
fn find_coordinator_one_shard() {
    TestBroker::builder()
        .shards(1)
        .config(fast_groups)
        .run(find_coordinator_scenario);
}

#[test]
fn find_coordinator_two_shards() {
    TestBroker::builder()
        .shards(2)
        .config(fast_groups)
        .run(find_coordinator_scenario);
}

#[test]
fn find_coordinator_four_shards() {
    TestBroker::builder()
        .shards(4)
        .config(fast_groups)
        .run(find_coordinator_scenario);
}
