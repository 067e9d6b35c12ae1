//! [`LogHealth`]: what a shard learned about the integrity of its logs —
//! what recovery cut or rebuilt when a partition opened, what the scrubber
//! verified and took out of service. Each fact is logged once, naming the
//! partition, and counted for `/metrics`.
//!
//! rafka-core does no logging: `Log::open` returns its facts in a
//! `RecoveryReport` and a scrub step in a `ScrubApplied`, and this module
//! turns them into log lines and counters. That keeps rafka-core free of
//! a logging dependency and gives every line the topic-partition, which
//! the log (knowing only its directory) does not have.
//!
//! Lives on: every shard, one each, in its
//! [`crate::registry::PartitionRegistry`]; plain `Cell`s, read by a scrape
//! on the same thread.

use std::cell::Cell;

use rafka_core::log::{DamagedRange, RecoveryReport};

/// A shard's counters of log integrity events.
#[derive(Debug, Default)]
pub struct LogHealth {
    recovery_truncations: Cell<u64>,
    recovery_truncated_bytes: Cell<u64>,
    recovery_index_rebuilds: Cell<u64>,
    scrub_bytes: Cell<u64>,
    scrub_damaged_ranges: Cell<u64>,
    scrub_damaged_bytes: Cell<u64>,
    scrub_passes: Cell<u64>,
}

/// A copy of [`LogHealth`] for a scrape (`Send`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogHealthSnapshot {
    /// Segments recovery cut short (torn tails, bad batches).
    pub recovery_truncations: u64,
    /// Bytes recovery cut off, including segments it deleted after a bad
    /// batch.
    pub recovery_truncated_bytes: u64,
    /// Index files rebuilt because they were missing or wrong.
    pub recovery_index_rebuilds: u64,
    /// Bytes of closed segments the scrubber verified.
    pub scrub_bytes: u64,
    /// Damaged ranges the scrubber took out of service.
    pub scrub_damaged_ranges: u64,
    pub scrub_damaged_bytes: u64,
    /// Scrub passes completed over all of the shard's partitions.
    pub scrub_passes: u64,
}

fn bump(counter: &Cell<u64>, by: u64) {
    counter.set(counter.get().wrapping_add(by));
}

impl LogHealth {
    /// Logs at WARN and counts what recovery did to `topic`-`partition`.
    pub fn on_recovery(&self, topic: &str, partition: i32, report: &RecoveryReport) {
        for cut in &report.truncations {
            tracing::warn!(
                topic,
                partition,
                segment = %cut.path.display(),
                position = cut.position,
                truncated_bytes = cut.truncated_bytes,
                first_dropped_offset = cut.first_dropped_offset,
                resumes_at = ?cut.resumes_at,
                reason = %cut.kind,
                "recovery truncated a segment at an invalid batch"
            );
        }
        if report.segments_deleted > 0 {
            tracing::warn!(
                topic,
                partition,
                segments = report.segments_deleted,
                bytes = report.deleted_bytes,
                "recovery deleted the segments after an invalid batch"
            );
        }
        for rebuilt in &report.rebuilt_indexes {
            tracing::warn!(
                topic,
                partition,
                segment = %rebuilt.path.display(),
                base_offset = rebuilt.base_offset,
                "recovery rebuilt a segment's missing or invalid index"
            );
        }
        bump(&self.recovery_truncations, report.truncations.len() as u64);
        bump(
            &self.recovery_truncated_bytes,
            report.truncated_bytes + report.deleted_bytes,
        );
        bump(
            &self.recovery_index_rebuilds,
            report.rebuilt_indexes.len() as u64,
        );
    }

    pub fn on_scrubbed(&self, bytes: u64) {
        bump(&self.scrub_bytes, bytes);
    }

    /// Logs at ERROR (once: a range is reported when first found) and
    /// counts a damaged range of `topic`-`partition`.
    pub fn on_damaged(&self, topic: &str, partition: i32, range: &DamagedRange) {
        tracing::error!(
            topic,
            partition,
            segment = %range.path.display(),
            position = range.position,
            bytes = range.len_bytes,
            first_offset = range.first_offset,
            next_offset = range.next_offset,
            reason = %range.kind,
            "scrub found damaged batches: offsets [first_offset, next_offset) are no longer served"
        );
        bump(&self.scrub_damaged_ranges, 1);
        bump(&self.scrub_damaged_bytes, range.len_bytes);
    }

    pub fn on_pass(&self) {
        bump(&self.scrub_passes, 1);
    }

    pub fn snapshot(&self) -> LogHealthSnapshot {
        LogHealthSnapshot {
            recovery_truncations: self.recovery_truncations.get(),
            recovery_truncated_bytes: self.recovery_truncated_bytes.get(),
            recovery_index_rebuilds: self.recovery_index_rebuilds.get(),
            scrub_bytes: self.scrub_bytes.get(),
            scrub_damaged_ranges: self.scrub_damaged_ranges.get(),
            scrub_damaged_bytes: self.scrub_damaged_bytes.get(),
            scrub_passes: self.scrub_passes.get(),
        }
    }
}
