//! One segment: a `.log` file of whole batches starting at `base_offset`,
//! with its offset and time indexes in memory. The log appends to the last
//! (active) segment only; closed segments are immutable until deleted.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use rafka_proto::record::BatchHeader;

use super::config::LogConfig;
use super::error::{CorruptKind, LogError};
use super::offset_index::{OffsetEntry, OffsetIndex};
use super::scan::HeaderScanner;
use super::time_index::{TimeEntry, TimeIndex};
use super::txn_index::AbortedTxn;
use crate::io::{Storage, StorageFile};

/// Kafka's "no timestamp" value.
pub const NO_TIMESTAMP: i64 = -1;
/// Digits of the base offset in segment file names.
const FILE_NAME_DIGITS: usize = 20;

/// The three files of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentFileKind {
    Log,
    OffsetIndex,
    TimeIndex,
    /// Aborted transactions (`txn_index`).
    TxnIndex,
}

impl SegmentFileKind {
    fn extension(self) -> &'static str {
        match self {
            SegmentFileKind::Log => "log",
            SegmentFileKind::OffsetIndex => "index",
            SegmentFileKind::TimeIndex => "timeindex",
            SegmentFileKind::TxnIndex => "txnindex",
        }
    }
}

/// `00000000000000001234.log` and friends.
pub fn segment_file_name(base_offset: i64, kind: SegmentFileKind) -> String {
    format!(
        "{base_offset:0width$}.{}",
        kind.extension(),
        width = FILE_NAME_DIGITS
    )
}

/// The base offset and kind of a segment file name, None for other files.
pub fn parse_segment_file_name(name: &str) -> Option<(i64, SegmentFileKind)> {
    let (stem, extension) = name.split_once('.')?;
    let kind = [
        SegmentFileKind::Log,
        SegmentFileKind::OffsetIndex,
        SegmentFileKind::TimeIndex,
        SegmentFileKind::TxnIndex,
    ]
    .into_iter()
    .find(|kind| kind.extension() == extension)?;
    if stem.len() != FILE_NAME_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let base_offset = stem.parse::<i64>().ok()?;
    Some((base_offset, kind))
}

/// What the index needs to know about one stored batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchSummary {
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub size_bytes: u64,
}

impl From<&BatchHeader> for BatchSummary {
    fn from(header: &BatchHeader) -> Self {
        BatchSummary {
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp,
            size_bytes: header.size_bytes() as u64,
        }
    }
}

/// A public snapshot of one segment, for admin APIs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    pub base_offset: i64,
    /// The offset after the segment's last batch (for closed segments
    /// loaded from disk: the next segment's base offset).
    pub next_offset: i64,
    pub size_bytes: u64,
    /// Largest batch max timestamp, [`NO_TIMESTAMP`] if none.
    pub max_timestamp: i64,
}

#[derive(Debug)]
pub struct Segment<F> {
    pub base_offset: i64,
    pub log_path: PathBuf,
    pub log_file: Rc<F>,
    pub size_bytes: u64,
    pub next_offset: i64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    pub bytes_since_index_entry: u64,
    pub max_timestamp: i64,
    /// Last offset of the first batch that carried `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    /// Clock time the segment.ms roll is measured from.
    pub roll_start_ms: Option<i64>,
    /// Byte ranges the scrubber took out of service (see `scrub.rs`),
    /// ordered and disjoint. Empty for all but damaged segments, so the
    /// read path pays one `is_empty` per walk, not per batch.
    pub damaged: Vec<DamagedSpan>,
    /// The ABORT markers in this segment (`txn_index`), in offset order.
    pub aborted: Vec<AbortedTxn>,
    /// The `.txnindex` file, once the segment has had an entry.
    pub txn_file: Option<Rc<F>>,
}

/// A range of a segment holding damaged batches: reads step over it, from
/// the batch start `position` to `end`, where a good batch starts (or the
/// segment ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedSpan {
    pub position: u64,
    pub end: u64,
    /// The first offset the span took out of service.
    pub first_offset: i64,
    /// The base offset of the good batch at `end` (the segment's next
    /// offset if the span runs to its end).
    pub next_offset: i64,
    pub kind: CorruptKind,
}

impl<F: StorageFile> Segment<F> {
    pub fn new(base_offset: i64, log_path: PathBuf, log_file: Rc<F>) -> Self {
        Segment {
            base_offset,
            log_path,
            log_file,
            size_bytes: 0,
            next_offset: base_offset,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index_entry: 0,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: base_offset,
            roll_start_ms: None,
            damaged: Vec::new(),
            aborted: Vec::new(),
            txn_file: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }

    pub fn dir(&self) -> &Path {
        self.log_path.parent().unwrap_or_else(|| Path::new(""))
    }

    pub fn file_path(&self, kind: SegmentFileKind) -> PathBuf {
        self.dir().join(segment_file_name(self.base_offset, kind))
    }

    pub fn info(&self) -> SegmentInfo {
        SegmentInfo {
            base_offset: self.base_offset,
            next_offset: self.next_offset,
            size_bytes: self.size_bytes,
            max_timestamp: self.max_timestamp,
        }
    }

    /// `offset` relative to the base, clamped into u32: offsets in a segment
    /// are at most i32::MAX above its base (enforced on append and recovery).
    pub fn relative(&self, offset: i64) -> u32 {
        offset
            .saturating_sub(self.base_offset)
            .clamp(0, i64::from(u32::MAX)) as u32
    }

    /// Records a batch stored at `position` (append and recovery share this,
    /// so a rebuilt index equals the one built while appending).
    pub fn on_batch(&mut self, position: u64, batch: BatchSummary, config: &LogConfig) {
        if batch.max_timestamp > self.max_timestamp {
            self.max_timestamp = batch.max_timestamp;
            self.offset_of_max_timestamp = batch.last_offset;
        }
        if self.bytes_since_index_entry > u64::from(config.index_interval_bytes) {
            // A multi-batch append may meet a full index mid-way: skipping
            // the entry keeps lookups correct, just less sparse.
            if self.offset_index.len() < config.offset_index_entries_max() {
                let position = u32::try_from(position).expect("segment positions fit in u32");
                self.offset_index.push(OffsetEntry {
                    relative_offset: self.relative(batch.last_offset),
                    position,
                });
            }
            if self.time_index.len() < config.time_index_entries_max() {
                self.time_index.maybe_push(TimeEntry {
                    timestamp: self.max_timestamp,
                    relative_offset: self.relative(self.offset_of_max_timestamp),
                });
            }
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += batch.size_bytes;
        self.size_bytes = position + batch.size_bytes;
        self.next_offset = batch.last_offset + 1;
    }

    /// Makes the last time index entry hold the segment's max timestamp, as
    /// Kafka does when a segment stops being active.
    pub fn seal_time_index(&mut self) {
        self.time_index.maybe_push(TimeEntry {
            timestamp: self.max_timestamp,
            relative_offset: self.relative(self.offset_of_max_timestamp),
        });
    }

    pub fn is_index_full(&self, config: &LogConfig) -> bool {
        self.offset_index.len() >= config.offset_index_entries_max()
            || self.time_index.len() >= config.time_index_entries_max()
    }

    /// Writes both index files whole, sized to their entries; returns them
    /// for the next flush to sync.
    pub async fn write_indexes<S>(&self, storage: &S) -> Result<[Rc<S::File>; 2], LogError>
    where
        S: Storage<File = F>,
    {
        let offset_file = write_whole(
            storage,
            &self.file_path(SegmentFileKind::OffsetIndex),
            &self.offset_index.encode(),
        )
        .await?;
        let time_file = write_whole(
            storage,
            &self.file_path(SegmentFileKind::TimeIndex),
            &self.time_index.encode(),
        )
        .await?;
        Ok([offset_file, time_file])
    }

    /// The first batch whose last offset is at or above `offset`, with its
    /// position; None if the segment ends first.
    pub async fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let start = u64::from(self.offset_index.lookup(self.relative(offset)));
        self.find_batch_from(start, |header| header.last_offset() >= offset)
            .await
    }

    /// The first batch at or after `position` (a batch start) that satisfies
    /// `wanted`, walking headers.
    pub async fn find_batch_from(
        &self,
        mut position: u64,
        wanted: impl Fn(&BatchHeader) -> bool,
    ) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let mut scanner = HeaderScanner::new(&*self.log_file, &self.log_path, self.size_bytes);
        // Healthy segments (all but damaged ones) skip the lookup per batch.
        let damaged = !self.damaged.is_empty();
        while position < self.size_bytes {
            if let Some(span) = damaged.then(|| self.damaged_span_at(position)).flatten() {
                position = span.end;
                continue;
            }
            let header = scanner.header_at(position).await?;
            if wanted(&header) {
                return Ok(Some((position, header)));
            }
            position += header.size_bytes() as u64;
        }
        Ok(None)
    }

    /// The end of the whole batches that start at `start` and end at or
    /// before `limit` (at least one batch if `take_one`), never past
    /// `hard_end`, a batch boundary where the offset `hard_next` starts.
    /// Returns that end and the offset of the batch after it.
    pub async fn batches_end(
        &self,
        start: u64,
        limit: u64,
        hard_end: u64,
        hard_next: i64,
        take_one: bool,
    ) -> Result<(u64, i64), LogError> {
        // Never past a damaged span: the walk and the region stop before it
        // (the next read, at its first offset, steps over it).
        let (hard_end, hard_next) = match self.damaged_span_from(start) {
            Some(span) if span.position < hard_end => (span.position, span.first_offset),
            _ => (hard_end, hard_next),
        };
        if hard_end <= limit {
            return Ok((hard_end, hard_next));
        }
        // Index positions are batch starts, so the walk can begin at the last
        // one in range instead of at `start`.
        let mut position = match self.offset_index.position_at_or_below(limit) {
            Some(indexed) if indexed > start => indexed,
            _ => start,
        };
        let mut scanner = HeaderScanner::new(&*self.log_file, &self.log_path, hard_end);
        loop {
            let header = scanner.header_at(position).await?;
            let next = position + header.size_bytes() as u64;
            if next > limit {
                if position == start && take_one {
                    return Ok((next, header.next_offset()));
                }
                return Ok((position, header.base_offset));
            }
            position = next;
        }
    }
}

impl<F> Segment<F> {
    /// The damaged span holding byte `position`, if any.
    pub fn damaged_span_at(&self, position: u64) -> Option<&DamagedSpan> {
        if self.damaged.is_empty() {
            return None;
        }
        self.damaged_span_from(position)
            .filter(|span| span.position <= position)
    }

    /// The first damaged span that ends after `position`.
    pub fn damaged_span_from(&self, position: u64) -> Option<&DamagedSpan> {
        if self.damaged.is_empty() {
            return None;
        }
        let at = self.damaged.partition_point(|span| span.end <= position);
        self.damaged.get(at)
    }

    /// Takes `span` out of service; false if a span already starts there.
    pub fn add_damaged(&mut self, span: DamagedSpan) -> bool {
        let at = self
            .damaged
            .partition_point(|known| known.position < span.position);
        if self
            .damaged
            .get(at)
            .is_some_and(|known| known.position == span.position)
        {
            return false;
        }
        self.damaged.insert(at, span);
        true
    }
}

async fn write_whole<S: Storage>(
    storage: &S,
    path: &Path,
    bytes: &[u8],
) -> Result<Rc<S::File>, LogError> {
    let file = storage.open(path).await?;
    if !bytes.is_empty() {
        file.write_at(0, bytes).await?;
    }
    file.truncate(bytes.len() as u64).await?;
    Ok(Rc::new(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        let name = segment_file_name(1234, SegmentFileKind::Log);
        assert_eq!(name, "00000000000000001234.log");
        assert_eq!(
            parse_segment_file_name(&name),
            Some((1234, SegmentFileKind::Log))
        );
        assert_eq!(
            parse_segment_file_name("00000000000000000000.timeindex"),
            Some((0, SegmentFileKind::TimeIndex))
        );
        assert_eq!(
            parse_segment_file_name("00000000000000000042.txnindex"),
            Some((42, SegmentFileKind::TxnIndex))
        );
        assert_eq!(parse_segment_file_name("0000000000000000001.log"), None);
        assert_eq!(
            parse_segment_file_name("00000000000000000001.log.deleted"),
            None
        );
        assert_eq!(parse_segment_file_name("leader-epoch-checkpoint"), None);
        assert_eq!(parse_segment_file_name("99999999999999999999.log"), None);
    }
}
