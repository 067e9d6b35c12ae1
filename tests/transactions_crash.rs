//! Transactions through a SIGKILL of the real broker. A librdkafka
//! transactional producer runs transactions of 10 records over 3
//! partitions, committing the odd-numbered ones and aborting the
//! even-numbered ones (each record's value names its transaction and
//! whether it commits). The broker (2 shards) is killed with SIGKILL at a
//! point of the producer's progress drawn from the seed:
//! - inside a transaction, once some of its records are acknowledged;
//! - racing a commit or abort: its records acknowledged, the kill comes a
//!   seeded 0-4 ms after the call starts (before the EndTxn arrives, while
//!   its Prepare record is written, or while its markers are);
//! - right after the broker answered a commit or abort, while its markers
//!   may still be on their way.
//!
//! After a restart on the same data dir:
//! - nothing hangs: every partition's last stable offset reaches its high
//!   watermark within a deadline (a transaction the kill left open is
//!   aborted by its 5 s timeout), and a read_committed consumer reads to
//!   that end;
//! - every record of a transaction the producer saw commit is visible, no
//!   record of an aborting transaction is, a committing transaction killed
//!   before its commit is invisible, and one whose commit the kill raced
//!   is all or nothing (and stays as first seen);
//! - the transactional id goes on: the next cycle's producer (and, at the
//!   end, a last one) initializes with it and commits.
//!
//! The seed (printed, and again on failure) comes from `RAFKA_TEST_SEED`
//! or the clock; it replays the kill points, not the threads'
//! interleaving. The default suite runs one kill; the `#[ignore]`d loop
//! runs `RAFKA_TXN_CRASH_CYCLES` (default 20):
//!
//! ```text
//! RAFKA_TXN_CRASH_CYCLES=20 cargo test --release --test transactions_crash -- --ignored --nocapture
//! ```

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest};
use rafka_testkit::proto::topic_name;
use rafka_testkit::{BrokerProcess, Rng, WireClient};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use support::seed::{self, FailureNote};
use support::{client, rafka};

const TOPIC: &str = "txn-crash";
const PARTITIONS: i32 = 3;
const RECORDS_PER_TXN: u32 = 10;
const TXN_ID: &str = "txn-crash";
/// Short, so that a transaction the kill left open is aborted soon after
/// the restart.
const TXN_TIMEOUT_MS: &str = "5000";
/// The most transactions a cycle runs before the one the kill hits.
const TXNS_BEFORE_KILL_MAX: u64 = 5;
/// The longest a kill racing a commit or abort waits after the call
/// starts: a local EndTxn, its Prepare record's fsync and the markers'
/// take a few milliseconds.
const RACE_DELAY_US_MAX: u64 = 4_000;
/// Bound on a producer call against the live broker.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on the commit or abort the kill races: it fails by then.
const RACED_END_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a cycle's transactions up to the kill point.
const CYCLE_DEADLINE: Duration = Duration::from_secs(120);
/// Bound on the LSO reaching the high watermark after a restart (the
/// transaction timeout, plus the restart's own replay and markers).
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);
/// Bound on reading every partition to its end.
const CONSUME_DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);
const CYCLES_ENV: &str = "RAFKA_TXN_CRASH_CYCLES";
const CYCLES_DEFAULT: u32 = 20;

/// Where in a cycle the broker is killed: in the cycle's `txn`-th
/// transaction (from 1).
#[derive(Clone, Copy, Debug)]
enum KillPoint {
    /// Once `acked` of its records are acknowledged, before its commit or
    /// abort is asked for.
    Inside { txn: u32, acked: u32 },
    /// `delay_us` after its commit or abort starts, its records
    /// acknowledged: before the EndTxn, while its Prepare record is
    /// written, or while its markers are.
    RacingEnd { txn: u32, delay_us: u64 },
    /// Right after its commit or abort was answered.
    AfterEnd { txn: u32 },
}

impl KillPoint {
    fn draw(rng: &mut Rng) -> KillPoint {
        let txn = u32::try_from(rng.in_range(1..=TXNS_BEFORE_KILL_MAX + 1)).expect("small");
        match rng.below(3) {
            0 => {
                let acked = rng.in_range(0..=u64::from(RECORDS_PER_TXN));
                let acked = u32::try_from(acked).expect("small");
                KillPoint::Inside { txn, acked }
            }
            1 => KillPoint::RacingEnd {
                txn,
                delay_us: rng.in_range(0..=RACE_DELAY_US_MAX),
            },
            _ => KillPoint::AfterEnd { txn },
        }
    }

    fn txn(self) -> u32 {
        match self {
            KillPoint::Inside { txn, .. }
            | KillPoint::RacingEnd { txn, .. }
            | KillPoint::AfterEnd { txn } => txn,
        }
    }
}

/// What the producer knows of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Its commit or abort returned success.
    Ended,
    /// The kill raced its commit or abort, which failed: the broker may
    /// have decided either way.
    InDoubt,
    /// Killed before its commit or abort was asked for.
    Open,
}

/// Odd-numbered transactions commit, even-numbered ones abort.
fn commits(number: u32) -> bool {
    number % 2 == 1
}

fn value(number: u32, index: u32) -> String {
    let verb = if commits(number) { "commit" } else { "abort" };
    format!("txn-{number}-{verb}-{index}")
}

/// The transaction number and record index a value names.
fn parse(value: &str) -> (u32, u32) {
    let parts: Vec<&str> = value.split('-').collect();
    let parsed = match parts.as_slice() {
        ["txn", number, verb, index] => number.parse().ok().and_then(|number: u32| {
            let verb_ok = *verb == if commits(number) { "commit" } else { "abort" };
            index
                .parse()
                .ok()
                .filter(|_| verb_ok)
                .map(|index| (number, index))
        }),
        _ => None,
    };
    parsed.unwrap_or_else(|| panic!("a record no transaction wrote: {value:?}"))
}

/// Polls its delivery reports on a thread of its own, which an abort
/// needs.
type TxnProducer = ThreadedProducer<DefaultProducerContext>;

fn transactional_producer(bootstrap: &str) -> TxnProducer {
    let producer: TxnProducer = client::config(bootstrap)
        .set("transactional.id", TXN_ID)
        .set("transaction.timeout.ms", TXN_TIMEOUT_MS)
        .set("linger.ms", "5")
        .create()
        .expect("create transactional producer");
    producer
        .init_transactions(CALL_TIMEOUT)
        .expect("init_transactions");
    producer
}

fn send(producer: &TxnProducer, number: u32, index: u32) {
    let value = value(number, index);
    let partition = i32::try_from(index).expect("small") % PARTITIONS;
    let record = BaseRecord::<str, str>::to(TOPIC)
        .partition(partition)
        .key(&value)
        .payload(&value);
    if let Err((error, _)) = producer.send(record) {
        panic!("enqueue {value}: {error}");
    }
}

/// Commits or aborts `number` as its parity says.
fn end(producer: &TxnProducer, number: u32, timeout: Duration) -> Result<(), KafkaError> {
    match commits(number) {
        true => producer.commit_transaction(timeout),
        false => producer.abort_transaction(timeout),
    }
}

/// The producer thread of one cycle: transactions `first`, `first + 1`,
/// ... up to the kill point, where it tells `reached` and, unless it races
/// the kill, waits for `resume` (the broker is dead by then). Returns what
/// it knows of each transaction.
fn produce_until_kill(
    bootstrap: &str,
    first: u32,
    kill: KillPoint,
    reached: &mpsc::Sender<()>,
    resume: &mpsc::Receiver<()>,
) -> Vec<(u32, Outcome)> {
    let producer = transactional_producer(bootstrap);
    let mut outcomes = Vec::new();
    for k in 1..=kill.txn() {
        let number = first + k - 1;
        producer.begin_transaction().expect("begin_transaction");
        let inside = match kill {
            KillPoint::Inside { txn, acked } if txn == k => Some(acked),
            _ => None,
        };
        for index in 0..inside.unwrap_or(RECORDS_PER_TXN) {
            send(&producer, number, index);
        }
        if inside.is_some() {
            // Every record sent is acknowledged: the broker holds an open
            // transaction when it dies.
            producer.flush(CALL_TIMEOUT).expect("flush");
            outcomes.push((number, Outcome::Open));
            let _ = reached.send(());
            let _ = resume.recv();
            return outcomes;
        }
        let racing = matches!(kill, KillPoint::RacingEnd { txn, .. } if txn == k);
        if racing {
            // The records first, so that the kill races the EndTxn, its
            // Prepare record and its markers rather than the records.
            producer.flush(CALL_TIMEOUT).expect("flush");
            let _ = reached.send(());
            let outcome = match end(&producer, number, RACED_END_TIMEOUT) {
                Ok(()) => Outcome::Ended,
                Err(_) => Outcome::InDoubt,
            };
            outcomes.push((number, outcome));
            return outcomes;
        }
        if let Err(error) = end(&producer, number, CALL_TIMEOUT) {
            panic!("ending transaction {number} on a live broker: {error}");
        }
        outcomes.push((number, Outcome::Ended));
        if matches!(kill, KillPoint::AfterEnd { txn } if txn == k) {
            let _ = reached.send(());
            let _ = resume.recv();
            return outcomes;
        }
    }
    unreachable!("the kill point is one of the cycle's transactions")
}

/// The producer thread of a cycle, and when the broker restarted.
struct Killed {
    producer: thread::JoinHandle<Vec<(u32, Outcome)>>,
    restarted: Instant,
}

/// Runs a cycle's producer until its kill point, SIGKILLs the broker
/// there and restarts it on the same data dir. The producer may still be
/// failing its raced commit or abort against the dead broker.
fn kill_at(broker: &mut BrokerProcess, first: u32, kill: KillPoint) -> Killed {
    let (reached_tx, reached) = mpsc::channel();
    let (resume, resume_rx) = mpsc::channel();
    let bootstrap = broker.bootstrap();
    let producer =
        thread::spawn(move || produce_until_kill(&bootstrap, first, kill, &reached_tx, &resume_rx));
    if reached.recv_timeout(CYCLE_DEADLINE).is_err() {
        match producer.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(outcomes) => panic!("the producer never reached {kill:?}: {outcomes:?}"),
        }
    }
    if let KillPoint::RacingEnd { delay_us, .. } = kill {
        // Not a wait for a condition: the seed's choice of the moment.
        thread::sleep(Duration::from_micros(delay_us));
    }
    broker.kill9();
    // The producer may have returned already (a raced end): no one hears.
    let _ = resume.send(());
    broker.restart();
    Killed {
        producer,
        restarted: Instant::now(),
    }
}

/// ListOffsets latest of every partition: the high watermark
/// (read_uncommitted) or the last stable offset (read_committed).
fn latest_offsets(client: &mut WireClient, read_committed: bool) -> Vec<i64> {
    let partitions = (0..PARTITIONS)
        .map(|p| {
            ListOffsetsPartition::default()
                .with_partition_index(p)
                .with_current_leader_epoch(-1)
                .with_timestamp(-1)
        })
        .collect();
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(i8::from(read_committed))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(partitions)]);
    let response = client.call(5, &request).expect("ListOffsets");
    response.topics[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0, "{TOPIC}/{}", p.partition_index);
            p.offset
        })
        .collect()
}

/// Polls until every partition's LSO is its high watermark (no
/// transaction left open or unmarked); returns the high watermarks.
fn await_stable(broker: &BrokerProcess) -> Vec<i64> {
    let mut client = WireClient::connect(broker.addr, "txn-crash-check").expect("connect");
    let deadline = Instant::now() + SETTLE_DEADLINE;
    loop {
        let high = latest_offsets(&mut client, false);
        let stable = latest_offsets(&mut client, true);
        if high == stable {
            return high;
        }
        assert!(
            Instant::now() < deadline,
            "{TOPIC}: LSO {stable:?} still below the high watermark {high:?} \
             {SETTLE_DEADLINE:?} after the restart"
        );
        thread::sleep(POLL);
    }
}

/// Every value a read_committed consumer reads from offset 0 to the end of
/// every partition (`ends`, where LSO = high watermark).
fn consume_committed(bootstrap: &str, ends: &[i64]) -> Vec<String> {
    let consumer: BaseConsumer = client::config(bootstrap)
        .set("group.id", "txn-crash-unused")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .expect("create consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset(TOPIC, partition, Offset::Beginning)
            .expect("assignment entry");
    }
    consumer.assign(&assignment).expect("assign");
    let mut at_end = BTreeSet::new();
    let mut values = Vec::new();
    let deadline = Instant::now() + CONSUME_DEADLINE;
    while at_end.len() < ends.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "read_committed reached the end of {at_end:?} only; {} values read",
            values.len()
        );
        match consumer.poll(left.min(Duration::from_secs(1))) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Some(Err(error)) => panic!("read_committed consumer: {error}"),
            Some(Ok(message)) => {
                let partition = usize::try_from(message.partition()).expect("partition");
                assert!(message.offset() < ends[partition], "past the end");
                let payload = message.payload().expect("a value");
                values.push(String::from_utf8(payload.to_vec()).expect("utf-8"));
            }
        }
    }
    values
}

/// Every transaction so far: what the producer knew, and for a commit in
/// doubt, what the broker was first seen to have decided.
#[derive(Default)]
struct Ledger {
    outcomes: BTreeMap<u32, Outcome>,
    decided: BTreeMap<u32, bool>,
}

impl Ledger {
    /// Checks the read_committed view `values` against every transaction;
    /// records the decisions of commits in doubt.
    fn check(&mut self, values: &[String]) {
        let mut seen: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
        for value in values {
            let (number, index) = parse(value);
            assert!(index < RECORDS_PER_TXN, "{value}: no such record");
            assert!(
                seen.entry(number).or_default().insert(index),
                "{value} read twice"
            );
        }
        for number in seen.keys() {
            assert!(
                self.outcomes.contains_key(number),
                "transaction {number} was never run, yet it is visible"
            );
        }
        for (&number, &outcome) in &self.outcomes {
            let visible = seen.get(&number).map_or(0, BTreeSet::len);
            let all = RECORDS_PER_TXN as usize;
            let what = format!(
                "transaction {number} ({outcome:?}, commits: {})",
                commits(number)
            );
            match (commits(number), outcome) {
                (false, _) | (true, Outcome::Open) => {
                    assert_eq!(visible, 0, "{what}: records visible")
                }
                (true, Outcome::Ended) => assert_eq!(visible, all, "{what}: records visible"),
                (true, Outcome::InDoubt) => {
                    assert!(
                        visible == 0 || visible == all,
                        "{what}: {visible} of {all} visible"
                    );
                    let committed = visible == all;
                    let first = *self.decided.entry(number).or_insert(committed);
                    assert_eq!(first, committed, "{what}: the decision changed");
                }
            }
        }
    }
}

/// read_committed reads to `ends`, and what it reads agrees with the
/// ledger; returns how many records it read.
fn verify(broker: &BrokerProcess, ledger: &mut Ledger, ends: &[i64]) -> usize {
    let values = consume_committed(&broker.bootstrap(), ends);
    ledger.check(&values);
    values.len()
}

/// `cycles` kills, each followed by a restart and the checks, then one
/// more producer with the same transactional id commits a transaction.
fn kill_cycles(cycles: u32) {
    let seed = seed::run_seed();
    let note = FailureNote::new("transactions_crash", seed);
    let mut rng = Rng::new(seed);
    println!("transactions_crash seed={seed} cycles={cycles}");
    let options = rafka(2).property("auto.create.topics.enable", "false");
    let mut broker = BrokerProcess::start(options);
    client::create_topic(&broker.bootstrap(), TOPIC, PARTITIONS);
    let mut ledger = Ledger::default();
    let mut next = 1;
    for cycle in 0..cycles {
        note.set_cycle(cycle);
        let kill = KillPoint::draw(&mut rng);
        let killed = kill_at(&mut broker, next, kill);
        let ends = await_stable(&broker);
        let settled = killed.restarted.elapsed();
        let outcomes = killed
            .producer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        next += kill.txn();
        ledger.outcomes.extend(outcomes.iter().copied());
        let visible = verify(&broker, &mut ledger, &ends);
        let last = outcomes.last().copied();
        println!(
            "cycle {cycle}: kill {kill:?}, last transaction {last:?}; LSO = HW within {} ms \
             of the restart; {visible} records visible",
            settled.as_millis()
        );
    }
    note.clear_cycle();
    // The id goes on after the kills: init (fencing whatever the last
    // incarnation left), one more committed transaction.
    let number = if commits(next) { next } else { next + 1 };
    let producer = transactional_producer(&broker.bootstrap());
    producer.begin_transaction().expect("begin_transaction");
    for index in 0..RECORDS_PER_TXN {
        send(&producer, number, index);
    }
    end(&producer, number, CALL_TIMEOUT).expect("commit after the kills");
    drop(producer);
    ledger.outcomes.insert(number, Outcome::Ended);
    let ends = await_stable(&broker);
    verify(&broker, &mut ledger, &ends);
    let in_doubt = ledger.decided.len();
    println!(
        "transactions_crash seed={seed}: {cycles} kills, {} transactions, {in_doubt} in doubt \
         (committed: {})",
        ledger.outcomes.len(),
        ledger.decided.values().filter(|&&c| c).count()
    );
}

#[test]
fn a_sigkill_mid_transactions_keeps_commits_whole_and_aborts_invisible() {
    kill_cycles(1);
}

/// Many kills in a row, each at a seeded point:
/// `RAFKA_TXN_CRASH_CYCLES=20 cargo test --release --test transactions_crash --
/// --ignored --nocapture` (`RAFKA_TEST_SEED=<seed>` replays a run's kill
/// points).
#[test]
#[ignore = "long: RAFKA_TXN_CRASH_CYCLES=20 cargo test --release --test transactions_crash -- --ignored --nocapture"]
fn many_sigkills_mid_transactions_keep_commits_whole_and_aborts_invisible() {
    let cycles = match std::env::var(CYCLES_ENV) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{CYCLES_ENV}={text:?} is not a count")),
        Err(_) => CYCLES_DEFAULT,
    };
    kill_cycles(cycles);
}
