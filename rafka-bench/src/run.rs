//! `produce`, `consume` and `e2e`: each drives the broker through the bench
//! client and returns CSV rows.
//!
//! - produce: one open-loop phase per target rate; latency = due time to ack.
//! - consume: preloads `preload_records` as fast as the pipeline allows,
//!   then fetches every partition from offset 0 to its end as fast as
//!   possible. The partitions are split into `fetch_inflight_max` groups,
//!   each with one fetch in flight (its next offsets depend on the answer),
//!   so that many fetches are pipelined on the connection.
//!   Its row's target is `max` and its attainment is the share of the
//!   records available (the log end offsets when reading starts) that was
//!   read within the duration; latency = fetch round trip.
//! - e2e: a producer at each rate and a consumer on its own connection
//!   long-polling from the log end; latency = time the record's fetch came
//!   back minus the due time stamped in its value. Each rate gives two
//!   rows: `e2e` (the consumer's latency) and `e2e-produce` (the same
//!   phase's producer latency, due time to ack), so e2e is judged against
//!   the produce latency of the same moment.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rafka_proto::record::{BatchError, BuildError, Compression, RecordError};

use crate::admin;
use crate::client::{ClientError, Wire};
use crate::fetch::{fetch_once, receive_fetch, send_fetch, Cursor, FetchLimits};
use crate::produce::{self, ProduceConfig, Progress};
use crate::report::{latency_histogram, Row, RunLabel};
use crate::workload::{Pace, RecordFactory, Schedule};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("building a batch: {0}")]
    Build(#[from] BuildError),
    #[error("fetched batch: {0}")]
    Batch(#[from] BatchError),
    #[error("fetched records: {0}")]
    Record(#[from] RecordError),
    #[error("the topic has no partitions")]
    NoPartitions,
}

/// Everything a run needs, from the command line.
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub bootstrap: String,
    pub topic: String,
    pub partitions: i32,
    pub record_bytes: usize,
    pub batch_records: u64,
    pub rates: Vec<f64>,
    pub duration: Duration,
    pub acks: i16,
    pub compression: Compression,
    pub inflight_max: usize,
    pub preload_records: u64,
    pub fetch_partition_bytes_max: i32,
    /// consume: fetches in flight on the connection (partition groups).
    pub fetch_inflight_max: usize,
}

impl RunPlan {
    fn label(&self, mode: &'static str, target: Option<f64>) -> RunLabel {
        RunLabel {
            mode,
            target_msgs_per_sec: target,
            record_bytes: self.record_bytes,
            batch_records: self.batch_records,
            acks: match self.acks {
                -1 => "all".to_owned(),
                acks => acks.to_string(),
            },
            compression: format!("{:?}", self.compression).to_lowercase(),
        }
    }

    fn produce_config(&self, partitions: Vec<i32>, duration: Duration) -> ProduceConfig {
        ProduceConfig {
            bootstrap: self.bootstrap.clone(),
            topic: self.topic.clone(),
            partitions,
            acks: self.acks,
            batch_records_max: self.batch_records,
            inflight_max: self.inflight_max,
            duration,
            records_max: u64::MAX,
            client_id: None,
        }
    }

    fn fetch_limits(&self, max_wait_ms: i32) -> FetchLimits {
        FetchLimits {
            partition_bytes_max: self.fetch_partition_bytes_max,
            response_bytes_max: self
                .fetch_partition_bytes_max
                .saturating_mul(self.partitions.max(1)),
            max_wait_ms,
        }
    }
}

fn setup(plan: &RunPlan) -> Result<(Wire, Vec<i32>), RunError> {
    let mut wire = Wire::connect(&plan.bootstrap)?;
    let partitions = admin::ensure_topic(&mut wire, &plan.topic, plan.partitions)?;
    if partitions.is_empty() {
        return Err(RunError::NoPartitions);
    }
    Ok((wire, partitions))
}

pub fn produce_rows(plan: &RunPlan) -> Result<Vec<Row>, RunError> {
    let (_, partitions) = setup(plan)?;
    let mut factory = RecordFactory::new(plan.record_bytes, plan.compression);
    let mut rows = Vec::new();
    for &rate in &plan.rates {
        let config = plan.produce_config(partitions.clone(), plan.duration);
        let schedule = Schedule {
            start: Instant::now(),
            pace: Pace::Rate(rate),
        };
        let outcome = produce::run(&config, &mut factory, &schedule, &Progress::default())?;
        let label = plan.label("produce", Some(rate));
        let seconds = outcome.elapsed.as_secs_f64();
        let mut row = Row::new(label, outcome.records_acked, seconds, &outcome.latency_us);
        row.batches = outcome.batches;
        row.errors = outcome.errors;
        eprintln!("{}", row.csv_line());
        rows.push(row);
    }
    Ok(rows)
}

pub fn consume_rows(plan: &RunPlan) -> Result<Vec<Row>, RunError> {
    let (mut wire, partitions) = setup(plan)?;
    let mut factory = RecordFactory::new(plan.record_bytes, plan.compression);
    let mut config = plan.produce_config(partitions.clone(), Duration::from_secs(3600));
    config.records_max = plan.preload_records;
    let preload = Schedule {
        start: Instant::now(),
        pace: Pace::Max,
    };
    let loaded = produce::run(&config, &mut factory, &preload, &Progress::default())?;
    eprintln!(
        "consume: preloaded {} records in {:.2} s",
        loaded.records_acked,
        loaded.elapsed.as_secs_f64()
    );
    let ends = admin::end_offsets(&mut wire, &plan.topic, &partitions)?;
    let available: i64 = ends.iter().sum();
    let mut groups = FetchGroup::split(&partitions, &ends, plan.fetch_inflight_max);
    let read = read_all(plan, &mut wire, &mut groups)?;
    let mut row = Row::new(
        plan.label("consume", None),
        read.records,
        read.seconds,
        &read.latency_us,
    );
    row.attainment_pct = 100.0 * read.records as f64 / (available.max(1)) as f64;
    row.batches = read.fetches;
    row.errors = read.errors;
    eprintln!("{}", row.csv_line());
    Ok(vec![row])
}

/// Partitions fetched together, with at most one fetch in flight; several
/// groups keep several fetches in flight on one connection.
#[derive(Debug)]
struct FetchGroup {
    cursors: Vec<Cursor>,
    /// Per cursor: the log end to read up to.
    ends: Vec<i64>,
}

impl FetchGroup {
    fn split(partitions: &[i32], ends: &[i64], count: usize) -> Vec<FetchGroup> {
        let count = count.clamp(1, partitions.len().max(1));
        let mut groups: Vec<FetchGroup> = (0..count)
            .map(|_| FetchGroup {
                cursors: Vec::new(),
                ends: Vec::new(),
            })
            .collect();
        for (at, (&partition, &end)) in partitions.iter().zip(ends).enumerate() {
            let group = &mut groups[at % count];
            group.cursors.push(Cursor {
                partition,
                offset: 0,
                high_watermark: end,
            });
            group.ends.push(end);
        }
        groups
    }

    fn pending(&self) -> Vec<Cursor> {
        let ends = self.cursors.iter().zip(&self.ends);
        ends.filter(|(c, &end)| c.offset < end)
            .map(|(c, _)| *c)
            .collect()
    }
}

struct ReadAll {
    records: u64,
    fetches: u64,
    errors: u64,
    seconds: f64,
    latency_us: Histogram<u64>,
}

/// Reads every group to its ends (or until the duration passes), one
/// fetch in flight per group; latency is each fetch's round trip.
fn read_all(
    plan: &RunPlan,
    wire: &mut Wire,
    groups: &mut [FetchGroup],
) -> Result<ReadAll, RunError> {
    let limits = plan.fetch_limits(0);
    let mut read = ReadAll {
        records: 0,
        fetches: 0,
        errors: 0,
        seconds: 0.0,
        latency_us: latency_histogram(),
    };
    let start = Instant::now();
    let (writer, reader) = wire.halves_mut();
    let mut in_flight = VecDeque::new();
    for (at, group) in groups.iter().enumerate() {
        let pending = group.pending();
        if !pending.is_empty() {
            let correlation_id = send_fetch(writer, &plan.topic, &pending, limits)?;
            in_flight.push_back((at, correlation_id, Instant::now()));
        }
    }
    // Answers come in request order, so the queue's front is the next one.
    while let Some((at, correlation_id, sent)) = in_flight.pop_front() {
        let group = &mut groups[at];
        let tally = receive_fetch(reader, correlation_id, &mut group.cursors, None)?;
        read.latency_us
            .saturating_record(sent.elapsed().as_micros() as u64);
        read.records += tally.records;
        read.errors += tally.errors;
        read.fetches += 1;
        let pending = group.pending();
        if !pending.is_empty() && start.elapsed() < plan.duration {
            let correlation_id = send_fetch(writer, &plan.topic, &pending, limits)?;
            in_flight.push_back((at, correlation_id, Instant::now()));
        }
    }
    read.seconds = start.elapsed().as_secs_f64();
    Ok(read)
}

pub fn e2e_rows(plan: &RunPlan) -> Result<Vec<Row>, RunError> {
    let (mut wire, partitions) = setup(plan)?;
    let mut factory = RecordFactory::new(plan.record_bytes, plan.compression);
    let mut rows = Vec::new();
    for &rate in &plan.rates {
        let ends = admin::end_offsets(&mut wire, &plan.topic, &partitions)?;
        let (row, producer) = e2e_once(plan, &partitions, &ends, &mut factory, rate)?;
        eprintln!("{}", row.csv_line());
        eprintln!("{}", producer.csv_line());
        rows.push(row);
        rows.push(producer);
    }
    Ok(rows)
}

/// How long the e2e consumer keeps reading after the producer stopped,
/// for records still in flight.
const E2E_DRAIN: Duration = Duration::from_secs(10);

fn e2e_once(
    plan: &RunPlan,
    partitions: &[i32],
    ends: &[i64],
    factory: &mut RecordFactory,
    rate: f64,
) -> Result<(Row, Row), RunError> {
    let mut consumer = Wire::connect(&plan.bootstrap)?;
    let config = plan.produce_config(partitions.to_vec(), plan.duration);
    let schedule = Schedule {
        start: Instant::now(),
        pace: Pace::Rate(rate),
    };
    let progress = Progress::default();
    let mut cursors: Vec<Cursor> = partitions
        .iter()
        .zip(ends)
        .map(|(&partition, &offset)| Cursor {
            partition,
            offset,
            high_watermark: offset,
        })
        .collect();
    let (produced, consumed) = std::thread::scope(|scope| {
        let producer = scope.spawn(|| produce::run(&config, factory, &schedule, &progress));
        let consumed = consume_live(plan, &mut consumer, &mut cursors, &schedule, &progress);
        let produced = producer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (produced, consumed)
    });
    let produced = produced?;
    let consumed = consumed?;
    let label = plan.label("e2e", Some(rate));
    let seconds = consumed.last_at.as_secs_f64();
    let mut row = Row::new(label, consumed.records, seconds, &consumed.latency_us);
    row.batches = produced.batches;
    row.errors = produced.errors + consumed.errors;
    // The same phase's produce latency (due time to ack), the base the
    // e2e latency is judged against: both share the machine with the
    // consumer.
    let mut producer = Row::new(
        plan.label("e2e-produce", Some(rate)),
        produced.records_acked,
        produced.elapsed.as_secs_f64(),
        &produced.latency_us,
    );
    producer.batches = produced.batches;
    producer.errors = produced.errors;
    Ok((row, producer))
}

struct LiveTally {
    latency_us: Histogram<u64>,
    records: u64,
    errors: u64,
    /// When the last record arrived, from the schedule's start.
    last_at: Duration,
}

/// Long-polls until every record the producer sent has arrived (or the
/// drain deadline passes after the producer stopped).
fn consume_live(
    plan: &RunPlan,
    wire: &mut Wire,
    cursors: &mut [Cursor],
    schedule: &Schedule,
    progress: &Progress,
) -> Result<LiveTally, RunError> {
    use std::sync::atomic::Ordering;
    let mut tally = LiveTally {
        latency_us: latency_histogram(),
        records: 0,
        errors: 0,
        last_at: Duration::ZERO,
    };
    let limits = plan.fetch_limits(100);
    let deadline = plan.duration + E2E_DRAIN;
    loop {
        let done = progress.done.load(Ordering::Acquire);
        let sent = progress.records_sent.load(Ordering::Acquire);
        if (done && tally.records >= sent) || schedule.start.elapsed() > deadline {
            return Ok(tally);
        }
        let mut stamps = Vec::new();
        let mut visit = |record: &rafka_proto::record::Record| {
            let stamp = record.value.as_deref().and_then(crate::workload::stamp_of);
            stamps.push(stamp);
        };
        let fetched = fetch_once(wire, &plan.topic, cursors, limits, Some(&mut visit))?;
        let now = schedule.start.elapsed();
        for stamp in stamps {
            match stamp {
                Some(due) => tally
                    .latency_us
                    .saturating_record(now.saturating_sub(due).as_micros() as u64),
                None => tally.errors += 1,
            }
        }
        tally.errors += fetched.errors;
        if fetched.records > 0 {
            tally.records += fetched.records;
            tally.last_at = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_groups_deal_partitions_round_robin_and_track_their_ends() {
        let mut groups = FetchGroup::split(&[0, 1, 2, 3, 4], &[10, 0, 30, 40, 50], 2);
        assert_eq!(groups.len(), 2);
        let ids = |g: &FetchGroup| g.cursors.iter().map(|c| c.partition).collect::<Vec<_>>();
        assert_eq!(ids(&groups[0]), [0, 2, 4]);
        assert_eq!(ids(&groups[1]), [1, 3]);
        // Partition 1 is empty: nothing to fetch there.
        assert_eq!(groups[1].pending().len(), 1);
        groups[0].cursors[1].offset = 30;
        let pending: Vec<i32> = groups[0].pending().iter().map(|c| c.partition).collect();
        assert_eq!(pending, [0, 4]);
        assert_eq!(FetchGroup::split(&[7], &[1], 4).len(), 1);
    }
}
