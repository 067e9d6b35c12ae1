//! Consumer groups against the real broker with librdkafka, 2 and 4
//! shards: members share a topic's partitions, every record is consumed
//! exactly once across them (sync commits after each record), a leaving
//! and a joining member hand partitions over at the committed offsets,
//! committed offsets survive a broker restart, a static member rejoins
//! without a rebalance, a member that stops heartbeating is removed after
//! its session timeout, and cooperative-sticky members share the topic.
//!
//! Every wait is bounded by a deadline and driven by the client's own
//! polling; none sleeps.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rafka_testkit::wire_group::{range_assignment, JoinSpec};
use rafka_testkit::BrokerProcess;
use rafka_testkit::WireClient;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use support::client;
use support::rafka;

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 6;
/// Records per partition: enough for every member to consume while
/// others join and leave, small enough for one fsynced commit each.
const PER_PARTITION: u32 = 100;
const TOTAL: usize = PARTITIONS as usize * PER_PARTITION as usize;
/// Bound on a group reaching the assignment a test waits for.
const GROUP_DEADLINE: Duration = Duration::from_secs(40);
/// How long one poll of one member may block while others wait their turn.
const POLL_SLICE: Duration = Duration::from_millis(20);

/// Counts the assignments librdkafka hands a member: each completed
/// rebalance that gives it partitions adds one.
#[derive(Default)]
struct Counting {
    assignments: AtomicU32,
}

impl ClientContext for Counting {}

impl ConsumerContext for Counting {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.assignments.fetch_add(1, Ordering::SeqCst);
        }
    }
}

type Member = BaseConsumer<Counting>;

/// A broker with `cores` shards whose groups start without Kafka's 3 s
/// initial rebalance delay, and short session timeouts allowed.
fn start_broker(cores: u32) -> BrokerProcess {
    let options = rafka(cores)
        .property("group.initial.rebalance.delay.ms", "0")
        .property("group.min.session.timeout.ms", "1000");
    BrokerProcess::start(options)
}

/// A member of `group` subscribed to [`TOPIC`], committing by hand.
fn member(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> Member {
    let mut config = client::config(bootstrap);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("allow.auto.create.topics", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "100");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    let consumer: Member = config
        .create_with_context(Counting::default())
        .expect("create group consumer");
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    consumer
}

fn assigned(member: &Member) -> BTreeSet<i32> {
    let assignment = member.assignment().expect("assignment");
    assignment
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect()
}

/// Polls every member until each holds partitions and together they hold
/// the topic's partitions exactly once; returns each member's set.
fn await_shared(members: &[&Member]) -> Vec<BTreeSet<i32>> {
    let deadline = Instant::now() + GROUP_DEADLINE;
    loop {
        for member in members {
            if let Some(message) = member.poll(POLL_SLICE) {
                let message = message.expect("poll while waiting for assignments");
                panic!(
                    "a record arrived before any was produced: {:?}",
                    message.offset()
                );
            }
        }
        let sets: Vec<BTreeSet<i32>> = members.iter().map(|m| assigned(m)).collect();
        let held: usize = sets.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
        let everyone = sets.iter().all(|set| !set.is_empty());
        if everyone && held == PARTITIONS as usize && union.len() == held {
            return sets;
        }
        assert!(Instant::now() < deadline, "no shared assignment: {sets:?}");
    }
}

/// Every record consumed: who consumed (partition, offset), in order.
#[derive(Default)]
struct Ledger {
    consumer_of: BTreeMap<(i32, i64), usize>,
    duplicates: Vec<(i32, i64)>,
}

impl Ledger {
    fn len(&self) -> usize {
        self.consumer_of.len()
    }

    fn note(&mut self, partition: i32, offset: i64, member: usize) {
        if self
            .consumer_of
            .insert((partition, offset), member)
            .is_some()
        {
            self.duplicates.push((partition, offset));
        }
    }

    /// Exactly once: no duplicate, offsets 0..PER_PARTITION of each
    /// partition.
    fn assert_exactly_once(&self) {
        assert_eq!(self.duplicates, Vec::<(i32, i64)>::new(), "consumed twice");
        for partition in 0..PARTITIONS {
            let offsets: Vec<i64> = self
                .consumer_of
                .range((partition, i64::MIN)..=(partition, i64::MAX))
                .map(|((_, offset), _)| *offset)
                .collect();
            let expected: Vec<i64> = (0..i64::from(PER_PARTITION)).collect();
            assert_eq!(offsets, expected, "partition {partition}");
        }
    }

    fn partitions_of(&self, member: usize) -> BTreeSet<i32> {
        let consumed = self.consumer_of.iter();
        consumed
            .filter(|(_, m)| **m == member)
            .map(|((partition, _), _)| *partition)
            .collect()
    }
}

/// Polls `members` (tagged with their ledger ids) in turn, committing each
/// record synchronously, until the ledger holds `target` records.
fn consume_until(members: &[(usize, &Member)], ledger: &mut Ledger, target: usize) {
    let deadline = Instant::now() + GROUP_DEADLINE;
    while ledger.len() < target {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {target} records before the deadline",
            ledger.len()
        );
        for (id, member) in members {
            let Some(message) = member.poll(POLL_SLICE) else {
                continue;
            };
            let message = message.unwrap_or_else(|error| panic!("member {id}: {error}"));
            ledger.note(message.partition(), message.offset(), *id);
            member
                .commit_message(&message, CommitMode::Sync)
                .unwrap_or_else(|error| panic!("member {id} commit: {error}"));
        }
    }
}

fn produce_all(bootstrap: &str) {
    let expected = client::records(PARTITIONS, PER_PARTITION, client::now_ms());
    let producer = client::producer(bootstrap, &[("enable.idempotence", "false")]);
    client::produce(&producer, TOPIC, &expected);
}

/// Three members split six partitions two by two; each consumes only its
/// own, and together every record exactly once.
fn three_members_share_the_topic(cores: u32) {
    let broker = start_broker(cores);
    let bootstrap = broker.bootstrap();
    client::create_topic(&bootstrap, TOPIC, PARTITIONS);
    let members: Vec<Member> = (0..3).map(|_| member(&bootstrap, "trio", &[])).collect();
    let refs: Vec<&Member> = members.iter().collect();
    let sets = await_shared(&refs);
    assert_eq!(
        sets.iter().map(BTreeSet::len).collect::<Vec<_>>(),
        vec![2, 2, 2]
    );
    produce_all(&bootstrap);
    let tagged: Vec<(usize, &Member)> = members.iter().enumerate().collect();
    let mut ledger = Ledger::default();
    consume_until(&tagged, &mut ledger, TOTAL);
    ledger.assert_exactly_once();
    for (id, set) in sets.iter().enumerate() {
        assert_eq!(
            &ledger.partitions_of(id),
            set,
            "member {id} kept to its partitions"
        );
    }
    let committed = members[0]
        .committed_offsets(all_partitions(Offset::Invalid), client::REQUEST_TIMEOUT)
        .expect("committed offsets");
    assert_eq!(offsets(&committed), vec![i64::from(PER_PARTITION); 6]);
}

#[test]
fn three_members_share_the_topic_two_shards() {
    three_members_share_the_topic(2);
}

#[test]
fn three_members_share_the_topic_four_shards() {
    three_members_share_the_topic(4);
}

fn all_partitions(offset: Offset) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        list.add_partition_offset(TOPIC, partition, offset)
            .expect("partition entry");
    }
    list
}

/// The offset of each partition, -1 for none, in partition order.
fn offsets(list: &TopicPartitionList) -> Vec<i64> {
    let mut entries: Vec<(i32, i64)> = list
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(offset) => (e.partition(), offset),
            _ => (e.partition(), -1),
        })
        .collect();
    entries.sort_unstable();
    entries.into_iter().map(|(_, offset)| offset).collect()
}

/// Halfway through, one member closes and another joins: the survivors go
/// on, the newcomer starts at the committed offsets, nothing is lost or
/// consumed twice.
fn leave_and_join(cores: u32) {
    let broker = start_broker(cores);
    let bootstrap = broker.bootstrap();
    client::create_topic(&bootstrap, TOPIC, PARTITIONS);
    let mut members: Vec<Member> = (0..3).map(|_| member(&bootstrap, "swap", &[])).collect();
    await_shared(&members.iter().collect::<Vec<_>>());
    produce_all(&bootstrap);
    let mut ledger = Ledger::default();
    let tagged: Vec<(usize, &Member)> = members.iter().enumerate().collect();
    consume_until(&tagged, &mut ledger, TOTAL / 2);
    drop(members.remove(0)); // close: LeaveGroup
    members.push(member(&bootstrap, "swap", &[]));
    let tagged: Vec<(usize, &Member)> = (1..).zip(members.iter()).collect();
    consume_until(&tagged, &mut ledger, TOTAL);
    ledger.assert_exactly_once();
    let sets = await_shared(&members.iter().collect::<Vec<_>>());
    assert_eq!(
        sets.len(),
        3,
        "two survivors and the newcomer share the topic"
    );
}

#[test]
fn leave_and_join_two_shards() {
    leave_and_join(2);
}

#[test]
fn leave_and_join_four_shards() {
    leave_and_join(4);
}

/// How the broker goes down between the two consumers.
#[derive(Clone, Copy)]
enum Stop {
    Graceful,
    /// SIGKILL: acknowledged commits were fsynced, so they must survive.
    Kill9,
}

/// A consumer commits part of the topic; after a broker restart a new
/// consumer of the group sees those offsets and consumes the rest.
fn resume_after_restart(cores: u32, stop: Stop) {
    let mut broker = start_broker(cores);
    let bootstrap = broker.bootstrap();
    client::create_topic(&bootstrap, TOPIC, PARTITIONS);
    produce_all(&bootstrap);
    let mut ledger = Ledger::default();
    let first = member(&bootstrap, "resume", &[]);
    consume_until(&[(0, &first)], &mut ledger, TOTAL / 3);
    let expected: Vec<i64> = (0..PARTITIONS)
        .map(|p| {
            let mut consumed = ledger.consumer_of.range((p, 0)..=(p, i64::MAX));
            consumed
                .next_back()
                .map_or(-1, |((_, offset), _)| offset + 1)
        })
        .collect();
    drop(first);
    if let Stop::Kill9 = stop {
        broker.kill9();
    }
    broker.restart();
    let bootstrap = broker.bootstrap();
    let second = member(&bootstrap, "resume", &[]);
    let committed = second
        .committed_offsets(all_partitions(Offset::Invalid), client::REQUEST_TIMEOUT)
        .expect("committed offsets after restart");
    assert_eq!(offsets(&committed), expected);
    consume_until(&[(1, &second)], &mut ledger, TOTAL);
    ledger.assert_exactly_once();
}

#[test]
fn resume_after_restart_two_shards() {
    resume_after_restart(2, Stop::Graceful);
}

#[test]
fn resume_after_restart_four_shards() {
    resume_after_restart(4, Stop::Graceful);
}

#[test]
fn resume_after_kill9_two_shards() {
    resume_after_restart(2, Stop::Kill9);
}

#[test]
fn resume_after_kill9_four_shards() {
    resume_after_restart(4, Stop::Kill9);
}

/// A static member (`group.instance.id`) that closes and comes back within
/// its session timeout gets its partitions back without a rebalance: the
/// other member is never reassigned.
fn static_member_rejoins(cores: u32) {
    let broker = start_broker(cores);
    let bootstrap = broker.bootstrap();
    client::create_topic(&bootstrap, TOPIC, PARTITIONS);
    let statics = |id: &str| member(&bootstrap, "static", &[("group.instance.id", id)]);
    let (a, b) = (statics("a"), statics("b"));
    let sets = await_shared(&[&a, &b]);
    let b_assignments = b.context().assignments.load(Ordering::SeqCst);
    drop(a); // a static member does not leave the group on close
    let a = statics("a");
    let again = await_shared(&[&a, &b]);
    assert_eq!(again, sets, "same partitions for the same instances");
    // b would learn of a rebalance at its next heartbeat: give it a few.
    let watch_until = Instant::now() + Duration::from_millis(1_000);
    while Instant::now() < watch_until {
        assert!(b.poll(POLL_SLICE).is_none(), "nothing was produced");
    }
    assert_eq!(
        b.context().assignments.load(Ordering::SeqCst),
        b_assignments
    );
    let mut wire = WireClient::connect(broker.addr, "describer").expect("connect");
    let described = wire.describe_groups(&["static"]).expect("describe");
    let group = &described.groups[0];
    assert_eq!(group.group_state.as_str(), "Stable");
    let mut instances: Vec<&str> = group
        .members
        .iter()
        .filter_map(|m| m.group_instance_id.as_deref())
        .collect();
    instances.sort_unstable();
    assert_eq!(instances, vec!["a", "b"]);
}

#[test]
fn static_member_rejoins_two_shards() {
    static_member_rejoins(2);
}

#[test]
fn static_member_rejoins_four_shards() {
    static_member_rejoins(4);
}

/// A raw member joins beside a librdkafka member, takes its share, then
/// goes silent: once its 1.5 s session times out the librdkafka member
/// holds the whole topic again and is the group's only member.
fn silent_member_is_removed(cores: u32) {
    let broker = start_broker(cores);
    let bootstrap = broker.bootstrap();
    client::create_topic(&bootstrap, TOPIC, PARTITIONS);
    let live = member(&bootstrap, "silent", &[]);
    await_shared(&[&live]);
    let addr = broker.addr;
    let silent = thread::spawn(move || {
        let mut wire = WireClient::connect(addr, "silent-member").expect("connect");
        let mut spec = JoinSpec::consumer("silent", &[TOPIC]);
        spec.session_timeout_ms = 1_500;
        spec.rebalance_timeout_ms = 1_500;
        let joined = wire.join(&mut spec).expect("join");
        let plan = if joined.is_leader() {
            let ids: Vec<String> = joined.members.keys().cloned().collect();
            range_assignment(&ids, TOPIC, PARTITIONS)
        } else {
            BTreeMap::new()
        };
        let mine = wire.sync(&joined, "silent", &plan).expect("sync");
        mine.get(TOPIC).cloned().unwrap_or_default()
    });
    // The live member must keep polling to rejoin while the raw one joins.
    let deadline = Instant::now() + GROUP_DEADLINE;
    while !silent.is_finished() {
        assert!(live.poll(POLL_SLICE).is_none(), "nothing was produced");
        assert!(Instant::now() < deadline, "the raw member never joined");
    }
    let taken = silent.join().expect("raw member thread");
    assert_eq!(taken.len(), 3, "the raw member got its half");
    while assigned(&live).len() != PARTITIONS as usize {
        assert!(live.poll(POLL_SLICE).is_none(), "nothing was produced");
        assert!(
            Instant::now() < deadline,
            "the silent member was never removed"
        );
    }
    let mut wire = WireClient::connect(broker.addr, "describer").expect("connect");
    let described = wire.describe_groups(&["silent"]).expect("describe");
    let clients: Vec<&str> = described.groups[0]
        .members
        .iter()
        .map(|m| m.client_id.as_str())
        .collect();
    assert_eq!(clients, vec!["rafka-e2e"]);
}

#[test]
fn silent_member_is_removed_two_shards() {
    silent_member_is_removed(2);
}

#[test]
fn silent_member_is_removed_four_shards() {
    silent_member_is_removed(4);
}

/// Two cooperative-sticky members (incremental rebalancing, two rounds for
/// the second to get partitions) share the topic and consume every record
/// exactly once.
fn cooperative_sticky(cores: u32) {
    let broker = start_broker(cores);
    let bootstrap = broker.bootstrap();
    client::create_topic(&bootstrap, TOPIC, PARTITIONS);
    let sticky = [("partition.assignment.strategy", "cooperative-sticky")];
    let first = member(&bootstrap, "sticky", &sticky);
    await_shared(&[&first]);
    let second = member(&bootstrap, "sticky", &sticky);
    let sets = await_shared(&[&first, &second]);
    assert_eq!(
        sets.iter().map(BTreeSet::len).collect::<Vec<_>>(),
        vec![3, 3]
    );
    produce_all(&bootstrap);
    let mut ledger = Ledger::default();
    consume_until(&[(0, &first), (1, &second)], &mut ledger, TOTAL);
    ledger.assert_exactly_once();
    assert_eq!(ledger.partitions_of(0), sets[0]);
    assert_eq!(ledger.partitions_of(1), sets[1]);
}

#[test]
fn cooperative_sticky_two_shards() {
    cooperative_sticky(2);
}

#[test]
fn cooperative_sticky_four_shards() {
    cooperative_sticky(4);
}
