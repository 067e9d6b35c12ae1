//! The log's memory of leader epochs ([`EpochCache`]) kept in step with
//! its batches, and answered from (OffsetForLeaderEpoch).
//!
//! - An append whose epoch is above the latest one assigns it at the
//!   append's first offset; the checkpoint is written (and synced) before
//!   the batches, so the file is never behind the log: an epoch the disk
//!   holds batches of is in the file. An append in the latest epoch costs
//!   one comparison.
//! - A truncation (replication) drops the entries starting at or after the
//!   new log end; emptying the log clears them. Both write the file after
//!   the truncation is synced.
//! - A rising log start (retention, DeleteRecords) moves the first entry
//!   up to it (Kafka's `truncateFromStart`). Compaction keeps epochs.
//! - [`Log::open`] loads the file, drops entries past the log end (a crash
//!   between a truncation and its file write, or between an epoch's file
//!   write and its first batch reaching the disk) and moves the first
//!   entry to the log start. If the file is missing (data dirs of older
//!   rafka: every batch has epoch 0), unreadable, breaks the invariant, or
//!   does not cover the last batch with that batch's epoch, the entries
//!   are rebuilt from the batches' partitionLeaderEpoch (see
//!   [`Log::rebuild_epochs`]) and written.

use rafka_proto::record::BatchHeader;

use super::checkpoint::CheckpointError;
use super::epoch_cache::{read_epoch_checkpoint, write_epoch_checkpoint, EpochCache, EpochEntry};
use super::error::LogError;
use super::scan::HeaderScanner;
use super::segment::Segment;
use super::Log;
use crate::io::{Storage, StorageFile};

/// Why `open` rebuilt the epoch entries from the batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochRebuild {
    /// No `leader-epoch-checkpoint` (a new log, or one older rafka wrote).
    Missing,
    /// The file is not Kafka's format, or too large.
    Malformed,
    /// Its entries are not strictly increasing or are negative.
    Invalid,
    /// Its entries do not give the last batch that batch's epoch.
    Stale,
}

impl<S: Storage + Clone> Log<S> {
    /// The latest leader epoch: the one that wrote (or will write) the
    /// batches at the log end. None for a log that never had one.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `requested` and
    /// where it ends in this log (Kafka's `UnifiedLog.endOffsetForEpoch`,
    /// see [`EpochCache::end_offset_for`]); (-1, -1) when unknown.
    pub fn end_offset_for_epoch(&self, requested: i32) -> (i32, i64) {
        self.epochs.end_offset_for(requested, self.log_end_offset())
    }

    /// The epoch entries, oldest first (what a follower compares).
    pub fn epoch_entries(&self) -> &[EpochEntry] {
        self.epochs.entries()
    }

    /// The epoch of the batch holding `offset`, as far as the entries tell.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.epochs.epoch_for_offset(offset)
    }

    /// A leader taking over with `epoch` (Kafka's
    /// `maybeAssignEpochStartOffset(epoch, logEndOffset)`): the epoch
    /// starts at the log end, before any batch of it, so OffsetForLeaderEpoch
    /// knows the current epoch. Only an epoch above the latest is
    /// assigned; returns whether it was.
    pub async fn assign_epoch_at_end(&mut self, epoch: i32) -> Result<bool, LogError> {
        self.health.check_write()?;
        self.assign_new_epoch(epoch, self.log_end_offset()).await
    }

    /// Called by an append before its batches are written: assigns
    /// `epoch` from `start_offset` if it is above the latest one, writing
    /// the file first, so a failure leaves the entries as they were.
    pub(super) async fn assign_new_epoch(
        &mut self,
        epoch: i32,
        start_offset: i64,
    ) -> Result<bool, LogError> {
        if self
            .epochs
            .latest_epoch()
            .is_some_and(|latest| epoch <= latest)
            || epoch < 0
        {
            return Ok(false);
        }
        let mut next = self.epochs.clone();
        if !next.assign(epoch, start_offset) {
            return Ok(false);
        }
        write_epoch_checkpoint(&self.storage, &self.dir, next.entries()).await?;
        self.epochs = next;
        Ok(true)
    }

    /// After the log start rose: the first entry follows it.
    pub(super) async fn epochs_after_start_moved(&mut self) -> Result<(), LogError> {
        let changed = self.epochs.truncate_from_start(self.log_start_offset);
        self.store_epochs_if(changed).await
    }

    /// After a truncation: entries from the new log end on go (all of them
    /// if the log restarted empty).
    pub(super) async fn epochs_after_truncation(&mut self, emptied: bool) -> Result<(), LogError> {
        let changed = match emptied {
            true => self.epochs.clear(),
            false => self.epochs.truncate_from_end(self.log_end_offset()),
        };
        self.store_epochs_if(changed).await
    }

    async fn store_epochs_if(&mut self, changed: bool) -> Result<(), LogError> {
        if changed {
            write_epoch_checkpoint(&self.storage, &self.dir, self.epochs.entries()).await?;
        }
        Ok(())
    }

    /// `open`'s last step (see the module doc): the entries from the file,
    /// or rebuilt from the batches; written back if they changed.
    pub(super) async fn load_epochs(&mut self) -> Result<(), LogError> {
        let on_disk = match read_epoch_checkpoint(&self.storage, &self.dir).await {
            Ok(on_disk) => on_disk,
            Err(CheckpointError::Io(error)) => return Err(error.into()),
            Err(CheckpointError::Malformed { .. } | CheckpointError::TooLarge { .. }) => None,
        };
        let loaded = match &on_disk {
            None => match self.storage.exists(&self.epoch_checkpoint_path()).await? {
                true => Err(EpochRebuild::Malformed),
                false => Err(EpochRebuild::Missing),
            },
            Some(entries) => EpochCache::from_entries(entries.clone()).ok_or(EpochRebuild::Invalid),
        };
        let fitted = match loaded {
            Ok(mut cache) => {
                self.fit_epochs(&mut cache);
                match self.covers_last_batch(&cache).await? {
                    true => Ok(cache),
                    false => Err(EpochRebuild::Stale),
                }
            }
            Err(cause) => Err(cause),
        };
        self.epochs = match fitted {
            Ok(cache) => cache,
            Err(cause) => {
                self.recovery_report.leader_epochs_rebuilt = Some(cause);
                let mut cache = self.rebuild_epochs().await?;
                self.fit_epochs(&mut cache);
                cache
            }
        };
        if on_disk.as_deref() != Some(self.epochs.entries()) {
            write_epoch_checkpoint(&self.storage, &self.dir, self.epochs.entries()).await?;
        }
        Ok(())
    }

    fn epoch_checkpoint_path(&self) -> std::path::PathBuf {
        self.dir
            .join(super::epoch_cache::LEADER_EPOCH_CHECKPOINT_FILE)
    }

    /// Cuts `cache` to the log: nothing starts past the log end (an entry
    /// at the log end is an epoch that has not written yet, kept), the
    /// first entry starts at the log start.
    fn fit_epochs(&self, cache: &mut EpochCache) {
        cache.truncate_from_end(self.log_end_offset() + 1);
        cache.truncate_from_start(self.log_start_offset);
    }

    /// Whether `cache` gives the log's last batch (if it holds one at or
    /// above the log start) that batch's epoch.
    async fn covers_last_batch(&self, cache: &EpochCache) -> Result<bool, LogError> {
        let Some(last) = self.last_batch_header().await? else {
            return Ok(true);
        };
        if last.last_offset() < self.log_start_offset || last.partition_leader_epoch < 0 {
            return Ok(true);
        }
        let offset = last.base_offset.max(self.log_start_offset);
        Ok(cache.epoch_for_offset(offset) == Some(last.partition_leader_epoch))
    }

    /// The header of the log's last batch; None if it has none. Corrupt
    /// data reads as None (recovery already cut what it checks).
    async fn last_batch_header(&self) -> Result<Option<BatchHeader>, LogError> {
        let Some(segment) = self.segments.iter().rev().find(|s| !s.is_empty()) else {
            return Ok(None);
        };
        match last_header(segment).await {
            Ok(header) => Ok(Some(header)),
            Err(LogError::Corrupt { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The entries the batches' partitionLeaderEpoch give (Kafka's
    /// `assign` of every batch, in log order). A segment whose first and
    /// last batches share an epoch holds only that one (epochs never go
    /// down along a log), so it costs two header reads; only a segment
    /// where the epoch changes is walked batch by batch. A segment whose
    /// headers do not parse contributes what was read before the damage.
    pub(super) async fn rebuild_epochs(&self) -> Result<EpochCache, LogError> {
        let mut cache = EpochCache::default();
        for segment in self.segments.iter().filter(|s| !s.is_empty()) {
            match assign_segment_epochs(segment, &mut cache).await {
                Ok(()) | Err(LogError::Corrupt { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(cache)
    }
}

async fn assign_segment_epochs<F: StorageFile>(
    segment: &Segment<F>,
    cache: &mut EpochCache,
) -> Result<(), LogError> {
    let mut scanner = HeaderScanner::new(&*segment.log_file, &segment.log_path, segment.size_bytes);
    let first = scanner.header_at(0).await?;
    cache.assign(first.partition_leader_epoch, first.base_offset);
    let last = last_header(segment).await?;
    if last.partition_leader_epoch == first.partition_leader_epoch {
        return Ok(());
    }
    let mut position = first.size_bytes() as u64;
    while position < segment.size_bytes {
        let header = scanner.header_at(position).await?;
        cache.assign(header.partition_leader_epoch, header.base_offset);
        position += header.size_bytes() as u64;
    }
    Ok(())
}

/// The header of a non-empty segment's last batch: a walk from its last
/// offset index entry (at most an index interval of bytes).
async fn last_header<F: StorageFile>(segment: &Segment<F>) -> Result<BatchHeader, LogError> {
    let mut scanner = HeaderScanner::new(&*segment.log_file, &segment.log_path, segment.size_bytes);
    let mut position = segment
        .offset_index
        .last()
        .map_or(0, |entry| u64::from(entry.position));
    loop {
        let header = scanner.header_at(position).await?;
        let next = position + header.size_bytes() as u64;
        if next >= segment.size_bytes {
            return Ok(header);
        }
        position = next;
    }
}
