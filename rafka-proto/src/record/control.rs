//! Control records: the transaction markers (COMMIT / ABORT) the
//! coordinator writes into each partition a transaction touched, in a batch
//! of their own with the transactional and control bits set.
//!
//! ```text
//! key:   version i16 (0) | type i16 (0 = ABORT, 1 = COMMIT, others: KRaft)
//! value: version i16 (0) | coordinatorEpoch i32
//! ```

use bytes::Bytes;

use crate::record::batch::RecordBatch;
use crate::record::builder::{BatchBuilder, BuildError};
use crate::record::records::{Record, RecordError, RecordLimits};
use crate::record::Compression;

const CONTROL_KEY_VERSION: i16 = 0;
const CONTROL_KEY_BYTES: usize = 4;
const END_TXN_MARKER_VERSION: i16 = 0;
const END_TXN_MARKER_BYTES: usize = 6;

/// The type in a control record's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    Abort,
    Commit,
    /// Types Kafka uses elsewhere (KRaft leader change, snapshots); kept so
    /// a reader can skip them instead of failing.
    Other(i16),
}

impl ControlType {
    pub fn from_i16(value: i16) -> ControlType {
        match value {
            0 => ControlType::Abort,
            1 => ControlType::Commit,
            other => ControlType::Other(other),
        }
    }

    pub fn as_i16(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
            ControlType::Other(other) => other,
        }
    }
}

/// Why a control record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("batch is not a control batch")]
    NotControl,
    #[error("control batch holds no record")]
    Empty,
    #[error("control record key is null or shorter than {CONTROL_KEY_BYTES} bytes")]
    BadKey,
    #[error("control record key version {0} is negative")]
    BadKeyVersion(i16),
    #[error("transaction marker value is null or shorter than {END_TXN_MARKER_BYTES} bytes")]
    BadValue,
    #[error(transparent)]
    Records(#[from] RecordError),
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// A transaction marker: how the transaction ended and the epoch of the
/// coordinator that ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnMarker {
    pub control_type: ControlType,
    pub coordinator_epoch: i32,
}

/// Reads the type from a control record's key. Newer key versions are read
/// as version 0 (their prefix is the same), as Kafka does.
pub fn control_type(record: &Record) -> Result<ControlType, ControlError> {
    let key = record.key.as_deref().ok_or(ControlError::BadKey)?;
    let (prefix, _) = key
        .split_first_chunk::<CONTROL_KEY_BYTES>()
        .ok_or(ControlError::BadKey)?;
    let version = i16::from_be_bytes([prefix[0], prefix[1]]);
    if version < 0 {
        return Err(ControlError::BadKeyVersion(version));
    }
    Ok(ControlType::from_i16(i16::from_be_bytes([
        prefix[2], prefix[3],
    ])))
}

/// Reads a COMMIT/ABORT marker from a control record; `Ok(None)` for
/// other control types.
pub fn decode_end_txn_marker(record: &Record) -> Result<Option<EndTxnMarker>, ControlError> {
    let control_type = control_type(record)?;
    if let ControlType::Other(_) = control_type {
        return Ok(None);
    }
    let value = record.value.as_deref().ok_or(ControlError::BadValue)?;
    let (prefix, _) = value
        .split_first_chunk::<END_TXN_MARKER_BYTES>()
        .ok_or(ControlError::BadValue)?;
    let coordinator_epoch = i32::from_be_bytes([prefix[2], prefix[3], prefix[4], prefix[5]]);
    Ok(Some(EndTxnMarker {
        control_type,
        coordinator_epoch,
    }))
}

/// Builds the control batch the coordinator appends to end a transaction:
/// one control record, transactional + control bits, base sequence -1 (a
/// marker does not take part in the producer's sequence).
pub fn encode_end_txn_batch(
    marker: EndTxnMarker,
    producer_id: i64,
    producer_epoch: i16,
    timestamp_ms: i64,
) -> Result<Bytes, ControlError> {
    let mut key = [0u8; CONTROL_KEY_BYTES];
    key[..2].copy_from_slice(&CONTROL_KEY_VERSION.to_be_bytes());
    key[2..].copy_from_slice(&marker.control_type.as_i16().to_be_bytes());
    let mut value = [0u8; END_TXN_MARKER_BYTES];
    value[..2].copy_from_slice(&END_TXN_MARKER_VERSION.to_be_bytes());
    value[2..].copy_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let mut builder = BatchBuilder::new(Compression::None)
        .producer(producer_id, producer_epoch, -1)
        .transactional(true)
        .control(true)
        .base_timestamp_ms(timestamp_ms);
    builder.push_record(timestamp_ms, Some(&key), Some(&value), &[]);
    Ok(builder.build()?)
}

impl RecordBatch {
    /// The transaction marker of a control batch (`Ok(None)` for a control
    /// batch of another type).
    pub fn end_txn_marker(&self) -> Result<Option<EndTxnMarker>, ControlError> {
        if !self.header().is_control() {
            return Err(ControlError::NotControl);
        }
        // A marker is a few bytes; the limit only guards a hostile batch.
        let limits = RecordLimits {
            decompressed_bytes_max: 1024 * 1024,
        };
        let record = self.records(limits)?.next().ok_or(ControlError::Empty)??;
        decode_end_txn_marker(&record)
    }
}
