//! The group coordinator on real glommio shards: `__consumer_offsets`
//! created at startup, a two-member join/sync, commits that survive a
//! restart, and a group served by the shard owning its partition.

use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use rafka_core::config::BrokerConfig;
use rafka_core::group::partition_for_group;
use rafka_core::group::{CommitPartition, CommitRequest, JoinRequest, JoinedMember, SyncRequest};
use rafka_shard::group::GROUP_METADATA_TOPIC;
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

fn join_req(group: &str, member_id: &str) -> JoinRequest {
    JoinRequest {
        group_id: group.to_string(),
        member_id: member_id.to_string(),
        group_instance_id: None,
        protocol_type: "consumer".to_string(),
        protocols: vec![(
            "range".to_string(),
            Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 0]),
        )],
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        client_id: "c".to_string(),
        client_host: "/127.0.0.1".to_string(),
        // JoinGroup v5, as the handler converts it.
        require_known_member_id: true,
    }
}

/// A join's answer, its code as on the wire.
struct Joined {
    error_code: i16,
    generation_id: i32,
    leader: String,
    member_id: String,
    members: Vec<JoinedMember>,
    protocol_name: Option<String>,
}

async fn join(shard: &Rc<Shard>, group: &str, member_id: &str) -> Joined {
    let owner = shard.group_coordinator_shard(group).expect("coordinator");
    let req = join_req(group, member_id);
    let r = shard
        .router
        .invoke_on(owner, move |s: Rc<Shard>| async move {
            s.groups().join(req).await
        })
        .await
        .expect("route");
    Joined {
        error_code: r.error_code.code(),
        generation_id: r.generation_id,
        leader: r.leader,
        member_id: r.member_id,
        members: r.members,
        protocol_name: r.protocol_name,
    }
}

fn sync_req(
    group: &str,
    member: &str,
    generation: i32,
    assignments: Vec<(String, Bytes)>,
) -> SyncRequest {
    SyncRequest {
        group_id: group.to_string(),
        generation_id: generation,
        member_id: member.to_string(),
        group_instance_id: None,
        protocol_type: None,
        protocol_name: None,
        assignments,
    }
}

async fn sync(
    shard: &Rc<Shard>,
    group: &str,
    member: &str,
    generation: i32,
    assign: bool,
) -> (i16, Bytes) {
    let owner = shard.group_coordinator_shard(group).expect("coordinator");
    let assignments = if assign {
        ["a", "b"]
            .iter()
            .map(|tag| (member.to_string(), Bytes::from(tag.as_bytes().to_vec())))
            .collect()
    } else {
        Vec::new()
    };
    let req = sync_req(group, member, generation, assignments);
    shard
        .router
        .invoke_on(owner, move |s: Rc<Shard>| async move {
            let r = s.groups().sync(req).await;
            (r.error_code.code(), r.assignment)
        })
        .await
        .expect("route")
}

async fn commit(shard: &Rc<Shard>, group: &str, offset: i64) -> i16 {
    let owner = shard.group_coordinator_shard(group).expect("coordinator");
    let req = CommitRequest {
        group_id: group.to_string(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        topics: vec![(
            "t".to_string(),
            vec![CommitPartition {
                partition: 0,
                offset,
                leader_epoch: -1,
                metadata: None,
            }],
        )],
    };
    shard
        .router
        .invoke_on(owner, move |s: Rc<Shard>| async move {
            let r = s.groups().commit_offsets(req).await;
            r[0].1[0].1.code()
        })
        .await
        .expect("route")
}

async fn fetch_offset(shard: &Rc<Shard>, group: &str) -> i64 {
    let owner = shard.group_coordinator_shard(group).expect("coordinator");
    let group = group.to_string();
    shard
        .router
        .invoke_on(owner, move |s: Rc<Shard>| async move {
            let r = s.groups().fetch_offsets(&group, None).expect("owner");
            r.first().map_or(-1, |(_, partitions)| partitions[0].offset)
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
                let assignments = [(lid.clone(), "a"), (fid.clone(), "b")]
                    .into_iter()
                    .map(|(id, tag)| (id, Bytes::from(tag.as_bytes().to_vec())))
                    .collect();
                let req = sync_req("g", &lid, 1, assignments);
                shard
                    .router
                    .invoke_on(owner, move |s: Rc<Shard>| async move {
                        let r = s.groups().sync(req).await;
                        (r.error_code.code(), r.assignment)
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
                s.groups().join(req).await.error_code.code()
            })
            .await
            .expect("route");
        assert_eq!(wrong, 16, "NOT_COORDINATOR on the other shard");
        assert_eq!(join(&shard, group, "").await.error_code, 79);
    });
}
