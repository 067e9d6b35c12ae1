//! `storm`: fairness under a flood (issue 13's quota storm). Well-behaved
//! producers keep producing while a few clients flood the broker; the
//! question is what the flood does to their tail latency, and whether the
//! broker holds the flood to its quota by itself.
//!
//! Setup: every client has its own client id, and one quota covers them
//! all: the `<default>` client-id entity gets `producer_byte_rate` and
//! `consumer_byte_rate` (AlterClientQuotas), so each id has its own
//! sensor, the well-behaved producers stay well under it, and the floods
//! are far over it. The replay topic is preloaded first, with the quotas
//! removed.
//!
//! Phases, each `duration` long, each a CSV row:
//! - `calm`: the `good` producers alone, each open-loop at `good_rate`
//!   records/s (acks=all, linger 0), their starts spread over one
//!   interval so they do not fire in lockstep;
//! - `produce-storm`: the same, plus `floods` producers that each keep
//!   `flood_inflight` requests of `flood_batch_bytes` outstanding and
//!   ignore `throttle_time_ms`: the broker has to hold them alone (KIP-219
//!   muting), as it must hold a client that does not cooperate;
//! - `fetch-storm`: the same good producers, plus one consumer re-reading
//!   the replay topic from the start as fast as it can.
//!
//! The good producers' latency is from each record's due time (open loop,
//! as `produce`). Flood and reader rates are counted over the phase after
//! `warmup` (the quota's window must fill before the rate settles: a
//! client's first window may burst, as in Kafka), from the answers that
//! came back, and reported next to the quota.

use std::sync::mpsc::sync_channel;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{AlterClientQuotasRequest, ApiKey, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use rafka_proto::error::ErrorCode;
use rafka_proto::record::Compression;

use crate::admin::{self, topic_name};
use crate::client::{ClientError, Wire};
use crate::fetch::{fetch_once, Cursor, FetchLimits};
use crate::produce::{self, now_ms, ProduceConfig, Progress, PRODUCE_TIMEOUT_MS, PRODUCE_VERSION};
use crate::report::latency_histogram;
use crate::run::RunError;
use crate::workload::{Pace, RecordFactory, Schedule};

const ALTER_CLIENT_QUOTAS_VERSION: i16 = 1;
/// The good producers' batches: linger 0 at their rate means one record,
/// a late producer catches up with up to this many.
const GOOD_BATCH_RECORDS_MAX: u64 = 16;
const GOOD_INFLIGHT_MAX: usize = 8;

pub const CSV_HEADER: &str = "phase,good_producers,good_target_msgs_per_sec,\
good_achieved_msgs_per_sec,good_p50_us,good_p99_us,good_p999_us,good_max_us,good_errors,\
p99_vs_calm,floods,producer_quota_mb_per_sec,flood_mb_per_sec_min,flood_mb_per_sec_max,\
flood_throttled_pct,consumer_quota_mb_per_sec,reader_mb_per_sec,seconds";

#[derive(Debug, Clone)]
pub struct StormPlan {
    pub bootstrap: String,
    pub topic: String,
    pub replay_topic: String,
    pub partitions: i32,
    pub record_bytes: usize,
    pub good_producers: usize,
    /// Records/s per good producer.
    pub good_rate: f64,
    pub floods: usize,
    pub flood_batch_bytes: usize,
    pub flood_inflight: usize,
    /// Bytes/s: the `<default>` client id's producer_byte_rate.
    pub producer_quota: f64,
    /// Bytes/s: the `<default>` client id's consumer_byte_rate.
    pub consumer_quota: f64,
    /// Bytes preloaded into the replay topic.
    pub replay_bytes: u64,
    pub duration: Duration,
    pub warmup: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Calm,
    ProduceStorm,
    FetchStorm,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Calm => "calm",
            Phase::ProduceStorm => "produce-storm",
            Phase::FetchStorm => "fetch-storm",
        }
    }
}

/// One phase's figures.
#[derive(Debug, Clone)]
pub struct StormRow {
    phase: Phase,
    good_records: u64,
    good_errors: u64,
    latency_us: Histogram<u64>,
    seconds: f64,
    /// Each flood's acknowledged bytes/s after the warmup.
    flood_rates: Vec<f64>,
    /// Share of flood answers that carried a throttle time.
    flood_throttled_pct: f64,
    reader_rate: Option<f64>,
}

/// Runs the three phases; one row each.
pub fn storm_rows(plan: &StormPlan) -> Result<Vec<StormRow>, RunError> {
    let mut admin_wire = Wire::connect_as(&plan.bootstrap, "storm-admin")?;
    let partitions = admin::ensure_topic(&mut admin_wire, &plan.topic, plan.partitions)?;
    let replay_partitions =
        admin::ensure_topic(&mut admin_wire, &plan.replay_topic, plan.partitions)?;
    if partitions.is_empty() || replay_partitions.is_empty() {
        return Err(RunError::NoPartitions);
    }
    set_default_quotas(&mut admin_wire, None)?;
    preload(plan, &mut admin_wire, &replay_partitions)?;
    set_default_quotas(
        &mut admin_wire,
        Some((plan.producer_quota, plan.consumer_quota)),
    )?;
    let mut rows = Vec::new();
    for phase in [Phase::Calm, Phase::ProduceStorm, Phase::FetchStorm] {
        let row = run_phase(plan, phase, &partitions, &replay_partitions)?;
        eprintln!("{}", row.csv_line(plan, rows.first()));
        rows.push(row);
    }
    // Leave the broker as found: the next bench run has no quota.
    set_default_quotas(&mut admin_wire, None)?;
    Ok(rows)
}

/// Sets (`Some((producer, consumer))` bytes/s) or removes the
/// `<default>` client id's byte-rate quotas.
fn set_default_quotas(wire: &mut Wire, rates: Option<(f64, f64)>) -> Result<(), ClientError> {
    let op = |key: &'static str, value: Option<f64>| {
        OpData::default()
            .with_key(StrBytes::from_static_str(key))
            .with_value(value.unwrap_or(0.0))
            .with_remove(value.is_none())
    };
    let ops = vec![
        op("producer_byte_rate", rates.map(|(p, _)| p)),
        op("consumer_byte_rate", rates.map(|(_, c)| c)),
    ];
    let entity = EntityData::default()
        .with_entity_type(StrBytes::from_static_str("client-id"))
        .with_entity_name(None);
    let request = AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
        .with_entity(vec![entity])
        .with_ops(ops)]);
    let response = wire.call(&request, ALTER_CLIENT_QUOTAS_VERSION)?;
    match response.entries.iter().find(|entry| entry.error_code != 0) {
        Some(entry) => Err(ClientError::ErrorCode {
            api_key: ApiKey::AlterClientQuotas,
            error_code: entry.error_code,
        }),
        None => Ok(()),
    }
}

/// Fills the replay topic up to `replay_bytes` (an earlier run's records
/// count).
fn preload(plan: &StormPlan, wire: &mut Wire, partitions: &[i32]) -> Result<(), RunError> {
    let ends = admin::end_offsets(wire, &plan.replay_topic, partitions)?;
    let have: u64 = ends.iter().map(|&end| end.max(0) as u64).sum();
    let want = plan.replay_bytes / plan.record_bytes.max(1) as u64;
    if have >= want {
        return Ok(());
    }
    let config = ProduceConfig {
        bootstrap: plan.bootstrap.clone(),
        topic: plan.replay_topic.clone(),
        partitions: partitions.to_vec(),
        acks: 1,
        batch_records_max: 256,
        inflight_max: 16,
        duration: Duration::from_secs(3600),
        records_max: want - have,
        client_id: Some("storm-preload".to_owned()),
    };
    let mut factory = RecordFactory::new(plan.record_bytes, Compression::None);
    let schedule = Schedule {
        start: Instant::now(),
        pace: Pace::Max,
    };
    let loaded = produce::run(&config, &mut factory, &schedule, &Progress::default())?;
    eprintln!(
        "storm: preloaded {} records into {} in {:.1} s",
        loaded.records_acked,
        plan.replay_topic,
        loaded.elapsed.as_secs_f64()
    );
    Ok(())
}

fn run_phase(
    plan: &StormPlan,
    phase: Phase,
    partitions: &[i32],
    replay_partitions: &[i32],
) -> Result<StormRow, RunError> {
    let start = Instant::now();
    let deadline = start + plan.duration;
    let measure_from = start + plan.warmup.min(plan.duration / 2);
    thread::scope(|scope| {
        let floods: Vec<_> = match phase {
            Phase::ProduceStorm => (0..plan.floods)
                .map(|index| {
                    scope.spawn(move || flood(plan, index, partitions, deadline, measure_from))
                })
                .collect(),
            _ => Vec::new(),
        };
        let reader = (phase == Phase::FetchStorm)
            .then(|| scope.spawn(move || replay(plan, replay_partitions, deadline, measure_from)));
        let goods: Vec<_> = (0..plan.good_producers)
            .map(|index| scope.spawn(move || good(plan, index, partitions, start)))
            .collect();
        let mut row = StormRow {
            phase,
            good_records: 0,
            good_errors: 0,
            latency_us: latency_histogram(),
            seconds: plan.duration.as_secs_f64(),
            flood_rates: Vec::new(),
            flood_throttled_pct: 0.0,
            reader_rate: None,
        };
        for handle in goods {
            let outcome = join(handle)?;
            row.good_records += outcome.records_acked;
            row.good_errors += outcome.errors;
            // Both histograms have the same bounds.
            let _ = row.latency_us.add(&outcome.latency_us);
        }
        let measured = (deadline - measure_from).as_secs_f64();
        let (mut answers, mut throttled) = (0u64, 0u64);
        for handle in floods {
            let tally = join(handle)?;
            row.flood_rates.push(tally.measured_bytes as f64 / measured);
            answers += tally.answers;
            throttled += tally.throttled;
        }
        row.flood_throttled_pct = 100.0 * throttled as f64 / answers.max(1) as f64;
        if let Some(handle) = reader {
            row.reader_rate = Some(join(handle)? as f64 / measured);
        }
        Ok(row)
    })
}

fn join<T>(handle: thread::ScopedJoinHandle<'_, Result<T, RunError>>) -> Result<T, RunError> {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// One well-behaved producer for the phase.
fn good(
    plan: &StormPlan,
    index: usize,
    partitions: &[i32],
    phase_start: Instant,
) -> Result<produce::ProduceOutcome, RunError> {
    // Spread the producers' due times over one interval.
    let spread =
        Duration::from_secs_f64(index as f64 / plan.good_rate / plan.good_producers as f64);
    let config = ProduceConfig {
        bootstrap: plan.bootstrap.clone(),
        topic: plan.topic.clone(),
        partitions: partitions.to_vec(),
        acks: -1,
        batch_records_max: GOOD_BATCH_RECORDS_MAX,
        inflight_max: GOOD_INFLIGHT_MAX,
        duration: plan.duration.saturating_sub(spread),
        records_max: u64::MAX,
        client_id: Some(format!("storm-good-{index}")),
    };
    let mut factory = RecordFactory::new(plan.record_bytes, Compression::None);
    let schedule = Schedule {
        start: phase_start + spread,
        pace: Pace::Rate(plan.good_rate),
    };
    produce::run(&config, &mut factory, &schedule, &Progress::default())
}

#[derive(Debug, Default)]
struct FloodTally {
    /// Bytes acknowledged after the warmup, before the deadline.
    measured_bytes: u64,
    answers: u64,
    throttled: u64,
}

/// One flood: `flood_inflight` big requests outstanding at all times,
/// throttle times ignored. At the deadline the connection is closed (a
/// muted connection would otherwise hold the writer).
fn flood(
    plan: &StormPlan,
    index: usize,
    partitions: &[i32],
    deadline: Instant,
    measure_from: Instant,
) -> Result<FloodTally, RunError> {
    let wire = Wire::connect_as(&plan.bootstrap, &format!("storm-flood-{index}"))?;
    let closer = wire.closer()?;
    let (mut writer, mut reader) = wire.split();
    let records = (plan.flood_batch_bytes / plan.record_bytes.max(1)).max(1) as u64;
    let mut factory = RecordFactory::new(plan.record_bytes, Compression::None);
    let schedule = Schedule {
        start: Instant::now(),
        pace: Pace::Max,
    };
    let batch = factory.batch(&schedule, 0, records, now_ms())?;
    let batch_bytes = batch.len() as u64;
    let (sender, receiver) = sync_channel::<i32>(plan.flood_inflight.max(1));
    thread::scope(|scope| {
        scope.spawn(|| {
            // The alarm: pacing to the deadline, not waiting for a condition.
            thread::sleep(deadline.saturating_duration_since(Instant::now()));
            closer.close();
        });
        scope.spawn(move || {
            let mut at = index;
            while Instant::now() < deadline {
                let partition = partitions[at % partitions.len()];
                at += 1;
                let request = flood_request(&plan.topic, partition, batch.clone());
                let Ok(correlation_id) = writer.send(&request, PRODUCE_VERSION) else {
                    return; // closed at the deadline
                };
                if sender.send(correlation_id).is_err() {
                    return;
                }
            }
        });
        let mut tally = FloodTally::default();
        for correlation_id in receiver {
            let response: ProduceResponse =
                match reader.receive(ApiKey::Produce, correlation_id, PRODUCE_VERSION) {
                    Ok(response) => response,
                    // The alarm closed the connection.
                    Err(_) if Instant::now() >= deadline => break,
                    Err(error) => return Err(error.into()),
                };
            let now = Instant::now();
            tally.answers += 1;
            if response.throttle_time_ms > 0 {
                tally.throttled += 1;
            }
            let acked = response
                .responses
                .iter()
                .flat_map(|topic| &topic.partition_responses)
                .all(|p| !ErrorCode::from_code(p.error_code).is_err());
            if acked && now >= measure_from && now < deadline {
                tally.measured_bytes += batch_bytes;
            }
        }
        Ok(tally)
    })
}

fn flood_request(
    topic: &str,
    partition: i32,
    batch: Bytes,
) -> kafka_protocol::messages::ProduceRequest {
    kafka_protocol::messages::ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(PRODUCE_TIMEOUT_MS)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])])
}

/// The re-reader: fetches the replay topic from the start to its end, over
/// and over; returns the record bytes read after the warmup.
fn replay(
    plan: &StormPlan,
    partitions: &[i32],
    deadline: Instant,
    measure_from: Instant,
) -> Result<u64, RunError> {
    let mut wire = Wire::connect_as(&plan.bootstrap, "storm-reader")?;
    let ends = admin::end_offsets(&mut wire, &plan.replay_topic, partitions)?;
    let limits = FetchLimits {
        partition_bytes_max: 4 << 20,
        response_bytes_max: 50 << 20,
        max_wait_ms: 0,
    };
    let start_over = || -> Vec<Cursor> {
        partitions
            .iter()
            .zip(&ends)
            .map(|(&partition, &end)| Cursor {
                partition,
                offset: 0,
                high_watermark: end,
            })
            .collect()
    };
    let mut cursors = start_over();
    let mut measured = 0u64;
    while Instant::now() < deadline {
        let tally = fetch_once(&mut wire, &plan.replay_topic, &mut cursors, limits, None)?;
        if Instant::now() >= measure_from {
            measured += tally.bytes;
        }
        if cursors.iter().zip(&ends).all(|(c, &end)| c.offset >= end) {
            cursors = start_over();
        }
    }
    Ok(measured)
}

impl StormRow {
    fn csv_line(&self, plan: &StormPlan, calm: Option<&StormRow>) -> String {
        let mb = |bytes_per_sec: f64| bytes_per_sec / 1e6;
        let p99 = self.latency_us.value_at_quantile(0.99);
        let calm_p99 = calm.map_or(p99, |calm| calm.latency_us.value_at_quantile(0.99));
        let fmt_rate =
            |rate: Option<f64>| rate.map_or_else(String::new, |r| format!("{:.3}", mb(r)));
        let min = self.flood_rates.iter().copied().reduce(f64::min);
        let max = self.flood_rates.iter().copied().reduce(f64::max);
        format!(
            "{},{},{:.0},{:.0},{},{},{},{},{},{:.2},{},{:.3},{},{},{:.1},{:.3},{},{:.1}",
            self.phase.name(),
            plan.good_producers,
            plan.good_rate * plan.good_producers as f64,
            self.good_records as f64 / self.seconds,
            self.latency_us.value_at_quantile(0.5),
            p99,
            self.latency_us.value_at_quantile(0.999),
            self.latency_us.max(),
            self.good_errors,
            p99 as f64 / calm_p99.max(1) as f64,
            self.flood_rates.len(),
            mb(plan.producer_quota),
            fmt_rate(min),
            fmt_rate(max),
            self.flood_throttled_pct,
            mb(plan.consumer_quota),
            fmt_rate(self.reader_rate),
            self.seconds,
        )
    }
}

/// The CSV table of the phases.
pub fn render(plan: &StormPlan, rows: &[StormRow]) -> String {
    let mut table = String::from(CSV_HEADER);
    table.push('\n');
    for row in rows {
        table.push_str(&row.csv_line(plan, rows.first()));
        table.push('\n');
    }
    table
}
