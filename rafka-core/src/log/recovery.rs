//! Opening a log: find its segments, trust what the recovery point vouches
//! for (after a sanity check of its indexes), revalidate the rest batch by
//! batch, truncate a torn or corrupt tail.
//!
//! Segments wholly below the segment holding the recovery point were synced
//! and validated before: their indexes are checked (entry order and bounds,
//! and the batches their last entries point at) and rebuilt from the log if
//! anything is off. Every segment from the one holding the recovery point
//! on is read back whole: length, magic, CRC32C, offsets increasing and
//! within the segment. The first bad batch ends the log: the segment is
//! truncated there and later segments are deleted, so a corrupt batch is
//! never served and no valid batch below the recovery point is lost. With
//! the clean shutdown marker nothing is rescanned except the active
//! segment's tail past its last index entry.
//!
//! Whatever recovery rewrote (truncated logs, rebuilt indexes, deletions)
//! is synced before `open` returns, and the recovery point then starts at
//! the log end offset.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use rafka_proto::record::{batch_size_bytes, validate, LOG_OVERHEAD_BYTES};

use super::checkpoint::read_partition_log_start;
use super::config::{LogConfig, SEGMENT_BYTES_MAX};
use super::epoch_cache::EpochCache;
use super::error::{CorruptKind, LogError};
use super::flush::DirtyFiles;
use super::leader_epochs::EpochRebuild;
use super::offset_index::OffsetIndex;
use super::scan::{check_header, read_full, HeaderScanner, OffsetRules};
use super::segment::{
    parse_segment_file_name, segment_file_name, Segment, SegmentFileKind, NO_TIMESTAMP,
};
use super::time_index::TimeIndex;
use super::{Health, Log};
use crate::io::{Clock, Storage, StorageFile};

/// Bytes read at once while revalidating a segment.
const RECOVERY_CHUNK_BYTES: u64 = 1 << 20;

/// What the data dir's checkpoints and marker say about this partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryHints {
    /// From `recovery-point-offset-checkpoint`: offsets below it were synced
    /// and validated. None: revalidate every segment.
    pub recovery_point: Option<i64>,
    /// From `log-start-offset-checkpoint`.
    pub log_start_offset: Option<i64>,
    /// The data dir held the clean shutdown marker.
    pub clean_shutdown: bool,
}

/// What `open` found and did. rafka-core does no logging: the shard that
/// opens the partition logs each truncation and index rebuild at WARN with
/// the partition's name and counts them in its metrics; tests assert the
/// same facts here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments_loaded: u32,
    /// Segments revalidated batch by batch (at or past the recovery point).
    pub segments_rescanned: u32,
    /// Segments below the recovery point whose index files were missing or
    /// failed the checks, rebuilt from their batches.
    pub indexes_rebuilt: u32,
    /// Bytes cut off the end of loaded segments (not counting
    /// `deleted_bytes`).
    pub truncated_bytes: u64,
    /// Segments deleted because they followed a corrupt batch.
    pub segments_deleted: u32,
    /// Bytes of those deleted segments' log files.
    pub deleted_bytes: u64,
    /// The first invalid batch found.
    pub corruption: Option<Corruption>,
    /// Every cut, in log order (a torn tail, or a bad batch and what
    /// followed it in its segment).
    pub truncations: Vec<Truncation>,
    /// Every segment below the recovery point whose indexes were rebuilt
    /// (the rescanned ones are always rebuilt, which is not news).
    pub rebuilt_indexes: Vec<IndexRebuild>,
    /// Why the leader epoch entries were rebuilt from the batches, if they
    /// were (`leader_epochs`).
    pub leader_epochs_rebuilt: Option<EpochRebuild>,
}

/// One segment cut short by recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The segment's `.log` file.
    pub path: PathBuf,
    /// Where the first invalid batch started: the segment's new size.
    pub position: u64,
    pub truncated_bytes: u64,
    /// The first offset no longer in the log (the segment's new end).
    pub first_dropped_offset: i64,
    /// Where the log goes on (the next segment's base offset), or None if
    /// the log now ends here and every later segment was deleted.
    pub resumes_at: Option<i64>,
    pub kind: CorruptKind,
}

/// One segment whose index files were rebuilt from its batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRebuild {
    pub path: PathBuf,
    pub base_offset: i64,
}

/// Where recovery found an invalid batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    pub path: PathBuf,
    pub position: u64,
    pub kind: CorruptKind,
}

/// How a segment was loaded.
struct Loaded {
    /// Its indexes were rebuilt from its batches.
    rebuilt: bool,
    /// Because its index files were missing or failed the checks (not
    /// because its tail was damaged).
    index_invalid: bool,
    /// Where its first invalid batch starts (it was truncated there).
    corrupt: Option<(u64, CorruptKind)>,
}

/// The state of opening: what was found and what must be synced.
struct Loader<'a, S: Storage> {
    storage: &'a S,
    dir: &'a Path,
    config: &'a LogConfig,
    dirty: DirtyFiles<S::File>,
    report: RecoveryReport,
}

impl<S: Storage + Clone> Log<S> {
    /// Opens (creating if needed) the log in `dir` and recovers it.
    pub async fn open(
        storage: S,
        dir: impl Into<PathBuf>,
        config: LogConfig,
        clock: Rc<dyn Clock>,
        hints: RecoveryHints,
    ) -> Result<Self, LogError> {
        config.validate()?;
        let dir = dir.into();
        let mut loader = Loader {
            storage: &storage,
            dir: &dir,
            config: &config,
            dirty: DirtyFiles::default(),
            report: RecoveryReport::default(),
        };
        let bases = loader.discover().await?;
        let mut segments = loader.load_segments(&bases, &hints).await?;
        if segments.is_empty() {
            let base_offset = hints.log_start_offset.unwrap_or(0).max(0);
            segments.push(loader.create_segment(base_offset).await?);
        }
        let now_ms = clock.now_ms();
        let active = segments
            .last_mut()
            .expect("at least one segment was just ensured");
        active.roll_start_ms = loader.roll_start_ms(active, now_ms).await?;
        let dirty = loader.dirty;
        let recovery_report = loader.report;
        let first_base = segments[0].base_offset;
        let mut log = Log {
            storage,
            dir,
            config,
            clock,
            segments,
            log_start_offset: first_base,
            recovery_point: first_base,
            health: Rc::new(Health::default()),
            dirty,
            truncations: 0,
            write_buf: Vec::new(),
            staged: Vec::new(),
            staged_epochs: Vec::new(),
            recovery_report,
            clean_offset: first_base,
            epochs: EpochCache::default(),
        };
        // DeleteRecords' own file wins over an older dir-wide checkpoint.
        let deleted_below = read_partition_log_start(&log.storage, &log.dir).await?;
        let log_start_offset = hints
            .log_start_offset
            .max(deleted_below)
            .unwrap_or(first_base)
            .max(first_base);
        log.apply_log_start_offset(log_start_offset).await?;
        log.load_txn_indexes().await?;
        log.flush().await?;
        // After the flush: the file describes the log as recovered.
        log.load_epochs().await?;
        Ok(log)
    }
}

impl<S: Storage> Loader<'_, S> {
    /// Base offsets of the `.log` files, ascending; removes index files
    /// whose log is gone (a crash in the middle of a deletion).
    async fn discover(&mut self) -> Result<Vec<i64>, LogError> {
        if !self.storage.exists(self.dir).await? {
            self.storage.create_dir_all(self.dir).await?;
            if let Some(parent) = self.dir.parent() {
                self.storage.sync_dir(parent).await?;
            }
        }
        // A compaction cut short: drop its unfinished files, complete the
        // durable ones, before the segments are listed.
        if super::compact_swap::finish_leftovers(self.storage, self.dir).await? {
            self.dirty.mark_dir();
        }
        let mut bases = BTreeSet::new();
        let mut index_files = Vec::new();
        for name in self.storage.list_dir(self.dir).await? {
            match parse_segment_file_name(&name) {
                Some((base_offset, SegmentFileKind::Log)) => {
                    bases.insert(base_offset);
                }
                Some((base_offset, _)) => index_files.push((base_offset, name)),
                None => {}
            }
        }
        for (base_offset, name) in index_files {
            if !bases.contains(&base_offset) {
                self.storage.remove_file(&self.dir.join(name)).await?;
                self.dirty.mark_dir();
            }
        }
        Ok(bases.into_iter().collect())
    }

    async fn load_segments(
        &mut self,
        bases: &[i64],
        hints: &RecoveryHints,
    ) -> Result<Vec<Segment<S::File>>, LogError> {
        let recover_from = match (hints.clean_shutdown, hints.recovery_point) {
            (true, _) => bases.len(),
            (false, None) => 0,
            (false, Some(recovery_point)) => bases
                .partition_point(|&base| base <= recovery_point)
                .saturating_sub(1),
        };
        let mut segments = Vec::with_capacity(bases.len());
        for (index, &base_offset) in bases.iter().enumerate() {
            let next_base = bases.get(index + 1).copied();
            let (mut segment, file_bytes) = self.open_segment(base_offset).await?;
            let loaded = if index < recover_from {
                self.load_trusted(&mut segment, file_bytes, next_base)
                    .await?
            } else {
                let corrupt =
                    recover_batches(&mut segment, 0, file_bytes, next_base, self.config).await?;
                Loaded {
                    rebuilt: true,
                    index_invalid: false,
                    corrupt,
                }
            };
            // Below the recovery point a corrupt segment loses only its own
            // tail; from it on, offsets after a corrupt batch are not trusted.
            let ends_log =
                next_base.is_none() || (loaded.corrupt.is_some() && index >= recover_from);
            let resumes_at = next_base.filter(|_| !ends_log);
            let rescanned = index >= recover_from;
            self.report_segment(&segment, &loaded, rescanned, file_bytes, resumes_at);
            self.persist_recovered(&mut segment, file_bytes, loaded.rebuilt, ends_log)
                .await?;
            segments.push(segment);
            if ends_log {
                self.delete_segments(&bases[index + 1..]).await?;
                break;
            }
        }
        Ok(segments)
    }

    fn report_segment(
        &mut self,
        segment: &Segment<S::File>,
        loaded: &Loaded,
        rescanned: bool,
        file_bytes: u64,
        resumes_at: Option<i64>,
    ) {
        let report = &mut self.report;
        report.segments_loaded += 1;
        if rescanned {
            report.segments_rescanned += 1;
        } else if loaded.index_invalid {
            report.indexes_rebuilt += 1;
            report.rebuilt_indexes.push(IndexRebuild {
                path: segment.log_path.clone(),
                base_offset: segment.base_offset,
            });
        }
        let truncated_bytes = file_bytes - segment.size_bytes;
        report.truncated_bytes += truncated_bytes;
        let Some((position, kind)) = &loaded.corrupt else {
            return;
        };
        if report.corruption.is_none() {
            report.corruption = Some(Corruption {
                path: segment.log_path.clone(),
                position: *position,
                kind: kind.clone(),
            });
        }
        report.truncations.push(Truncation {
            path: segment.log_path.clone(),
            position: *position,
            truncated_bytes,
            first_dropped_offset: segment.next_offset,
            resumes_at,
            kind: kind.clone(),
        });
    }

    /// Cuts the invalid tail off, writes rebuilt indexes of a closed
    /// segment, and queues all of it for the sync that ends `open`.
    async fn persist_recovered(
        &mut self,
        segment: &mut Segment<S::File>,
        file_bytes: u64,
        rebuilt: bool,
        ends_log: bool,
    ) -> Result<(), LogError> {
        if segment.size_bytes < file_bytes {
            segment.log_file.truncate(segment.size_bytes).await?;
        }
        if rebuilt && !ends_log {
            segment.seal_time_index();
            for file in segment.write_indexes(self.storage).await? {
                self.dirty.mark_file(&file);
            }
        }
        if rebuilt || segment.size_bytes < file_bytes {
            self.dirty.mark_file(&segment.log_file);
        }
        Ok(())
    }

    async fn open_segment(
        &mut self,
        base_offset: i64,
    ) -> Result<(Segment<S::File>, u64), LogError> {
        let log_path = self
            .dir
            .join(segment_file_name(base_offset, SegmentFileKind::Log));
        let log_file = self.storage.open(&log_path).await?;
        let file_bytes = log_file.size().await?;
        Ok((
            Segment::new(base_offset, log_path, Rc::new(log_file)),
            file_bytes,
        ))
    }

    async fn create_segment(&mut self, base_offset: i64) -> Result<Segment<S::File>, LogError> {
        let (segment, _) = self.open_segment(base_offset).await?;
        self.dirty.mark_file(&segment.log_file);
        self.dirty.mark_dir();
        Ok(segment)
    }

    /// Loads a segment below the recovery point. Its indexes are used if
    /// they pass the checks, else rebuilt by rescanning it (which may find a
    /// corrupt tail). The last segment's tail past its last index entry is
    /// always rescanned to find the log end; if that finds damage, the
    /// whole segment is rescanned.
    async fn load_trusted(
        &mut self,
        segment: &mut Segment<S::File>,
        file_bytes: u64,
        next_base: Option<i64>,
    ) -> Result<Loaded, LogError> {
        if !self.load_indexes(segment, file_bytes, next_base).await? {
            let loaded = self.rebuild(segment, file_bytes, next_base).await?;
            return Ok(Loaded {
                index_invalid: true,
                ..loaded
            });
        }
        if let Some(last) = segment.time_index.last() {
            segment.max_timestamp = last.timestamp;
            segment.offset_of_max_timestamp = segment.base_offset + i64::from(last.relative_offset);
        }
        if let Some(next_base) = next_base {
            segment.next_offset = next_base;
            return Ok(Loaded {
                rebuilt: false,
                index_invalid: false,
                corrupt: None,
            });
        }
        let from = segment
            .offset_index
            .last()
            .map_or(0, |entry| u64::from(entry.position));
        segment.size_bytes = from;
        match recover_batches(segment, from, file_bytes, None, self.config).await? {
            None => Ok(Loaded {
                rebuilt: false,
                index_invalid: false,
                corrupt: None,
            }),
            Some(_) => self.rebuild(segment, file_bytes, next_base).await,
        }
    }

    async fn rebuild(
        &mut self,
        segment: &mut Segment<S::File>,
        file_bytes: u64,
        next_base: Option<i64>,
    ) -> Result<Loaded, LogError> {
        *segment = Segment::new(
            segment.base_offset,
            segment.log_path.clone(),
            Rc::clone(&segment.log_file),
        );
        let corrupt = recover_batches(segment, 0, file_bytes, next_base, self.config).await?;
        Ok(Loaded {
            rebuilt: true,
            index_invalid: false,
            corrupt,
        })
    }

    /// Reads and checks both index files; false if either must be rebuilt.
    async fn load_indexes(
        &mut self,
        segment: &mut Segment<S::File>,
        file_bytes: u64,
        next_base: Option<i64>,
    ) -> Result<bool, LogError> {
        let offset_limit = next_base.unwrap_or(i64::MAX);
        let relative_limit = (offset_limit.saturating_sub(segment.base_offset))
            .clamp(0, i64::from(i32::MAX) + 1) as u64;
        let Some(offset_bytes) = self
            .read_index_file(segment, SegmentFileKind::OffsetIndex)
            .await?
        else {
            return Ok(file_bytes == 0);
        };
        let Some(time_bytes) = self
            .read_index_file(segment, SegmentFileKind::TimeIndex)
            .await?
        else {
            return Ok(file_bytes == 0);
        };
        let (Ok(offset_index), Ok(time_index)) = (
            OffsetIndex::decode(&offset_bytes, file_bytes, relative_limit),
            TimeIndex::decode(&time_bytes, relative_limit),
        ) else {
            return Ok(false);
        };
        segment.offset_index = offset_index;
        segment.time_index = time_index;
        segment.size_bytes = file_bytes;
        Ok(last_entries_match(segment).await)
    }

    /// An index file's bytes; None if missing or larger than any index we
    /// write.
    async fn read_index_file(
        &self,
        segment: &Segment<S::File>,
        kind: SegmentFileKind,
    ) -> Result<Option<Bytes>, LogError> {
        let path = segment.file_path(kind);
        if !self.storage.exists(&path).await? {
            return Ok(None);
        }
        let file = self.storage.open(&path).await?;
        let file_bytes = file.size().await?;
        if file_bytes > u64::from(self.config.segment_index_bytes).max(1 << 20) * 2 {
            return Ok(None);
        }
        Ok(Some(read_full(&file, 0, file_bytes as usize).await?))
    }

    async fn delete_segments(&mut self, bases: &[i64]) -> Result<(), LogError> {
        for &base_offset in bases {
            for kind in [
                SegmentFileKind::OffsetIndex,
                SegmentFileKind::TimeIndex,
                SegmentFileKind::TxnIndex,
                SegmentFileKind::Log,
            ] {
                let path = self.dir.join(segment_file_name(base_offset, kind));
                if !self.storage.exists(&path).await? {
                    continue;
                }
                if kind == SegmentFileKind::Log {
                    let size_bytes = self.storage.open(&path).await?.size().await?;
                    self.report.deleted_bytes += size_bytes;
                }
                self.storage.remove_file(&path).await?;
            }
            self.dirty.mark_dir();
            self.report.segments_deleted += 1;
        }
        Ok(())
    }

    /// When the active segment's segment.ms clock started: its first batch's
    /// timestamp (as Kafka does), not after now; an empty segment's clock
    /// starts at its first append.
    async fn roll_start_ms(
        &self,
        segment: &Segment<S::File>,
        now_ms: i64,
    ) -> Result<Option<i64>, LogError> {
        if segment.is_empty() {
            return Ok(None);
        }
        let mut scanner =
            HeaderScanner::new(&*segment.log_file, &segment.log_path, segment.size_bytes);
        let first = scanner.header_at(0).await?;
        Ok(Some(match first.max_timestamp {
            NO_TIMESTAMP => now_ms,
            timestamp => timestamp.min(now_ms),
        }))
    }
}

/// Whether the last entry of each index points at the batch it claims: the
/// offset entry at a batch ending at its offset, the time entry at the
/// batch that first reached its timestamp.
async fn last_entries_match<F: StorageFile>(segment: &Segment<F>) -> bool {
    if let Some(entry) = segment.offset_index.last() {
        let mut scanner =
            HeaderScanner::new(&*segment.log_file, &segment.log_path, segment.size_bytes);
        match scanner.header_at(u64::from(entry.position)).await {
            Ok(header)
                if header.last_offset()
                    == segment.base_offset + i64::from(entry.relative_offset) => {}
            _ => return false,
        }
    }
    if let Some(entry) = segment.time_index.last() {
        let offset = segment.base_offset + i64::from(entry.relative_offset);
        match segment.find_batch(offset).await {
            Ok(Some((_, header)))
                if header.last_offset() == offset && header.max_timestamp == entry.timestamp => {}
            _ => return false,
        }
    }
    true
}

/// Validates the batches of `segment` from `position` (a batch start; the
/// segment already accounts for everything before it) to `file_bytes`,
/// indexing each valid one. Returns where the first invalid batch starts.
/// Besides each batch's own checks (length, magic, CRC), offsets must
/// increase, fit in the segment and, unless the log is compacted, follow
/// each other without a gap ([`OffsetRules`]).
async fn recover_batches<F: StorageFile>(
    segment: &mut Segment<F>,
    mut position: u64,
    file_bytes: u64,
    next_base: Option<i64>,
    config: &LogConfig,
) -> Result<Option<(u64, CorruptKind)>, LogError> {
    let offset_limit = next_base
        .unwrap_or(i64::MAX)
        .min(segment.base_offset.saturating_add(i64::from(i32::MAX) + 1));
    let contiguous = !config.cleanup_compact;
    let mut rules = match position {
        0 => OffsetRules::at_segment_start(segment.base_offset, offset_limit, contiguous),
        // Resumed at an index entry: that batch's base offset is unknown
        // (its last offset was checked against the entry).
        _ => OffsetRules {
            min_offset: segment.next_offset,
            expected: None,
            limit: offset_limit,
            contiguous,
        },
    };
    let mut chunk = Chunk::default();
    while position < file_bytes {
        let rest_bytes = file_bytes - position;
        if position > u64::from(SEGMENT_BYTES_MAX) {
            return Ok(Some((position, past_end(rest_bytes, file_bytes))));
        }
        let head = chunk
            .get(
                &*segment.log_file,
                position,
                LOG_OVERHEAD_BYTES as u64,
                rest_bytes,
            )
            .await?;
        let size_bytes = match batch_size_bytes(&head) {
            Ok(size_bytes) => size_bytes as u64,
            Err(error) => return Ok(Some((position, error.into()))),
        };
        if size_bytes > rest_bytes {
            return Ok(Some((position, past_end(size_bytes, file_bytes))));
        }
        let batch = chunk
            .get(&*segment.log_file, position, size_bytes, rest_bytes)
            .await?;
        let header = match validate(&batch) {
            Ok(header) => header,
            Err(error) => return Ok(Some((position, error.into()))),
        };
        if let Err(kind) = check_header(&header).and_then(|()| rules.check(&header)) {
            return Ok(Some((position, kind)));
        }
        rules.advance(&header);
        segment.on_batch(position, (&header).into(), config);
        position += size_bytes;
    }
    Ok(None)
}

fn past_end(size_bytes: u64, segment_bytes: u64) -> CorruptKind {
    CorruptKind::PastEnd {
        size_bytes,
        segment_bytes,
    }
}

/// A window of a segment file read in large chunks.
#[derive(Default)]
struct Chunk {
    bytes: Bytes,
    start: u64,
}

impl Chunk {
    /// `len` bytes at `position` (at most `rest_bytes` remain in the file),
    /// from the current window or a fresh read; shorter only if the file
    /// shrank meanwhile.
    async fn get<F: StorageFile>(
        &mut self,
        file: &F,
        position: u64,
        len: u64,
        rest_bytes: u64,
    ) -> Result<Bytes, LogError> {
        let end = self.start + self.bytes.len() as u64;
        if position < self.start || position + len > end {
            let read_len = len.max(RECOVERY_CHUNK_BYTES).min(rest_bytes);
            self.bytes = read_full(file, position, read_len as usize).await?;
            self.start = position;
        }
        let at = (position - self.start) as usize;
        let until = (at + len as usize).min(self.bytes.len());
        Ok(self.bytes.slice(at..until))
    }
}
