//! `produce`, `consume` and `e2e`: each drives the broker through the bench
//! client and returns CSV rows.
//!
//! - produce: one open-loop phase per target rate; latency = due time to ack.
//! - consume: preloads `preload_records` as fast as the pipeline allows,
//!   then fetches every partition from offset 0 to its end as fast as
//!   possible, one fetch in flight (the next offsets depend on the answer).
//!   Its row's target is `max` and its attainment is the share of the
//!   records available (the log end offsets when reading starts) that was
//!   read within the duration; latency = fetch round trip.
//! - e2e: a producer at each rate and a consumer on its own connection
//!   long-polling from the log end; latency = time the record's fetch came
//!   back minus the due time stamped in its value.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rafka_proto::record::{BatchError, BuildError, Compression, RecordError};

use crate::admin;
use crate::client::{ClientError, Wire};
use crate::fetch::{fetch_once, Cursor, FetchLimits};
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
    let mut cursors: Vec<Cursor> = partitions
        .iter()
        .zip(&ends)
        .map(|(&partition, &end)| Cursor {
            partition,
            offset: 0,
            high_watermark: end,
        })
        .collect();
    let mut latency_us = latency_histogram();
    let (mut records, mut batches, mut errors) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let limits = plan.fetch_limits(0);
    while start.elapsed() < plan.duration {
        let mut pending: Vec<Cursor> = cursors
            .iter()
            .copied()
            .filter(|c| c.offset < ends_of(&ends, &partitions, c.partition))
            .collect();
        if pending.is_empty() {
            break;
        }
        let sent = Instant::now();
        let tally = fetch_once(&mut wire, &plan.topic, &mut pending, limits, None)?;
        latency_us.saturating_record(sent.elapsed().as_micros() as u64);
        (records, batches, errors) = (records + tally.records, batches + 1, errors + tally.errors);
        for done in pending {
            if let Some(cursor) = cursors.iter_mut().find(|c| c.partition == done.partition) {
                *cursor = done;
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut row = Row::new(plan.label("consume", None), records, seconds, &latency_us);
    row.attainment_pct = 100.0 * records as f64 / (available.max(1)) as f64;
    row.batches = batches;
    row.errors = errors;
    eprintln!("{}", row.csv_line());
    Ok(vec![row])
}

fn ends_of(ends: &[i64], partitions: &[i32], partition: i32) -> i64 {
    partitions
        .iter()
        .position(|&p| p == partition)
        .map_or(0, |at| ends[at])
}

pub fn e2e_rows(plan: &RunPlan) -> Result<Vec<Row>, RunError> {
    let (mut wire, partitions) = setup(plan)?;
    let mut factory = RecordFactory::new(plan.record_bytes, plan.compression);
    let mut rows = Vec::new();
    for &rate in &plan.rates {
        let ends = admin::end_offsets(&mut wire, &plan.topic, &partitions)?;
        let row = e2e_once(plan, &partitions, &ends, &mut factory, rate)?;
        eprintln!("{}", row.csv_line());
        rows.push(row);
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
) -> Result<Row, RunError> {
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
    Ok(row)
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
