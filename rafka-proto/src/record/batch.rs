//! RecordBatch v2 header view: parse, validate and rewrite a batch without
//! copying its bytes.
//!
//! Layout (all big-endian), 61 header bytes then the records:
//!
//! ```text
//!  0 baseOffset i64          12 partitionLeaderEpoch i32   16 magic i8
//! 17 crc u32 (CRC32C of bytes 21..end)                     21 attributes i16
//! 23 lastOffsetDelta i32     27 baseTimestamp i64          35 maxTimestamp i64
//! 43 producerId i64          51 producerEpoch i16          53 baseSequence i32
//!  8 batchLength i32 (bytes after this field)              57 recordCount i32
//! ```

use bytes::Bytes;

use crate::record::Compression;

/// Bytes before `batchLength` is counted: baseOffset + batchLength.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// The fixed header of a v2 batch, up to and including recordCount.
pub const BATCH_HEADER_BYTES: usize = 61;
/// The smallest legal `batchLength`: a header with no records.
pub const BATCH_LENGTH_MIN: i32 = (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;
pub const MAGIC_V2: i8 = 2;
/// Producer id meaning "not an idempotent/transactional batch".
pub const NO_PRODUCER_ID: i64 = -1;

const OFFSET_BASE_OFFSET: usize = 0;
const OFFSET_LENGTH: usize = 8;
const OFFSET_LEADER_EPOCH: usize = 12;
const OFFSET_MAGIC: usize = 16;
const OFFSET_CRC: usize = 17;
const OFFSET_ATTRIBUTES: usize = 21;
const OFFSET_LAST_OFFSET_DELTA: usize = 23;
const OFFSET_BASE_TIMESTAMP: usize = 27;
const OFFSET_MAX_TIMESTAMP: usize = 35;
const OFFSET_PRODUCER_ID: usize = 43;
const OFFSET_PRODUCER_EPOCH: usize = 51;
const OFFSET_BASE_SEQUENCE: usize = 53;
const OFFSET_RECORD_COUNT: usize = 57;

const _: () = assert!(OFFSET_RECORD_COUNT + 4 == BATCH_HEADER_BYTES);
const _: () = assert!(OFFSET_CRC + 4 == OFFSET_ATTRIBUTES);

pub(crate) const ATTR_COMPRESSION_MASK: i16 = 0x07;
pub(crate) const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
pub(crate) const ATTR_TRANSACTIONAL: i16 = 0x10;
pub(crate) const ATTR_CONTROL: i16 = 0x20;
const ATTR_DELETE_HORIZON: i16 = 0x40;

/// Everything that can be wrong with the bytes of a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch truncated: need {needed_bytes} bytes, have {available_bytes}")]
    Truncated {
        needed_bytes: usize,
        available_bytes: usize,
    },
    #[error("batch length {0} is below the minimum {BATCH_LENGTH_MIN}")]
    LengthTooSmall(i32),
    #[error("batch of {size_bytes} bytes exceeds the limit of {limit_bytes}")]
    TooLarge {
        size_bytes: usize,
        limit_bytes: usize,
    },
    #[error("unsupported magic {0} (only v2 record batches are accepted)")]
    BadMagic(i8),
    #[error("CRC mismatch: header says {stored:#010x}, bytes give {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("unknown compression codec {0}")]
    UnknownCompression(u8),
    #[error("negative record count {0}")]
    NegativeRecordCount(i32),
    #[error("record count {count} disagrees with lastOffsetDelta {last_offset_delta}")]
    CountMismatch { count: i32, last_offset_delta: i32 },
    #[error("producer fields inconsistent: id {producer_id}, epoch {producer_epoch}, sequence {base_sequence}")]
    BadProducerFields {
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    },
    #[error("control batch without the transactional bit")]
    ControlNotTransactional,
}

/// How the batch's timestamps were assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The decoded fixed header of a v2 batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Decodes the header from the first [`BATCH_HEADER_BYTES`] of `buf`.
    /// Checks only that the bytes are there; see [`RecordBatch::parse`].
    pub fn decode(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < BATCH_HEADER_BYTES {
            return Err(BatchError::Truncated {
                needed_bytes: BATCH_HEADER_BYTES,
                available_bytes: buf.len(),
            });
        }
        Ok(BatchHeader {
            base_offset: read_i64(buf, OFFSET_BASE_OFFSET),
            batch_length: read_i32(buf, OFFSET_LENGTH),
            partition_leader_epoch: read_i32(buf, OFFSET_LEADER_EPOCH),
            magic: buf[OFFSET_MAGIC] as i8,
            crc: read_i32(buf, OFFSET_CRC) as u32,
            attributes: read_i16(buf, OFFSET_ATTRIBUTES),
            last_offset_delta: read_i32(buf, OFFSET_LAST_OFFSET_DELTA),
            base_timestamp: read_i64(buf, OFFSET_BASE_TIMESTAMP),
            max_timestamp: read_i64(buf, OFFSET_MAX_TIMESTAMP),
            producer_id: read_i64(buf, OFFSET_PRODUCER_ID),
            producer_epoch: read_i16(buf, OFFSET_PRODUCER_EPOCH),
            base_sequence: read_i32(buf, OFFSET_BASE_SEQUENCE),
            record_count: read_i32(buf, OFFSET_RECORD_COUNT),
        })
    }

    /// Total bytes of the batch on the wire and on disk.
    pub fn size_bytes(&self) -> usize {
        LOG_OVERHEAD_BYTES + self.batch_length.max(0) as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Offset of the first record after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    pub fn compression(&self) -> Result<Compression, BatchError> {
        let codec = (self.attributes & ATTR_COMPRESSION_MASK) as u8;
        Compression::from_attribute(codec).ok_or(BatchError::UnknownCompression(codec))
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTR_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & ATTR_DELETE_HORIZON != 0
    }

    pub fn has_producer_id(&self) -> bool {
        self.producer_id != NO_PRODUCER_ID
    }

    /// Writes every field into the first [`BATCH_HEADER_BYTES`] of `buf`,
    /// the stored `crc` included (see [`write_crc`] to compute it).
    pub fn encode(&self, buf: &mut [u8; BATCH_HEADER_BYTES]) {
        buf[OFFSET_BASE_OFFSET..OFFSET_LENGTH].copy_from_slice(&self.base_offset.to_be_bytes());
        buf[OFFSET_LENGTH..OFFSET_LEADER_EPOCH].copy_from_slice(&self.batch_length.to_be_bytes());
        buf[OFFSET_LEADER_EPOCH..OFFSET_MAGIC]
            .copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        buf[OFFSET_MAGIC] = self.magic as u8;
        buf[OFFSET_CRC..OFFSET_ATTRIBUTES].copy_from_slice(&self.crc.to_be_bytes());
        buf[OFFSET_ATTRIBUTES..OFFSET_LAST_OFFSET_DELTA]
            .copy_from_slice(&self.attributes.to_be_bytes());
        buf[OFFSET_LAST_OFFSET_DELTA..OFFSET_BASE_TIMESTAMP]
            .copy_from_slice(&self.last_offset_delta.to_be_bytes());
        buf[OFFSET_BASE_TIMESTAMP..OFFSET_MAX_TIMESTAMP]
            .copy_from_slice(&self.base_timestamp.to_be_bytes());
        buf[OFFSET_MAX_TIMESTAMP..OFFSET_PRODUCER_ID]
            .copy_from_slice(&self.max_timestamp.to_be_bytes());
        buf[OFFSET_PRODUCER_ID..OFFSET_PRODUCER_EPOCH]
            .copy_from_slice(&self.producer_id.to_be_bytes());
        buf[OFFSET_PRODUCER_EPOCH..OFFSET_BASE_SEQUENCE]
            .copy_from_slice(&self.producer_epoch.to_be_bytes());
        buf[OFFSET_BASE_SEQUENCE..OFFSET_RECORD_COUNT]
            .copy_from_slice(&self.base_sequence.to_be_bytes());
        buf[OFFSET_RECORD_COUNT..BATCH_HEADER_BYTES]
            .copy_from_slice(&self.record_count.to_be_bytes());
    }
}

/// Reads the total size of the batch starting at `buf[0]` from its first
/// [`LOG_OVERHEAD_BYTES`], before the rest of it is available.
pub fn batch_size_bytes(buf: &[u8]) -> Result<usize, BatchError> {
    if buf.len() < LOG_OVERHEAD_BYTES {
        return Err(BatchError::Truncated {
            needed_bytes: LOG_OVERHEAD_BYTES,
            available_bytes: buf.len(),
        });
    }
    let batch_length = read_i32(buf, OFFSET_LENGTH);
    if batch_length < BATCH_LENGTH_MIN {
        return Err(BatchError::LengthTooSmall(batch_length));
    }
    Ok(LOG_OVERHEAD_BYTES + batch_length as usize)
}

/// CRC32C over the bytes the v2 CRC covers (attributes to the end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..])
}

/// Computes the CRC of a whole batch and stores it in its header.
pub fn write_crc(batch: &mut [u8]) -> u32 {
    let crc = compute_crc(batch);
    batch[OFFSET_CRC..OFFSET_ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
    crc
}

/// Sets the timestamp type bit and maxTimestamp, as Kafka's validator does
/// for a LogAppendTime topic or when a producer's maxTimestamp is stale,
/// and recomputes the CRC (both fields are covered by it).
pub fn set_max_timestamp(batch: &mut [u8], timestamp_type: TimestampType, max_timestamp_ms: i64) {
    let mut attributes = read_i16(batch, OFFSET_ATTRIBUTES) & !ATTR_TIMESTAMP_TYPE;
    if timestamp_type == TimestampType::LogAppendTime {
        attributes |= ATTR_TIMESTAMP_TYPE;
    }
    batch[OFFSET_ATTRIBUTES..OFFSET_LAST_OFFSET_DELTA].copy_from_slice(&attributes.to_be_bytes());
    batch[OFFSET_MAX_TIMESTAMP..OFFSET_PRODUCER_ID]
        .copy_from_slice(&max_timestamp_ms.to_be_bytes());
    write_crc(batch);
}

/// One whole, structurally valid v2 batch over shared bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBatch {
    header: BatchHeader,
    bytes: Bytes,
}

impl RecordBatch {
    /// Parses the batch at the start of `bytes`, which must hold at least
    /// the whole batch. Checks length, magic, codec, record count and CRC32C;
    /// returns the batch and the bytes after it.
    pub fn parse(bytes: &Bytes) -> Result<(RecordBatch, Bytes), BatchError> {
        let size_bytes = batch_size_bytes(bytes)?;
        if bytes.len() < size_bytes {
            return Err(BatchError::Truncated {
                needed_bytes: size_bytes,
                available_bytes: bytes.len(),
            });
        }
        let batch = bytes.slice(..size_bytes);
        let header = validate(&batch)?;
        Ok((
            RecordBatch {
                header,
                bytes: batch,
            },
            bytes.slice(size_bytes..),
        ))
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The whole batch, exactly as on the wire.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// The records section (possibly compressed), after the fixed header.
    pub fn records_bytes(&self) -> Bytes {
        self.bytes.slice(BATCH_HEADER_BYTES..)
    }

    pub fn size_bytes(&self) -> usize {
        self.bytes.len()
    }
}

/// Validates one whole batch (`batch.len()` equals its declared size) and
/// returns its header. The checks a broker makes before storing it.
pub fn validate(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::decode(batch)?;
    if header.batch_length < BATCH_LENGTH_MIN {
        return Err(BatchError::LengthTooSmall(header.batch_length));
    }
    if batch.len() != header.size_bytes() {
        return Err(BatchError::Truncated {
            needed_bytes: header.size_bytes(),
            available_bytes: batch.len(),
        });
    }
    if header.magic != MAGIC_V2 {
        return Err(BatchError::BadMagic(header.magic));
    }
    // The CRC comes before any check of the fields it covers, so damaged
    // bytes are reported as damage rather than as a bad field value.
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    header.compression()?;
    if header.record_count < 0 {
        return Err(BatchError::NegativeRecordCount(header.record_count));
    }
    Ok(header)
}

/// Iterates the batches in a records blob (a produce request's `records`,
/// a segment's bytes). Stops at the first error, which it yields once.
#[derive(Debug, Clone)]
pub struct Batches {
    rest: Bytes,
}

impl Batches {
    pub fn new(records: Bytes) -> Self {
        Batches { rest: records }
    }
}

impl Iterator for Batches {
    type Item = Result<RecordBatch, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match RecordBatch::parse(&self.rest) {
            Ok((batch, rest)) => {
                self.rest = rest;
                Some(Ok(batch))
            }
            Err(error) => {
                self.rest = Bytes::new();
                Some(Err(error))
            }
        }
    }
}

/// Rewrites baseOffset in place. The CRC does not cover it.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[OFFSET_BASE_OFFSET..OFFSET_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites partitionLeaderEpoch in place. The CRC does not cover it.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[OFFSET_LEADER_EPOCH..OFFSET_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

fn read_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

fn read_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn read_i64(buf: &[u8], at: usize) -> i64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(bytes)
}
