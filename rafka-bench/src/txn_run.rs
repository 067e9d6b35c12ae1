//! `txn`: transactional produce next to plain produce, in the same run.
//!
//! Each round runs every mode once (each round starts one mode later, so
//! none always runs first on a disk that warms up or fills). A mode's
//! phase: `producers` producers (one connection and thread each, see
//! [`crate::txn`]) are set up, then all start on one clock and produce
//! as fast as their answers allow for `duration`. After a transactional
//! phase the last stable offset of every partition must reach its log end
//! (every marker written); the time that takes is the row's `settle_ms`.
//!
//! Per-round rows go to stderr; the table is one row per mode with the
//! median over the rounds of each column, except the MB/s spread
//! (`mb_per_sec_min`/`_max`) and `end_txn_max_us` (the largest of all).

use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::admin;
use crate::client::{ClientError, Wire};
use crate::txn::{Mode, Producer, ProducerConfig, ProducerOutcome, TxnError};

/// How long the last stable offsets may take to reach the log ends after
/// a transactional phase before the run reports the markers missing.
const SETTLE_WAIT_MAX: Duration = Duration::from_secs(30);
/// Between ListOffsets polls while waiting for the markers.
const SETTLE_POLL: Duration = Duration::from_millis(1);

pub const CSV_HEADER: &str = "mode,txn_records,producers,rounds,msgs_per_sec,mb_per_sec,\
mb_per_sec_min,mb_per_sec_max,txns_per_sec,end_txn_p50_us,end_txn_p99_us,end_txn_max_us,\
txn_p50_us,txn_p99_us,add_retries,add_retry_ms,add_retry_pct,settle_ms,records,transactions,\
batches,seconds,record_bytes,batch_records,acks";

#[derive(Debug, thiserror::Error)]
pub enum TxnRunError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the topic has no partitions")]
    NoPartitions,
    #[error("{mode} producer {producer}: {source}")]
    Producer {
        mode: &'static str,
        producer: usize,
        #[source]
        source: TxnError,
    },
    #[error(
        "the last stable offsets {stable:?} did not reach the log ends {ends:?} \
         {waited_ms} ms after the last commit"
    )]
    Unsettled {
        stable: Vec<i64>,
        ends: Vec<i64>,
        waited_ms: u128,
    },
}

/// Everything `txn` needs, from the command line.
#[derive(Debug, Clone)]
pub struct TxnPlan {
    pub bootstrap: String,
    pub topic: String,
    pub partitions: i32,
    pub record_bytes: usize,
    pub batch_records: u64,
    pub inflight_max: usize,
    pub producers: usize,
    pub modes: Vec<Mode>,
    pub duration: Duration,
    pub rounds: u32,
    pub retry_backoff: Duration,
}

/// One mode's figures: one phase, or the medians of several.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnRow {
    pub mode: Mode,
    pub producers: usize,
    pub rounds: usize,
    pub msgs_per_sec: f64,
    pub mb_per_sec: f64,
    pub mb_per_sec_min: f64,
    pub mb_per_sec_max: f64,
    pub txns_per_sec: f64,
    pub end_txn_p50_us: u64,
    pub end_txn_p99_us: u64,
    pub end_txn_max_us: u64,
    pub txn_p50_us: u64,
    pub txn_p99_us: u64,
    pub add_retries: u64,
    pub add_retry_ms: f64,
    /// Of the producers' time (producers x seconds).
    pub add_retry_pct: f64,
    pub settle_ms: f64,
    pub records: u64,
    pub transactions: u64,
    pub batches: u64,
    pub seconds: f64,
    pub record_bytes: usize,
    pub batch_records: u64,
}

impl TxnRow {
    fn of_phase(plan: &TxnPlan, mode: Mode, outcome: &ProducerOutcome, settle: Duration) -> TxnRow {
        let seconds = outcome.elapsed.as_secs_f64();
        let per_sec = |count: u64| {
            if seconds > 0.0 {
                count as f64 / seconds
            } else {
                0.0
            }
        };
        let msgs_per_sec = per_sec(outcome.records);
        let mb_per_sec = msgs_per_sec * plan.record_bytes as f64 / 1e6;
        let add_retry_ms = outcome.add_retry_time.as_secs_f64() * 1e3;
        let producer_ms = seconds * 1e3 * plan.producers.max(1) as f64;
        let transactional = mode.txn_records().is_some();
        let at = |histogram: &hdrhistogram::Histogram<u64>, quantile| {
            if transactional {
                histogram.value_at_quantile(quantile)
            } else {
                0
            }
        };
        TxnRow {
            mode,
            producers: plan.producers,
            rounds: 1,
            msgs_per_sec,
            mb_per_sec,
            mb_per_sec_min: mb_per_sec,
            mb_per_sec_max: mb_per_sec,
            txns_per_sec: per_sec(outcome.transactions),
            end_txn_p50_us: at(&outcome.end_txn_us, 0.5),
            end_txn_p99_us: at(&outcome.end_txn_us, 0.99),
            end_txn_max_us: if transactional {
                outcome.end_txn_us.max()
            } else {
                0
            },
            txn_p50_us: at(&outcome.txn_us, 0.5),
            txn_p99_us: at(&outcome.txn_us, 0.99),
            add_retries: outcome.add_retries,
            add_retry_ms,
            add_retry_pct: if producer_ms > 0.0 {
                100.0 * add_retry_ms / producer_ms
            } else {
                0.0
            },
            settle_ms: settle.as_secs_f64() * 1e3,
            records: outcome.records,
            transactions: outcome.transactions,
            batches: outcome.batches,
            seconds,
            record_bytes: plan.record_bytes,
            batch_records: plan.batch_records,
        }
    }

    /// Column by column medians of one mode's rounds (`runs` not empty).
    fn median_of(runs: &[TxnRow]) -> TxnRow {
        let f = |field: fn(&TxnRow) -> f64| median_f64(runs.iter().map(field).collect());
        let u = |field: fn(&TxnRow) -> u64| median_u64(runs.iter().map(field).collect());
        let first = &runs[0];
        TxnRow {
            mode: first.mode,
            producers: first.producers,
            rounds: runs.len(),
            msgs_per_sec: f(|r| r.msgs_per_sec),
            mb_per_sec: f(|r| r.mb_per_sec),
            mb_per_sec_min: runs.iter().map(|r| r.mb_per_sec).fold(f64::MAX, f64::min),
            mb_per_sec_max: runs.iter().map(|r| r.mb_per_sec).fold(0.0, f64::max),
            txns_per_sec: f(|r| r.txns_per_sec),
            end_txn_p50_us: u(|r| r.end_txn_p50_us),
            end_txn_p99_us: u(|r| r.end_txn_p99_us),
            end_txn_max_us: runs.iter().map(|r| r.end_txn_max_us).max().unwrap_or(0),
            txn_p50_us: u(|r| r.txn_p50_us),
            txn_p99_us: u(|r| r.txn_p99_us),
            add_retries: u(|r| r.add_retries),
            add_retry_ms: f(|r| r.add_retry_ms),
            add_retry_pct: f(|r| r.add_retry_pct),
            settle_ms: f(|r| r.settle_ms),
            records: u(|r| r.records),
            transactions: u(|r| r.transactions),
            batches: u(|r| r.batches),
            seconds: f(|r| r.seconds),
            record_bytes: first.record_bytes,
            batch_records: first.batch_records,
        }
    }

    pub fn csv_line(&self) -> String {
        let txn_records = self
            .mode
            .txn_records()
            .map_or_else(String::new, |n| n.to_string());
        let mut line = String::new();
        let _ = write!(
            line,
            "{},{txn_records},{},{},{:.0},{:.2},{:.2},{:.2},{:.1},{},{},{},{},{},{},{:.1},{:.2},\
             {:.1},{},{},{},{:.3},{},{},all",
            self.mode.name(),
            self.producers,
            self.rounds,
            self.msgs_per_sec,
            self.mb_per_sec,
            self.mb_per_sec_min,
            self.mb_per_sec_max,
            self.txns_per_sec,
            self.end_txn_p50_us,
            self.end_txn_p99_us,
            self.end_txn_max_us,
            self.txn_p50_us,
            self.txn_p99_us,
            self.add_retries,
            self.add_retry_ms,
            self.add_retry_pct,
            self.settle_ms,
            self.records,
            self.transactions,
            self.batches,
            self.seconds,
            self.record_bytes,
            self.batch_records,
        );
        line
    }
}

/// The middle value (the upper one of an even count), as `ceiling-write`.
fn median_f64(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn median_u64(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

pub fn render(rows: &[TxnRow]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for row in rows {
        out.push_str(&row.csv_line());
        out.push('\n');
    }
    out
}

/// Every round of every mode; one median row per mode, in `plan.modes`
/// order.
pub fn txn_rows(plan: &TxnPlan) -> Result<Vec<TxnRow>, TxnRunError> {
    let mut wire = Wire::connect(&plan.bootstrap)?;
    let partitions = admin::ensure_topic(&mut wire, &plan.topic, plan.partitions)?;
    if partitions.is_empty() {
        return Err(TxnRunError::NoPartitions);
    }
    eprintln!("{CSV_HEADER}");
    let mut runs: Vec<Vec<TxnRow>> = vec![Vec::new(); plan.modes.len()];
    let run_id = run_id();
    for round in 0..plan.rounds.max(1) as usize {
        for k in 0..plan.modes.len() {
            let at = (round + k) % plan.modes.len();
            let ids = format!("rafka-bench-{run_id}-r{round}-m{at}");
            let row = phase(plan, &mut wire, &partitions, plan.modes[at], &ids)?;
            eprintln!("{}", row.csv_line());
            runs[at].push(row);
        }
    }
    Ok(runs.iter().map(|runs| TxnRow::median_of(runs)).collect())
}

/// Tells this run's transactional ids from an earlier run's on the same
/// broker.
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

/// One mode's phase: set every producer up, start them on one clock, add
/// up their outcomes, then wait for the markers.
fn phase(
    plan: &TxnPlan,
    wire: &mut Wire,
    partitions: &[i32],
    mode: Mode,
    ids: &str,
) -> Result<TxnRow, TxnRunError> {
    let producers = (0..plan.producers.max(1))
        .map(|producer| {
            let config = ProducerConfig {
                bootstrap: plan.bootstrap.clone(),
                topic: plan.topic.clone(),
                partitions: partitions.to_vec(),
                record_bytes: plan.record_bytes,
                batch_records_max: plan.batch_records,
                inflight_max: plan.inflight_max,
                duration: plan.duration,
                retry_backoff: plan.retry_backoff,
                mode,
                transactional_id: format!("{ids}-p{producer}"),
                first_partition: producer,
            };
            Producer::connect(config).map_err(|source| producer_error(mode, producer, source))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now();
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let running: Vec<_> = producers
            .into_iter()
            .map(|producer| scope.spawn(move || producer.run(start)))
            .collect();
        running
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut total = ProducerOutcome::new();
    for (producer, outcome) in outcomes.into_iter().enumerate() {
        total.merge(&outcome.map_err(|source| producer_error(mode, producer, source))?);
    }
    let settle = match mode {
        Mode::Txn { .. } => settle(wire, &plan.topic, partitions)?,
        Mode::Plain | Mode::Idempotent => Duration::ZERO,
    };
    Ok(TxnRow::of_phase(plan, mode, &total, settle))
}

fn producer_error(mode: Mode, producer: usize, source: TxnError) -> TxnRunError {
    TxnRunError::Producer {
        mode: mode.name(),
        producer,
        source,
    }
}

/// Waits until every partition's last stable offset is its log end: the
/// markers of every committed transaction are written. Returns how long
/// that took.
fn settle(wire: &mut Wire, topic: &str, partitions: &[i32]) -> Result<Duration, TxnRunError> {
    let began = Instant::now();
    loop {
        let ends = admin::end_offsets(wire, topic, partitions)?;
        let stable = admin::stable_offsets(wire, topic, partitions)?;
        if stable == ends {
            return Ok(began.elapsed());
        }
        if began.elapsed() >= SETTLE_WAIT_MAX {
            return Err(TxnRunError::Unsettled {
                stable,
                ends,
                waited_ms: began.elapsed().as_millis(),
            });
        }
        // Polling: the wire has no event for "markers written".
        std::thread::sleep(SETTLE_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> TxnPlan {
        TxnPlan {
            bootstrap: String::new(),
            topic: String::new(),
            partitions: 6,
            record_bytes: 1000,
            batch_records: 256,
            inflight_max: 32,
            producers: 2,
            modes: vec![Mode::Plain, Mode::Txn { records: 100 }],
            duration: Duration::from_secs(1),
            rounds: 3,
            retry_backoff: Duration::from_millis(1),
        }
    }

    fn outcome(records: u64, transactions: u64, seconds: u64) -> ProducerOutcome {
        let mut outcome = ProducerOutcome::new();
        outcome.records = records;
        outcome.transactions = transactions;
        outcome.elapsed = Duration::from_secs(seconds);
        outcome.add_retry_time = Duration::from_millis(100);
        outcome.add_retries = 4;
        for us in 1..=100 {
            outcome.end_txn_us.saturating_record(us * 10);
        }
        outcome
    }

    #[test]
    fn a_phase_row_and_its_csv() {
        let txn = Mode::Txn { records: 100 };
        let row = TxnRow::of_phase(&plan(), txn, &outcome(20_000, 200, 2), Duration::ZERO);
        assert_eq!(row.msgs_per_sec, 10_000.0);
        assert_eq!(row.mb_per_sec, 10.0);
        assert_eq!(row.txns_per_sec, 100.0);
        assert_eq!((row.end_txn_p50_us, row.end_txn_max_us), (500, 1000));
        // 100 ms of 2 producers x 2 s.
        assert_eq!(row.add_retry_pct, 2.5);
        let line = row.csv_line();
        assert!(line.starts_with("txn,100,2,1,10000,10.00,10.00,10.00,100.0,500,990,1000,"));
        assert!(line.ends_with(",1000,256,all"));
        assert_eq!(line.split(',').count(), CSV_HEADER.split(',').count());
        let plain = TxnRow::of_phase(&plan(), Mode::Plain, &outcome(1, 0, 1), Duration::ZERO);
        assert!(plain.csv_line().starts_with("plain,,2,1,1,"));
        assert_eq!(render(&[plain]).lines().count(), 2);
    }

    #[test]
    fn medians_per_column_and_the_spread() {
        let txn = Mode::Txn { records: 100 };
        let rows: Vec<TxnRow> = [30_000, 10_000, 20_000]
            .into_iter()
            .map(|records| TxnRow::of_phase(&plan(), txn, &outcome(records, 1, 1), Duration::ZERO))
            .collect();
        let mut slow_end = rows[2].clone();
        slow_end.end_txn_max_us = 9_000;
        let median = TxnRow::median_of(&[rows[0].clone(), rows[1].clone(), slow_end]);
        assert_eq!(median.rounds, 3);
        assert_eq!(median.msgs_per_sec, 20_000.0);
        assert_eq!((median.mb_per_sec_min, median.mb_per_sec_max), (10.0, 30.0));
        assert_eq!(median.end_txn_max_us, 9_000);
        assert_eq!(median_u64(vec![4, 1, 3, 2]), 3);
        assert_eq!(median_f64(Vec::new()), 0.0);
    }
}
