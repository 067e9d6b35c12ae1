//! The append path, the broker's hottest: one copy of the request's batches
//! with offsets and leader epoch rewritten, one write into the page cache,
//! in-memory index updates. No reads, no per-batch allocation.

use std::rc::Rc;

use bytes::Bytes;
use rafka_proto::record::{
    batch_size_bytes, set_base_offset, set_max_timestamp, set_partition_leader_epoch, BatchError,
    BatchHeader, TimestampType, MAGIC_V2,
};

use super::error::LogError;
use super::segment::{segment_file_name, BatchSummary, Segment, SegmentFileKind, NO_TIMESTAMP};
use super::Log;
use crate::io::{Storage, StorageFile};

/// The copy buffer is kept between appends up to this size; a larger one
/// (a rare huge produce) is freed, so an idle partition holds little memory.
const WRITE_BUF_RETAINED_BYTES_MAX: usize = 256 << 10;

/// The result of one append, what a Produce response needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended (the response's base offset).
    pub first_offset: i64,
    pub last_offset: i64,
    /// Largest batch max timestamp of the append (after LogAppendTime).
    pub max_timestamp: i64,
    /// Last offset of the first batch that carried `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    /// The time stamped on the batches under LogAppendTime.
    pub log_append_time_ms: Option<i64>,
    pub log_start_offset: i64,
    pub batch_count: u32,
    pub size_bytes: u64,
}

/// What staging learned about the batches of one append.
/// How an append treats the batches' offsets and epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    /// The leader's: offsets from the log end, its leader epoch, and the
    /// log append time when the topic asks for it.
    Leader { leader_epoch: i32 },
    /// A follower's: the leader's batches exactly as they are (offsets,
    /// epochs, timestamps), continuing the log.
    Replica,
}

struct Staged {
    offset_span: i64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
}

impl<S: Storage + Clone> Log<S> {
    /// Appends one or more whole v2 batches (a produce request's records for
    /// this partition, already validated): assigns offsets from the log end,
    /// stamps `leader_epoch`, rolls if needed and writes them to the active
    /// segment. The data is in the page cache, not yet durable: see
    /// [`Log::flush_begin`]. All batches of one append land in one segment.
    pub async fn append(
        &mut self,
        batches: &Bytes,
        leader_epoch: i32,
    ) -> Result<AppendInfo, LogError> {
        self.append_stamped(batches, Stamp::Leader { leader_epoch })
            .await
    }

    /// A follower's append of batches fetched from the leader, byte for
    /// byte: their offsets, leader epochs and timestamps are the leader's,
    /// so the first must start at this log's end and each continue the
    /// one before (NotContiguous otherwise, nothing written).
    pub async fn append_replicated(&mut self, batches: &Bytes) -> Result<AppendInfo, LogError> {
        self.append_stamped(batches, Stamp::Replica).await
    }

    async fn append_stamped(
        &mut self,
        batches: &Bytes,
        stamp: Stamp,
    ) -> Result<AppendInfo, LogError> {
        self.health.check_write()?;
        if self.health.torn_tail.get() {
            self.cut_torn_tail().await?;
        }
        let now_ms = self.clock.now_ms();
        let append_time_ms = match (stamp, self.config.message_timestamp_type) {
            (Stamp::Leader { .. }, TimestampType::LogAppendTime) => Some(now_ms),
            _ => None,
        };
        let first_offset = self.log_end_offset();
        let staged = self.stage(batches, first_offset, stamp, append_time_ms)?;
        if self.should_roll(staged.offset_span, now_ms) {
            self.roll(now_ms).await?;
        }
        // A new epoch is on disk before its first batch (`leader_epochs`).
        match stamp {
            Stamp::Leader { leader_epoch } => {
                self.assign_new_epoch(leader_epoch, first_offset).await?;
            }
            Stamp::Replica => {
                for i in 0..self.staged_epochs.len() {
                    let (epoch, start_offset) = self.staged_epochs[i];
                    self.assign_new_epoch(epoch, start_offset).await?;
                }
            }
        }
        let active = self
            .segments
            .last_mut()
            .expect("a log always has an active segment");
        let position = active.size_bytes;
        if let Err(error) = active.log_file.write_at(position, &self.write_buf).await {
            // Nothing in memory moved; the file may hold part of the append
            // past the last good batch (a short write before ENOSPC). Cut
            // it now, or before the next append if that fails too (see
            // "Failures" in the module doc). The write's error is the
            // answer either way.
            self.health.torn_tail.set(true);
            let _ = self.cut_torn_tail().await;
            return Err(error.into());
        }
        for &(at, batch) in &self.staged {
            active.on_batch(position + at, batch, &self.config);
        }
        active.roll_start_ms.get_or_insert(now_ms);
        self.dirty.mark_file(&active.log_file);
        let size_bytes = self.write_buf.len() as u64;
        if self.write_buf.capacity() > WRITE_BUF_RETAINED_BYTES_MAX {
            self.write_buf = Vec::new();
        }
        Ok(AppendInfo {
            first_offset,
            last_offset: first_offset + staged.offset_span - 1,
            max_timestamp: staged.max_timestamp,
            offset_of_max_timestamp: staged.offset_of_max_timestamp,
            log_append_time_ms: append_time_ms,
            log_start_offset: self.log_start_offset,
            batch_count: self.staged.len() as u32,
            size_bytes,
        })
    }

    /// Copies `batches` into `write_buf` with offsets from `first_offset`,
    /// checking what the log relies on: whole v2 batches within
    /// max.message.bytes whose offsets fit one segment.
    fn stage(
        &mut self,
        batches: &Bytes,
        first_offset: i64,
        stamp: Stamp,
        append_time_ms: Option<i64>,
    ) -> Result<Staged, LogError> {
        if batches.is_empty() {
            return Err(LogError::EmptyAppend);
        }
        if batches.len() > super::config::SEGMENT_BYTES_MAX as usize {
            return Err(LogError::BatchTooLarge {
                size_bytes: batches.len(),
                limit_bytes: super::config::SEGMENT_BYTES_MAX,
            });
        }
        self.write_buf.clear();
        self.write_buf.extend_from_slice(batches);
        self.staged.clear();
        self.staged_epochs.clear();
        let mut latest_epoch = self.epochs.latest_epoch().unwrap_or(-1);
        let mut staged = Staged {
            offset_span: 0,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: first_offset,
        };
        let mut position = 0usize;
        while position < self.write_buf.len() {
            let batch = &mut self.write_buf[position..];
            let header = check_appended_batch(batch, self.config.max_message_bytes)
                .map_err(|error| error.at(position))?;
            let size_bytes = header.size_bytes();
            let batch = &mut batch[..size_bytes];
            let base_offset = first_offset + staged.offset_span;
            match stamp {
                Stamp::Leader { leader_epoch } => {
                    set_base_offset(batch, base_offset);
                    set_partition_leader_epoch(batch, leader_epoch);
                }
                Stamp::Replica if header.base_offset != base_offset => {
                    return Err(LogError::NotContiguous {
                        expected: base_offset,
                        found: header.base_offset,
                    });
                }
                Stamp::Replica => {
                    if header.partition_leader_epoch > latest_epoch {
                        latest_epoch = header.partition_leader_epoch;
                        self.staged_epochs.push((latest_epoch, base_offset));
                    }
                }
            }
            let max_timestamp = match append_time_ms {
                Some(now_ms) => {
                    // Kafka's validator does this too; the CRC is refreshed.
                    set_max_timestamp(batch, TimestampType::LogAppendTime, now_ms);
                    now_ms
                }
                None => header.max_timestamp,
            };
            let last_offset = base_offset + i64::from(header.last_offset_delta);
            if max_timestamp > staged.max_timestamp {
                staged.max_timestamp = max_timestamp;
                staged.offset_of_max_timestamp = last_offset;
            }
            self.staged.push((
                position as u64,
                BatchSummary {
                    last_offset,
                    max_timestamp,
                    size_bytes: size_bytes as u64,
                },
            ));
            staged.offset_span += i64::from(header.last_offset_delta) + 1;
            position += size_bytes;
        }
        if staged.offset_span - 1 > i64::from(i32::MAX) {
            return Err(LogError::OffsetSpanTooLarge {
                span: staged.offset_span,
            });
        }
        Ok(staged)
    }

    /// Truncates the active segment's file back to the end of its last
    /// batch, undoing what a failed append wrote past it. The in-memory
    /// log never moved for that append, so nothing below the log end is
    /// rewritten: no flush needs invalidating, and the truncation itself
    /// becomes durable with the next flush of the file.
    async fn cut_torn_tail(&mut self) -> Result<(), LogError> {
        let active = self.active();
        active.log_file.truncate(active.size_bytes).await?;
        let file = Rc::clone(&active.log_file);
        self.dirty.mark_file(&file);
        self.health.torn_tail.set(false);
        Ok(())
    }

    /// Kafka's roll rules, checked once per append.
    fn should_roll(&self, offset_span: i64, now_ms: i64) -> bool {
        let active = self.active();
        if active.is_empty() {
            return false;
        }
        let append_bytes = self.write_buf.len() as u64;
        let too_big = active.size_bytes + append_bytes > u64::from(self.config.segment_bytes);
        let too_old = active
            .roll_start_ms
            .is_some_and(|start_ms| now_ms.saturating_sub(start_ms) > self.config.segment_ms);
        let last_offset = active.next_offset + offset_span - 1;
        let offsets_overflow = last_offset - active.base_offset > i64::from(i32::MAX);
        too_big || too_old || offsets_overflow || active.is_index_full(&self.config)
    }

    /// Closes the active segment (writes its indexes) and starts a new one
    /// at the log end offset.
    pub(super) async fn roll(&mut self, now_ms: i64) -> Result<(), LogError> {
        let new_base = self.log_end_offset();
        let storage = self.storage.clone();
        let closing = self.active_mut();
        closing.seal_time_index();
        // On failure the closing segment stays active and the next append
        // retries the roll: index files are written whole each time, and
        // recovery rebuilds the active segment's anyway.
        let index_files = closing.write_indexes(&storage).await?;
        for file in &index_files {
            self.dirty.mark_file(file);
        }
        let log_path = self
            .dir
            .join(segment_file_name(new_base, SegmentFileKind::Log));
        let log_file = Rc::new(self.storage.open(&log_path).await?);
        let mut segment = Segment::new(new_base, log_path, log_file);
        segment.roll_start_ms = Some(now_ms);
        self.segments.push(segment);
        self.dirty.mark_dir();
        Ok(())
    }
}

/// Why one batch of an append was refused, before its position is known.
enum AppendedBatchError {
    Invalid(BatchError),
    TooLarge { size_bytes: usize, limit_bytes: u32 },
}

impl AppendedBatchError {
    fn at(self, position: usize) -> LogError {
        match self {
            AppendedBatchError::Invalid(source) => LogError::InvalidBatch { position, source },
            AppendedBatchError::TooLarge {
                size_bytes,
                limit_bytes,
            } => LogError::BatchTooLarge {
                size_bytes,
                limit_bytes,
            },
        }
    }
}

/// The structural checks of a batch at the start of `rest`. The CRC is the
/// produce validator's job (done once, before the append); recovery checks
/// it again when reading the segment back.
fn check_appended_batch(rest: &[u8], limit_bytes: u32) -> Result<BatchHeader, AppendedBatchError> {
    let size_bytes = batch_size_bytes(rest).map_err(AppendedBatchError::Invalid)?;
    if size_bytes > rest.len() {
        return Err(AppendedBatchError::Invalid(BatchError::Truncated {
            needed_bytes: size_bytes,
            available_bytes: rest.len(),
        }));
    }
    let header = BatchHeader::decode(rest).map_err(AppendedBatchError::Invalid)?;
    if header.magic != MAGIC_V2 {
        return Err(AppendedBatchError::Invalid(BatchError::BadMagic(
            header.magic,
        )));
    }
    if header.last_offset_delta < 0 {
        return Err(AppendedBatchError::Invalid(BatchError::CountMismatch {
            count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        }));
    }
    if size_bytes > limit_bytes as usize {
        return Err(AppendedBatchError::TooLarge {
            size_bytes,
            limit_bytes,
        });
    }
    Ok(header)
}
