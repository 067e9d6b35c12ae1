//! Many consumer groups at once against the real broker, over the raw wire
//! client: every member joins, syncs (the leader computes a range
//! assignment over a 10-partition topic), heartbeats, commits the offsets of
//! its partitions and leaves. At the end every group is Empty and OffsetFetch
//! returns exactly what was committed.
//!
//! One thread per member: a JoinGroup blocks until the whole group has
//! joined, as a real member's does. The members of one group coordinate
//! through a [`GroupGate`] (a test-side barrier with a deadline) only where a
//! real application would have its own reasons to wait: all of them hold a
//! member id before rejoining, so the broker sees the whole group in one
//! rebalance, and all of them have committed before the first one leaves, so
//! a leave-triggered rebalance cannot fence a commit.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use rafka_testkit::wire_group::{
    check, decode_assignment, range_assignment, JoinSpec, Joined, Offsets, MEMBER_ID_REQUIRED,
    REBALANCE_IN_PROGRESS,
};
use rafka_testkit::BrokerProcess;
use rafka_testkit::{WireClient, WireError};
use support::client;
use support::rafka;

const TOPIC: &str = "group-load";
const PARTITIONS: i32 = 10;
/// How long a member waits for the rest of its group at a gate; a member
/// that failed elsewhere makes the others fail fast instead.
const GATE_DEADLINE: Duration = Duration::from_secs(120);
/// A real consumer's heartbeat interval: how long a member that already has
/// its assignment waits between heartbeats while its group still rebalances.
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
const HEARTBEATS_STABLE: u32 = 3;
const MEMBER_STACK_BYTES: usize = 256 * 1024;

/// How many groups of how many members, and how many commits each makes.
#[derive(Clone, Copy, Debug)]
struct LoadShape {
    groups: usize,
    members_per_group: usize,
    commits_per_member: u32,
}

/// Why a member gave up.
#[derive(Debug, thiserror::Error)]
enum MemberError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("group gate `{gate}` not reached by all members within {GATE_DEADLINE:?}")]
    GateTimeout { gate: &'static str },
    #[error("another member of the group failed")]
    GroupFailed,
    #[error("JoinGroup with an empty member id answered {code}, not MEMBER_ID_REQUIRED")]
    NoMemberIdRequired { code: i16 },
    #[error("heartbeat in the final generation answered {code}")]
    Heartbeat { code: i16 },
    #[error("leave answered {code}")]
    Leave { code: i16 },
}

/// The offset committed for (group, partition) in commit round `round`:
/// distinct per group and partition so a mix-up shows.
fn committed_offset(group: usize, partition: i32, round: u32) -> i64 {
    let group = i64::try_from(group).expect("group index fits i64");
    group * 1_000_000 + i64::from(partition) * 1_000 + i64::from(round)
}

fn group_id(group: usize) -> String {
    format!("load-{group:05}")
}

#[derive(Default)]
struct GateState {
    /// Arrivals per named gate.
    arrived: BTreeMap<&'static str, usize>,
    /// The generation in which the leader saw every member, once known.
    full_generation: Option<i32>,
    /// Bumped whenever a member starts a rejoin, so waiting members
    /// heartbeat at once instead of after their interval.
    rejoins: u64,
    failed: bool,
}

/// What the members of one group share on the test side.
struct GroupGate {
    members: usize,
    state: Mutex<GateState>,
    changed: Condvar,
}

impl GroupGate {
    fn new(members: usize) -> GroupGate {
        GroupGate {
            members,
            state: Mutex::new(GateState::default()),
            changed: Condvar::new(),
        }
    }

    fn update(&self, change: impl FnOnce(&mut GateState)) {
        let mut state = self.state.lock().expect("gate lock");
        change(&mut state);
        self.changed.notify_all();
    }

    fn read<T>(&self, read: impl FnOnce(&GateState) -> T) -> T {
        read(&self.state.lock().expect("gate lock"))
    }

    /// Waits until every member arrived at `gate` (or one failed).
    fn arrive(&self, gate: &'static str) -> Result<(), MemberError> {
        let mut state = self.state.lock().expect("gate lock");
        *state.arrived.entry(gate).or_default() += 1;
        self.changed.notify_all();
        let (state, timeout) = self
            .changed
            .wait_timeout_while(state, GATE_DEADLINE, |state| {
                !state.failed && state.arrived[gate] < self.members
            })
            .expect("gate lock");
        if state.failed {
            return Err(MemberError::GroupFailed);
        }
        if timeout.timed_out() {
            return Err(MemberError::GateTimeout { gate });
        }
        Ok(())
    }

    /// Waits up to one heartbeat interval, less if a member starts a rejoin
    /// or the full generation changes from `seen`.
    fn wait_for_change(&self, seen: (Option<i32>, u64)) -> Result<(), MemberError> {
        let state = self.state.lock().expect("gate lock");
        let (state, _) = self
            .changed
            .wait_timeout_while(state, HEARTBEAT_INTERVAL, |state| {
                !state.failed && (state.full_generation, state.rejoins) == seen
            })
            .expect("gate lock");
        if state.failed {
            return Err(MemberError::GroupFailed);
        }
        Ok(())
    }
}

/// When a member reached its milestones, for the figures.
#[derive(Clone, Copy, Debug)]
struct MemberTimes {
    first_join: Instant,
    stable: Instant,
    first_commit: Instant,
    last_commit: Instant,
}

struct Member {
    group: usize,
    gate: Arc<GroupGate>,
    client: WireClient,
    spec: JoinSpec,
}

impl Member {
    fn run(mut self, shape: LoadShape) -> Result<(MemberTimes, Offsets), MemberError> {
        let first_join = Instant::now();
        let response = self.client.join_group(&self.spec)?;
        if response.error_code != MEMBER_ID_REQUIRED {
            return Err(MemberError::NoMemberIdRequired {
                code: response.error_code,
            });
        }
        self.spec.member_id = response.member_id.as_str().to_owned();
        self.gate.arrive("member ids")?;
        let (joined, assignment) = self.join_until_full()?;
        let stable = Instant::now();
        self.heartbeat_stable(&joined)?;
        let offsets = self.offsets_of(&assignment, shape.commits_per_member - 1);
        let first_commit = Instant::now();
        for round in 0..shape.commits_per_member {
            let offsets = self.offsets_of(&assignment, round);
            let group_id = self.spec.group_id.clone();
            self.client
                .commit(&group_id, joined.generation_id, &joined.member_id, &offsets)?;
        }
        let last_commit = Instant::now();
        self.gate.arrive("committed")?;
        self.leave()?;
        let times = MemberTimes {
            first_join,
            stable,
            first_commit,
            last_commit,
        };
        Ok((times, offsets))
    }

    /// Joins and syncs until this member holds its assignment in the
    /// generation that has every member of the group.
    fn join_until_full(&mut self) -> Result<(Joined, BTreeMap<String, Vec<i32>>), MemberError> {
        'rejoin: loop {
            self.gate.update(|state| state.rejoins += 1);
            let joined = self.client.join(&mut self.spec)?;
            let assignments = if joined.is_leader() {
                let member_ids: Vec<String> = joined.members.keys().cloned().collect();
                if member_ids.len() == self.gate.members {
                    self.gate
                        .update(|state| state.full_generation = Some(joined.generation_id));
                }
                range_assignment(&member_ids, TOPIC, PARTITIONS)
            } else {
                BTreeMap::new()
            };
            let group_id = self.spec.group_id.clone();
            let response = self.client.sync_group(
                &group_id,
                joined.generation_id,
                &joined.member_id,
                &assignments,
            )?;
            if response.error_code == REBALANCE_IN_PROGRESS {
                continue 'rejoin;
            }
            check(ApiKey::SyncGroup, response.error_code)?;
            let assignment = decode_assignment(response.assignment)?;
            loop {
                let seen = self
                    .gate
                    .read(|state| (state.full_generation, state.rejoins));
                if seen.0 == Some(joined.generation_id) {
                    return Ok((joined, assignment));
                }
                self.gate.wait_for_change(seen)?;
                let response =
                    self.client
                        .heartbeat(&group_id, joined.generation_id, &joined.member_id)?;
                if response.error_code == REBALANCE_IN_PROGRESS {
                    continue 'rejoin;
                }
                check(ApiKey::Heartbeat, response.error_code)?;
            }
        }
    }

    fn heartbeat_stable(&mut self, joined: &Joined) -> Result<(), MemberError> {
        for _ in 0..HEARTBEATS_STABLE {
            let response = self.client.heartbeat(
                &self.spec.group_id,
                joined.generation_id,
                &joined.member_id,
            )?;
            if response.error_code != 0 {
                return Err(MemberError::Heartbeat {
                    code: response.error_code,
                });
            }
        }
        Ok(())
    }

    fn offsets_of(&self, assignment: &BTreeMap<String, Vec<i32>>, round: u32) -> Offsets {
        assignment
            .iter()
            .map(|(topic, partitions)| {
                let offsets = partitions
                    .iter()
                    .map(|&partition| (partition, committed_offset(self.group, partition, round)))
                    .collect();
                (topic.clone(), offsets)
            })
            .collect()
    }

    fn leave(&mut self) -> Result<(), MemberError> {
        let response = self
            .client
            .leave_group(&self.spec.group_id, &self.spec.member_id)?;
        let member_codes = response.members.iter().map(|member| member.error_code);
        for code in std::iter::once(response.error_code).chain(member_codes) {
            if code != 0 {
                return Err(MemberError::Leave { code });
            }
        }
        Ok(())
    }
}

/// Starts every member of every group on its own thread and collects what
/// each committed last.
fn run_members(addr: SocketAddr, shape: LoadShape) -> (Vec<MemberTimes>, Vec<Offsets>) {
    let mut handles = Vec::with_capacity(shape.groups * shape.members_per_group);
    let mut lookup = WireClient::connect(addr, "load-lookup").expect("connect");
    for group in 0..shape.groups {
        let found = lookup.find_coordinator(&group_id(group));
        assert_eq!(
            found.expect("FindCoordinator"),
            0,
            "coordinator of group {group}"
        );
    }
    for group in 0..shape.groups {
        let gate = Arc::new(GroupGate::new(shape.members_per_group));
        for index in 0..shape.members_per_group {
            let gate = Arc::clone(&gate);
            let client_id = format!("load-{group}-{index}");
            let client = WireClient::connect(addr, &client_id).expect("connect a member");
            let spec = JoinSpec::consumer(&group_id(group), &[TOPIC]);
            let member = Member {
                group,
                gate: Arc::clone(&gate),
                client,
                spec,
            };
            let handle = thread::Builder::new()
                .name(client_id)
                .stack_size(MEMBER_STACK_BYTES)
                .spawn(move || {
                    let result = member.run(shape);
                    if result.is_err() {
                        gate.update(|state| state.failed = true);
                    }
                    (group, result)
                })
                .expect("spawn a member thread");
            handles.push(handle);
        }
    }
    let mut times = Vec::with_capacity(handles.len());
    let mut committed = vec![Offsets::new(); shape.groups];
    let mut assigned_partitions = vec![0_usize; shape.groups];
    for handle in handles {
        let (group, result) = handle.join().expect("member thread panicked");
        let (member_times, offsets) =
            result.unwrap_or_else(|e| panic!("a member of {} failed: {e}", group_id(group)));
        for (topic, partitions) in offsets {
            assigned_partitions[group] += partitions.len();
            committed[group]
                .entry(topic)
                .or_default()
                .extend(partitions);
        }
        times.push(member_times);
    }
    for (group, count) in assigned_partitions.iter().enumerate() {
        // With the union checked against all partitions later, the count
        // rules out a partition handed to two members.
        assert_eq!(
            *count,
            PARTITIONS as usize,
            "{}: partitions assigned",
            group_id(group)
        );
    }
    (times, committed)
}

/// Every group is Empty and holds exactly the offsets its members
/// committed last, one per partition.
fn assert_final_state(addr: SocketAddr, shape: LoadShape, committed: &[Offsets]) {
    let mut admin = WireClient::connect(addr, "load-check").expect("connect");
    let all_partitions = BTreeMap::from([(TOPIC.to_owned(), (0..PARTITIONS).collect::<Vec<_>>())]);
    for (group, by_members) in committed.iter().enumerate() {
        let group_id = group_id(group);
        let state = admin.group_state(&group_id).expect("describe group");
        assert_eq!(state, "Empty", "{group_id} after every member left");
        let expected: Offsets = BTreeMap::from([(
            TOPIC.to_owned(),
            (0..PARTITIONS)
                .map(|partition| {
                    let last_round = shape.commits_per_member - 1;
                    (partition, committed_offset(group, partition, last_round))
                })
                .collect(),
        )]);
        assert_eq!(
            by_members, &expected,
            "{group_id}: the members' assignments cover every partition once"
        );
        let fetched = admin
            .committed(&group_id, Some(&all_partitions))
            .expect("fetch offsets");
        assert_eq!(fetched, expected, "{group_id}: OffsetFetch");
    }
}

fn start_broker() -> BrokerProcess {
    let options = rafka(2).property("group.initial.rebalance.delay.ms", "0");
    let broker = BrokerProcess::start(options);
    client::create_topic(&broker.bootstrap(), TOPIC, PARTITIONS);
    broker
}

/// Prints the figures of one run.
fn report(shape: LoadShape, times: &[MemberTimes], started: Instant) {
    let first_join = times.iter().map(|t| t.first_join).min().unwrap_or(started);
    let all_stable = times.iter().map(|t| t.stable).max().unwrap_or(started);
    let first_commit = times
        .iter()
        .map(|t| t.first_commit)
        .min()
        .unwrap_or(started);
    let last_commit = times.iter().map(|t| t.last_commit).max().unwrap_or(started);
    let commits = times.len() as f64 * f64::from(shape.commits_per_member);
    let commit_secs = (last_commit - first_commit).as_secs_f64().max(f64::EPSILON);
    println!(
        "group_load groups={} members_per_group={} members={} \
         first_join_to_all_stable_ms={} commits={} commit_window_ms={} commits_per_sec={:.0} total_ms={}",
        shape.groups,
        shape.members_per_group,
        times.len(),
        (all_stable - first_join).as_millis(),
        commits,
        (last_commit - first_commit).as_millis(),
        commits / commit_secs,
        started.elapsed().as_millis(),
    );
}

fn run_load(shape: LoadShape) {
    let broker = start_broker();
    let started = Instant::now();
    let (times, committed) = run_members(broker.addr, shape);
    report(shape, &times, started);
    assert_eq!(times.len(), shape.groups * shape.members_per_group);
    assert_final_state(broker.addr, shape, &committed);
}

#[test]
fn two_hundred_groups_of_five_join_commit_and_leave() {
    run_load(LoadShape {
        groups: 200,
        members_per_group: 5,
        commits_per_member: 1,
    });
}

/// 2000 groups of 5 members (10k members): the shape of many small
/// consumer applications, which loads the coordinator's group table,
/// its timers and the __consumer_offsets appends rather than one huge
/// rebalance (a 100-member group mostly measures the test's own fan-in).
#[test]
#[ignore = "load figures: cargo test --release --test group_load -- --ignored --nocapture"]
fn ten_thousand_members_figures() {
    run_load(LoadShape {
        groups: 2000,
        members_per_group: 5,
        commits_per_member: 10,
    });
}

/// The raw client's framing and both header layouts: ApiVersions v3 is a
/// flexible request (header v2) answered with header v0, Metadata v12 a
/// flexible request answered with header v1.
#[test]
fn wire_client_speaks_flexible_and_classic_headers() {
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;
    let broker = BrokerProcess::start(rafka(1));
    let mut client = WireClient::connect(broker.addr, "wire-check").expect("connect");
    let versions = client
        .call(
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("rafka-wire"))
                .with_client_software_version(StrBytes::from_static_str("0.1")),
        )
        .expect("ApiVersions v3");
    assert_eq!(versions.error_code, 0);
    let join = versions
        .api_keys
        .iter()
        .find(|api| api.api_key == ApiKey::JoinGroup as i16)
        .expect("JoinGroup advertised");
    assert_eq!((join.min_version, join.max_version), (0, 9));
    let metadata = client
        .call(
            12,
            &MetadataRequest::default().with_topics(Some(Vec::new())),
        )
        .expect("Metadata v12");
    assert_eq!(metadata.brokers.len(), 1);
    assert!(metadata.topics.is_empty());
}
