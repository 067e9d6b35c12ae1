//! The group state machine with a manual clock: every call takes `now_ms`,
//! timers fire only through `tick`, so no test sleeps.

use bytes::Bytes;
use rafka_core::group::{
    CommitPartition, CommitRequest, Coordinator, Effects, GroupConfig, GroupState, JoinRequest,
    JoinResult, LeavingMember, Reply, SyncRequest, SyncResult,
};
use rafka_proto::error::ErrorCode;

const FENCED_INSTANCE_ID: ErrorCode = ErrorCode::FENCED_INSTANCE_ID;
const GROUP_ID_NOT_FOUND: ErrorCode = ErrorCode::GROUP_ID_NOT_FOUND;
const GROUP_MAX_SIZE_REACHED: ErrorCode = ErrorCode::GROUP_MAX_SIZE_REACHED;
const GROUP_SUBSCRIBED_TO_TOPIC: ErrorCode = ErrorCode::GROUP_SUBSCRIBED_TO_TOPIC;
const ILLEGAL_GENERATION: ErrorCode = ErrorCode::ILLEGAL_GENERATION;
const INCONSISTENT_GROUP_PROTOCOL: ErrorCode = ErrorCode::INCONSISTENT_GROUP_PROTOCOL;
const INVALID_SESSION_TIMEOUT: ErrorCode = ErrorCode::INVALID_SESSION_TIMEOUT;
const MEMBER_ID_REQUIRED: ErrorCode = ErrorCode::MEMBER_ID_REQUIRED;
const NONE: ErrorCode = ErrorCode::NONE;
const NON_EMPTY_GROUP: ErrorCode = ErrorCode::NON_EMPTY_GROUP;
const REBALANCE_IN_PROGRESS: ErrorCode = ErrorCode::REBALANCE_IN_PROGRESS;
const UNKNOWN_MEMBER_ID: ErrorCode = ErrorCode::UNKNOWN_MEMBER_ID;

/// A consumer-protocol v0 subscription to `topics`.
fn subscription(topics: &[&str]) -> Bytes {
    let mut b = vec![0, 0];
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    Bytes::from(b)
}

fn machine(initial_delay_ms: i64) -> Coordinator {
    Coordinator::new(GroupConfig {
        initial_rebalance_delay_ms: initial_delay_ms,
        group_size_max: 3,
        offsets_partitions: 4,
        offsets_retention_ms: 1000,
        ..GroupConfig::default()
    })
}

fn req(member_id: &str, instance: Option<&str>) -> JoinRequest {
    JoinRequest {
        group_id: "g".to_string(),
        member_id: member_id.to_string(),
        group_instance_id: instance.map(str::to_string),
        protocol_type: "consumer".to_string(),
        protocols: vec![("range".to_string(), subscription(&["t"]))],
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 20_000,
        client_id: "c".to_string(),
        client_host: "h".to_string(),
        require_known_member_id: true,
    }
}

fn join_reply(fx: &Effects, token: u64) -> JoinResult {
    match fx.reply_for(token) {
        Some(Reply::Join(r)) => r.clone(),
        other => panic!("no join reply for {token}: {other:?}"),
    }
}

fn sync_reply(fx: &Effects, token: u64) -> SyncResult {
    match fx.reply_for(token) {
        Some(Reply::Sync(r)) => r.clone(),
        other => panic!("no sync reply for {token}: {other:?}"),
    }
}

/// Two dynamic members through MEMBER_ID_REQUIRED, joined and synced at
/// generation 1. Returns (leader id, follower id).
fn stable_pair(m: &mut Coordinator) -> (String, String) {
    let a = join_reply(&m.join(0, 1, req("", None)), 1);
    assert_eq!(a.error_code, MEMBER_ID_REQUIRED);
    assert!(a.member_id.starts_with("c-"));
    let b = join_reply(&m.join(0, 2, req("", None)), 2);
    let fx = m.join(0, 3, req(&a.member_id, None));
    assert!(fx.replies.is_empty(), "waits for the initial delay");
    let fx = m.join(0, 4, req(&b.member_id, None));
    assert!(fx.replies.is_empty());
    assert_eq!(m.next_deadline_ms(), Some(100));
    // A member arrived during the initial delay: it is extended once more.
    assert!(m.tick(100).replies.is_empty());
    assert_eq!(m.next_deadline_ms(), Some(200));
    let fx = m.tick(200);
    let (ja, jb) = (join_reply(&fx, 3), join_reply(&fx, 4));
    assert_eq!((ja.generation_id, jb.generation_id), (1, 1));
    assert_eq!(ja.leader, jb.leader);
    let (leader, follower) = if ja.leader == ja.member_id {
        (ja, jb)
    } else {
        (jb, ja)
    };
    assert_eq!(leader.members.len(), 2);
    assert!(follower.members.is_empty());
    assert_eq!(m.group("g").unwrap().state, GroupState::CompletingRebalance);
    let fx = m.sync(110, 5, sync_req(&follower.member_id, 1, vec![]));
    assert!(fx.replies.is_empty(), "followers wait for the leader");
    let assignments = vec![
        (leader.member_id.clone(), Bytes::from_static(b"L")),
        (follower.member_id.clone(), Bytes::from_static(b"F")),
    ];
    let fx = m.sync(120, 6, sync_req(&leader.member_id, 1, assignments));
    assert_eq!(fx.records.len(), 1, "the generation is written");
    assert_eq!(sync_reply(&fx, 5).assignment, Bytes::from_static(b"F"));
    assert_eq!(sync_reply(&fx, 6).assignment, Bytes::from_static(b"L"));
    assert_eq!(m.group("g").unwrap().state, GroupState::Stable);
    (leader.member_id, follower.member_id)
}

fn sync_req(member: &str, generation: i32, assignments: Vec<(String, Bytes)>) -> SyncRequest {
    SyncRequest {
        group_id: "g".to_string(),
        generation_id: generation,
        member_id: member.to_string(),
        group_instance_id: None,
        protocol_type: None,
        protocol_name: None,
        assignments,
    }
}

#[test]
fn join_sync_and_heartbeat_codes() {
    let mut m = machine(100);
    let (leader, follower) = stable_pair(&mut m);
    assert_eq!(m.heartbeat(200, "g", &follower, None, 1), NONE);
    assert_eq!(
        m.heartbeat(200, "g", &follower, None, 0),
        ILLEGAL_GENERATION
    );
    assert_eq!(m.heartbeat(200, "g", "nobody", None, 1), UNKNOWN_MEMBER_ID);
    assert_eq!(
        m.heartbeat(200, "nogroup", &follower, None, 1),
        UNKNOWN_MEMBER_ID
    );
    // The leader rejoining starts a rebalance: heartbeats say so.
    let fx = m.join(300, 7, req(&leader, None));
    assert!(fx.replies.is_empty());
    assert_eq!(m.group("g").unwrap().state, GroupState::PreparingRebalance);
    assert_eq!(
        m.heartbeat(300, "g", &follower, None, 1),
        REBALANCE_IN_PROGRESS
    );
    // Sync of the old generation during the join phase.
    let fx = m.sync(300, 8, sync_req(&follower, 1, vec![]));
    assert_eq!(sync_reply(&fx, 8).error_code, REBALANCE_IN_PROGRESS);
    // The follower rejoins too: generation 2 completes at once.
    let fx = m.join(310, 9, req(&follower, None));
    assert_eq!(join_reply(&fx, 7).generation_id, 2);
    assert_eq!(join_reply(&fx, 9).generation_id, 2);
}

#[test]
fn a_member_that_stops_heartbeating_is_removed_and_the_group_rebalances() {
    let mut m = machine(100);
    let (leader, follower) = stable_pair(&mut m);
    assert_eq!(m.heartbeat(5_000, "g", &leader, None, 1), NONE);
    // The follower's session (10 s from its sync at 110) ends at 10_110.
    let fx = m.tick(10_110);
    assert!(fx.replies.is_empty());
    let group = m.group("g").unwrap();
    assert!(!group.members.contains_key(&follower));
    assert_eq!(group.state, GroupState::PreparingRebalance);
    let fx = m.join(10_200, 10, req(&leader, None));
    let r = join_reply(&fx, 10);
    assert_eq!((r.generation_id, r.members.len()), (2, 1));
}

#[test]
fn rebalance_timeout_removes_members_that_did_not_rejoin() {
    let mut m = machine(100);
    let (leader, follower) = stable_pair(&mut m);
    assert!(m.join(1_000, 11, req(&leader, None)).replies.is_empty());
    // The follower still heartbeats (its client is busy) but never rejoins.
    assert_eq!(
        m.heartbeat(9_000, "g", &follower, None, 1),
        REBALANCE_IN_PROGRESS
    );
    assert_eq!(m.next_deadline_ms(), Some(19_000));
    assert!(m.tick(8_999).replies.is_empty());
    assert_eq!(
        m.heartbeat(15_000, "g", &follower, None, 1),
        REBALANCE_IN_PROGRESS
    );
    assert_eq!(m.next_deadline_ms(), Some(21_000));
    let fx = m.tick(21_000);
    let r = join_reply(&fx, 11);
    assert_eq!(r.generation_id, 2);
    assert_eq!(r.members.len(), 1);
    assert!(!m.group("g").unwrap().members.contains_key(&follower));
}

#[test]
fn leave_batch_and_empty_group() {
    let mut m = machine(100);
    let (leader, follower) = stable_pair(&mut m);
    let (result, fx) = m.leave(
        500,
        "g",
        vec![
            LeavingMember {
                member_id: leader.clone(),
                group_instance_id: None,
            },
            LeavingMember {
                member_id: follower.clone(),
                group_instance_id: None,
            },
            LeavingMember {
                member_id: "ghost".to_string(),
                group_instance_id: None,
            },
        ],
    );
    let codes: Vec<ErrorCode> = result.members.iter().map(|(_, c)| *c).collect();
    assert_eq!(codes, vec![NONE, NONE, UNKNOWN_MEMBER_ID]);
    let group = m.group("g").unwrap();
    assert_eq!(group.state, GroupState::Empty);
    assert_eq!(group.generation, 2);
    assert_eq!(fx.records.len(), 1, "the empty generation is written");
}

#[test]
fn static_member_rejoins_without_rebalance_and_fences_the_old_id() {
    let mut m = machine(0);
    // Static members skip MEMBER_ID_REQUIRED; the initial delay is 0.
    assert!(m.join(0, 1, req("", Some("i1"))).replies.is_empty());
    let joined = join_reply(&m.tick(0), 1);
    let old_id = joined.member_id.clone();
    assert_eq!(joined.generation_id, 1);
    let fx = m.sync(
        10,
        2,
        sync_req(&old_id, 1, vec![(old_id.clone(), Bytes::from_static(b"A"))]),
    );
    assert_eq!(sync_reply(&fx, 2).assignment, Bytes::from_static(b"A"));
    // Restart: a new member id for the same instance, same protocols.
    let fx = m.join(50, 3, req("", Some("i1")));
    let rejoined = join_reply(&fx, 3);
    assert_eq!(rejoined.error_code, NONE);
    assert_ne!(rejoined.member_id, old_id);
    assert_eq!(rejoined.generation_id, 1, "no rebalance");
    assert!(rejoined.skip_assignment, "the leader must not reassign");
    assert_eq!(m.group("g").unwrap().state, GroupState::Stable);
    let fx = m.sync(60, 4, sync_req(&rejoined.member_id, 1, vec![]));
    assert_eq!(sync_reply(&fx, 4).assignment, Bytes::from_static(b"A"));
    assert_eq!(
        m.heartbeat(70, "g", &old_id, Some("i1"), 1),
        FENCED_INSTANCE_ID
    );
}

#[test]
fn group_errors_max_size_protocol_and_session_timeout() {
    let mut m = machine(100);
    let mut bad = req("", None);
    bad.session_timeout_ms = 1;
    assert_eq!(
        join_reply(&m.join(0, 1, bad), 1).error_code,
        INVALID_SESSION_TIMEOUT
    );
    for token in 2..5 {
        assert_eq!(
            join_reply(&m.join(0, token, req("", None)), token).error_code,
            MEMBER_ID_REQUIRED
        );
    }
    assert_eq!(
        join_reply(&m.join(0, 5, req("", None)), 5).error_code,
        GROUP_MAX_SIZE_REACHED
    );
    let mut other = machine(0);
    let id = join_reply(&other.join(0, 1, req("", None)), 1).member_id;
    other.join(0, 2, req(&id, None));
    other.tick(0);
    let mut inconsistent = req("", None);
    inconsistent.protocols = vec![("roundrobin".to_string(), Bytes::new())];
    assert_eq!(
        join_reply(&other.join(1, 3, inconsistent), 3).error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
    assert_eq!(
        join_reply(&other.join(1, 4, req("stranger", None)), 4).error_code,
        UNKNOWN_MEMBER_ID
    );
}

fn commit(group: &str, generation: i32, member: &str, offset: i64) -> CommitRequest {
    CommitRequest {
        group_id: group.to_string(),
        generation_id: generation,
        member_id: member.to_string(),
        group_instance_id: None,
        topics: vec![(
            "t".to_string(),
            vec![CommitPartition {
                partition: 0,
                offset,
                leader_epoch: 5,
                metadata: Some("md".to_string()),
            }],
        )],
    }
}

#[test]
fn commits_are_validated_and_visible_once_complete() {
    let mut m = machine(100);
    let (leader, _follower) = stable_pair(&mut m);
    let plan = m.commit_offsets(200, &commit("g", 0, &leader, 7));
    assert_eq!(plan.results[0].1, vec![(0, ILLEGAL_GENERATION)]);
    let plan = m.commit_offsets(200, &commit("g", 1, "ghost", 7));
    assert_eq!(plan.results[0].1, vec![(0, UNKNOWN_MEMBER_ID)]);
    let plan = m.commit_offsets(200, &commit("g", -1, "", 7));
    assert_eq!(
        plan.results[0].1,
        vec![(0, UNKNOWN_MEMBER_ID)],
        "simple commits need an Empty group"
    );
    let plan = m.commit_offsets(200, &commit("g", 1, &leader, 7));
    assert_eq!(plan.results[0].1, vec![(0, NONE)]);
    assert_eq!(plan.records.len(), 1);
    assert_eq!(
        m.fetch_offsets("g", None).len(),
        0,
        "not visible before durable"
    );
    m.complete_commit(plan);
    let fetched = m.fetch_offsets("g", Some(&[("t".to_string(), vec![0, 1])]));
    assert_eq!(fetched[0].1[0].offset, 7);
    assert_eq!(fetched[0].1[0].leader_epoch, 5);
    assert_eq!(fetched[0].1[0].metadata, "md");
    assert_eq!(fetched[0].1[1].offset, -1);
    // The members consume "t": its offsets cannot be deleted, nor the group.
    let (codes, _) = m
        .delete_offsets("g", &[("t".to_string(), vec![0])])
        .unwrap();
    assert_eq!(codes[0].1, vec![(0, GROUP_SUBSCRIBED_TO_TOPIC)]);
    assert_eq!(m.delete_group("g"), Err(NON_EMPTY_GROUP));
    assert_eq!(m.delete_group("nope"), Err(GROUP_ID_NOT_FOUND));
}

#[test]
fn standalone_offsets_expire_by_commit_time_and_the_log_rebuilds_state() {
    let mut m = machine(100);
    let (leader, follower) = stable_pair(&mut m);
    let plan = m.commit_offsets(200, &commit("g", 1, &leader, 9));
    let mut log: Vec<(Bytes, Option<Bytes>)> = plan
        .records
        .iter()
        .map(|r| (r.key.clone(), r.value.clone()))
        .collect();
    m.complete_commit(plan);
    let plan = m.commit_offsets(300, &commit("solo", -1, "", 3));
    assert_eq!(plan.results[0].1, vec![(0, NONE)]);
    log.extend(
        plan.records
            .iter()
            .map(|r| (r.key.clone(), r.value.clone())),
    );
    m.complete_commit(plan);
    // Rebuild a fresh machine from the records written so far + the
    // generation record of stable_pair (rewritten by a sync here).
    let fx = m.join(400, 20, req(&leader, None));
    let fx2 = m.join(400, 21, req(&follower, None));
    assert!(fx.records.is_empty() && join_reply(&fx2, 20).generation_id == 2);
    let assignments = vec![(leader.clone(), Bytes::from_static(b"L"))];
    let fx = m.sync(410, 22, sync_req(&leader, 2, assignments));
    log.extend(fx.records.iter().map(|r| (r.key.clone(), r.value.clone())));
    let mut rebuilt = machine(100);
    for (key, value) in &log {
        rebuilt.replay(1_000, key, value.as_deref()).unwrap();
    }
    let g = rebuilt.group("g").unwrap();
    assert_eq!(
        (g.state, g.generation, g.members.len()),
        (GroupState::Stable, 2, 2)
    );
    assert_eq!(rebuilt.fetch_offsets("g", None)[0].1[0].offset, 9);
    assert_eq!(rebuilt.fetch_offsets("solo", None)[0].1[0].offset, 3);
    // Retention 1 s: the standalone commit (at 300) expires at 1_300; the
    // Stable group's subscribed topic is kept.
    assert!(m.expire_offsets(1_299).is_empty());
    let tombstones = m.expire_offsets(1_300);
    assert_eq!(tombstones.len(), 1);
    assert_eq!(tombstones[0].value, None);
    assert!(
        m.group("solo").is_none(),
        "an Empty group without offsets is gone"
    );
    assert_eq!(m.fetch_offsets("g", None)[0].1[0].offset, 9);
    rebuilt.replay(2_000, &tombstones[0].key, None).unwrap();
    assert!(rebuilt.group("solo").is_none());
}

#[test]
fn deleting_an_empty_group_writes_tombstones() {
    let mut m = machine(100);
    let plan = m.commit_offsets(0, &commit("solo", -1, "", 3));
    m.complete_commit(plan);
    let records = m.delete_group("solo").unwrap();
    assert_eq!(records.len(), 2, "one offset + the group");
    assert!(records.iter().all(|r| r.value.is_none()));
    assert!(m.group("solo").is_none());
}

#[test]
fn group_settings_come_from_server_properties() {
    let text = "offsets.retention.minutes=2\noffsets.retention.check.interval.ms=1500\n\
                group.initial.rebalance.delay.ms=0\ngroup.max.size=7\n";
    let (broker, _) = rafka_core::config::BrokerConfig::from_properties_text(text).unwrap();
    assert_eq!(broker.offsets_retention_check_interval_ms, 1500);
    let config = GroupConfig::from_broker(&broker);
    assert_eq!(config.offsets_retention_ms, 120_000);
    assert_eq!(config.initial_rebalance_delay_ms, 0);
    assert_eq!(config.group_size_max, 7);
    let defaults = rafka_core::config::BrokerConfig::default();
    assert_eq!(defaults.offsets_retention_check_interval_ms, 600_000);
    assert_eq!(defaults.offsets_retention_minutes, 10_080);
}

#[test]
fn unloading_a_partition_answers_its_waiting_members_not_coordinator() {
    let mut m = machine(100);
    let (leader, follower) = stable_pair(&mut m);
    let partition = m.partition_of("g");
    // The leader rejoins (a rebalance starts) and waits for the follower;
    // a group of another partition stays.
    assert!(m.join(200, 7, req(&leader, None)).replies.is_empty());
    let mut other = req("", None);
    other.group_id = (0..)
        .map(|i| format!("other-{i}"))
        .find(|id| m.partition_of(id) != partition)
        .expect("a group on another partition");
    let other_id = other.group_id.clone();
    assert_eq!(
        join_reply(&m.join(200, 8, other), 8).error_code,
        MEMBER_ID_REQUIRED
    );
    let fx = m.unload_partition(partition);
    assert!(fx.records.is_empty(), "an unload writes nothing");
    let answered = join_reply(&fx, 7);
    assert_eq!(
        (answered.error_code, answered.member_id.as_str()),
        (ErrorCode::NOT_COORDINATOR, leader.as_str())
    );
    assert_eq!(fx.replies.len(), 1, "only the waiting member: {fx:?}");
    assert!(m.group("g").is_none());
    assert!(m.group(&other_id).is_some());
    assert_eq!(m.heartbeat(300, "g", &follower, None, 1), UNKNOWN_MEMBER_ID);
    // Nothing of the unloaded group keeps a timer.
    assert!(m.tick(1_000_000).replies.is_empty());
}
