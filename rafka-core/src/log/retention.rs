//! Shrinking the log: retention by time and size, raising the log start
//! offset (DeleteRecords), truncation (replication), and the end of a
//! log's life (close, delete).
//!
//! Retention and the log start offset only ever delete whole closed
//! segments; the active one is kept even if everything in it is expired.
//! Segments without any timestamp (max timestamp -1) are never expired by
//! time (Kafka falls back to the file's mtime there, which the storage
//! trait does not expose).

use std::io::ErrorKind;
use std::rc::Rc;

use super::checkpoint::write_partition_log_start;
use super::error::LogError;
use super::scan::HeaderScanner;
use super::segment::{segment_file_name, BatchSummary, Segment, SegmentFileKind, NO_TIMESTAMP};
use super::Log;
use crate::io::{Storage, StorageFile};

/// What a retention pass or log start offset change removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_deleted: u32,
    pub bytes_deleted: u64,
    pub log_start_offset: i64,
}

/// The offsets a cleanly closed log leaves for the checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClosedLog {
    pub log_start_offset: i64,
    pub recovery_point: i64,
}

impl<S: Storage + Clone> Log<S> {
    /// Deletes the oldest closed segments breaching `retention.ms` (their max
    /// timestamp older than `now_ms - retention.ms`), then those the log
    /// can lose while staying above `retention.bytes`. Only with `delete`
    /// in `cleanup.policy`: a compact-only log keeps every key's latest
    /// value however old (Kafka's semantics).
    pub async fn apply_retention(&mut self, now_ms: i64) -> Result<RetentionOutcome, LogError> {
        self.apply_retention_below(now_ms, i64::MAX).await
    }

    /// [`Log::apply_retention`] of the segments wholly below `upper_offset`
    /// only: a partition passes its high watermark, as Kafka does, so the
    /// log start never passes what consumers may read (nor data that is
    /// not durable yet).
    pub async fn apply_retention_below(
        &mut self,
        now_ms: i64,
        upper_offset: i64,
    ) -> Result<RetentionOutcome, LogError> {
        self.health.check_write()?;
        let active = self.segments.len() - 1;
        let closed = self.segments[..active].partition_point(|s| s.next_offset <= upper_offset);
        let mut count = 0;
        if !self.config.cleanup_delete {
            return self.delete_oldest(0).await;
        }
        if self.config.retention_ms >= 0 {
            while count < closed {
                let max_timestamp = self.segments[count].max_timestamp;
                let expired = max_timestamp != NO_TIMESTAMP
                    && now_ms.saturating_sub(max_timestamp) > self.config.retention_ms;
                if !expired {
                    break;
                }
                count += 1;
            }
        }
        if self.config.retention_bytes >= 0 {
            let kept_bytes: u64 = self.segments[count..].iter().map(|s| s.size_bytes).sum();
            let mut excess_bytes = kept_bytes.saturating_sub(self.config.retention_bytes as u64);
            while count < closed && self.segments[count].size_bytes <= excess_bytes {
                excess_bytes -= self.segments[count].size_bytes;
                count += 1;
            }
        }
        self.delete_oldest(count).await
    }

    /// Raises the log start offset (DeleteRecords) and deletes the closed
    /// segments wholly below it. Offsets past the log end are refused. The
    /// new start is durable when this returns (the partition's own
    /// `log-start-offset` file), so records deleted stay deleted after a
    /// crash.
    pub async fn raise_log_start_offset(
        &mut self,
        offset: i64,
    ) -> Result<RetentionOutcome, LogError> {
        self.health.check_write()?;
        if offset > self.log_end_offset() {
            return Err(self.out_of_range(offset));
        }
        if offset <= self.log_start_offset {
            return Ok(RetentionOutcome {
                segments_deleted: 0,
                bytes_deleted: 0,
                log_start_offset: self.log_start_offset,
            });
        }
        // Durable first: a crash after it finds the start raised and cuts
        // what is below; one before it lost nothing that was answered.
        write_partition_log_start(&self.storage, &self.dir, offset).await?;
        self.apply_log_start_offset(offset).await
    }

    /// Empties the log and starts it at `offset` (Kafka's
    /// `truncateFullyAndStartAt`): a follower whose leader's log starts
    /// beyond everything it holds, or an empty log whose first batch from
    /// the leader starts below its start (the leader's log start fell
    /// inside that batch). Durable on return, the new log start too. Any
    /// other `offset` (at or below the end of a log holding records)
    /// changes nothing.
    pub async fn restart_at(&mut self, offset: i64) -> Result<(), LogError> {
        self.health.check_write()?;
        let empty = self.log_start_offset == self.log_end_offset();
        if offset == self.log_end_offset() || (offset < self.log_end_offset() && !empty) {
            return Ok(());
        }
        write_partition_log_start(&self.storage, &self.dir, offset).await?;
        self.truncate_fully_and_start_at(offset).await
    }

    /// Sets the log start offset to at least `offset`; past the log end
    /// (a checkpoint ahead of a lost tail) the log restarts empty there.
    pub(super) async fn apply_log_start_offset(
        &mut self,
        offset: i64,
    ) -> Result<RetentionOutcome, LogError> {
        if offset > self.log_end_offset() {
            let deleted = self.segments.len() as u32;
            let bytes_deleted = self.size_bytes();
            self.truncate_fully_and_start_at(offset).await?;
            return Ok(RetentionOutcome {
                segments_deleted: deleted,
                bytes_deleted,
                log_start_offset: offset,
            });
        }
        self.log_start_offset = self.log_start_offset.max(offset);
        let closed = self.segments.len() - 1;
        let count =
            self.segments[..closed].partition_point(|s| s.next_offset <= self.log_start_offset);
        self.delete_oldest(count).await
    }

    /// Removes the first `count` segments (never the active one); the
    /// leader epochs follow the log start.
    async fn delete_oldest(&mut self, count: usize) -> Result<RetentionOutcome, LogError> {
        assert!(
            count < self.segments.len(),
            "the active segment is never deleted"
        );
        let removed: Vec<_> = self.segments.drain(..count).collect();
        self.log_start_offset = self.log_start_offset.max(self.segments[0].base_offset);
        let bytes_deleted = removed.iter().map(|s| s.size_bytes).sum();
        for segment in &removed {
            self.delete_segment_files(segment.base_offset).await?;
        }
        self.epochs_after_start_moved().await?;
        Ok(RetentionOutcome {
            segments_deleted: removed.len() as u32,
            bytes_deleted,
            log_start_offset: self.log_start_offset,
        })
    }

    /// Unlinks a segment's files; readers holding its `Rc` keep reading.
    async fn delete_segment_files(&mut self, base_offset: i64) -> Result<(), LogError> {
        for kind in [
            SegmentFileKind::OffsetIndex,
            SegmentFileKind::TimeIndex,
            SegmentFileKind::TxnIndex,
            SegmentFileKind::Log,
        ] {
            let path = self.dir.join(segment_file_name(base_offset, kind));
            match self.storage.remove_file(&path).await {
                Ok(()) => {}
                // The active segment's indexes exist only once it closed.
                Err(error) if error.kind() == ErrorKind::NotFound => {}
                Err(error) => return Err(error.into()),
            }
        }
        self.dirty.mark_dir();
        Ok(())
    }

    /// Removes every batch holding an offset at or above `offset` (a batch
    /// straddling it goes whole, so the log end may land below `offset`).
    /// The truncation is synced before returning. At or past the log end
    /// no batch goes, but a leader-epoch entry starting at the log end
    /// does (Kafka's `truncateTo`: a former leader's epoch that never got
    /// a batch conflicts with the new leader's history).
    pub async fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        self.health.check_write()?;
        if offset >= self.log_end_offset() {
            return self.epochs_after_truncation(false).await;
        }
        if offset < self.segments[0].base_offset {
            return self.truncate_fully_and_start_at(offset).await;
        }
        let index = self.segment_index_for(offset);
        let position = match self.segments[index].find_batch(offset).await? {
            Some((position, _)) => position,
            None => self.segments[index].size_bytes,
        };
        // Everything that can fail on reading happens before any change.
        let rebuilt = reindex_prefix(&self.segments[index], position, &self.config).await?;
        let removed: Vec<_> = self.segments.drain(index + 1..).collect();
        let segment = &mut self.segments[index];
        *segment = rebuilt;
        if let Err(error) = segment.log_file.truncate(position).await {
            self.health.fail_writes("truncate");
            return Err(error.into());
        }
        self.dirty.mark_file(&segment.log_file);
        let next_offset = segment.next_offset;
        for segment in &removed {
            self.delete_segment_files(segment.base_offset).await?;
        }
        self.cut_txn_index(index, next_offset).await?;
        self.after_truncation().await?;
        self.epochs_after_truncation(false).await
    }

    /// Deletes every segment and starts an empty one at `offset`, which
    /// becomes the log start offset.
    async fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        let log_path = self
            .dir
            .join(segment_file_name(offset, SegmentFileKind::Log));
        let log_file = Rc::new(self.storage.open(&log_path).await?);
        if let Err(error) = log_file.truncate(0).await {
            self.health.fail_writes("truncate");
            return Err(error.into());
        }
        let removed: Vec<_> = self.segments.drain(..).collect();
        self.dirty.mark_file(&log_file);
        self.segments.push(Segment::new(offset, log_path, log_file));
        self.log_start_offset = offset;
        for segment in removed
            .iter()
            .filter(|segment| segment.base_offset != offset)
        {
            self.delete_segment_files(segment.base_offset).await?;
        }
        // The reused name's old aborted entries describe gone offsets.
        let txn_index = self
            .dir
            .join(segment_file_name(offset, SegmentFileKind::TxnIndex));
        super::compact_swap::remove_if_present(&self.storage, &txn_index).await?;
        self.after_truncation().await?;
        self.epochs_after_truncation(true).await
    }

    async fn after_truncation(&mut self) -> Result<(), LogError> {
        self.truncations += 1;
        self.log_start_offset = self.log_start_offset.min(self.log_end_offset());
        self.recovery_point = self.recovery_point.min(self.log_end_offset());
        self.flush().await?;
        Ok(())
    }

    /// Closes cleanly: writes the active segment's indexes and syncs
    /// everything. The shard then writes the checkpoints and, once all its
    /// logs are closed, the clean shutdown marker.
    pub async fn close(mut self) -> Result<ClosedLog, LogError> {
        self.health.check_write()?;
        let storage = self.storage.clone();
        let active = self.active_mut();
        active.seal_time_index();
        let index_files = active.write_indexes(&storage).await?;
        for file in &index_files {
            self.dirty.mark_file(file);
        }
        let recovery_point = self.flush().await?;
        Ok(ClosedLog {
            log_start_offset: self.log_start_offset,
            recovery_point,
        })
    }

    /// Removes the partition directory and everything in it.
    pub async fn delete(self) -> Result<(), LogError> {
        self.storage.remove_dir_all(&self.dir).await?;
        if let Some(parent) = self.dir.parent() {
            self.storage.sync_dir(parent).await?;
        }
        Ok(())
    }
}

/// A copy of `segment` holding only its batches before `end` (a batch
/// start), with indexes rebuilt by walking their headers. Truncation is
/// rare (replica divergence), so a full walk beats bookkeeping to undo
/// index entries incrementally.
async fn reindex_prefix<F: StorageFile>(
    segment: &Segment<F>,
    end: u64,
    config: &super::LogConfig,
) -> Result<Segment<F>, LogError> {
    let mut rebuilt = Segment::new(
        segment.base_offset,
        segment.log_path.clone(),
        Rc::clone(&segment.log_file),
    );
    if end > 0 {
        rebuilt.roll_start_ms = segment.roll_start_ms;
    }
    // Entries past the cut go with `Log::cut_txn_index`.
    rebuilt.aborted = segment.aborted.clone();
    rebuilt.txn_file = segment.txn_file.clone();
    let mut scanner = HeaderScanner::new(&*segment.log_file, &segment.log_path, end);
    let mut position = 0;
    while position < end {
        let header = scanner.header_at(position).await?;
        let batch = BatchSummary::from(&header);
        rebuilt.on_batch(position, batch, config);
        position += batch.size_bytes;
    }
    Ok(rebuilt)
}
