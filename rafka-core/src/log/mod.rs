//! One partition's durable log, in Kafka's on-disk layout (DESIGN.md,
//! "Storage"): `<dir>/<20-digit base offset>.log|.index|.timeindex`.
//!
//! # Layout
//! - `config`: [`LogConfig`], Kafka's topic config names and defaults.
//! - `error`: [`LogError`] and [`CorruptKind`].
//! - `segment`: one segment file with its in-memory indexes.
//! - `offset_index`, `time_index`: the sparse index formats.
//! - `txn_index`: the aborted-transaction index ([`AbortedTxn`]), what a
//!   read_committed fetch lists, and the replay of producer state that
//!   rebuilds it ([`Log::recover_producer_state`]).
//! - `scan`: reading batch headers back from a segment.
//! - `recovery`: [`Log::open`]: load segments, check indexes, validate the
//!   tail, truncate what is torn.
//! - `append`: [`Log::append`]: assign offsets, write, index, roll.
//! - `flush`: group commit ([`Log::flush_begin`] / [`FlushTicket::sync`] /
//!   [`Log::flush_complete`]) and the read-only state after an fsync error.
//! - `read`: [`Log::read`] into file [`Region`]s, timestamp lookups.
//! - `retention`: retention, log start offset, truncation, close, delete.
//! - `scrub`: re-verifying closed segments step by step ([`Log::scrub_plan`]
//!   / [`ScrubChunk::verify`] / [`Log::scrub_apply`]); damaged ranges are
//!   taken out of service and reads step over them.
//! - `checkpoint`: Kafka's per-data-dir checkpoint files and the clean
//!   shutdown marker.
//! - `epoch_cache`: [`EpochCache`], Kafka's leader-epoch cache and its
//!   `leader-epoch-checkpoint` file; `leader_epochs`: the log keeping it
//!   in step (append, truncation, log start, open) and answering
//!   OffsetForLeaderEpoch from it ([`Log::end_offset_for_epoch`]).
//! - `compact`: [`Log::compact`] (cleanup.policy=compact) in three phases;
//!   `compact_filter`: the key map and batch filtering; `compact_aborted`:
//!   aborted transactions and markers; `compact_swap`: the
//!   `.cleaned`/`.swap` files and their completion on open.
//!
//! # Durability model
//! Appends go to the page cache. A flush fdatasyncs every file written
//! since the last completed flush, then moves the recovery point
//! ([`Log::flushed_offset`]) to the log end offset seen when it began.
//! Index files of the active segment are not kept on disk while it is
//! active: they are written whole when the segment closes (roll, clean
//! close), and recovery rebuilds the index of every segment from the one
//! holding the recovery point onwards from its batches, so a stale or
//! missing active index never matters.
//!
//! # Failures
//! An IO error never loses an acknowledged batch and never takes away
//! reads of durable data. What it does to the log ([`Log::health`]):
//! - A failed append write (ENOSPC, EIO, a short write) is undone: nothing
//!   in memory moved (offsets, segment size, indexes, dirty files), and the
//!   active segment's file is truncated back to the end of its last good
//!   batch, so the log stays readable and writable and the next append
//!   gets the offset the failed one would have. If that truncation fails
//!   too, appends are refused ([`LogHealth::TailUnrepaired`]) and each one
//!   retries it first; reads go on (they never look past the last batch).
//!   A roll whose index write or new file fails leaves the old segment
//!   active; the next append retries the roll.
//! - A failed fsync (fdatasync or directory sync) is not undone: after it
//!   the kernel may have dropped the dirty pages, so the page cache can
//!   show data the disk lost ("fsyncgate"). Writes are refused until the
//!   log is reopened and recovery re-reads the disk, as Kafka and Redpanda
//!   do; reads are served below the recovery point, which only earlier
//!   successful fsyncs moved ([`LogHealth::ReadOnly`]). A failed
//!   truncation of the log (replication) does the same.
//! - A compaction swap or its sync failing half-way leaves the in-memory
//!   segments out of step with the files: nothing is served until the log
//!   is reopened ([`LogHealth::Offline`]).

mod append;
pub mod checkpoint;
mod compact;
mod compact_aborted;
mod compact_filter;
mod compact_swap;
pub mod config;
pub mod epoch_cache;
mod error;
mod flush;
mod leader_epochs;
pub mod offset_index;
mod read;
mod recovery;
mod retention;
mod scan;
mod scrub;
mod segment;
pub mod time_index;
mod txn_index;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub use append::AppendInfo;
pub use compact::{Cleaned, CompactOutcome, CompactionPlan};
pub use compact_filter::KEY_MAP_BYTES_MAX;
pub use config::{LogConfig, LogConfigError};
pub use epoch_cache::{EpochCache, EpochEntry};
pub use error::{CorruptKind, LogError};
pub use flush::{FlushDone, FlushTicket};
pub use leader_epochs::EpochRebuild;
pub use read::{read_regions, ReadResult, Region, TimestampOffset};
pub use recovery::{Corruption, IndexRebuild, RecoveryHints, RecoveryReport, Truncation};
pub use retention::{ClosedLog, RetentionOutcome};
pub use scrub::{DamagedRange, ScrubApplied, ScrubChunk, ScrubCursor, ScrubVerdict};
pub use segment::{SegmentInfo, NO_TIMESTAMP};
pub use txn_index::{decode_txn_index, encode_txn_index, AbortedTxn, TXN_INDEX_ENTRY_BYTES};

use crate::io::{Clock, Storage};
use flush::DirtyFiles;
use segment::{BatchSummary, Segment};

/// One partition's log. Single owner: it lives on the shard that owns the
/// partition and is never shared across cores (its files' IO goes to that
/// shard's ring). Not `Sync`, not `Send`.
pub struct Log<S: Storage> {
    storage: S,
    dir: PathBuf,
    config: LogConfig,
    clock: Rc<dyn Clock>,
    /// Ordered by base offset, never empty; the last one is active.
    segments: Vec<Segment<S::File>>,
    log_start_offset: i64,
    recovery_point: i64,
    health: Rc<Health>,
    dirty: DirtyFiles<S::File>,
    /// Bumped by every truncation, so that a flush that began before one
    /// cannot vouch for offsets rewritten after it.
    truncations: u64,
    /// Reused by every append: the copy with offsets assigned.
    write_buf: Vec<u8>,
    /// Reused by every append: (position in `write_buf`, batch) pairs.
    staged: Vec<(u64, BatchSummary)>,
    /// Reused by a follower's append: (epoch, first offset) of each
    /// replicated batch that starts an epoch above the cache's latest.
    staged_epochs: Vec<(i32, i64)>,
    recovery_report: RecoveryReport,
    /// Compaction's clean point: offsets below it were compacted since
    /// the log opened (kept in memory only, see `compact.rs`).
    clean_offset: i64,
    /// Which leader epoch wrote from which offset (`leader_epochs`),
    /// mirrored in the partition's `leader-epoch-checkpoint`.
    epochs: EpochCache,
}

/// How far a log can be trusted after an IO failure (see "Failures" in
/// the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogHealth {
    /// Reads and writes.
    Healthy,
    /// A failed append could not be undone yet: the active segment's file
    /// may hold bytes past its last batch. Reads are served; the next
    /// append cuts them first and is refused while that fails.
    TailUnrepaired,
    /// An fsync failed: the page cache may hold data the disk lost. Writes
    /// are refused until the log is reopened; reads are served below the
    /// recovery point, which only earlier successful fsyncs moved.
    ReadOnly { op: &'static str },
    /// The in-memory log no longer matches the disk (a compaction swap
    /// failed half-way): nothing is served until the log is reopened.
    Offline { op: &'static str },
}

/// What a failure that cannot be undone took away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lost {
    Writes,
    Everything,
}

/// The log's failure state; shared with in-flight flushes so that an
/// fsync error fails the log even if nobody completes the flush.
#[derive(Debug, Default)]
struct Health {
    /// The first failure that cannot be undone, and what it took away. A
    /// later failure may widen it (writes -> everything), never narrow it.
    failure: Cell<Option<(&'static str, Lost)>>,
    /// A failed append left bytes past the active segment's last batch
    /// that truncating them away has not managed yet.
    torn_tail: Cell<bool>,
}

impl Health {
    /// An fsync (or an unrepairable truncation) failed: no more writes.
    fn fail_writes(&self, op: &'static str) {
        if self.failure.get().is_none() {
            self.failure.set(Some((op, Lost::Writes)));
        }
    }

    /// The in-memory state no longer matches the disk: nothing is served.
    fn fail_everything(&self, op: &'static str) {
        if !matches!(self.failure.get(), Some((_, Lost::Everything))) {
            self.failure.set(Some((op, Lost::Everything)));
        }
    }

    /// May the log be read at all.
    fn check(&self) -> Result<(), LogError> {
        match self.failure.get() {
            Some((op, Lost::Everything)) => Err(LogError::Failed { op }),
            _ => Ok(()),
        }
    }

    /// May the log be changed (append, flush, retention, truncation,
    /// compaction, close).
    fn check_write(&self) -> Result<(), LogError> {
        match self.failure.get() {
            Some((op, Lost::Everything)) => Err(LogError::Failed { op }),
            Some((op, Lost::Writes)) => Err(LogError::ReadOnly { op }),
            None => Ok(()),
        }
    }

    fn writes_lost(&self) -> bool {
        self.failure.get().is_some()
    }

    fn state(&self) -> LogHealth {
        match self.failure.get() {
            Some((op, Lost::Everything)) => LogHealth::Offline { op },
            Some((op, Lost::Writes)) => LogHealth::ReadOnly { op },
            None if self.torn_tail.get() => LogHealth::TailUnrepaired,
            None => LogHealth::Healthy,
        }
    }
}

impl<S: Storage + Clone> Log<S> {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Applies changed topic configs; they take effect from the next append
    /// (roll) or retention pass.
    pub fn set_config(&mut self, config: LogConfig) -> Result<(), LogError> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// The first offset a reader may fetch.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The offset the next appended record gets.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    /// Every offset below this is durable (the recovery point).
    pub fn flushed_offset(&self) -> i64 {
        self.recovery_point
    }

    /// Bytes of all segments' batches.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|segment| segment.size_bytes).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.segments.iter().map(Segment::info).collect()
    }

    /// What `open` found and repaired.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery_report
    }

    /// The operation whose failure took writes (or everything) away, if
    /// any.
    pub fn failed_op(&self) -> Option<&'static str> {
        self.health.failure.get().map(|(op, _)| op)
    }

    /// What the log still serves after IO failures.
    pub fn health(&self) -> LogHealth {
        self.health.state()
    }

    /// The end (exclusive) of what a read may return: the log end, or the
    /// recovery point once an fsync failed (what is above it may exist in
    /// the page cache only, and may not be what the disk holds).
    fn readable_end_offset(&self) -> i64 {
        match self.health.writes_lost() {
            true => self.recovery_point,
            false => self.log_end_offset(),
        }
    }

    fn active(&self) -> &Segment<S::File> {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment<S::File> {
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }

    /// Index of the segment holding `offset`: the last one whose base is at
    /// or below it (the first one for offsets below every base).
    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|segment| segment.base_offset <= offset)
            .saturating_sub(1)
    }

    fn out_of_range(&self, offset: i64) -> LogError {
        LogError::OffsetOutOfRange {
            offset,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset(),
        }
    }
}
