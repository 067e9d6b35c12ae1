//! Errors of the producer state machine and its files, with the Kafka error
//! codes a produce or InitProducerId response carries for them.

use std::path::PathBuf;

use rafka_proto::error::ErrorCode;

use crate::io::IoError;

/// Why a produce batch or a producer state file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error(
        "producer {producer_id}: epoch {epoch} is older than the current epoch {current_epoch}"
    )]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
    #[error("producer {producer_id} epoch {epoch}: sequence {base_sequence} does not follow last sequence {last_sequence}")]
    OutOfOrderSequence {
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        /// [`super::NO_SEQUENCE`] when the epoch is new or nothing is cached.
        last_sequence: i32,
    },
    #[error("producer {producer_id} sent a non-transactional batch inside its open transaction")]
    InvalidTxnState { producer_id: i64 },
    #[error(
        "producer {producer_id}: coordinator epoch {coordinator_epoch} is older than \
         {current_coordinator_epoch}, the epoch of the coordinator that wrote its last marker"
    )]
    CoordinatorFenced {
        producer_id: i64,
        coordinator_epoch: i32,
        current_coordinator_epoch: i32,
    },
    #[error("producer ids exhausted: no block after {reserved_end_id}")]
    ProducerIdsExhausted { reserved_end_id: i64 },
    #[error("corrupt producer state file {}: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: FormatError,
    },
    #[error(transparent)]
    Io(#[from] IoError),
}

impl ProducerError {
    /// The Kafka error code to answer the client with.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            ProducerError::InvalidProducerEpoch { .. } => ErrorCode::INVALID_PRODUCER_EPOCH,
            ProducerError::OutOfOrderSequence { .. } => ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER,
            ProducerError::InvalidTxnState { .. } => ErrorCode::INVALID_TXN_STATE,
            ProducerError::CoordinatorFenced { .. } => ErrorCode::TRANSACTION_COORDINATOR_FENCED,
            ProducerError::ProducerIdsExhausted { .. } => ErrorCode::UNKNOWN_SERVER_ERROR,
            ProducerError::Corrupt { .. } | ProducerError::Io(_) => ErrorCode::KAFKA_STORAGE_ERROR,
        }
    }
}

/// What is wrong with the bytes of a snapshot or producer-id block file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("truncated: need {needed_bytes} bytes, have {available_bytes}")]
    Truncated {
        needed_bytes: usize,
        available_bytes: usize,
    },
    #[error("unknown version {0}")]
    UnknownVersion(i16),
    #[error("CRC mismatch: file says {stored:#010x}, bytes give {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("negative entry count {0}")]
    NegativeCount(i32),
    #[error("{0} bytes after the last entry")]
    TrailingBytes(usize),
    #[error("negative producer id {0}")]
    NegativeProducerId(i64),
    #[error("file of {0} bytes does not fit in memory")]
    TooLarge(u64),
}
