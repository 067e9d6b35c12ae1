//! The group coordinator on real glommio shards: `__consumer_offsets`
//! created at startup, a two-member join/sync, commits that survive a
//! restart, and a group served by the shard owning its partition.

use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, JoinGroupRequest, JoinGroupResponse, OffsetCommitRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rafka_core::config::BrokerConfig;
use rafka_shard::group::{partition_for_group, GroupCaller, GROUP_METADATA_TOPIC};
use rafka_shard::shard::Shard;
use rafka_testkit::TestBroker;

const PARTITIONS: i32 = 4;

fn config(config: &mut BrokerConfig) {
    config.offsets_topic_num_partitions = PARTITIONS;
    // Long enough for both members of a test to join the first
    // generation, whatever order their calls are served in.
    config.group_initial_rebalance_delay_ms = 1000;
}

/// Runs `scenario` with shard 0's context on a broker over `dir` whose
/// `__consumer_offsets` exists, then stops the broker cleanly.
fn with_broker<F, Fut>(dir: &Path, shards: usize, scenario: F)
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let broker = TestBroker::builder().shards(shards).config(config);
    broker.data_dir(dir).run(|broker| async move {
        // What the first FindCoordinator does (a no-op on restart).
        broker.ensure_offsets_topic().await;
        scenario(Rc::clone(&broker.shard)).await;
    });
}

fn caller(version: i16) -> GroupCaller {
    GroupCaller {
        api_version: version,
        client_id: "c".to_string(),
        client_host: "/127.0.0.1".to_string(),
    }
}

fn join_req(group: &str, member_id: &str) -> JoinGroupRequest {
    let mut protocol = JoinGroupRequestProtocol::default();
    protocol.name = StrBytes::from_static_str("range");
    protocol.metadata = Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 0]);
    let mut req = JoinGroupRequest::default();
    req.group_id = GroupId(StrBytes::from_string(group.to_string()));
    req.member_id = StrBytes::from_string(member_id.to_string());
    req.protocol_type = StrBytes::from_static_str("consumer");
    req.session_timeout_ms = 10_000;
    req.rebalance_timeout_ms = 10_000;
    req.protocols = vec![protocol];
    req
}

async fn join(shard: &Rc<Shard>, group: &str, member_id: &str) -> JoinGroupResponse {
    let owner = shard.group_coordinator_shard(group).expect("coordinator");
    let req = join_req(group, member_id);
    shard
        .router
        .invoke_on(owner, move |s: Rc<Shard>| async move {
            s.groups().join_group(caller(5), req).await
        })
        .await
        .expect("route")
}

async fn sync(
    shard: &Rc<Shard>,
    group: &str,
    member: &str,
    generation: i32,
    assign: bool,
) -> (i16, Bytes) {
    let owner = shard.group_coordinator_shard(group).expect("coordinator");
    let mut req = SyncGroupRequest::default();
    req.group_id = GroupId(StrBytes::from_string(group.to_string()));
    req.member_id = StrBytes::from_string(member.to_string());
    req.generation_id = generation;
    if assign {
        req.assignments = ["a", "b"]
            .iter()
            .map(|tag| {
                let mut a = SyncGroupRequestAssignment::default();
                a.member_id = StrBytes::from_string(member.to_string());
                a.assignment = Bytes::from(tag.as_bytes().to_vec());
                a
            })
            .collect();
    }
    shard
        .router
        .invoke_on(owner, move |s: Rc<Shard>| async move {
            let r = s.groups().sync_group(caller(3), req).await;
            (r.error_code, r.assignment)
        })
        .await
        .expect("route")
}

async fn commit(shard: &Rc<Shard>, group: &str, offset: i64) -> i16 {
    let owner = shard.group_coordinator_shard(group).expect("coordinator");
    let mut p = OffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = offset;
    let mut t = OffsetCommitRequestTopic::default();
    t.name = TopicName(StrBytes::from_static_str("t"));
    t.partitions = vec![p];
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(StrBytes::from_string(group.to_string()));
    req.generation_id_or_member_epoch = -1;
    req.topics = vec![t];
    shard
        .router
        .invoke_on(owner, move |s: Rc<Shard>| async move {
            let r = s.groups().offset_commit(caller(8), req).await;
            r.topics[0].partitions[0].error_code
        })
        .await
        .expect("route")
}

async fn fetch_offset(shard: &Rc<Shard>, group: &str) -> i64 {
    let owner = shard.group_coordinator_shard(group).expect("coordinator");
    let mut req = OffsetFetchRequestGroup::default();
    req.group_id = GroupId(StrBytes::from_string(group.to_string()));
    req.topics = None;
    shard
        .router
        .invoke_on(owner, move |s: Rc<Shard>| async move {
            let r = s.groups().offset_fetch(caller(8), req, false).await;
            r.topics
                .first()
                .map_or(-1, |t| t.partitions[0].committed_offset)
        })
        .await
        .expect("route")
}

#[test]
fn two_members_join_sync_commit_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    with_broker(dir.path(), 2, |shard| async move {
        let image = shard.image();
        let topic = image
            .topic(GROUP_METADATA_TOPIC)
            .expect("__consumer_offsets");
        assert_eq!(topic.partitions.len(), PARTITIONS as usize);
        // v4+: the first join only hands out a member id.
        let first = join(&shard, "g", "").await;
        assert_eq!(first.error_code, 79);
        let second = join(&shard, "g", "").await;
        assert_eq!(second.error_code, 79);
        let (a, b) = futures_util::join!(
            join(&shard, "g", first.member_id.as_str()),
            join(&shard, "g", second.member_id.as_str())
        );
        assert_eq!((a.error_code, b.error_code), (0, 0));
        assert_eq!(a.generation_id, 1);
        assert_eq!(b.generation_id, 1);
        assert_eq!(a.leader, b.leader);
        let (leader, follower) = if a.leader == a.member_id {
            (a, b)
        } else {
            (b, a)
        };
        assert_eq!(leader.members.len(), 2);
        assert!(follower.members.is_empty());
        assert_eq!(leader.protocol_name.as_deref(), Some("range"));
        let lid = leader.member_id.to_string();
        let fid = follower.member_id.to_string();
        let (l, f) = futures_util::join!(
            async {
                // The leader assigns "a" to itself and "b" to the follower.
                let owner = shard.group_coordinator_shard("g").expect("coordinator");
                let mut req = SyncGroupRequest::default();
                req.group_id = GroupId(StrBytes::from_static_str("g"));
                req.member_id = StrBytes::from_string(lid.clone());
                req.generation_id = 1;
                req.assignments = [(lid.clone(), "a"), (fid.clone(), "b")]
                    .into_iter()
                    .map(|(id, tag)| {
                        let mut x = SyncGroupRequestAssignment::default();
                        x.member_id = StrBytes::from_string(id);
                        x.assignment = Bytes::from(tag.as_bytes().to_vec());
                        x
                    })
                    .collect();
                shard
                    .router
                    .invoke_on(owner, move |s: Rc<Shard>| async move {
                        let r = s.groups().sync_group(caller(3), req).await;
                        (r.error_code, r.assignment)
                    })
                    .await
                    .expect("route")
            },
            sync(&shard, "g", &fid, 1, false)
        );
        assert_eq!(l, (0, Bytes::from_static(b"a")));
        assert_eq!(f, (0, Bytes::from_static(b"b")));
        assert_eq!(commit(&shard, "solo", 41).await, 0);
        assert_eq!(commit(&shard, "solo", 42).await, 0);
        assert_eq!(fetch_offset(&shard, "solo").await, 42);
    });
    with_broker(dir.path(), 2, |shard| async move {
        assert_eq!(fetch_offset(&shard, "solo").await, 42);
        let owner = shard.group_coordinator_shard("g").expect("coordinator");
        let (state, generation) = shard
            .router
            .invoke_on(owner, |s: Rc<Shard>| async move {
                s.groups().with_machine(|m| {
                    let g = m.group("g").expect("group g restored");
                    (g.state.name(), g.generation)
                })
            })
            .await
            .expect("route");
        assert_eq!((state, generation), ("Stable", 1));
    });
}

#[test]
fn a_group_is_served_by_the_shard_owning_its_partition() {
    let dir = tempfile::tempdir().expect("tempdir");
    with_broker(dir.path(), 2, |shard| async move {
        let group = "routed";
        let partition = partition_for_group(group, PARTITIONS);
        let owner = shard
            .owner_of(GROUP_METADATA_TOPIC, partition)
            .expect("owner");
        assert_eq!(shard.group_coordinator_shard(group), Ok(owner));
        let other = 1 - owner;
        let req = join_req(group, "");
        let wrong = shard
            .router
            .invoke_on(other, move |s: Rc<Shard>| async move {
                s.groups().join_group(caller(5), req).await.error_code
            })
            .await
            .expect("route");
        assert_eq!(wrong, 16, "NOT_COORDINATOR on the other shard");
        assert_eq!(join(&shard, group, "").await.error_code, 79);
    });
}
