//! The pipelined open-loop producer: one connection, a writer (the calling
//! thread) that sends batches as records fall due, and a reader thread that
//! takes the acks in order and records each record's latency from its due
//! time. At most `inflight_max` requests are unanswered; when that many are
//! out the writer blocks, records keep falling due, and their wait counts in
//! their latency.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};

use rafka_proto::error::ErrorCode;

use crate::admin::topic_name;
use crate::client::{Wire, WireReader, WireWriter};
use crate::report::{latency_histogram, record_latency};
use crate::run::RunError;
use crate::workload::{RecordFactory, Schedule};

/// v9: the first flexible version that still names topics (v13 uses ids).
pub const PRODUCE_VERSION: i16 = 9;
pub const PRODUCE_TIMEOUT_MS: i32 = 30_000;

#[derive(Debug, Clone)]
pub struct ProduceConfig {
    pub bootstrap: String,
    pub topic: String,
    pub partitions: Vec<i32>,
    /// 0, 1 or -1 (all).
    pub acks: i16,
    pub batch_records_max: u64,
    pub inflight_max: usize,
    /// Records stop falling due after this long.
    pub duration: Duration,
    /// And after this many records.
    pub records_max: u64,
    /// The header's client id (quotas are per client id); `None`: the
    /// bench's own.
    pub client_id: Option<String>,
}

/// Shared with a concurrent consumer (e2e): how many records were sent and
/// whether the producer has finished.
#[derive(Debug, Default)]
pub struct Progress {
    pub records_sent: AtomicU64,
    pub done: AtomicBool,
}

#[derive(Debug)]
pub struct ProduceOutcome {
    /// Per record, due time to ack (acks=0: due time to written).
    pub latency_us: Histogram<u64>,
    pub records_acked: u64,
    pub batches: u64,
    /// Partitions answered with an error code (their records not acked).
    pub errors: u64,
    /// From the start to the last ack.
    pub elapsed: Duration,
}

/// A request on the wire whose answer the reader has not taken yet.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    correlation_id: i32,
    first: u64,
    count: u64,
}

#[derive(Debug, Default)]
struct WriterTally {
    batches: u64,
    records: u64,
}

/// Runs one open-loop produce phase.
pub fn run(
    config: &ProduceConfig,
    factory: &mut RecordFactory,
    schedule: &Schedule,
    progress: &Progress,
) -> Result<ProduceOutcome, RunError> {
    let wire = match &config.client_id {
        Some(client_id) => Wire::connect_as(&config.bootstrap, client_id)?,
        None => Wire::connect(&config.bootstrap)?,
    };
    let (mut writer, reader) = wire.split();
    let (sender, receiver) = sync_channel::<InFlight>(config.inflight_max.max(1));
    let sender = (config.acks != 0).then_some(sender);
    let mut unacked_latency = latency_histogram();
    let (tally, acked) = std::thread::scope(|scope| {
        let acks = scope.spawn(|| read_acks(reader, receiver, schedule));
        let sent = write_batches(
            config,
            factory,
            schedule,
            &mut writer,
            sender,
            progress,
            &mut unacked_latency,
        );
        progress.done.store(true, Ordering::Release);
        let acked = acks
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (sent, acked)
    });
    let tally = tally?;
    if config.acks == 0 {
        // Nothing answers: "acked" means written, at the end of the writes.
        return Ok(ProduceOutcome {
            latency_us: unacked_latency,
            records_acked: tally.records,
            batches: tally.batches,
            errors: 0,
            elapsed: schedule.start.elapsed(),
        });
    }
    let mut outcome = acked?;
    outcome.batches = tally.batches;
    Ok(outcome)
}

fn write_batches(
    config: &ProduceConfig,
    factory: &mut RecordFactory,
    schedule: &Schedule,
    writer: &mut WireWriter,
    sender: Option<SyncSender<InFlight>>,
    progress: &Progress,
    unacked_latency: &mut Histogram<u64>,
) -> Result<WriterTally, RunError> {
    let mut tally = WriterTally::default();
    let mut partition_at = 0usize;
    loop {
        let elapsed = schedule.start.elapsed();
        if elapsed >= config.duration || tally.records >= config.records_max {
            return Ok(tally);
        }
        let due = schedule.due_count(elapsed).min(config.records_max);
        if due <= tally.records {
            // Pacing, not waiting for a condition: the next record's due time.
            std::thread::sleep(schedule.due_offset(tally.records).saturating_sub(elapsed));
            continue;
        }
        let first = tally.records;
        let count = (due - first).min(config.batch_records_max);
        let partition = config.partitions[partition_at % config.partitions.len()];
        partition_at += 1;
        let batch = factory.batch(schedule, first, count, now_ms())?;
        let request = produce_request(config, partition, batch);
        let correlation_id = writer.send(&request, PRODUCE_VERSION)?;
        tally.records += count;
        tally.batches += 1;
        progress
            .records_sent
            .store(tally.records, Ordering::Release);
        match &sender {
            Some(sender) => {
                let in_flight = InFlight {
                    correlation_id,
                    first,
                    count,
                };
                // The reader is gone only after an error, which it reports.
                if sender.send(in_flight).is_err() {
                    return Ok(tally);
                }
            }
            None => record_latency(
                unacked_latency,
                schedule,
                first,
                count,
                schedule.start.elapsed(),
            ),
        }
    }
}

fn produce_request(config: &ProduceConfig, partition: i32, batch: bytes::Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(config.acks)
        .with_timeout_ms(PRODUCE_TIMEOUT_MS)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(&config.topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])])
}

fn read_acks(
    mut reader: WireReader,
    receiver: Receiver<InFlight>,
    schedule: &Schedule,
) -> Result<ProduceOutcome, RunError> {
    let mut outcome = ProduceOutcome {
        latency_us: latency_histogram(),
        records_acked: 0,
        batches: 0,
        errors: 0,
        elapsed: Duration::ZERO,
    };
    // Ends when the writer is done and every request it sent is answered.
    for in_flight in receiver {
        let response: ProduceResponse =
            reader.receive(ApiKey::Produce, in_flight.correlation_id, PRODUCE_VERSION)?;
        let now = schedule.start.elapsed();
        let failed = response
            .responses
            .iter()
            .flat_map(|topic| &topic.partition_responses)
            .filter(|partition| ErrorCode::from_code(partition.error_code).is_err())
            .count() as u64;
        if failed > 0 {
            outcome.errors += failed;
            continue;
        }
        record_latency(
            &mut outcome.latency_us,
            schedule,
            in_flight.first,
            in_flight.count,
            now,
        );
        outcome.records_acked += in_flight.count;
        outcome.elapsed = now;
    }
    Ok(outcome)
}

/// Wall-clock ms for record timestamps (the broker checks them against its
/// own clock).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}
