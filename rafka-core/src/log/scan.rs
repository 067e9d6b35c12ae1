//! Reading segment bytes back: a read that loops over short reads, and a
//! batch header walker that reads in chunks so that stepping over many small
//! batches costs one read per chunk, not one per batch.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use rafka_proto::record::batch::{BATCH_LENGTH_MIN, MAGIC_V2};
use rafka_proto::record::{BatchError, BatchHeader, BATCH_HEADER_BYTES};

use super::error::{CorruptKind, LogError};
use crate::io::{IoError, StorageFile};

/// Bytes read at once while walking batch headers: a few small batches, or
/// the index interval with room to spare.
const SCAN_CHUNK_BYTES: u64 = 16 * 1024;

/// Reads `len` bytes at `position`, looping while the file returns less: the
/// result is shorter only if the file ends first. Not relying on a read
/// being complete keeps the log correct on storage that splits reads.
pub async fn read_full<F: StorageFile>(
    file: &F,
    position: u64,
    len: usize,
) -> Result<Bytes, IoError> {
    let first = file.read_at(position, len).await?;
    if first.len() == len || first.is_empty() {
        return Ok(first);
    }
    let mut collected = BytesMut::with_capacity(len);
    collected.extend_from_slice(&first);
    while collected.len() < len {
        let at = position + collected.len() as u64;
        let more = file.read_at(at, len - collected.len()).await?;
        if more.is_empty() {
            break;
        }
        collected.extend_from_slice(&more);
    }
    Ok(collected.freeze())
}

/// Walks batch headers of one segment within its first `end` bytes (the
/// bytes the log knows to hold whole, valid batches).
pub struct HeaderScanner<'a, F> {
    file: &'a F,
    path: &'a Path,
    end: u64,
    buf: Bytes,
    buf_start: u64,
}

impl<'a, F: StorageFile> HeaderScanner<'a, F> {
    pub fn new(file: &'a F, path: &'a Path, end: u64) -> Self {
        HeaderScanner {
            file,
            path,
            end,
            buf: Bytes::new(),
            buf_start: 0,
        }
    }

    /// The header of the batch starting at `position`, checked to describe a
    /// v2 batch that ends within the segment.
    pub async fn header_at(&mut self, position: u64) -> Result<BatchHeader, LogError> {
        let header_bytes = BATCH_HEADER_BYTES as u64;
        if position + header_bytes > self.end {
            return Err(self.corrupt(
                position,
                CorruptKind::PastEnd {
                    size_bytes: header_bytes,
                    segment_bytes: self.end,
                },
            ));
        }
        let buf_end = self.buf_start + self.buf.len() as u64;
        if position < self.buf_start || position + header_bytes > buf_end {
            let len = SCAN_CHUNK_BYTES.min(self.end - position);
            self.buf = read_full(self.file, position, len as usize).await?;
            self.buf_start = position;
        }
        let at = (position - self.buf_start) as usize;
        let header =
            BatchHeader::decode(&self.buf[at..]).map_err(|e| self.corrupt(position, e.into()))?;
        check_header(&header).map_err(|kind| self.corrupt(position, kind))?;
        let size_bytes = header.size_bytes() as u64;
        if position + size_bytes > self.end {
            return Err(self.corrupt(
                position,
                CorruptKind::PastEnd {
                    size_bytes,
                    segment_bytes: self.end,
                },
            ));
        }
        Ok(header)
    }

    fn corrupt(&self, position: u64, kind: CorruptKind) -> LogError {
        LogError::Corrupt {
            path: self.path.to_path_buf(),
            position,
            kind,
        }
    }
}

/// The offset rules of the batches from some position of a segment on:
/// offsets only increase, stay below the segment's limit, and in a log
/// that is not compacted each batch starts right after the one before it
/// (the first at the segment's base offset). baseOffset is outside the
/// CRC, so these rules are what catches a damaged one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetRules {
    /// Every base offset from here on is at least this.
    pub min_offset: i64,
    /// The base offset the next batch must have; None where it is not
    /// known (compacted logs, a walk resumed mid-segment or after damage).
    pub expected: Option<i64>,
    /// Every last offset is below this.
    pub limit: i64,
    /// Batches follow each other without gaps (not compacted).
    pub contiguous: bool,
}

impl OffsetRules {
    /// The rules at the start of a segment.
    pub fn at_segment_start(base_offset: i64, limit: i64, contiguous: bool) -> Self {
        OffsetRules {
            min_offset: base_offset,
            expected: contiguous.then_some(base_offset),
            limit,
            contiguous,
        }
    }

    pub fn check(&self, header: &BatchHeader) -> Result<(), CorruptKind> {
        if header.base_offset < self.min_offset {
            return Err(CorruptKind::OffsetNotIncreasing {
                base_offset: header.base_offset,
                expected_min: self.min_offset,
            });
        }
        if let Some(expected) = self.expected.filter(|&e| e != header.base_offset) {
            return Err(CorruptKind::OffsetGap {
                base_offset: header.base_offset,
                expected,
            });
        }
        if header.last_offset() >= self.limit {
            return Err(CorruptKind::OffsetBeyondSegment {
                last_offset: header.last_offset(),
                limit: self.limit,
            });
        }
        Ok(())
    }

    /// The rules for the batch after `header`.
    pub fn advance(&mut self, header: &BatchHeader) {
        self.min_offset = header.next_offset();
        self.expected = self.contiguous.then_some(header.next_offset());
    }
}

/// The structural checks a stored header must pass before its length is
/// used to step to the next batch.
pub fn check_header(header: &BatchHeader) -> Result<(), CorruptKind> {
    if header.batch_length < BATCH_LENGTH_MIN {
        return Err(BatchError::LengthTooSmall(header.batch_length).into());
    }
    if header.magic != MAGIC_V2 {
        return Err(BatchError::BadMagic(header.magic).into());
    }
    if header.last_offset_delta < 0 {
        return Err(CorruptKind::NegativeOffsetDelta(header.last_offset_delta));
    }
    Ok(())
}
