//! Crash recovery of the real broker: an acks=all producer streams records
//! while the broker is killed with SIGKILL (triggered by the ack count, not
//! by time); after a restart on the same data dir every acknowledged record
//! is present, byte-exact, at the offset its ack named. Repeated over
//! several rounds so that recovery also runs on recovered logs.

mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use rafka_testkit::BrokerProcess;
use rdkafka::client::ClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use support::client::{self, Record};
use support::rafka;

const TOPIC: &str = "crashy";
const PARTITIONS: i32 = 3;
/// Records handed to librdkafka but not yet reported; keeps requests in
/// flight at the moment of the kill.
const WINDOW: u32 = 2_000;
/// Bound on one round of producing (the kill comes after the ack count).
const ROUND_DEADLINE: Duration = Duration::from_secs(120);

/// One delivery report: the record's index in the round and, when the broker
/// acknowledged it, its (partition, offset).
struct Report {
    index: u32,
    acked: Result<(i32, i64), String>,
}

/// Forwards delivery reports from librdkafka's polling thread.
struct ReportSink(mpsc::Sender<Report>);

impl ClientContext for ReportSink {}

impl ProducerContext for ReportSink {
    type DeliveryOpaque = Box<u32>;

    fn delivery(&self, result: &DeliveryResult<'_>, index: Box<u32>) {
        use rdkafka::message::Message;
        let acked = match result {
            Ok(message) => Ok((message.partition(), message.offset())),
            Err((error, _)) => Err(error.to_string()),
        };
        // The receiver outlives the producer; a send error cannot happen
        // while the test still counts.
        let _ = self.0.send(Report {
            index: *index,
            acked,
        });
    }
}

/// Record `index` of round `round`: the usual generator, with the round in
/// the key so that no key repeats across rounds (timestamps stay near now:
/// the broker refuses CreateTime more than an hour ahead).
fn round_record(round: u32, index: u32, base_ms: i64) -> (i32, Record) {
    let partition = i32::try_from(index % PARTITIONS.unsigned_abs()).expect("partition fits i32");
    let mut record = client::record(partition, index, base_ms);
    record.key = [format!("round-{round}-").into_bytes(), record.key].concat();
    (partition, record)
}

fn send(producer: &ThreadedProducer<ReportSink>, round: u32, index: u32, base_ms: i64) {
    let (partition, record) = round_record(round, index, base_ms);
    let headers = record
        .headers
        .iter()
        .fold(OwnedHeaders::new(), |owned, (key, value)| {
            owned.insert(Header {
                key,
                value: value.as_ref(),
            })
        });
    let mut base = BaseRecord::with_opaque_to(TOPIC, Box::new(index))
        .partition(partition)
        .key(&record.key)
        .timestamp(record.timestamp_ms)
        .headers(headers);
    if let Some(value) = &record.value {
        base = base.payload(value);
    }
    if let Err((error, _)) = producer.send(base) {
        panic!("enqueue record {index} of round {round}: {error}");
    }
}

/// The delivery reports of one round so far.
#[derive(Default)]
struct Tally {
    /// (index, partition, offset) of every acknowledged record.
    acks: Vec<(u32, i32, i64)>,
    reported: u32,
    /// Before the kill every delivery must succeed.
    first_error: Option<String>,
}

impl Tally {
    fn take(&mut self, report: Report) {
        self.reported += 1;
        match report.acked {
            Ok((partition, offset)) => self.acks.push((report.index, partition, offset)),
            Err(error) => {
                self.first_error.get_or_insert(error);
            }
        }
    }
}

/// Streams records until `kill_after_acks` are acknowledged, SIGKILLs the
/// broker right after a send (so requests are in flight), then returns
/// every acknowledgement, including those that arrived before the kill
/// but were reported after it.
fn produce_until_kill(
    broker: &mut BrokerProcess,
    round: u32,
    kill_after_acks: usize,
    base_ms: i64,
) -> Vec<(u32, i32, i64)> {
    let (sender, reports) = mpsc::channel();
    let producer: ThreadedProducer<ReportSink> = client::config(&broker.bootstrap())
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", "30000")
        .create_with_context(ReportSink(sender))
        .expect("create producer");
    let mut tally = Tally::default();
    let mut sent = 0_u32;
    let deadline = Instant::now() + ROUND_DEADLINE;
    loop {
        while let Ok(report) = reports.try_recv() {
            tally.take(report);
        }
        if let Some(error) = &tally.first_error {
            panic!("round {round}: delivery failed before the kill: {error}");
        }
        if sent - tally.reported < WINDOW {
            send(&producer, round, sent, base_ms);
            sent += 1;
            if tally.acks.len() >= kill_after_acks {
                broker.kill9();
                break;
            }
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match reports.recv_timeout(left) {
            Ok(report) => tally.take(report),
            Err(error) => panic!(
                "round {round}: {} acks of {sent} sent, then no report: {error}",
                tally.acks.len()
            ),
        }
    }
    // Dropping the producer purges what is queued or in flight and delivers
    // the last reports; then the channel closes.
    drop(producer);
    for report in reports.iter() {
        tally.take(report);
    }
    tally.acks
}

/// Restarts and checks every acknowledged record of every round so far.
fn assert_acked_present(broker: &BrokerProcess, acked: &[(u32, u32, i32, i64)], base_ms: i64) {
    let mut counts = vec![0_usize; PARTITIONS as usize];
    for &(_, _, partition, offset) in acked {
        let partition = usize::try_from(partition).expect("partition >= 0");
        let next = usize::try_from(offset + 1).expect("offset >= 0");
        counts[partition] = counts[partition].max(next);
    }
    let consumed = client::consume(&broker.bootstrap(), TOPIC, &counts);
    for &(round, index, partition, offset) in acked {
        let (want_partition, want) = round_record(round, index, base_ms);
        assert_eq!(
            partition, want_partition,
            "record {index} of round {round} partition"
        );
        let slot = usize::try_from(offset).expect("offset >= 0");
        let got = &consumed[usize::try_from(partition).expect("partition >= 0")][slot];
        assert_eq!(
            got.offset, offset,
            "{TOPIC}/{partition}: offsets contiguous from 0"
        );
        assert_eq!(
            got.record, want,
            "{TOPIC}/{partition} offset {offset}: acknowledged record"
        );
    }
}

fn crash_rounds(rounds: u32, kill_after_acks: usize) {
    let mut broker = BrokerProcess::start(rafka(2));
    client::create_topic(&broker.bootstrap(), TOPIC, PARTITIONS);
    let base_ms = client::now_ms();
    let mut acked: Vec<(u32, u32, i32, i64)> = Vec::new();
    for round in 0..rounds {
        let acks = produce_until_kill(&mut broker, round, kill_after_acks, base_ms);
        assert!(
            acks.len() >= kill_after_acks,
            "round {round}: {} acks",
            acks.len()
        );
        acked.extend(acks.into_iter().map(|(index, p, o)| (round, index, p, o)));
        broker.restart();
        assert_acked_present(&broker, &acked, base_ms);
    }
    let mut offsets: Vec<(i32, i64)> = acked.iter().map(|&(_, _, p, o)| (p, o)).collect();
    offsets.sort_unstable();
    offsets.dedup();
    assert_eq!(offsets.len(), acked.len(), "two acks named the same offset");
}

#[test]
fn sigkill_mid_stream_loses_no_acknowledged_record() {
    crash_rounds(2, 3_000);
}

/// About 20 s in a debug build.
#[test]
fn ten_sigkills_lose_no_acknowledged_record() {
    crash_rounds(10, 20_000);
}
