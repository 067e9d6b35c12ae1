//! What a produce/consume/e2e run sends and when: the open-loop schedule
//! and the record batches.
//!
//! Open loop: record `n` is due at `start + n / rate`, whatever happened
//! to earlier records. Latency is counted from that due time, not from the
//! moment the client got around to sending, so a broker stall shows up in
//! every record it delayed instead of being hidden by a client that simply
//! stopped sending (coordinated omission).
//!
//! Batching works like a producer with linger 0: when the sender wakes, every
//! record already due goes out at once, up to `batch_records` per batch. At
//! low rates batches hold one record; when the broker or the client falls
//! behind, batches fill up.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rafka_proto::record::{BatchBuilder, BuildError, Compression};

/// Bytes at the front of each value that carry the record's due time (ns
/// since the run's start), so a consumer can compute end-to-end latency.
pub const STAMP_BYTES: usize = 8;

/// How fast records are due.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Records per second.
    Rate(f64),
    /// Every record is due at the start: as fast as the pipeline allows.
    Max,
}

/// Due times of records on one run's clock.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub start: Instant,
    pub pace: Pace,
}

impl Schedule {
    /// When record `n` is due, as an offset from the start.
    pub fn due_offset(&self, n: u64) -> Duration {
        match self.pace {
            // Whole nanoseconds, so records land on exact due times.
            Pace::Rate(rate) => Duration::from_nanos((n as f64 * 1e9 / rate).round() as u64),
            Pace::Max => Duration::ZERO,
        }
    }

    /// How many records are due by `elapsed` (records `0..count`).
    pub fn due_count(&self, elapsed: Duration) -> u64 {
        match self.pace {
            // Record 0 is due at 0, so one more than the whole intervals.
            Pace::Rate(rate) => (elapsed.as_secs_f64() * rate).floor() as u64 + 1,
            Pace::Max => u64::MAX,
        }
    }
}

/// Builds batches of bench records: a null key and a value of
/// `record_bytes` whose first [`STAMP_BYTES`] hold the due time.
#[derive(Debug)]
pub struct RecordFactory {
    value: Vec<u8>,
    compression: Compression,
}

impl RecordFactory {
    pub fn new(record_bytes: usize, compression: Compression) -> Self {
        // Text-like filler: compressible as real payloads are, not all zeros.
        let value = (0..record_bytes.max(STAMP_BYTES))
            .map(|i| b'a' + ((i * 7 + i / 26) % 26) as u8)
            .collect();
        RecordFactory { value, compression }
    }

    /// One batch of the records `first..first + count`, each stamped with
    /// its due time.
    pub fn batch(
        &mut self,
        schedule: &Schedule,
        first: u64,
        count: u64,
        timestamp_ms: i64,
    ) -> Result<Bytes, BuildError> {
        let records_bytes = count as usize * (self.value.len() + 16);
        let mut builder = BatchBuilder::with_capacity(self.compression, records_bytes)
            .base_timestamp_ms(timestamp_ms);
        for n in first..first + count {
            let due_ns = schedule.due_offset(n).as_nanos() as u64;
            self.value[..STAMP_BYTES].copy_from_slice(&due_ns.to_be_bytes());
            builder.push_record(timestamp_ms, None, Some(&self.value), &[]);
        }
        builder.build()
    }
}

/// What an idempotent or transactional producer stamps on a batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStamp {
    pub producer_id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
    pub transactional: bool,
}

impl RecordFactory {
    /// One batch of `count` records for a closed-loop producer (`txn`):
    /// nothing is due, so the values carry no meaningful stamp; `producer`
    /// makes it idempotent (and transactional if asked).
    pub fn producer_batch(
        &mut self,
        count: u64,
        timestamp_ms: i64,
        producer: Option<ProducerStamp>,
    ) -> Result<Bytes, BuildError> {
        let records_bytes = count as usize * (self.value.len() + 16);
        let mut builder = BatchBuilder::with_capacity(self.compression, records_bytes)
            .base_timestamp_ms(timestamp_ms);
        if let Some(stamp) = producer {
            builder = builder
                .producer(stamp.producer_id, stamp.epoch, stamp.base_sequence)
                .transactional(stamp.transactional);
        }
        for _ in 0..count {
            builder.push_record(timestamp_ms, None, Some(&self.value), &[]);
        }
        builder.build()
    }
}

/// The due time a record value carries, if it is long enough.
pub fn stamp_of(value: &[u8]) -> Option<Duration> {
    let stamp: [u8; STAMP_BYTES] = value.get(..STAMP_BYTES)?.try_into().ok()?;
    Some(Duration::from_nanos(u64::from_be_bytes(stamp)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafka_proto::record::{validate, RecordBatch, RecordLimits};

    #[test]
    fn rate_schedule_spaces_records_evenly() {
        let schedule = Schedule {
            start: Instant::now(),
            pace: Pace::Rate(1000.0),
        };
        assert_eq!(schedule.due_offset(0), Duration::ZERO);
        assert_eq!(schedule.due_offset(250), Duration::from_millis(250));
        assert_eq!(schedule.due_count(Duration::ZERO), 1);
        assert_eq!(schedule.due_count(Duration::from_micros(999)), 1);
        assert_eq!(schedule.due_count(Duration::from_millis(1)), 2);
        assert_eq!(schedule.due_count(Duration::from_secs(2)), 2001);
    }

    #[test]
    fn batches_carry_due_times_and_validate() {
        let schedule = Schedule {
            start: Instant::now(),
            pace: Pace::Rate(10_000.0),
        };
        for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let mut factory = RecordFactory::new(1024, codec);
            let batch = factory.batch(&schedule, 20, 3, 1_700_000_000_000).unwrap();
            let header = validate(&batch).unwrap();
            assert_eq!(header.record_count, 3);
            let (parsed, rest) = RecordBatch::parse(&batch).unwrap();
            assert!(rest.is_empty());
            let stamps: Vec<Duration> = parsed
                .records(RecordLimits::default())
                .unwrap()
                .map(|r| {
                    let value = r.unwrap().value.unwrap();
                    assert_eq!(value.len(), 1024);
                    stamp_of(&value).unwrap()
                })
                .collect();
            let us = Duration::from_micros;
            assert_eq!(stamps, [us(2000), us(2100), us(2200)]);
        }
    }

    #[test]
    fn producer_batches_carry_the_producer_and_the_transactional_bit() {
        let mut factory = RecordFactory::new(64, Compression::None);
        let stamp = ProducerStamp {
            producer_id: 42,
            epoch: 3,
            base_sequence: 100,
            transactional: true,
        };
        let batch = factory
            .producer_batch(5, 1_700_000_000_000, Some(stamp))
            .unwrap();
        let header = validate(&batch).unwrap();
        assert_eq!(header.record_count, 5);
        assert_eq!((header.producer_id, header.producer_epoch), (42, 3));
        assert_eq!(header.base_sequence, 100);
        assert!(header.is_transactional());
        let plain = factory.producer_batch(2, 1_700_000_000_000, None).unwrap();
        let header = validate(&plain).unwrap();
        assert_eq!(header.producer_id, -1);
        assert!(!header.is_transactional());
    }

    #[test]
    fn short_values_have_no_stamp() {
        assert_eq!(stamp_of(&[1, 2, 3]), None);
        assert_eq!(
            stamp_of(&[0, 0, 0, 0, 0, 0, 0, 9]),
            Some(Duration::from_nanos(9))
        );
    }
}
