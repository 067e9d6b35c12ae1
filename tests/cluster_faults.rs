//! Replication under faults: a 3-node cluster (scripts/cluster.sh), a topic
//! of 3 partitions with 3 replicas and min.insync.replicas=2, idempotent
//! acks=all producers running throughout (librdkafka in this process, the
//! Java client in a process of its own: `support::load`, which needs
//! `scripts/compat/setup-java.sh` run once), and faults one at a time: kill -9
//! of a partition leader (restarted later on its disk), SIGSTOP of a leader
//! past the broker session (then SIGCONT), kill -9 and restart of a
//! follower. Whole-topic reads between faults and once at the end feed a
//! checker (tests/support/checker.rs), which proves that no acknowledged
//! record is lost or moved, no record appears that was never sent, no
//! offset ever holds two different records (whichever leader served it),
//! and no acknowledged record is written twice. A leader cut off from
//! the other brokers and the quorum but not from its clients (fault
//! proxies in front of the inter-broker and controller listeners)
//! acknowledges nothing it alone holds: the others elect a new leader,
//! and once healed it cuts its tail and follows. A transactional
//! consume-transform-produce loop (read_committed input, output and
//! offsets in one transaction) goes on through the kill of its
//! transaction coordinator's broker and its restart, each input record
//! in the output exactly once. A consumer group's
//! committed offsets survive the kill of its coordinator: a new member
//! resumes exactly there, and no commit goes backwards.
//!
//! `random_faults_lose_no_acknowledged_record` (ignored: minutes) draws
//! RAFKA_FAULT_COUNT faults from RAFKA_FAULT_SEED. RAFKA_FAULT_LOGS=<dir>
//! keeps each test's node logs in `<dir>/<test>/`.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rafka_testkit::Rng;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;

use support::checker::{make_id, Checker, Position, Violation};
use support::client::{now_ms, produce, producer, records};
use support::cluster::{Cluster, PartitionState, DEADLINE, NODES};
use support::load::{read_all, JavaLoad, Load};

const TOPIC: &str = "faults";
const PARTITIONS: i32 = 3;
/// Fencing after 3 s without a heartbeat (Cluster's default), an ISR
/// shrink after 2 s without catching up.
const CONFIG: &str = "replica.lag.time.max.ms=2000\n";
/// Acks each phase must see before the test moves on.
const ACKS_PER_PHASE: usize = 50;

/// Creates [`TOPIC`]: 3 partitions, 3 replicas, min.insync.replicas=2;
/// waits until every partition has a leader and a full ISR.
fn create_topic(cluster: &Cluster) {
    let created = Command::new(env!("CARGO_BIN_EXE_rafka"))
        .args(["topic", "--bootstrap", &cluster.listener(1).to_string()])
        .args(["create", TOPIC, "--partitions", &PARTITIONS.to_string()])
        .args(["--replication-factor", "3"])
        .args(["--config", "min.insync.replicas=2"])
        .output()
        .expect("rafka topic create");
    assert!(created.status.success(), "{created:?}");
    await_full_isr(cluster);
}

/// Waits until every node describes every partition of [`TOPIC`] with a
/// leader and all three replicas in sync.
fn await_full_isr(cluster: &Cluster) {
    for node in NODES {
        for partition in 0..PARTITIONS {
            cluster.await_partition(&[node], TOPIC, partition, "a full ISR", |s| {
                s.leader > 0 && s.isr == [1, 2, 3]
            });
        }
    }
}

/// Waits until the producer got `ACKS_PER_PHASE` acks in `phase`.
fn await_acks(checker: &Checker, phase: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let counts = checker.counts();
        let acked = counts.acked_by_phase.get(phase).copied().unwrap_or(0);
        if acked >= ACKS_PER_PHASE {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "phase {phase}: {acked} acks; {counts:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn others(node: u16) -> Vec<u16> {
    NODES.into_iter().filter(|n| *n != node).collect()
}

/// A new leader of `partition`, not `old`, elected by the others.
fn await_new_leader(cluster: &Cluster, old: u16, partition: i32) -> PartitionState {
    cluster.await_partition(&others(old), TOPIC, partition, "a new leader", |s| {
        s.leader > 0 && s.leader != i32::from(old)
    })
}

#[test]
fn acknowledged_records_survive_leader_kills_pauses_and_follower_restarts() {
    let started = Instant::now();
    let cluster = Cluster::start_configured(
        "acknowledged_records_survive_leader_kills_pauses_and_follower_restarts",
        CONFIG,
    );
    create_topic(&cluster);
    let checker = Arc::new(Checker::new());
    let bootstrap = cluster.bootstrap();
    checker.set_phase("1 steady");
    let load = Load::start(&bootstrap, TOPIC, PARTITIONS, 1, Arc::clone(&checker));
    let java = JavaLoad::start(&bootstrap, TOPIC, PARTITIONS, 2, Arc::clone(&checker));
    await_acks(&checker, "1 steady");

    // kill -9 of partition 0's leader: another in-sync replica leads it,
    // producing goes on; the killed node comes back on its disk.
    let leader = cluster.leader(&NODES, TOPIC, 0);
    checker.set_phase("2 leader killed");
    cluster.kill(leader);
    let moved = await_new_leader(&cluster, leader, 0);
    eprintln!(
        "partition 0: node {leader} killed, node {} leads",
        moved.leader
    );
    await_acks(&checker, "2 leader killed");
    read_all(&bootstrap, TOPIC, PARTITIONS, &checker);
    checker.set_phase("3 leader restarted");
    cluster.restart(leader);
    await_full_isr(&cluster);
    await_acks(&checker, "3 leader restarted");

    // SIGSTOP of partition 1's leader until the others fence it and elect
    // another; resumed, it must follow the new leader.
    let leader = cluster.leader(&NODES, TOPIC, 1);
    checker.set_phase("4 leader paused");
    cluster.pause(leader);
    let moved = await_new_leader(&cluster, leader, 1);
    eprintln!(
        "partition 1: node {leader} paused, node {} leads",
        moved.leader
    );
    await_acks(&checker, "4 leader paused");
    checker.set_phase("5 leader resumed");
    cluster.resume(leader);
    await_full_isr(&cluster);
    await_acks(&checker, "5 leader resumed");
    read_all(&bootstrap, TOPIC, PARTITIONS, &checker);

    // kill -9 of one of partition 2's followers, then its restart.
    let leader = cluster.leader(&NODES, TOPIC, 2);
    let follower = others(leader)[0];
    checker.set_phase("6 follower killed");
    cluster.kill(follower);
    eprintln!("partition 2: follower {follower} of leader {leader} killed");
    await_acks(&checker, "6 follower killed");
    checker.set_phase("7 follower restarted");
    cluster.restart(follower);
    await_full_isr(&cluster);
    await_acks(&checker, "7 follower restarted");

    let sent = load.stop();
    let (java_acked, java_failed) = java.stop();
    read_all(&bootstrap, TOPIC, PARTITIONS, &checker);
    let verdict = checker.verify(true);
    eprintln!(
        "{sent} sent by librdkafka, {java_acked} acknowledged to and {java_failed} failed for \
         the Java producer, in {} s; {verdict}",
        started.elapsed().as_secs()
    );
    verdict.assert_clean();
    assert!(java_acked > 0, "the Java producer got no acknowledgement");
    for phase in [
        "1 steady",
        "2 leader killed",
        "3 leader restarted",
        "4 leader paused",
        "5 leader resumed",
        "6 follower killed",
        "7 follower restarted",
    ] {
        let acked = verdict.counts.acked_by_phase.get(phase).copied();
        assert!(acked.unwrap_or(0) > 0, "no ack in phase {phase}");
    }
}

#[test]
fn the_checker_finds_each_violation() {
    let at = |partition: i32, offset: i64| Position {
        topic: "t".to_string(),
        partition,
        offset,
    };
    let (a, b, c) = (make_id(1, 0), make_id(1, 1), make_id(1, 2));

    // A clean history: each ack read back at its offset.
    let clean = Checker::new();
    for (offset, id) in [(0, &a), (1, &b)] {
        clean.attempted(id);
        clean.acked("t", 0, offset, id);
    }
    clean.attempted(&c);
    clean.failed(&c, "timed out");
    let pass = clean.begin_pass();
    clean.read(pass, "t", 0, 0, &a);
    clean.read(pass, "t", 0, 1, &b);
    let verdict = clean.verify(true);
    assert!(verdict.is_clean(), "{verdict}");
    assert_eq!(verdict.counts.acked, 2);

    // (a) lost: an ack missing from the last pass (read by an earlier
    // one), another whose offset holds a different record; (b) a phantom;
    // (c) an offset holding two records over two passes; (d) an acked
    // record at two offsets.
    let bad = Checker::new();
    for id in [&a, &b, &c] {
        bad.attempted(id);
    }
    bad.acked("t", 0, 0, &a);
    bad.acked("t", 0, 1, &b);
    bad.acked("t", 1, 0, &c);
    let first = bad.begin_pass();
    bad.read(first, "t", 0, 0, &a);
    bad.read(first, "t", 0, 1, &b);
    bad.read(first, "t", 1, 0, &c);
    let last = bad.begin_pass();
    bad.read(last, "t", 0, 1, &c);
    bad.read(last, "t", 0, 2, "p9-s000000007");
    bad.read(last, "t", 1, 0, &c);
    let verdict = bad.verify(true);
    let report = verdict.to_string();
    eprintln!("{report}");
    let expected = [
        Violation::Lost {
            id: a.clone(),
            at: at(0, 0),
            found: None,
        },
        Violation::Lost {
            id: b.clone(),
            at: at(0, 1),
            found: Some(c.clone()),
        },
        Violation::Phantom {
            id: "p9-s000000007".to_string(),
            at: at(0, 2),
        },
        Violation::OffsetReused {
            at: at(0, 1),
            ids: vec![b.clone(), c.clone()],
        },
        Violation::Duplicated {
            id: c.clone(),
            at: vec![at(0, 1), at(1, 0)],
        },
    ];
    for violation in &expected {
        assert!(
            verdict.violations.contains(violation),
            "missing {violation}:\n{report}"
        );
    }
    assert_eq!(verdict.tally(), (2, 1, 1, 1), "{report}");
    assert!(report.contains("lost: p1-s000000000 acked at t-0@0, not read there"));
    assert!(!bad
        .verify(false)
        .violations
        .iter()
        .any(|v| matches!(v, Violation::Duplicated { .. })));
    // An ack that disagrees with an earlier ack of the same offset.
    let twice = Checker::new();
    twice.attempted(&a);
    twice.attempted(&b);
    twice.acked("t", 0, 0, &a);
    twice.acked("t", 0, 0, &b);
    let pass = twice.begin_pass();
    twice.read(pass, "t", 0, 0, &b);
    assert_eq!(twice.verify(true).tally(), (1, 0, 1, 0));
}

/// A member of `group` subscribed to `topic`, committing by hand.
fn group_member(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    let mut config = support::client::config(bootstrap);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("allow.auto.create.topics", "false")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "200")
        .set("topic.metadata.refresh.interval.ms", "500");
    let member: BaseConsumer = config.create().expect("group member");
    member.subscribe(&[topic]).expect("subscribe");
    member
}

/// Polls `member` until it has processed every partition up to `until`;
/// `next[p]` is the offset it processes next in partition p, `first[p]`
/// the first offset it read there. Records must be the producer's, in
/// order; a record below `next` (read again after a rebalance) is skipped.
fn process_until(member: &BaseConsumer, next: &mut [i64], first: &mut [Option<i64>], until: i64) {
    let deadline = Instant::now() + DEADLINE;
    while next.iter().any(|n| *n < until) {
        assert!(
            Instant::now() < deadline,
            "processed up to {next:?} of {until}"
        );
        let Some(Ok(message)) = member.poll(Duration::from_millis(100)) else {
            continue;
        };
        let partition = usize::try_from(message.partition()).expect("partition");
        let offset = message.offset();
        first[partition].get_or_insert(offset);
        assert!(
            offset <= next[partition],
            "partition {partition}: read {offset}, a gap after {}",
            next[partition]
        );
        if offset < next[partition] {
            continue;
        }
        let key = format!("key-{partition}-{offset}");
        assert_eq!(message.key(), Some(key.as_bytes()), "partition {partition}");
        next[partition] += 1;
    }
}

/// Commits `next` (what `member` processed) synchronously, retrying while
/// the coordinator moves.
fn commit(member: &BaseConsumer, topic: &str, next: &[i64]) {
    let mut list = rdkafka::TopicPartitionList::new();
    for (partition, offset) in next.iter().enumerate() {
        let partition = i32::try_from(partition).expect("partition");
        list.add_partition_offset(topic, partition, rdkafka::Offset::Offset(*offset))
            .expect("offset entry");
    }
    let deadline = Instant::now() + DEADLINE;
    while let Err(error) = member.commit(&list, CommitMode::Sync) {
        assert!(Instant::now() < deadline, "commit {next:?}: {error}");
        member.poll(Duration::from_millis(100));
    }
}

/// Polls the `live` nodes until the group's coordinator among them serves
/// `expected`; every answer seen on the way must be at or below it and at
/// or above what `seen` last held (commits never go backwards). Returns
/// the coordinator.
fn await_committed(
    cluster: &Cluster,
    live: &[u16],
    group: &str,
    topic: &str,
    seen: &mut Vec<i64>,
    expected: &[i64],
) -> u16 {
    let partitions = i32::try_from(expected.len()).expect("partitions");
    let deadline = Instant::now() + DEADLINE;
    let mut last = None;
    loop {
        for &node in live {
            let Some(coordinator) = cluster
                .find_coordinator(node, group)
                .ok()
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| live.contains(c))
            else {
                continue;
            };
            let fetched = cluster.offset_fetch(coordinator, group, topic, partitions);
            if let Ok(offsets) = &fetched {
                for (p, offset) in offsets.iter().enumerate() {
                    assert!(
                        *offset >= seen[p] && *offset <= expected[p],
                        "{group}: node {coordinator} serves {offsets:?} after {seen:?} \
                         was served and {expected:?} committed"
                    );
                }
                seen.clone_from(offsets);
                if offsets == expected {
                    return coordinator;
                }
            }
            last = Some((coordinator, fetched));
        }
        assert!(
            Instant::now() < deadline,
            "{group}: never {expected:?} from a live coordinator; last {last:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_groups_commits_survive_its_coordinator_killed_and_restarted() {
    const GROUP: &str = "survivors";
    const COUNT: u32 = 60;
    let cluster = Cluster::start_configured(
        "a_groups_commits_survive_its_coordinator_killed_and_restarted",
        &format!(
            "{CONFIG}group.initial.rebalance.delay.ms=0\n\
             offsets.topic.num.partitions=3\n\
             transaction.state.log.num.partitions=3\n"
        ),
    );
    create_topic(&cluster);
    let bootstrap = cluster.bootstrap();
    // Records 20 at a time, so that a member can read no further than the
    // test wants it to have processed.
    let producer = producer(&bootstrap, &[("enable.idempotence", "true")]);
    let all = records(PARTITIONS, COUNT, now_ms());
    let produce_round = |round: usize| {
        let slice: Vec<Vec<_>> = all.iter().map(|p| p[round * 20..][..20].to_vec()).collect();
        let written = produce(&producer, TOPIC, &slice);
        let from = i64::try_from(round * 20).expect("offset");
        assert_eq!(written, vec![(from..from + 20).collect::<Vec<_>>(); 3]);
    };
    produce_round(0);

    // The first member processes 20 records of each partition, commits.
    let first = group_member(&bootstrap, GROUP, TOPIC);
    let mut next = vec![0i64; 3];
    let mut first_read = vec![None; 3];
    let mut seen = vec![-1i64; 3];
    process_until(&first, &mut next, &mut first_read, 20);
    commit(&first, TOPIC, &next);
    let coordinator = await_committed(&cluster, &NODES, GROUP, TOPIC, &mut seen, &next);

    // kill -9 of the coordinator: the commits are served by the new
    // leader of the group's __consumer_offsets partition, the member goes
    // on there to 40 and commits again.
    cluster.kill(coordinator);
    let survivors = others(coordinator);
    let moved = await_committed(&cluster, &survivors, GROUP, TOPIC, &mut seen, &[20; 3]);
    eprintln!("{GROUP}: coordinator {coordinator} killed, node {moved} serves its commits");
    produce_round(1);
    process_until(&first, &mut next, &mut first_read, 40);
    commit(&first, TOPIC, &next);
    await_committed(&cluster, &survivors, GROUP, TOPIC, &mut seen, &[40; 3]);
    drop(first);

    // A new member resumes at the commits, with no gap: its first record
    // of each partition is the 40th.
    produce_round(2);
    let second = group_member(&bootstrap, GROUP, TOPIC);
    let mut resumed = vec![40i64; 3];
    let mut resumed_first = vec![None; 3];
    process_until(&second, &mut resumed, &mut resumed_first, i64::from(COUNT));
    assert_eq!(
        resumed_first,
        vec![Some(40); 3],
        "where the new member began"
    );
    commit(&second, TOPIC, &resumed);

    // The killed node comes back on its disk; whoever coordinates now
    // serves the last commits.
    cluster.restart(coordinator);
    await_full_isr(&cluster);
    let last = [i64::from(COUNT); 3];
    await_committed(&cluster, &NODES, GROUP, TOPIC, &mut seen, &last);
    drop(second);
}

/// The faults the randomized test draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillLeader,
    KillFollower,
    PauseLeaderPastSession,
    RestartDownNode,
}

/// `name` from the environment, parsed, if set.
fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value}")),
    )
}

/// Names the seed again if the test panics, so the run can be replayed.
struct SeedNote(u64);

impl Drop for SeedNote {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("replay with RAFKA_FAULT_SEED={}", self.0);
        }
    }
}

/// Applies `fault` to a random partition's leader or follower; `down` is
/// the node killed and not yet restarted (at most one: a majority stays).
fn inject(cluster: &Cluster, rng: &mut Rng, fault: Fault, down: &mut Option<u16>) {
    let partition = i32::try_from(rng.index(3)).expect("partition");
    match fault {
        Fault::KillLeader => {
            let leader = cluster.leader(&NODES, TOPIC, partition);
            cluster.kill(leader);
            *down = Some(leader);
        }
        Fault::KillFollower => {
            let leader = cluster.leader(&NODES, TOPIC, partition);
            let follower = *rng.choose(&others(leader));
            cluster.kill(follower);
            *down = Some(follower);
        }
        Fault::PauseLeaderPastSession => {
            let leader = cluster.leader(&NODES, TOPIC, partition);
            cluster.pause(leader);
            // Past the 3 s broker session: fenced, its partitions move.
            std::thread::sleep(Duration::from_millis(3_000 + rng.below(2_000)));
            cluster.resume(leader);
        }
        Fault::RestartDownNode => {
            cluster.restart(down.take().expect("a node down"));
        }
    }
}

#[test]
#[ignore = "minutes: RAFKA_FAULT_COUNT (100) faults drawn from RAFKA_FAULT_SEED"]
fn random_faults_lose_no_acknowledged_record() {
    let seed = env_number("RAFKA_FAULT_SEED").unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock");
        u64::try_from(now.as_nanos() & u128::from(u64::MAX)).expect("masked")
    });
    let count = env_number("RAFKA_FAULT_COUNT").unwrap_or(100);
    eprintln!("RAFKA_FAULT_SEED={seed} RAFKA_FAULT_COUNT={count}");
    let _note = SeedNote(seed);
    let started = Instant::now();
    let cluster = Cluster::start_configured("random_faults_lose_no_acknowledged_record", CONFIG);
    create_topic(&cluster);
    let checker = Arc::new(Checker::new());
    let bootstrap = cluster.bootstrap();
    let load = Load::start(&bootstrap, TOPIC, PARTITIONS, 1, Arc::clone(&checker));
    let mut rng = Rng::new(seed);
    let mut down = None;
    let mut faults: BTreeMap<Fault, u64> = BTreeMap::new();
    for step in 0..count {
        let fault = if down.is_some() {
            Fault::RestartDownNode
        } else {
            *rng.choose(&[
                Fault::KillLeader,
                Fault::KillFollower,
                Fault::PauseLeaderPastSession,
            ])
        };
        eprintln!(
            "fault {step}: {fault:?} ({} s)",
            started.elapsed().as_secs()
        );
        checker.set_phase(&format!("{fault:?}"));
        inject(&cluster, &mut rng, fault, &mut down);
        *faults.entry(fault).or_default() += 1;
        if rng.ratio(1, 10) {
            read_all(&bootstrap, TOPIC, PARTITIONS, &checker);
        }
        std::thread::sleep(Duration::from_millis(200 + rng.below(2_300)));
    }
    if let Some(node) = down.take() {
        cluster.restart(node);
    }
    checker.set_phase("healed");
    await_full_isr(&cluster);
    await_acks(&checker, "healed");
    let sent = load.stop();
    read_all(&bootstrap, TOPIC, PARTITIONS, &checker);
    let verdict = checker.verify(true);
    eprintln!(
        "seed {seed}: faults {faults:?}; {sent} sent in {} s; {verdict}",
        started.elapsed().as_secs()
    );
    verdict.assert_clean();
}

/// Three nodes whose brokers reach one another only through fault
/// proxies, while clients reach them directly: each node's first
/// listener, INTERNAL (the one followers fetch from), is advertised at
/// the address of a proxy in front of it, and its EXTERNAL listener is
/// where clients go; controller traffic between nodes goes through a
/// proxy per pair of nodes. Cutting a node's proxies cuts it off from
/// the other brokers and the quorum, not from its clients.
struct CutOffCluster {
    nodes: Vec<rafka_testkit::process::BrokerProcess>,
    /// Node N's INTERNAL listener, as the other brokers reach it.
    internal: BTreeMap<u16, rafka_testkit::proxy::FaultProxy>,
    /// Node i reaches node j's controller through `controller[(i, j)]`.
    controller: BTreeMap<(u16, u16), rafka_testkit::proxy::FaultProxy>,
}

impl CutOffCluster {
    fn start(dir: &std::path::Path) -> CutOffCluster {
        use std::net::SocketAddr;
        let _turn = support::ports::PortLock::take();
        let base = support::ports::free_base_port(3);
        let address = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let internal: BTreeMap<u16, _> = NODES
            .iter()
            .map(|n| {
                let proxy = rafka_testkit::proxy::FaultProxy::start(address(base + 50 + n));
                (*n, proxy)
            })
            .collect();
        let mut controller = BTreeMap::new();
        for from in NODES {
            for to in NODES.into_iter().filter(|to| *to != from) {
                let proxy = rafka_testkit::proxy::FaultProxy::start(address(base + 100 + to));
                controller.insert((from, to), proxy);
            }
        }
        let starts: Vec<_> = NODES
            .iter()
            .map(|&node| {
                let voters: Vec<String> = NODES
                    .iter()
                    .map(|&peer| match peer == node {
                        true => format!("{peer}@{}", address(base + 100 + node)),
                        false => format!("{peer}@{}", controller[&(node, peer)].addr()),
                    })
                    .collect();
                let listeners = format!(
                    "INTERNAL://127.0.0.1:{},EXTERNAL://127.0.0.1:{}",
                    base + 50 + node,
                    base + node
                );
                let advertised = format!(
                    "INTERNAL://{},EXTERNAL://127.0.0.1:{}",
                    internal[&node].addr(),
                    base + node
                );
                let options =
                    rafka_testkit::process::BrokerOptions::new(env!("CARGO_BIN_EXE_rafka"), 1)
                        .data_dir(dir.join(format!("node-{node}")))
                        .property("listeners", &listeners)
                        .property("advertised.listeners", &advertised)
                        .property(
                            "listener.security.protocol.map",
                            "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
                        )
                        .property("broker.session.timeout.ms", "3000")
                        .property("broker.heartbeat.interval.ms", "500")
                        .property("replica.lag.time.max.ms", "2000")
                        .property("controller.quorum.request.timeout.ms", "400")
                        .property("rafka.log.dir.min.free.bytes", "0")
                        .arg("--node-id")
                        .arg(&node.to_string())
                        .arg("--controller-quorum-voters")
                        .arg(&voters.join(","))
                        .arg("--cluster-id")
                        .arg("cut-off-cluster-test-id");
                std::thread::spawn(move || rafka_testkit::process::BrokerProcess::start(options))
            })
            .collect();
        let nodes = starts
            .into_iter()
            .map(|start| start.join().expect("node started"))
            .collect();
        CutOffCluster {
            nodes,
            internal,
            controller,
        }
    }

    /// Where clients reach node N.
    fn external(&self, node: u16) -> std::net::SocketAddr {
        self.nodes[usize::from(node) - 1]
            .listener_addr("EXTERNAL")
            .expect("an EXTERNAL listener")
    }

    fn bootstrap(&self) -> String {
        NODES
            .iter()
            .map(|n| self.external(*n).to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Partition 0 of `topic` as node N describes it to a client.
    fn state(&self, node: u16, topic: &str) -> Option<PartitionState> {
        use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
        use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
        use kafka_protocol::protocol::StrBytes;
        let mut client = rafka_testkit::WireClient::connect(self.external(node), "cut").ok()?;
        let request = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
                TopicName(StrBytes::from_string(topic.to_string())),
            ))]))
            .with_allow_auto_topic_creation(false);
        let answer: MetadataResponse = client.call(12, &request).ok()?;
        let found = answer.topics.first()?.partitions.first()?;
        let mut isr: Vec<i32> = found.isr_nodes.iter().map(|n| n.0).collect();
        isr.sort_unstable();
        Some(PartitionState {
            leader: found.leader_id.0,
            epoch: found.leader_epoch,
            isr,
        })
    }

    fn await_state(
        &self,
        nodes: &[u16],
        topic: &str,
        what: &str,
        check: impl Fn(&PartitionState) -> bool,
    ) -> PartitionState {
        let deadline = Instant::now() + DEADLINE;
        loop {
            for &node in nodes {
                if let Some(state) = self.state(node, topic).filter(|s| check(s)) {
                    return state;
                }
            }
            assert!(Instant::now() < deadline, "{topic}-0: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Cuts (or heals) every link between node N and the other brokers:
    /// their fetches from it, and the controller traffic both ways.
    fn cut_off(&self, node: u16, cut: bool) {
        let mut proxies = vec![&self.internal[&node]];
        proxies.extend(
            self.controller
                .iter()
                .filter(|((from, to), _)| *from == node || *to == node)
                .map(|(_, proxy)| proxy),
        );
        for proxy in proxies {
            match cut {
                true => proxy.cut(),
                false => proxy.heal(),
            }
        }
    }
}

#[test]
fn acknowledged_records_survive_a_leader_cut_off_from_the_brokers_but_not_from_clients() {
    const CUT: &str = "cut";
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = CutOffCluster::start(dir.path());
    let created = Command::new(env!("CARGO_BIN_EXE_rafka"))
        .args(["topic", "--bootstrap", &cluster.external(1).to_string()])
        .args([
            "create",
            CUT,
            "--partitions",
            "1",
            "--replication-factor",
            "3",
        ])
        .args(["--config", "min.insync.replicas=2"])
        .output()
        .expect("rafka topic create");
    assert!(created.status.success(), "{created:?}");
    let first = cluster.await_state(&NODES, CUT, "a full ISR", |s| {
        s.leader > 0 && s.isr == [1, 2, 3]
    });
    let leader = u16::try_from(first.leader).expect("node id");
    let checker = Arc::new(Checker::new());
    let bootstrap = cluster.bootstrap();
    checker.set_phase("1 steady");
    let load = Load::start(&bootstrap, CUT, 1, 1, Arc::clone(&checker));
    let java = JavaLoad::start(&bootstrap, CUT, 1, 2, Arc::clone(&checker));
    await_acks(&checker, "1 steady");

    // The leader loses the other brokers and the quorum, not its clients:
    // what it takes can reach no other replica, so nothing it holds alone
    // is acknowledged; the others elect a new leader, and the producer,
    // refused or timed out there, finds it.
    checker.set_phase("2 leader cut off");
    cluster.cut_off(leader, true);
    let survivors = others(leader);
    let moved = cluster.await_state(&survivors, CUT, "a new leader", |s| {
        s.leader > 0 && s.leader != i32::from(leader) && s.epoch > first.epoch
    });
    eprintln!("node {leader} cut off, node {} leads", moved.leader);
    await_acks(&checker, "2 leader cut off");

    // Healed: the old leader learns the new epoch, cuts what it took
    // alone and follows; the ISR is whole again.
    checker.set_phase("3 healed");
    cluster.cut_off(leader, false);
    cluster.await_state(&NODES, CUT, "the old leader back in the ISR", |s| {
        s.leader == moved.leader && s.isr == [1, 2, 3]
    });
    await_acks(&checker, "3 healed");
    load.stop();
    let (java_acked, java_failed) = java.stop();
    read_all(&bootstrap, CUT, 1, &checker);
    let counts = checker.counts();
    eprintln!("{counts:?}; the Java producer: {java_acked} acknowledged, {java_failed} failed");
    checker.verify(true).assert_clean();
    assert!(java_acked > 0, "the Java producer got no acknowledgement");
    for phase in ["1 steady", "2 leader cut off", "3 healed"] {
        assert!(
            counts.acked_by_phase.get(phase).copied().unwrap_or(0) >= ACKS_PER_PHASE,
            "{phase}: {counts:?}"
        );
    }
}

/// Commits (or, `commit` false, aborts) the open transaction, retrying
/// what is retriable; whether it committed. A commit that must abort
/// aborts.
fn end_transaction(producer: &TxnProducer, commit: bool) -> bool {
    use rdkafka::error::KafkaError;
    use rdkafka::producer::Producer;
    let timeout = Duration::from_secs(30);
    let deadline = Instant::now() + DEADLINE;
    let mut committing = commit;
    loop {
        assert!(Instant::now() < deadline, "the transaction never ended");
        let ended = match committing {
            true => producer.commit_transaction(timeout),
            false => producer.abort_transaction(timeout),
        };
        match ended {
            Ok(()) => return committing,
            Err(KafkaError::Transaction(error)) if error.is_retriable() => {
                eprintln!("retrying the end of a transaction: {error}");
            }
            Err(KafkaError::Transaction(error)) if error.txn_requires_abort() => {
                eprintln!("aborting: {error}");
                committing = false;
            }
            Err(error) => panic!("ending a transaction: {error}"),
        }
    }
}

type TxnProducer = rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>;

/// The consumer of the loop, reading `topic` from `group`'s committed
/// offsets (the beginning where none), read_committed.
fn assign_at_committed(consumer: &BaseConsumer, topic: &str, partitions: i32) {
    let mut wanted = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        wanted.add_partition(topic, partition);
    }
    let deadline = Instant::now() + DEADLINE;
    let committed = loop {
        match consumer.committed_offsets(wanted.clone(), Duration::from_secs(10)) {
            Ok(committed) => break committed,
            Err(error) => {
                assert!(Instant::now() < deadline, "committed offsets: {error}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    let mut assignment = rdkafka::TopicPartitionList::new();
    for element in committed.elements() {
        let offset = match element.offset() {
            rdkafka::Offset::Offset(offset) => rdkafka::Offset::Offset(offset),
            _ => rdkafka::Offset::Beginning,
        };
        assignment
            .add_partition_offset(topic, element.partition(), offset)
            .expect("assignment");
    }
    consumer.assign(&assignment).expect("assign");
}

/// The coordinator of `key` (`key_type` 0: a group, 1: a transactional
/// id) as a live node other than `killed` names it, once it is on such a
/// node.
fn await_coordinator_moved(cluster: &Cluster, key_type: i8, key: &str, killed: u16) -> u16 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let seen = NODES
            .iter()
            .filter(|n| **n != killed)
            .find_map(|n| cluster.find_coordinator_of(*n, key_type, key).ok())
            .and_then(|id| u16::try_from(id).ok());
        if let Some(node) = seen.filter(|n| *n != killed) {
            return node;
        }
        assert!(
            Instant::now() < deadline,
            "{key} still coordinated by {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The broker coordinating the transactional id (and perhaps the group)
/// is killed after the 3rd commit; it comes back on its disk once both
/// coordinators moved and, unless the group's was on it too, 5 more
/// transactions committed without it.
///
/// Why the restart does not wait for commits when the group coordinator
/// was on the killed broker: librdkafka's send_offsets_to_transaction
/// then waits, past its timeout, for that broker to come back
/// (confluentinc/librdkafka#5456: the coordinator request's timeout is
/// never checked; #5511: a broker left out of Metadata, as a fenced one
/// is, never changes state again to wake it). Kafka's brokers leave a
/// dead broker out of Metadata the same way; the broker side is not
/// involved: AddOffsetsToTxn is answered by the new coordinator, and the
/// client sends no TxnOffsetCommit until the old broker is back in the
/// Metadata it refreshes (every second here).
#[test]
fn a_transactional_consume_transform_produce_loop_is_exactly_once_through_its_coordinators_kill() {
    use rdkafka::producer::{BaseRecord, Producer};
    const INPUT: &str = "ctp-in";
    const OUTPUT: &str = "ctp-out";
    const GROUP: &str = "ctp";
    const PER_PARTITION: u32 = 100;
    let cluster = Cluster::start_configured(
        "a_transactional_consume_transform_produce_loop_is_exactly_once_through_its_coordinators_kill",
        CONFIG,
    );
    for topic in [INPUT, OUTPUT] {
        let created = Command::new(env!("CARGO_BIN_EXE_rafka"))
            .args(["topic", "--bootstrap", &cluster.listener(1).to_string()])
            .args(["create", topic, "--partitions", &PARTITIONS.to_string()])
            .args(["--replication-factor", "3"])
            .args(["--config", "min.insync.replicas=2"])
            .output()
            .expect("rafka topic create");
        assert!(created.status.success(), "{created:?}");
    }
    let bootstrap = cluster.bootstrap();
    let input: Vec<Vec<support::client::Record>> = records(PARTITIONS, PER_PARTITION, now_ms());
    produce(
        &producer(
            &bootstrap,
            &[("acks", "all"), ("enable.idempotence", "true")],
        ),
        INPUT,
        &input,
    );

    let producer: TxnProducer = support::client::config(&bootstrap)
        .set("transactional.id", "ctp-loop")
        .set("transaction.timeout.ms", "60000")
        // Learns soon that a restarted broker is back in Metadata, which
        // is what wakes a send_offsets_to_transaction waiting on it
        // (librdkafka#5511, see above).
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .expect("transactional producer");
    producer
        .init_transactions(Duration::from_secs(30))
        .expect("init_transactions");
    let consumer: BaseConsumer = support::client::config(&bootstrap)
        .set("group.id", GROUP)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    assign_at_committed(&consumer, INPUT, PARTITIONS);

    // Transactions of up to 10 records; after the 3rd commit the broker
    // coordinating the transactional id is killed (see the doc above for
    // when it comes back).
    let committed_transactions = AtomicUsize::new(0);
    let restarted = AtomicBool::new(false);
    let mut aborted = 0;
    let mut killed: Option<u16> = None;
    let mut done = vec![0i64; PARTITIONS as usize];
    let total = i64::from(PER_PARTITION);
    let deadline = Instant::now() + Duration::from_secs(180);
    std::thread::scope(|scope| {
        while done.iter().any(|d| *d < total) {
            assert!(Instant::now() < deadline, "processed only {done:?}");
            let mut batch = Vec::new();
            while batch.len() < 10 {
                match consumer.poll(Duration::from_millis(300)) {
                    Some(Ok(message)) => batch.push((
                        message.partition(),
                        message.offset(),
                        message.key().expect("a key").to_vec(),
                    )),
                    Some(Err(error)) => eprintln!("consumer: {error}"),
                    None => break,
                }
            }
            if batch.is_empty() {
                continue;
            }
            producer.begin_transaction().expect("begin_transaction");
            let mut next: BTreeMap<i32, i64> = BTreeMap::new();
            for (partition, offset, key) in &batch {
                let mut out = b"out-".to_vec();
                out.extend_from_slice(key);
                producer
                    .send(
                        BaseRecord::<[u8], [u8]>::to(OUTPUT)
                            .partition(*partition)
                            .payload(&out),
                    )
                    .expect("enqueue");
                next.insert(*partition, offset + 1);
            }
            let mut offsets = rdkafka::TopicPartitionList::new();
            for (partition, offset) in &next {
                offsets
                    .add_partition_offset(INPUT, *partition, rdkafka::Offset::Offset(*offset))
                    .expect("offsets");
            }
            let metadata = consumer.group_metadata().expect("group metadata");
            let sent = producer.flush(Duration::from_secs(30)).is_ok()
                && producer
                    .send_offsets_to_transaction(&offsets, &metadata, Duration::from_secs(30))
                    .inspect_err(|error| eprintln!("send_offsets_to_transaction: {error}"))
                    .is_ok();
            if end_transaction(&producer, sent) {
                committed_transactions.fetch_add(1, Ordering::SeqCst);
                for (partition, offset) in next {
                    done[partition as usize] = offset;
                }
            } else {
                // Aborted: read again from what the group committed.
                aborted += 1;
                assign_at_committed(&consumer, INPUT, PARTITIONS);
            }
            if killed.is_none() && committed_transactions.load(Ordering::SeqCst) == 3 {
                let coordinator = |key_type: i8, key: &str| {
                    cluster
                        .find_coordinator_of(1, key_type, key)
                        .or_else(|_| cluster.find_coordinator_of(2, key_type, key))
                        .ok()
                        .and_then(|id| u16::try_from(id).ok())
                };
                let node = coordinator(1, "ctp-loop").expect("the transaction coordinator");
                let group_there = coordinator(0, GROUP) == Some(node);
                eprintln!(
                    "killing node {node}, the transaction coordinator{}",
                    if group_there { " and the group's" } else { "" }
                );
                cluster.kill(node);
                killed = Some(node);
                let (cluster, committed, restarted) =
                    (&cluster, &committed_transactions, &restarted);
                scope.spawn(move || {
                    let txn = await_coordinator_moved(cluster, 1, "ctp-loop", node);
                    let group = await_coordinator_moved(cluster, 0, GROUP, node);
                    eprintln!("coordinators moved: transactions to {txn}, the group to {group}");
                    if !group_there {
                        let until = Instant::now() + DEADLINE;
                        while committed.load(Ordering::SeqCst) < 8 {
                            assert!(Instant::now() < until, "no commit without node {node}");
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    cluster.restart(node);
                    eprintln!("node {node} restarted");
                    restarted.store(true, Ordering::SeqCst);
                });
            }
        }
    });
    let committed_transactions = committed_transactions.into_inner();
    eprintln!("{committed_transactions} transactions committed, {aborted} aborted");
    assert!(killed.is_some(), "the coordinator was killed");
    assert!(restarted.into_inner(), "and restarted");

    // Every input record transformed exactly once, in order, and the
    // group's committed offsets at the end of the input.
    let read = read_committed_values(&bootstrap, OUTPUT, PARTITIONS, PER_PARTITION as usize);
    for partition in 0..PARTITIONS {
        let expected: Vec<Vec<u8>> = input[partition as usize]
            .iter()
            .map(|r| [b"out-".as_slice(), &r.key].concat())
            .collect();
        assert_eq!(read[partition as usize], expected, "{OUTPUT}-{partition}");
    }
    let deadline = Instant::now() + DEADLINE;
    loop {
        // Asked of the group's coordinator, wherever it is now.
        let node = NODES
            .iter()
            .find_map(|n| cluster.find_coordinator(*n, GROUP).ok())
            .and_then(|id| u16::try_from(id).ok())
            .unwrap_or(NODES[0]);
        let committed = cluster.offset_fetch(node, GROUP, INPUT, PARTITIONS);
        if committed == Ok(vec![total; PARTITIONS as usize]) {
            break;
        }
        assert!(Instant::now() < deadline, "committed {committed:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every partition's values, read_committed from the beginning, once
/// `count` came from each (and nothing more within half a second).
fn read_committed_values(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: usize,
) -> Vec<Vec<Vec<u8>>> {
    let reader: BaseConsumer = support::client::config(bootstrap)
        .set("group.id", "ctp-checker")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("reader");
    let mut assignment = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
            .expect("assignment");
    }
    reader.assign(&assignment).expect("assign");
    let mut read: Vec<Vec<Vec<u8>>> = vec![Vec::new(); partitions as usize];
    let deadline = Instant::now() + DEADLINE;
    while read.iter().any(|values| values.len() < count) {
        assert!(
            Instant::now() < deadline,
            "read {:?} of {count} each",
            read.iter().map(Vec::len).collect::<Vec<_>>()
        );
        if let Some(message) = reader.poll(Duration::from_millis(500)) {
            let message = message.expect("a record");
            let value = message.payload().expect("a value").to_vec();
            read[message.partition() as usize].push(value);
        }
    }
    assert!(
        reader.poll(Duration::from_millis(500)).is_none(),
        "more than {count} records in a partition"
    );
    read
}
