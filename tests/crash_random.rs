//! The long randomized crash test (`#[ignore]`d; README, "Tests"): the
//! broker binary is killed with SIGKILL at random points under concurrent
//! load, over many cycles, and after every restart everything it
//! acknowledged must be there.
//!
//! Each cycle runs three clients at once against the live broker:
//! - an idempotent acks=all librdkafka producer streaming records to
//!   `crash-random` (3 partitions);
//! - a consumer group member (raw wire client) that joins its own group
//!   `crash-group-<cycle>`, syncs and then commits ever larger offsets;
//! - an admin (raw wire client) that creates and deletes topics.
//!
//! The kill comes when one of them, drawn by the seed, reaches an
//! acknowledgement count also drawn by the seed (never by time). After the
//! restart on the same data dir:
//! - records: every partition is read from 0 to its end; every record
//!   acknowledged, and every record seen after an earlier restart, is at
//!   the same offset with the same bytes, offsets are contiguous, every
//!   record is one the producer sent and none appears twice;
//! - commits: OffsetFetch of every group of every cycle returns at least
//!   the last acknowledged commit and at most the last one attempted;
//! - topics: an acknowledged create exists with its partition count, an
//!   acknowledged delete stays gone; a create or delete whose answer was
//!   lost may have happened or not, and what is seen is then kept.
//!
//! `RAFKA_CRASH_CYCLES` sets the cycle count (default 20); the seed
//! (printed, and again on failure) comes from `RAFKA_TEST_SEED` or the
//! clock. A seed replays the plan (kill points, topic operations), not the
//! threads' interleaving.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    MetadataRequest, MetadataResponse,
};
use rafka_testkit::proto::{creatable, topic_name};
use rafka_testkit::wire_group::{check, JoinSpec, Offsets};
use rafka_testkit::{BrokerProcess, Rng, WireClient, WireError};
use rdkafka::client::ClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use support::client::{self, Record};
use support::rafka;
use support::seed::{self, FailureNote};

const TOPIC: &str = "crash-random";
const PARTITIONS: i32 = 3;
const CYCLES_ENV: &str = "RAFKA_CRASH_CYCLES";
const CYCLES_DEFAULT: u32 = 20;
/// Records handed to librdkafka but not yet reported: keeps produce
/// requests in flight at the moment of the kill.
const WINDOW: u32 = 2_000;
/// The producer stops sending after this many records in one cycle (the
/// kill may wait for another client's count).
const RECORDS_PER_CYCLE_MAX: u32 = 30_000;
/// Bound on one cycle's load: the kill condition must be met by then.
const CYCLE_DEADLINE: Duration = Duration::from_secs(120);
/// The admin deletes rather than creates once this many topics live.
const LIVE_TOPICS_MAX: usize = 12;
const TIMEOUT_MS: i32 = 30_000;

/// Which client's acknowledgement count triggers the kill, and at what.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    Records(usize),
    Commits(u64),
    TopicOps(usize),
}

/// One cycle's draw from the seed.
#[derive(Clone, Copy, Debug)]
struct CyclePlan {
    kill_at: KillAt,
    /// Topic creates/deletes the admin sends before it idles.
    topic_ops: usize,
}

impl CyclePlan {
    fn draw(rng: &mut Rng) -> CyclePlan {
        let topic_ops = usize::try_from(rng.in_range(1..=6)).expect("small");
        let kill_at = match rng.below(3) {
            0 => KillAt::Records(usize::try_from(rng.in_range(100..=15_000)).expect("small")),
            1 => KillAt::Commits(rng.in_range(1..=300)),
            _ => KillAt::TopicOps(usize::try_from(rng.in_range(1..=6)).expect("small")),
        };
        let kill_at = match kill_at {
            KillAt::TopicOps(count) => KillAt::TopicOps(count.min(topic_ops)),
            other => other,
        };
        CyclePlan { kill_at, topic_ops }
    }
}

/// A produced record: the cycle and the record's number in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RecordId {
    cycle: u32,
    index: u32,
}

/// Record `id` and its partition: the usual generator, with the cycle in
/// the key so that no key repeats across cycles.
fn cycle_record(id: RecordId, base_ms: i64) -> (i32, Record) {
    let partition = i32::try_from(id.index % PARTITIONS.unsigned_abs()).expect("fits");
    let mut record = client::record(partition, id.index, base_ms);
    record.key = [format!("c{}-", id.cycle).into_bytes(), record.key].concat();
    (partition, record)
}

/// The id in a key `c<cycle>-key-<partition>-<index>`.
fn parse_key(key: &[u8]) -> Option<RecordId> {
    let text = std::str::from_utf8(key).ok()?;
    let (cycle, rest) = text.strip_prefix('c')?.split_once("-key-")?;
    let (_, index) = rest.split_once('-')?;
    Some(RecordId {
        cycle: cycle.parse().ok()?,
        index: index.parse().ok()?,
    })
}

/// Commit number `number` of a group: offset `number * 3 + partition`,
/// ever larger, and telling which commit a fetched offset came from.
fn commit_offset(number: u64, partition: i32) -> i64 {
    i64::try_from(number).expect("fits") * i64::from(PARTITIONS) + i64::from(partition)
}

fn group_of(cycle: u32) -> String {
    format!("crash-group-{cycle}")
}

/// What is known of one group's commits, as commit numbers.
#[derive(Clone, Debug, Default)]
struct GroupCommits {
    /// Per partition, the last commit acknowledged (or seen after a restart).
    acked: [Option<u64>; PARTITIONS as usize],
    /// The last commit sent, answered or not.
    attempted: Option<u64>,
}

/// What is known of one topic the admin touched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TopicFate {
    Exists {
        partitions: i32,
    },
    Gone,
    /// Sent, answer lost: may exist or not.
    MaybeCreated {
        partitions: i32,
    },
    /// Sent, answer lost: may be gone or not.
    MaybeDeleted {
        partitions: i32,
    },
}

/// Everything that must survive the next restart.
#[derive(Default)]
struct Ledger {
    /// Per partition, offset -> record: the whole log as last verified,
    /// plus the records acknowledged since.
    log: Vec<BTreeMap<i64, RecordId>>,
    groups: BTreeMap<String, GroupCommits>,
    topics: BTreeMap<String, TopicFate>,
}

/// What the workers tell the cycle's driver.
enum Event {
    Delivery {
        index: u32,
        acked: Result<(i32, i64), String>,
    },
    Committed,
    TopicOp,
    /// A client failed while the broker was up: a finding.
    Failed(String),
}

/// Forwards delivery reports from librdkafka's polling thread.
struct ReportSink(mpsc::Sender<Event>);

impl ClientContext for ReportSink {}

impl ProducerContext for ReportSink {
    type DeliveryOpaque = Box<u32>;

    fn delivery(&self, result: &DeliveryResult<'_>, index: Box<u32>) {
        use rdkafka::message::Message;
        let acked = match result {
            Ok(message) => Ok((message.partition(), message.offset())),
            Err((error, _)) => Err(error.to_string()),
        };
        // The driver drains the channel until every sender is gone.
        let _ = self.0.send(Event::Delivery {
            index: *index,
            acked,
        });
    }
}

/// Counts of one cycle so far, and the acknowledged records.
#[derive(Default)]
struct Tally {
    acks: Vec<(u32, i32, i64)>,
    reported: u32,
    commits: u64,
    topic_ops: usize,
}

impl Tally {
    /// Takes one event; a failure while the broker is up panics.
    fn take(&mut self, event: Event, killed: bool) {
        match event {
            Event::Delivery { index, acked } => {
                self.reported += 1;
                match acked {
                    Ok((partition, offset)) => self.acks.push((index, partition, offset)),
                    Err(error) if !killed => panic!("delivery of record {index} failed: {error}"),
                    Err(_) => {}
                }
            }
            Event::Committed => self.commits += 1,
            Event::TopicOp => self.topic_ops += 1,
            Event::Failed(error) => panic!("{error}"),
        }
    }

    fn reached(&self, kill_at: KillAt) -> bool {
        match kill_at {
            KillAt::Records(count) => self.acks.len() >= count,
            KillAt::Commits(count) => self.commits >= count,
            KillAt::TopicOps(count) => self.topic_ops >= count,
        }
    }
}

/// A lost connection after the kill is expected; anything else is not.
fn lost_to_kill(error: &WireError, killed: &AtomicBool) -> bool {
    matches!(error, WireError::Io(_) | WireError::Closed) && killed.load(Ordering::SeqCst)
}

/// The group member: join, sync (it leads and takes every partition),
/// then commit until the broker dies.
fn committer(
    addr: SocketAddr,
    group: String,
    killed: Arc<AtomicBool>,
    events: mpsc::Sender<Event>,
) -> GroupCommits {
    let mut commits = GroupCommits::default();
    if let Err(error) = commit_until_error(addr, &group, &mut commits, &events) {
        if !lost_to_kill(&error, &killed) {
            let _ = events.send(Event::Failed(format!("committer of {group}: {error}")));
        }
    }
    commits
}

fn commit_until_error(
    addr: SocketAddr,
    group: &str,
    commits: &mut GroupCommits,
    events: &mpsc::Sender<Event>,
) -> Result<(), WireError> {
    let mut client = WireClient::connect(addr, "crash-committer")?;
    check(ApiKey::FindCoordinator, client.find_coordinator(group)?)?;
    let mut spec = JoinSpec::consumer(group, &[TOPIC]);
    let joined = client.join(&mut spec)?;
    let everything = BTreeMap::from([(TOPIC.to_owned(), (0..PARTITIONS).collect::<Vec<_>>())]);
    let assignments = BTreeMap::from([(joined.member_id.clone(), everything)]);
    client.sync(&joined, group, &assignments)?;
    for number in 0_u64.. {
        commits.attempted = Some(number);
        let offsets: Offsets = BTreeMap::from([(
            TOPIC.to_owned(),
            (0..PARTITIONS)
                .map(|partition| (partition, commit_offset(number, partition)))
                .collect(),
        )]);
        client.commit(group, joined.generation_id, &joined.member_id, &offsets)?;
        commits.acked = [Some(number); PARTITIONS as usize];
        let _ = events.send(Event::Committed);
        if number % 16 == 15 {
            let beat = client.heartbeat(group, joined.generation_id, &joined.member_id)?;
            check(ApiKey::Heartbeat, beat.error_code)?;
        }
    }
    Ok(())
}

/// The admin: `ops` creates and deletes, then it idles until the cycle
/// ends (`stop` closes). Returns the topics' fates, updated.
fn admin(
    addr: SocketAddr,
    cycle: u32,
    mut topics: BTreeMap<String, TopicFate>,
    ops: usize,
    mut rng: Rng,
    (killed, stop, events): (Arc<AtomicBool>, mpsc::Receiver<()>, mpsc::Sender<Event>),
) -> BTreeMap<String, TopicFate> {
    let result = WireClient::connect(addr, "crash-admin").and_then(|mut client| {
        for op in 0..ops {
            topic_op(&mut client, cycle, op, &mut topics, &mut rng)?;
            let _ = events.send(Event::TopicOp);
        }
        Ok(())
    });
    match result {
        Err(error) if !lost_to_kill(&error, &killed) => {
            let _ = events.send(Event::Failed(format!("admin in cycle {cycle}: {error}")));
        }
        _ => {
            // Idle until the cycle ends: the sender is dropped at the kill.
            let _ = stop.recv();
        }
    }
    topics
}

/// One create (of a new name) or delete (of a live topic), recorded as
/// uncertain before it is sent and certain once it is answered.
fn topic_op(
    client: &mut WireClient,
    cycle: u32,
    op: usize,
    topics: &mut BTreeMap<String, TopicFate>,
    rng: &mut Rng,
) -> Result<(), WireError> {
    let live: Vec<(String, i32)> = topics
        .iter()
        .filter_map(|(name, fate)| match fate {
            TopicFate::Exists { partitions } => Some((name.clone(), *partitions)),
            _ => None,
        })
        .collect();
    let delete = !live.is_empty() && (live.len() >= LIVE_TOPICS_MAX || rng.coin());
    if delete {
        let (name, partitions) = rng.choose(&live).clone();
        topics.insert(name.clone(), TopicFate::MaybeDeleted { partitions });
        let request = DeleteTopicsRequest::default()
            .with_topic_names(vec![topic_name(&name)])
            .with_timeout_ms(TIMEOUT_MS);
        let response: DeleteTopicsResponse = client.call(4, &request)?;
        let code = response.responses.first().map(|r| r.error_code);
        check(
            ApiKey::DeleteTopics,
            code.ok_or(missing(ApiKey::DeleteTopics))?,
        )?;
        topics.insert(name, TopicFate::Gone);
    } else {
        let name = format!("crash-t-{cycle}-{op}");
        let partitions = i32::try_from(rng.in_range(1..=3)).expect("small");
        topics.insert(name.clone(), TopicFate::MaybeCreated { partitions });
        let request = CreateTopicsRequest::default()
            .with_topics(vec![creatable(&name, partitions, &[])])
            .with_timeout_ms(TIMEOUT_MS);
        let response: CreateTopicsResponse = client.call(7, &request)?;
        let code = response.topics.first().map(|t| t.error_code);
        check(
            ApiKey::CreateTopics,
            code.ok_or(missing(ApiKey::CreateTopics))?,
        )?;
        topics.insert(name, TopicFate::Exists { partitions });
    }
    Ok(())
}

fn missing(api: ApiKey) -> WireError {
    WireError::MissingEntry { api }
}

fn send(producer: &ThreadedProducer<ReportSink>, id: RecordId, base_ms: i64) {
    let (partition, record) = cycle_record(id, base_ms);
    let headers = record
        .headers
        .iter()
        .fold(OwnedHeaders::new(), |owned, (key, value)| {
            owned.insert(Header {
                key,
                value: value.as_ref(),
            })
        });
    let mut base = BaseRecord::with_opaque_to(TOPIC, Box::new(id.index))
        .partition(partition)
        .key(&record.key)
        .timestamp(record.timestamp_ms)
        .headers(headers);
    if let Some(value) = &record.value {
        base = base.payload(value);
    }
    if let Err((error, _)) = producer.send(base) {
        panic!("enqueue record {id:?}: {error}");
    }
}

/// What one cycle's load left to check.
struct CycleOutcome {
    acks: Vec<(u32, i32, i64)>,
    group: GroupCommits,
    topics: BTreeMap<String, TopicFate>,
    sent: u32,
    commits: u64,
    topic_ops: usize,
}

/// The producer's side of a cycle: it sends (a window in flight) and
/// takes every client's events until a condition on the counts holds.
struct Load {
    producer: ThreadedProducer<ReportSink>,
    events: mpsc::Receiver<Event>,
    tally: Tally,
    sent: u32,
    cycle: u32,
    base_ms: i64,
    deadline: Instant,
}

impl Load {
    fn drive_until(&mut self, done: impl Fn(&Tally) -> bool, what: &str) {
        while !done(&self.tally) {
            if self.sent < RECORDS_PER_CYCLE_MAX && self.sent - self.tally.reported < WINDOW {
                let id = RecordId {
                    cycle: self.cycle,
                    index: self.sent,
                };
                send(&self.producer, id, self.base_ms);
                self.sent += 1;
                while let Ok(event) = self.events.try_recv() {
                    self.tally.take(event, false);
                }
                continue;
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => self.tally.take(event, false),
                Err(error) => panic!(
                    "cycle {}: {what} not reached within {CYCLE_DEADLINE:?} \
                     ({} records acked, {} commits, {} topic ops): {error}",
                    self.cycle,
                    self.tally.acks.len(),
                    self.tally.commits,
                    self.tally.topic_ops
                ),
            }
        }
    }
}

fn idempotent_producer(
    bootstrap: &str,
    events: mpsc::Sender<Event>,
) -> ThreadedProducer<ReportSink> {
    client::config(bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        // Small batches: acknowledgements come in small steps, so the kill
        // lands between them with several requests in flight.
        .set("batch.num.messages", "200")
        .set("message.timeout.ms", "30000")
        .create_with_context(ReportSink(events))
        .expect("create producer")
}

/// Runs the three clients until the plan's kill point, SIGKILLs the broker
/// and collects every acknowledgement, including those reported after it.
fn run_cycle(
    broker: &mut BrokerProcess,
    cycle: u32,
    plan: CyclePlan,
    ledger: &Ledger,
    mut rng: Rng,
    base_ms: i64,
) -> CycleOutcome {
    let (events_tx, events) = mpsc::channel();
    let mut load = Load {
        producer: idempotent_producer(&broker.bootstrap(), events_tx.clone()),
        events,
        tally: Tally::default(),
        sent: 0,
        cycle,
        base_ms,
        deadline: Instant::now() + CYCLE_DEADLINE,
    };
    // The producer first: once it has an acknowledgement (producer id and
    // metadata in place), records flow whichever client's count the kill
    // waits for.
    load.drive_until(
        |tally| !tally.acks.is_empty(),
        "a first record acknowledged",
    );
    let killed = Arc::new(AtomicBool::new(false));
    let addr = broker.addr;
    let committer = {
        let (group, killed, events) = (group_of(cycle), Arc::clone(&killed), events_tx.clone());
        thread::spawn(move || committer(addr, group, killed, events))
    };
    let (stop_tx, stop) = mpsc::channel::<()>();
    let admin = {
        let topics = ledger.topics.clone();
        let context = (Arc::clone(&killed), stop, events_tx);
        let (ops, rng) = (plan.topic_ops, rng.fork());
        thread::spawn(move || admin(addr, cycle, topics, ops, rng, context))
    };
    load.drive_until(
        |tally| tally.reached(plan.kill_at),
        &format!("{:?}", plan.kill_at),
    );
    killed.store(true, Ordering::SeqCst);
    broker.kill9();
    drop(stop_tx);
    let Load {
        producer,
        events,
        mut tally,
        sent,
        ..
    } = load;
    // Dropping the producer purges what is queued or in flight and
    // delivers the last reports.
    drop(producer);
    let group = committer.join().expect("committer thread");
    let topics = admin.join().expect("admin thread");
    for event in events.try_iter() {
        tally.take(event, true);
    }
    CycleOutcome {
        acks: tally.acks,
        group,
        topics,
        sent,
        commits: tally.commits,
        topic_ops: tally.topic_ops,
    }
}

/// What a verification found, for the cycle's line.
struct Verified {
    records: usize,
    unacked_kept: usize,
    live_topics: usize,
}

/// Reads every partition from 0 to its end and checks it against the
/// ledger; the ledger then holds the whole log.
fn verify_records(
    broker: &BrokerProcess,
    ledger: &mut Ledger,
    base_ms: i64,
    acked: usize,
) -> usize {
    let bootstrap = broker.bootstrap();
    let counts: Vec<usize> = (0..PARTITIONS)
        .map(|partition| {
            let (low, high) = client::watermarks(&bootstrap, TOPIC, partition);
            assert_eq!(low, 0, "{TOPIC}/{partition}: log start");
            usize::try_from(high).expect("high watermark >= 0")
        })
        .collect();
    let consumed = client::consume(&bootstrap, TOPIC, &counts);
    let mut seen: BTreeMap<RecordId, (i32, i64)> = BTreeMap::new();
    for (partition, list) in (0..PARTITIONS).zip(&consumed) {
        let mut log = BTreeMap::new();
        for (slot, got) in list.iter().enumerate() {
            let offset = i64::try_from(slot).expect("fits");
            let at = format!("{TOPIC}/{partition} offset {offset}");
            assert_eq!(got.offset, offset, "{at}: offsets contiguous from 0");
            let id = parse_key(&got.record.key)
                .unwrap_or_else(|| panic!("{at}: a record nobody sent: {:?}", got.record));
            assert_eq!(
                (partition, &got.record),
                (cycle_record(id, base_ms).0, &cycle_record(id, base_ms).1),
                "{at}: record {id:?}"
            );
            if let Some(first) = seen.insert(id, (partition, offset)) {
                panic!("{at}: record {id:?} twice, first at {first:?}");
            }
            log.insert(offset, id);
        }
        let index = usize::try_from(partition).expect("partition >= 0");
        for (&offset, id) in &ledger.log[index] {
            assert_eq!(
                log.get(&offset),
                Some(id),
                "{TOPIC}/{partition} offset {offset}: acknowledged (or already seen) record lost \
                 or changed; log ends at {}",
                list.len()
            );
        }
        ledger.log[index] = log;
    }
    seen.len() - acked.min(seen.len())
}

/// OffsetFetch of every group: at least what was acknowledged, at most
/// what was attempted; what is seen becomes the new floor.
fn verify_commits(addr: SocketAddr, ledger: &mut Ledger) {
    let mut client = WireClient::connect(addr, "crash-verify").expect("connect");
    let everything = BTreeMap::from([(TOPIC.to_owned(), (0..PARTITIONS).collect::<Vec<_>>())]);
    for (group, commits) in &mut ledger.groups {
        let fetched = client
            .committed(group, Some(&everything))
            .unwrap_or_else(|e| panic!("OffsetFetch {group}: {e}"));
        for partition in 0..PARTITIONS {
            let index = usize::try_from(partition).expect("partition >= 0");
            let offset = fetched
                .get(TOPIC)
                .and_then(|partitions| partitions.get(&partition))
                .copied()
                .unwrap_or_else(|| panic!("{group}: no entry for {TOPIC}/{partition}"));
            let acked = commits.acked[index];
            let seen = match offset {
                -1 => None,
                offset => {
                    let number = (offset - i64::from(partition)) / i64::from(PARTITIONS);
                    let number = u64::try_from(number).ok();
                    assert_eq!(
                        number.map(|n| commit_offset(n, partition)),
                        Some(offset),
                        "{group} {TOPIC}/{partition}: {offset} is no commit of the member"
                    );
                    number
                }
            };
            assert!(
                seen >= acked && seen <= commits.attempted,
                "{group} {TOPIC}/{partition}: OffsetFetch gives commit {seen:?}; \
                 acknowledged {acked:?}, last attempted {:?}",
                commits.attempted
            );
            commits.acked[index] = seen;
        }
    }
}

/// Metadata of all topics against the fates; uncertain fates become what
/// is seen. Returns how many of the admin's topics live.
fn verify_topics(addr: SocketAddr, ledger: &mut Ledger) -> usize {
    let mut client = WireClient::connect(addr, "crash-verify").expect("connect");
    let metadata: MetadataResponse = client
        .call(12, &MetadataRequest::default().with_topics(None))
        .expect("Metadata of all topics");
    let mut present = BTreeMap::new();
    for topic in metadata.topics {
        let name = topic
            .name
            .map(|n| n.0.as_str().to_owned())
            .unwrap_or_default();
        assert_eq!(topic.error_code, 0, "Metadata of {name}");
        present.insert(name, i32::try_from(topic.partitions.len()).expect("fits"));
    }
    for (name, fate) in &mut ledger.topics {
        let now = present.remove(name.as_str());
        *fate = match (*fate, now) {
            (TopicFate::Exists { partitions }, Some(seen)) if seen == partitions => *fate,
            (TopicFate::Gone, None) => TopicFate::Gone,
            (TopicFate::MaybeCreated { partitions }, Some(seen))
            | (TopicFate::MaybeDeleted { partitions }, Some(seen))
                if seen == partitions =>
            {
                TopicFate::Exists { partitions }
            }
            (TopicFate::MaybeCreated { .. } | TopicFate::MaybeDeleted { .. }, None) => {
                TopicFate::Gone
            }
            (fate, seen) => {
                panic!("topic {name}: expected {fate:?}, Metadata shows {seen:?} partitions")
            }
        };
    }
    present.remove(TOPIC);
    present.remove("__consumer_offsets");
    assert!(present.is_empty(), "topics nobody created: {present:?}");
    ledger
        .topics
        .values()
        .filter(|fate| matches!(fate, TopicFate::Exists { .. }))
        .count()
}

fn verify(broker: &BrokerProcess, ledger: &mut Ledger, base_ms: i64, acked: usize) -> Verified {
    let unacked_kept = verify_records(broker, ledger, base_ms, acked);
    verify_commits(broker.addr, ledger);
    let live_topics = verify_topics(broker.addr, ledger);
    Verified {
        records: ledger.log.iter().map(BTreeMap::len).sum(),
        unacked_kept,
        live_topics,
    }
}

fn cycles() -> u32 {
    match std::env::var(CYCLES_ENV) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{CYCLES_ENV}={text:?} is not a count")),
        Err(_) => CYCLES_DEFAULT,
    }
}

#[test]
#[ignore = "long: RAFKA_CRASH_CYCLES=20 cargo test --release --test crash_random -- --ignored --nocapture"]
fn random_sigkills_under_load_lose_nothing_acknowledged() {
    let seed = seed::run_seed();
    let note = FailureNote::new("crash_random", seed);
    let mut rng = Rng::new(seed);
    let cycles = cycles();
    println!("crash_random seed={seed} cycles={cycles}");
    let options = rafka(2)
        .property("group.initial.rebalance.delay.ms", "0")
        .property("auto.create.topics.enable", "false")
        .property("log.segment.bytes", "1048576");
    let mut broker = BrokerProcess::start(options);
    client::create_topic(&broker.bootstrap(), TOPIC, PARTITIONS);
    let base_ms = client::now_ms();
    let mut ledger = Ledger {
        log: vec![BTreeMap::new(); PARTITIONS as usize],
        ..Ledger::default()
    };
    let started = Instant::now();
    let mut acked_total = 0;
    for cycle in 0..cycles {
        note.set_cycle(cycle);
        let plan = CyclePlan::draw(&mut rng);
        let outcome = run_cycle(&mut broker, cycle, plan, &ledger, rng.fork(), base_ms);
        for &(index, partition, offset) in &outcome.acks {
            let id = RecordId { cycle, index };
            assert_eq!(
                partition,
                cycle_record(id, base_ms).0,
                "record {id:?} partition"
            );
            let log = &mut ledger.log[usize::try_from(partition).expect("partition >= 0")];
            if let Some(other) = log.insert(offset, id) {
                panic!("{TOPIC}/{partition} offset {offset} acknowledged for {id:?} and {other:?}");
            }
        }
        acked_total += outcome.acks.len();
        ledger.groups.insert(group_of(cycle), outcome.group);
        ledger.topics = outcome.topics;
        let restart = Instant::now();
        broker.restart();
        let restart_ms = restart.elapsed().as_millis();
        let verified = verify(&broker, &mut ledger, base_ms, acked_total);
        println!(
            "cycle {cycle}: kill at {:?}: sent {}, acked {} records, {} commits, {} topic ops; \
             restart {restart_ms} ms ({} partitions); log {} records ({} unacknowledged kept), \
             {} groups, {} live topics",
            plan.kill_at,
            outcome.sent,
            outcome.acks.len(),
            outcome.commits,
            outcome.topic_ops,
            broker.startup.recovered_partitions,
            verified.records,
            verified.unacked_kept,
            ledger.groups.len(),
            verified.live_topics,
        );
    }
    // A clean stop and start at the end: the checkpoint path, not recovery.
    note.clear_cycle();
    broker.restart();
    let verified = verify(&broker, &mut ledger, base_ms, acked_total);
    println!(
        "crash_random seed={seed}: {cycles} kills, {acked_total} acknowledged records \
         ({} in the log), all present after a clean restart, in {} s",
        verified.records,
        started.elapsed().as_secs()
    );
}
