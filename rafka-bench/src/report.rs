//! Latency histograms and the CSV table of produce/consume/e2e runs: one row
//! per (mode, target rate). MB/s counts record payload (values) only, the
//! figure a user sizes a cluster by.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::workload::Schedule;

/// Latencies are recorded in µs; the upper bound only sizes the histogram
/// (an hour), larger values saturate.
const LATENCY_US_MAX: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

pub const CSV_HEADER: &str = "mode,target_msgs_per_sec,achieved_msgs_per_sec,\
achieved_mb_per_sec,attainment_pct,p50_us,p95_us,p99_us,p999_us,max_us,errors,\
records,batches,seconds,record_bytes,batch_records,acks,compression";

pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, SIGNIFICANT_DIGITS)
        .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"))
}

/// Records the latency of records `first..first + count`, all completed at
/// `done` (an offset from the schedule's start), from each one's due time.
pub fn record_latency(
    histogram: &mut Histogram<u64>,
    schedule: &Schedule,
    first: u64,
    count: u64,
    done: Duration,
) {
    for n in first..first + count {
        let latency = done.saturating_sub(schedule.due_offset(n));
        histogram.saturating_record(latency.as_micros() as u64);
    }
}

/// What was asked of a run, repeated on its row.
#[derive(Debug, Clone)]
pub struct RunLabel {
    pub mode: &'static str,
    /// None: as fast as possible (`max` in the CSV).
    pub target_msgs_per_sec: Option<f64>,
    pub record_bytes: usize,
    pub batch_records: u64,
    pub acks: String,
    pub compression: String,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub label: RunLabel,
    pub records: u64,
    pub batches: u64,
    pub seconds: f64,
    /// Of the target (rate modes) or of the records available (consume).
    pub attainment_pct: f64,
    pub errors: u64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Row {
    pub fn new(label: RunLabel, records: u64, seconds: f64, latency_us: &Histogram<u64>) -> Row {
        let attainment_pct = match label.target_msgs_per_sec {
            Some(target) if target > 0.0 && seconds > 0.0 => {
                100.0 * records as f64 / seconds / target
            }
            _ => 100.0,
        };
        let at = |quantile| latency_us.value_at_quantile(quantile);
        Row {
            label,
            records,
            batches: 0,
            seconds,
            attainment_pct,
            errors: 0,
            p50_us: at(0.5),
            p95_us: at(0.95),
            p99_us: at(0.99),
            p999_us: at(0.999),
            max_us: latency_us.max(),
        }
    }

    pub fn msgs_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.records as f64 / self.seconds
        } else {
            0.0
        }
    }

    pub fn mb_per_sec(&self) -> f64 {
        self.msgs_per_sec() * self.label.record_bytes as f64 / 1e6
    }

    pub fn csv_line(&self) -> String {
        let target = self
            .label
            .target_msgs_per_sec
            .map_or_else(|| "max".to_owned(), |t| format!("{t:.0}"));
        let mut line = String::new();
        let _ = write!(
            line,
            "{},{target},{:.0},{:.2},{:.1},{},{},{},{},{},{},{},{},{:.3},{},{},{},{}",
            self.label.mode,
            self.msgs_per_sec(),
            self.mb_per_sec(),
            self.attainment_pct,
            self.p50_us,
            self.p95_us,
            self.p99_us,
            self.p999_us,
            self.max_us,
            self.errors,
            self.records,
            self.batches,
            self.seconds,
            self.label.record_bytes,
            self.label.batch_records,
            self.label.acks,
            self.label.compression,
        );
        line
    }
}

pub fn render(rows: &[Row]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for row in rows {
        out.push_str(&row.csv_line());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Pace;
    use std::time::Instant;

    fn label(target: Option<f64>) -> RunLabel {
        RunLabel {
            mode: "produce",
            target_msgs_per_sec: target,
            record_bytes: 1000,
            batch_records: 16,
            acks: "all".into(),
            compression: "none".into(),
        }
    }

    #[test]
    fn latency_counts_from_each_due_time() {
        let schedule = Schedule {
            start: Instant::now(),
            pace: Pace::Rate(1000.0),
        };
        let mut histogram = latency_histogram();
        // Records 0..4 due at 0, 1, 2, 3 ms, all acked at 5 ms.
        record_latency(&mut histogram, &schedule, 0, 4, Duration::from_millis(5));
        assert_eq!(histogram.len(), 4);
        assert_eq!(histogram.min(), 2000);
        assert!(histogram.equivalent(histogram.max(), 5000));
    }

    #[test]
    fn row_figures_and_csv() {
        let mut histogram = latency_histogram();
        for us in 1..=1000 {
            histogram.saturating_record(us);
        }
        let mut row = Row::new(label(Some(1000.0)), 1500, 2.0, &histogram);
        row.batches = 100;
        row.errors = 2;
        assert_eq!(row.msgs_per_sec(), 750.0);
        assert_eq!(row.mb_per_sec(), 0.75);
        assert_eq!(row.attainment_pct, 75.0);
        assert_eq!(row.p50_us, 500);
        assert_eq!(
            row.csv_line(),
            "produce,1000,750,0.75,75.0,500,950,990,999,1000,2,1500,100,2.000,1000,16,all,none"
        );
        let max = Row::new(label(None), 10, 1.0, &histogram);
        assert!(max.csv_line().starts_with("produce,max,10,0.01,100.0,"));
        assert_eq!(render(&[]).lines().count(), 1);
    }
}
