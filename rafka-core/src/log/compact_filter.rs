//! What compaction keeps: the key -> latest offset map over the cleanable
//! segments, a batch reader over a closed segment, and the filtering of
//! one batch against the map.
//!
//! A kept record is copied byte for byte (its offset and timestamp deltas
//! unchanged), so a filtered batch keeps its base offset, lastOffsetDelta,
//! base timestamp and producer fields; only recordCount, maxTimestamp,
//! batchLength and the CRC change, and a compressed batch is recompressed
//! with its own codec. A batch whose records cannot be decoded is kept
//! whole: compaction never drops what it cannot read.

use std::collections::HashMap;
use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};
use rafka_proto::record::varint::read_varint;
use rafka_proto::record::{
    batch_size_bytes, compress, write_crc, BatchHeader, Record, RecordBatch, RecordLimits,
    TimestampType, BATCH_HEADER_BYTES, BATCH_LENGTH_MIN, LOG_OVERHEAD_BYTES,
};

use super::error::{CorruptKind, LogError};
use super::scan::read_full;
use super::segment::NO_TIMESTAMP;
use crate::io::StorageFile;

/// The key map stops taking segments once its estimated size passes this;
/// it covers whole segments, so it may exceed it by one segment's keys.
pub const KEY_MAP_BYTES_MAX: usize = 64 << 20;
/// Estimated bytes of one map entry besides the key: the boxed slice, the
/// offset and the hash table's own slot.
const KEY_ENTRY_OVERHEAD_BYTES: usize = 48;
/// Bytes read at once while walking a segment's batches.
const READ_CHUNK_BYTES: u64 = 1 << 20;
/// The codec bits of a batch's attributes.
const ATTR_COMPRESSION_MASK: i16 = 0x07;

/// For every key in the cleanable range, the offset of its latest record;
/// for every producer id, the base offset of its last batch there.
#[derive(Debug, Default)]
pub(super) struct KeyMap {
    latest: HashMap<Box<[u8]>, i64>,
    producers: HashMap<i64, i64>,
    size_bytes: usize,
}

impl KeyMap {
    pub fn is_full(&self) -> bool {
        self.size_bytes >= KEY_MAP_BYTES_MAX
    }

    pub fn key_count(&self) -> usize {
        self.latest.len()
    }

    /// Indexes the keys of one batch (control batches carry no data keys,
    /// an `aborted` transaction's batch contributes none either: its
    /// records are going).
    pub fn add_batch(&mut self, batch: &RecordBatch, aborted: bool) {
        let header = batch.header();
        if header.has_producer_id() {
            self.producers
                .insert(header.producer_id, header.base_offset);
            self.size_bytes += KEY_ENTRY_OVERHEAD_BYTES;
        }
        if header.is_control() || aborted {
            return;
        }
        let Ok(records) = batch.records(RecordLimits::default()) else {
            return;
        };
        for record in records {
            let Ok(record) = record else {
                return;
            };
            if let Some(key) = &record.key {
                self.insert(key, record.offset(header.base_offset));
            }
        }
    }

    fn insert(&mut self, key: &[u8], offset: i64) {
        if let Some(latest) = self.latest.get_mut(key) {
            *latest = offset.max(*latest);
            return;
        }
        self.size_bytes += key.len() + KEY_ENTRY_OVERHEAD_BYTES;
        self.latest.insert(Box::from(key), offset);
    }

    /// Whether `record` at `offset` is the latest for its key. Null keys
    /// are dropped (Kafka refuses them on a compacted topic); a key the map
    /// does not hold is kept.
    fn is_latest(&self, record: &Record, offset: i64) -> bool {
        match &record.key {
            None => false,
            Some(key) => self
                .latest
                .get(&key[..])
                .is_none_or(|&latest| offset >= latest),
        }
    }

    /// Whether this is the last batch of an idempotent producer in the
    /// range: Kafka keeps it (empty if need be) so that the producer's last
    /// sequence survives for the duplicate check after a restart, which
    /// rebuilds producer state from batch headers.
    fn is_last_of_producer(&self, header: &BatchHeader) -> bool {
        header.has_producer_id()
            && self.producers.get(&header.producer_id) == Some(&header.base_offset)
    }
}

/// What filtering did to one batch.
#[derive(Debug)]
pub(super) enum Filtered {
    /// Every record stays: the stored bytes are written again as they are.
    Unchanged,
    /// No record stays and nothing needs the batch.
    Dropped,
    /// A re-encoded batch holding the records that stay.
    Rewritten(Bytes),
}

/// Removes a whole batch (an aborted transaction's, or a marker nothing
/// needs any more); a producer's last batch stays, emptied. Also returns
/// how many records it removed.
pub(super) fn drop_whole(header: &BatchHeader, map: &KeyMap) -> (Filtered, u64) {
    let removed = u64::try_from(header.record_count).unwrap_or(0);
    if map.is_last_of_producer(header) {
        return (Filtered::Rewritten(empty_batch(header)), removed);
    }
    (Filtered::Dropped, removed)
}

/// Filters one data batch (`aborted`: of an aborted transaction, removed
/// whole); also returns how many records it removed.
pub(super) fn filter_batch(
    batch: &RecordBatch,
    map: &KeyMap,
    drop_tombstones: bool,
    aborted: bool,
) -> (Filtered, u64) {
    let header = *batch.header();
    // Markers are the transaction walk's (`compact_aborted`).
    if header.is_control() {
        return (Filtered::Unchanged, 0);
    }
    if aborted {
        return drop_whole(&header, map);
    }
    let Ok(records) = batch.records(RecordLimits::default()) else {
        return (Filtered::Unchanged, 0);
    };
    let section = records.records_section().clone();
    let mut kept = Vec::with_capacity(section.len());
    let mut kept_count = 0i32;
    let mut removed = 0u64;
    let mut max_timestamp = NO_TIMESTAMP;
    let mut position = 0usize;
    for record in records {
        let Ok(record) = record else {
            return (Filtered::Unchanged, 0);
        };
        let Some(raw_len) = raw_record_len(&section[position..]) else {
            return (Filtered::Unchanged, 0);
        };
        let raw = &section[position..position + raw_len];
        position += raw_len;
        let offset = record.offset(header.base_offset);
        let tombstone = record.value.is_none();
        if map.is_latest(&record, offset) && !(tombstone && drop_tombstones) {
            kept.extend_from_slice(raw);
            kept_count += 1;
            max_timestamp = max_timestamp.max(record.timestamp_ms(header.base_timestamp));
        } else {
            removed += 1;
        }
    }
    if removed == 0 {
        return (Filtered::Unchanged, 0);
    }
    if kept_count == 0 {
        if map.is_last_of_producer(&header) {
            return (Filtered::Rewritten(empty_batch(&header)), removed);
        }
        return (Filtered::Dropped, removed);
    }
    if header.timestamp_type() == TimestampType::LogAppendTime {
        max_timestamp = header.max_timestamp;
    }
    match encode_batch(&header, &kept, kept_count, max_timestamp) {
        Some(bytes) => (Filtered::Rewritten(bytes), removed),
        // Compressing into memory does not fail on valid input; if it ever
        // did, keeping the batch whole is the safe answer.
        None => (Filtered::Unchanged, 0),
    }
}

/// Bytes of the record starting `rest` (its length varint included).
fn raw_record_len(rest: &[u8]) -> Option<usize> {
    let (length, varint_bytes) = read_varint(rest).ok()?;
    let total = varint_bytes.checked_add(usize::try_from(length).ok()?)?;
    (total <= rest.len()).then_some(total)
}

/// A batch of `header`'s offsets holding `records` (uncompressed record
/// bytes), compressed with the batch's codec.
fn encode_batch(
    header: &BatchHeader,
    records: &[u8],
    record_count: i32,
    max_timestamp: i64,
) -> Option<Bytes> {
    let codec = header.compression().ok()?;
    let mut out = BytesMut::with_capacity(BATCH_HEADER_BYTES + records.len());
    out.put_bytes(0, BATCH_HEADER_BYTES);
    compress(codec, records, &mut out).ok()?;
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD_BYTES).ok()?;
    let rewritten = BatchHeader {
        batch_length,
        record_count,
        max_timestamp,
        crc: 0,
        ..*header
    };
    finish(rewritten, out)
}

/// The header-only batch Kafka leaves for a producer's last batch: same
/// offsets and producer fields, no records, no codec.
fn empty_batch(header: &BatchHeader) -> Bytes {
    let rewritten = BatchHeader {
        batch_length: BATCH_LENGTH_MIN,
        attributes: header.attributes & !ATTR_COMPRESSION_MASK,
        base_timestamp: header.max_timestamp,
        record_count: 0,
        crc: 0,
        ..*header
    };
    let mut out = BytesMut::with_capacity(BATCH_HEADER_BYTES);
    out.put_bytes(0, BATCH_HEADER_BYTES);
    finish(rewritten, out).unwrap_or_default()
}

fn finish(header: BatchHeader, mut out: BytesMut) -> Option<Bytes> {
    let head: &mut [u8; BATCH_HEADER_BYTES] = out.first_chunk_mut()?;
    header.encode(head);
    write_crc(&mut out);
    Some(out.freeze())
}

/// Walks the whole batches of a closed segment, checking each one's CRC
/// (the bytes were valid when written; compaction must not copy rot).
pub(super) struct SegmentReader<'a, F> {
    file: &'a F,
    path: &'a Path,
    size_bytes: u64,
    position: u64,
    chunk: Bytes,
    chunk_start: u64,
    /// Byte ranges the scrubber took out of service: stepped over, so
    /// compaction drops them instead of failing on them.
    damaged: &'a [(u64, u64)],
}

impl<'a, F: StorageFile> SegmentReader<'a, F> {
    pub fn new(file: &'a F, path: &'a Path, size_bytes: u64) -> Self {
        SegmentReader {
            file,
            path,
            size_bytes,
            position: 0,
            chunk: Bytes::new(),
            chunk_start: 0,
            damaged: &[],
        }
    }

    /// Steps over `damaged` (start, end) byte ranges.
    pub fn skipping(mut self, damaged: &'a [(u64, u64)]) -> Self {
        self.damaged = damaged;
        self
    }

    /// The next batch, None at the segment end.
    pub async fn next_batch(&mut self) -> Result<Option<RecordBatch>, LogError> {
        let position = self.position;
        if let Some(&(_, end)) = self
            .damaged
            .iter()
            .find(|(start, end)| *start <= position && position < *end)
        {
            self.position = end;
        }
        if self.position >= self.size_bytes {
            return Ok(None);
        }
        let rest_bytes = self.size_bytes - self.position;
        let head = self.window(LOG_OVERHEAD_BYTES as u64).await?;
        let size_bytes = batch_size_bytes(&head).map_err(|e| self.corrupt(e.into()))? as u64;
        let bytes = self.window(size_bytes).await?;
        if size_bytes > rest_bytes || bytes.len() as u64 != size_bytes {
            return Err(self.corrupt(CorruptKind::PastEnd {
                size_bytes,
                segment_bytes: self.size_bytes,
            }));
        }
        let (batch, _) = RecordBatch::parse(&bytes).map_err(|e| self.corrupt(e.into()))?;
        self.position += size_bytes;
        Ok(Some(batch))
    }

    /// Up to `len` bytes at the current position (fewer only at the end).
    async fn window(&mut self, len: u64) -> Result<Bytes, LogError> {
        let rest_bytes = self.size_bytes - self.position;
        let len = len.min(rest_bytes);
        let chunk_end = self.chunk_start + self.chunk.len() as u64;
        if self.position < self.chunk_start || self.position + len > chunk_end {
            let read_len = len.max(READ_CHUNK_BYTES).min(rest_bytes);
            self.chunk = read_full(self.file, self.position, read_len as usize).await?;
            self.chunk_start = self.position;
        }
        let at = (self.position - self.chunk_start) as usize;
        let until = (at + len as usize).min(self.chunk.len());
        Ok(self.chunk.slice(at..until))
    }

    fn corrupt(&self, kind: CorruptKind) -> LogError {
        LogError::Corrupt {
            path: self.path.to_path_buf(),
            position: self.position,
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use rafka_proto::record::{validate, BatchBuilder, Compression};

    use super::*;

    fn parsed(bytes: Bytes) -> RecordBatch {
        RecordBatch::parse(&bytes).expect("valid batch").0
    }

    fn keyed_batch(codec: Compression, keys: &[&[u8]]) -> RecordBatch {
        let mut builder = BatchBuilder::new(codec).producer(7, 0, 0);
        for (i, key) in keys.iter().enumerate() {
            builder.push_record(1000 + i as i64, Some(key), Some(b"v"), &[]);
        }
        parsed(builder.build().expect("build"))
    }

    #[test]
    fn rewrites_keep_offsets_and_crc() {
        for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let batch = keyed_batch(codec, &[b"a", b"b", b"a", b"c"]);
            let mut map = KeyMap::default();
            map.add_batch(&batch, false);
            let (filtered, removed) = filter_batch(&batch, &map, false, false);
            assert_eq!(removed, 1);
            let Filtered::Rewritten(bytes) = filtered else {
                panic!("expected a rewrite, got {filtered:?}");
            };
            let header = validate(&bytes).expect("fresh CRC");
            assert_eq!(header.compression().unwrap(), codec);
            assert_eq!(header.record_count, 3);
            assert_eq!(header.last_offset_delta, 3);
            assert_eq!((header.producer_id, header.base_sequence), (7, 0));
            assert_eq!(header.max_timestamp, 1003);
            let kept = parsed(bytes.clone());
            let deltas: Vec<i32> = kept
                .records(RecordLimits::default())
                .unwrap()
                .map(|r| r.unwrap().offset_delta)
                .collect();
            assert_eq!(deltas, vec![1, 2, 3]);
        }
    }

    #[test]
    fn a_producers_last_batch_stays_empty() {
        let old = keyed_batch(Compression::Lz4, &[b"a"]);
        let mut newer = BatchBuilder::new(Compression::None);
        newer.push(Some(b"a"), Some(b"w"));
        let mut newer = newer.build().unwrap().to_vec();
        rafka_proto::record::set_base_offset(&mut newer, 5);
        let newer = parsed(Bytes::from(newer));
        let mut map = KeyMap::default();
        map.add_batch(&old, false);
        map.add_batch(&newer, false);
        let (filtered, removed) = filter_batch(&old, &map, false, false);
        assert_eq!(removed, 1);
        let Filtered::Rewritten(bytes) = filtered else {
            panic!("expected an empty batch, got {filtered:?}");
        };
        let header = validate(&bytes).expect("fresh CRC");
        assert_eq!(bytes.len(), BATCH_HEADER_BYTES);
        assert_eq!((header.record_count, header.producer_id), (0, 7));
        assert_eq!(header.compression().unwrap(), Compression::None);
    }

    #[test]
    fn raw_record_len_refuses_overruns() {
        assert_eq!(raw_record_len(&[0x04, 1, 2]), Some(3));
        assert_eq!(raw_record_len(&[0x08, 1, 2]), None);
        assert_eq!(raw_record_len(&[0x01]), None);
        assert_eq!(raw_record_len(&[]), None);
    }
}
