//! The records inside a v2 batch, read zero-copy: keys, values and headers
//! are slices of the batch's `Bytes` (or of the decompressed `Bytes`, which
//! a compressed batch decodes once, under a size limit).
//!
//! One record on the wire (varints are zigzag, see `varint.rs`):
//!
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
//! keyLength varint (-1 = null) | key | valueLength varint (-1 = null) | value
//! headerCount varint | headers: keyLength varint | key | valueLength varint | value
//! ```
//!
//! Every length is checked against the bytes left before it is used, so a
//! declared size never drives an allocation.

use std::ops::Range;

use bytes::Bytes;

use crate::record::batch::{BatchError, RecordBatch};
use crate::record::compression::{self, CompressionError};
use crate::record::varint::{read_varint, read_varlong, VarintError};

/// Default bound on a batch's decompressed records section. Kafka's
/// `message.max.bytes` bounds the compressed size (1 MiB by default); this
/// leaves room for highly compressible data while capping a zip bomb.
pub const DECOMPRESSED_BYTES_MAX_DEFAULT: usize = 64 * 1024 * 1024;

/// Limits applied while reading records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    /// Largest records section a compressed batch may decompress to.
    pub decompressed_bytes_max: usize,
}

impl Default for RecordLimits {
    fn default() -> Self {
        RecordLimits {
            decompressed_bytes_max: DECOMPRESSED_BYTES_MAX_DEFAULT,
        }
    }
}

/// One record header. Kafka reads the key as UTF-8 but does not reject bad
/// sequences, so neither does rafka: see [`Header::key_str`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

impl Header {
    /// The key as text, if it is valid UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.key).ok()
    }
}

/// One record, its fields sliced from the batch without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

impl Record {
    /// Absolute offset, given the batch's base offset.
    pub fn offset(&self, base_offset: i64) -> i64 {
        base_offset.wrapping_add(i64::from(self.offset_delta))
    }

    /// Absolute timestamp (ms), given the batch's base timestamp.
    pub fn timestamp_ms(&self, base_timestamp_ms: i64) -> i64 {
        base_timestamp_ms.wrapping_add(self.timestamp_delta)
    }
}

/// Which field of a record a decoding error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordField {
    Length,
    Attributes,
    TimestampDelta,
    OffsetDelta,
    KeyLength,
    Key,
    ValueLength,
    Value,
    HeaderCount,
    HeaderKeyLength,
    HeaderKey,
    HeaderValueLength,
    HeaderValue,
}

/// Everything that can be wrong with the records of a batch. `at_bytes` is
/// a position in the (decompressed) records section.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Compression(#[from] CompressionError),
    #[error("bad varint in record {field:?} at byte {at_bytes}")]
    Varint {
        field: RecordField,
        at_bytes: usize,
        source: VarintError,
    },
    #[error("record {field:?} at byte {at_bytes} has invalid length {length}")]
    InvalidLength {
        field: RecordField,
        at_bytes: usize,
        length: i32,
    },
    #[error("record {field:?} at byte {at_bytes} runs past its record")]
    Truncated { field: RecordField, at_bytes: usize },
    #[error(
        "record at byte {at_bytes} declares {declared_bytes} bytes but holds {consumed_bytes}"
    )]
    LengthMismatch {
        at_bytes: usize,
        declared_bytes: i32,
        consumed_bytes: usize,
    },
    #[error("batch declares {expected} records but holds {found}")]
    TooFewRecords { expected: i32, found: i32 },
    #[error("{trailing_bytes} bytes follow the last of {count} records")]
    TrailingBytes { count: i32, trailing_bytes: usize },
}

/// Where the parts of one record lie in its records section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordSpan {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<Range<usize>>,
    pub value: Option<Range<usize>>,
    pub end: usize,
}

/// A cursor over `buf[..end]` that names the field it is reading in errors.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn varint(&mut self, field: RecordField) -> Result<i32, RecordError> {
        let (value, used) =
            read_varint(&self.buf[self.pos..]).map_err(|source| RecordError::Varint {
                field,
                at_bytes: self.pos,
                source,
            })?;
        self.pos += used;
        Ok(value)
    }

    fn varlong(&mut self, field: RecordField) -> Result<i64, RecordError> {
        let (value, used) =
            read_varlong(&self.buf[self.pos..]).map_err(|source| RecordError::Varint {
                field,
                at_bytes: self.pos,
                source,
            })?;
        self.pos += used;
        Ok(value)
    }

    fn skip(&mut self, count: usize, field: RecordField) -> Result<Range<usize>, RecordError> {
        let start = self.pos;
        if self.buf.len() - start < count {
            return Err(RecordError::Truncated {
                field,
                at_bytes: start,
            });
        }
        self.pos += count;
        Ok(start..self.pos)
    }

    /// A length-prefixed byte string where -1 means null.
    fn nullable(
        &mut self,
        length_field: RecordField,
        field: RecordField,
    ) -> Result<Option<Range<usize>>, RecordError> {
        let at_bytes = self.pos;
        match self.varint(length_field)? {
            -1 => Ok(None),
            length if length < 0 => Err(RecordError::InvalidLength {
                field: length_field,
                at_bytes,
                length,
            }),
            length => self.skip(length as usize, field).map(Some),
        }
    }
}

/// Decodes the record at `start`, calling `on_header` with the key and value
/// ranges of each header in order.
pub(crate) fn scan_record(
    buf: &[u8],
    start: usize,
    mut on_header: impl FnMut(Range<usize>, Option<Range<usize>>),
) -> Result<RecordSpan, RecordError> {
    let mut cursor = Cursor { buf, pos: start };
    let declared_bytes = cursor.varint(RecordField::Length)?;
    let body_start = cursor.pos;
    let length = usize::try_from(declared_bytes).map_err(|_| RecordError::InvalidLength {
        field: RecordField::Length,
        at_bytes: start,
        length: declared_bytes,
    })?;
    cursor.skip(length, RecordField::Length)?;
    let end = cursor.pos;
    // Everything else must fit in the record's own declared bytes.
    let mut cursor = Cursor {
        buf: &buf[..end],
        pos: body_start,
    };
    cursor.skip(1, RecordField::Attributes)?;
    let timestamp_delta = cursor.varlong(RecordField::TimestampDelta)?;
    let offset_delta = cursor.varint(RecordField::OffsetDelta)?;
    let key = cursor.nullable(RecordField::KeyLength, RecordField::Key)?;
    let value = cursor.nullable(RecordField::ValueLength, RecordField::Value)?;
    let header_count_at = cursor.pos;
    let header_count = cursor.varint(RecordField::HeaderCount)?;
    if header_count < 0 {
        return Err(RecordError::InvalidLength {
            field: RecordField::HeaderCount,
            at_bytes: header_count_at,
            length: header_count,
        });
    }
    for _ in 0..header_count {
        scan_header(&mut cursor, &mut on_header)?;
    }
    if cursor.pos != end {
        return Err(RecordError::LengthMismatch {
            at_bytes: start,
            declared_bytes,
            consumed_bytes: cursor.pos - body_start,
        });
    }
    Ok(RecordSpan {
        offset_delta,
        timestamp_delta,
        key,
        value,
        end,
    })
}

fn scan_header(
    cursor: &mut Cursor<'_>,
    on_header: &mut impl FnMut(Range<usize>, Option<Range<usize>>),
) -> Result<(), RecordError> {
    let at_bytes = cursor.pos;
    let key_length = cursor.varint(RecordField::HeaderKeyLength)?;
    let key_length = usize::try_from(key_length).map_err(|_| RecordError::InvalidLength {
        field: RecordField::HeaderKeyLength,
        at_bytes,
        length: key_length,
    })?;
    let key = cursor.skip(key_length, RecordField::HeaderKey)?;
    let value = cursor.nullable(RecordField::HeaderValueLength, RecordField::HeaderValue)?;
    on_header(key, value);
    Ok(())
}

/// Walks the record spans of a records section, checking the count the
/// batch declares and that nothing trails the last record.
#[derive(Debug, Clone)]
pub(crate) struct SpanWalk {
    pos: usize,
    found: i32,
    expected: i32,
    done: bool,
}

impl SpanWalk {
    pub(crate) fn new(expected: i32) -> Self {
        SpanWalk {
            pos: 0,
            found: 0,
            expected,
            done: false,
        }
    }

    pub(crate) fn remaining(&self) -> i32 {
        if self.done {
            0
        } else {
            self.expected - self.found
        }
    }

    /// The next span, or `None` once every record was read. Errors end the
    /// walk: it yields each error once.
    pub(crate) fn next_span(
        &mut self,
        buf: &[u8],
        on_header: impl FnMut(Range<usize>, Option<Range<usize>>),
    ) -> Option<Result<RecordSpan, RecordError>> {
        if self.done {
            return None;
        }
        let result = self.step(buf, on_header);
        if !matches!(result, Some(Ok(_))) {
            self.done = true;
        }
        result
    }

    fn step(
        &mut self,
        buf: &[u8],
        on_header: impl FnMut(Range<usize>, Option<Range<usize>>),
    ) -> Option<Result<RecordSpan, RecordError>> {
        if self.found >= self.expected {
            if self.pos == buf.len() {
                return None;
            }
            return Some(Err(RecordError::TrailingBytes {
                count: self.expected,
                trailing_bytes: buf.len() - self.pos,
            }));
        }
        if self.pos == buf.len() {
            return Some(Err(RecordError::TooFewRecords {
                expected: self.expected,
                found: self.found,
            }));
        }
        match scan_record(buf, self.pos, on_header) {
            Ok(span) => {
                self.pos = span.end;
                self.found += 1;
                Some(Ok(span))
            }
            Err(error) => Some(Err(error)),
        }
    }
}

/// Iterates the records of one batch. Yields an error at most once, then
/// stops.
#[derive(Debug, Clone)]
pub struct RecordIter {
    data: Bytes,
    walk: SpanWalk,
}

impl RecordIter {
    /// Iterates the `expected` records in an uncompressed records section.
    pub fn new(data: Bytes, expected: i32) -> Self {
        RecordIter {
            data,
            walk: SpanWalk::new(expected),
        }
    }

    /// The (decompressed) records section being iterated.
    pub fn records_section(&self) -> &Bytes {
        &self.data
    }
}

impl Iterator for RecordIter {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut header_spans = Vec::new();
        let span = match self.walk.next_span(&self.data, |key, value| {
            header_spans.push((key, value));
        })? {
            Ok(span) => span,
            Err(error) => return Some(Err(error)),
        };
        let data = &self.data;
        let headers = header_spans
            .into_iter()
            .map(|(key, value)| Header {
                key: data.slice(key),
                value: value.map(|range| data.slice(range)),
            })
            .collect();
        Some(Ok(Record {
            offset_delta: span.offset_delta,
            timestamp_delta: span.timestamp_delta,
            key: span.key.map(|range| data.slice(range)),
            value: span.value.map(|range| data.slice(range)),
            headers,
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // An error may come instead of any record, or after the last one.
        let remaining = self.walk.remaining().max(0) as usize;
        (0, Some(remaining.saturating_add(1)))
    }
}

impl RecordBatch {
    /// The records section, decompressed once if the batch is compressed
    /// (bounded by `limits.decompressed_bytes_max`). Uncompressed batches
    /// are not copied.
    pub fn decompressed_records(&self, limits: RecordLimits) -> Result<Bytes, RecordError> {
        let codec = self.header().compression()?;
        Ok(compression::decompress(
            codec,
            &self.records_bytes(),
            limits.decompressed_bytes_max,
        )?)
    }

    /// Iterates the batch's records. Decompression happens here, once.
    pub fn records(&self, limits: RecordLimits) -> Result<RecordIter, RecordError> {
        let data = self.decompressed_records(limits)?;
        Ok(RecordIter::new(data, self.header().record_count))
    }
}
