//! A fixed-bucket latency histogram for one shard, and its `Send` snapshot.
//!
//! Recording is a few `Cell` loads and stores: only the owning shard's tasks
//! touch a [`LatencyHistogram`], so it needs no atomics. Scrapes copy it into
//! a [`HistogramSnapshot`], which crosses shards and merges bucket by bucket
//! (every histogram shares [`LATENCY_BOUNDS_US`], so merging is exact).
//!
//! Lives on: any shard; each owner keeps its own (the flusher's fsync
//! latency, the network layer's request latency per API).

use std::cell::Cell;
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds; a last, unbounded bucket
/// follows. From 10 µs (a message between cores) to 10 s (a stalled
/// disk), roughly 1-2.5-5 per decade, the spacing Prometheus' defaults use.
pub const LATENCY_BOUNDS_US: [u64; 19] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Buckets including the unbounded one.
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

const _: () = {
    let mut i = 1;
    while i < LATENCY_BOUNDS_US.len() {
        assert!(LATENCY_BOUNDS_US[i - 1] < LATENCY_BOUNDS_US[i]);
        i += 1;
    }
};

/// Durations observed on one shard, counted per bucket.
#[derive(Debug)]
pub struct LatencyHistogram {
    /// Per bucket, not cumulative: `buckets[i]` counts observations in
    /// `(LATENCY_BOUNDS_US[i-1], LATENCY_BOUNDS_US[i]]`.
    buckets: [Cell<u64>; LATENCY_BUCKETS],
    sum_us: Cell<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: std::array::from_fn(|_| Cell::new(0)),
            sum_us: Cell::new(0),
        }
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        LatencyHistogram::default()
    }

    pub fn record(&self, elapsed: Duration) {
        let elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.record_us(elapsed_us);
    }

    pub fn record_us(&self, elapsed_us: u64) {
        let index = LATENCY_BOUNDS_US.partition_point(|&bound| bound < elapsed_us);
        let bucket = &self.buckets[index];
        bucket.set(bucket.get().wrapping_add(1));
        self.sum_us
            .set(self.sum_us.get().saturating_add(elapsed_us));
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].get()),
            sum_us: self.sum_us.get(),
        }
    }
}

/// A copy of a histogram at one moment; `Send`, mergeable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Per bucket (not cumulative), the last one unbounded.
    pub buckets: [u64; LATENCY_BUCKETS],
    pub sum_us: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        HistogramSnapshot {
            buckets: [0; LATENCY_BUCKETS],
            sum_us: 0,
        }
    }
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Adds `other` in: the histogram of both sets of observations.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine = mine.wrapping_add(theirs);
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_whose_bound_holds_them() {
        let histogram = LatencyHistogram::new();
        histogram.record_us(0);
        histogram.record_us(10);
        histogram.record_us(11);
        histogram.record_us(50);
        histogram.record_us(51);
        histogram.record(Duration::from_millis(1));
        histogram.record(Duration::from_secs(60));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets[0], 2, "0 and 10 µs are <= 10");
        assert_eq!(snapshot.buckets[1], 1, "11 µs is <= 25");
        assert_eq!(snapshot.buckets[2], 1, "50 µs is <= 50");
        assert_eq!(snapshot.buckets[3], 1, "51 µs is <= 100");
        assert_eq!(snapshot.buckets[6], 1, "1 ms is <= 1000 µs");
        assert_eq!(
            snapshot.buckets[LATENCY_BUCKETS - 1],
            1,
            "60 s is beyond 10 s"
        );
        assert_eq!(snapshot.count(), 7);
        assert_eq!(snapshot.sum_us, 10 + 11 + 50 + 51 + 1_000 + 60_000_000);
    }

    #[test]
    fn merge_adds_bucket_by_bucket() {
        let a = LatencyHistogram::new();
        a.record_us(10);
        a.record_us(700);
        let b = LatencyHistogram::new();
        b.record_us(20);
        let mut merged = a.snapshot();
        merged.merge(&b.snapshot());
        assert_eq!(merged.buckets[0], 1, "10 µs");
        assert_eq!(merged.buckets[1], 1, "20 µs");
        assert_eq!(merged.buckets[6], 1, "700 µs");
        assert_eq!(merged.count(), 3);
        assert_eq!(merged.sum_us, 730);
    }
}
