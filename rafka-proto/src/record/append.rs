//! Produce-path validation of one batch before the log appends it: Kafka's
//! `LogValidator` rules for magic v2, plus the facts the log needs from the
//! records (max timestamp and where it is, counts).
//!
//! # Which Kafka error
//!
//! [`InvalidBatch::error_code`] gives the code for the produce response:
//! - `CORRUPT_MESSAGE` (2) for bytes that do not hold together as a batch:
//!   CRC mismatch, truncation, bad batchLength or magic ([`BatchError`]
//!   from parsing). Clients treat it as retriable, which is right for bytes
//!   damaged in flight.
//! - `MESSAGE_TOO_LARGE` (10) when the batch or its decompressed records
//!   exceed a limit.
//! - `INVALID_RECORD` (87) for everything inside a batch whose CRC is good:
//!   counts, offset deltas, producer fields, control bits, record structure
//!   and undecodable compressed data. Retrying the same bytes cannot help,
//!   and clients do not retry it.

use crate::error::ErrorCode;
use crate::record::batch::{BatchError, BatchHeader, RecordBatch, NO_PRODUCER_ID};
use crate::record::compression::CompressionError;
use crate::record::records::{RecordError, RecordLimits, SpanWalk};
use crate::record::Compression;

/// Who is appending: clients may not write control batches; the
/// transaction coordinator writes nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A Produce request.
    Client,
    /// The broker itself (transaction markers, internal topics).
    Coordinator,
}

/// Why a batch may not be appended.
#[derive(Debug, thiserror::Error)]
pub enum InvalidBatch {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("batch holds no records")]
    NoRecords,
    #[error("record {index} has offset delta {found}")]
    OffsetDeltaOutOfOrder { index: i32, found: i32 },
    #[error("clients may not write control batches")]
    ControlFromClient,
    #[error(transparent)]
    Records(#[from] RecordError),
}

/// How the broker should reject the batch; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    CorruptMessage,
    MessageTooLarge,
    InvalidRecord,
}

impl InvalidBatch {
    pub fn kind(&self) -> RejectKind {
        match self {
            InvalidBatch::Batch(error) => batch_error_kind(error),
            InvalidBatch::Records(RecordError::Batch(error)) => batch_error_kind(error),
            InvalidBatch::Records(RecordError::Compression(CompressionError::TooLarge {
                ..
            })) => RejectKind::MessageTooLarge,
            InvalidBatch::NoRecords
            | InvalidBatch::OffsetDeltaOutOfOrder { .. }
            | InvalidBatch::ControlFromClient
            | InvalidBatch::Records(_) => RejectKind::InvalidRecord,
        }
    }

    /// The Kafka error code for the produce response.
    pub fn error_code(&self) -> ErrorCode {
        match self.kind() {
            RejectKind::CorruptMessage => ErrorCode::CORRUPT_MESSAGE,
            RejectKind::MessageTooLarge => ErrorCode::MESSAGE_TOO_LARGE,
            RejectKind::InvalidRecord => ErrorCode::INVALID_RECORD,
        }
    }
}

fn batch_error_kind(error: &BatchError) -> RejectKind {
    match error {
        BatchError::Truncated { .. }
        | BatchError::LengthTooSmall(_)
        | BatchError::BadMagic(_)
        | BatchError::CrcMismatch { .. } => RejectKind::CorruptMessage,
        BatchError::TooLarge { .. } => RejectKind::MessageTooLarge,
        BatchError::UnknownCompression(_)
        | BatchError::NegativeRecordCount(_)
        | BatchError::CountMismatch { .. }
        | BatchError::BadProducerFields { .. }
        | BatchError::ControlNotTransactional => RejectKind::InvalidRecord,
    }
}

/// What the log needs to know about a batch it appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub record_count: i32,
    /// Largest record timestamp (ms); the batch's base timestamp when the
    /// batch has LogAppendTime, whose record timestamps are meaningless.
    pub max_timestamp_ms: i64,
    /// Smallest record timestamp (ms), for `message.timestamp.before.max.ms`
    /// (the base timestamp with LogAppendTime).
    pub min_timestamp_ms: i64,
    /// Offset delta of the first record carrying `max_timestamp_ms` (0 with
    /// LogAppendTime: every record has the same time).
    pub offset_delta_of_max_timestamp: i32,
    /// Records with a null key (a compacted topic rejects them).
    pub null_key_count: i32,
    pub compression: Compression,
    /// Size of the records section after decompression.
    pub records_bytes: usize,
}

/// Checks a parsed batch (CRC already verified by [`RecordBatch::parse`])
/// the way Kafka's LogValidator does before an append, and reads every
/// record once (decompressing if needed) to check its structure.
pub fn validate_for_append(
    batch: &RecordBatch,
    origin: AppendOrigin,
    limits: RecordLimits,
) -> Result<AppendInfo, InvalidBatch> {
    let header = batch.header();
    check_header(header, origin)?;
    let records = batch.decompressed_records(limits)?;
    let mut info = AppendInfo {
        record_count: header.record_count,
        max_timestamp_ms: i64::MIN,
        min_timestamp_ms: i64::MAX,
        offset_delta_of_max_timestamp: 0,
        null_key_count: 0,
        compression: header.compression()?,
        records_bytes: records.len(),
    };
    let mut walk = SpanWalk::new(header.record_count);
    let mut index: i32 = 0;
    while let Some(span) = walk.next_span(&records, |_, _| {}) {
        let span = span?;
        if span.offset_delta != index {
            return Err(InvalidBatch::OffsetDeltaOutOfOrder {
                index,
                found: span.offset_delta,
            });
        }
        let timestamp_ms = header.base_timestamp.wrapping_add(span.timestamp_delta);
        if timestamp_ms > info.max_timestamp_ms {
            info.max_timestamp_ms = timestamp_ms;
            info.offset_delta_of_max_timestamp = index;
        }
        info.min_timestamp_ms = info.min_timestamp_ms.min(timestamp_ms);
        if span.key.is_none() {
            info.null_key_count += 1;
        }
        index += 1;
    }
    if header.timestamp_type() == crate::record::TimestampType::LogAppendTime {
        info.max_timestamp_ms = header.base_timestamp;
        info.min_timestamp_ms = header.base_timestamp;
        info.offset_delta_of_max_timestamp = 0;
    }
    Ok(info)
}

/// The header-only rules, cheap enough to run before touching records.
pub fn check_header(header: &BatchHeader, origin: AppendOrigin) -> Result<(), InvalidBatch> {
    if header.record_count < 1 {
        return Err(InvalidBatch::NoRecords);
    }
    if i64::from(header.last_offset_delta) != i64::from(header.record_count) - 1 {
        return Err(BatchError::CountMismatch {
            count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        }
        .into());
    }
    if header.is_control() {
        if origin == AppendOrigin::Client {
            return Err(InvalidBatch::ControlFromClient);
        }
        if !header.is_transactional() {
            return Err(BatchError::ControlNotTransactional.into());
        }
    }
    check_producer_fields(header, origin)
}

/// An idempotent batch needs an epoch and, from a client, a sequence (the
/// coordinator's control batches carry sequence -1); a transactional batch
/// needs a producer id. Ids below -1 are not ids at all.
fn check_producer_fields(header: &BatchHeader, origin: AppendOrigin) -> Result<(), InvalidBatch> {
    let has_id = header.producer_id >= 0;
    let sequence_ok = header.base_sequence >= 0 || origin == AppendOrigin::Coordinator;
    let consistent = header.producer_id >= NO_PRODUCER_ID
        && (!has_id || (header.producer_epoch >= 0 && sequence_ok))
        && (!header.is_transactional() || has_id);
    if consistent {
        Ok(())
    } else {
        Err(BatchError::BadProducerFields {
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
            base_sequence: header.base_sequence,
        }
        .into())
    }
}
